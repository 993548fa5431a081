import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubbubPublisher } from '../../src/publisher.js';
import type { Publication } from '../../src/wire.js';
import { trackedClient, type TrackedClient } from '../support/clients.js';
import { startHub, waitFor, within, type RunningHub } from '../support/hub.js';

interface Booking {
  id: string;
  guest: string;
  seats: number;
  tags: string[];
  meta: { vip: boolean; note: string | null; ratio: number };
}
type BookingEvents = { 'booking.created': Booking; 'booking.updated': Partial<Booking> & { id: string } };

let hub: RunningHub;
const open: TrackedClient[] = [];

beforeAll(async () => {
  hub = await startHub();
});
afterAll(async () => {
  for (const c of open) c.close();
  await hub?.stop();
});

function client(sub: string, protocol: 'json' | 'msgpack'): TrackedClient {
  const c = trackedClient(hub, { sub }, { protocol });
  open.push(c);
  return c;
}

const booking = (n: number): Booking => ({
  id: `b-${n}`,
  guest: `Guest ${n} — ünïcødé ✓`,
  seats: n,
  tags: ['window', `t${n}`],
  meta: { vip: n % 2 === 0, note: null, ratio: n / 4 },
});

describe.each(['json', 'msgpack'] as const)('publish and receive over %s', (protocol) => {
  it('receives REST publications in order with their data intact', async () => {
    const topic = `bookings:${protocol}-rest`;
    const { client: c } = client(`reader-${protocol}`, protocol);
    const sub = c.subscribe<BookingEvents>(topic);
    const got: Array<{ data: Booking; pub: Publication<Booking> }> = [];
    sub.on('booking.created', (data, pub) => got.push({ data, pub }));
    await within('subscribed', sub.ready());

    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    const positions = [];
    for (let n = 1; n <= 5; n++) positions.push((await publisher.publish(topic, 'booking.created', booking(n))).position);
    expect(positions.map((p) => p.offset)).toEqual([1, 2, 3, 4, 5]);

    await waitFor('5 publications', () => got.length >= 5);
    expect(got.map((g) => g.data)).toEqual([1, 2, 3, 4, 5].map(booking));
    expect(got.map((g) => g.pub.offset)).toEqual([1, 2, 3, 4, 5]);
    for (const g of got) {
      expect(g.pub.topic).toBe(topic);
      expect(typeof g.pub.id).toBe('string');
      expect(Math.abs(g.pub.ts - Date.now())).toBeLessThan(60_000);
    }
    expect(sub.position).toEqual({ epoch: positions[4]?.epoch, offset: 5 });
  });

  it('publishes over the socket to another client, with presence, join/leave and history', async () => {
    const topic = `bookings:${protocol}-socket`;
    const a = client(`alice-${protocol}`, protocol).client;
    const b = client(`bob-${protocol}`, protocol).client;
    const subA = a.subscribe<BookingEvents>(topic);
    const updates: Array<Partial<Booking>> = [];
    subA.on('booking.updated', (d) => updates.push(d));
    const joins: string[] = [];
    subA.on('join', (m) => joins.push(m.user));
    await within('subscribed', subA.ready());

    const subB = b.subscribe<BookingEvents>(topic);
    await within('subscribed', subB.ready());
    await waitFor('alice sees bob join', () => joins.includes(`bob-${protocol}`));

    const members = await subA.presence();
    expect(members.map((m) => m.user).sort()).toEqual([`alice-${protocol}`, `bob-${protocol}`]);

    const { position } = await b.publish(topic, 'booking.updated', { id: 'b-1', seats: 7 });
    expect(position.offset).toBe(1);
    await waitFor('alice gets the update', () => updates.length === 1);
    expect(updates).toEqual([{ id: 'b-1', seats: 7 }]);

    const leaves: string[] = [];
    subA.on('leave', (m) => leaves.push(m.user));
    subB.unsubscribe();
    await waitFor('alice sees bob leave', () => leaves.includes(`bob-${protocol}`));

    const history = await subA.history({ limit: 10 });
    expect(history.publications.map((p) => [p.offset, p.event, p.data])).toEqual([
      [1, 'booking.updated', { id: 'b-1', seats: 7 }],
    ]);
    expect(history.position.offset).toBe(1);
  });
});

describe('publisher against the real REST API', () => {
  it('publishes a batch and dedupes a retried idempotency key', async () => {
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    const topic = 'bookings:idem';
    const first = await publisher.publish(topic, 'booking.created', { id: 1 }, { idempotencyKey: 'same-key' });
    const again = await publisher.publish(topic, 'booking.created', { id: 1 }, { idempotencyKey: 'same-key' });
    expect(again.position).toEqual(first.position);

    const batch = await publisher.batch([
      { topic, event: 'booking.created', data: { id: 2 } },
      { topic, event: 'booking.created', data: { id: 3 } },
    ]);
    expect(batch.results.map((r) => ('position' in r ? r.position.offset : r.error.code))).toEqual([2, 3]);
  });

  it('reports REST errors with the contract code, and never throws in non-throwing mode', async () => {
    const bad = new HubbubPublisher({ url: hub.httpUrl, apiKey: 'sk_wrong', throwOnError: false });
    const res = await bad.publish('bookings', 'booking.created', {});
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.error).toMatchObject({ code: 'unauthorized', status: 401 });

    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    await expect(publisher.publish('nope:1', 'x', {})).rejects.toMatchObject({ code: 'unknown_namespace', status: 404 });
  });
});
