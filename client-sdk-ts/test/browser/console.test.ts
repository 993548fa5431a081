/**
 * The hub's operations console (`GET /console`, served by the hub itself) in
 * headless Chromium against a real hub: a wrong key gets a clear message; an
 * operator key signs in and shows the node, the topics with subscribers and a
 * topic's presence; a publication sent from the page's form appears in the
 * live tail; the tail pauses and resumes without losing anything; a webhook
 * sink's dead letter (a real HTTP receiver that fails) is replayed from the
 * page and arrives with its original webhook-id; the outbox panel shows the
 * lag of a real PostgreSQL outbox, then the catch-up once this node leads.
 *
 * Screenshots go to test-results/console-*.png; with
 * HUBBUB_DOCS_SCREENSHOTS=1 also to docs/console/ (the ones docs/console.md shows).
 */
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HUBBUB_BIN, mintToken, startHub, waitFor, type RunningHub } from '../support/hub.js';

const sdkRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const RESULTS = join(sdkRoot, 'test-results');
const DOCS = resolve(sdkRoot, '../docs/console');
const SCOPED_KEY = 'sk_booking_service_0123456789abcdef';
const SINK = 'rider-sync';
const POSTGRES_URL = process.env.HUBBUB_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** What the webhook receiver got: each request's webhook-id, body and answer. */
interface Received {
  id: string;
  body: string;
  status: number;
}

/** A real HTTP receiver for the sink: answers `receiverStatus`, records every request. */
const received: Received[] = [];
let receiverStatus = 500;
let receiver: Server;

let hub: RunningHub;
let nodeName: string;
let context: BrowserContext;
let profile: string;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium`);
  receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      received.push({ id: String(req.headers['webhook-id'] ?? ''), body, status: receiverStatus });
      res.writeHead(receiverStatus).end(receiverStatus === 200 ? 'ok' : 'rider service is down');
    });
  });
  await new Promise<void>((ok) => receiver.listen(0, '127.0.0.1', ok));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hubbub`;
  // A second key that may publish but is no operator; a sink that gives up after 2 attempts.
  hub = await startHub({
    extraToml: `
[namespaces.orders]
history_size = 100
history_ttl = "1h"

[[api_keys]]
name = "booking-service"
key_sha256 = "${createHash('sha256').update(SCOPED_KEY).digest('hex')}"
publish = ["bookings:*"]

[[webhooks]]
name = "${SINK}"
url = "${receiverUrl}"
topics = ["orders:*"]
secrets = ["whsec_${Buffer.from('console-test-secret-0123456789').toString('base64')}"]
max_attempts = 2
backoff_min = "10ms"
backoff_max = "50ms"
timeout = "5s"
`,
  });
  const info = await fetch(`${hub.httpUrl}/api/v1/info`, { headers: { authorization: `Bearer ${hub.apiKey}` } });
  nodeName = ((await info.json()) as { nodes: Array<{ name: string }> }).nodes[0]?.name ?? '';
  if (!nodeName) throw new Error('the hub lists no node');
  profile = await mkdtemp(join(tmpdir(), 'hubbub-console-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
    viewport: { width: 1360, height: 860 },
  });
});

afterAll(async () => {
  for (const s of sockets) s.close();
  await context?.close();
  await hub?.stop();
  await new Promise((ok) => (receiver ? receiver.close(ok) : ok(undefined)));
  if (profile) await rm(profile, { recursive: true, force: true });
});

/** Saves a screenshot (of the page, or of one element) to test-results/ (and docs/console/ when asked). */
async function shoot(page: Page, name: string, selector?: string): Promise<void> {
  await mkdir(RESULTS, { recursive: true });
  const path = join(RESULTS, `console-${name}.png`);
  if (selector) await page.locator(selector).screenshot({ path });
  else await page.screenshot({ path });
  if (process.env.HUBBUB_DOCS_SCREENSHOTS === '1') {
    await mkdir(DOCS, { recursive: true });
    await copyFile(path, join(DOCS, `${name}.png`));
  }
}

