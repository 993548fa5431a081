/** The client's options and the defaults they resolve to. */
import type { BackoffOptions } from './backoff.js';
import type { Protocol } from './codec.js';
import type { NetworkMonitor } from './network.js';
import { defaultApiUrl } from './rest.js';
import type { GetToken } from './token.js';
import type { FetchLike } from './transport/sse.js';
import type { TransportKind } from './transport/transport.js';
import type { WebSocketConstructor } from './transport/websocket.js';

export interface HubbubOptions {
  /** The WebSocket endpoint, e.g. `wss://hub.example.com/ws`. */
  url: string;
  /** Returns a JWT for `connect`; called on start, before expiry and after close 4100. */
  getToken: GetToken;
  /** Sub-protocol: `json` (default) or `msgpack`. */
  protocol?: Protocol;
  /** A WebSocket implementation, e.g. `ws` in Node; default: the global `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** The fetch used by the SSE transport; default: the global `fetch`. */
  fetch?: FetchLike;
  /** The SSE endpoint; default: `url` with http(s) and `/sse` in place of `/ws`. */
  sseUrl?: string;
  /** The REST API base that `history()`/`presence()` use on SSE; default: `sseUrl` with `/api/v1` in place of `/sse`. */
  apiUrl?: string;
  /** Transports to try, in order, when one cannot open. Default `['websocket', 'sse']`. */
  transports?: TransportKind[];
  /** Reconnect delays. Default `{ minMs: 500, maxMs: 20000 }`. */
  backoff?: BackoffOptions;
  /** Deadline of every command, waiting for a connection included. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** Deadline to open a transport and get `connected`. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** After a `ping`, how long to wait for any frame before reconnecting. Default 10 000 ms. */
  pongTimeoutMs?: number;
  /** On SSE, how long without any byte (the hub sends `: ping`) before reconnecting. Default 60 000 ms. */
  sseIdleTimeoutMs?: number;
  /** The largest margin before expiry at which the token is refreshed (a third of its lifetime at most). Default 30 000 ms. */
  refreshMarginMs?: number;
  /** `online`/`offline` source; default: the browser's when present. `false` disables it. */
  network?: NetworkMonitor | false;
  /** Random source for jitter (tests). */
  random?: () => number;
}

export interface ResolvedOptions {
  url: string;
  sseUrl: string;
  apiUrl: string;
  protocol: Protocol;
  transports: TransportKind[];
  backoff: BackoffOptions;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  pongTimeoutMs: number;
  sseIdleTimeoutMs: number;
  refreshMarginMs: number;
  random: () => number;
}

export function resolveOptions(options: HubbubOptions): ResolvedOptions {
  const transports = options.transports ?? ['websocket', 'sse'];
  if (transports.length === 0) throw new TypeError('`transports` needs at least one transport');
  const url = absoluteWsUrl(options.url);
  const sseUrl = options.sseUrl ? absoluteUrl(options.sseUrl).toString() : defaultSseUrl(url);
  return {
    url,
    sseUrl,
    apiUrl: options.apiUrl ? absoluteUrl(options.apiUrl).toString() : defaultApiUrl(sseUrl),
    protocol: options.protocol ?? 'json',
    transports,
    backoff: options.backoff ?? {},
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
    sseIdleTimeoutMs: options.sseIdleTimeoutMs ?? 60_000,
    refreshMarginMs: options.refreshMarginMs ?? 30_000,
    random: options.random ?? Math.random,
  };
}

/** `ws://host/ws` → `http://host/sse`, `wss://host/x/ws` → `https://host/x/sse`. */
export function defaultSseUrl(wsUrl: string): string {
  const url = new URL(wsUrl);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  url.pathname = url.pathname.endsWith('/ws')
    ? `${url.pathname.slice(0, -3)}/sse`
    : `${url.pathname.replace(/\/$/, '')}/sse`;
  url.search = '';
  return url.toString();
}

/** Resolves a URL against the page's address when there is one (so `'/ws'` works in browsers). */
function absoluteUrl(url: string): URL {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  return base === undefined ? new URL(url) : new URL(url, base);
}

/** An absolute `ws:`/`wss:` URL; `http(s):` and relative URLs are accepted too. */
export function absoluteWsUrl(url: string): string {
  const u = absoluteUrl(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new TypeError(`not a WebSocket URL: ${url}`);
  return u.toString();
}
