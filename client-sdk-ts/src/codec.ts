/**
 * The two WebSocket sub-protocols: JSON text frames and MessagePack binary
 * frames. The MessagePack codec is loaded on first use, so an app on JSON does
 * not ship it (bundlers split the dynamic import into its own chunk).
 */
import { SUBPROTOCOL, type ServerFrame } from './wire.js';

export type Protocol = keyof typeof SUBPROTOCOL;

export interface Codec {
  readonly subprotocol: string;
  encode(frame: object): string | Uint8Array;
  /** Decodes one frame; throws on a frame that is not a message object. */
  decode(raw: unknown): ServerFrame;
}

const textDecoder = /* @__PURE__ */ new TextDecoder();

export const jsonCodec: Codec = {
  subprotocol: SUBPROTOCOL.json,
  encode: (frame) => JSON.stringify(frame),
  decode: (raw) => asFrame(JSON.parse(typeof raw === 'string' ? raw : textDecoder.decode(toBytes(raw)))),
};

let msgpack: Promise<Codec> | undefined;

/** The MessagePack codec (imports `@msgpack/msgpack` the first time). */
export function loadMsgpackCodec(): Promise<Codec> {
  msgpack ??= import('@msgpack/msgpack').then(({ encode, decode }) => ({
    subprotocol: SUBPROTOCOL.msgpack,
    encode: (frame: object) => encode(frame),
    decode: (raw: unknown) => asFrame(decode(toBytes(raw))),
  }));
  return msgpack;
}

export function loadCodec(protocol: Protocol): Promise<Codec> {
  return protocol === 'msgpack' ? loadMsgpackCodec() : Promise.resolve(jsonCodec);
}

function toBytes(raw: unknown): Uint8Array {
  if (raw instanceof Uint8Array) return raw;
  if (raw instanceof ArrayBuffer) return new Uint8Array(raw);
  if (ArrayBuffer.isView(raw)) return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  // `ws` may hand over fragmented messages as an array of Buffers.
  if (Array.isArray(raw) && raw.every((part) => part instanceof Uint8Array)) {
    const parts = raw as Uint8Array[];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
  throw new TypeError(`unsupported frame payload: ${Object.prototype.toString.call(raw)}`);
}

function asFrame(value: unknown): ServerFrame {
  if (value === null || typeof value !== 'object' || typeof (value as { type?: unknown }).type !== 'string') {
    throw new TypeError('frame is not a message object with a string `type`');
  }
  return value as ServerFrame;
}
