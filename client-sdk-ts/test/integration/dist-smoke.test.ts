// The built package (dist/, what npm ships) in plain Node 20 with `ws`:
// ESM resolution, the lazy MessagePack import, and the publisher.
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken, startHub, waitFor, within, type RunningHub } from '../support/hub.js';

let hub: RunningHub;
beforeAll(async () => {
  hub = await startHub();
});
afterAll(async () => {
  await hub?.stop();
});

describe('dist/ in Node', () => {
  it('connects over msgpack with ws and receives what HubbubPublisher publishes', async () => {
    // A computed specifier: the types come from src/ (the same API), the code from dist/.
    const built = '../../dist/index.js';
    const sdk = (await import(built)) as typeof import('../../src/index.js');
    const client = new sdk.Hubbub({
      url: hub.wsUrl,
      protocol: 'msgpack',
      WebSocket, // `ws`'s constructor as is: the SDK's types accept it
      getToken: () => mintToken(hub.secret, { sub: 'dist' }),
    });
    const sub = client.subscribe<{ hello: { n: number } }>('bookings:dist');
    const got: number[] = [];
    sub.on('hello', (d) => got.push(d.n));
    client.connect();
    await within('subscribed', sub.ready());
    const publisher = new sdk.HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    await publisher.publish('bookings:dist', 'hello', { n: 1 });
    await waitFor('publication', () => got.length === 1);
    expect(got).toEqual([1]);
    client.disconnect();
  });
});
