/**
 * The client: one connection to the hub at a time, its state machine
 * (`disconnected` → `connecting` → `connected`), reconnects by close-code
 * class, token refresh, liveness, commands with deadlines, and the
 * subscriptions it re-establishes with `since` on every new connection.
 */
import { backoffDelay } from './backoff.js';
import {
  CONNECT_ERROR_CLOSE,
  closePolicy,
  LocalClose,
  PERMANENT_SUBSCRIBE_ERRORS,
  TOKEN_EXPIRED,
} from './close-codes.js';
import { loadCodec, type Codec } from './codec.js';
import { Emitter } from './emitter.js';
import { HubbubError } from './errors.js';
import { Liveness } from './liveness.js';
import { alwaysOnline, defaultNetworkMonitor, type NetworkMonitor } from './network.js';
import { resolveOptions, type HubbubOptions, type ResolvedOptions } from './options.js';
import { Requests } from './requests.js';
import { Subscription, type EventMap, type HistoryOptions } from './subscription.js';
import { TokenSource } from './token.js';
import { openSse, type FetchLike } from './transport/sse.js';
import type { Transport, TransportClose, TransportKind } from './transport/transport.js';
import { openWebSocket, type WebSocketConstructor } from './transport/websocket.js';
import type {
  Command,
  ConnectedReply,
  HistoryReply,
  Member,
  Position,
  Publication,
  Replies,
  ServerFrame,
  SubscribedReply,
} from './wire.js';

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

export class Hubbub extends Emitter<ClientEvents> {
  private readonly opts: ResolvedOptions;
  private readonly codec: Promise<Codec>;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly fetchImpl: FetchLike | undefined;
  private readonly network: NetworkMonitor;
  private readonly tokens: TokenSource;
  private readonly requests = new Requests();
  private readonly liveness: Liveness;
  private readonly subs = new Map<string, Subscription<EventMap>>();

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
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshFailures = 0;
  private waitingForNetwork = false;
  private unwatchNetwork: (() => void) | undefined;
  private readonly waiters = new Set<{ resolve(): void; reject(err: HubbubError): void }>();
  /** The `since` each topic was requested with on the current SSE stream. */
  private sseSince = new Map<string, Position | undefined>();
  private sseReopenQueued = false;

