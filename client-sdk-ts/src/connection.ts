/**
 * The connection to the hub, one transport at a time, and its state machine
 * (`disconnected` → `connecting` → `connected`): reconnects by close-code
 * class, transport fallback, generation checks (callbacks of an older
 * transport are ignored), token refresh, liveness, online/offline, commands
 * with deadlines, and replacing the SSE stream. What it carries is the
 * subscriptions' ({@link ConnectionTopics}) and the client's.
 */
import { backoffDelay } from './backoff.js';
import { CONNECT_ERROR_CLOSE, closePolicy, LocalClose, TOKEN_EXPIRED } from './close-codes.js';
import type { Codec } from './codec.js';
import { HubbubError } from './errors.js';
import { Liveness } from './liveness.js';
import type { NetworkMonitor } from './network.js';
import type { ResolvedOptions } from './options.js';
import { Requests } from './requests.js';
import type { SseStreams } from './sse-streams.js';
import { later } from './timers.js';
import type { TokenSource } from './token.js';
import type { Transport, TransportClose, TransportKind } from './transport/transport.js';
import { openWebSocket, type WebSocketConstructor } from './transport/websocket.js';
import type { Command, ConnectedReply, Position, Replies, ServerFrame } from './wire.js';

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

/** What the connection needs from the subscriptions it carries. */
export interface ConnectionTopics {
  /** A new WebSocket connection: subscribe everything again. */
  resubscribeAll(gen: number): void;
  connectionLost(): void;
  /** The SSE stream is being replaced. */
  resyncingAll(): void;
  /** A push for a topic; false when the frame is not one. */
  route(frame: ServerFrame, sseSince: (topic: string) => Position | undefined): boolean;
}

export interface ConnectionParts {
  opts: ResolvedOptions;
  codec: Promise<Codec>;
  WebSocketImpl: WebSocketConstructor | undefined;
  network: NetworkMonitor;
  tokens: TokenSource;
  topics: ConnectionTopics;
  sse: SseStreams;
  /** Emits a client event. */
  emit: <K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>) => void;
}

export class Connection {
  private readonly opts: ResolvedOptions;
  private readonly codec: Promise<Codec>;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly network: NetworkMonitor;
  private readonly tokens: TokenSource;
  private readonly topics: ConnectionTopics;
  private readonly sse: SseStreams;
  private readonly emit: ConnectionParts['emit'];
  private readonly requests = new Requests();
  private readonly liveness: Liveness;

  private current: ConnectionState = 'disconnected';
  private stopped = true;
  /** Bumped for every transport; callbacks of an older one are ignored. */
  private generation = 0;
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

  constructor(parts: ConnectionParts) {
    this.opts = parts.opts;
    this.codec = parts.codec;
    this.WebSocketImpl = parts.WebSocketImpl;
    this.network = parts.network;
    this.tokens = parts.tokens;
    this.topics = parts.topics;
    this.sse = parts.sse;
    this.emit = parts.emit;
    this.liveness = new Liveness(
      () => this.ping(),
      () => this.lost(this.generation, { ...LocalClose.timeout, opened: true }),
    );
  }

  /** The transport generation: replies and callbacks of an older one are ignored. */
  get gen(): number {
    return this.generation;
  }

  /** Connected, and on which transport (undefined while not connected). */
  get live(): TransportKind | undefined {
    return this.current === 'connected' ? this.transportKind : undefined;
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
    if (this.stopped) {
      const next =
        'call connect() first (publish, history, presence and ready() wait for the connection that connect() opens; subscribe() may come before it)';
      return Promise.reject(new HubbubError('closed', `not connected: ${next}`));
    }
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

  // ---- connection lifecycle ---------------------------------------------------

  private open(): void {
    this.clearReconnect();
    if (this.stopped) return;
    if (!this.network.isOnline()) {
      this.waitingForNetwork = true;
      return;
    }
    const gen = ++this.generation;
    const kind = this.opts.transports[this.transportIndex] as TransportKind;
    this.opened = false;
    this.connectError = undefined;
    this.setState('connecting');
    this.emit('connecting', { attempt: this.attempt, transport: kind });
    this.tokens.current().then(
      async (token) => {
        const codec = kind === 'websocket' ? await this.codec : undefined;
        if (gen !== this.generation) return;
        this.armConnectTimer(gen, false);
        if (codec) this.openWebSocket(gen, token, codec);
        else this.openSseStream(gen, token);
      },
      (err: unknown) => {
        if (gen !== this.generation) return;
        this.emit('error', new HubbubError('token_unavailable', `getToken() failed: ${String(err)}`, { cause: err }));
        this.lost(gen, { ...LocalClose.token, opened: false });
      },
    ).catch((err: unknown) => {
      // The MessagePack codec could not be loaded: no WebSocket on this protocol.
      if (gen !== this.generation) return;
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
        if (gen !== this.generation) return;
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
    if (gen !== this.generation) return;
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
    if (gen !== this.generation) return;
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
    if (gen !== this.generation) return;
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
    if (gen !== this.generation || this.stopped) return;
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
    this.generation += 1;
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
  call<K extends Command['type']>(
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
    if (gen !== this.generation) return;
    try {
      const token = await this.tokens.fresh();
      if (gen !== this.generation) return;
      if (this.transport?.kind === 'sse') {
        this.reopenSse(); // SSE has no `refresh`: reopen the stream with the new token
        return;
      }
      const reply = await this.call({ type: 'refresh', token });
      if (gen !== this.generation) return;
      this.refreshFailures = 0;
      this.tokens.setExpiresIn(reply.expires_in);
      this.scheduleRefresh(gen);
    } catch (err) {
      if (gen !== this.generation) return;
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
        if (gen !== this.generation) return;
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

  /** Replaces the SSE stream soon (once per burst of topic changes). */
  queueSseReopen(): void {
    if (this.sseReopenQueued) return;
    this.sseReopenQueued = true;
    queueMicrotask(() => {
      this.sseReopenQueued = false;
      if (this.current === 'connected' && this.transport?.kind === 'sse') this.reopenSse();
    });
  }

  /** Replaces the SSE stream (new topic set or new token) without leaving `connected`. */
  private reopenSse(): void {
    const gen = ++this.generation;
    this.transport?.close();
    this.transport = undefined;
    this.topics.resyncingAll();
    this.tokens.current().then(
      (token) => {
        if (gen !== this.generation) return;
        this.armConnectTimer(gen, true);
        this.openSseStream(gen, token);
      },
      (err: unknown) => {
        if (gen !== this.generation) return;
        this.emit('error', new HubbubError('token_unavailable', `getToken() failed: ${String(err)}`, { cause: err }));
        this.lost(gen, { ...LocalClose.token, opened: true });
      },
    );
  }}
