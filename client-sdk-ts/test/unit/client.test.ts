import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HubbubError } from '../../src/errors.js';
import { connected, FakeWebSocket, makeClient, settle } from '../support/fake-socket.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const names = (events: Array<[string, unknown]>, only = ['connecting', 'connected', 'disconnected']) =>
  events.filter(([n]) => only.includes(n)).map(([n]) => n);

describe('connection state machine', () => {
  it('fetches a token, opens the socket with the sub-protocol and sends connect first', async () => {
    const { client, getToken, events } = makeClient();
    expect(client.state).toBe('disconnected');
    client.connect();
    expect(client.state).toBe('connecting');
    await settle();
    expect(getToken).toHaveBeenCalledTimes(1);
    const ws = FakeWebSocket.last;
    expect(ws.url).toBe('ws://hub.test/ws');
    expect(ws.protocols).toEqual(['hubbub.v1.json']);
    ws.accept();
    expect(ws.sent).toHaveLength(1);
    expect(ws.sent[0]).toMatchObject({ type: 'connect', token: 'token-1' });
    expect(typeof ws.sent[0]?.id).toBe('number');
    ws.reply(ws.lastOf('connect'), { type: 'connected', client_id: 'c9', node: 'n2', expires_in: null, ping_interval: 25 });
    await settle();
    expect(client.state).toBe('connected');
    expect(names(events)).toEqual(['connecting', 'connected']);
    expect(events.find(([n]) => n === 'connected')?.[1]).toEqual({ transport: 'websocket', clientId: 'c9', node: 'n2' });
  });

  it.each([4000, 4001, 4003, 4009])('stops on terminal close %i', async (code) => {
    const { client, events, ws } = await connected();
    ws.serverClose(code, 'nope', true, false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(client.state).toBe('disconnected');
    const info = events.filter(([n]) => n === 'disconnected').map(([, i]) => i);
    expect(info).toEqual([{ code, reason: 'nope', reconnect: false }]);
  });

  it.each([4101, 4102, 4103, 4104, 1006, 1011])('backs off after close %i, then reconnects with the cached token', async (code) => {
    const { client, events, getToken, ws } = await connected();
    ws.serverClose(code, 'r');
    const info = events.filter(([n]) => n === 'disconnected').map(([, i]) => i);
    // random() = 0.5, attempt 0: minMs + 0.5 * (2 * minMs - minMs) = 1500
    expect(info).toEqual([{ code, reason: 'r', reconnect: true, delayMs: 1500 }]);
    await vi.advanceTimersByTimeAsync(1499);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last.handshake();
    await settle();
    expect(client.state).toBe('connected');
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(FakeWebSocket.last.lastOf('connect').token).toBe('token-1');
  });

  it('grows the delay while attempts keep failing and resets it after connecting', async () => {
    const { events, ws } = await connected({ random: () => 1 });
    ws.serverClose(1006);
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const last = events.filter(([n]) => n === 'disconnected').at(-1)?.[1] as { delayMs: number };
      delays.push(last.delayMs);
      await vi.advanceTimersByTimeAsync(last.delayMs);
      FakeWebSocket.last.refuse();
      await settle();
    }
    expect(delays).toEqual([2000, 4000, 8000, 8000, 8000]);
    const last = events.filter(([n]) => n === 'disconnected').at(-1)?.[1] as { delayMs: number };
    await vi.advanceTimersByTimeAsync(last.delayMs);
    FakeWebSocket.last.handshake();
    await settle();
    FakeWebSocket.last.serverClose(1006);
    expect(events.filter(([n]) => n === 'disconnected').at(-1)?.[1]).toMatchObject({ delayMs: 2000 });
  });

  it('refetches the token after 4100 before reconnecting', async () => {
    const { getToken, ws } = await connected();
    ws.serverClose(4100, 'token_expired', true);
    await vi.advanceTimersByTimeAsync(2000);
    expect(getToken).toHaveBeenCalledTimes(2);
    const next = FakeWebSocket.last;
    expect(next).not.toBe(ws);
    next.accept();
    expect(next.lastOf('connect').token).toBe('token-2');
  });

  it('handles a refused connect (expired token: error, disconnect 4100, close) by getting a new token', async () => {
    const { client, getToken, events } = makeClient();
    client.connect();
    await settle();
    const ws = FakeWebSocket.last;
    ws.accept();
    ws.reply(ws.lastOf('connect'), { type: 'error', code: 'unauthorized', message: 'token expired' });
    ws.serverClose(4100, 'token_expired', true);
    await settle();
    expect(events.filter(([n]) => n === 'disconnected').map(([, i]) => i)).toEqual([
      { code: 4100, reason: 'token_expired', reconnect: true, delayMs: 1500 },
    ]);
    await vi.advanceTimersByTimeAsync(1500);
    expect(getToken).toHaveBeenCalledTimes(2);
  });

  it('treats a refused connect without a close code from the hub as the error says (unauthorized: stop)', async () => {
    const { client, events } = makeClient();
    client.connect();
    await settle();
    const ws = FakeWebSocket.last;
    ws.accept();
    ws.reply(ws.lastOf('connect'), { type: 'error', code: 'unauthorized', message: 'bad signature' });
    await vi.advanceTimersByTimeAsync(1000);
    expect(client.state).toBe('disconnected');
    expect(events.filter(([n]) => n === 'disconnected').map(([, i]) => i)).toEqual([
      { code: 4001, reason: 'unauthorized', reconnect: false },
    ]);
  });

  it('reconnects at once on 4200/4201, and backs off if that reconnect fails', async () => {
    const { events, ws } = await connected();
    ws.serverClose(4201, 'rebalance', true);
    await settle();
    expect(events.filter(([n]) => n === 'disconnected').at(-1)?.[1]).toEqual({
      code: 4201,
      reason: 'rebalance',
      reconnect: true,
      delayMs: 0,
    });
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last.refuse();
    await settle();
    expect(events.filter(([n]) => n === 'disconnected').at(-1)?.[1]).toMatchObject({ delayMs: 1500 });
  });

  it('reports a `disconnect` frame and the close that follows once', async () => {
    const { events, ws } = await connected();
    ws.push({ type: 'disconnect', code: 4101, reason: 'slow_consumer', reconnect: true });
    ws.serverClose(4101, 'slow_consumer');
    await settle();
    expect(events.filter(([n]) => n === 'disconnected')).toHaveLength(1);
    expect(ws.closedByClient).toBe(1000);
  });

  it('stops on disconnect() and rejects commands waiting for a connection', async () => {
    const { client, events, ws } = await connected();
    client.disconnect();
    expect(ws.closedByClient).toBe(1000);
    expect(events.filter(([n]) => n === 'disconnected').at(-1)?.[1]).toEqual({
      code: 1000,
      reason: 'client',
      reconnect: false,
    });
    await expect(client.publish('bookings', 'x', {})).rejects.toMatchObject({ code: 'closed' });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('times out when the socket never opens', async () => {
    const { client, events } = makeClient();
    client.connect();
    await settle();
    await vi.advanceTimersByTimeAsync(5000);
    expect(events.filter(([n]) => n === 'disconnected').at(-1)?.[1]).toMatchObject({ code: 3008, reconnect: true });
    expect(FakeWebSocket.instances[0]?.closedByClient).toBe(1000);
    expect(client.state).toBe('disconnected');
  });

  it('backs off when getToken() throws, and reports it', async () => {
    let calls = 0;
    const { client, events } = makeClient({
      getToken: async () => {
        calls++;
        if (calls === 1) throw new Error('auth server down');
        return 'late-token';
      },
    });
    client.connect();
    await settle();
    expect(events.find(([n]) => n === 'error')?.[1]).toMatchObject({ code: 'token_unavailable' });
    expect(events.filter(([n]) => n === 'disconnected').at(-1)?.[1]).toMatchObject({ code: 3401, reconnect: true });
    await vi.advanceTimersByTimeAsync(1500);
    FakeWebSocket.last.accept();
    expect(FakeWebSocket.last.lastOf('connect').token).toBe('late-token');
  });
});

describe('token refresh', () => {
  it('refreshes a third of the lifetime before expiry (at most refreshMarginMs) and keeps refreshing', async () => {
    const { getToken, ws } = await connected({ refreshMarginMs: 30_000 }, { expires_in: 30, ping_interval: 0 });
    await vi.advanceTimersByTimeAsync(19_999);
    expect(ws.allOf('refresh')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(getToken).toHaveBeenCalledTimes(2);
    const refresh = ws.lastOf('refresh');
    expect(refresh.token).toBe('token-2');
    ws.reply(refresh, { type: 'refreshed', expires_in: 3600 });
    await settle();
    // 3600 s lifetime: margin is the 30 s cap.
    await vi.advanceTimersByTimeAsync(3570_000 - 1);
    expect(ws.allOf('refresh')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(ws.allOf('refresh')).toHaveLength(2);
  });

  it('does not refresh a token that does not expire', async () => {
    const { getToken, ws } = await connected({}, { expires_in: null, ping_interval: 0 });
    await vi.advanceTimersByTimeAsync(24 * 3600_000);
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(ws.allOf('refresh')).toHaveLength(0);
  });

  it('retries a failed refresh and reports the error', async () => {
    const { events, ws } = await connected({}, { expires_in: 30 });
    await vi.advanceTimersByTimeAsync(20_000);
    ws.reply(ws.lastOf('refresh'), { type: 'error', code: 'unavailable', message: 'try later' });
    await settle();
    expect(events.find(([n]) => n === 'error')?.[1]).toMatchObject({ code: 'unavailable' });
    await vi.advanceTimersByTimeAsync(1500);
    expect(ws.allOf('refresh')).toHaveLength(2);
  });

  it('uses a fresh token on reconnect when the cached one is due for refresh', async () => {
    const { getToken, ws } = await connected({ backoff: { minMs: 7000, maxMs: 8000 } }, { expires_in: 9 });
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(7500); // reconnects after 9 s - 3 s margin
    expect(getToken).toHaveBeenCalledTimes(2);
    FakeWebSocket.last.accept();
    expect(FakeWebSocket.last.lastOf('connect').token).toBe('token-2');
  });
});

describe('commands', () => {
  it('says that connect() comes first when a command is sent before it', async () => {
    const { client } = makeClient();
    const err = await client.publish('bookings:42', 'booking.created', { id: '1001' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubbubError);
    expect((err as HubbubError).code).toBe('closed');
    expect((err as HubbubError).message).toContain('call connect() first');
  });

  it('rejects a command without a reply after requestTimeoutMs', async () => {
    const { client, ws } = await connected();
    const p = client.publish('bookings', 'booking.created', { id: 1 });
    const caught = p.catch((e: unknown) => e);
    await settle();
    expect(ws.lastOf('publish')).toMatchObject({ topic: 'bookings', event: 'booking.created', data: { id: 1 } });
    await vi.advanceTimersByTimeAsync(4999);
    await vi.advanceTimersByTimeAsync(1);
    const err = await caught;
    expect(err).toBeInstanceOf(HubbubError);
    expect(err).toMatchObject({ code: 'timeout' });
  });

  it('resolves a command with its reply and rejects with the error reply', async () => {
    const { client, ws } = await connected();
    const ok = client.publish('bookings', 'e', 1, { idempotencyKey: 'k1' });
    await settle();
    const cmd = ws.lastOf('publish');
    expect(cmd.idempotency_key).toBe('k1');
    ws.reply(cmd, { type: 'published', position: { epoch: 'e1', offset: 3 } });
    await expect(ok).resolves.toEqual({ position: { epoch: 'e1', offset: 3 } });
    const bad = client.publish('nope', 'e', 1);
    await settle();
    ws.reply(ws.lastOf('publish'), { type: 'error', code: 'forbidden', message: 'no publish claim' });
    await expect(bad).rejects.toMatchObject({ code: 'forbidden', message: 'no publish claim' });
  });

  it('waits for the connection, within the deadline', async () => {
    const { client } = makeClient();
    client.connect();
    const p = client.publish('bookings', 'e', 1, { timeoutMs: 3000 });
    await settle();
    FakeWebSocket.last.handshake();
    await settle();
    const ws = FakeWebSocket.last;
    ws.reply(ws.lastOf('publish'), { type: 'published', position: { epoch: 'e', offset: 1 } });
    await expect(p).resolves.toMatchObject({ position: { offset: 1 } });

    const late = client.request({ type: 'ping' }, 1000).catch((e: unknown) => e);
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await late).toMatchObject({ code: 'disconnected' });
  });

  it('fails commands in flight when the connection drops', async () => {
    const { client, ws } = await connected();
    const p = client.presence('bookings').catch((e: unknown) => e);
    await settle();
    ws.serverClose(1006);
    expect(await p).toMatchObject({ code: 'disconnected' });
  });
});

describe('liveness', () => {
  it('pings after ping_interval of silence and reconnects when nothing at all answers', async () => {
    const { events, ws } = await connected({}, { ping_interval: 5 });
    await vi.advanceTimersByTimeAsync(4999);
    expect(ws.allOf('ping')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(ws.allOf('ping')).toHaveLength(1);
    ws.reply(ws.lastOf('ping'), { type: 'pong' });
    await vi.advanceTimersByTimeAsync(3000);
    expect(events.filter(([n]) => n === 'disconnected')).toHaveLength(0);
    // Frames keep the connection alive without pings.
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(1500);
      ws.push({ type: 'join', topic: 'x', member: { client_id: 'a', user: 'u' } });
    }
    expect(ws.allOf('ping')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(ws.allOf('ping')).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(3000);
    expect(events.filter(([n]) => n === 'disconnected').map(([, i]) => i)).toEqual([
      { code: 3008, reason: 'timeout', reconnect: true, delayMs: 1500 },
    ]);
    expect(ws.closedByClient).toBe(1000);
  });
});

describe('online/offline', () => {
  it('does not retry while offline and reconnects at once when the network returns', async () => {
    const { client, events, network, ws } = await connected();
    network.set(false);
    expect(client.state).toBe('connected'); // a socket may survive a short blip
    ws.serverClose(1006);
    expect(events.filter(([n]) => n === 'disconnected').at(-1)?.[1]).toEqual({
      code: 1006,
      reason: 'transport_closed',
      reconnect: true,
    });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    network.set(true);
    await settle();
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('cancels a pending backoff when going offline', async () => {
    const { network, ws } = await connected();
    ws.serverClose(1006);
    network.set(false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    network.set(true);
    await settle();
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('probes a connected socket when the network comes back', async () => {
    const { network, ws, events } = await connected({}, { ping_interval: 25 });
    network.set(false);
    network.set(true);
    expect(ws.allOf('ping')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(3000);
    expect(events.filter(([n]) => n === 'disconnected').at(-1)?.[1]).toMatchObject({ code: 3008 });
  });
});
