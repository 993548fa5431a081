/**
 * One topic subscription: its position, de-duplication by offset, gap
 * detection, recovery outcome (`reset`), and the app's typed event handlers.
 * The client owns the wire; a subscription only asks it for things through
 * {@link SubscriptionHost}.
 */
import type { HubbubError } from './errors.js';
import type { HistoryReply, Member, Position, Publication, SubscribedReply } from './wire.js';

/** Publication event names mapped to their `data` types, e.g. `{ 'booking.created': Booking }`. */
export type EventMap = Record<string, unknown>;

/** Lifecycle events of a subscription; app events cannot use these names. */
export interface SubscriptionEvents {
  /** Every publication, whatever its event name, after de-duplication and in offset order. */
  publication: (pub: Publication) => void;
  /** The hub confirmed the subscription; `recovered` is set when the SDK asked to recover. */
  subscribed: (info: { position: Position; recovered: boolean | undefined }) => void;
  /** Publications were lost (history trimmed or epoch changed): reload this topic's state. */
  reset: (info: { position: Position }) => void;
  join: (member: Member) => void;
  leave: (member: Member) => void;
  /** The subscription failed for good (forbidden, unknown namespace, …). */
  error: (err: HubbubError) => void;
  state: (state: SubscriptionState) => void;
}

export type ReservedEvent = keyof SubscriptionEvents;
const RESERVED: ReadonlySet<string> = new Set<ReservedEvent>([
  'publication',
  'subscribed',
  'reset',
  'join',
  'leave',
  'error',
  'state',
]);

/** The app event names of an event map (reserved lifecycle names excluded). */
export type AppEvent<E extends EventMap> = Exclude<keyof E & string, ReservedEvent>;

export type SubscriptionState =
  /** Waiting for the hub to confirm (first subscribe, after a reconnect, while recovering a gap). */
  | 'subscribing'
  | 'subscribed'
  /** `unsubscribe()` was called. */
  | 'unsubscribed'
  /** The hub refused the subscription for good; see the `error` event. */
  | 'failed';

export interface HistoryOptions {
  since?: Position;
  /** At most 1000 (the contract's maximum). */
  limit?: number;
}

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  resync(sub: Subscription<EventMap>): void;
  release(sub: Subscription<EventMap>): void;
  history(topic: string, options: HistoryOptions): Promise<HistoryReply>;
  presence(topic: string): Promise<Member[]>;
}

/** Live publications held back while (re)subscribing; beyond this, recovery by `since` covers them. */
const MAX_BUFFER = 1000;
/** Recoveries in a row that did not close a gap before the SDK gives up and emits `reset`. */
const MAX_FRUITLESS_RESYNCS = 3;
/** How many delivered publication ids are remembered for duplicate checks. */
const SEEN_IDS = 256;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyListener = (...args: any[]) => void;

export class Subscription<E extends EventMap = EventMap> {
  private pos: Position | undefined;
  private current: SubscriptionState = 'subscribing';
  private buffer: Publication[] = [];
  private refs = 1;
  private fruitlessResyncs = 0;
  /** Ids of the last publications delivered, by offset, to tell a duplicate from a new epoch. */
  private readonly seen = new Map<number, string>();
  private readonly listeners = new Map<string, Set<AnyListener>>();

  /** @internal Created by `Hubbub.subscribe()`. */
  constructor(
    readonly topic: string,
    private readonly host: SubscriptionHost,
  ) {}

  /** The position of the last publication delivered (or the hub's at subscribe time). */
  get position(): Position | undefined {
    return this.pos ? { ...this.pos } : undefined;
  }

  get state(): SubscriptionState {
    return this.current;
  }

  /** Listens to a lifecycle event. */
  on<K extends ReservedEvent>(event: K, listener: SubscriptionEvents[K]): () => void;
  /** Listens to an app event; `data` is typed by the subscription's event map. */
  on<K extends AppEvent<E>>(event: K, listener: (data: E[K], pub: Publication<E[K]>) => void): () => void;
  on(event: string, listener: AnyListener): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  off(event: string, listener: AnyListener): void {
    this.listeners.get(event)?.delete(listener);
  }

