/**
 * One topic's stream on the connection, shared by every handle of that topic:
 * its position, de-duplication by offset, gap detection and the recovery
 * outcome (`reset`). The client owns the wire; a feed asks it for things
 * through {@link FeedHost} and tells its handles through {@link FeedListener}.
 */
import type { HubbubError } from './errors.js';
import type { Member, Position, Publication, SubscribedReply } from './wire.js';

export type SubscriptionState =
  /** Waiting for the hub to confirm (first subscribe, after a reconnect, while recovering a gap). */
  | 'subscribing'
  | 'subscribed'
  /** `unsubscribe()` was called. */
  | 'unsubscribed'
  /** The hub refused the subscription for good; see the `error` event. */
  | 'failed';

/** What a feed needs from its client. */
export interface FeedHost {
  /** A gap (or a possible new epoch): subscribe again with `since`. */
  resync(feed: Feed): void;
  /** The last handle was released. */
  release(feed: Feed): void;
}

/** What a feed tells each of its handles. */
export interface FeedListener {
  publication(pub: Publication): void;
  subscribed(info: { position: Position; recovered: boolean | undefined }): void;
  reset(info: { position: Position }): void;
  join(member: Member): void;
  leave(member: Member): void;
  error(err: HubbubError): void;
  state(state: SubscriptionState): void;
}

/** Live publications held back while (re)subscribing; beyond this, recovery by `since` covers them. */
const MAX_BUFFER = 1000;
/** Recoveries in a row that did not close a gap before the SDK gives up and emits `reset`. */
const MAX_FRUITLESS_RESYNCS = 3;
/** How many delivered publication ids are remembered for duplicate checks. */
const SEEN_IDS = 256;

export class Feed {
  private pos: Position | undefined;
  private current: SubscriptionState = 'subscribing';
  private buffer: Publication[] = [];
  private fruitlessResyncs = 0;
  /** Ids of the last publications delivered, by offset, to tell a duplicate from a new epoch. */
  private readonly seen = new Map<number, string>();
  private readonly listeners = new Set<FeedListener>();
  /** The newest publication delivered (what a late `latest` handle gets first). */
  private last: Publication | undefined;
  /** A newest publication read ahead of the subscribe (SSE `latest`), delivered on confirm. */
  private primed: Publication | undefined;
  /** Failed subscribe attempts in a row (`unavailable`), for the retry delay. */
  retries = 0;

  constructor(
    readonly topic: string,
    private readonly host: FeedHost,
    /** Subscribe with `latest: true` while there is no position. */
    readonly latest: boolean,
    since?: Position,
  ) {
    if (since) this.pos = { ...since };
  }

  get position(): Position | undefined {
    return this.pos ? { ...this.pos } : undefined;
  }

  get state(): SubscriptionState {
    return this.current;
  }

  /** The newest publication delivered, if it is still the topic's newest the feed knows of. */
  get newest(): Publication | undefined {
    return this.last && this.pos && this.last.offset === this.pos.offset ? this.last : undefined;
  }

  attach(listener: FeedListener): void {
    this.listeners.add(listener);
  }

  /** Removes a handle; the hub is told when it was the last one. */
  detach(listener: FeedListener): void {
    if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
    if (this.current === 'unsubscribed' || this.current === 'failed') return;
    this.buffer = [];
    this.setState('unsubscribed');
    this.host.release(this);
  }

  /** Where to recover from on the next subscribe. */
  since(): Position | undefined {
    return this.position;
  }

  /** A `latest` feed with no position yet asks the hub for the newest publication. */
  wantsLatest(): boolean {
    return this.latest && this.pos === undefined;
  }

  /** SSE `latest`: the newest publication and the position, read over REST before the stream opens. */
  prime(newest: Publication | undefined, position: Position): void {
    if (this.pos !== undefined) return;
    this.pos = { ...position };
    this.primed = newest && newest.offset <= position.offset ? newest : undefined;
  }

  /** The connection went away; the next one subscribes again with `since`. */
  connectionLost(): void {
    if (this.current !== 'subscribed' && this.current !== 'subscribing') return;
    this.buffer = [];
    this.setState('subscribing');
  }

  /** A recovery started; live publications are held back until it is answered. */
  resyncing(): void {
    if (this.current === 'subscribed') this.setState('subscribing');
  }

