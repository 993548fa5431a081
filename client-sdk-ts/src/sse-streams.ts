/**
 * The SSE side of the client: one `/sse` stream for every subscribed topic,
 * with the positions it was opened with. Before opening, `latest` topics
 * without a position read their newest publication over REST; when the hub
 * refuses the stream for a topic (forbidden, invalid, unknown namespace), each
 * topic is checked over REST and only the refused ones fail, as a WebSocket
 * `subscribe` would, while the stream goes on with the others.
 */
import { LocalClose, PERMANENT_SUBSCRIBE_ERRORS } from './close-codes.js';
import { HubbubError } from './errors.js';
import type { Feed } from './feed.js';
import type { RestReads } from './rest.js';
import { openSse, type FetchLike } from './transport/sse.js';
import type { Transport, TransportHandlers } from './transport/transport.js';
import type { Position } from './wire.js';

/** Refusals of a whole stream that name one of its topics. */
const PER_TOPIC_REFUSALS = new Set(['forbidden', 'invalid_topic', 'unknown_namespace']);

export class SseStreams {
  /** The `since` each topic was requested with on the current stream. */
  private sinceByTopic = new Map<string, Position | undefined>();

  constructor(
    private readonly url: string,
    private readonly feeds: Map<string, Feed>,
    private readonly rest: RestReads,
    private readonly fetchImpl: FetchLike | undefined,
    /** A topic the hub refused: its subscription fails. */
    private readonly refuse: (topic: string, err: HubbubError) => void,
  ) {}

  since(topic: string): Position | undefined {
    return this.sinceByTopic.get(topic);
  }

  /** Opens a stream for every subscribed topic (none: no stream until the first subscription). */
  open(token: string, handlers: TransportHandlers): Transport {
    let closed = false;
    let inner: Transport | undefined;
    const start = async (): Promise<void> => {
      await this.primeLatest(token);
      if (closed) return;
      const topics = [...this.feeds.keys()];
      this.sinceByTopic = new Map(topics.map((t) => [t, this.feeds.get(t)?.since()]));
      if (topics.length === 0) {
        inner = undefined;
        queueMicrotask(() => {
          if (!closed) handlers.onOpen();
        });
        return;
      }
      if (!this.fetchImpl) {
        handlers.onClose({ code: LocalClose.transport.code, reason: 'no fetch implementation', opened: false });
        return;
      }
      const since = new Map<string, Position>();
      for (const [t, p] of this.sinceByTopic) if (p) since.set(t, p);
      inner = openSse({ url: this.url, token, topics, since }, this.fetchImpl, {
        ...handlers,
        onClose: (close) => {
          if (closed) return;
          void this.dropRefused(close.opened ? undefined : close.reason, token, topics).then((dropped) => {
            if (closed) return;
            if (dropped) void start();
            else handlers.onClose(close);
          });
        },
      });
    };
    void start();
    return {
      kind: 'sse',
      send() {
        throw new HubbubError('unsupported', 'the SSE transport is receive-only');
      },
      close() {
        closed = true;
        inner?.close();
      },
    };
  }

  /** SSE `latest`: the newest publication and the position, read before the stream opens. */
  private async primeLatest(token: string): Promise<void> {
    const want = [...this.feeds.values()].filter((f) => f.wantsLatest());
    await Promise.all(
      want.map(async (feed) => {
        try {
          const page = await this.rest.history(token, feed.topic, { limit: 1 });
          feed.prime(page.publications.at(-1), page.position);
        } catch {
          // The stream subscribes without it; its own refusal (if any) is handled there.
        }
      }),
    );
  }

  /** After a per-topic refusal: fails the topics the REST API refuses too; true when any was. */
  private async dropRefused(reason: string | undefined, token: string, topics: string[]): Promise<boolean> {
    if (reason === undefined || !PER_TOPIC_REFUSALS.has(reason)) return false;
    const checks = await Promise.all(
      topics.map(async (topic) => {
        try {
          await this.rest.history(token, topic, { limit: 0 });
          return undefined;
        } catch (err) {
          return err instanceof HubbubError && PERMANENT_SUBSCRIBE_ERRORS.has(err.code) ? { topic, err } : undefined;
        }
      }),
    );
    let dropped = false;
    for (const c of checks) {
      if (!c) continue;
      dropped = true;
      this.refuse(c.topic, c.err);
    }
    return dropped;
  }
}
