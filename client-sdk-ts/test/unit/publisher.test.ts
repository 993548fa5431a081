import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HubbubError } from '../../src/errors.js';
import { HubbubBatchError, HubbubPublisher } from '../../src/publisher.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

type Step = { status: number; body?: unknown; headers?: Record<string, string> } | 'network-error';

/** A fake fetch answering with the scripted steps, recording every request. */
function scripted(steps: Step[]) {
  const calls: Array<{ url: string; headers: Record<string, string>; body: any }> = [];
  const fetch = vi.fn(async (url: string | URL | Request, init?: RequestInit) => {
    calls.push({
      url: String(url),
      headers: init?.headers as Record<string, string>,
      body: JSON.parse(String(init?.body)),
    });
    const step = steps.shift();
    if (!step) throw new Error('unexpected request');
    if (step === 'network-error') throw new TypeError('fetch failed');
    return new Response(step.body === undefined ? null : JSON.stringify(step.body), {
      status: step.status,
      headers: { 'content-type': 'application/json', ...step.headers },
    });
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, calls };
}

const ok = { status: 200, body: { position: { epoch: 'e1', offset: 7 } } };
const unavailable = { status: 503, body: { error: { code: 'unavailable', message: 'broker down' } } };

async function run<T>(p: Promise<T>): Promise<T> {
  await vi.runAllTimersAsync();
  return p;
}

describe('HubbubPublisher', () => {
  it('posts the publication with the API key and an idempotency key', async () => {
    const { fetch, calls } = scripted([ok]);
    const pub = new HubbubPublisher({ url: 'http://hub.test/', apiKey: 'sk_test', fetch });
    const res = await run(pub.publish('bookings', 'booking.created', { id: 1 }));
    expect(res).toEqual({ ok: true, position: { epoch: 'e1', offset: 7 } });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.url).toBe('http://hub.test/api/v1/publish');
    expect(calls[0]?.headers.authorization).toBe('Bearer sk_test');
    expect(calls[0]?.body).toMatchObject({ topic: 'bookings', event: 'booking.created', data: { id: 1 } });
    expect(calls[0]?.body.idempotency_key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('generates a new key per call', async () => {
    const { fetch, calls } = scripted([ok, ok]);
    const pub = new HubbubPublisher({ url: 'http://hub.test', apiKey: 'k', fetch });
    await run(pub.publish('t', 'e', 1));
    await run(pub.publish('t', 'e', 1));
    expect(calls[0]?.body.idempotency_key).not.toBe(calls[1]?.body.idempotency_key);
  });

  it('retries 503, 429 and network errors with the same idempotency key', async () => {
    const { fetch, calls } = scripted([
      unavailable,
      'network-error',
      { status: 429, body: { error: { code: 'rate_limited', message: 'slow down' } } },
      ok,
    ]);
    const pub = new HubbubPublisher({ url: 'http://hub.test', apiKey: 'k', fetch, attempts: 4 });
    const res = await run(pub.publish('t', 'e', { x: 1 }));
    expect(res.position.offset).toBe(7);
    expect(calls).toHaveLength(4);
    const keys = new Set(calls.map((c) => c.body.idempotency_key));
    expect(keys.size).toBe(1);
  });

  it('reuses a caller-supplied key on retries', async () => {
    const { fetch, calls } = scripted([unavailable, ok]);
    const pub = new HubbubPublisher({ url: 'http://hub.test', apiKey: 'k', fetch });
    await run(pub.publish('t', 'e', 1, { idempotencyKey: 'order-9-created' }));
    expect(calls.map((c) => c.body.idempotency_key)).toEqual(['order-9-created', 'order-9-created']);
  });

  it('waits between retries with bounded backoff, honouring Retry-After up to maxMs', async () => {
    const { fetch, calls } = scripted([
      { status: 429, body: { error: { code: 'rate_limited', message: '' } }, headers: { 'retry-after': '1' } },
      ok,
    ]);
    const pub = new HubbubPublisher({
      url: 'http://hub.test',
      apiKey: 'k',
      fetch,
      backoff: { minMs: 100, maxMs: 5000 },
      random: () => 0,
    });
    const p = pub.publish('t', 'e', 1);
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    await expect(p).resolves.toMatchObject({ ok: true });
  });

  it.each([400, 401, 403, 404, 413])('does not retry %i and throws the hub error', async (status) => {
    const { fetch, calls } = scripted([{ status, body: { error: { code: 'forbidden', message: 'no scope' } } }]);
    const pub = new HubbubPublisher({ url: 'http://hub.test', apiKey: 'k', fetch });
    const err = await run(pub.publish('t', 'e', 1).catch((e: unknown) => e));
    expect(err).toBeInstanceOf(HubbubError);
    expect(err).toMatchObject({ code: 'forbidden', message: 'no scope', status });
    expect(calls).toHaveLength(1);
  });

  it('gives up after `attempts` tries with the last error', async () => {
    const { fetch, calls } = scripted([unavailable, unavailable, unavailable]);
    const pub = new HubbubPublisher({ url: 'http://hub.test', apiKey: 'k', fetch, attempts: 3 });
    const err = await run(pub.publish('t', 'e', 1).catch((e: unknown) => e));
    expect(err).toMatchObject({ code: 'unavailable', status: 503 });
    expect(calls).toHaveLength(3);
  });

  it('resolves { ok: false, error } instead of throwing in non-throwing mode', async () => {
    const { fetch } = scripted(['network-error', 'network-error']);
    const pub = new HubbubPublisher({ url: 'http://hub.test', apiKey: 'k', fetch, attempts: 2, throwOnError: false });
    const res = await run(pub.publish('t', 'e', 1));
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.error).toMatchObject({ code: 'network' });
  });

  it('lets one call opt out of throwing', async () => {
    const { fetch } = scripted([{ status: 401, body: { error: { code: 'unauthorized', message: 'bad key' } } }]);
    const pub = new HubbubPublisher({ url: 'http://hub.test', apiKey: 'k', fetch });
    const res = await run(pub.publish('t', 'e', 1, { throwOnError: false }));
    expect(res).toMatchObject({ ok: false, error: { code: 'unauthorized', status: 401 } });
  });

  it('batches with one key per publication and retries the batch with the same keys', async () => {
    const results = [{ position: { epoch: 'e', offset: 1 } }, { position: { epoch: 'e', offset: 2 } }];
    const { fetch, calls } = scripted([unavailable, { status: 200, body: { results } }]);
    const pub = new HubbubPublisher({ url: 'http://hub.test', apiKey: 'k', fetch });
    const res = await run(
      pub.batch([
        { topic: 'a', event: 'e', data: 1 },
        { topic: 'b', event: 'e', data: 2, idempotencyKey: 'mine' },
      ]),
    );
    expect(res).toEqual({ ok: true, results, positions: [{ epoch: 'e', offset: 1 }, { epoch: 'e', offset: 2 }] });
    expect(calls[0]?.url).toBe('http://hub.test/api/v1/batch');
    const keys0 = calls[0]?.body.publications.map((p: { idempotency_key: string }) => p.idempotency_key);
    const keys1 = calls[1]?.body.publications.map((p: { idempotency_key: string }) => p.idempotency_key);
    expect(keys0).toEqual(keys1);
    expect(keys0[1]).toBe('mine');
    expect(keys0[0]).not.toBe(keys0[1]);
  });

  it('makes refused batch items hard to miss: thrown by default, `failed` with throwOnError: false', async () => {
    const results = [
      { position: { epoch: 'e', offset: 1 } },
      { error: { code: 'forbidden', message: 'not allowed to publish `bookings`' } },
    ];
    const items = [
      { topic: 'bookings:42', event: 'booking.updated', data: 1 },
      { topic: 'bookings', event: 'booking.updated', data: 2 },
    ];
    const { fetch } = scripted([
      { status: 200, body: { results } },
      { status: 200, body: { results } },
    ]);
    const pub = new HubbubPublisher({ url: 'http://hub.test', apiKey: 'k', fetch });
    const thrown = await run(pub.batch(items).catch((e: unknown) => e));
    expect(thrown).toBeInstanceOf(HubbubBatchError);
    const err = thrown as HubbubBatchError;
    expect(err.code).toBe('forbidden');
    expect(err.message).toContain('1 of 2 publications were refused; first: #1 bookings forbidden');
    expect(err.failed).toMatchObject([{ index: 1, topic: 'bookings', event: 'booking.updated', error: { code: 'forbidden' } }]);
    expect(err.results).toEqual(results);
    const res = await run(pub.batch(items, { throwOnError: false }));
    expect(res.ok).toBe(false);
    if (res.ok || !('failed' in res)) throw new Error('expected a partial batch');
    expect(res.failed.map((f) => f.topic)).toEqual(['bookings']);
    expect(res.error).toBeInstanceOf(HubbubBatchError);
  });

  it('types results by mode (compile-time check)', async () => {
    const { fetch } = scripted([ok, ok]);
    const throwing = new HubbubPublisher({ url: 'http://h', apiKey: 'k', fetch });
    const safe = new HubbubPublisher({ url: 'http://h', apiKey: 'k', fetch, throwOnError: false });
    const a = await run(throwing.publish('t', 'e', 1));
    const offset: number = a.position.offset; // no narrowing needed
    const b = await run(safe.publish('t', 'e', 1));
    // @ts-expect-error: may be a failure, narrow on `ok` first
    void b.position;
    expect(offset).toBe(7);
    expect(b.ok).toBe(true);
  });
});
