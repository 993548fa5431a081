/**
 * The client, {@link Hubbub}: what an app calls. It composes the parts, each
 * in its own module: the connection and its state machine (connection.ts),
 * the subscriptions on the wire (topics.ts), the SSE stream's set-up
 * (sse-streams.ts), the REST reads on SSE (rest.ts) and the load-then-stream
 * handoff (sync.ts).
 */
import { backoffDelay } from './backoff.js';
import { loadCodec } from './codec.js';
import { Connection, type ClientEvents, type ConnectionState } from './connection.js';
import { Emitter } from './emitter.js';
import { HubbubError } from './errors.js';
import type { SubscriptionState } from './feed.js';
import { alwaysOnline, defaultNetworkMonitor } from './network.js';
import { resolveOptions, type HubbubOptions, type ResolvedOptions } from './options.js';
import { RestReads } from './rest.js';
import { SseStreams } from './sse-streams.js';
import type { EventMap, HistoryOptions, Subscription, SubscribeOptions } from './subscription.js';
import { Synced, type SyncOptions } from './sync.js';
import { TokenSource } from './token.js';
import { Topics } from './topics.js';
import type { FetchLike } from './transport/sse.js';
import type { TransportKind } from './transport/transport.js';
import type { WebSocketConstructor } from './transport/websocket.js';
import type { Command, HistoryReply, Member, Position, Replies } from './wire.js';

export type { ClientEvents, ConnectionState, DisconnectInfo } from './connection.js';

/** What `getSubscription()` reports about a topic's subscription. */
export interface SubscriptionInfo {
  topic: string;
  state: SubscriptionState;
  position: Position | undefined;
}

export class Hubbub extends Emitter<ClientEvents> {
  private readonly opts: ResolvedOptions;
  private readonly tokens: TokenSource;
  private readonly rest: RestReads;
  private readonly topics: Topics;
  private readonly conn: Connection;

  constructor(options: HubbubOptions) {
    super();
    this.opts = resolveOptions(options);
    const codec = loadCodec(this.opts.protocol);
    codec.catch(() => {}); // reported when a connection needs it
    const fetchImpl: FetchLike | undefined =
      options.fetch ?? (typeof fetch === 'function' ? fetch.bind(globalThis) : undefined);
    this.tokens = new TokenSource(options.getToken, this.opts.refreshMarginMs, this.opts.connectTimeoutMs);
    this.rest = new RestReads(this.opts.apiUrl, fetchImpl, this.opts.requestTimeoutMs);
    const conn = (): Connection => this.conn;
    this.topics = new Topics({
      get gen() {
        return conn().gen;
      },
      get live() {
        return conn().live;
      },
      call: (command) => conn().call(command),
      queueSseReopen: () => conn().queueSseReopen(),
      reportError: (err) => this.emit('error', err),
      retryDelay: (attempt) => backoffDelay(attempt, this.opts.backoff, this.opts.random),
      history: (topic, o) => this.history(topic, o),
      presence: (topic) => this.presence(topic),
    });
    const sse = new SseStreams(this.opts.sseUrl, this.topics.feeds, this.rest, fetchImpl, (topic, err) =>
      this.topics.fail(topic, err),
    );
    this.conn = new Connection({
      opts: this.opts,
      codec,
      WebSocketImpl: options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket,
      network: options.network === false ? alwaysOnline : (options.network ?? defaultNetworkMonitor()),
      tokens: this.tokens,
      topics: this.topics,
      sse,
      emit: (event, ...args) => this.emit(event, ...args),
    });
  }

  get state(): ConnectionState {
    return this.conn.state;
  }

  /** The transport in use (or being opened), if any. */
  get transportKind(): TransportKind | undefined {
    return this.conn.transportKind;
  }

  /** Starts connecting; reconnects by itself until `disconnect()` or a terminal close. */
  connect(): void {
    this.conn.connect();
  }

  /** Closes the connection and stops reconnecting. Subscriptions are kept for a later `connect()`. */
  disconnect(): void {
    this.conn.disconnect();
  }

  /** Resolves when connected; rejects on timeout or when the client stops. */
  ready(timeoutMs = this.opts.requestTimeoutMs): Promise<void> {
    return this.conn.ready(timeoutMs);
  }

