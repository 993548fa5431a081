//! The engine: one subscription's life, for every kind of local subscriber
//! (a WebSocket session, an SSE stream; webhook sinks next). Transports call
//! it and own nothing of the order; the broker underneath never sees them.
//!
//! - [`subscribe`] has [`open`] (hold the topic's broadcasts, register as a
//!   local subscriber, route the topic to this node, read or recover, reply)
//!   and [`close`] (unregister; stop routing after the last one).
//! - [`presence`] has [`presence::join`] and [`presence::leave`].
//!
//! A connection's set of subscriptions, and giving them back on drop, is its
//! RAII guard's, [`Registration`](crate::connection::Registration), which
//! calls this module.
//!
//! # Lifecycle points
//! Where a topic's local life changes, each one function; each calls the
//! webhook lifecycle hooks ([`crate::sinks::lifecycle`]):
//! - [`subscribe::on_first_local_subscriber`]: the topic's first local subscriber;
//! - [`subscribe::on_last_local_subscriber`]: its last local subscriber is gone;
//! - [`presence::join`], [`presence::leave`]: a member joined or left.

pub mod presence;
pub mod subscribe;

pub use subscribe::{Opened, Start, close, open, queued};
