/**
 * The subscriptions on the wire: one {@link Feed} per topic, the handles
 * given out for it, `subscribe` commands (with `since` or `latest`), their
 * retries with a growing delay, gap recovery, release, and the routing of
 * `pub`, `join`, `leave` and SSE `subscribed` frames to the feed of their topic.
 */
import { PERMANENT_SUBSCRIBE_ERRORS } from './close-codes.js';
import { HubbubError } from './errors.js';
import { Feed, type FeedHost } from './feed.js';
import { Subscription, type EventMap, type HandleHost, type SubscribeOptions } from './subscription.js';
import type { TransportKind } from './transport/transport.js';
import type { Command, Position, Replies, ServerFrame } from './wire.js';

/** What the subscriptions need from the client. */
export interface TopicsHost extends HandleHost {
  /** The connection generation: replies to an older one are ignored. */
  readonly gen: number;
  /** Connected, and on which transport. */
  readonly live: TransportKind | undefined;
  call<K extends Command['type']>(command: Extract<Command, { type: K }>): Promise<Replies[K]>;
  /** The SSE stream must be reopened (its topic set or a position changed). */
  queueSseReopen(): void;
  reportError(err: HubbubError): void;
  /** The delay before retry number `attempt`. */
  retryDelay(attempt: number): number;
}

/** Internal subscribe options (`since` is what `sync()` uses to start a new feed). */
export interface FeedOptions extends SubscribeOptions {
  since?: Position;
}

export class Topics implements FeedHost {
  readonly feeds = new Map<string, Feed>();

  constructor(private readonly host: TopicsHost) {}

  /** A new handle on `topic`, creating (and subscribing) its feed when there is none. */
  subscribe<E extends EventMap>(topic: string, options: FeedOptions = {}): Subscription<E> {
    let feed = this.feeds.get(topic);
    if (!feed) {
      feed = new Feed(topic, this, options.latest === true, options.since);
      this.feeds.set(topic, feed);
      if (this.host.live === 'sse') this.host.queueSseReopen();
      else if (this.host.live === 'websocket') this.send(feed, this.host.gen);
    }
    return new Subscription<E>(feed, this.host, options);
  }

  /** A new WebSocket connection: every feed subscribes again (with `since` when it has a position). */
  resubscribeAll(gen: number): void {
    for (const feed of this.feeds.values()) {
      feed.connectionLost();
      this.send(feed, gen);
    }
  }

  connectionLost(): void {
    for (const feed of this.feeds.values()) feed.connectionLost();
  }

  /** Every feed holds its publications back (the SSE stream is being replaced). */
  resyncingAll(): void {
    for (const feed of this.feeds.values()) feed.resyncing();
  }

  /** Routes a push to its topic's feed; false when the frame is not one. */
  route(frame: ServerFrame, sseSince: (topic: string) => Position | undefined): boolean {
    switch (frame.type) {
      case 'pub': {
        const { topic, offset, event, data, ts, id } = frame;
        this.feeds.get(topic)?.onPub({ topic, offset, event, data, ts, id });
        return true;
      }
      case 'join':
        this.feeds.get(frame.topic)?.onJoin(frame.member);
        return true;
      case 'leave':
        this.feeds.get(frame.topic)?.onLeave(frame.member);
        return true;
      case 'unsubscribed':
        // Unsolicited (replies carry an `id` and are settled before this): the
        // hub ended the subscription, e.g. a `refresh` to a token that no
        // longer allows the topic. It is not retried.
        if (!('code' in frame)) return false;
        this.fail(frame.topic, new HubbubError(frame.code, frame.message ?? `the hub ended ${frame.topic}`));
        return true;
      case 'subscribed':
        // SSE: the stream confirms each topic with an unsolicited `subscribed`.
        this.feeds.get(frame.topic)?.onSubscribed(frame, sseSince(frame.topic));
        return true;
      default:
        return false;
    }
  }

  /** Fails a feed for good (the hub refused its topic). */
  fail(topic: string, err: HubbubError): void {
    const feed = this.feeds.get(topic);
    if (!feed) return;
    this.feeds.delete(topic);
    feed.fail(err);
  }

  // ---- FeedHost ----------------------------------------------------------------

  resync(feed: Feed): void {
    feed.resyncing();
    const live = this.host.live;
    if (live === undefined) return; // the next connection subscribes with `since` anyway
    if (live === 'sse') {
      this.host.queueSseReopen();
      return;
    }
    const gen = this.host.gen;
    const again = (): void => {
      if (gen === this.host.gen && this.feeds.get(feed.topic) === feed) this.send(feed, gen);
    };
    this.host.call({ type: 'unsubscribe', topic: feed.topic }).then(again, again);
  }

  release(feed: Feed): void {
    if (this.feeds.get(feed.topic) !== feed) return;
    this.feeds.delete(feed.topic);
    const live = this.host.live;
    if (live === 'sse') this.host.queueSseReopen();
    else if (live === 'websocket') this.host.call({ type: 'unsubscribe', topic: feed.topic }).catch(() => {});
  }

  // ---- the wire ------------------------------------------------------------------

  private send(feed: Feed, gen: number): void {
    const since = feed.since();
    const latest = feed.wantsLatest();
    const current = (): boolean => gen === this.host.gen && this.feeds.get(feed.topic) === feed;
    this.host
      .call({ type: 'subscribe', topic: feed.topic, ...(since ? { since } : {}), ...(latest ? { latest } : {}) })
      .then(
        (reply) => {
          if (current()) feed.onSubscribed(reply, since);
        },
        (err: HubbubError) => {
          if (!current()) return;
          if (PERMANENT_SUBSCRIBE_ERRORS.has(err.code)) {
            this.fail(feed.topic, err);
          } else if (err.code === 'already_subscribed') {
            this.resync(feed);
          } else {
            // `unavailable` (a broker outage), a timeout: retry, later each time.
            this.host.reportError(err);
            setTimeout(() => {
              if (current()) this.send(feed, gen);
            }, this.host.retryDelay(feed.retries++));
          }
        },
      );
  }
}
