/**
 * The load-then-stream handoff ({@link Synced}, made by `Hubbub.sync()`): read
 * the topic's position (`history` with `limit: 0`), subscribe from it, call the
 * app's `load()`, then apply every publication after that position in offset
 * order, none twice and none missed. Lost publications (`reset`, a gap history
 * cannot fill, a different epoch) load again, with backoff.
 */
import { PERMANENT_SUBSCRIBE_ERRORS } from './close-codes.js';
import { Emitter } from './emitter.js';
import { HubbubError } from './errors.js';
import type { EventMap, Subscription } from './subscription.js';
import type { FeedOptions } from './topics.js';
import type { HistoryReply, Position, Publication } from './wire.js';

/** A publication of the topic, typed by its event map: `event` narrows `data`. */
export type SyncedPublication<E extends EventMap> = {
  [K in keyof E & string]: Publication<E[K]> & { event: K };
}[keyof E & string];

export interface SyncOptions<E extends EventMap, S> {
  /**
   * Loads the state from the application (its API, its database). Called
   * after the topic's position (`at`) was read: publications after that
   * position are applied on top of what it returns (those already in it are
   * the app's to ignore, by `pub.offset`).
   */
  load: (at: Position) => Promise<S> | S;
  /** Applies one publication; returns the next state (or the same, changed in place). */
  apply: (state: S, pub: SyncedPublication<E>) => S;
  /** Publications held while `load()` runs, at most (beyond: read from history). Default 10 000. */
  maxHeld?: number;
}

export type SyncStatus =
  /** Reading the position, loading, or catching up (first time or after lost publications). */
  | 'loading'
  /** The state is the loaded one plus every publication since, in order. */
  | 'live'
  /** The topic cannot be subscribed (forbidden, unknown namespace…); see `error`. */
  | 'failed'
  /** `close()` was called. */
  | 'closed';

export interface SyncEvents<S> {
  /** The state changed: loaded (`pub` absent) or one publication applied. */
  change: (state: S, info: { position: Position; pub?: Publication }) => void;
  status: (status: SyncStatus) => void;
  /** A load, an `apply` or a catch-up failed (it is retried with backoff), or the subscription failed. */
  error: (err: HubbubError) => void;
}

/** What a synced state needs from the client. */
export interface SyncHost<E extends EventMap> {
  subscribe(options: FeedOptions): Subscription<E>;
  /** The topic's current position (`history` with `limit: 0`). */
  position(): Promise<Position>;
  /** Publications after `since`, at most `limit`. */
  catchUp(since: Position, limit: number): Promise<HistoryReply>;
  backoff(attempt: number): number;
}

/** Publications a catch-up asks history for at once (the contract's maximum). */
const PAGE = 1000;

/** A gap that history cannot fill: the state must be loaded again. */
class Unrepairable extends Error {}

export class Synced<E extends EventMap, S> extends Emitter<SyncEvents<S>> {
  private value: S | undefined;
  private applied: Position | undefined;
  private current: SyncStatus = 'loading';
  private sub: Subscription<E> | undefined;
  /** Publications that arrived while not live, applied once the state is loaded. */
  private held: Publication[] = [];
  /** Invalidates the async steps of an abandoned load. */
  private run = 0;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly maxHeld: number;

  /** @internal Made by `Hubbub.sync()`. */
  constructor(
    private readonly host: SyncHost<E>,
    readonly topic: string,
    private readonly options: SyncOptions<E, S>,
  ) {
    super();
    this.maxHeld = options.maxHeld ?? 10_000;
    void this.cycle(this.run);
  }

  /** The current state (undefined until the first load resolved). */
  get state(): S | undefined {
    return this.value;
  }

  get status(): SyncStatus {
    return this.current;
  }

  /** The position the state reflects: the loaded position or the last publication applied. */
  get position(): Position | undefined {
    return this.applied ? { ...this.applied } : undefined;
  }

  /** Stops: unsubscribes and calls nothing any more. */
  close(): void {
    if (this.current === 'closed') return;
    this.run += 1;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.sub?.unsubscribe();
    this.setStatus('closed');
  }

  // ---- the handoff -------------------------------------------------------------