  /** Resolves once subscribed; rejects when the subscription fails or is unsubscribed first. */
  ready(): Promise<void> {
    if (this.current === 'subscribed') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const offState = this.on('state', (state) => {
        if (state === 'subscribed') {
          offState();
          offError();
          resolve();
        } else if (state === 'unsubscribed') {
          offState();
          offError();
          reject(new Error(`unsubscribed from ${this.topic} before it was subscribed`));
        }
      });
      const offError = this.on('error', (err) => {
        offState();
        offError();
        reject(err);
      });
    });
  }

  /** Publications kept by the hub for this topic (WebSocket only). */
  history(options: HistoryOptions = {}): Promise<HistoryReply> {
    return this.host.history(this.topic, options);
  }

  /** Who is subscribed to this topic now (WebSocket only; the namespace needs `presence`). */
  async presence(): Promise<Member[]> {
    return this.host.presence(this.topic);
  }

  /**
   * Releases this handle. `client.subscribe()` of a topic already subscribed
   * returns the same subscription; the hub is told once every handle was released.
   */
  unsubscribe(): void {
    if (this.current === 'unsubscribed' || this.current === 'failed') return;
    this.refs -= 1;
    if (this.refs > 0) return;
    this.buffer = [];
    this.setState('unsubscribed');
    this.host.release(this as unknown as Subscription<EventMap>);
  }

  // ---- driven by the client -------------------------------------------------

  /** @internal Another `subscribe()` of the same topic. */
  _retain(): void {
    this.refs += 1;
  }

  /** @internal Where to recover from on the next subscribe. */
  _since(): Position | undefined {
    return this.position;
  }

  /** @internal The connection went away; the next one subscribes again with `since`. */
  _connectionLost(): void {
    if (this.current !== 'subscribed' && this.current !== 'subscribing') return;
    this.buffer = [];
    this.setState('subscribing');
  }

  /** @internal A recovery started; live publications are held back until it is answered. */
  _resyncing(): void {
    if (this.current === 'subscribed') this.setState('subscribing');
  }

  /** @internal The hub answered a `subscribe` (or sent an SSE `subscribed` event). */
  _onSubscribed(reply: SubscribedReply, since: Position | undefined): void {
    if (this.current !== 'subscribing') return;
    if (since === undefined) {
      this.pos = { ...reply.position };
      this.seen.clear();
      this.confirm(undefined);
      return;
    }
    if (reply.recovered === false || reply.position.epoch !== since.epoch) {
      this.fruitlessResyncs = 0;
      this.pos = { ...reply.position };
      this.seen.clear();
      this.confirm(false);
      this.emit('reset', { position: { ...reply.position } });
      this.flush();
      return;
    }
    const pos = { epoch: reply.position.epoch, offset: since.offset };
    const missed = [...(reply.publications ?? [])].sort((a, b) => a.offset - b.offset);
    let delivered = false;
    this.pos = pos;
    for (const pub of missed) {
      if (pub.offset <= pos.offset) continue;
      if (pub.offset !== pos.offset + 1) break; // a hole in what the hub handed over
      pos.offset = pub.offset;
      delivered = true;
      this.deliver(pub);
    }
    if (delivered) this.fruitlessResyncs = 0;
    const complete = pos.offset >= reply.position.offset;
    this.confirm(true);
    if (!complete) {
      // The hub said "recovered" but did not hand everything over: ask again,
      // and after a few fruitless rounds say so instead of looping.
      this.fruitlessResyncs += 1;
      if (this.fruitlessResyncs >= MAX_FRUITLESS_RESYNCS) {
        this.fruitlessResyncs = 0;
        this.pos = { ...reply.position };
        this.emit('reset', { position: { ...reply.position } });
      } else {
        this.gap();
        return;
      }
    }
    this.flush();
  }

  /** @internal A live publication. */
  _onPub(pub: Publication): void {
    if (this.current === 'subscribing') {
      if (this.buffer.length < MAX_BUFFER) this.buffer.push(pub);
      return;
    }
    if (this.current !== 'subscribed' || !this.pos) return;
    if (pub.offset === this.pos.offset + 1) {
      this.pos.offset = pub.offset;
      this.fruitlessResyncs = 0;
      this.deliver(pub);
      return;
    }
    if (pub.offset > this.pos.offset) {
      this.buffer.push(pub);
      this.gap();
      return;
    }
    // offset <= position: a duplicate, unless it is not the publication the SDK
    // saw at that offset (or one it never saw): then the topic's epoch changed
    // and offsets restarted. A recovery with `since` settles it (`reset`).
    if (this.seen.get(pub.offset) !== pub.id) this.gap();
  }

  /** @internal */
  _onJoin(member: Member): void {
    this.emit('join', member);
  }

  /** @internal */
  _onLeave(member: Member): void {
    this.emit('leave', member);
  }

  /** @internal The hub refused this subscription for good. */
  _fail(err: HubbubError): void {
    this.buffer = [];
    this.setState('failed');
    this.emit('error', err);
  }

  // ---- internals ------------------------------------------------------------

  private confirm(recovered: boolean | undefined): void {
    this.setState('subscribed');
    this.emit('subscribed', { position: { ...(this.pos as Position) }, recovered });
  }

  private gap(): void {
    this.setState('subscribing');
    this.host.resync(this as unknown as Subscription<EventMap>);
  }

  private flush(): void {
    // Held publications at or behind the position were part of what the hub
    // handed over with the subscribe reply: plain duplicates.
    const at = this.pos?.offset ?? 0;
    const held = this.buffer.filter((p) => p.offset > at).sort((a, b) => a.offset - b.offset);
    this.buffer = [];
    for (const pub of held) {
      this._onPub(pub);
      if (this.current !== 'subscribed') {
        // A new gap: keep the rest for after the recovery.
        this.buffer.push(...held.slice(held.indexOf(pub) + 1));
        return;
      }
    }
  }

  private deliver(pub: Publication): void {
    this.seen.set(pub.offset, pub.id);
    if (this.seen.size > SEEN_IDS) {
      const oldest = this.seen.keys().next().value as number;
      this.seen.delete(oldest);
    }
    this.emit('publication', pub);
    if (!RESERVED.has(pub.event)) this.emitAny(pub.event, pub.data, pub);
  }

  private setState(state: SubscriptionState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit('state', state);
  }

  private emit<K extends ReservedEvent>(event: K, ...args: Parameters<SubscriptionEvents[K]>): void {
    this.emitAny(event, ...args);
  }

  private emitAny(event: string, ...args: unknown[]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
        if (typeof report === 'function') report(err);
        else console.error('hubbub: a listener threw', err);
      }
    }
  }
}
