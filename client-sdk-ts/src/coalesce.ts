/**
 * Coalescing for bursty events: many calls in a burst become one call of `fn`,
 * `waitMs` after the burst goes quiet, and no later than `maxWaitMs` after the
 * burst's first call (so a steady stream still reloads now and then).
 * Typical use: reload a list once per burst of `booking.*` events.
 */

export interface CoalesceOptions {
  /** Quiet time that ends a burst. Default 100 ms. */
  waitMs?: number;
  /** Longest delay after a burst's first call. Default: no limit. */
  maxWaitMs?: number;
}

export interface Coalesced<A extends unknown[]> {
  /** Schedules `fn`; it runs once per burst, with the arguments of the burst's last call. */
  (...args: A): void;
  /** Runs a pending call now. */
  flush(): void;
  /** Drops a pending call. */
  cancel(): void;
  /** Whether a call is pending. */
  readonly pending: boolean;
}

export function coalesce<A extends unknown[]>(fn: (...args: A) => void, options: CoalesceOptions = {}): Coalesced<A> {
  const waitMs = Math.max(0, options.waitMs ?? 100);
  const maxWaitMs = options.maxWaitMs === undefined ? Infinity : Math.max(waitMs, options.maxWaitMs);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let firstAt = 0;
  let lastArgs: A | undefined;

  const fire = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const args = lastArgs;
    lastArgs = undefined;
    if (args) fn(...args);
  };

  const coalesced = ((...args: A) => {
    const now = Date.now();
    if (lastArgs === undefined) firstAt = now;
    lastArgs = args;
    if (timer !== undefined) clearTimeout(timer);
    const due = Math.min(now + waitMs, firstAt + maxWaitMs);
    timer = setTimeout(fire, Math.max(0, due - now));
  }) as Coalesced<A>;

  coalesced.flush = fire;
  coalesced.cancel = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    lastArgs = undefined;
  };
  Object.defineProperty(coalesced, 'pending', { get: () => lastArgs !== undefined });
  return coalesced;
}
