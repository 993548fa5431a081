/** Reconnect and retry delays: exponential growth, full jitter, hard bounds. */

export interface BackoffOptions {
  /** The smallest delay, and the base of the exponential growth. Default 500 ms. */
  minMs?: number;
  /** The largest delay. Default 20 000 ms. */
  maxMs?: number;
}

export const DEFAULT_BACKOFF = { minMs: 500, maxMs: 20_000 } as const;

/**
 * The delay before retry number `attempt` (0 for the first retry): a uniformly
 * random value in `[minMs, ceiling]`, where `ceiling = min(maxMs, minMs · 2^(attempt+1))`.
 * The full range of jitter spreads a crowd of clients that lost the same node;
 * the result never leaves `[minMs, maxMs]`.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const { minMs, maxMs } = resolveBackoff(options);
  const exp = Math.min(attempt + 1, 52);
  const ceiling = Math.min(maxMs, minMs * 2 ** exp);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(minMs + r * (ceiling - minMs));
}

export function resolveBackoff(options: BackoffOptions = {}): Required<BackoffOptions> {
  const minMs = Math.max(0, options.minMs ?? DEFAULT_BACKOFF.minMs);
  const maxMs = Math.max(minMs, options.maxMs ?? Math.max(DEFAULT_BACKOFF.maxMs, minMs));
  return { minMs, maxMs };
}