/** A WebSocket subscriber of `topic` as `sub`, with presence info. */
async function subscriber(sub: string, topic: string, info: object): Promise<WebSocket> {
  const token = mintToken(hub.secret, { sub, subscribe: ['bookings:*'], publish: [], info });
  const ws = new WebSocket(hub.wsUrl, 'hubbub.v1.json');
  sockets.push(ws);
  const replies: Array<{ type: string; id?: number }> = [];
  ws.on('message', (m) => replies.push(JSON.parse(String(m))));
  await new Promise<void>((ok, fail) => {
    ws.once('open', () => ok());
    ws.once('error', fail);
  });
  ws.send(JSON.stringify({ type: 'connect', id: 1, token }));
  ws.send(JSON.stringify({ type: 'subscribe', id: 2, topic }));
  const deadline = Date.now() + 10_000;
  while (!replies.some((r) => r.id === 2)) {
    if (Date.now() > deadline) throw new Error(`no subscribe reply: ${JSON.stringify(replies)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const reply = replies.find((r) => r.id === 2);
  if (reply?.type !== 'subscribed') throw new Error(`subscribe failed: ${JSON.stringify(reply)}`);
  return ws;
}

/** Runs a scenario; on failure saves a screenshot and adds the hub's log tail. */
async function scenario(name: string, page: Page, body: () => Promise<void>, on: RunningHub = hub): Promise<void> {
  try {
    await body();
  } catch (err) {
    await mkdir(RESULTS, { recursive: true });
    await page.screenshot({ path: join(RESULTS, `console-${name}-failure.png`), fullPage: true }).catch(() => {});
    throw new Error(`${String(err)}\nhub log tail:\n${on.logs().slice(-3000)}`, { cause: err });
  }
}

/** Opens the console on `on` and signs in with its operator key. */
async function signIn(on: RunningHub): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${on.httpUrl}/console`);
  await page.fill('#key', on.apiKey);
  await page.click('#login-form button');
  await page.waitForSelector('#app:not([hidden])', { timeout: 10_000 });
  return page;
}

/** `psql` on `url` (quiet, unaligned), for a session the test keeps open. */
function psqlSession(url: string): { proc: ChildProcessWithoutNullStreams; out: () => string; run: (sql: string) => void } {
  const proc = spawn('psql', ['-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', url], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (c: string) => (out += c));
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c: string) => (out += c));
  return { proc, out: () => out, run: (sql) => proc.stdin.write(`${sql}\n`) };
}

async function publishRest(topic: string, event: string, data: unknown): Promise<number> {
  const res = await fetch(`${hub.httpUrl}/api/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${hub.apiKey}` },
    body: JSON.stringify({ topic, event, data }),
  });
  if (res.status !== 200) throw new Error(`publish → ${res.status} ${await res.text()}`);
  return ((await res.json()) as { position: { offset: number } }).position.offset;
}

const tailOffsets = (page: Page) =>
  page.$$eval('#tail tbody tr[data-offset]', (rows) => rows.map((r) => Number((r as HTMLElement).dataset.offset)));

