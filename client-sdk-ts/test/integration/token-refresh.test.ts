import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubbubPublisher } from '../../src/publisher.js';
import { jwtExpiry } from '../../src/token.js';
import { trackedClient, type TrackedClient } from '../support/clients.js';
import { mintToken, startHub, waitFor, within, type RunningHub } from '../support/hub.js';

let hub: RunningHub;
const open: TrackedClient[] = [];

beforeAll(async () => {
  hub = await startHub();
});
afterAll(async () => {
  for (const c of open) c.close();
  await hub?.stop();
});

describe('token refresh', () => {
  it('control: the hub closes a connection whose short token expires without refresh (4100)', async () => {
    const ws = new WebSocket(hub.wsUrl, ['hubbub.v1.json']);
    const frames: Array<{ type: string; [k: string]: unknown }> = [];
    let closeCode = 0;
    ws.on('message', (d) => frames.push(JSON.parse(String(d))));
    ws.on('close', (code) => (closeCode = code));
    await new Promise<void>((r, j) => {
      ws.once('open', () => r());
      ws.once('error', j);
    });
    ws.send(JSON.stringify({ type: 'connect', id: 1, token: mintToken(hub.secret, { sub: 'control', ttl: 3 }) }));
    await waitFor('close after expiry', () => closeCode !== 0, 15_000);
    expect(frames[0]).toMatchObject({ type: 'connected', id: 1 });
    expect(frames.at(-1)).toMatchObject({ type: 'disconnect', code: 4100, reconnect: true });
    expect(closeCode).toBe(4100);
  });

  it('refreshes before expiry: the connection outlives several short tokens', async () => {
    const ttl = 3;
    const tracked = trackedClient(hub, { sub: 'refresher', ttl });
    open.push(tracked);
    const sub = tracked.client.subscribe('bookings:refresh');
    const seen: unknown[] = [];
    sub.on('publication', (p) => seen.push(p.data));
    await within('subscribed', sub.ready());
    const firstExp = jwtExpiry(tracked.tokens[0] as string) as number;

    // Wait until well past the first token's expiry and two refreshes.
    await waitFor('past the first token and 3 tokens fetched', () => Date.now() > firstExp + 2500 && tracked.tokens.length >= 3, 20_000);
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    await publisher.publish('bookings:refresh', 'booking.created', { after: 'expiry' });
    await waitFor('publication after the first expiry', () => seen.length === 1);

    expect(tracked.events.filter((e) => e.name === 'disconnected')).toEqual([]);
    expect(tracked.events.filter((e) => e.name === 'connected')).toHaveLength(1);
    expect(tracked.events.filter((e) => e.name === 'error')).toEqual([]);
    expect(tracked.client.state).toBe('connected');
  });

  it('reconnects with a new token after 4100', async () => {
    // The refresh is due at expiry (margin 0) and the app's token service is
    // slow: the token runs out first, the hub closes with 4100, and the SDK
    // connects again with the new token.
    let calls = 0;
    const tracked = trackedClient(
      hub,
      { sub: 'late', ttl: 2 },
      {
        refreshMarginMs: 0,
        getToken: async () => {
          calls += 1;
          if (calls > 1) await new Promise((r) => setTimeout(r, 1500));
          const token = mintToken(hub.secret, { sub: 'late', ttl: 2 });
          tracked.tokens.push(token);
          return token;
        },
      },
    );
    open.push(tracked);
    const is4100 = (e: { name: string; info: unknown }) =>
      e.name === 'disconnected' && (e.info as { code: number }).code === 4100;
    await waitFor('a 4100 close', () => tracked.events.some(is4100), 15_000);
    const at = tracked.events.findIndex(is4100);
    await waitFor('connected again', () => tracked.events.slice(at).some((e) => e.name === 'connected'), 15_000);
    expect(tracked.events[at]?.info).toMatchObject({ code: 4100, reason: 'token_expired', reconnect: true });
    expect(tracked.tokens.length).toBeGreaterThanOrEqual(2);
    tracked.close();
  });
});
