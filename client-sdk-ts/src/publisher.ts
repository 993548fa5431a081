/**
 * The publisher for backends: the REST API's `POST /api/v1/publish` and
 * `POST /api/v1/batch`, with an idempotency key per call that every retry
 * reuses, bounded retries with backoff, and a mode that never throws.
 */
import { backoffDelay, resolveBackoff, type BackoffOptions } from './backoff.js';
import { HubbubError } from './errors.js';
import type { FetchLike } from './transport/sse.js';
import type { Position } from './wire.js';

export interface PublisherOptions<Throw extends boolean = true> {
  /** The hub's HTTP base URL, e.g. `https://hub.example.com`. */
  url: string;
  /** An API key (or a JWT with a `publish` claim), sent as `Authorization: Bearer …`. */
  apiKey: string;
  /** Tries per call, the first included. Default 4. */
  attempts?: number;
  /** Delays between tries. Default `{ minMs: 100, maxMs: 2000 }`. */
  backoff?: BackoffOptions;
  /** Deadline of each HTTP request. Default 10 000 ms. */
  timeoutMs?: number;
  /** `false`: resolve `{ ok: false, error }` instead of throwing. Default `true`. */
  throwOnError?: Throw;
  fetch?: FetchLike;
  random?: () => number;
}

export interface PublishInput {
  topic: string;
  event: string;
  data: unknown;
  /** Default: a new UUID per call, reused by its retries. */
  idempotencyKey?: string;
}

export interface CallOptions<Throw extends boolean | undefined = undefined> {
  idempotencyKey?: string;
  /** Overrides the publisher's `throwOnError` for this call. */
  throwOnError?: Throw;
}

export type PublishOk = { ok: true; position: Position };
export type Failure = { ok: false; error: HubbubError };
/** One item of the hub's batch answer, in the order sent. */
export type BatchItemResult = { position: Position } | { error: { code: string; message: string } };
/** Every publication of the batch was accepted: `positions[i]` is item `i`'s. */
export type BatchOk = { ok: true; results: BatchItemResult[]; positions: Position[] };
/** A publication of a batch the hub refused (the others may have been accepted). */
export interface BatchFailedItem {
  /** Its index in the batch. */
  index: number;
  topic: string;
  event: string;
  /** The hub's error for it (`forbidden`, `unknown_namespace`, …), with the hub's message. */
  error: HubbubError;
}

/**
 * Thrown by `batch()` (or its `error` when `throwOnError: false`) when the hub
 * answered but refused some items: `failed` lists them, `results` is the whole
 * answer (the accepted items have their position there and are not undone).
 */
export class HubbubBatchError extends HubbubError {
  readonly failed: BatchFailedItem[];
  readonly results: BatchItemResult[];

  constructor(failed: BatchFailedItem[], results: BatchItemResult[]) {
    const first = failed[0];
    const what = first ? `; first: #${first.index} ${first.topic} ${first.error.code}: ${first.error.message}` : '';
    super(first?.error.code ?? 'internal', `${failed.length} of ${results.length} publications were refused${what}`);
    this.failed = failed;
    this.results = results;
  }
}

/** A batch some of whose items the hub refused (with `throwOnError: false`). */
export type BatchPartial = { ok: false; error: HubbubBatchError; failed: BatchFailedItem[]; results: BatchItemResult[] };

/** The result type: throwing calls resolve only on success; the others may resolve a failure. */
type Outcome<Ok, Throw extends boolean | undefined, Default extends boolean, Fail = Failure> = (
  Throw extends boolean ? Throw : Default
) extends false
  ? Ok | Fail
  : Ok;

/** Statuses worth retrying: the hub did not accept the publication (503), asked to slow down (429), or a proxy failed. */
const RETRY_STATUSES = new Set([429, 502, 503, 504]);

export class HubbubPublisher<Throw extends boolean = true> {
  private readonly base: string;
  private readonly apiKey: string;
  private readonly attempts: number;
  private readonly backoff: BackoffOptions;
  private readonly timeoutMs: number;
  private readonly throwOnError: boolean;
  private readonly fetchImpl: FetchLike;
  private readonly random: () => number;

  constructor(options: PublisherOptions<Throw>) {
    this.base = options.url.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.attempts = Math.max(1, options.attempts ?? 4);
    this.backoff = options.backoff ?? { minMs: 100, maxMs: 2000 };
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.throwOnError = options.throwOnError !== false;
    const f = options.fetch ?? (typeof fetch === 'function' ? fetch.bind(globalThis) : undefined);
    if (!f) throw new TypeError('no fetch implementation: pass `fetch`');
    this.fetchImpl = f;
    this.random = options.random ?? Math.random;
  }

