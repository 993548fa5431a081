/**
 * A fake WebSocket for unit tests: the test plays the hub, opening, answering,
 * pushing and closing by hand. Frames are JSON (the default sub-protocol).
 */
import { vi } from 'vitest';
import { Hubbub } from '../../src/client.js';
import type { HubbubOptions } from '../../src/options.js';
import type { NetworkMonitor } from '../../src/network.js';

type Frame = { type: string; id?: number | string; [k: string]: unknown };

export class FakeWebSocket {
  static instances: FakeWebSocket[] = [];

  binaryType = 'blob';
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  readonly sent: Frame[] = [];
  closedByClient: number | undefined;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeWebSocket.instances.push(this);
  }

  static reset(): void {
    FakeWebSocket.instances = [];
  }

  static get last(): FakeWebSocket {
    const ws = FakeWebSocket.instances.at(-1);
    if (!ws) throw new Error('no socket was opened');
    return ws;
  }

  send(data: string | Uint8Array): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(String(data)) as Frame);
  }

  close(code?: number): void {
    this.closedByClient = code ?? 1005;
    this.readyState = 3;
  }

  // ---- the hub's side ----

  /** The server accepts the upgrade. */
  accept(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  /** The connection cannot open (refused, blocked): error then close 1006. */
  refuse(): void {
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason: '' });
  }

  push(frame: Frame): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The hub closes with a code (after an optional `disconnect` frame). */
  serverClose(code: number, reason = '', withDisconnectFrame = false, reconnect = code >= 4100): void {
    if (withDisconnectFrame) this.push({ type: 'disconnect', code, reason, reconnect });
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The last command of a type the client sent. */
  lastOf(type: string): Frame {
    const frame = [...this.sent].reverse().find((f) => f.type === type);
    if (!frame) throw new Error(`no \`${type}\` was sent; sent: ${JSON.stringify(this.sent)}`);
    return frame;
  }

  allOf(type: string): Frame[] {
    return this.sent.filter((f) => f.type === type);
  }

  reply(command: Frame, fields: Record<string, unknown>): void {
    this.push({ ...fields, id: command.id } as Frame);
  }

  /** Accepts the upgrade and answers `connect`. */
  handshake(fields: { expires_in?: number | null; ping_interval?: number } = {}): void {
    this.accept();
    this.reply(this.lastOf('connect'), {
      type: 'connected',
      client_id: 'c1',
      node: 'n1',
      expires_in: fields.expires_in === undefined ? null : fields.expires_in,
      ping_interval: fields.ping_interval ?? 25,
    });
  }
}

export class FakeNetwork implements NetworkMonitor {
  online = true;
  private readonly listeners = new Set<(online: boolean) => void>();
  isOnline(): boolean {
    return this.online;
  }
  watch(listener: (online: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(online: boolean): void {
    this.online = online;
    for (const l of this.listeners) l(online);
  }
}

/** Lets pending promise callbacks and zero-delay timers run. */
export async function settle(): Promise<void> {
  await vi.advanceTimersByTimeAsync(0);
}

export function makeClient(overrides: Partial<HubbubOptions> = {}) {
  FakeWebSocket.reset();
  let n = 0;
  const getToken = vi.fn(async () => `token-${++n}`);
  const network = new FakeNetwork();
  const client = new Hubbub({
    url: 'ws://hub.test/ws',
    getToken,
    WebSocket: FakeWebSocket,
    transports: ['websocket'],
    backoff: { minMs: 1000, maxMs: 8000 },
    requestTimeoutMs: 5000,
    connectTimeoutMs: 5000,
    pongTimeoutMs: 3000,
    network,
    random: () => 0.5,
    ...overrides,
  });
  const events: Array<[string, unknown]> = [];
  for (const name of ['state', 'connecting', 'connected', 'disconnected', 'error'] as const) {
    client.on(name, (info: unknown) => events.push([name, info]));
  }
  return { client, getToken, network, events };
}

/** Connects a client made by {@link makeClient} and completes the handshake. */
export async function connected(overrides: Partial<HubbubOptions> = {}, handshake: Parameters<FakeWebSocket['handshake']>[0] = {}) {
  const made = makeClient(overrides);
  made.client.connect();
  await settle();
  FakeWebSocket.last.handshake(handshake);
  await settle();
  return { ...made, ws: FakeWebSocket.last };
}
