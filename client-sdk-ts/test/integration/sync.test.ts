/**
 * `sync()`, `latest` and the SSE fixes against the real hub binary, on the
 * memory engine and on Redis: the handoff while publications flow, a reload
 * after publications were lost, the newest publication first, and on SSE a
 * forbidden topic, history/presence over REST and the token header.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubbubPublisher } from '../../src/publisher.js';
import type { Synced } from '../../src/sync.js';
import { trackedClient, type TrackedClient } from '../support/clients.js';
import { kick, startHub, waitFor, within, type Engine, type RunningHub } from '../support/hub.js';
import { startProxy, type Proxy } from '../support/proxy.js';

type Guests = { 'guest.added': { n: number } };

const GUESTS = `
[namespaces.guests]
history_size = 1000
history_ttl = "1h"

[namespaces.tiny]
history_size = 3
history_ttl = "1h"
`;

describe.each<Engine>(['memory', 'redis'])('on the %s engine', (engine) => {
  let hub: RunningHub;
  let proxy: Proxy;
  const open: TrackedClient[] = [];
  const run = Math.random().toString(36).slice(2, 8);

  beforeAll(async () => {
    hub = await startHub({ engine, extraToml: GUESTS });
    proxy = await startProxy(Number(new URL(hub.httpUrl).port));
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await proxy?.close();
    await hub?.stop();
  });

  /** The application: its database (the guest list) and its publish-after-write. */
  function application(topic: string) {
    const db: number[] = [];
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    let n = 0;
    const add = async (): Promise<void> => {
      n += 1;
      db.push(n);
      await publisher.publish(topic, 'guest.added', { n });
    };
    return { db, add, count: () => n };
  }

  /** A synced guest list: `load()` copies the database slowly; `apply()` skips guests it has. */
  function syncList(tracked: TrackedClient, topic: string, db: number[], loadMs: number) {
    const applied: number[] = [];
    let loads = 0;
    const synced: Synced<Guests, number[]> = tracked.client.sync<Guests, number[]>(topic, {
      load: async () => {
        loads += 1;
        const snapshot = [...db];
        await new Promise((r) => setTimeout(r, loadMs));
        return snapshot;
      },
      apply: (list, pub) => {
        applied.push(pub.offset);
        return list.includes(pub.data.n) ? list : [...list, pub.data.n];
      },
    });
    return { synced, applied, loads: () => loads };
  }

  it.each(['websocket', 'sse'] as const)('hands off from load() to the stream while publications flow over %s: none missed, none twice', async (transport) => {
    const topic = `guests:handoff-${transport}-${engine}-${run}`;
    const app = application(topic);
    for (let i = 0; i < 20; i++) await app.add();
    let flowing = true;
    const flow = (async () => {
      while (flowing) {
        await app.add();
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const tracked = trackedClient(
      hub,
      { sub: 'guest-screen', subscribe: ['guests:*'] },
      { transports: [transport], sseUrl: hub.sseUrl },
    );
    open.push(tracked);
    const { synced, applied, loads } = syncList(tracked, topic, app.db, 300);
    await waitFor('live', () => synced.status === 'live', 15_000);
    await new Promise((r) => setTimeout(r, 300));
    flowing = false;
    await flow;
    const total = app.count();
    await waitFor(`all ${total} on screen`, () => (synced.state?.length ?? 0) >= total, 15_000);
    expect(synced.state).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // apply() saw each offset after the loaded position once, in order, contiguous.
    expect(applied.length).toBeGreaterThan(0);
    expect(applied).toEqual(Array.from({ length: applied.length }, (_, i) => (applied[0] as number) + i));
    expect(applied.at(-1)).toBe(total);
    expect(loads()).toBe(1);
    expect(tracked.client.transportKind).toBe(transport);
    synced.close();
  });

  it('loads again when publications were lost while away (recovered: false), and ends exactly right', async () => {
    const topic = `tiny:lost-${engine}-${run}`;
    const app = application(topic);
    for (let i = 0; i < 5; i++) await app.add();
    const tracked = trackedClient(
      hub,
      { sub: `away-${engine}`, subscribe: ['tiny:*'] },
      { url: `ws://127.0.0.1:${proxy.port}/ws` },
    );
    open.push(tracked);
    const { synced, loads } = syncList(tracked, topic, app.db, 50);
    await waitFor('live', () => synced.status === 'live', 15_000);
    expect(synced.state).toEqual([1, 2, 3, 4, 5]);
    proxy.pause();
    expect(await kick(hub, `away-${engine}`)).toBe(1);
    await waitFor('refused while away', () => proxy.refused > 0, 10_000);
    for (let i = 0; i < 10; i++) await app.add(); // more than the 3 kept
    proxy.resume();
    await waitFor(`15 after the reload (have ${synced.state?.length})`, () => synced.state?.length === 15, 15_000);
    expect(synced.state).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(loads()).toBe(2);
    await app.add();
    await waitFor('16 live', () => synced.state?.length === 16);
    synced.close();
  });

  it.each(['websocket', 'sse'] as const)('subscribe latest over %s: the newest first, then live ones', async (transport) => {
    const topic = `guests:latest-${transport}-${engine}-${run}`;
    const app = application(topic);
    for (let i = 0; i < 3; i++) await app.add();
    const tracked = trackedClient(
      hub,
      { sub: 'latest-screen', subscribe: ['guests:*'] },
      { transports: [transport], sseUrl: hub.sseUrl },
    );
    open.push(tracked);
    const sub = tracked.client.subscribe<Guests>(topic, { latest: true });
    const seen: string[] = [];
    sub.on('guest.added', (d, pub) => seen.push(`${d.n}${pub.latest ? '*' : ''}`));
    await within('subscribed', sub.ready());
    await waitFor('the newest', () => seen.length >= 1);
    await app.add();
    await waitFor('the live one', () => seen.length >= 2);
    expect(seen).toEqual(['3*', '4']);
    expect(tracked.client.transportKind).toBe(transport);
    sub.unsubscribe();
  });

  it('on SSE: a forbidden topic fails alone, history and presence come over REST', async () => {
    const tracked = trackedClient(
      hub,
      { sub: 'sse-reader', subscribe: ['bookings:*'] },
      { transports: ['sse'], sseUrl: hub.sseUrl },
    );
    open.push(tracked);
    const okTopic = `bookings:sse-ok-${engine}-${run}`;
    const ok = tracked.client.subscribe(okTopic);
    const secret = tracked.client.subscribe(`guests:secret-${run}`);
    const failed = within('the forbidden topic fails', secret.ready().then(() => 'subscribed', (e: { code: string }) => e.code));
    await within('the other one subscribes', ok.ready());
    expect(await failed).toBe('forbidden');
    expect(tracked.client.state).toBe('connected');
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    await publisher.publish(okTopic, 'booking.created', { id: 1 });
    const got: number[] = [];
    ok.on('publication', (p) => got.push(p.offset));
    await publisher.publish(okTopic, 'booking.created', { id: 2 });
    await waitFor('live over SSE', () => got.includes(2));
    const h = await ok.history({ limit: 10 });
    expect(h.publications.map((p) => p.offset)).toEqual([1, 2]);
    expect((await tracked.client.history(okTopic, { limit: 0 })).position.offset).toBe(2);
    expect(await ok.presence()).toEqual([]); // SSE readers are not members
    await expect(tracked.client.history(`guests:secret-${run}`)).rejects.toMatchObject({ code: 'forbidden' });
  });
});
