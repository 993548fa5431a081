/**
 * The SDK fixes of issue 12, each a test that failed before its fix: the
 * `unavailable` subscribe retry, SSE with a forbidden topic, history and
 * presence on SSE, the SSE token header, long-lived tokens and setTimeout,
 * and one handle per `subscribe<E>()` call.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { connected, FakeWebSocket, makeClient, settle } from '../support/fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A fake hub over HTTP: `/sse` streams the test writes to, and the REST reads. */
function fakeHttp(forbidden: string[] = []) {
  const streams: Array<{ url: URL; headers: Headers; write(text: string): void; aborted: boolean }> = [];
  const rest: Array<{ url: URL; headers: Headers }> = [];
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  const fetch = vi.fn(async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    const headers = new Headers(init?.headers);
    if (url.pathname === '/sse') {
      const topics = url.searchParams.getAll('topic');
      const bad = topics.find((t) => forbidden.includes(t));
      if (bad) return json(403, { error: { code: 'forbidden', message: `not permitted to subscribe to ${bad}` } });
      let controller!: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
      const entry = {
        url,
        headers,
        aborted: false,
        write: (text: string) => controller.enqueue(new TextEncoder().encode(text)),
      };
      init?.signal?.addEventListener('abort', () => {
        entry.aborted = true;
        try {
          controller.error(new DOMException('aborted', 'AbortError'));
        } catch {
          // closed already
        }
      });
      streams.push(entry);
      return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
    }
    const m = /^\/api\/v1\/topics\/([^/]+)\/(history|presence)$/.exec(url.pathname);
    if (m) {
      rest.push({ url, headers });
      const topic = decodeURIComponent(m[1] as string);
      if (forbidden.includes(topic)) return json(403, { error: { code: 'forbidden', message: 'no' } });
      if (m[2] === 'presence') return json(200, { members: [{ client_id: 'c9', user: 'ann', info: null }] });
      return json(200, {
        publications: [{ topic, offset: 3, event: 'booking.created', data: { id: 3 }, ts: 1, id: 'p3' }],
        position: { epoch: 'e1', offset: 3 },
      });
    }
    return json(404, { error: { code: 'not_found', message: url.pathname } });
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, streams, rest };
}

const sseEvent = (event: string, data: object) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

