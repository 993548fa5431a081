/**
 * `@hubbub/client`: the TypeScript SDK of the Hubbub realtime hub.
 *
 * # Layout
 * - `client.ts`: {@link Hubbub}, the API an app calls, composing the parts below.
 * - `connection.ts`: the connection state machine (reconnect, transport
 *   fallback, generation checks, token refresh, liveness, commands with
 *   deadlines, SSE stream replacement).
 * - `topics.ts`: subscriptions on the wire (subscribe, retry, resync, release,
 *   frame routing); `feed.ts`: one topic's stream (positions, de-duplication,
 *   gap recovery); `subscription.ts`: {@link Subscription}, the typed handle.
 * - `sync.ts`: {@link Synced}, the load-then-stream handoff of `Hubbub.sync()`.
 * - `sse-streams.ts`: the SSE stream's set-up (latest, refused topics);
 *   `rest.ts`: REST reads on SSE; `timers.ts`: timers for any delay.
 * - `transport/`: WebSocket and SSE transports and the SSE parser.
 * - `publisher.ts`: {@link HubbubPublisher}, the REST publisher for backends.
 * - `coalesce.ts`: burst coalescing for list reloads.
 * - `webhook.ts`: {@link verifyWebhook} for backends that receive webhook deliveries.
 * - `react.ts`: the `@hubbub/client/react` entry point.
 * - `wire.ts`, `codec.ts`, `close-codes.ts`: the contract's frames, encodings and close codes.
 */
export { Hubbub } from './client.js';
export type { ClientEvents, ConnectionState, DisconnectInfo, SubscriptionInfo } from './client.js';
export { Synced } from './sync.js';
export type { SyncedPublication, SyncEvents, SyncOptions, SyncStatus } from './sync.js';
export type { HubbubOptions } from './options.js';
export { Subscription } from './subscription.js';
export type {
  AppEvent,
  EventMap,
  HistoryOptions,
  ReservedEvent,
  SubscribeOptions,
  SubscriptionEvents,
  SubscriptionState,
} from './subscription.js';
export { HubbubBatchError, HubbubPublisher, newKey } from './publisher.js';
export type {
  BatchFailedItem,
  BatchItemResult,
  BatchOk,
  BatchPartial,
  CallOptions,
  Failure,
  PublisherOptions,
  PublishInput,
  PublishOk,
} from './publisher.js';
export { coalesce } from './coalesce.js';
export type { Coalesced, CoalesceOptions } from './coalesce.js';
export { HubbubError } from './errors.js';
export type { LocalErrorCode } from './errors.js';
export { backoffDelay } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { closePolicy, LocalClose } from './close-codes.js';
export type { ReconnectPolicy } from './close-codes.js';
export type { NetworkMonitor } from './network.js';
export type { Protocol } from './codec.js';
export type { TransportKind } from './transport/transport.js';
export type { WebSocketConstructor, WebSocketLike } from './transport/websocket.js';
export type { FetchLike } from './transport/sse.js';
export type { GetToken } from './token.js';
export type { HistoryReply, Member, Position, Publication } from './wire.js';
export { verifyWebhook, WebhookVerificationError } from './webhook.js';
export type {
  VerifyOptions,
  WebhookEvent,
  WebhookHeaders,
  WebhookOccupancy,
  WebhookPresence,
  WebhookPublication,
} from './webhook.js';