describe('operations console', () => {
  it('landing page links the console, the API document, health and metrics', async () => {
    const page = await context.newPage();
    await page.goto(`${hub.httpUrl}/`);
    expect(await page.textContent('header')).toContain(nodeName);
    for (const href of ['/console', '/api/openapi.json', '/healthz', '/readyz', '/metrics']) {
      expect(await page.locator(`a[href="${href}"]`).count()).toBe(1);
    }
    await page.close();
  });

  it('tells a wrong key why, then signs in, shows the node, topics, presence, and a publication live', async () => {
    const topic = 'bookings:console-42';
    await publishRest(topic, 'booking.created', { id: 'b-40', guest: 'Grace', nights: 2 });
    await publishRest(topic, 'booking.updated', { id: 'b-40', status: 'confirmed' });
    await subscriber('ada', topic, { name: 'Ada Lovelace', role: 'front-desk' });

    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      // A failed sign-in's 401 is logged by Chromium itself; anything else is a bug.
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text());
    });
    await scenario('sign-in', page, async () => {
      await page.goto(`${hub.httpUrl}/console`);
      await page.waitForSelector('#login:not([hidden])');

      // A wrong key: a message that says what is wrong and what to do.
      await page.fill('#key', 'sk_not_a_key_of_this_hub');
      await page.click('#login-form button');
      await page.waitForSelector('#login-error:not([hidden])', { timeout: 10_000 });
      const message = (await page.textContent('#login-error')) ?? '';
      expect(message).toContain("This key is not one of this hub's API keys");
      expect(message).toContain('key_sha256');
      expect(message).not.toMatch(/malformed/i);
      expect(await page.isHidden('#app')).toBe(true);
      expect(await page.evaluate(() => sessionStorage.getItem('hubbub.operatorKey'))).toBeNull();
      await shoot(page, 'wrong-key');

      // A valid key that is not an operator key: says so, and how to make one.
      await page.fill('#key', SCOPED_KEY);
      await page.click('#login-form button');
      await page.waitForFunction(() => document.querySelector('#login-error')?.textContent?.includes('not an operator key'), undefined, {
        timeout: 10_000,
      });
      expect(await page.textContent('#login-error')).toContain('operator = true');
      expect(await page.isHidden('#app')).toBe(true);
      await shoot(page, 'not-operator');

      // The operator key: the node appears.
      await page.fill('#key', hub.apiKey);
      await page.click('#login-form button');
      await page.waitForSelector('#app:not([hidden])', { timeout: 10_000 });
      await page.waitForFunction((name) => document.querySelector('#nodes tbody')?.textContent?.includes(name), nodeName, {
        timeout: 10_000,
      });
      expect(await page.locator('#nodes tbody tr').count()).toBe(1);
      await page.waitForSelector('#ready.ok', { timeout: 10_000 });
      // Kept for this tab only.
      expect(await page.evaluate(() => sessionStorage.getItem('hubbub.operatorKey'))).toBe(hub.apiKey);
      expect(await page.evaluate(() => localStorage.length)).toBe(0);

      // The topic with its subscriber; the filter narrows the list.
      const row = page.locator('#topics tbody tr', { hasText: topic });
      await row.waitFor({ timeout: 10_000 });
      expect(await row.locator('td').nth(1).textContent()).toBe('1');
      expect(await row.locator('td').nth(2).textContent()).toBe('2');
      await page.fill('#filter', 'guests:');
      await page.waitForSelector('#topics-empty:not([hidden])', { timeout: 10_000 });
      await page.fill('#filter', 'bookings:console');
      await row.waitFor({ timeout: 10_000 });

      // Choose it: history first, then live; presence lists Ada.
      await row.click();
      await page.waitForSelector('#tail-status.live', { timeout: 10_000 });
      expect(await tailOffsets(page)).toEqual([2, 1]);
      await page.waitForFunction(() => document.querySelector('#presence')?.textContent?.includes('ada'), undefined, {
        timeout: 10_000,
      });
      expect(await page.textContent('#presence')).toContain('Ada Lovelace');

      // Invalid JSON is caught before anything is sent.
      await page.fill('#pub-data', '{"id": "b-42", guest: Ada}');
      await page.waitForSelector('#data-error:not([hidden])');
      expect(await page.textContent('#data-error')).toContain('Not valid JSON');
      expect(await page.isDisabled('#publish')).toBe(true);

      // Publish from the form: it shows up in the live tail.
      expect(await page.inputValue('#pub-topic')).toBe(topic);
      await page.fill('#pub-event', 'booking.created');
      await page.fill('#pub-data', '{"id": "b-42", "guest": "Ada", "nights": 3, "room": "12B"}');
      expect(await page.isDisabled('#publish')).toBe(false);
      await page.click('#publish');
      await page.waitForFunction(() => document.querySelector('#publish-result')?.textContent?.includes('offset 3'), undefined, {
        timeout: 10_000,
      });
      const live = page.locator('#tail tbody tr[data-offset="3"]');
      await live.waitFor({ timeout: 10_000 });
      expect(await live.textContent()).toContain('"room":"12B"');
      expect(await live.textContent()).toContain('booking.created');

      // Let the topics table catch up with the new offset and the console's own subscription.
      await page.waitForFunction(
        (t) => {
          const r = [...document.querySelectorAll('#topics tbody tr')].find((tr) => tr.textContent?.includes(t));
          return r?.children[2]?.textContent === '3';
        },
        topic,
        { timeout: 10_000 },
      );
      await shoot(page, 'console');

      // Pause: new publications wait; resume shows them, none lost.
      await page.click('#pause');
      await page.waitForSelector('#tail-status.paused');
      await publishRest(topic, 'booking.cancelled', { id: 'b-40', reason: 'guest request' });
      await publishRest(topic, 'booking.created', { id: 'b-43', guest: 'Alan', nights: 1 });
      await page.waitForFunction(() => document.querySelector('#pause')?.textContent === 'Resume (2 new)', undefined, {
        timeout: 10_000,
      });
      expect(await tailOffsets(page)).toEqual([3, 2, 1]);
      await shoot(page, 'paused');
      await page.click('#pause');
      expect(await tailOffsets(page)).toEqual([5, 4, 3, 2, 1]);
      expect(errors).toEqual([]);
    });
    await page.close();
  });

  it("defaults the form to the README's booking, and drops the empty-history note once one arrives live", async () => {
    const page = await signIn(hub);
    await scenario('empty-tail', page, async () => {
      // The one booking sample of the project's README, on bookings:42.
      const readme = await readFile(join(sdkRoot, '..', 'README.md'), 'utf8');
      const sample = /publish bookings:42 booking\.created '(\{[^']*\})'/.exec(readme)?.[1];
      expect(sample).toBeDefined();
      expect(JSON.parse(await page.inputValue('#pub-data'))).toEqual(JSON.parse(sample ?? 'null'));
      expect(await page.inputValue('#pub-event')).toBe('booking.created');
      expect(await page.inputValue('#pub-topic')).toBe('bookings:42');

      // A topic with no history yet: the tail says so, until a publication arrives live.
      const topic = 'bookings:console-empty';
      await page.fill('#tail-topic', topic);
      await page.press('#tail-topic', 'Enter');
      await page.waitForSelector('#tail-status.live', { timeout: 10_000 });
      expect(await page.isVisible('#tail-empty')).toBe(true);
      expect(await page.textContent('#tail-empty')).toContain(`No publication in ${topic}'s history yet`);
      expect(await page.inputValue('#pub-topic')).toBe(topic);
      await page.click('#publish');
      await page.locator('#tail tbody tr[data-offset="1"]').waitFor({ timeout: 10_000 });
      expect(await page.isHidden('#tail-empty')).toBe(true);
    });
    await page.close();
  });

  it('keeps the key across a reload of the tab, and signs out', async () => {
    const page = await context.newPage();
    await page.goto(`${hub.httpUrl}/console`);
    await page.fill('#key', hub.apiKey);
    await page.click('#login-form button');
    await page.waitForSelector('#app:not([hidden])', { timeout: 10_000 });
    await page.reload();
    await page.waitForSelector('#app:not([hidden])', { timeout: 10_000 });
    await page.click('#signout');
    await page.waitForSelector('#login:not([hidden])');
    expect(await page.evaluate(() => sessionStorage.getItem('hubbub.operatorKey'))).toBeNull();
    await page.close();
  });

  it('lists a dead letter of a failing sink and replays it to the recovered receiver', async () => {
    const page = await signIn(hub);
    await scenario('dead-letters', page, async () => {
      receiverStatus = 500;
      const offset = await publishRest('orders:o-77', 'order.paid', { id: 'o-77', booking: 'b-42', amount: 240 });
      // Two failed attempts, then a dead letter: the panel lists it.
      const row = page.locator('#dead tbody tr[data-webhook-id]');
      await row.waitFor({ timeout: 20_000 });
      const webhookId = (await row.getAttribute('data-webhook-id')) ?? '';
      expect(webhookId).not.toBe('');
      expect(await row.textContent()).toContain('orders:o-77');
      expect(await row.locator('td').nth(1).textContent()).toBe(String(offset));
      expect(await row.locator('td').nth(3).textContent()).toBe('2');
      expect(await row.textContent()).toContain('500');
      const sink = page.locator('#sinks tbody tr', { hasText: SINK });
      await page.waitForFunction((name) => {
        const r = [...document.querySelectorAll('#sinks tbody tr')].find((tr) => tr.textContent?.includes(name));
        return r?.children[3]?.textContent === '1';
      }, SINK, { timeout: 10_000 });
      expect(received.filter((r) => r.id === webhookId).map((r) => r.status)).toEqual([500, 500]);
      await page.locator('#sinks-card').scrollIntoViewIfNeeded();
      await shoot(page, 'dead-letters', '#sinks-card');

      // The rider service is back: replay from the page; it arrives with the same webhook-id.
      receiverStatus = 200;
      await row.locator('button', { hasText: 'Replay' }).click();
      await page.waitForFunction(() => document.querySelector('#dead-result')?.textContent?.startsWith('Replayed 1'), undefined, {
        timeout: 10_000,
      });
      await waitFor('the replayed delivery', () => received.some((r) => r.id === webhookId && r.status === 200), 20_000);
      const delivered = received.filter((r) => r.id === webhookId && r.status === 200);
      expect(delivered).toHaveLength(1);
      expect(JSON.parse(delivered[0]?.body ?? '{}')).toMatchObject({ topic: 'orders:o-77', offset, data: { id: 'o-77' } });
      // The panel's dead count drops to 0 and the list empties.
      await page.waitForFunction((name) => {
        const r = [...document.querySelectorAll('#sinks tbody tr')].find((tr) => tr.textContent?.includes(name));
        return r?.children[3]?.textContent === '0' && document.querySelectorAll('#dead tbody tr').length === 0;
      }, SINK, { timeout: 10_000 });
      expect(await sink.locator('td').nth(3).textContent()).toBe('0');
      await shoot(page, 'dead-letters-replayed', '#sinks-card');
    });
    await page.close();
  });

  it('shows the lag of a real PostgreSQL outbox, then the catch-up when this node leads', async () => {
    try {
      execFileSync('psql', ['--version']);
    } catch {
      throw new Error('psql not on PATH (apt-get install postgresql-client); scripts/postgres-for-tests.sh starts the server');
    }
    const db = `hubbub_console_${randomBytes(4).toString('hex')}`;
    const dbUrl = POSTGRES_URL.replace(/\/[^/?]*(\?|$)/, `/${db}$1`);
    execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', POSTGRES_URL, '-c', `CREATE DATABASE "${db}"`]);
    const dir = await mkdtemp(join(tmpdir(), 'hubbub-console-outbox-'));
    const outboxToml = `\n[outbox]\npostgres_url = "${dbUrl}"\ntable = "hubbub_outbox"\npoll_interval = "200ms"\n`;
    // `hubbub outbox init --apply` needs a whole configuration: a signing key and the outbox.
    await writeFile(join(dir, 'init.toml'), `[auth]\njwt_algorithm = "HS256"\njwt_secret = "${randomBytes(24).toString('hex')}"\n${outboxToml}`);
    execFileSync(HUBBUB_BIN, ['outbox', 'init', '--apply', '--config', join(dir, 'init.toml')], {
      env: { PATH: process.env.PATH ?? '' },
    });
    // Another session holds the table's leader lock, so this node stands by
    // while three committed rows wait, the oldest 42 s old.
    const holder = psqlSession(dbUrl);
    holder.run("SELECT pg_try_advisory_lock(1752523362, hashtext('hubbub_outbox'));");
    await waitFor('the lock taken', () => /^t$/m.test(holder.out()));
    holder.run(
      `INSERT INTO hubbub_outbox (topic, event, data, created_at) VALUES
        ('bookings:b-42', 'booking.created', '{"id": "b-42"}', now() - interval '42 seconds'),
        ('bookings:b-42', 'booking.updated', '{"id": "b-42", "status": "confirmed"}', now() - interval '30 seconds'),
        ('bookings:b-43', 'booking.created', '{"id": "b-43"}', now() - interval '12 seconds');`,
    );
    const withOutbox = await startHub({ extraToml: outboxToml });
    const page = await signIn(withOutbox);
    try {
      await scenario('outbox', page, async () => {
        await page.waitForFunction(() => {
          const card = document.querySelector<HTMLElement>('#outbox-card');
          return card?.dataset.role === 'standby' && Number(card.dataset.lagMs) >= 42_000;
        }, undefined, { timeout: 20_000 });
        expect(await page.textContent('#outbox-role')).toBe('standby');
        expect(await page.textContent('#outbox-stats')).toContain('Lag (hubbub_outbox)');
        await page.locator('#outbox-card').scrollIntoViewIfNeeded();
        await shoot(page, 'outbox', '#outbox-card');

        // The lock is freed: this node takes over, publishes the rows, the lag drops.
        holder.run('SELECT pg_advisory_unlock_all();');
        await page.waitForFunction(() => {
          const card = document.querySelector<HTMLElement>('#outbox-card');
          return card?.dataset.role === 'leader' && card.dataset.published === '3' && card.dataset.lagMs === '0';
        }, undefined, { timeout: 20_000 });
        expect(await page.textContent('#outbox-role')).toBe('leader: publishing');
        await shoot(page, 'outbox-caught-up', '#outbox-card');
      }, withOutbox);
    } finally {
      await page.close();
      holder.proc.stdin.end();
      holder.proc.kill();
      await withOutbox.stop();
      await rm(dir, { recursive: true, force: true });
      execFileSync('psql', ['-X', '-q', POSTGRES_URL, '-c', `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`]);
    }
  });

  it('says when this node has no outbox', async () => {
    const page = await signIn(hub);
    await page.waitForSelector('#outbox-card[data-configured="false"]', { timeout: 10_000 });
    expect(await page.textContent('#outbox-role')).toBe('not configured');
    expect(await page.isVisible('#outbox-off')).toBe(true);
    await page.close();
  });
});
