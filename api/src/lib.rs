//! # hubbub-api
//!
//! Hubbub's thin REST API, through which backend services publish and read.
//! It is transport only: every route authenticates the bearer and calls a
//! [`Backend`], which the hub implements (and a standalone API process can
//! implement over the Redis engine). The crate does not depend on the hub.
//!
//! ## Layout
//! - [`types`]: request and response bodies, as on the wire; the types shared
//!   with the hub's protocol (position, publication, member) come from
//!   `hubbub-wire` (`api/wire/`) and are re-exported there.
//! - [`error`]: [`ApiError`], the HTTP status of each [`ErrorCode`] (owned by
//!   `hubbub-wire`), the error body.
//! - [`routes`]: the axum router and handlers.
//! - [`openapi`]: the OpenAPI 3 document served at `/api/openapi.json`.
//! - [`webhooks`]: the operator endpoints of webhook sinks.
//! - [`topics`]: `GET /api/v1/topics`, the topics with subscribers now.
//! - [`tokens`]: `POST /api/v1/tokens/subscribe`, short-lived subscribe tokens.
//! - [`outbox`]: `GET /api/v1/outbox`, this node's view of the PostgreSQL outbox.

pub mod error;
pub mod openapi;
pub mod outbox;
pub mod routes;
pub mod tokens;
pub mod topics;
pub mod types;
pub mod webhooks;

pub use error::{ApiError, ErrorCode};
pub use routes::{Backend, Caller, Operator, router};
pub use webhooks::WebhookBackend;
