/**
 * The client: one connection to the hub at a time and its state machine
 * (`disconnected` → `connecting` → `connected`): reconnects by close-code
 * class, token refresh, liveness, commands with deadlines. Subscriptions on
 * the wire are {@link Topics}' (topics.ts), the SSE stream's set-up is
 * {@link SseStreams}' (sse-streams.ts), REST reads on SSE are rest.ts's, and
 * the load-then-stream handoff is sync.ts's.
 */
import { backoffDelay } from './backoff.js';
import { CONNECT_ERROR_CLOSE, closePolicy, LocalClose, TOKEN_EXPIRED } from './close-codes.js';
import { loadCodec, type Codec } from './codec.js';
import { Emitter } from './emitter.js';
import { HubbubError } from './errors.js';
import { Liveness } from './liveness.js';
import { alwaysOnline, defaultNetworkMonitor, type NetworkMonitor } from './network.js';
import { resolveOptions, type HubbubOptions, type ResolvedOptions } from './options.js';
import { Requests } from './requests.js';
import { RestReads } from './rest.js';
import { SseStreams } from './sse-streams.js';
import type { SubscriptionState } from './feed.js';
import type { EventMap, HistoryOptions, Subscription, SubscribeOptions } from './subscription.js';
import { Synced, type SyncOptions } from './sync.js';
import { later } from './timers.js';
import { TokenSource } from './token.js';
import { Topics } from './topics.js';
import type { FetchLike } from './transport/sse.js';
import type { Transport, TransportClose, TransportKind } from './transport/transport.js';
import { openWebSocket, type WebSocketConstructor } from './transport/websocket.js';
import type { Command, ConnectedReply, HistoryReply, Member, Position, Replies, ServerFrame } from './wire.js';

export type ConnectionState = 'disconnected' | 'connecting' | 'connected';

export interface DisconnectInfo {
  /** The close code: the hub's (4000–4299) or the SDK's (1000 client, 1006 transport, 3008 timeout, 3401 token). */
  code: number;
  reason: string;
  /** Whether the client will reconnect by itself. */
  reconnect: boolean;
  /** When it reconnects: in how many ms (absent when it waits for the network to come back). */
  delayMs?: number;
}

export interface ClientEvents {
  state: (state: ConnectionState) => void;
  connecting: (info: { attempt: number; transport: TransportKind }) => void;
  connected: (info: { transport: TransportKind; clientId?: string; node?: string }) => void;
  disconnected: (info: DisconnectInfo) => void;
  /** Problems the client recovers from by itself (token fetch, refresh, a retried subscribe). */
  error: (err: HubbubError) => void;
}

/** How long to wait for the hub's own close after it refused `connect`. */
const CONNECT_ERROR_GRACE_MS = 1000;

/** What `getSubscription()` reports about a topic's subscription. */
export interface SubscriptionInfo {
  topic: string;
  state: SubscriptionState;
  position: Position | undefined;
}

export class Hubbub extends Emitter<ClientEvents> {
  private readonly opts: ResolvedOptions;
  private readonly codec: Promise<Codec>;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly network: NetworkMonitor;
  private readonly tokens: TokenSource;
  private readonly requests = new Requests();
  private readonly liveness: Liveness;
  private readonly rest: RestReads;
  private readonly topics: Topics;
  private readonly sse: SseStreams;

  private current: ConnectionState = 'disconnected';
  private stopped = true;
  /** Bumped for every transport; callbacks of an older one are ignored. */
  private gen = 0;
  private transport: Transport | undefined;
  private transportIndex = 0;
  private opened = false;
  /** Failed attempts since the last `connected`. */
  private attempt = 0;
  private connectError: HubbubError | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private cancelRefresh: (() => void) | undefined;
  private refreshFailures = 0;
  private waitingForNetwork = false;
  private unwatchNetwork: (() => void) | undefined;
  private readonly waiters = new Set<{ resolve(): void; reject(err: HubbubError): void }>();
  private sseReopenQueued = false;

