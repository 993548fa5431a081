/**
 * The frames of the Hubbub wire contract v1 (PROTOCOL.md), as TypeScript types.
 * Field names are the contract's; nothing here is SDK policy.
 */

/** A topic's position: every publication after `offset` in `epoch` is still to come. */
export interface Position {
  epoch: string;
  offset: number;
}

/** A publication as the hub pushes it (`pub`) or lists it (history, recovery). */
export interface Publication<D = unknown> {
  topic: string;
  offset: number;
  event: string;
  data: D;
  /** Milliseconds since the Unix epoch. */
  ts: number;
  /** The publication id. */
  id: string;
}

/** A presence member: one connection of one user. */
export interface Member {
  client_id: string;
  user: string;
  info?: unknown;
}

/** Client → hub commands (without `id`, which the client adds). */
export type Command =
  | { type: 'connect'; token: string; client?: string }
  | { type: 'subscribe'; topic: string; since?: Position }
  | { type: 'unsubscribe'; topic: string }
  | { type: 'publish'; topic: string; event: string; data: unknown; idempotency_key?: string }
  | { type: 'refresh'; token: string }
  | { type: 'presence'; topic: string }
  | { type: 'history'; topic: string; since?: Position; limit?: number }
  | { type: 'ping' };

export interface ConnectedReply {
  type: 'connected';
  client_id: string;
  node: string;
  /** Seconds until the token expires, or null when it does not. */
  expires_in: number | null;
  /** Seconds. */
  ping_interval: number;
}

export interface SubscribedReply {
  type: 'subscribed';
  topic: string;
  position: Position;
  /** Present only when `since` was sent. */
  recovered?: boolean;
  publications?: Publication[];
}

export interface HistoryReply {
  type: 'history';
  publications: Publication[];
  position: Position;
}

export interface ErrorReply {
  type: 'error';
  id: number;
  code: string;
  message: string;
}

/** The reply types, by the command that asks for them. */
export interface Replies {
  connect: ConnectedReply;
  subscribe: SubscribedReply;
  unsubscribe: { type: 'unsubscribed'; topic: string };
  publish: { type: 'published'; position: Position };
  refresh: { type: 'refreshed'; expires_in: number | null };
  presence: { type: 'presence'; members: Member[] };
  history: HistoryReply;
  ping: { type: 'pong' };
}

/** Unsolicited hub → client frames. */
export type Push =
  | ({ type: 'pub' } & Publication)
  | { type: 'join'; topic: string; member: Member }
  | { type: 'leave'; topic: string; member: Member }
  | { type: 'disconnect'; code: number; reason: string; reconnect: boolean };

/** Any frame the hub sends: a reply (with `id`) or a push. */
export type ServerFrame = { type: string; id?: number; [field: string]: unknown };

export const SUBPROTOCOL = {
  json: 'hubbub.v1.json',
  msgpack: 'hubbub.v1.msgpack',
} as const;
