/**
 * The REST API's reads (`GET /api/v1/topics/{topic}/history` and
 * `…/presence`) with the client's JWT as `Authorization: Bearer`: what
 * `history()` and `presence()` use when the connection is an SSE stream,
 * which cannot send commands.
 */
import { HubbubError } from './errors.js';
import type { HistoryOptions } from './subscription.js';
import type { FetchLike } from './transport/sse.js';
import type { HistoryReply, Member } from './wire.js';

/** `http://host/sse` → `http://host/api/v1`, `https://host/x/sse` → `https://host/x/api/v1`. */
export function defaultApiUrl(sseUrl: string): string {
  const url = new URL(sseUrl);
  const base = url.pathname.endsWith('/sse') ? url.pathname.slice(0, -4) : url.pathname.replace(/\/$/, '');
  url.pathname = `${base}/api/v1`;
  url.search = '';
  return url.toString();
}

export class RestReads {
  constructor(
    /** The API base, e.g. `https://hub.example.com/api/v1`. */
    private readonly base: string,
    private readonly fetchImpl: FetchLike | undefined,
    private readonly timeoutMs: number,
  ) {}

  async history(token: string, topic: string, options: HistoryOptions = {}): Promise<HistoryReply> {
    const query = new URLSearchParams();
    if (options.since) query.set('since', `${options.since.epoch}:${options.since.offset}`);
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    const q = query.toString();
    const body = (await this.get(token, `/topics/${encodeURIComponent(topic)}/history${q ? `?${q}` : ''}`)) as {
      publications?: HistoryReply['publications'];
      position: HistoryReply['position'];
    };
    return { type: 'history', publications: body.publications ?? [], position: body.position };
  }

  async presence(token: string, topic: string): Promise<Member[]> {
    const body = (await this.get(token, `/topics/${encodeURIComponent(topic)}/presence`)) as { members?: Member[] };
    return body.members ?? [];
  }

  private async get(token: string, path: string): Promise<unknown> {
    if (!this.fetchImpl) throw new HubbubError('unsupported', 'no fetch implementation: pass `fetch`');
    const url = this.base.replace(/\/$/, '') + path;
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        headers: { accept: 'application/json', authorization: `Bearer ${token}` },
        cache: 'no-store',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      throw new HubbubError(timedOut ? 'timeout' : 'network', `GET ${path}: ${String(err)}`, { cause: err });
    }
    if (res.ok) return res.json();
    const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
    throw new HubbubError(body?.error?.code ?? `http_${res.status}`, body?.error?.message ?? `GET ${path} answered ${res.status}`, {
      status: res.status,
    });
  }
}
