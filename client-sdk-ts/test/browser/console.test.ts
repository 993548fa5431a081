/**
 * The hub's operations console (`GET /console`, served by the hub itself) in
 * headless Chromium against a real hub: a wrong key gets a clear message; an
 * operator key signs in and shows the node, the topics with subscribers and a
 * topic's presence; a publication sent from the page's form appears in the
 * live tail; the tail pauses and resumes without losing anything.
 *
 * Screenshots go to test-results/console-*.png; with
 * HUBBUB_DOCS_SCREENSHOTS=1 also to docs/console/ (the ones docs/console.md shows).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mintToken, startHub, type RunningHub } from '../support/hub.js';

const sdkRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const RESULTS = join(sdkRoot, 'test-results');
const DOCS = resolve(sdkRoot, '../docs/console');
const SCOPED_KEY = 'sk_booking_service_0123456789abcdef';

let hub: RunningHub;
let nodeName: string;
let context: BrowserContext;
let profile: string;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium`);
  // A second key that may publish but is no operator.
  hub = await startHub({
    extraToml: `\n[[api_keys]]\nname = "booking-service"\nkey_sha256 = "${createHash('sha256').update(SCOPED_KEY).digest('hex')}"\npublish = ["bookings:*"]\n`,
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
  if (profile) await rm(profile, { recursive: true, force: true });
});

/** Saves a screenshot to test-results/ (and docs/console/ when asked). */
async function shoot(page: Page, name: string): Promise<void> {
  await mkdir(RESULTS, { recursive: true });
  const path = join(RESULTS, `console-${name}.png`);
  await page.screenshot({ path });
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
async function scenario(name: string, page: Page, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    await mkdir(RESULTS, { recursive: true });
    await page.screenshot({ path: join(RESULTS, `console-${name}-failure.png`), fullPage: true }).catch(() => {});
    throw new Error(`${String(err)}\nhub log tail:\n${hub.logs().slice(-3000)}`, { cause: err });
  }
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
});
