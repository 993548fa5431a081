import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubbubPublisher } from '../../src/publisher.js';
import { trackedClient, type TrackedClient } from '../support/clients.js';
import { kick, startHub, waitFor, within, type RunningHub } from '../support/hub.js';

let hub: RunningHub;
const open: TrackedClient[] = [];

beforeAll(async () => {
  hub = await startHub({
    extraToml: `
[namespaces.tiny]
history_size = 3
history_ttl = "1h"
public = true
`,
  });
});
afterAll(async () => {
  for (const c of open) c.close();
  await hub?.stop();
});

describe.each(['json', 'msgpack'] as const)('recovery over %s', (protocol) => {
  it('misses nothing and duplicates nothing while the hub kicks the connection during a stream of publications', async () => {
    const user = `kicked-${protocol}`;
    const topic = `bookings:recovery-${protocol}`;
    const tracked = trackedClient(hub, { sub: user }, { protocol });
    open.push(tracked);
    const sub = tracked.client.subscribe<{ 'booking.created': { n: number } }>(topic);
    const offsets: number[] = [];
    const ns: number[] = [];
    const resets: unknown[] = [];
    sub.on('booking.created', (data, pub) => {
      offsets.push(pub.offset);
      ns.push(data.n);
    });
    sub.on('reset', (r) => resets.push(r));
    await within('subscribed', sub.ready());

    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    const total = 150;
    let published = 0;
    const kicks: number[] = [];
    const publishing = (async () => {
      for (let n = 1; n <= total; n++) {
        await publisher.publish(topic, 'booking.created', { n });
        published = n;
        if (n === 40 || n === 100) kicks.push(await kick(hub, user));
      }
    })();
    await publishing;
    await waitFor(`all ${total} publications (have ${offsets.length})`, () => offsets.length >= total, 20_000);

    expect(kicks).toEqual([1, 1]);
    expect(published).toBe(total);
    expect(offsets).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(ns).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(resets).toEqual([]);
    const disconnects = tracked.events.filter((e) => e.name === 'disconnected').map((e) => e.info);
    expect(disconnects).toHaveLength(2);
    for (const d of disconnects) expect(d).toMatchObject({ code: 4201, reconnect: true, delayMs: 0 });
    expect(tracked.events.filter((e) => e.name === 'connected')).toHaveLength(3);
    expect(tracked.client.state).toBe('connected');
  });
});

describe('recovery outcome', () => {
  it('emits reset when the missed publications are no longer in history', async () => {
    const user = 'trimmed';
    const topic = 'tiny:1';
    const tracked = trackedClient(hub, { sub: user, subscribe: ['tiny:*'] });
    open.push(tracked);
    const sub = tracked.client.subscribe(topic);
    const resets: Array<{ position: { offset: number } }> = [];
    const seen: number[] = [];
    sub.on('reset', (r) => resets.push(r));
    sub.on('publication', (p) => seen.push(p.offset));
    await within('subscribed', sub.ready());
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    await publisher.publish(topic, 'e', 1);
    await waitFor('first publication', () => seen.length === 1);

    // Take the client away…
    tracked.client.disconnect();
    // …publish more than history_size (3) keeps, then come back.
    for (let n = 2; n <= 8; n++) await publisher.publish(topic, 'e', n);
    tracked.client.connect();
    await waitFor('reset', () => resets.length === 1);
    expect(resets[0]?.position.offset).toBe(8);
    await publisher.publish(topic, 'e', 9);
    await waitFor('publication after reset', () => seen.includes(9));
    expect(seen).toEqual([1, 9]);
  });
});
