/**
 * `Hubbub.sync()`: the load-then-stream handoff, with fake timers and a fake
 * hub: publications before, during and after `load()`, `recovered: false`
 * mid-way, `load()` failing, and a topic already subscribed ahead of the
 * loaded position.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Synced, SyncStatus } from '../../src/sync.js';
import { connected, FakeWebSocket, makeClient, settle } from '../support/fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

type Events = { 'guest.added': { name: string }; 'guest.removed': { name: string } };
const TOPIC = 'guests:wedding-7';

const pub = (offset: number, name = `g${offset}`, event: keyof Events = 'guest.added') => ({
  type: 'pub' as const,
  topic: TOPIC,
  offset,
  event,
  data: { name },
  ts: 1,
  id: `p${offset}`,
});
const { type: _t, ...bare } = pub(0);
const stored = (offset: number) => ({ ...bare, offset, data: { name: `g${offset}` }, id: `p${offset}` });

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A guest list: the loaded names, then every publication applied (offset noted). */
async function start() {
  const made = await connected({}, { ping_interval: 0 });
  const loads: Array<ReturnType<typeof deferred<string[]>>> = [];
  const load = vi.fn(() => {
    const d = deferred<string[]>();
    loads.push(d);
    return d.promise;
  });
  const applied: number[] = [];
  const synced: Synced<Events, string[]> = made.client.sync<Events, string[]>(TOPIC, {
    load,
    apply: (state, p) => {
      applied.push(p.offset);
      if (p.event === 'guest.added') return [...state, p.data.name];
      return state.filter((n) => n !== p.data.name);
    },
  });
  const statuses: SyncStatus[] = [];
  const errors: string[] = [];
  synced.on('status', (s) => statuses.push(s));
  synced.on('error', (e) => errors.push(e.code));
  await settle();
  return { ...made, synced, load, loads, applied, statuses, errors };
}

/** Answers the position read (`history` with `limit: 0`). */
function answerPosition(ws: FakeWebSocket, offset: number, epoch = 'e1') {
  const h = ws.lastOf('history');
  expect(h).toMatchObject({ topic: TOPIC, limit: 0 });
  ws.reply(h, { type: 'history', publications: [], position: { epoch, offset } });
}

