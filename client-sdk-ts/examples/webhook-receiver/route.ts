/**
 * `app/api/hubbub/route.ts` in a Next.js app: the sink's `url` points here.
 * Set `HUBBUB_WEBHOOK_SECRETS` to the sink's `whsec_…` secret(s), comma-separated.
 */
import { createReceiver } from './handler.js';

export const POST = createReceiver({
  secrets: (process.env.HUBBUB_WEBHOOK_SECRETS ?? '').split(',').filter(Boolean),
  onEvent: (event, webhookId) => {
    // Your effect here (e.g. send the booking confirmation), keyed by webhookId.
    console.log('hubbub event', webhookId, event.type, event.topic);
  },
});
