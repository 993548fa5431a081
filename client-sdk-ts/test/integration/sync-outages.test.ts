/**
 * A synced guest list (the screen of issue 12's "done means") on the Redis
 * engine, through a kick (reconnect), a hub restart (a new process on the
 * same Redis, same address through a proxy) and a Redis outage (a private
 * Redis stopped and started empty): the list on screen ends exactly the
 * application's, with no handoff code in the test's "app".
 */
import { afterAll, describe, expect, it } from 'vitest';
import { HubbubPublisher } from '../../src/publisher.js';
import type { Synced } from '../../src/sync.js';
import { trackedClient, type TrackedClient } from '../support/clients.js';
import { kick, startHub, waitFor, type RunningHub } from '../support/hub.js';
import { startProxy, type Proxy } from '../support/proxy.js';
import { ownRedis, type OwnRedis } from '../support/redis.js';

type Guests = { 'guest.added': { n: number } };

const GUESTS = `
[namespaces.guests]
history_size = 1000
history_ttl = "1h"
`;

let redis: OwnRedis | undefined;
let hub: RunningHub | undefined;
let proxy: Proxy | undefined;
let tracked: TrackedClient | undefined;

afterAll(async () => {
  tracked?.close();
  await proxy?.close();
  await hub?.stop();
  await redis?.stop();
});

const port = (h: RunningHub): number => Number(new URL(h.httpUrl).port);

async function readyz(h: RunningHub, ok: boolean): Promise<void> {
  await waitFor(`readyz ${ok ? '200' : '503'}`, async () => (await fetch(`${h.httpUrl}/readyz`)).ok === ok, 20_000);
}

describe('a synced guest list on the Redis engine', () => {
  it('stays exactly the application\'s list through a reconnect, a hub restart and a Redis outage', async () => {
    redis = await ownRedis();
    const keyPrefix = `sdk-outage-${Math.random().toString(36).slice(2, 8)}`;
    const start = (like?: RunningHub) =>
      startHub({ engine: 'redis', redisUrl: redis?.url, keyPrefix, extraToml: GUESTS, ...(like ? { like } : {}) });
    hub = await start();
    proxy = await startProxy(port(hub));
    const topic = 'guests:wedding-7';

    // The application: its database, and a publication after each write.
    const db: number[] = [];
    const add = async (): Promise<void> => {
      const n = db.length + 1;
      db.push(n);
      const publisher = new HubbubPublisher({ url: (hub as RunningHub).httpUrl, apiKey: (hub as RunningHub).apiKey });
      await publisher.publish(topic, 'guest.added', { n }, { idempotencyKey: `guest-${n}` });
    };

    // The screen: load() reads the database, apply() adds a guest it does not have.
    tracked = trackedClient(
      hub,
      { sub: 'guest-screen', subscribe: ['guests:*'] },
      { url: `ws://127.0.0.1:${proxy.port}/ws` },
    );
    let loads = 0;
    const synced: Synced<Guests, number[]> = tracked.client.sync<Guests, number[]>(topic, {
      load: async () => {
        loads += 1;
        const copy = [...db];
        await new Promise((r) => setTimeout(r, 20));
        return copy;
      },
      apply: (list, pub) => (list.includes(pub.data.n) ? list : [...list, pub.data.n]),
    });
    const onScreen = (count: number) =>
      waitFor(`${count} guests on screen (have ${JSON.stringify(synced.state)})`, () => synced.state?.length === count, 20_000);

    for (let i = 0; i < 5; i++) await add();
    await onScreen(5);

    // A reconnect: the hub kicks the screen; it recovers with `since`.
    expect(await kick(hub, 'guest-screen')).toBe(1);
    for (let i = 0; i < 2; i++) await add();
    await onScreen(7);
    expect(loads).toBe(1);

    // A hub restart: a new process on the same Redis; history is still there.
    await hub.stop();
    hub = await start(hub);
    proxy.setUpstream(port(hub));
    for (let i = 0; i < 3; i++) await add();
    await onScreen(10);
    expect(loads).toBe(1);

    // A Redis outage: it comes back empty, so the topic restarts in a new epoch.
    await redis.stop();
    await readyz(hub, false);
    await redis.start();
    await readyz(hub, true);
    for (let i = 0; i < 3; i++) await add();
    await onScreen(13);
    expect(synced.state).toEqual(db);
    expect(loads).toBeGreaterThanOrEqual(2); // the lost history was reloaded, not guessed
    await waitFor('live', () => synced.status === 'live');
    await add();
    await onScreen(14);
    expect(synced.state).toEqual(db);
    console.log(`guest list through kick, hub restart, Redis outage: ${db.length} guests, ${loads} loads`);
    synced.close();
  });
});
