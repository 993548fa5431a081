/**
 * What the contract's codes mean for the client: close codes → reconnect
 * policy (plus the SDK's own codes for closes the hub did not send), and the
 * error codes that decide whether a refused `connect` or `subscribe` is final.
 */

/** How the client goes on after a connection ended. */
export type ReconnectPolicy =
  /** 4000–4099: the client is stopped; do not reconnect. */
  | 'terminal'
  /** 4100–4199, and any close the contract does not name (network drop, 1006): back off. */
  | 'backoff'
  /** 4200–4299: reconnect now. */
  | 'now';

/** Close codes the SDK reports for ends the hub did not name. */
export const LocalClose = {
  /** `disconnect()` was called. */
  client: { code: 1000, reason: 'client' },
  /** The transport failed or dropped without a close code (WebSocket 1006, stream ended). */
  transport: { code: 1006, reason: 'transport_closed' },
  /** No frame within the liveness window, or no `connected` reply in time. */
  timeout: { code: 3008, reason: 'timeout' },
  /** `getToken()` threw or returned nothing. */
  token: { code: 3401, reason: 'token_unavailable' },
} as const;

export const TOKEN_EXPIRED = 4100;

export function closePolicy(code: number): ReconnectPolicy {
  if (code >= 4000 && code <= 4099) return 'terminal';
  if (code >= 4200 && code <= 4299) return 'now';
  return 'backoff';
}

/** Subscribe errors that retrying does not fix: the subscription fails. */
export const PERMANENT_SUBSCRIBE_ERRORS = new Set([
  'bad_request',
  'unauthorized',
  'forbidden',
  'invalid_topic',
  'unknown_namespace',
  'limit_exceeded',
  'too_large',
]);

/** The close a refused `connect` amounts to, when the hub does not close with a code of its own. */
export const CONNECT_ERROR_CLOSE: Record<string, number> = {
  bad_request: 4000,
  unauthorized: 4001,
  forbidden: 4003,
  too_large: 4009,
  rate_limited: 4102,
  limit_exceeded: 4103,
};
