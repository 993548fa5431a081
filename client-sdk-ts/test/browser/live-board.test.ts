/**
 * The example page in headless Chromium against a real hub: the board starts
 * (with `sync()`) while bookings are being published, and shows each exactly
 * once; bookings appear as they are published; the hub kicks the page's
 * connection (POST /api/v1/disconnect) while a proxy between page and hub
 * refuses its reconnects; more bookings are published meanwhile; after the
 * proxy lets it through, every booking is on the board exactly once.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HubbubPublisher } from '../../src/publisher.js';
import { kick, mintToken, startHub, type RunningHub } from '../support/hub.js';
import { startProxy, type Proxy } from '../support/proxy.js';
import { serveStatic, type StaticServer } from '../support/static-server.js';

const sdkRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = join(sdkRoot, 'test-results/live-board.png');

let hub: RunningHub;
let web: StaticServer;
let proxy: Proxy;
let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(join(sdkRoot, 'dist/index.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium`);
  hub = await startHub();
  web = await serveStatic(sdkRoot);
  proxy = await startProxy(Number(new URL(hub.httpUrl).port));
  profile = await mkdtemp(join(tmpdir(), 'hubbub-chromium-'));
  // A fresh profile directory per run (playwright passes it as --user-data-dir).
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 960, height: 760 },
  });
});

// A scenario that failed while the proxy refused connections must not leave
// it refusing for the next one.
afterEach(() => {
  proxy?.resume();
});

afterAll(async () => {
  await context?.close();
  await web?.close();
  await proxy?.close();
  await hub?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

/** Runs a browser scenario; on failure saves a screenshot and adds the page's event log to the error. */
async function scenario(name: string, page: Page, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    await mkdir(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: join(sdkRoot, `test-results/${name}-failure.png`), fullPage: true }).catch(() => {});
    const log = await page.textContent('#log').catch(() => '(no page)');
    const rows = await rowIds(page).catch(() => []);
    throw new Error(`${String(err)}\npage rows: ${rows.join(',')}\npage log (newest first): ${log}\nhub log tail:\n${hub.logs().slice(-3000)}`, {
      cause: err,
    });
  }
}

const rowIds = (page: Page) =>
  page.$$eval('[data-booking-id]', (rows) => rows.map((r) => (r as HTMLElement).dataset.bookingId as string));

async function rowsExactly(page: Page, count: number): Promise<void> {
  await page.waitForFunction((n) => document.querySelectorAll('[data-booking-id]').length === n, count, {
    timeout: 15_000,
  });
}