  /** The hub answered a `subscribe` (or sent an SSE `subscribed` event). */
  onSubscribed(reply: SubscribedReply, since: Position | undefined): void {
    if (this.current !== 'subscribing') return;
    this.retries = 0;
    if (since === undefined) {
      this.pos = { ...reply.position };
      this.seen.clear();
      // With `latest`: the newest publication still in history, at or below the position.
      const newest = (reply.publications ?? []).filter((p) => p.offset <= reply.position.offset).at(-1);
      if (newest) this.deliver({ ...newest, latest: true });
      this.confirm(undefined);
      this.flush();
      return;
    }
    if (reply.recovered === false || reply.position.epoch !== since.epoch) {
      this.fruitlessResyncs = 0;
      this.primed = undefined;
      this.seen.clear();
      if (this.latest) {
        // A latest-value subscription wants the newest value, not a reload: ask for it again.
        this.pos = undefined;
        this.emit((l) => l.reset({ position: { ...reply.position } }));
        this.gap();
        return;
      }
      this.pos = { ...reply.position };
      this.confirm(false);
      this.emit((l) => l.reset({ position: { ...reply.position } }));
      this.flush();
      return;
    }
    const pos = { epoch: reply.position.epoch, offset: since.offset };
    // The missed publications: in the reply (WebSocket), or sent as `pub`
    // events ahead of it and held (SSE, so that plain EventSource pages see them).
    const missed = [...(reply.publications ?? []), ...this.buffer].sort((a, b) => a.offset - b.offset);
    let delivered = false;
    let i = 0;
    this.pos = pos;
    const primed = this.primed;
    this.primed = undefined;
    if (primed) this.deliver({ ...primed, latest: true });
    for (; i < missed.length; i++) {
      const pub = missed[i] as Publication;
      if (pub.offset <= pos.offset) continue;
      if (pub.offset !== pos.offset + 1) break; // a hole in what the hub handed over
      pos.offset = pub.offset;
      delivered = true;
      this.deliver(pub);
    }
    this.buffer = missed.slice(i).filter((p) => p.offset > pos.offset);
    if (delivered) this.fruitlessResyncs = 0;
    this.confirm(true);
    if (pos.offset < reply.position.offset) {
      // The hub said "recovered" but did not hand everything over: ask again,
      // and after a few fruitless rounds say so instead of looping.
      this.fruitlessResyncs += 1;
      if (this.fruitlessResyncs < MAX_FRUITLESS_RESYNCS) {
        this.gap();
        return;
      }
      this.fruitlessResyncs = 0;
      this.pos = { ...reply.position };
      this.emit((l) => l.reset({ position: { ...reply.position } }));
    }
    this.flush();
  }

  /** A live publication. */
  onPub(pub: Publication): void {
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

  onJoin(member: Member): void {
    this.emit((l) => l.join(member));
  }

  onLeave(member: Member): void {
    this.emit((l) => l.leave(member));
  }

  /** The hub refused this subscription for good. */
  fail(err: HubbubError): void {
    this.buffer = [];
    this.setState('failed');
    this.emit((l) => l.error(err));
  }

  // ---- internals ------------------------------------------------------------

  private confirm(recovered: boolean | undefined): void {
    this.setState('subscribed');
    const position = { ...(this.pos as Position) };
    this.emit((l) => l.subscribed({ position, recovered }));
  }

  private gap(): void {
    this.setState('subscribing');
    this.host.resync(this);
  }

  private flush(): void {
    // Held publications at or behind the position were part of what the hub
    // handed over with the subscribe reply: plain duplicates.
    const at = this.pos?.offset ?? 0;
    const held = this.buffer.filter((p) => p.offset > at).sort((a, b) => a.offset - b.offset);
    this.buffer = [];
    for (const [i, pub] of held.entries()) {
      this.onPub(pub);
      if (this.current !== 'subscribed') {
        // A new gap: keep the rest for after the recovery.
        this.buffer.push(...held.slice(i + 1));
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
    this.last = pub;
    this.emit((l) => l.publication(pub));
  }

  private setState(state: SubscriptionState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit((l) => l.state(state));
  }

  private emit(call: (l: FeedListener) => void): void {
    for (const l of [...this.listeners]) call(l);
  }
}
