/**
 * The plain EventSource page of docs/protocol.md (docs/examples/sse-page.html,
 * no SDK: `new EventSource(url)` and `addEventListener('pub', …)` only) in
 * headless Chromium against real hub processes on a private Redis: one hub
 * serves the page through a proxy, another takes the publications. The page's
 * hub is restarted while publications go out, and the page reloads (resuming
 * from the id it stored, as `lastEventID`) while they go out; it shows every
 * publication once, in order.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubbubPublisher } from '../../src/publisher.js';
import { mintToken, startHub, waitFor, type RunningHub } from '../support/hub.js';
import { startProxy, type Proxy } from '../support/proxy.js';
import { ownRedis, type OwnRedis } from '../support/redis.js';
import { serveStatic, type StaticServer } from '../support/static-server.js';

const sdkRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const examples = resolve(sdkRoot, '../docs/examples');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let redis: OwnRedis;
let pageHub: RunningHub;
let publishHub: RunningHub;
let web: StaticServer;
let proxy: Proxy;
let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium`);
  redis = await ownRedis();
  pageHub = await startHub({ engine: 'redis', redisUrl: redis.url, keyPrefix: 'plain-sse' });
  publishHub = await startHub({ engine: 'redis', redisUrl: redis.url, keyPrefix: 'plain-sse', like: pageHub });
  web = await serveStatic(examples);
  proxy = await startProxy(Number(new URL(pageHub.httpUrl).port));
  profile = await mkdtemp(join(tmpdir(), 'hubbub-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
});

afterAll(async () => {
  await context?.close();
  await web?.close();
  await proxy?.close();
  await pageHub?.stop();
  await publishHub?.stop();
  await redis?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

/** `hubbub_subscriptions` of a hub. */
async function subscriptions(hub: RunningHub): Promise<number> {
  const text = await fetch(`${hub.httpUrl}/metrics`).then((r) => r.text());
  return Number(/^hubbub_subscriptions (\d+)$/m.exec(text)?.[1] ?? 0);
}

describe('a plain EventSource page (docs/examples/sse-page.html)', () => {
  it('is the page the docs quote', () => {
    const page = readFileSync(join(examples, 'sse-page.html'), 'utf8');
    const script = page.split('<script>\n')[1]?.split('  </script>')[0] ?? '';
    expect(script.length).toBeGreaterThan(200);
    expect(readFileSync(resolve(sdkRoot, '../docs/protocol.md'), 'utf8')).toContain(script);
  });

  it('shows every publication once, in order, across a hub restart and page reloads', async () => {
    const topics = ['bookings:plain-a', 'bookings:plain-b'];
    const token = mintToken(pageHub.secret, { sub: 'plain-page', subscribe: ['bookings:*'] });
    const publisher = new HubbubPublisher({ url: publishHub.httpUrl, apiKey: publishHub.apiKey });
    let published = 0;
    const publish = async (): Promise<void> => {
      const n = ++published;
      await publisher.publish(topics[n % 2] as string, 'booking.created', { n });
    };

    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // Everything the page ever shows, across reloads (the list starts empty on each load).
    const shown: string[] = [];
    await page.exposeBinding('hubbubShown', (_source, text: string) => void shown.push(text));
    await page.addInitScript(() => {
      new MutationObserver((records) => {
        for (const r of records) {
          for (const node of r.addedNodes) {
            if (node.nodeName === 'LI') (window as unknown as { hubbubShown(t: string): void }).hubbubShown(node.textContent ?? '');
          }
        }
      }).observe(document, { childList: true, subtree: true });
    });
    const query = new URLSearchParams({ hub: `http://127.0.0.1:${proxy.port}`, token });
    for (const t of topics) query.append('topic', t);
    const shownAtLeast = (n: number, what: string) => waitFor(what, () => shown.length >= n, 30_000);
    const reloads: string[] = [];

    try {
      await page.goto(`${web.url}/sse-page.html?${query}`);
      await waitFor('the page subscribed', async () => (await subscriptions(pageHub)) === 2, 15_000);
      for (let i = 0; i < 10; i++) await publish();
      await shownAtLeast(10, 'live publications');

      // The page's hub restarts (SIGTERM: disconnect 4200, drain) while
      // publications go out through the other hub; the proxy keeps the
      // page's URL and refuses it until the new process is up.
      proxy.pause();
      await pageHub.stop();
      for (let i = 0; i < 10; i++) await publish();
      pageHub = await startHub({ engine: 'redis', redisUrl: redis.url, keyPrefix: 'plain-sse', like: pageHub });
      proxy.setUpstream(Number(new URL(pageHub.httpUrl).port));
      proxy.resume();
      for (let i = 0; i < 5; i++) await publish();
      await shownAtLeast(25, 'what was published during the restart');

      // Reloads while publications go out: each load resumes from the id
      // the page stored in localStorage.
      for (let round = 0; round < 3; round++) {
        const flow = (async () => {
          for (let i = 0; i < 5; i++) {
            await publish();
            await new Promise((r) => setTimeout(r, 30));
          }
        })();
        reloads.push((await page.evaluate(() => localStorage.getItem('hubbub-last-event-id'))) ?? '');
        await page.reload();
        await flow;
      }
      await shownAtLeast(published, 'what was published around the reloads');
      await new Promise((r) => setTimeout(r, 500)); // a duplicate would show up now

      const expected: string[] = [];
      const offsets = new Map<string, number>();
      for (let n = 1; n <= published; n++) {
        const topic = topics[n % 2] as string;
        const offset = (offsets.get(topic) ?? 0) + 1;
        offsets.set(topic, offset);
        expected.push(`${topic} ${offset} {"n":${n}}`);
      }
      const perTopic = (list: string[], topic: string) => list.filter((s) => s.startsWith(`${topic} `));
      for (const topic of topics) expect(perTopic(shown, topic)).toEqual(perTopic(expected, topic));
      expect(shown).toHaveLength(published);
      expect(shown.filter((s) => s.includes(' reset at '))).toEqual([]);
      expect(reloads.every((id) => /^h1\.[0-9a-f]{16}\.[0-9a-z]+\.[0-9a-z]+$/.test(id))).toBe(true);
      expect(errors).toEqual([]);
      console.log(
        `plain EventSource page: ${shown.length} publications shown once, in order, on ${topics.length} topics; ` +
          `1 hub restart (proxy refused ${proxy.refused} reconnects), 3 reloads resuming from ids ${reloads.join(', ')}`,
      );
    } catch (err) {
      throw new Error(`${String(err)}\nshown: ${shown.join(' | ')}\nhub log tail:\n${pageHub.logs().slice(-3000)}`, { cause: err });
    } finally {
      await page.close();
    }
  });
});
