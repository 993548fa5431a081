/** What the client needs from a transport, whichever it is. */
import type { ServerFrame } from '../wire.js';

export type TransportKind = 'websocket' | 'sse';

export interface TransportClose {
  code: number;
  reason: string;
  /** Whether the transport had opened before it closed. */
  opened: boolean;
  /** Details for humans (an HTTP error body's message, for instance). */
  message?: string;
}

/** Callbacks of one transport instance; none fires after `close()` was called. */
export interface TransportHandlers {
  /** The socket is open / the event stream answered 200. */
  onOpen(): void;
  /** One decoded frame from the hub. */
  onFrame(frame: ServerFrame): void;
  /** Bytes arrived (frames and keep-alive comments alike): proof of life. */
  onActivity(): void;
  /** The transport ended on its own (never after `close()`). */
  onClose(close: TransportClose): void;
}

export interface Transport {
  readonly kind: TransportKind;
  /** Sends a command. Only the WebSocket transport can send. */
  send(frame: object): void;
  /** Closes the transport; its handlers are not called any more. */
  close(): void;
}
