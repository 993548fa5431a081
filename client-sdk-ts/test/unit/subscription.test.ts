import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Publication } from '../../src/wire.js';
import { connected, FakeWebSocket, settle } from '../support/fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

interface Booking {
  id: number;
  guest: string;
}
type BookingEvents = {
  'booking.created': Booking;
  'booking.cancelled': { id: number; reason: string };
};

const pub = (offset: number, event = 'booking.created', topic = 'bookings:42', id = `p${offset}`) => ({
  type: 'pub',
  topic,
  offset,
  event,
  data: { id: offset, guest: `g${offset}` },
  ts: 1_700_000_000_000 + offset,
  id,
});

/** Subscribes and answers the subscribe at `offset`, returning what the app saw. */
async function subscribed(offset = 5, epoch = 'e1') {
  const made = await connected({}, { ping_interval: 0 });
  const sub = made.client.subscribe<BookingEvents>('bookings:42');
  const seen: number[] = [];
  const resets: unknown[] = [];
  sub.on('booking.created', (data, p) => {
    expect(p.offset).toBe(data.id);
    seen.push(data.id);
  });
  sub.on('reset', (info) => resets.push(info));
  await settle();
  const cmd = made.ws.lastOf('subscribe');
  expect(cmd).toMatchObject({ topic: 'bookings:42' });
  expect(cmd.since).toBeUndefined();
  made.ws.reply(cmd, { type: 'subscribed', topic: 'bookings:42', position: { epoch, offset }, publications: [] });
  await settle();
  expect(sub.state).toBe('subscribed');
  return { ...made, sub, seen, resets };
}