describe('issue 12 fixes', () => {
  it('grows the delay between subscribe retries while the hub answers `unavailable`', async () => {
    const { client, ws, events } = await connected({}, { ping_interval: 0 });
    client.subscribe('bookings:1');
    await settle();
    const gaps: number[] = [];
    for (let round = 0; round < 4; round++) {
      const before = ws.allOf('subscribe').length;
      ws.reply(ws.lastOf('subscribe'), { type: 'error', code: 'unavailable', message: 'redis down' });
      await settle();
      let waited = 0;
      while (ws.allOf('subscribe').length === before && waited < 60_000) {
        await vi.advanceTimersByTimeAsync(100);
        waited += 100;
      }
      gaps.push(waited);
    }
    // backoff 1000..8000 ms, random() = 0.5: 1500, 2500, 4500, 4500 (capped ceiling)
    expect(gaps).toEqual([1500, 2500, 4500, 4500]);
    expect(events.filter(([n]) => n === 'error')).toHaveLength(4);
    // A success resets it.
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: 'bookings:1', position: { epoch: 'e', offset: 0 } });
    await settle();
    expect(client.state).toBe('connected');
  });

  it('on SSE, a forbidden topic fails only its subscription; the stream goes on with the others', async () => {
    const http = fakeHttp(['bookings:secret']);
    const { client, events } = makeClient({ transports: ['sse'], fetch: http.fetch });
    const open = client.subscribe('bookings:open');
    const secret = client.subscribe('bookings:secret');
    const errors: string[] = [];
    secret.on('error', (e) => errors.push(e.code));
    client.connect();
    await vi.advanceTimersByTimeAsync(100);
    expect(secret.state).toBe('failed');
    expect(errors).toEqual(['forbidden']);
    expect(client.state).toBe('connected');
    const s = http.streams.at(-1)!;
    expect(s.url.searchParams.getAll('topic')).toEqual(['bookings:open']);
    s.write(sseEvent('subscribed', { type: 'subscribed', topic: 'bookings:open', position: { epoch: 'e1', offset: 0 }, publications: [] }));
    await settle();
    expect(open.state).toBe('subscribed');
    expect(events.filter(([n]) => n === 'disconnected').map(([, i]) => i)).not.toContainEqual(
      expect.objectContaining({ reconnect: false }),
    );
  });

  it('on SSE, history() and presence() use the REST API with the same token', async () => {
    const http = fakeHttp();
    const { client } = makeClient({ transports: ['sse'], fetch: http.fetch });
    const sub = client.subscribe('bookings:1');
    client.connect();
    await settle();
    const h = await sub.history({ since: { epoch: 'e1', offset: 1 }, limit: 5 });
    expect(h.publications.map((p) => p.offset)).toEqual([3]);
    expect(h.position).toEqual({ epoch: 'e1', offset: 3 });
    const req = http.rest.at(-1)!;
    expect(req.url.pathname).toBe('/api/v1/topics/bookings%3A1/history');
    expect(req.url.searchParams.get('since')).toBe('e1:1');
    expect(req.url.searchParams.get('limit')).toBe('5');
    expect(req.headers.get('authorization')).toBe('Bearer token-1');
    expect(await sub.presence()).toEqual([{ client_id: 'c9', user: 'ann', info: null }]);
    expect(http.rest.at(-1)!.headers.get('authorization')).toBe('Bearer token-1');
  });

  it('on SSE read with fetch, the token travels in the Authorization header, not the URL', async () => {
    const http = fakeHttp();
    const { client } = makeClient({ transports: ['sse'], fetch: http.fetch });
    client.subscribe('bookings:1');
    client.connect();
    await settle();
    const s = http.streams[0]!;
    expect(s.url.searchParams.has('token')).toBe(false);
    expect(s.headers.get('authorization')).toBe('Bearer token-1');
  });

  it('a token that lives longer than 24.8 days does not overflow setTimeout into a refresh loop', async () => {
    const thirtyDays = 30 * 24 * 3600;
    const { getToken, ws } = await connected({}, { expires_in: thirtyDays, ping_interval: 0 });
    await vi.advanceTimersByTimeAsync(3600_000);
    expect(ws.allOf('refresh')).toHaveLength(0);
    expect(getToken).toHaveBeenCalledTimes(1);
    // It still refreshes when due (30 s before expiry).
    await vi.advanceTimersByTimeAsync(thirtyDays * 1000 - 3600_000 - 30_000);
    expect(ws.allOf('refresh')).toHaveLength(1);
  });

  it('subscribe<E>() returns a handle of its own per call, not a shared instance cast to E', async () => {
    const { client, ws } = await connected({}, { ping_interval: 0 });
    const a = client.subscribe<{ 'a.happened': { a: number } }>('bookings:7');
    const b = client.subscribe<{ 'b.happened': { b: string } }>('bookings:7');
    expect(a).not.toBe(b);
    const seen: string[] = [];
    a.on('publication', (p) => seen.push(`a${p.offset}`));
    b.on('publication', (p) => seen.push(`b${p.offset}`));
    await settle();
    expect(ws.allOf('subscribe')).toHaveLength(1);
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: 'bookings:7', position: { epoch: 'e', offset: 0 } });
    await settle();
    ws.push({ type: 'pub', topic: 'bookings:7', offset: 1, event: 'a.happened', data: { a: 1 }, ts: 1, id: 'x1' });
    a.unsubscribe();
    expect(a.state).toBe('unsubscribed');
    expect(b.state).toBe('subscribed');
    ws.push({ type: 'pub', topic: 'bookings:7', offset: 2, event: 'b.happened', data: { b: 'x' }, ts: 1, id: 'x2' });
    expect(seen).toEqual(['a1', 'b1', 'b2']);
    await settle();
    expect(ws.allOf('unsubscribe')).toHaveLength(0);
    b.unsubscribe();
    await settle();
    expect(ws.allOf('unsubscribe')).toHaveLength(1);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });
});

describe('SSE recovery sent as pub events', () => {
  it('delivers recovered publications that arrive as `pub` events before `subscribed`, once, in order', async () => {
    const http = fakeHttp();
    const { client } = makeClient({ transports: ['sse'], fetch: http.fetch });
    const sub = client.subscribe('bookings:1');
    const seen: number[] = [];
    sub.on('publication', (p) => seen.push(p.offset));
    client.connect();
    await settle();
    const p = (offset: number) => ({ type: 'pub', topic: 'bookings:1', offset, event: 'e', data: {}, ts: 1, id: `p${offset}` });
    const s1 = http.streams[0]!;
    s1.write(sseEvent('subscribed', { type: 'subscribed', topic: 'bookings:1', position: { epoch: 'e1', offset: 4 }, publications: [] }));
    s1.write(sseEvent('pub', p(5)));
    await settle();
    s1.write(sseEvent('disconnect', { code: 4201, reason: 'rebalance', reconnect: true }));
    await settle();
    const s2 = http.streams[1]!;
    expect(s2.url.searchParams.get('since')).toBe('bookings:1|e1|5');
    // The hub sends what was missed as pub events, then `subscribed` with no publications in it.
    s2.write(sseEvent('pub', p(6)) + sseEvent('pub', p(7)));
    s2.write(sseEvent('subscribed', { type: 'subscribed', topic: 'bookings:1', position: { epoch: 'e1', offset: 7 }, recovered: true, publications: [] }));
    s2.write(sseEvent('pub', p(7)) + sseEvent('pub', p(8)));
    await settle();
    expect(seen).toEqual([5, 6, 7, 8]);
    expect(http.streams).toHaveLength(2); // no reopen: nothing was missing
  });
});
