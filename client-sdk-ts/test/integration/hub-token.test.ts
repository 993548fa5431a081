// examples/hub-token/server.mjs against a real hub: the SDK's getToken calls
// the app's route, the hub accepts the jose-signed token, and the personal
// topic `users:{sub}` is the user's own (another user's is forbidden).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hubbub, HubbubPublisher } from '../../src/index.js';
import { startHub, waitFor, within, type RunningHub } from '../support/hub.js';
// @ts-expect-error: a plain .mjs example without declarations
import { handler } from '../../examples/hub-token/server.mjs';

let hub: RunningHub;
let app: Server;
let appUrl: string;
beforeAll(async () => {
  hub = await startHub({ extraToml: '\n[namespaces.users]\nhistory_size = 10\n' });
  app = createServer(handler(hub.secret, (req: { headers: Record<string, string> }) => req.headers['x-user']));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
});
afterAll(async () => {
  app?.close();
  await hub?.stop();
});

describe('a token route in the app backend (jose)', () => {
  it('mints tokens the hub accepts, with a personal users:{sub} topic', async () => {
    const getToken = () => fetch(`${appUrl}/api/hub-token`, { headers: { 'x-user': 'alice' } }).then((r) => r.text());
    const client = new Hubbub({ url: hub.wsUrl, getToken, WebSocket });
    const mine = client.subscribe<{ 'booking.created': { id: string } }>('users:alice');
    const theirs = client.subscribe('users:bob');
    const got: string[] = [];
    mine.on('booking.created', (b) => got.push(b.id));
    const refused: string[] = [];
    theirs.on('error', (e) => refused.push(e.code));
    client.connect();
    await within('subscribed', mine.ready());
    await waitFor('users:bob refused', () => refused.length === 1);
    expect(refused).toEqual(['forbidden']);
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    await publisher.publish('users:alice', 'booking.created', { id: '1001' });
    await waitFor('personal publication', () => got.length === 1);
    expect(got).toEqual(['1001']);
    client.disconnect();
    const anonymous = await fetch(`${appUrl}/api/hub-token`);
    expect(anonymous.status).toBe(401);
  });
});
