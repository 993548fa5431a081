/** Real SDK clients for integration tests, on Node's `ws`. */
import WebSocket from 'ws';
import { Hubbub } from '../../src/client.js';
import type { HubbubOptions } from '../../src/options.js';
import type { WebSocketConstructor } from '../../src/transport/websocket.js';
import { mintToken, type Claims, type RunningHub } from './hub.js';

export const NodeWebSocket = WebSocket as unknown as WebSocketConstructor;

export interface TrackedClient {
  client: Hubbub;
  events: Array<{ name: string; info: unknown; at: number }>;
  tokens: string[];
  close(): void;
}

/** A client of `hub` for user `sub`, recording its connection events. */
export function trackedClient(
  hub: RunningHub,
  claims: Claims,
  options: Partial<HubbubOptions> = {},
): TrackedClient {
  const tokens: string[] = [];
  const client = new Hubbub({
    url: hub.wsUrl,
    getToken: () => {
      const token = mintToken(hub.secret, claims);
      tokens.push(token);
      return token;
    },
    WebSocket: NodeWebSocket,
    backoff: { minMs: 50, maxMs: 500 },
    requestTimeoutMs: 5000,
    connectTimeoutMs: 5000,
    ...options,
  });
  const events: TrackedClient['events'] = [];
  for (const name of ['connecting', 'connected', 'disconnected', 'error'] as const) {
    client.on(name, (info: unknown) => events.push({ name, info, at: Date.now() }));
  }
  client.connect();
  return { client, events, tokens, close: () => client.disconnect() };
}
