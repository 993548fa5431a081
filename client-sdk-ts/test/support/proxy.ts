/**
 * A TCP proxy in front of the hub for the browser and integration tests:
 * while paused it refuses new connections (closes them at once) and keeps
 * existing ones, so a page that was kicked stays away until the test resumes
 * it; its upstream can change, so clients keep one address across a hub restart.
 */
import { connect, createServer, type Socket } from 'node:net';

export interface Proxy {
  port: number;
  /** Connections accepted and forwarded so far. */
  forwarded: number;
  /** Connections refused while paused. */
  refused: number;
  pause(): void;
  resume(): void;
  /** Sends new connections to another port (a restarted hub). */
  setUpstream(port: number): void;
  close(): Promise<void>;
}

export async function startProxy(upstreamPort: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  let paused = false;
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = createServer((client) => {
    track(client);
    if (paused) {
      proxy.refused += 1;
      client.destroy();
      return;
    }
    proxy.forwarded += 1;
    const upstream = connect(upstreamPort, '127.0.0.1');
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  const proxy: Proxy = {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    forwarded: 0,
    refused: 0,
    pause: () => void (paused = true),
    resume: () => void (paused = false),
    setUpstream: (port) => void (upstreamPort = port),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  return proxy;
}
