/**
 * Starts a real `hubbub` binary for integration and browser tests: a temp
 * config, `HUBBUB_LISTEN=127.0.0.1:0`, and the one `listening on http://…`
 * line on stdout, awaited with a deadline. Also mints HS256 JWTs and talks to
 * the REST API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const sdkRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export const HUBBUB_BIN = resolve(sdkRoot, process.env.HUBBUB_BIN ?? '../target/debug/hubbub');

export interface RunningHub {
  httpUrl: string;
  wsUrl: string;
  sseUrl: string;
  apiKey: string;
  secret: string;
  /** Everything the hub wrote to stderr so far (for failure messages). */
  logs(): string;
  stop(): Promise<void>;
}

export interface Claims {
  sub: string;
  /** Seconds from now. Default 3600. */
  ttl?: number;
  subscribe?: string[];
  publish?: string[];
  info?: unknown;
}

/** Starts a hub; rejects with its logs when it does not print its address within `deadlineMs`. */
/** The Redis the Redis-engine tests use: `HUBBUB_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`. */
export const REDIS_URL = process.env.HUBBUB_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export type Engine = 'memory' | 'redis';

export async function startHub(
  options: {
    deadlineMs?: number;
    extraToml?: string;
    engine?: Engine;
    /** Redis engine: the server (default {@link REDIS_URL}) and key prefix (default: a new one). */
    redisUrl?: string;
    keyPrefix?: string;
    /** The same secret and API key as a hub this one replaces (a restart). */
    like?: RunningHub;
  } = {},
): Promise<RunningHub> {
  if (!existsSync(HUBBUB_BIN)) {
    throw new Error(
      `hub binary not found at ${HUBBUB_BIN}: build it with \`cargo build -p hubbub --bin hubbub\` or set HUBBUB_BIN`,
    );
  }
  const secret = options.like?.secret ?? randomBytes(24).toString('hex'); // 48 chars
  const apiKey = options.like?.apiKey ?? `sk_test_${randomBytes(16).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), 'hubbub-sdk-'));
  const config = join(dir, 'hubbub.toml');
  await writeFile(
    config,
    `listen = "127.0.0.1:0"
${options.engine === 'redis' ? `redis_url = "${options.redisUrl ?? REDIS_URL}"\n\n[redis]\nkey_prefix = "${options.keyPrefix ?? `sdk-${randomBytes(6).toString('hex')}`}"\n` : ''}
[auth]
jwt_algorithm = "HS256"
jwt_secret = "${secret}"

[[api_keys]]
name = "sdk-tests"
key_sha256 = "${createHash('sha256').update(apiKey).digest('hex')}"
publish = ["*"]
operator = true

[limits]
ping_interval = "2s"

[namespaces.bookings]
history_size = 1000
history_ttl = "1h"
presence = true
join_leave = true
client_publish = true
public = true
${options.extraToml ?? ''}`,
  );

  // The hub refuses unknown HUBBUB_* variables, so only its own pass through.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('HUBBUB_') || k === 'HUBBUB_LOG'),
  );
  const child = spawn(HUBBUB_BIN, ['--config', config], {
    env: { ...env, HUBBUB_LISTEN: '127.0.0.1:0', HUBBUB_LOG: process.env.HUBBUB_LOG ?? 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });

  const cleanup = async (): Promise<void> => {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  };

  let httpUrl: string;
  try {
    httpUrl = await waitForAddress(child, options.deadlineMs ?? 15_000, () => stderr);
  } catch (err) {
    await cleanup();
    throw err;
  }
  if (options.engine === 'redis') {
    // Ready only once its Redis pub/sub path is verified.
    const deadline = Date.now() + (options.deadlineMs ?? 15_000);
    for (;;) {
      const ok = await fetch(`${httpUrl}/readyz`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) {
        await cleanup();
        throw new Error(`hub on Redis ${options.redisUrl ?? REDIS_URL} not ready in time:\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const wsUrl = `${httpUrl.replace(/^http/, 'ws')}/ws`;
  return {
    httpUrl,
    wsUrl,
    sseUrl: `${httpUrl}/sse`,
    apiKey,
    secret,
    logs: () => stderr,
    stop: cleanup,
  };
}

function waitForAddress(child: ChildProcess, deadlineMs: number, logs: () => string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      fail(new Error(`hub did not print "listening on http://…" within ${deadlineMs} ms; stdout: ${stdout}\nstderr:\n${logs()}`));
    }, deadlineMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      child.stdout?.removeAllListeners('data');
      reject(err);
    };
    child.once('exit', (code, signal) => fail(new Error(`hub exited (${code ?? signal}) before listening:\n${logs()}`)));
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      stdout += chunk;
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/m.exec(stdout);
      if (m?.[1]) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolvePromise(m[1]);
      }
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** An HS256 JWT signed with the hub's test secret. */
export function mintToken(secret: string, claims: Claims): string {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = {
    sub: claims.sub,
    iat: now,
    exp: now + (claims.ttl ?? 3600),
    subscribe: claims.subscribe ?? ['bookings', 'bookings:*'],
    publish: claims.publish ?? ['bookings', 'bookings:*'],
    ...(claims.info === undefined ? {} : { info: claims.info }),
  };
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(body)}`;
  const sig = createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${sig}`;
}

/** POSTs JSON to the REST API with the test API key; returns status and parsed body. */
export async function api(hub: RunningHub, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(hub.httpUrl + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${hub.apiKey}` },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: res.status, body: parsed };
}

/** Kicks every connection of `user` (the hub sends `disconnect` 4201 and closes). */
export async function kick(hub: RunningHub, user: string): Promise<number> {
  const res = await api(hub, '/api/v1/disconnect', { user });
  if (res.status !== 200) throw new Error(`POST /api/v1/disconnect → ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as { disconnected: number }).disconnected;
}

/** Polls `check` until it returns true, or throws with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A local port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Awaits `promise`, failing with `what` after `timeoutMs`. */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
