/**
 * `verifyWebhook`: checks a Hubbub webhook delivery (Standard Webhooks 1.0:
 * `webhook-id`, `webhook-timestamp`, `webhook-signature`) on the receiving
 * backend, with WebCrypto (Node 20+, Deno, Bun, browsers, edge runtimes).
 */

/** A publication as a sink receives it. */
export interface WebhookPublication {
  type: 'publication';
  sink: string;
  topic: string;
  epoch: string;
  offset: number;
  event: string;
  data: unknown;
  ts: number;
  id: string;
}

/** A topic's first subscriber (`occupied`) or its last one gone for the grace (`vacated`). */
export interface WebhookOccupancy {
  type: 'occupied' | 'vacated';
  sink: string;
  topic: string;
  ts: number;
}

/** A presence member joined or left a topic. */
export interface WebhookPresence {
  type: 'join' | 'leave';
  sink: string;
  topic: string;
  member: { client_id: string; user: string; info: unknown };
  ts: number;
}

/** Any webhook body: a publication or a lifecycle event (see `type`). */
export type WebhookEvent = WebhookPublication | WebhookOccupancy | WebhookPresence;

/** Why a delivery was refused. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
}

/** Headers as Fetch `Headers`, or a Node/Express-style record. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

/** Options of {@link verifyWebhook}. */
export interface VerifyOptions {
  /** How far `webhook-timestamp` may be from now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** "Now" in Unix seconds (for tests). */
  now?: number;
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') {
    return (headers as Headers).get(name) ?? undefined;
  }
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

function fromBase64(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * Verifies a delivery and returns its parsed body. `secret` is the sink's
 * `whsec_…` secret (or several, while rotating); `rawBody` is the body
 * exactly as received (verify before parsing). Throws
 * {@link WebhookVerificationError} when a header is missing, the timestamp
 * is outside the tolerance, or no signature matches.
 */
export async function verifyWebhook(
  secret: string | string[],
  headers: WebhookHeaders,
  rawBody: string | Uint8Array,
  options: VerifyOptions = {},
): Promise<WebhookEvent> {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature');
  }
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError('invalid webhook-timestamp');
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const tolerance = options.toleranceSeconds ?? 300;
  if (Math.abs(now - Number(timestamp)) > tolerance) {
    throw new WebhookVerificationError('webhook-timestamp is outside the tolerance');
  }
  const body = typeof rawBody === 'string' ? new TextEncoder().encode(rawBody) : rawBody;
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const message = new Uint8Array(new ArrayBuffer(prefix.length + body.length));
  message.set(prefix, 0);
  message.set(body, prefix.length);
  const offered = signatures
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => s.slice(3));
  for (const s of Array.isArray(secret) ? secret : [secret]) {
    if (!s.startsWith('whsec_')) throw new WebhookVerificationError('a secret must start with whsec_');
    const key = await crypto.subtle.importKey(
      'raw',
      fromBase64(s.slice('whsec_'.length)),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    const expected = toBase64(new Uint8Array(await crypto.subtle.sign('HMAC', key, message)));
    if (offered.some((o) => constantTimeEqual(o, expected))) {
      return JSON.parse(new TextDecoder().decode(body)) as WebhookEvent;
    }
  }
  throw new WebhookVerificationError('no webhook-signature matches');
}