  /** Publishes one event; resolves with its position in the topic. */
  async publish<T extends boolean | undefined = undefined>(
    topic: string,
    event: string,
    data: unknown,
    options: CallOptions<T> = {},
  ): Promise<Outcome<PublishOk, T, Throw>> {
    const body = { topic, event, data, idempotency_key: options.idempotencyKey ?? newKey() };
    return this.settle(options.throwOnError, async () => {
      const res = (await this.post('/api/v1/publish', body)) as { position: Position };
      return { ok: true, position: res.position } satisfies PublishOk;
    }) as Promise<Outcome<PublishOk, T, Throw>>;
  }

  /**
   * Publishes several events in one request. Each gets its own idempotency key,
   * so retrying the whole batch never publishes one twice. When the hub
   * refuses some items (a topic the key may not publish to, an unknown
   * namespace), it throws a {@link HubbubBatchError} listing them in `failed`
   * (with `throwOnError: false`: resolves `{ ok: false, error, failed, results }`);
   * the accepted items stay published.
   */
  async batch<T extends boolean | undefined = undefined>(
    publications: PublishInput[],
    options: Omit<CallOptions<T>, 'idempotencyKey'> = {},
  ): Promise<Outcome<BatchOk, T, Throw, BatchPartial | Failure>> {
    const body = {
      publications: publications.map((p) => ({
        topic: p.topic,
        event: p.event,
        data: p.data,
        idempotency_key: p.idempotencyKey ?? newKey(),
      })),
    };
    const outcome = await this.settle(options.throwOnError, async () => {
      const res = (await this.post('/api/v1/batch', body)) as { results: BatchItemResult[] };
      const failed: BatchFailedItem[] = [];
      const positions: Position[] = [];
      res.results.forEach((r, index) => {
        if ('position' in r) {
          positions.push(r.position);
        } else {
          const item = publications[index];
          failed.push({
            index,
            topic: item?.topic ?? '',
            event: item?.event ?? '',
            error: new HubbubError(r.error.code, r.error.message),
          });
        }
      });
      if (failed.length > 0) throw new HubbubBatchError(failed, res.results);
      return { ok: true, results: res.results, positions } satisfies BatchOk;
    });
    if (!outcome.ok && outcome.error instanceof HubbubBatchError) {
      const { error } = outcome;
      return { ok: false, error, failed: error.failed, results: error.results } as Outcome<BatchOk, T, Throw, BatchPartial | Failure>;
    }
    return outcome as Outcome<BatchOk, T, Throw, BatchPartial | Failure>;
  }

  private async settle<Ok>(throwOnError: boolean | undefined, run: () => Promise<Ok>): Promise<Ok | Failure> {
    try {
      return await run();
    } catch (err) {
      const error =
        err instanceof HubbubError ? err : new HubbubError('internal', String(err), { cause: err });
      if (throwOnError ?? this.throwOnError) throw error;
      return { ok: false, error };
    }
  }

  /** POSTs a JSON body; retries the same body (same idempotency keys) on retriable failures. */
  private async post(path: string, body: unknown): Promise<unknown> {
    const payload = JSON.stringify(body);
    let last: HubbubError | undefined;
    let retryAfterMs: number | undefined;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      if (attempt > 0) await sleep(this.retryDelay(attempt - 1, retryAfterMs));
      retryAfterMs = undefined;
      let res: Response;
      try {
        res = await this.fetchImpl(this.base + path, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${this.apiKey}` },
          body: payload,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        const timedOut = err instanceof Error && err.name === 'TimeoutError';
        last = new HubbubError(timedOut ? 'timeout' : 'network', `POST ${path}: ${String(err)}`, { cause: err });
        continue;
      }
      if (res.ok) return res.json();
      last = await httpError(path, res);
      if (!RETRY_STATUSES.has(res.status)) throw last;
      retryAfterMs = retryAfter(res);
    }
    throw last ?? new HubbubError('internal', 'no attempt was made');
  }

  /** The backoff delay, or the hub's `Retry-After` when longer (capped by `backoff.maxMs`). */
  private retryDelay(retry: number, retryAfterMs: number | undefined): number {
    const delay = backoffDelay(retry, this.backoff, this.random);
    if (retryAfterMs === undefined) return delay;
    return Math.max(delay, Math.min(retryAfterMs, resolveBackoff(this.backoff).maxMs));
  }
}

async function httpError(path: string, res: Response): Promise<HubbubError> {
  const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
  const code = body?.error?.code ?? `http_${res.status}`;
  const message = body?.error?.message ?? `POST ${path} answered ${res.status}`;
  return new HubbubError(code, message, { status: res.status });
}

function retryAfter(res: Response): number | undefined {
  const value = res.headers.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  return Number.isFinite(seconds) ? Math.max(0, seconds * 1000) : undefined;
}

/** A v4 UUID (`crypto.randomUUID` needs a secure context in browsers; fall back to `getRandomValues`). */
export function newKey(): string {
  const c = globalThis.crypto;
  if (typeof c.randomUUID === 'function') return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] as number) & 0x0f) | 0x40;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
