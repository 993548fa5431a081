import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { connected, FakeWebSocket, makeClient, settle } from '../support/fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A fake `/sse` endpoint: each request gets a stream the test writes to. */
function fakeSse() {
  const streams: Array<{
    url: URL;
    write(text: string): void;
    end(): void;
    aborted: boolean;
  }> = [];
  let answer: { status: number; body?: unknown } = { status: 200 };
  const fetch = vi.fn(async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    if (answer.status !== 200) {
      return new Response(JSON.stringify(answer.body ?? {}), { status: answer.status });
    }
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
    });
    const entry = {
      url,
      aborted: false,
      write: (text: string) => controller.enqueue(new TextEncoder().encode(text)),
      end: () => controller.close(),
    };
    init?.signal?.addEventListener('abort', () => {
      entry.aborted = true;
      try {
        controller.error(new DOMException('aborted', 'AbortError'));
      } catch {
        // already closed
      }
    });
    streams.push(entry);
    return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
  });
  return {
    fetch: fetch as unknown as typeof globalThis.fetch,
    streams,
    refuseWith(status: number, body?: unknown) {
      answer = { status, body };
    },
  };
}

const sseEvent = (event: string, data: object, id?: string) =>
  `event: ${event}\n${id ? `id: ${id}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
const pub = (offset: number) => ({
  type: 'pub',
  topic: 'bookings',
  offset,
  event: 'booking.created',
  data: { id: offset },
  ts: 1,
  id: `p${offset}`,
});

