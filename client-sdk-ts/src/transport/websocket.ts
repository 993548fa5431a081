/** The WebSocket transport: `GET /ws` with the `hubbub.v1.json` or `hubbub.v1.msgpack` sub-protocol. */
import type { Codec } from '../codec.js';
import { LocalClose } from '../close-codes.js';
import type { Transport, TransportHandlers } from './transport.js';

/**
 * An event handler property, checked bivariantly (as methods are), so that an
 * implementation whose handlers take a richer event type (`ws`'s
 * `MessageEvent`, the DOM's) still fits.
 */
type Handler<E> = { bivarianceHack(ev: E): void }['bivarianceHack'];

/** The part of the WHATWG `WebSocket` the SDK uses; browsers' and `ws`'s both fit. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onerror: Handler<unknown> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: the global `WebSocket`, or `ws`'s default export (`import WebSocket from 'ws'`). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export function openWebSocket(
  url: string,
  codec: Codec,
  WebSocketImpl: WebSocketConstructor,
  handlers: TransportHandlers,
): Transport {
  let done = false;
  let opened = false;
  let ws: WebSocketLike | undefined;

  const finish = (code: number, reason: string): void => {
    if (done) return;
    done = true;
    detach();
    handlers.onClose({ code, reason, opened });
  };

  const detach = (): void => {
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  };

  try {
    ws = new WebSocketImpl(url, [codec.subprotocol]);
    ws.binaryType = 'arraybuffer';
  } catch (err) {
    // An invalid URL or a blocked port throws synchronously in browsers.
    queueMicrotask(() => finish(LocalClose.transport.code, `cannot open: ${String(err)}`));
    return { kind: 'websocket', send: () => {}, close: () => void (done = true) };
  }
  const socket = ws;

  socket.onopen = () => {
    opened = true;
    handlers.onOpen();
  };
  socket.onmessage = (ev) => {
    if (done) return;
    handlers.onActivity();
    let frame;
    try {
      frame = codec.decode(ev.data);
    } catch {
      // A frame the SDK cannot read is dropped; the hub never sends one in a healthy deployment.
      return;
    }
    handlers.onFrame(frame);
  };
  // An error is always followed by a close event, which carries the code.
  socket.onerror = () => {};
  socket.onclose = (ev) => {
    const code = ev.code && ev.code !== 1005 ? ev.code : LocalClose.transport.code;
    finish(code, ev.reason || LocalClose.transport.reason);
  };

  return {
    kind: 'websocket',
    send(frame) {
      if (done) return;
      try {
        socket.send(codec.encode(frame));
      } catch {
        // The socket is closing; its close event follows and fails the pending command.
      }
    },
    close() {
      if (done) return;
      done = true;
      detach();
      try {
        socket.close(1000);
      } catch {
        // Closing a socket that never opened may throw in some implementations.
      }
    },
  };
}
