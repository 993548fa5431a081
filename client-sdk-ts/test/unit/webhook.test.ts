import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { verifyWebhook, WebhookVerificationError } from '../../src/webhook.js';

/** A real delivery recorded from the hub by `tests/tests/webhooks.rs` (WEBHOOK_FIXTURE_OUT). */
const fromHub = JSON.parse(
  readFileSync(new URL('./fixtures/webhook-from-hub.json', import.meta.url), 'utf8'),
) as { secrets: string[]; headers: Record<string, string>; body: string };
const hubNow = Number(fromHub.headers['webhook-timestamp']);

describe('verifyWebhook', () => {
  it('accepts the Standard Webhooks specification test vector', async () => {
    const body = '{"test": 2432232314}';
    const headers = {
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    };
    await expect(
      verifyWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', headers, body, { now: 1614265330 }),
    ).resolves.toEqual({ test: 2432232314 });
  });

  it("verifies a delivery signed by the hub, with either rotating secret, from Fetch headers too", async () => {
    for (const secret of fromHub.secrets) {
      const event = await verifyWebhook(secret, fromHub.headers, fromHub.body, { now: hubNow });
      expect(event).toMatchObject({ type: 'publication', sink: 'notify', topic: 'bookings:1', offset: 1 });
    }
    const fetchHeaders = new Headers(fromHub.headers);
    const bytes = new TextEncoder().encode(fromHub.body);
    await expect(verifyWebhook(fromHub.secrets, fetchHeaders, bytes, { now: hubNow })).resolves.toBeTruthy();
  });

  it('refuses a tampered body, a wrong secret, a stale timestamp and missing headers', async () => {
    const [secret] = fromHub.secrets as [string];
    const opts = { now: hubNow };
    await expect(
      verifyWebhook(secret, fromHub.headers, fromHub.body.replace('"offset":1', '"offset":2'), opts),
    ).rejects.toBeInstanceOf(WebhookVerificationError);
    await expect(
      verifyWebhook('whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', fromHub.headers, fromHub.body, opts),
    ).rejects.toThrow('no webhook-signature matches');
    await expect(
      verifyWebhook(secret, fromHub.headers, fromHub.body, { now: hubNow + 301 }),
    ).rejects.toThrow('tolerance');
    const { 'webhook-signature': _, ...unsigned } = fromHub.headers;
    await expect(verifyWebhook(secret, unsigned, fromHub.body, opts)).rejects.toThrow('missing');
  });
});