  /**
   * Subscribes to a topic, typed by its event map. Every call returns a handle
   * of its own (with its own listeners); the handles of one topic share one
   * subscription on the wire, ended once every handle called `unsubscribe()`.
   * With `latest: true` the topic's newest publication comes first.
   */
  subscribe<E extends EventMap = EventMap>(topic: string, options: SubscribeOptions = {}): Subscription<E> {
    return this.topics.subscribe<E>(topic, options);
  }

  /**
   * Keeps an application state in step with a topic: reads the topic's
   * position, calls `load()`, then applies every publication after that
   * position in order; loads again (with backoff) when publications were lost.
   * Like `subscribe()`, it may come before `connect()`: its reads wait for the
   * connection. See {@link Synced}.
   */
  sync<E extends EventMap, S>(topic: string, options: SyncOptions<E, S>): Synced<E, S> {
    return new Synced<E, S>(
      {
        subscribe: (o) => this.topics.subscribe<E>(topic, o),
        // Like subscribe(), it may come before connect(): its reads wait for the connection.
        position: async () => {
          await this.connection();
          return (await this.history(topic, { limit: 0 })).position;
        },
        catchUp: async (since, limit) => {
          await this.connection();
          return this.history(topic, { since, limit });
        },
        backoff: (attempt) => backoffDelay(attempt, this.opts.backoff, this.opts.random),
      },
      topic,
      options,
    );
  }

  /** The state of a topic's subscription, if there is one. */
  getSubscription(topic: string): SubscriptionInfo | undefined {
    const feed = this.topics.feeds.get(topic);
    return feed && { topic, state: feed.state, position: feed.position };
  }

  /** Publishes over the socket (WebSocket only; the namespace needs `client_publish`). */
  async publish(
    topic: string,
    event: string,
    data: unknown,
    options: { idempotencyKey?: string; timeoutMs?: number } = {},
  ): Promise<{ position: Position }> {
    const reply = await this.request(
      {
        type: 'publish',
        topic,
        event,
        data,
        ...(options.idempotencyKey ? { idempotency_key: options.idempotencyKey } : {}),
      },
      options.timeoutMs,
    );
    return { position: reply.position };
  }

  /**
   * The publications the hub keeps for a topic (`limit: 0`: just its position).
   * Over the WebSocket, or the REST API with the same token on SSE.
   */
  async history(topic: string, options: HistoryOptions = {}): Promise<HistoryReply> {
    if (await this.onSse()) return this.rest.history(await this.tokens.current(), topic, options);
    const reply = await this.request({
      type: 'history',
      topic,
      ...(options.since ? { since: options.since } : {}),
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
    });
    return { type: 'history', publications: reply.publications ?? [], position: reply.position };
  }

  /** Who is subscribed to a topic now (over the REST API with the same token on SSE). */
  async presence(topic: string): Promise<Member[]> {
    if (await this.onSse()) return this.rest.presence(await this.tokens.current(), topic);
    const reply = await this.request({ type: 'presence', topic });
    return reply.members ?? [];
  }

  /**
   * Sends a command and resolves with its reply. Waits for a connection first;
   * `timeoutMs` (default `requestTimeoutMs`) covers the wait and the reply.
   */
  async request<K extends Command['type']>(
    command: Extract<Command, { type: K }>,
    timeoutMs: number = this.opts.requestTimeoutMs,
  ): Promise<Replies[K]> {
    const deadline = Date.now() + timeoutMs;
    if (this.state !== 'connected') await this.ready(timeoutMs);
    if (this.transportKind !== 'websocket') {
      throw new HubbubError('unsupported', `\`${command.type}\` needs the WebSocket transport; SSE is receive-only`);
    }
    return this.conn.call(command, Math.max(1, deadline - Date.now()));
  }

  /** Resolves once connected, however long that takes (no deadline: `connect()` may come later). */
  private connection(): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    return new Promise((resolve) => {
      const off = this.on('state', (state) => {
        if (state !== 'connected') return;
        off();
        resolve();
      });
    });
  }

  /** Whether the connection (once there is one) is an SSE stream. */
  private async onSse(): Promise<boolean> {
    if (this.state !== 'connected') await this.ready();
    return this.transportKind === 'sse';
  }
}
