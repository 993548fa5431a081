/**
 * Timers for any delay. `setTimeout` keeps delays in a signed 32-bit integer:
 * anything above 2^31 − 1 ms (24.8 days) fires at once, so a long-lived
 * token's refresh would loop. Long delays are chained in steps below the limit.
 */

/** The longest delay `setTimeout` honours. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Calls `fn` after `ms` (any length); returns the function that cancels it. */
export function later(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout>;
  const due = Date.now() + ms;
  const arm = (left: number): void => {
    if (left > MAX_TIMEOUT_MS) {
      timer = setTimeout(() => arm(due - Date.now()), MAX_TIMEOUT_MS);
    } else {
      timer = setTimeout(fn, Math.max(0, left));
    }
  };
  arm(ms);
  return () => clearTimeout(timer);
}