  constructor(options: HubbubOptions) {
    super();
    this.opts = resolveOptions(options);
    this.codec = loadCodec(this.opts.protocol);
    this.codec.catch(() => {}); // reported when a connection needs it
    this.WebSocketImpl =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.fetchImpl = options.fetch ?? (typeof fetch === 'function' ? fetch.bind(globalThis) : undefined);
    this.network = options.network === false ? alwaysOnline : (options.network ?? defaultNetworkMonitor());
    this.tokens = new TokenSource(options.getToken, this.opts.refreshMarginMs, this.opts.connectTimeoutMs);
    this.liveness = new Liveness(
      () => this.ping(),
      () => this.lost(this.gen, { ...LocalClose.timeout, opened: true }),
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
   * Subscribes to a topic, typed by its event map. Subscribing to a topic that
   * is already subscribed returns the same subscription (released once every
   * caller called `unsubscribe()`).
   */
  subscribe<E extends EventMap = EventMap>(topic: string): Subscription<E> {
    const existing = this.subs.get(topic);
    if (existing) {
      existing._retain();
      return existing as unknown as Subscription<E>;
    }
    const sub = new Subscription<EventMap>(topic, {
      resync: (s) => this.resync(s),
      release: (s) => this.release(s),
      history: (t, o) => this.history(t, o),
      presence: (t) => this.presence(t),
    });
    this.subs.set(topic, sub);
    if (this.current === 'connected') {
      if (this.transport?.kind === 'sse') this.queueSseReopen();
      else this.sendSubscribe(sub, this.gen);
    }
    return sub as unknown as Subscription<E>;
  }

  /** The subscription of a topic, if there is one. */
  getSubscription<E extends EventMap = EventMap>(topic: string): Subscription<E> | undefined {
    return this.subs.get(topic) as unknown as Subscription<E> | undefined;
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

  /** The publications the hub keeps for a topic (WebSocket only). */
  async history(topic: string, options: HistoryOptions = {}): Promise<HistoryReply> {
    const reply = await this.request({
      type: 'history',
      topic,
      ...(options.since ? { since: options.since } : {}),
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
    });
    return { type: 'history', publications: reply.publications ?? [], position: reply.position };
  }

  /** Who is subscribed to a topic now (WebSocket only). */
  async presence(topic: string): Promise<Member[]> {
    const reply = await this.request({ type: 'presence', topic });
    return reply.members ?? [];
  }

  /**
   * Sends a command and resolves with its reply. Waits for a connection first;
   * `timeoutMs` (default `requestTimeoutMs`) covers the wait and the reply.
   */
  async request<T extends Command['type']>(
    command: Extract<Command, { type: T }>,
    timeoutMs: number = this.opts.requestTimeoutMs,
  ): Promise<Replies[T]> {
    const deadline = Date.now() + timeoutMs;
    if (this.current !== 'connected') await this.ready(timeoutMs);
    if (this.transport?.kind !== 'websocket') {
      throw new HubbubError('unsupported', `\`${command.type}\` needs the WebSocket transport; SSE is receive-only`);
    }
    return (await this.call(command, Math.max(1, deadline - Date.now()))) as unknown as Replies[T];
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
        this.connectTimer = setTimeout(
          () => this.lost(gen, { ...LocalClose.timeout, opened: this.opened }),
          this.opts.connectTimeoutMs,
        );
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
          (reply) => this.onConnected(gen, reply as unknown as ConnectedReply),
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
    for (const sub of this.subs.values()) {
      sub._connectionLost();
      this.sendSubscribe(sub, gen);
    }
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
    switch (frame.type) {
      case 'pub': {
        const { topic, offset, event, data, ts, id } = frame as unknown as Publication;
        this.subs.get(topic)?._onPub({ topic, offset, event, data, ts, id });
        break;
      }
      case 'join':
      case 'leave': {
        const { topic, member } = frame as unknown as { topic: string; member: Member };
        const sub = this.subs.get(topic);
        if (frame.type === 'join') sub?._onJoin(member);
        else sub?._onLeave(member);
        break;
      }
      case 'subscribed': {
        // SSE: the stream confirms each topic with an unsolicited `subscribed`.
        const reply = frame as unknown as SubscribedReply;
        this.subs.get(reply.topic)?._onSubscribed(reply, this.sseSince.get(reply.topic));
        break;
      }
      case 'disconnect': {
        const { code, reason, reconnect } = frame as unknown as { code: number; reason: string; reconnect: boolean };
        this.lost(gen, { code, reason, opened: true }, reconnect);
        break;
      }
      case 'error':
        // An error that answers no command (SSE reports stream problems this way).
        this.emit('error', new HubbubError(String(frame.code ?? 'internal'), String(frame.message ?? '')));
        break;
      default:
        break; // frames a newer hub may send
    }
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
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.liveness.stop();
    this.requests.rejectAll(new HubbubError('disconnected', 'the connection closed before the reply'));
    for (const sub of this.subs.values()) sub._connectionLost();
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
  private call(command: Command, timeoutMs: number = this.opts.requestTimeoutMs): Promise<ServerFrame> {
    const transport = this.transport;
    if (!transport || transport.kind !== 'websocket') {
      return Promise.reject(new HubbubError('disconnected', 'no WebSocket connection'));
    }
    const { id, reply } = this.requests.register(command.type, timeoutMs);
    transport.send({ ...command, id });
    return reply;
  }

  private ping(): void {
    this.call({ type: 'ping' }, this.opts.pongTimeoutMs).catch(() => {
      // Liveness decides from frames, not from this reply.
    });
  }

  private scheduleRefresh(gen: number): void {
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    const inMs = this.tokens.refreshInMs();
    if (inMs === undefined) return;
    this.refreshTimer = setTimeout(() => void this.refresh(gen), Math.max(500, inMs));
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
      const reply = (await this.call({ type: 'refresh', token })) as unknown as Replies['refresh'];
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
      this.refreshTimer = setTimeout(() => void this.refresh(gen), delay);
    }
  }

  // ---- subscriptions on the wire ---------------------------------------------

  private sendSubscribe(sub: Subscription<EventMap>, gen: number): void {
    const since = sub._since();
    this.call({ type: 'subscribe', topic: sub.topic, ...(since ? { since } : {}) }).then(
      (reply) => {
        if (gen !== this.gen || this.subs.get(sub.topic) !== sub) return;
        sub._onSubscribed(reply as unknown as SubscribedReply, since);
      },
      (err: HubbubError) => {
        if (gen !== this.gen || this.subs.get(sub.topic) !== sub) return;
        if (PERMANENT_SUBSCRIBE_ERRORS.has(err.code)) {
          this.subs.delete(sub.topic);
          sub._fail(err);
        } else if (err.code === 'already_subscribed') {
          this.resync(sub);
        } else {
          this.emit('error', err);
          const delay = backoffDelay(0, this.opts.backoff, this.opts.random);
          setTimeout(() => {
            if (gen === this.gen && this.subs.get(sub.topic) === sub) this.sendSubscribe(sub, gen);
          }, delay);
        }
      },
    );
  }

  /** A gap (or a possible new epoch): subscribe again with `since`. */
  private resync(sub: Subscription<EventMap>): void {
    sub._resyncing();
    if (this.current !== 'connected') return; // the next connection subscribes with `since` anyway
    if (this.transport?.kind === 'sse') {
      this.queueSseReopen();
      return;
    }
    const gen = this.gen;
    const again = (): void => {
      if (gen === this.gen && this.subs.get(sub.topic) === sub) this.sendSubscribe(sub, gen);
    };
    this.call({ type: 'unsubscribe', topic: sub.topic }).then(again, again);
  }

  private release(sub: Subscription<EventMap>): void {
    if (this.subs.get(sub.topic) !== sub) return;
    this.subs.delete(sub.topic);
    if (this.current !== 'connected') return;
    if (this.transport?.kind === 'sse') this.queueSseReopen();
    else this.call({ type: 'unsubscribe', topic: sub.topic }).catch(() => {});
  }

  // ---- SSE ------------------------------------------------------------------------

  private openSseStream(gen: number, token: string): void {
    const topics = [...this.subs.keys()];
    this.sseSince = new Map(topics.map((t) => [t, this.subs.get(t)?._since()]));
    const onOpen = (): void => {
      if (gen !== this.gen) return;
      this.opened = true;
      this.clearConnectTimer();
      this.scheduleRefresh(gen);
      this.liveness.start(this.opts.sseIdleTimeoutMs, 0);
      if (this.current !== 'connected') this.markConnected({ transport: 'sse' });
    };
    if (topics.length === 0) {
      // Nothing to receive: no stream until the first subscription.
      this.transport = { kind: 'sse', send: () => {}, close: () => {} };
      queueMicrotask(onOpen);
      return;
    }
    const fetchImpl = this.fetchImpl;
    if (!fetchImpl) {
      this.lost(gen, { code: LocalClose.transport.code, reason: 'no fetch implementation', opened: false });
      return;
    }
    const since = new Map<string, Position>();
    for (const [t, p] of this.sseSince) if (p) since.set(t, p);
    this.transport = openSse({ url: this.opts.sseUrl, token, topics, since }, fetchImpl, {
      onOpen,
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
    for (const sub of this.subs.values()) sub._resyncing();
    this.tokens.current().then(
      (token) => {
        if (gen !== this.gen) return;
        this.clearConnectTimer();
        this.connectTimer = setTimeout(
          () => this.lost(gen, { ...LocalClose.timeout, opened: true }),
          this.opts.connectTimeoutMs,
        );
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