describe('sync: load then stream', () => {
  it('applies what arrived before, during and after load() in order, once each', async () => {
    const { ws, synced, load, loads, applied, statuses } = await start();
    expect(synced.status).toBe('loading');
    answerPosition(ws, 5);
    await settle();
    // Subscribed from the read position, before load() ran.
    const sub = ws.lastOf('subscribe');
    expect(sub).toMatchObject({ topic: TOPIC, since: { epoch: 'e1', offset: 5 } });
    expect(load).toHaveBeenCalledTimes(1);
    // Before: published after the position read, recovered by the subscribe.
    ws.reply(sub, {
      type: 'subscribed',
      topic: TOPIC,
      position: { epoch: 'e1', offset: 6 },
      recovered: true,
      publications: [stored(6)],
    });
    await settle();
    // During load().
    ws.push(pub(7));
    ws.push(pub(7)); // a duplicate
    expect(synced.state).toBeUndefined();
    loads[0]!.resolve(['g1', 'g2', 'g3', 'g4', 'g5']);
    await settle();
    expect(synced.state).toEqual(['g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7']);
    expect(synced.status).toBe('live');
    // After.
    ws.push(pub(8, 'g3', 'guest.removed'));
    ws.push(pub(6)); // late duplicate
    expect(synced.state).toEqual(['g1', 'g2', 'g4', 'g5', 'g6', 'g7']);
    expect(applied).toEqual([6, 7, 8]);
    expect(synced.position).toEqual({ epoch: 'e1', offset: 8 });
    expect(statuses).toEqual(['live']);
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('emits change with the offset applied', async () => {
    const { ws, synced, loads } = await start();
    const changes: Array<number | undefined> = [];
    synced.on('change', (_s, info) => changes.push(info.pub?.offset));
    answerPosition(ws, 0);
    await settle();
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: TOPIC, position: { epoch: 'e1', offset: 0 }, recovered: true, publications: [] });
    loads[0]!.resolve([]);
    await settle();
    ws.push(pub(1));
    expect(changes).toEqual([undefined, 1]);
  });

  it('loads again, after a backoff, when publications were lost (recovered: false mid-way)', async () => {
    const { ws, synced, load, loads, errors, statuses } = await start();
    answerPosition(ws, 5);
    await settle();
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: TOPIC, position: { epoch: 'e1', offset: 5 }, recovered: true, publications: [] });
    loads[0]!.resolve(['a']);
    await settle();
    ws.push(pub(6));
    expect(synced.state).toEqual(['a', 'g6']);

    // The connection drops; the hub lost history meanwhile.
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1500);
    const ws2 = FakeWebSocket.last;
    ws2.handshake({ ping_interval: 0 });
    await settle();
    const again = ws2.lastOf('subscribe');
    expect(again.since).toEqual({ epoch: 'e1', offset: 6 });
    ws2.reply(again, { type: 'subscribed', topic: TOPIC, position: { epoch: 'e2', offset: 40 }, recovered: false, publications: [] });
    await settle();
    expect(errors).toEqual(['reset']);
    expect(synced.status).toBe('loading');
    ws2.push(pub(41)); // held while loading again
    // Not at once: after the backoff (1000..8000 ms, random 0.5: 1500).
    await vi.advanceTimersByTimeAsync(1499);
    expect(ws2.allOf('history')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    answerPosition(ws2, 41, 'e2');
    await settle();
    expect(load).toHaveBeenCalledTimes(2);
    ws2.push(pub(42));
    loads[1]!.resolve(['b']);
    await settle();
    expect(synced.state).toEqual(['b', 'g42']);
    expect(synced.position).toEqual({ epoch: 'e2', offset: 42 });
    expect(statuses).toEqual(['live', 'loading', 'live']);
    expect(ws2.allOf('subscribe')).toHaveLength(1); // the subscription stayed; only the state reloaded
  });

  it('retries a failing load() with a growing delay, never in a tight loop', async () => {
    const { ws, synced, load, loads, errors } = await start();
    answerPosition(ws, 2);
    await settle();
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: TOPIC, position: { epoch: 'e1', offset: 2 }, recovered: true, publications: [] });
    loads[0]!.reject(new Error('api down'));
    await settle();
    expect(errors).toEqual(['load_failed']);
    const times: number[] = [];
    for (let i = 1; i <= 3; i++) {
      const t0 = Date.now();
      while (ws.allOf('history').length === i) await vi.advanceTimersByTimeAsync(100);
      times.push(Date.now() - t0);
      answerPosition(ws, 2);
      await settle();
      if (i < 3) loads[i]!.reject(new Error('api down'));
      await settle();
    }
    expect(times).toEqual([1500, 2500, 4500]);
    expect(load).toHaveBeenCalledTimes(4);
    ws.push(pub(3)); // arrives during the fourth load
    loads[3]!.resolve(['x']);
    await settle();
    expect(synced.state).toEqual(['x', 'g3']);
    expect(synced.status).toBe('live');
  });

  it('fills from history what a topic already subscribed delivered before this state was loaded', async () => {
    const { client, ws, synced, loads, applied } = await start();
    // Another component subscribed the topic earlier; it is live at 9.
    const other = client.subscribe(TOPIC);
    await settle();
    ws.reply(ws.allOf('subscribe')[0]!, { type: 'subscribed', topic: TOPIC, position: { epoch: 'e1', offset: 9 }, publications: [] });
    answerPosition(ws, 7);
    await settle();
    expect(ws.allOf('subscribe')).toHaveLength(1); // shared
    loads[0]!.resolve([]);
    await settle();
    const fill = ws.lastOf('history');
    expect(fill).toMatchObject({ since: { epoch: 'e1', offset: 7 }, limit: 2 });
    ws.push(pub(10)); // live, held during the fill
    ws.reply(fill, { type: 'history', publications: [stored(8), stored(9)], position: { epoch: 'e1', offset: 10 } });
    await settle();
    expect(applied).toEqual([8, 9, 10]);
    expect(synced.status).toBe('live');
    other.unsubscribe();
  });

  it('loads again when history cannot fill a hole', async () => {
    const { ws, synced, loads, errors } = await start();
    answerPosition(ws, 1);
    await settle();
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: TOPIC, position: { epoch: 'e1', offset: 1 }, recovered: true, publications: [] });
    loads[0]!.resolve([]);
    await settle();
    // The feed sees a hole at 2..3 and recovers it itself; here history lost them:
    ws.push(pub(4));
    await settle();
    const resub = ws.lastOf('subscribe');
    ws.reply(ws.lastOf('unsubscribe'), { type: 'unsubscribed', topic: TOPIC });
    await settle();
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: TOPIC, position: { epoch: 'e1', offset: 4 }, recovered: false, publications: [] });
    void resub;
    await settle();
    expect(errors).toContain('reset');
    expect(synced.status).toBe('loading');
    synced.close();
    expect(synced.status).toBe('closed');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(loads).toHaveLength(1);
  });

  it('fails for good, without retrying, when the topic may not be read', async () => {
    const { ws, synced, load, errors } = await start();
    ws.reply(ws.lastOf('history'), { type: 'error', code: 'forbidden', message: 'no subscribe claim' });
    await settle();
    expect(synced.status).toBe('failed');
    expect(errors).toEqual(['forbidden']);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(ws.allOf('history')).toHaveLength(1);
    expect(ws.allOf('subscribe')).toHaveLength(0);
    expect(load).not.toHaveBeenCalled();
  });
  it('called before connect(), reads the position once connected, with no error and no backoff', async () => {
    const { client } = makeClient();
    const load = vi.fn(() => ['g1']);
    const synced = client.sync<Events, string[]>(TOPIC, { load, apply: (state) => state });
    const errors: string[] = [];
    synced.on('error', (e) => errors.push(e.code));
    // Like subscribe(), it waits for the connection, however long connect() takes to come.
    await vi.advanceTimersByTimeAsync(30_000);
    expect(errors).toEqual([]);
    expect(synced.status).toBe('loading');
    client.connect();
    await settle();
    const ws = FakeWebSocket.last;
    ws.handshake({ ping_interval: 0 });
    await settle();
    answerPosition(ws, 1);
    await settle();
    expect(ws.allOf('history')).toHaveLength(1);
    ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: TOPIC, position: { epoch: 'e1', offset: 1 }, recovered: true, publications: [] });
    await settle();
    expect(errors).toEqual([]);
    expect(load).toHaveBeenCalledTimes(1);
    expect(synced.state).toEqual(['g1']);
    expect(synced.status).toBe('live');
    synced.close();
  });
});