  private async cycle(run: number): Promise<void> {
    try {
      this.setStatus('loading');
      let position: Position;
      try {
        position = await this.host.position();
      } catch (err) {
        // A topic this token may not read (or that cannot exist) will not get better.
        if (run === this.run && err instanceof HubbubError && PERMANENT_SUBSCRIBE_ERRORS.has(err.code)) {
          this.fail(err);
          return;
        }
        throw err;
      }
      if (run !== this.run) return;
      if (!this.sub) this.attach(this.host.subscribe({ since: position }));
      const state = await this.options.load({ ...position });
      if (run !== this.run) return;
      this.value = state;
      this.applied = { ...position };
      this.emit('change', state, { position: { ...position } });
      await this.catchUp(run);
    } catch (err) {
      if (run !== this.run) return;
      this.emit('error', asError(err));
      this.reload();
    }
  }

  /**
   * Applies what is held, in order; fills a hole (or what the subscription
   * delivered before this state was loaded) from history; goes live when
   * nothing is left. Throws {@link Unrepairable} when history cannot fill it.
   */
  private async catchUp(run: number): Promise<void> {
    for (;;) {
      const applied = this.applied as Position;
      const held = this.held.sort((a, b) => a.offset - b.offset);
      this.held = [];
      let hole: number | undefined;
      for (const [i, pub] of held.entries()) {
        if (pub.offset <= applied.offset) continue;
        if (pub.offset !== applied.offset + 1) {
          hole = pub.offset - 1;
          this.held = held.slice(i);
          break;
        }
        this.applyOne(pub);
      }
      const feed = this.sub?.position;
      if (feed && feed.epoch !== applied.epoch) throw new Unrepairable('the topic restarted in a new epoch');
      const target = Math.max(hole ?? 0, feed?.offset ?? 0);
      if (target <= applied.offset) {
        this.attempt = 0;
        this.setStatus('live');
        return;
      }
      const page = await this.host.catchUp({ ...applied }, Math.min(PAGE, target - applied.offset));
      if (run !== this.run) return;
      const next = page.publications.filter((p) => p.offset > applied.offset).sort((a, b) => a.offset - b.offset);
      if (page.position.epoch !== applied.epoch || next[0]?.offset !== applied.offset + 1) {
        throw new Unrepairable(`publications after ${applied.offset} are no longer in history`);
      }
      this.held.push(...next);
    }
  }

  private attach(sub: Subscription<E>): void {
    this.sub = sub;
    sub.on('publication', (pub) => this.onPub(pub));
    sub.on('reset', () => {
      this.emit('error', new HubbubError('reset', `publications of ${this.topic} were lost: loading again`));
      this.reload();
    });
    sub.on('error', (err) => this.fail(err));
  }

  /** The topic cannot be read: stop for good. */
  private fail(err: HubbubError): void {
    this.run += 1;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.sub?.unsubscribe();
    this.emit('error', err);
    this.setStatus('failed');
  }

  private onPub(pub: Publication): void {
    if (this.current !== 'live') {
      // Beyond maxHeld, the catch-up reads them from history instead.
      if (this.held.length < this.maxHeld) this.held.push(pub);
      return;
    }
    const applied = this.applied as Position;
    if (pub.offset <= applied.offset) return;
    if (pub.offset === applied.offset + 1) {
      try {
        this.applyOne(pub);
      } catch (err) {
        this.emit('error', asError(err));
        this.reload();
      }
      return;
    }
    // A hole: fill it from history before going on.
    this.held.push(pub);
    this.setStatus('loading');
    const run = this.run;
    this.catchUp(run).catch((err: unknown) => {
      if (run !== this.run) return;
      this.emit('error', asError(err));
      this.reload();
    });
  }

  private applyOne(pub: Publication): void {
    const applied = this.applied as Position;
    this.value = this.options.apply(this.value as S, pub as SyncedPublication<E>);
    applied.offset = pub.offset;
    this.emit('change', this.value, { position: { ...applied }, pub });
  }

  /** Loads again after a backoff delay that grows while loads keep failing. */
  private reload(): void {
    if (this.current === 'closed' || this.current === 'failed') return;
    const run = ++this.run;
    this.held = [];
    this.setStatus('loading');
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.cycle(run);
    }, this.host.backoff(this.attempt++));
  }

  private setStatus(status: SyncStatus): void {
    if (this.current === status || this.current === 'closed') return;
    this.current = status;
    this.emit('status', status);
  }
}

function asError(err: unknown): HubbubError {
  if (err instanceof HubbubError) return err;
  if (err instanceof Unrepairable) return new HubbubError('reset', err.message);
  return new HubbubError('load_failed', String(err), { cause: err });
}