  constructor(options: HubbubOptions) {
    super();
    this.opts = resolveOptions(options);
    this.codec = loadCodec(this.opts.protocol);
    this.codec.catch(() => {}); // reported when a connection needs it
    this.WebSocketImpl =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const fetchImpl: FetchLike | undefined =
      options.fetch ?? (typeof fetch === 'function' ? fetch.bind(globalThis) : undefined);
    this.network = options.network === false ? alwaysOnline : (options.network ?? defaultNetworkMonitor());
    this.tokens = new TokenSource(options.getToken, this.opts.refreshMarginMs, this.opts.connectTimeoutMs);
    this.liveness = new Liveness(
      () => this.ping(),
      () => this.lost(this.gen, { ...LocalClose.timeout, opened: true }),
    );
    this.rest = new RestReads(this.opts.apiUrl, fetchImpl, this.opts.requestTimeoutMs);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const client = this;
    this.topics = new Topics({
      get gen() {
        return client.gen;
      },
      get live() {
        return client.current === 'connected' ? client.transportKind : undefined;
      },
      call: (command) => this.call(command),
      queueSseReopen: () => this.queueSseReopen(),
      reportError: (err) => this.emit('error', err),
      retryDelay: (attempt) => backoffDelay(attempt, this.opts.backoff, this.opts.random),
      history: (topic, o) => this.history(topic, o),
      presence: (topic) => this.presence(topic),
    });
    this.sse = new SseStreams(this.opts.sseUrl, this.topics.feeds, this.rest, fetchImpl, (topic, err) =>
      this.topics.fail(topic, err),
    );
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** The transport in use (or being opened), if any. */
  get transportKind(): TransportKind | undefined {
    return this.stopped ? undefined : this.opts.transports[this.transportIndex];
  }

  /** Starts connecting; reconnects by itself until `disconnect()` or a terminal close. */
  connect(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.transportIndex = 0;
    this.unwatchNetwork = this.network.watch((online) => this.onNetwork(online));
    this.open();
  }

  /** Closes the connection and stops reconnecting. Subscriptions are kept for a later `connect()`. */
  disconnect(): void {
    if (this.stopped) return;
    this.teardown();
    this.stop({ ...LocalClose.client }, 'disconnect() was called');
  }

  /** Resolves when connected; rejects on timeout or when the client stops. */
  ready(timeoutMs = this.opts.requestTimeoutMs): Promise<void> {
    if (this.current === 'connected') return Promise.resolve();
    if (this.stopped) return Promise.reject(new HubbubError('closed', 'the client is not connecting; call connect()'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
        reject: (err: HubbubError) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          reject(err);
        },
      };
      const timer = setTimeout(
        () => waiter.reject(new HubbubError('timeout', `not connected within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.add(waiter);
    });
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
   * See {@link Synced}.
   */
  sync<E extends EventMap, S>(topic: string, options: SyncOptions<E, S>): Synced<E, S> {
    return new Synced<E, S>(
      {
        subscribe: (o) => this.topics.subscribe<E>(topic, o),
        position: async () => (await this.history(topic, { limit: 0 })).position,
        catchUp: (since, limit) => this.history(topic, { since, limit }),
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
    if (this.current !== 'connected') await this.ready(timeoutMs);
    if (this.transport?.kind !== 'websocket') {
      throw new HubbubError('unsupported', `\`${command.type}\` needs the WebSocket transport; SSE is receive-only`);
    }
    return this.call(command, Math.max(1, deadline - Date.now()));
  }

  /** Whether the connection (once there is one) is an SSE stream. */
  private async onSse(): Promise<boolean> {
    if (this.current !== 'connected') await this.ready();
    return this.transportKind === 'sse';
  }

  // ---- connection lifecycle ---------------------------------------------------

  private open(): void {
    this.clearReconnect();
    if (this.stopped) return;
    if (!this.network.isOnline()) {
      this.waitingForNetwork = true;
      return;
    }
    const gen = ++this.gen;
    const kind = this.opts.transports[this.transportIndex] as TransportKind;
    this.opened = false;
    this.connectError = undefined;
    this.setState('connecting');
    this.emit('connecting', { attempt: this.attempt, transport: kind });
    this.tokens.current().then(
      async (token) => {
        const codec = kind === 'websocket' ? await this.codec : undefined;
        if (gen !== this.gen) return;
        this.armConnectTimer(gen, false);
        if (codec) this.openWebSocket(gen, token, codec);
        else this.openSseStream(gen, token);
      },
      (err: unknown) => {
        if (gen !== this.gen) return;
        this.emit('error', new HubbubError('token_unavailable', `getToken() failed: ${String(err)}`, { cause: err }));
        this.lost(gen, { ...LocalClose.token, opened: false });
      },
    ).catch((err: unknown) => {
      // The MessagePack codec could not be loaded: no WebSocket on this protocol.
      if (gen !== this.gen) return;
      this.emit('error', new HubbubError('unsupported', `cannot load the codec: ${String(err)}`, { cause: err }));
      this.lost(gen, { code: LocalClose.transport.code, reason: 'codec_unavailable', opened: false });
    });
  }

  private armConnectTimer(gen: number, opened: boolean): void {
    this.clearConnectTimer();
    this.connectTimer = setTimeout(
      () => this.lost(gen, { ...LocalClose.timeout, opened: opened || this.opened }),
      this.opts.connectTimeoutMs,
    );
  }

  private openWebSocket(gen: number, token: string, codec: Codec): void {
    if (!this.WebSocketImpl) {
      this.emit('error', new HubbubError('unsupported', 'no global WebSocket: pass `WebSocket` (e.g. the `ws` package)'));
      this.lost(gen, { code: LocalClose.transport.code, reason: 'no WebSocket implementation', opened: false });
      return;
    }
    this.transport = openWebSocket(this.opts.url, codec, this.WebSocketImpl, {
      onOpen: () => {
        if (gen !== this.gen) return;
        this.opened = true;
        this.call({ type: 'connect', token }, this.opts.connectTimeoutMs).then(
          (reply) => this.onConnected(gen, reply),
          (err: HubbubError) => this.onConnectRefused(gen, err),
        );
      },
      onFrame: (frame) => this.onFrame(gen, frame),
      onActivity: () => this.liveness.touch(),
      onClose: (close) => this.lost(gen, close),
    });
  }

  private onConnected(gen: number, reply: ConnectedReply): void {
    if (gen !== this.gen) return;
    this.clearConnectTimer();
    this.tokens.setExpiresIn(reply.expires_in);
    this.scheduleRefresh(gen);
    const idleMs = (reply.ping_interval ?? 0) * 1000;
    this.liveness.start(idleMs, this.opts.pongTimeoutMs);
    // Subscribe before announcing `connected`, so a listener that subscribes
    // more topics does not see its topic subscribed twice.
    this.topics.resubscribeAll(gen);
    this.markConnected({ transport: 'websocket', clientId: reply.client_id, node: reply.node });
  }

  private onConnectRefused(gen: number, err: HubbubError): void {
    if (gen !== this.gen) return;
    if (err.code === 'timeout' || err.code === 'disconnected') {
      this.lost(gen, { ...LocalClose.timeout, opened: this.opened });
      return;
    }
    // The hub follows a refused `connect` with its own close code; wait for it briefly.
    this.connectError = err;
    this.emit('error', err);
    this.clearConnectTimer();
    this.connectTimer = setTimeout(() => {
      this.lost(gen, { code: CONNECT_ERROR_CLOSE[err.code] ?? 1011, reason: err.code, opened: true });
    }, CONNECT_ERROR_GRACE_MS);
  }

  private markConnected(info: { transport: TransportKind; clientId?: string; node?: string }): void {
    this.attempt = 0;
    this.refreshFailures = 0;
    this.setState('connected');
    this.emit('connected', info);
    for (const waiter of [...this.waiters]) waiter.resolve();
  }

  private onFrame(gen: number, frame: ServerFrame): void {
    if (gen !== this.gen) return;
    this.liveness.touch();
    if (this.requests.settle(frame)) return;
    if (this.topics.route(frame, (topic) => this.sse.since(topic))) return;
    if (frame.type === 'disconnect') {
      this.lost(gen, { code: frame.code, reason: frame.reason, opened: true }, frame.reconnect);
    } else if (frame.type === 'error') {
      // An error that answers no command (SSE reports stream problems this way).
      this.emit('error', new HubbubError(frame.code || 'internal', frame.message ?? ''));
    }
    // Anything else: frames a newer hub may send.
  }

  /** The transport ended (or must end): decide what comes next from the close code. */
  private lost(gen: number, close: TransportClose, reconnect?: boolean): void {
    if (gen !== this.gen || this.stopped) return;
    const wasConnected = this.current === 'connected';
    this.teardown();
    let { code, reason } = close;
    if (this.connectError && (code < 4000 || code > 4299)) {
      code = CONNECT_ERROR_CLOSE[this.connectError.code] ?? code;
      reason = this.connectError.code;
    }
    const policy = reconnect === false ? 'terminal' : closePolicy(code);
    if (code === TOKEN_EXPIRED) this.tokens.invalidate();

    if (policy !== 'terminal' && !close.opened && !wasConnected) {
      // This transport cannot open here (refused, blocked): try the next one now.
      if (this.transportIndex + 1 < this.opts.transports.length) {
        this.transportIndex += 1;
        this.open();
        return;
      }
      this.transportIndex = 0;
    }
    if (policy === 'terminal') {
      this.stop({ code, reason }, `closed with ${code} ${reason}`);
      return;
    }
    const delayMs =
      policy === 'now' && this.attempt === 0 ? 0 : backoffDelay(this.attempt++, this.opts.backoff, this.opts.random);
    this.setState('disconnected');
    const online = this.network.isOnline();
    this.emit('disconnected', { code, reason, reconnect: true, ...(online ? { delayMs } : {}) });
    if (this.stopped) return; // a listener called disconnect()
    if (!online) {
      this.waitingForNetwork = true;
      return;
    }
    this.reconnectTimer = setTimeout(() => this.open(), delayMs);
  }

  /** Closes the current transport and everything tied to it. */
  private teardown(): void {
    this.gen += 1;
    this.transport?.close();
    this.transport = undefined;
    this.clearConnectTimer();
    this.clearReconnect();
    this.cancelRefresh?.();
    this.cancelRefresh = undefined;
    this.liveness.stop();
    this.requests.rejectAll(new HubbubError('disconnected', 'the connection closed before the reply'));
    this.topics.connectionLost();
  }

  private stop(close: { code: number; reason: string }, why: string): void {
    this.stopped = true;
    this.waitingForNetwork = false;
    this.unwatchNetwork?.();
    this.unwatchNetwork = undefined;
    this.setState('disconnected');
    for (const waiter of [...this.waiters]) waiter.reject(new HubbubError('closed', why));
    this.emit('disconnected', { code: close.code, reason: close.reason, reconnect: false });
  }

  private onNetwork(online: boolean): void {
    if (this.stopped) return;
    if (!online) {
      if (this.reconnectTimer !== undefined) {
        this.clearReconnect();
        this.waitingForNetwork = true;
      }
      return;
    }
    if (this.current === 'connected') {
      this.liveness.probeNow(); // the socket may not have survived the network change
    } else if (this.waitingForNetwork || this.reconnectTimer !== undefined) {
      this.open();
    }
  }

  private setState(state: ConnectionState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit('state', state);
  }

  private clearReconnect(): void {
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.waitingForNetwork = false;
  }

  private clearConnectTimer(): void {
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }

  // ---- commands on the current socket ------------------------------------------

  /** Sends a command on the current WebSocket without waiting for a connection. */
  private call<K extends Command['type']>(
    command: Extract<Command, { type: K }>,
    timeoutMs: number = this.opts.requestTimeoutMs,
  ): Promise<Replies[K]> {
    const transport = this.transport;
    if (!transport || transport.kind !== 'websocket') {
      return Promise.reject(new HubbubError('disconnected', 'no WebSocket connection'));
    }
    const { id, reply } = this.requests.register<K>(command.type as K, timeoutMs);
    transport.send({ ...command, id });
    return reply;
  }

  private ping(): void {
    this.call({ type: 'ping' }, this.opts.pongTimeoutMs).catch(() => {
      // Liveness decides from frames, not from this reply.
    });
  }

  // ---- token refresh ---------------------------------------------------------------

  private scheduleRefresh(gen: number): void {
    this.cancelRefresh?.();
    this.cancelRefresh = undefined;
    const inMs = this.tokens.refreshInMs();
    if (inMs === undefined) return;
    // `later`, not setTimeout: a token living > 24.8 days would overflow it into a refresh loop.
    this.cancelRefresh = later(() => void this.refresh(gen), Math.max(500, inMs));
  }

  private async refresh(gen: number): Promise<void> {
    if (gen !== this.gen) return;
    try {
      const token = await this.tokens.fresh();
      if (gen !== this.gen) return;
      if (this.transport?.kind === 'sse') {
        this.reopenSse(); // SSE has no `refresh`: reopen the stream with the new token
        return;
      }
      const reply = await this.call({ type: 'refresh', token });
      if (gen !== this.gen) return;
      this.refreshFailures = 0;
      this.tokens.setExpiresIn(reply.expires_in);
      this.scheduleRefresh(gen);
    } catch (err) {
      if (gen !== this.gen) return;
      this.emit(
        'error',
        err instanceof HubbubError ? err : new HubbubError('token_unavailable', String(err), { cause: err }),
      );
      // Try again; if the token runs out first, the hub closes with 4100 and the
      // reconnect fetches a new one.
      const delay = backoffDelay(this.refreshFailures++, this.opts.backoff, this.opts.random);
      this.cancelRefresh = later(() => void this.refresh(gen), delay);
    }
  }

  // ---- SSE ------------------------------------------------------------------------

  private openSseStream(gen: number, token: string): void {
    this.transport = this.sse.open(token, {
      onOpen: () => {
        if (gen !== this.gen) return;
        this.opened = true;
        this.clearConnectTimer();
        this.scheduleRefresh(gen);
        this.liveness.start(this.opts.sseIdleTimeoutMs, 0);
        if (this.current !== 'connected') this.markConnected({ transport: 'sse' });
      },
      onFrame: (frame) => this.onFrame(gen, frame),
      onActivity: () => this.liveness.touch(),
      onClose: (close) => this.lost(gen, close),
    });
  }

  private queueSseReopen(): void {
    if (this.sseReopenQueued) return;
    this.sseReopenQueued = true;
    queueMicrotask(() => {
      this.sseReopenQueued = false;
      if (this.current === 'connected' && this.transport?.kind === 'sse') this.reopenSse();
    });
  }

  /** Replaces the SSE stream (new topic set or new token) without leaving `connected`. */
  private reopenSse(): void {
    const gen = ++this.gen;
    this.transport?.close();
    this.transport = undefined;
    this.topics.resyncingAll();
    this.tokens.current().then(
      (token) => {
        if (gen !== this.gen) return;
        this.armConnectTimer(gen, true);
        this.openSseStream(gen, token);
      },
      (err: unknown) => {
        if (gen !== this.gen) return;
        this.emit('error', new HubbubError('token_unavailable', `getToken() failed: ${String(err)}`, { cause: err }));
        this.lost(gen, { ...LocalClose.token, opened: true });
      },
    );
  }
}
