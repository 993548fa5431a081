import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubbubPublisher } from '../../src/publisher.js';
import { trackedClient, type TrackedClient } from '../support/clients.js';
import { jwtExpiry } from '../../src/token.js';
import { closedPort, kick, startHub, waitFor, within, type RunningHub } from '../support/hub.js';

let hub: RunningHub;
const open: TrackedClient[] = [];

beforeAll(async () => {
  hub = await startHub();
});
afterAll(async () => {
  for (const c of open) c.close();
  await hub?.stop();
});

describe('SSE fallback', () => {
  it('falls back to SSE when the WebSocket endpoint refuses, and recovers after a kick', async () => {
    const port = await closedPort();
    const tracked = trackedClient(
      hub,
      { sub: 'sse-user' },
      { url: `ws://127.0.0.1:${port}/ws`, sseUrl: hub.sseUrl, transports: ['websocket', 'sse'] },
    );
    open.push(tracked);
    const topic = 'bookings:sse';
    const sub = tracked.client.subscribe<{ 'booking.created': { n: number } }>(topic);
    const ns: number[] = [];
    const resets: unknown[] = [];
    sub.on('booking.created', (d) => ns.push(d.n));
    sub.on('reset', (r) => resets.push(r));
    await within('subscribed over SSE', sub.ready());
    expect(tracked.client.transportKind).toBe('sse');
    expect(tracked.events.find((e) => e.name === 'connected')?.info).toEqual({ transport: 'sse' });

    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    for (let n = 1; n <= 10; n++) await publisher.publish(topic, 'booking.created', { n });
    await waitFor('10 over SSE', () => ns.length >= 10);

    expect(await kick(hub, 'sse-user')).toBe(1);
    for (let n = 11; n <= 30; n++) await publisher.publish(topic, 'booking.created', { n });
    await waitFor(`30 over SSE (have ${ns.length})`, () => ns.length >= 30, 15_000);
    expect(ns).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(resets).toEqual([]);
    expect(tracked.events.some((e) => e.name === 'disconnected')).toBe(true);

    await expect(tracked.client.publish(topic, 'x', {})).rejects.toMatchObject({ code: 'unsupported' });
  });

  it('uses SSE alone when told to, on several topics at once', async () => {
    const tracked = trackedClient(hub, { sub: 'sse-only' }, { sseUrl: hub.sseUrl, transports: ['sse'] });
    open.push(tracked);
    const a = tracked.client.subscribe('bookings:sse-a');
    const b = tracked.client.subscribe('bookings:sse-b');
    const got: string[] = [];
    a.on('publication', (p) => got.push(`a${p.offset}`));
    b.on('publication', (p) => got.push(`b${p.offset}`));
    await within('both subscribed over SSE', Promise.all([a.ready(), b.ready()]));
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    await publisher.publish('bookings:sse-a', 'e', 1);
    await publisher.publish('bookings:sse-b', 'e', 1);
    await publisher.publish('bookings:sse-a', 'e', 2);
    await waitFor('3 publications', () => got.length >= 3);
    expect(got).toEqual(['a1', 'b1', 'a2']);
  });

  it('outlives short tokens on SSE by reopening the stream with a new token before expiry', async () => {
    const tracked = trackedClient(hub, { sub: 'sse-refresh', ttl: 3 }, { sseUrl: hub.sseUrl, transports: ['sse'] });
    open.push(tracked);
    const topic = 'bookings:sse-refresh';
    const sub = tracked.client.subscribe(topic);
    const got: unknown[] = [];
    sub.on('publication', (p) => got.push(p.data));
    await within('subscribed over SSE', sub.ready());
    const firstExp = jwtExpiry(tracked.tokens[0] as string) as number;
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    await publisher.publish(topic, 'e', 1);
    await waitFor('past the first token and 3 tokens fetched', () => Date.now() > firstExp + 2500 && tracked.tokens.length >= 3, 20_000);
    await publisher.publish(topic, 'e', 2);
    await waitFor('both publications', () => got.length >= 2);
    expect(got).toEqual([1, 2]);
    // No 4100 from the hub: the stream was replaced in time, without leaving `connected`.
    expect(tracked.events.filter((e) => e.name === 'disconnected')).toEqual([]);
    expect(tracked.client.state).toBe('connected');
  });

  it('stops on 401 from /sse', async () => {
    const tracked = trackedClient(hub, { sub: 'x' }, { sseUrl: hub.sseUrl, transports: ['sse'], getToken: () => 'not-a-jwt' });
    open.push(tracked);
    tracked.client.subscribe('bookings:sse-401');
    await waitFor('terminal close', () => tracked.events.some((e) => e.name === 'disconnected'));
    expect(tracked.events.find((e) => e.name === 'disconnected')?.info).toMatchObject({ code: 4001, reconnect: false });
  });
});
