/**
 * A handle on one topic subscription, typed by the topic's event map: the
 * app's listeners, `ready()`, history and presence. Every `subscribe()` call
 * gets a handle of its own; the handles of one topic share one {@link Feed}
 * (one subscription on the wire), which the hub is told to end when the last
 * handle is released.
 */
import type { HubbubError } from './errors.js';
import type { Feed, FeedListener, SubscriptionState } from './feed.js';
import type { HistoryReply, Member, Position, Publication } from './wire.js';

export type { SubscriptionState } from './feed.js';

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

export interface HistoryOptions {
  since?: Position;
  /** At most 1000 (the contract's maximum); 0 answers just the position. */
  limit?: number;
}

export interface SubscribeOptions {
  /**
   * Deliver the topic's newest publication still in history first (marked
   * `latest: true`), then live ones: for screens that show "the current value
   * of X". After lost publications (`reset`) the newest is delivered again.
   */
  latest?: boolean;
}

/** What a handle needs from its client besides its feed. */
export interface HandleHost {
  history(topic: string, options: HistoryOptions): Promise<HistoryReply>;
  presence(topic: string): Promise<Member[]>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyListener = (...args: any[]) => void;

export class Subscription<E extends EventMap = EventMap> {
  private released = false;
  private readonly listeners = new Map<string, Set<AnyListener>>();
  private readonly sink: FeedListener;

  /** @internal Created by `Hubbub.subscribe()`. */
  constructor(
    private readonly feed: Feed,
    private readonly host: HandleHost,
    options: SubscribeOptions = {},
  ) {
    this.sink = {
      publication: (pub) => {
        this.emit('publication', pub);
        if (!RESERVED.has(pub.event)) this.emit(pub.event, pub.data, pub);
      },
      subscribed: (info) => this.emit('subscribed', info),
      reset: (info) => this.emit('reset', info),
      join: (m) => this.emit('join', m),
      leave: (m) => this.emit('leave', m),
      error: (err) => this.emit('error', err),
      state: (state) => this.emit('state', state),
    };
    feed.attach(this.sink);
    const newest = options.latest && feed.state === 'subscribed' ? feed.newest : undefined;
    if (newest) {
      // A later `latest` handle of a live topic: the newest the feed delivered, once listeners are on.
      queueMicrotask(() => {
        if (!this.released && feed.newest === newest) this.sink.publication({ ...newest, latest: true });
      });
    }
  }

  get topic(): string {
    return this.feed.topic;
  }

  /** The position of the last publication delivered (or the hub's at subscribe time). */
  get position(): Position | undefined {
    return this.feed.position;
  }

  get state(): SubscriptionState {
    return this.released ? 'unsubscribed' : this.feed.state;
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
    if (this.state === 'subscribed') return Promise.resolve();
    if (this.state === 'unsubscribed') {
      return Promise.reject(new Error(`unsubscribed from ${this.topic} before it was subscribed`));
    }
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

  /** Publications kept by the hub for this topic (over the REST API when on SSE). */
  history(options: HistoryOptions = {}): Promise<HistoryReply> {
    return this.host.history(this.topic, options);
  }

  /** Who is subscribed to this topic now (the namespace needs `presence`; over REST when on SSE). */
  async presence(): Promise<Member[]> {
    return this.host.presence(this.topic);
  }

  /**
   * Releases this handle: its listeners are not called any more. The hub is
   * told once every handle of the topic was released.
   */
  unsubscribe(): void {
    if (this.released) return;
    this.released = true;
    const wasLive = this.feed.state === 'subscribed' || this.feed.state === 'subscribing';
    this.feed.detach(this.sink);
    if (wasLive) this.emit('state', 'unsubscribed');
    this.listeners.clear();
  }

  private emit(event: string, ...args: unknown[]): void {
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
