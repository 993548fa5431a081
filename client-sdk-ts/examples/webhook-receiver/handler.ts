/**
 * A Hubbub webhook receiver for any runtime with Fetch `Request`/`Response`
 * (a Next.js App Router route handler, see `route.ts`; Node 20+, Deno, Bun,
 * edge runtimes).
 *
 * - The signature is checked over the RAW body bytes, before any parsing:
 *   re-serialized JSON would not match.
 * - Deliveries are at least once: a resend carries the same `webhook-id`, so
 *   the receiver de-duplicates by it. Here a bounded in-memory set (one
 *   process); in production, a unique key written in the same database
 *   transaction as the effect.
 * - Within a topic, deliveries come in offset order (sink `ordering = "topic"`).
 * - Answer 2xx only once the event is handled: anything else is retried, and
 *   after `max_attempts` dead-lettered for an operator to replay.
 */
import { verifyWebhook, WebhookVerificationError, type WebhookEvent } from '@hubbub/client';

/** What {@link createReceiver} needs. */
export interface ReceiverOptions {
  /** The sink's secret(s), `whsec_…`; several while rotating. */
  secrets: string[];
  /** Handles one event, once per `webhook-id`; throw to have it retried. */
  onEvent: (event: WebhookEvent, webhookId: string) => Promise<void> | void;
  /** How many handled ids to remember (default 100,000). */
  remember?: number;
}

/** A `(request) => response` handler that verifies, de-duplicates and handles deliveries. */
export function createReceiver(options: ReceiverOptions): (request: Request) => Promise<Response> {
  const seen = new Set<string>();
  const remember = options.remember ?? 100_000;
  return async (request) => {
    const raw = new Uint8Array(await request.arrayBuffer());
    let event: WebhookEvent;
    try {
      event = await verifyWebhook(options.secrets, request.headers, raw);
    } catch (err) {
      if (err instanceof WebhookVerificationError) return new Response('bad signature', { status: 401 });
      throw err;
    }
    const id = request.headers.get('webhook-id') ?? '';
    if (seen.has(id)) return new Response(null, { status: 204 }); // a resend: handled already
    await options.onEvent(event, id);
    seen.add(id);
    if (seen.size > remember) {
      const oldest = seen.values().next();
      if (!oldest.done) seen.delete(oldest.value);
    }
    return new Response(null, { status: 204 });
  };
}
