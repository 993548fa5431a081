/**
 * The token the client connects with: fetched with the app's `getToken()` on
 * start, again a margin before it expires, and after a 4100 close.
 */

export type GetToken = () => string | Promise<string>;

/** How long before expiry the token is replaced: `min(maxMarginMs, lifetime / 3)`. */
export function refreshMargin(lifetimeMs: number, maxMarginMs: number): number {
  return Math.max(0, Math.min(maxMarginMs, lifetimeMs / 3));
}

/** The `exp` claim of a JWT in ms since the Unix epoch, or undefined when it has none or is no JWT. */
export function jwtExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class TokenSource {
  private token: string | undefined;
  /** When the current token expires (local clock, ms), if known. */
  private expiresAt: number | undefined;
  private issuedAt = 0;
  private inflight: Promise<string> | undefined;

  constructor(
    private readonly getToken: GetToken,
    private readonly maxMarginMs: number,
    private readonly timeoutMs: number,
  ) {}

  /** The cached token while it is fresh, otherwise a new one. */
  current(): Promise<string> {
    if (this.token !== undefined && !this.isStale()) return Promise.resolve(this.token);
    return this.fresh();
  }

  /**
   * Always asks the app for a new token (concurrent callers share one call).
   * A `getToken()` that does not settle within `timeoutMs` fails the call, so a
   * hung auth request never wedges reconnects.
   */
  fresh(): Promise<string> {
    if (this.inflight) return this.inflight;
    const call = (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`getToken() did not settle within ${this.timeoutMs} ms`)),
          this.timeoutMs,
        );
      });
      const token = await Promise.race([Promise.resolve().then(() => this.getToken()), deadline]).finally(() =>
        clearTimeout(timer),
      );
      if (typeof token !== 'string' || token === '') throw new TypeError('getToken() returned no token');
      this.token = token;
      this.issuedAt = Date.now();
      this.expiresAt = jwtExpiry(token);
      return token;
    })();
    this.inflight = call;
    const clear = (): void => {
      if (this.inflight === call) this.inflight = undefined;
    };
    call.then(clear, clear);
    return call;
  }

  /** Forgets the token (after 4100): the next `current()` calls `getToken()`. */
  invalidate(): void {
    this.token = undefined;
    this.expiresAt = undefined;
  }

  /** Records the hub's `expires_in` (seconds, or null for a token that does not expire). */
  setExpiresIn(seconds: number | null | undefined): void {
    if (seconds === null || seconds === undefined) {
      this.expiresAt = undefined;
      return;
    }
    this.issuedAt = Date.now();
    this.expiresAt = this.issuedAt + seconds * 1000;
  }

  /** Milliseconds until the token should be replaced, or undefined when it does not expire. */
  refreshInMs(): number | undefined {
    if (this.expiresAt === undefined) return undefined;
    const now = Date.now();
    const lifetime = Math.max(0, this.expiresAt - Math.min(this.issuedAt, now));
    return Math.max(0, this.expiresAt - refreshMargin(lifetime, this.maxMarginMs) - now);
  }

  private isStale(): boolean {
    const due = this.refreshInMs();
    return due !== undefined && due <= 0;
  }
}
