/**
 * The Server-Sent Events transport: `GET /sse?topic=…&since=…`, read with
 * `fetch` so the SDK sees HTTP statuses and error bodies (an `EventSource`
 * hides both), sends the token as `Authorization: Bearer` (not in the URL,
 * where access logs keep it), and manages reconnects and `since` itself.
 * Receive-only.
 */
import { LocalClose } from '../close-codes.js';
import { HubbubError } from '../errors.js';
import type { Position, ServerFrame } from '../wire.js';
import { SseParser } from './sse-parser.js';
import type { Transport, TransportHandlers } from './transport.js';

export type FetchLike = typeof fetch;

export interface SseRequest {
  /** The `/sse` endpoint, e.g. `https://hub.example.com/sse`. */
  url: string;
  token: string;
  topics: string[];
  /** Known positions, sent as `since=topic|epoch|offset,…`. */
  since: Map<string, Position>;
  /** Put the token in the URL (for a plain `EventSource`, which cannot send headers). Default true. */
  tokenInQuery?: boolean;
}

/** Builds the `/sse` URL of the contract. */
export function sseUrl(request: SseRequest): string {
  const url = new URL(request.url);
  for (const topic of request.topics) url.searchParams.append('topic', topic);
  if (request.tokenInQuery !== false) url.searchParams.set('token', request.token);
  const since = request.topics
    .filter((t) => request.since.has(t))
    .map((t) => {
      const p = request.since.get(t) as Position;
      return `${t}|${p.epoch}|${p.offset}`;
    });
  if (since.length > 0) url.searchParams.set('since', since.join(','));
  return url.toString();
}

/**
 * The close code the SDK reports when `/sse` refused the stream: from the
 * contract error code in the body when there is one, else from the status.
 * Problems that will not go away by retrying (a bad token, a topic that is
 * invalid, unknown or forbidden) stop the client, as the 40xx codes do.
 */
export function closeCodeForStatus(status: number, errorCode?: string): number {
  switch (errorCode) {
    case 'unauthorized':
      return 4001;
    case 'forbidden':
      return 4003;
    case 'bad_request':
    case 'invalid_topic':
    case 'unknown_namespace':
    case 'limit_exceeded':
      return 4000;
    case 'too_large':
      return 4009;
    case 'rate_limited':
      return 4102;
    case 'unavailable':
    case 'internal':
      return LocalClose.transport.code;
    default:
      break;
  }
  switch (status) {
    case 400:
      return 4000; // protocol_error: a bad topic will not get better
    case 401:
      return 4001; // unauthorized
    case 403:
      return 4003; // forbidden
    case 413:
      return 4009;
    case 429:
      return 4102; // rate_limited: back off
    default:
      return LocalClose.transport.code; // 404, 5xx, proxies: back off
  }
}

export function openSse(request: SseRequest, fetchImpl: FetchLike, handlers: TransportHandlers): Transport {
  const abort = new AbortController();
  let done = false;
  let opened = false;

  const finish = (code: number, reason: string, message?: string): void => {
    if (done) return;
    done = true;
    abort.abort();
    handlers.onClose({ code, reason, opened, ...(message === undefined ? {} : { message }) });
  };

  const run = async (): Promise<void> => {
    const res = await fetchImpl(sseUrl({ ...request, tokenInQuery: false }), {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${request.token}` },
      cache: 'no-store',
      signal: abort.signal,
    });
    if (done) return;
    if (!res.ok || !res.body) {
      const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
      const code = body?.error?.code;
      finish(closeCodeForStatus(res.status, code), code ?? `http_${res.status}`, body?.error?.message);
      return;
    }
    opened = true;
    handlers.onOpen();
    const parser = new SseParser();
    const decoder = new TextDecoder();
    const reader = res.body.getReader();
    for (;;) {
      const { value, done: ended } = await reader.read();
      if (done) return;
      if (ended) break;
      handlers.onActivity();
      for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
        const frame = toFrame(ev.event, ev.data);
        if (frame) handlers.onFrame(frame);
        if (done) return;
      }
    }
    finish(LocalClose.transport.code, 'stream_ended');
  };

  run().catch((err: unknown) => {
    finish(LocalClose.transport.code, LocalClose.transport.reason, err instanceof Error ? err.message : String(err));
  });

  return {
    kind: 'sse',
    send() {
      throw new HubbubError('unsupported', 'the SSE transport is receive-only');
    },
    close() {
      if (done) return;
      done = true;
      abort.abort();
    },
  };
}

const SSE_EVENTS = new Set(['subscribed', 'pub', 'join', 'leave', 'disconnect', 'error']);

/** Turns an SSE event of the contract into the frame the WebSocket would carry. */
function toFrame(event: string, data: string): ServerFrame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const type = event === 'message' ? (value as { type?: unknown }).type : event;
  if (typeof type !== 'string' || !SSE_EVENTS.has(type)) return undefined;
  // The hub's SSE events are its WebSocket frames as JSON; the type names them.
  return { ...(value as object), type } as ServerFrame;
}
