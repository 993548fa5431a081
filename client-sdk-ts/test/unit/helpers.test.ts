import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { coalesce } from '../../src/coalesce.js';
import { jsonCodec, loadMsgpackCodec } from '../../src/codec.js';
import { absoluteWsUrl, defaultSseUrl } from '../../src/options.js';
import { jwtExpiry, refreshMargin } from '../../src/token.js';
import { SseParser } from '../../src/transport/sse-parser.js';
import { sseUrl } from '../../src/transport/sse.js';

describe('coalesce', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('turns a burst into one call after it goes quiet, with the last arguments', () => {
    const fn = vi.fn();
    const reload = coalesce(fn, { waitMs: 100 });
    for (let i = 0; i < 10; i++) {
      reload(i);
      vi.advanceTimersByTime(50);
    }
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(100);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(fn).toHaveBeenCalledWith(9);
  });

  it('calls at least every maxWaitMs during a steady stream', () => {
    const fn = vi.fn();
    const reload = coalesce(fn, { waitMs: 100, maxWaitMs: 300 });
    for (let i = 0; i < 20; i++) {
      reload();
      vi.advanceTimersByTime(50);
    }
    // 1000 ms of calls every 50 ms: fires at 300, 650 (the 2nd burst starts at 350), …
    expect(fn.mock.calls.length).toBeGreaterThanOrEqual(3);
    expect(fn.mock.calls.length).toBeLessThanOrEqual(4);
  });

  it('flushes and cancels', () => {
    const fn = vi.fn();
    const reload = coalesce(fn, { waitMs: 100 });
    reload('a');
    expect(reload.pending).toBe(true);
    reload.flush();
    expect(fn).toHaveBeenCalledWith('a');
    reload('b');
    reload.cancel();
    vi.advanceTimersByTime(1000);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(reload.pending).toBe(false);
  });
});

describe('SseParser', () => {
  it('parses events split anywhere, with CRLF, comments and multi-line data', () => {
    const stream =
      ': ping\r\n\r\nevent: pub\r\nid: a|e|1\r\ndata: {"x":\r\ndata: 1}\r\n\r\n: ping\n\nevent: subscribed\ndata: {}\n\ndata: plain\n\n';
    for (let size = 1; size <= stream.length; size++) {
      const parser = new SseParser();
      const events = [];
      for (let i = 0; i < stream.length; i += size) events.push(...parser.push(stream.slice(i, i + size)));
      expect(events).toEqual([
        { event: 'pub', data: '{"x":\n1}', id: 'a|e|1' },
        { event: 'subscribed', data: '{}', id: 'a|e|1' },
        { event: 'message', data: 'plain', id: 'a|e|1' },
      ]);
    }
  });
});

describe('SSE URLs', () => {
  it('derives the SSE endpoint from the WebSocket URL', () => {
    expect(defaultSseUrl('ws://127.0.0.1:9000/ws')).toBe('http://127.0.0.1:9000/sse');
    expect(defaultSseUrl('wss://hub.example.com/realtime/ws?x=1')).toBe('https://hub.example.com/realtime/sse');
    expect(defaultSseUrl('wss://hub.example.com/')).toBe('https://hub.example.com/sse');
  });

  it('accepts http(s) URLs for the WebSocket and refuses other schemes', () => {
    expect(absoluteWsUrl('https://hub.example.com/ws')).toBe('wss://hub.example.com/ws');
    expect(absoluteWsUrl('ws://127.0.0.1:1/ws')).toBe('ws://127.0.0.1:1/ws');
    expect(() => absoluteWsUrl('ftp://x/ws')).toThrow(TypeError);
  });

  it('encodes topics, token and since as the hub expects', () => {
    const url = new URL(
      sseUrl({
        url: 'http://h/sse',
        token: 'a.b.c',
        topics: ['bookings', 'bookings:42'],
        since: new Map([['bookings:42', { epoch: 'ep-1', offset: 17 }]]),
      }),
    );
    expect(url.searchParams.getAll('topic')).toEqual(['bookings', 'bookings:42']);
    expect(url.searchParams.get('token')).toBe('a.b.c');
    expect(url.searchParams.get('since')).toBe('bookings:42|ep-1|17');
  });
});

describe('codecs', () => {
  const frame = { type: 'pub', topic: 't', offset: 3, event: 'e', data: { a: [1, 'x', null], b: true }, ts: 1_760_000_000_000, id: 'p' };

  it('round-trips JSON text frames', () => {
    expect(jsonCodec.decode(jsonCodec.encode(frame))).toEqual(frame);
    expect(jsonCodec.decode(new TextEncoder().encode(JSON.stringify(frame)).buffer)).toEqual(frame);
  });

  it('round-trips MessagePack binary frames, from ArrayBuffer or Buffer', async () => {
    const msgpackCodec = await loadMsgpackCodec();
    const bytes = msgpackCodec.encode(frame) as Uint8Array;
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(msgpackCodec.decode(bytes)).toEqual(frame);
    expect(msgpackCodec.decode(bytes.slice().buffer)).toEqual(frame);
    expect(msgpackCodec.decode(Buffer.from(bytes))).toEqual(frame);
  });

  it('rejects frames that are not message objects', () => {
    expect(() => jsonCodec.decode('[1,2]')).toThrow(TypeError);
    expect(() => jsonCodec.decode('{"no":"type"}')).toThrow(TypeError);
  });
});

describe('tokens', () => {
  it('reads exp from a JWT', () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    expect(jwtExpiry(`${b64({ alg: 'HS256' })}.${b64({ sub: 'u', exp: 1_900_000_000 })}.sig`)).toBe(1_900_000_000_000);
    expect(jwtExpiry('not-a-jwt')).toBeUndefined();
    expect(jwtExpiry(`${b64({})}.${b64({ sub: 'u' })}.s`)).toBeUndefined();
  });

  it('refreshes a third of the lifetime early, at most the configured margin', () => {
    expect(refreshMargin(9_000, 30_000)).toBe(3_000);
    expect(refreshMargin(3_600_000, 30_000)).toBe(30_000);
  });
});
