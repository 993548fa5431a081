/**
 * Webhook deliveries from a real hub, verified by two independent
 * implementations (the `standardwebhooks` npm package and the SDK's
 * `verifyWebhook`), and the receiver example (`examples/webhook-receiver`)
 * served as a real endpoint the hub delivers to.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook, WebhookVerificationError, type WebhookEvent } from '../../src/index.js';
import { createReceiver } from '../../examples/webhook-receiver/handler.js';
import { POST as routePost } from '../../examples/webhook-receiver/route.js';
import { api, startHub, waitFor, type RunningHub } from '../support/hub.js';

interface Got {
  headers: Record<string, string>;
  raw: Buffer;
}

const secret = `whsec_${randomBytes(24).toString('base64')}`;
const raw: Got[] = [];
/** What the example endpoint received (its sink has its own webhook-ids). */
const exampleGot: Got[] = [];
const handled: Array<{ id: string; event: WebhookEvent }> = [];
const servers: Server[] = [];
let hub: RunningHub;

function flat(headers: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
}

/** An HTTP server on 127.0.0.1:0 handing each request's raw body to `handle`. */
async function listen(handle: (headers: Record<string, string>, body: Buffer) => Promise<number>): Promise<string> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      handle(flat(req.headers), Buffer.concat(chunks)).then(
        (status) => res.writeHead(status).end(),
        () => res.writeHead(500).end(),
      );
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (typeof addr !== 'object' || !addr) throw new Error('no address');
  return `http://127.0.0.1:${addr.port}/hook`;
}

const example = createReceiver({
  secrets: [secret],
  onEvent: (event, id) => {
    handled.push({ id, event });
  },
});

/** The example handler behind a Node HTTP server, as a framework would call it. */
function callExample(url: string, headers: Record<string, string>, body: Buffer): Promise<Response> {
  return example(new Request(url, { method: 'POST', headers, body: Uint8Array.from(body) }));
}

let exampleUrl: string;

beforeAll(async () => {
  const rawUrl = await listen(async (headers, body) => {
    raw.push({ headers, raw: body });
    return 204;
  });
  exampleUrl = await listen(async (headers, body) => {
    exampleGot.push({ headers, raw: body });
    return (await callExample(exampleUrl, headers, body)).status;
  });
  const sinkToml = (name: string, url: string): string =>
    `\n[[webhooks]]\nname = "${name}"\nurl = "${url}"\ntopics = ["bookings:*"]\nsecrets = ["${secret}"]\nbackoff_min = "10ms"\nbackoff_max = "100ms"\n`;
  hub = await startHub({ extraToml: sinkToml('raw', rawUrl) + sinkToml('app', exampleUrl) });
});

afterAll(async () => {
  await hub?.stop();
  for (const s of servers) s.close();
});

describe('webhook deliveries from a real hub', () => {
  const topics = ['bookings:w1', 'bookings:w2'];
  const perTopic = 10;

  it('publishes', async () => {
    for (let i = 0; i < perTopic; i++) {
      for (const topic of topics) {
        const r = await api(hub, '/api/v1/publish', { topic, event: 'booking.created', data: { booking: i, name: 'Zoë ✓' } });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
      }
    }
    await waitFor('every raw delivery', () => raw.length >= perTopic * topics.length, 30_000);
  });

  it('verifies with the standardwebhooks package and with verifyWebhook', async () => {
    const wh = new Webhook(secret);
    for (const d of raw) {
      const theirs = wh.verify(d.raw.toString('utf8'), d.headers) as WebhookEvent;
      const ours = await verifyWebhook(secret, d.headers, new Uint8Array(d.raw));
      expect(ours).toEqual(theirs);
      expect(ours.type).toBe('publication');
      expect(d.headers['webhook-id']).toMatch(/^msg_/);
    }
    // One changed byte fails both.
    const d = raw[0]!;
    const tampered = Buffer.from(d.raw);
    tampered[tampered.length - 2] = tampered[tampered.length - 2]! ^ 1;
    expect(() => wh.verify(tampered.toString('utf8'), d.headers)).toThrow();
    await expect(verifyWebhook(secret, d.headers, new Uint8Array(tampered))).rejects.toBeInstanceOf(
      WebhookVerificationError,
    );
    // Another secret fails both.
    const other = `whsec_${randomBytes(24).toString('base64')}`;
    expect(() => new Webhook(other).verify(d.raw.toString('utf8'), d.headers)).toThrow();
    await expect(verifyWebhook(other, d.headers, new Uint8Array(d.raw))).rejects.toBeInstanceOf(WebhookVerificationError);
  });

  it('the example receiver handles each event once, in order per topic, and refuses forgeries', async () => {
    await waitFor('the example handled every event', () => handled.length >= perTopic * topics.length, 30_000);
    for (const topic of topics) {
      const offsets = handled
        .filter((h) => h.event.topic === topic)
        .map((h) => (h.event as { offset: number }).offset);
      expect(offsets).toEqual(Array.from({ length: perTopic }, (_, i) => i + 1));
    }
    // A resend (same webhook-id, same signed body) is answered 2xx and not handled again.
    const d = exampleGot[0]!;
    const again = await callExample(exampleUrl, d.headers, d.raw);
    expect(again.status).toBe(204);
    expect(handled.filter((h) => h.id === d.headers['webhook-id'])).toHaveLength(1);
    // A forged body is refused.
    const forged = Buffer.from(d.raw.toString('utf8').replace('booking.created', 'booking.deleted'));
    expect((await callExample(exampleUrl, d.headers, forged)).status).toBe(401);
    expect(handled).toHaveLength(perTopic * topics.length);
    // The Next.js route, with no secret configured, refuses everything.
    expect((await routePost(new Request(exampleUrl, { method: 'POST', headers: d.headers, body: Uint8Array.from(d.raw) }))).status).toBe(401);
  });
});
