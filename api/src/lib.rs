//! # hubbub-api
//!
//! Hubbub's thin REST API, through which backend services publish and read.
//! It is transport only: every route authenticates the bearer and calls a
//! [`Backend`], which the hub implements (and a standalone API process can
//! implement over the Redis engine). The crate does not depend on the hub.
//!
//! ## Layout
//! - [`types`]: request and response bodies, as on the wire.
//! - [`error`]: [`ApiError`], its codes and HTTP statuses, the error body.
//! - [`routes`]: the axum router and handlers.
//! - [`openapi`]: the OpenAPI 3 document served at `/api/openapi.json`.
//! - [`webhooks`]: the operator endpoints of webhook sinks.

pub mod error;
pub mod openapi;
pub mod routes;
pub mod types;
pub mod webhooks;

pub use error::{ApiError, ErrorCode};
pub use routes::{Backend, Caller, Operator, router};
pub use webhooks::WebhookBackend;
