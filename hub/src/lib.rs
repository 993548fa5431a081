//! # Hubbub
//!
//! A realtime hub: clients hold a WebSocket, authenticate with a JWT and
//! subscribe to topics; backend services publish through a REST API; every
//! publication gets a contiguous offset in its topic's stream, so a client
//! that reconnects recovers exactly what it missed, or is told it cannot.
//!
//! ## Layout
//! - [`config`]: one validated [`Config`](config::Config): defaults < TOML file < `HUBBUB_*` env.
//! - [`topic`]: [`Topic`](topic::Topic) and [`TopicPattern`](topic::TopicPattern), parsed once.
//! - [`auth`]: JWT → claims → [`Permissions`](auth::Permissions); API keys.
//! - [`protocol`]: frames, the JSON and MessagePack codecs, error and close codes;
//!   the wire types it shares with the REST API (position, publication, member,
//!   error code) come from the serde-only `hubbub-wire` crate (`api/wire/`).
//! - [`broker`]: narrow traits, [`StreamStore`](broker::StreamStore) (offsets,
//!   history, idempotency, publish), [`PresenceStore`](broker::PresenceStore)
//!   and [`ControlPlane`](broker::ControlPlane) (routing topics to nodes, node
//!   info, readiness), together [`Broker`](broker::Broker), and their engines:
//!   memory (one node) and [`broker::redis`] (many nodes on one Redis; see
//!   `docs/redis.md`). Engines hand publications to a
//!   [`Delivery`](broker::Delivery) and never see a connection.
//! - [`registry`]: node-local connections and topic subscribers; the fan-out
//!   (it implements [`Delivery`](broker::Delivery)).
//! - [`fanout`]: [`Broadcast`](fanout::Broadcast), encoded once per sub-protocol,
//!   and the outbox item type.
//! - [`engine`]: a subscription's life for every local subscriber (WebSocket
//!   session, SSE stream): hold, register, route the topic here, recover,
//!   reply; unsubscribe; presence join/leave; the topic's lifecycle points.
//! - [`connection`]: the per-connection actor (reader session + writer task)
//!   and [`Registration`](connection::Registration), the RAII guard that gives
//!   a connection's subscriptions and presence back on drop.
//! - [`hub`]: [`Hub`](hub::Hub), the shared services and operations.
//! - [`limits`]: token buckets for the rate limits.
//! - [`api_backend`]: the hub behind the `hubbub-api` REST router.
//! - [`sse`]: `GET /sse`, the Server-Sent Events transport (over [`engine`]) and its event ids.
//! - [`server`]: router, WebSocket upgrade, [`serve`] with graceful drain, and
//!   [`server::serve_api`] for the standalone `hubbub-api` binary.
//! - [`console`]: `GET /` (landing page) and `GET /console`, the operations console.
//! - [`metrics`]: counters and Prometheus text.
//! - [`sinks`]: webhook sinks: signed HTTP delivery to backend services,
//!   retries, dead letters (see `docs/webhooks.md`).
//! - [`outbox`]: the PostgreSQL outbox consumer (`[outbox]`, `docs/outbox.md`).
//! - [`cli`]: the `hubbub` binary's commands (`serve`, `token`, `check-config`, `outbox init`).

pub mod api_backend;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod config;
pub mod connection;
pub mod console;
pub mod engine;
pub mod fanout;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod protocol;
pub mod registry;
pub mod server;
pub mod sinks;
pub mod sse;
pub mod topic;

pub use server::serve;