describe('subscriptions', () => {
  it('delivers typed events in order and tracks the position', async () => {
    const { sub, seen, ws } = await subscribed(5);
    const all: Publication[] = [];
    sub.on('publication', (p) => all.push(p));
    ws.push(pub(6));
    ws.push(pub(7, 'booking.cancelled'));
    ws.push(pub(8));
    expect(seen).toEqual([6, 8]);
    expect(all.map((p) => p.offset)).toEqual([6, 7, 8]);
    expect(all[0]).toEqual({
      topic: 'bookings:42',
      offset: 6,
      event: 'booking.created',
      data: { id: 6, guest: 'g6' },
      ts: 1_700_000_000_006,
      id: 'p6',
    });
    expect(sub.position).toEqual({ epoch: 'e1', offset: 8 });
  });

  it('drops duplicates by offset without asking the hub', async () => {
    const { seen, ws } = await subscribed(5);
    ws.push(pub(6));
    ws.push(pub(7));
    ws.push(pub(7));
    ws.push(pub(6));
    ws.push(pub(8));
    expect(seen).toEqual([6, 7, 8]);
    expect(ws.allOf('unsubscribe')).toHaveLength(0);
    expect(ws.allOf('subscribe')).toHaveLength(1);
  });

  it('recovers a live gap by subscribing again with since, holding back what arrives meanwhile', async () => {
    const { seen, ws, sub } = await subscribed(5);
    ws.push(pub(6));
    ws.push(pub(9)); // 7 and 8 are missing
    expect(seen).toEqual([6]);
    expect(sub.state).toBe('subscribing');
    await settle();
    const unsub = ws.lastOf('unsubscribe');
    expect(unsub).toMatchObject({ topic: 'bookings:42' });
    ws.push(pub(10)); // still arriving before the unsubscribe is answered: held back
    ws.reply(unsub, { type: 'unsubscribed', topic: 'bookings:42' });
    await settle();
    const again = ws.lastOf('subscribe');
    expect(again.since).toEqual({ epoch: 'e1', offset: 6 });
    ws.push(pub(11)); // a live one that overtook the reply: held back too
    ws.reply(again, {
      type: 'subscribed',
      topic: 'bookings:42',
      position: { epoch: 'e1', offset: 10 },
      recovered: true,
      publications: [pub(7), pub(8), pub(9), pub(10)].map(({ type: _t, ...p }) => p),
    });
    await settle();
    ws.push(pub(12));
    expect(seen).toEqual([6, 7, 8, 9, 10, 11, 12]);
    expect(sub.state).toBe('subscribed');
    expect(sub.position).toEqual({ epoch: 'e1', offset: 12 });
  });

  it('re-subscribes with since after a reconnect and delivers what was missed exactly once', async () => {
    const { seen, ws, sub } = await subscribed(5);
    ws.push(pub(6));
    ws.push(pub(7));
    ws.serverClose(4201, 'rebalance', true);
    expect(sub.state).toBe('subscribing');
    await settle();
    const ws2 = FakeWebSocket.last;
    expect(ws2).not.toBe(ws);
    ws2.handshake({ ping_interval: 0 });
    await settle();
    const cmd = ws2.lastOf('subscribe');
    expect(cmd.since).toEqual({ epoch: 'e1', offset: 7 });
    ws2.reply(cmd, {
      type: 'subscribed',
      topic: 'bookings:42',
      position: { epoch: 'e1', offset: 9 },
      recovered: true,
      publications: [pub(7), pub(8), pub(9)].map(({ type: _t, ...p }) => p), // 7 again: dropped
    });
    await settle();
    ws2.push(pub(9)); // and a live duplicate
    ws2.push(pub(10));
    expect(seen).toEqual([6, 7, 8, 9, 10]);
  });

  it('emits reset when the hub answers recovered: false, and goes on from the new position', async () => {
    const { seen, resets, ws, sub } = await subscribed(5);
    const states: string[] = [];
    sub.on('subscribed', (info) => states.push(`subscribed:${String(info.recovered)}`));
    ws.push(pub(6));
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1500);
    const ws2 = FakeWebSocket.last;
    ws2.handshake({ ping_interval: 0 });
    await settle();
    const cmd = ws2.lastOf('subscribe');
    ws2.reply(cmd, {
      type: 'subscribed',
      topic: 'bookings:42',
      position: { epoch: 'e1', offset: 2000 },
      recovered: false,
      publications: [],
    });
    await settle();
    expect(resets).toEqual([{ position: { epoch: 'e1', offset: 2000 } }]);
    expect(states).toEqual(['subscribed:false']);
    ws2.push(pub(2001));
    expect(seen).toEqual([6, 2001]);
  });

  it('treats a new epoch in the reply as not recovered', async () => {
    const { resets, ws } = await subscribed(5);
    ws.serverClose(4200, 'shutdown', true);
    await settle();
    const ws2 = FakeWebSocket.last;
    ws2.handshake({ ping_interval: 0 });
    await settle();
    ws2.reply(ws2.lastOf('subscribe'), {
      type: 'subscribed',
      topic: 'bookings:42',
      position: { epoch: 'e2', offset: 1 },
      recovered: true,
      publications: [],
    });
    await settle();
    expect(resets).toEqual([{ position: { epoch: 'e2', offset: 1 } }]);
  });

  it('detects a live epoch change (offsets restarting) and recovers with since → reset', async () => {
    const { seen, resets, ws } = await subscribed(5);
    ws.push(pub(6));
    ws.push(pub(7));
    ws.push(pub(1, 'booking.created', 'bookings:42', 'new-epoch-1')); // not the 1 the SDK never saw
    await settle();
    const unsub = ws.lastOf('unsubscribe');
    ws.reply(unsub, { type: 'unsubscribed', topic: 'bookings:42' });
    await settle();
    const again = ws.lastOf('subscribe');
    expect(again.since).toEqual({ epoch: 'e1', offset: 7 });
    ws.reply(again, {
      type: 'subscribed',
      topic: 'bookings:42',
      position: { epoch: 'e2', offset: 1 },
      recovered: false,
      publications: [],
    });
    await settle();
    expect(resets).toEqual([{ position: { epoch: 'e2', offset: 1 } }]);
    ws.push(pub(2, 'booking.created', 'bookings:42', 'new-epoch-2'));
    expect(seen).toEqual([6, 7, 2]);
  });

  it('asks again when a "recovered" reply does not reach its own position, and gives up with reset', async () => {
    const { seen, resets, ws } = await subscribed(5);
    ws.push(pub(8)); // gap 6..7
    for (let round = 0; round < 3; round++) {
      await settle();
      ws.reply(ws.lastOf('unsubscribe'), { type: 'unsubscribed', topic: 'bookings:42' });
      await settle();
      ws.reply(ws.lastOf('subscribe'), {
        type: 'subscribed',
        topic: 'bookings:42',
        position: { epoch: 'e1', offset: 8 },
        recovered: true,
        publications: [], // claims recovery but hands nothing over
      });
      await settle();
    }
    expect(ws.allOf('subscribe')).toHaveLength(4);
    expect(resets).toEqual([{ position: { epoch: 'e1', offset: 8 } }]);
    ws.push(pub(9));
    expect(seen).toEqual([9]);
  });

  it('fails a subscription the hub refuses for good, and does not retry it', async () => {
    const { client, ws } = await connected({}, { ping_interval: 0 });
    const sub = client.subscribe('secret:1');
    const errors: unknown[] = [];
    sub.on('error', (e) => errors.push(e));
    const ready = sub.ready().catch((e: unknown) => e);
    await settle();
    ws.reply(ws.lastOf('subscribe'), { type: 'error', code: 'forbidden', message: 'no claim' });
    await settle();
    expect(sub.state).toBe('failed');
    expect(errors).toMatchObject([{ code: 'forbidden' }]);
    expect(await ready).toMatchObject({ code: 'forbidden' });
    ws.serverClose(4201, 'rebalance');
    await settle();
    FakeWebSocket.last.handshake({ ping_interval: 0 });
    await settle();
    expect(FakeWebSocket.last.allOf('subscribe')).toHaveLength(0);
  });

  it('fails a subscription the hub ends with an unsolicited unsubscribed (a narrower refresh)', async () => {
    const { sub, seen, ws } = await subscribed(5);
    const errors: unknown[] = [];
    sub.on('error', (e) => errors.push(e));
    ws.push({ type: 'unsubscribed', topic: 'bookings:42', code: 'forbidden', message: 'not allowed any more' });
    await settle();
    expect(sub.state).toBe('failed');
    expect(errors).toMatchObject([{ code: 'forbidden', message: 'not allowed any more' }]);
    ws.push(pub(6));
    expect(seen).toEqual([]);
    ws.serverClose(4201, 'rebalance');
    await settle();
    FakeWebSocket.last.handshake({ ping_interval: 0 });
    await settle();
    expect(FakeWebSocket.last.allOf('subscribe')).toHaveLength(0);
  });

  it('retries a subscribe that failed for a passing reason', async () => {
    const { client, ws } = await connected({}, { ping_interval: 0 });
    const sub = client.subscribe('bookings:1');
    await settle();
    ws.reply(ws.lastOf('subscribe'), { type: 'error', code: 'unavailable', message: 'broker down' });
    await vi.advanceTimersByTimeAsync(1500);
    expect(ws.allOf('subscribe')).toHaveLength(2);
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: 'bookings:1', position: { epoch: 'e', offset: 0 }, publications: [] });
    await settle();
    expect(sub.state).toBe('subscribed');
  });

  it('subscribes once when a `connected` listener subscribes', async () => {
    const { client, ws } = await connected({}, { ping_interval: 0 });
    client.subscribe('bookings:1');
    await settle();
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: 'bookings:1', position: { epoch: 'e', offset: 0 }, publications: [] });
    client.on('connected', () => client.subscribe('bookings:2'));
    ws.serverClose(4201, 'rebalance');
    await settle();
    FakeWebSocket.last.handshake({ ping_interval: 0 });
    await settle();
    expect(FakeWebSocket.last.allOf('subscribe').map((f) => f.topic)).toEqual(['bookings:1', 'bookings:2']);
  });

  it('shares one subscription per topic and unsubscribes when the last handle is released', async () => {
    const { client, ws } = await connected({}, { ping_interval: 0 });
    const a = client.subscribe('bookings:7');
    const b = client.subscribe('bookings:7');
    expect(a).not.toBe(b); // a handle each, one subscription on the wire
    await settle();
    expect(ws.allOf('subscribe')).toHaveLength(1);
    a.unsubscribe();
    await settle();
    expect(ws.allOf('unsubscribe')).toHaveLength(0);
    b.unsubscribe();
    await settle();
    expect(ws.lastOf('unsubscribe')).toMatchObject({ topic: 'bookings:7' });
    expect(b.state).toBe('unsubscribed');
    expect(client.getSubscription('bookings:7')).toBeUndefined();
  });

  it('routes join/leave, and asks for history and presence', async () => {
    const { sub, ws } = await subscribed(5);
    const joins: string[] = [];
    sub.on('join', (m) => joins.push(`+${m.user}`));
    sub.on('leave', (m) => joins.push(`-${m.user}`));
    ws.push({ type: 'join', topic: 'bookings:42', member: { client_id: 'c2', user: 'ann', info: null } });
    ws.push({ type: 'leave', topic: 'bookings:42', member: { client_id: 'c2', user: 'ann', info: null } });
    ws.push({ type: 'join', topic: 'other', member: { client_id: 'c3', user: 'bob', info: null } });
    expect(joins).toEqual(['+ann', '-ann']);

    const history = sub.history({ since: { epoch: 'e1', offset: 2 }, limit: 10 });
    await settle();
    const h = ws.lastOf('history');
    expect(h).toMatchObject({ topic: 'bookings:42', since: { epoch: 'e1', offset: 2 }, limit: 10 });
    ws.reply(h, { type: 'history', publications: [pub(3)], position: { epoch: 'e1', offset: 5 } });
    expect((await history).publications.map((p) => p.offset)).toEqual([3]);

    const presence = sub.presence();
    await settle();
    ws.reply(ws.lastOf('presence'), { type: 'presence', members: [{ client_id: 'c1', user: 'me', info: null }] });
    expect(await presence).toEqual([{ client_id: 'c1', user: 'me', info: null }]);
  });

  it('types app events by the event map (compile-time check)', async () => {
    const { sub } = await subscribed(0);
    sub.on('booking.cancelled', (data) => {
      const reason: string = data.reason;
      void reason;
    });
    // @ts-expect-error: not an event of BookingEvents
    sub.on('booking.exploded', () => {});
    // @ts-expect-error: `guest` is a string
    sub.on('booking.created', (data) => ((): number => data.guest)());
    sub.on('reset', (info) => void info.position.epoch);
    expect(sub.state).toBe('subscribed');
  });

  it('with latest: true, delivers the newest publication first (marked latest), then live ones', async () => {
    const { client, ws } = await connected({}, { ping_interval: 0 });
    const sub = client.subscribe<BookingEvents>('bookings:42', { latest: true });
    const seen: Array<[number, boolean]> = [];
    sub.on('publication', (p) => seen.push([p.offset, p.latest === true]));
    await settle();
    const cmd = ws.lastOf('subscribe');
    expect(cmd).toMatchObject({ topic: 'bookings:42', latest: true });
    expect(cmd.since).toBeUndefined();
    const { type: _t, ...newest } = pub(9);
    ws.reply(cmd, { type: 'subscribed', topic: 'bookings:42', position: { epoch: 'e1', offset: 9 }, publications: [newest] });
    await settle();
    ws.push(pub(9)); // held by the hub's writer in practice; a duplicate here
    ws.push(pub(10));
    expect(seen).toEqual([
      [9, true],
      [10, false],
    ]);
    // A later `latest` handle on the live topic gets the newest too, and nothing else is repeated.
    const late = client.subscribe<BookingEvents>('bookings:42', { latest: true });
    const lateSeen: number[] = [];
    late.on('publication', (p) => lateSeen.push(p.offset));
    await settle();
    expect(lateSeen).toEqual([10]);
    expect(ws.allOf('subscribe')).toHaveLength(1);
    // After a reconnect it recovers with `since`, not `latest`.
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1500);
    FakeWebSocket.last.handshake({ ping_interval: 0 });
    await settle();
    expect(FakeWebSocket.last.lastOf('subscribe')).toMatchObject({ since: { epoch: 'e1', offset: 10 } });
    expect(FakeWebSocket.last.lastOf('subscribe').latest).toBeUndefined();
  });

  it('with latest: true, asks for the newest again when publications were lost (recovered: false)', async () => {
    const { client, ws } = await connected({}, { ping_interval: 0 });
    const sub = client.subscribe('bookings:42', { latest: true });
    const seen: string[] = [];
    sub.on('publication', (p) => seen.push(`${p.offset}${p.latest ? '*' : ''}`));
    sub.on('reset', () => seen.push('reset'));
    await settle();
    const { type: _t, ...p3 } = pub(3);
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: 'bookings:42', position: { epoch: 'e1', offset: 3 }, publications: [p3] });
    await settle();
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1500);
    const ws2 = FakeWebSocket.last;
    ws2.handshake({ ping_interval: 0 });
    await settle();
    ws2.reply(ws2.lastOf('subscribe'), { type: 'subscribed', topic: 'bookings:42', position: { epoch: 'e2', offset: 7 }, recovered: false, publications: [] });
    await settle();
    ws2.reply(ws2.lastOf('unsubscribe'), { type: 'unsubscribed', topic: 'bookings:42' });
    await settle();
    const again = ws2.lastOf('subscribe');
    expect(again).toMatchObject({ latest: true });
    expect(again.since).toBeUndefined();
    const { type: _u, ...p7 } = pub(7);
    ws2.reply(again, { type: 'subscribed', topic: 'bookings:42', position: { epoch: 'e2', offset: 7 }, publications: [p7] });
    await settle();
    ws2.push(pub(8));
    expect(seen).toEqual(['3*', 'reset', '7*', '8']);
  });
});