describe('SSE fallback', () => {
  it('falls back to SSE when the WebSocket cannot open, and receives publications', async () => {
    const sse = fakeSse();
    const { client, events } = makeClient({ transports: ['websocket', 'sse'], fetch: sse.fetch });
    const sub = client.subscribe<{ 'booking.created': { id: number } }>('bookings');
    const seen: number[] = [];
    sub.on('booking.created', (d) => seen.push(d.id));
    client.connect();
    await settle();
    FakeWebSocket.last.refuse();
    await settle();
    expect(sse.streams).toHaveLength(1);
    const s = sse.streams[0]!;
    expect(s.url.origin + s.url.pathname).toBe('http://hub.test/sse');
    expect(s.url.searchParams.getAll('topic')).toEqual(['bookings']);
    expect(s.url.searchParams.has('token')).toBe(false); // sent as `Authorization: Bearer`
    expect(s.url.searchParams.has('since')).toBe(false);
    expect(client.state).toBe('connected');
    expect(client.transportKind).toBe('sse');
    expect(events.find(([n]) => n === 'connected')?.[1]).toEqual({ transport: 'sse' });

    // The hub's SSE `subscribed` data carries `"id": 0` (the WebSocket reply's field): not a command reply.
    s.write(sseEvent('subscribed', { type: 'subscribed', id: 0, topic: 'bookings', position: { epoch: 'e1', offset: 4 }, publications: [] }, 'bookings|e1|4'));
    await settle();
    expect(sub.state).toBe('subscribed');
    s.write(': ping\n\n');
    const joined: string[] = [];
    sub.on('join', (m) => joined.push(m.user));
    s.write(sseEvent('join', { type: 'join', topic: 'bookings', member: { client_id: 'c', user: 'ann', info: null } }));
    s.write(sseEvent('pub', pub(5), 'bookings|e1|5') + sseEvent('pub', pub(6), 'bookings|e1|6'));
    await settle();
    expect(seen).toEqual([5, 6]);
    expect(joined).toEqual(['ann']);

    await expect(client.publish('bookings', 'x', 1)).rejects.toMatchObject({ code: 'unsupported' });
  });

  it('reconnects the stream with since and recovers, emitting reset on recovered: false', async () => {
    const sse = fakeSse();
    const { client } = makeClient({ transports: ['sse'], fetch: sse.fetch });
    const sub = client.subscribe('bookings');
    const seen: number[] = [];
    const resets: unknown[] = [];
    sub.on('publication', (p) => seen.push(p.offset));
    sub.on('reset', (r) => resets.push(r));
    client.connect();
    await settle();
    sse.streams[0]!.write(sseEvent('subscribed', { type: 'subscribed', topic: 'bookings', position: { epoch: 'e1', offset: 4 }, publications: [] }));
    sse.streams[0]!.write(sseEvent('pub', pub(5)));
    await settle();
    sse.streams[0]!.write(sseEvent('disconnect', { code: 4201, reason: 'rebalance', reconnect: true }));
    await settle();
    expect(sse.streams[0]!.aborted).toBe(true);
    expect(sse.streams).toHaveLength(2);
    const s2 = sse.streams[1]!;
    expect(s2.url.searchParams.get('since')).toBe('bookings|e1|5');
    s2.write(
      sseEvent('subscribed', {
        type: 'subscribed',
        topic: 'bookings',
        position: { epoch: 'e1', offset: 7 },
        recovered: true,
        publications: [pub(5), pub(6), pub(7)].map(({ type: _t, ...p }) => p),
      }),
    );
    s2.write(sseEvent('pub', pub(7)) + sseEvent('pub', pub(8)));
    await settle();
    expect(seen).toEqual([5, 6, 7, 8]);

    s2.end(); // stream dropped: back off, then recover
    await vi.advanceTimersByTimeAsync(1500);
    const s3 = sse.streams[2]!;
    expect(s3.url.searchParams.get('since')).toBe('bookings|e1|8');
    s3.write(sseEvent('subscribed', { type: 'subscribed', topic: 'bookings', position: { epoch: 'e9', offset: 1 }, recovered: false, publications: [] }));
    await settle();
    expect(resets).toEqual([{ position: { epoch: 'e9', offset: 1 } }]);
  });

  it('reopens the stream when topics change, keeping positions', async () => {
    const sse = fakeSse();
    const { client } = makeClient({ transports: ['sse'], fetch: sse.fetch });
    client.subscribe('bookings');
    client.connect();
    await settle();
    sse.streams[0]!.write(sseEvent('subscribed', { type: 'subscribed', topic: 'bookings', position: { epoch: 'e1', offset: 4 }, publications: [] }));
    await settle();
    const other = client.subscribe('bookings:9');
    await settle();
    expect(sse.streams[0]!.aborted).toBe(true);
    const s2 = sse.streams[1]!;
    expect(s2.url.searchParams.getAll('topic')).toEqual(['bookings', 'bookings:9']);
    expect(s2.url.searchParams.get('since')).toBe('bookings|e1|4');
    other.unsubscribe();
    await settle();
    expect(sse.streams[2]!.url.searchParams.getAll('topic')).toEqual(['bookings']);
    expect(client.state).toBe('connected');
  });

  it('stops on 401 from /sse and reports the hub error code', async () => {
    const sse = fakeSse();
    sse.refuseWith(401, { error: { code: 'unauthorized', message: 'bad token' } });
    const { client, events } = makeClient({ transports: ['sse'], fetch: sse.fetch });
    client.subscribe('bookings');
    client.connect();
    await settle();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(client.state).toBe('disconnected');
    expect(events.filter(([n]) => n === 'disconnected').map(([, i]) => i)).toEqual([
      { code: 4001, reason: 'unauthorized', reconnect: false },
    ]);
    expect(sse.fetch).toHaveBeenCalledTimes(1);
  });

  it('reconnects when the stream goes silent past sseIdleTimeoutMs', async () => {
    const sse = fakeSse();
    const { client, events } = makeClient({ transports: ['sse'], fetch: sse.fetch, sseIdleTimeoutMs: 10_000 });
    client.subscribe('bookings');
    client.connect();
    await settle();
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(5000);
      sse.streams[0]!.write(': ping\n\n');
    }
    expect(events.filter(([n]) => n === 'disconnected')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(events.filter(([n]) => n === 'disconnected').at(-1)?.[1]).toMatchObject({ code: 3008, reconnect: true });
  });

  it('stays on the WebSocket when it opens', async () => {
    const sse = fakeSse();
    const { client } = await connected({ transports: ['websocket', 'sse'], fetch: sse.fetch });
    expect(client.transportKind).toBe('websocket');
    expect(sse.fetch).not.toHaveBeenCalled();
  });
});
