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
  /**
   * Set by the SDK (never on the wire) on the publication a `latest: true`
   * subscription delivers first: the topic's newest when it subscribed, which
   * may be older than this connection.
   */
  latest?: true;
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
  | { type: 'subscribe'; topic: string; since?: Position; latest?: boolean }
  | { type: 'unsubscribe'; topic: string }
  | { type: 'publish'; topic: string; event: string; data: unknown; idempotency_key?: string }
  | { type: 'refresh'; token: string }
  | { type: 'presence'; topic: string }
  | { type: 'history'; topic: string; since?: Position; limit?: number }
  | { type: 'ping' };

export interface ConnectedReply {
  type: 'connected';
  id: number;
  client_id: string;
  node: string;
  /** Seconds until the token expires, or null when it does not. */
  expires_in: number | null;
  /** Seconds. */
  ping_interval: number;
}

export interface SubscribedReply {
  type: 'subscribed';
  /** The command's id (SSE sends its `subscribed` events with id 0 or none). */
  id?: number;
  topic: string;
  position: Position;
  /** Present only when `since` was sent. */
  recovered?: boolean;
  /** The missed publications, or with `latest` the newest one. */
  publications?: Publication[];
}

export interface HistoryReply {
  type: 'history';
  publications: Publication[];
  position: Position;
}

export interface ErrorReply {
  type: 'error';
  /** Absent when the error answers no command (SSE stream problems). */
  id?: number;
  code: string;
  message: string;
}

/** The reply types, by the command that asks for them. */
export interface Replies {
  connect: ConnectedReply;
  subscribe: SubscribedReply;
  unsubscribe: { type: 'unsubscribed'; id: number; topic: string };
  publish: { type: 'published'; id: number; position: Position };
  refresh: { type: 'refreshed'; id: number; expires_in: number | null };
  presence: { type: 'presence'; id: number; members: Member[] };
  history: HistoryReply & { id?: number };
  ping: { type: 'pong'; id: number };
}

/** The `type` of the reply each command gets. */
export const REPLY_TYPE: { readonly [K in Command['type']]: Replies[K]['type'] } = {
  connect: 'connected',
  subscribe: 'subscribed',
  unsubscribe: 'unsubscribed',
  publish: 'published',
  refresh: 'refreshed',
  presence: 'presence',
  history: 'history',
  ping: 'pong',
};

/** Unsolicited hub → client frames. */
export type Push =
  | PubFrame
  | { type: 'join'; topic: string; member: Member }
  | { type: 'leave'; topic: string; member: Member }
  /** The hub ended a subscription on its own (no `id`): `forbidden` after a narrower `refresh`. */
  | { type: 'unsubscribed'; topic: string; code: string; message?: string }
  | { type: 'disconnect'; code: number; reason: string; reconnect: boolean };

/** A live publication (`id` is the publication id, not a command id). */
export type PubFrame = { type: 'pub' } & Publication;

/** Any frame the hub sends: a reply (with `id`), an error, or a push. */
export type ServerFrame = Replies[keyof Replies] | ErrorReply | Push;

/** Whether `frame` is the reply a command of type `command` gets. */
export function isReplyTo<K extends Command['type']>(command: K, frame: ServerFrame): frame is Replies[K] {
  return frame.type === REPLY_TYPE[command];
}

export const SUBPROTOCOL = {
  json: 'hubbub.v1.json',
  msgpack: 'hubbub.v1.msgpack',
} as const;