describe('live board example', () => {
  it('shows bookings live, and every booking exactly once after a kick and an outage', async () => {
    const user = 'board-viewer';
    const topic = 'bookings:board';
    const token = mintToken(hub.secret, { sub: user, subscribe: ['bookings:*'] });
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    const created = (n: number) =>
      publisher.publish(topic, 'booking.created', { id: `b${n}`, guest: `Guest ${n}`, nights: (n % 6) + 1, status: 'confirmed' });

    // Two bookings exist before the page opens: it loads them from history.
    await created(1);
    await created(2);

    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      // Refused reconnects are logged by Chromium itself; anything else is a bug.
      if (m.type() === 'error' && !/WebSocket connection to|Failed to load resource|net::ERR_/.test(m.text())) {
        errors.push(m.text());
      }
    });
    const query = new URLSearchParams({ hub: `ws://127.0.0.1:${proxy.port}/ws`, token, topic });
    await scenario('live-board', page, async () => {
      await page.goto(`${web.url}/examples/live-board/?${query}`);
      await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 });
      await rowsExactly(page, 2);

      for (let n = 3; n <= 6; n++) await created(n);
      await publisher.publish(topic, 'booking.updated', { id: 'b2', status: 'confirmed' });
      await rowsExactly(page, 6);
      await page.waitForFunction(
        () => document.querySelector('[data-booking-id="b2"] .status')?.textContent === 'confirmed',
        undefined,
        { timeout: 10_000 },
      );

      // The hub kicks the page; the proxy refuses its reconnects for a while.
      proxy.pause();
      expect(await kick(hub, user)).toBe(1);
      // The event log keeps every state change; #detail would already show the
      // next (refused) attempt on a slow machine.
      await page.waitForFunction(() => document.querySelector('#log')?.textContent?.includes('4201'), undefined, {
        timeout: 10_000,
    });
    for (let n = 7; n <= 12; n++) await created(n);
    await publisher.publish(topic, 'booking.updated', { id: 'b7', status: 'seated' });
    const refusedBy = Date.now() + 10_000;
    while (proxy.refused === 0 && Date.now() < refusedBy) await new Promise((r) => setTimeout(r, 20));
    expect(proxy.refused).toBeGreaterThan(0); // it tried, and really was away
    expect(await rowIds(page)).toHaveLength(6);
    expect(await page.getAttribute('#state', 'data-state')).not.toBe('connected');

    // Let it through: it reconnects (backoff) and recovers with `since`.
    proxy.resume();
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 });
    await rowsExactly(page, 12);
    await page.waitForFunction(
      () => document.querySelector('[data-booking-id="b7"] .status')?.textContent === 'seated',
      undefined,
      { timeout: 10_000 },
    );
    await created(13);
    await rowsExactly(page, 13);

    const ids = await rowIds(page);
    expect(ids).toEqual(Array.from({ length: 13 }, (_, i) => `b${i + 1}`));
    expect(new Set(ids).size).toBe(13);
    expect(await page.textContent('#count')).toBe('13');
    // Recovered, not reloaded: one reload (the initial one), no reset.
    expect(await page.textContent('#reloads')).toBe('1');
    expect(await page.textContent('#position')).toMatch(/:15$/);
    expect(errors).toEqual([]);

    await mkdir(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    });
    await page.close();
  });
  it('starts while bookings are being published: every booking once, none missing', async () => {
    const topic = 'bookings:flowing';
    const token = mintToken(hub.secret, { sub: 'flow-viewer', subscribe: ['bookings:*'] });
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    let n = 0;
    let flowing = true;
    const flow = (async () => {
      while (flowing) {
        n += 1;
        await publisher.publish(topic, 'booking.created', { id: `f${n}`, guest: `Guest ${n}`, nights: 2, status: 'confirmed' });
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    while (n < 10) await new Promise((r) => setTimeout(r, 10));

    const page = await context.newPage();
    // A slow load (400 ms, as an application API might be): bookings land during it.
    const query = new URLSearchParams({ hub: hub.wsUrl, token, topic, loadDelay: '400' });
    await scenario('flowing', page, async () => {
      await page.goto(`${web.url}/examples/live-board/?${query}`);
      await page.waitForFunction(
        () => (window as unknown as { board: { synced: { status: string } } }).board.synced.status === 'live',
        undefined,
        { timeout: 15_000 },
      );
      await new Promise((r) => setTimeout(r, 500));
      flowing = false;
      await flow;
      await rowsExactly(page, n);
      const ids = await rowIds(page);
      expect(ids).toEqual(Array.from({ length: n }, (_, i) => `f${i + 1}`));
      expect(new Set(ids).size).toBe(n);
      expect(await page.textContent('#count')).toBe(String(n));
      expect(await page.textContent('#position')).toMatch(new RegExp(`:${n}$`));
      const loads = await page.evaluate(
        () => (window as unknown as { board: { loads: Array<{ readAt: number; upTo: number }> } }).board.loads,
      );
      expect(loads).toHaveLength(1);
      // sync() handed apply() every offset after the position it read, once each, in order.
      const applied = await page.evaluate(() => (window as unknown as { board: { applied: number[] } }).board.applied);
      expect(applied).toEqual(Array.from({ length: n - loads[0]!.readAt }, (_, i) => loads[0]!.readAt + 1 + i));
      // Publications landed between the position read and the load's own read.
      expect(loads[0]!.upTo).toBeGreaterThan(loads[0]!.readAt);
      console.log(
        `live board handoff: ${n} bookings, position read at ${loads[0]!.readAt}, load covered up to ${loads[0]!.upTo}, ` +
          `${n - loads[0]!.upTo} applied after it; apply() saw ${applied.length} offsets (${applied[0]}..${applied.at(-1)}), ` +
          `rows on the board: ${ids.length}, distinct ${new Set(ids).size}`,
      );
    });
    flowing = false;
    await flow;
    await page.close();
  });

  it('does not retry while the browser is offline, and recovers at once when it is back online', async () => {
    const user = 'offline-viewer';
    const topic = 'bookings:offline';
    const token = mintToken(hub.secret, { sub: user, subscribe: ['bookings:*'] });
    const publisher = new HubbubPublisher({ url: hub.httpUrl, apiKey: hub.apiKey });
    const created = (n: number) => publisher.publish(topic, 'booking.created', { id: `o${n}`, guest: `Guest ${n}` });

    const page = await context.newPage();
    const query = new URLSearchParams({ hub: `ws://127.0.0.1:${proxy.port}/ws`, token, topic });
    await scenario('offline', page, async () => {
      await page.goto(`${web.url}/examples/live-board/?${query}`);
      await page.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 });
      await created(1);
      await rowsExactly(page, 1);
      await page.evaluate(() => {
        const w = window as unknown as { board: { client: { on(e: string, f: () => void): void } }; attempts: number };
        w.attempts = 0;
        w.board.client.on('connecting', () => (w.attempts += 1));
    });
    const attempts = () => page.evaluate(() => (window as unknown as { attempts: number }).attempts);

    // Offline: the socket goes quiet; liveness (ping, then no frame) closes it.
    await context.setOffline(true);
    expect(await page.evaluate(() => navigator.onLine)).toBe(false);
    await page.waitForSelector('#state[data-state="disconnected"]', { timeout: 30_000 });
    expect(await page.textContent('#detail')).toContain('when back online');
    await created(2);
    await created(3);
    // Watch a while: no attempt at all while offline (no spinning).
    const watchUntil = Date.now() + 3000;
    while (Date.now() < watchUntil) {
      expect(await attempts()).toBe(0);
      await new Promise((r) => setTimeout(r, 250));
    }

    await context.setOffline(false);
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 5_000 });
    await rowsExactly(page, 3);
    expect(await attempts()).toBe(1); // at once, first try
    expect(await rowIds(page)).toEqual(['o1', 'o2', 'o3']);
    });
    await page.close();
  });
});
