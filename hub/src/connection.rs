//! One WebSocket connection: an actor made of a reader loop (commands, the
//! session's subscriptions) and a writer task draining a bounded outbox.
//! Opening and closing a subscription is the [`engine`](crate::engine)'s.
//!
//! - [`handle`]: [`ConnHandle`], what the rest of the hub holds to reach a connection.
//! - [`outbox`]: the outbox, bounded in items and bytes, which holds no memory while empty.
//! - [`registration`]: [`Registration`], the RAII guard that gives back a
//!   connection's registry entry, subscriptions and presence on drop.
//! - [`session`]: the reader loop and command handling.
//! - [`tracker`]: holds broadcasts while a subscription opens; de-duplicates by offset.
//! - [`writer`]: the WebSocket writer task: batching, pings, close.

pub mod handle;
pub mod outbox;
pub mod registration;
pub mod session;
pub mod tracker;
pub mod writer;

pub use handle::{ConnHandle, ConnId, PushOutcome};
pub use registration::Registration;
pub use session::run_connection;
