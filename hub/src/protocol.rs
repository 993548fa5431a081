//! The wire protocol: frames a client sends and the hub answers, how they are
//! encoded on each sub-protocol, and the error and close codes of the contract.
//!
//! - [`frames`]: typed client commands and server frames.
//! - [`codec`]: JSON (`hubbub.v1.json`) and MessagePack (`hubbub.v1.msgpack`).
//! - [`codes`]: `error` reply codes and WebSocket close codes, one mapping each.

pub mod codec;
pub mod codes;
pub mod frames;

pub use codec::{Codec, DecodeError, Encoded};
pub use codes::{CloseCode, ErrorCode};
pub use frames::{ClientCommand, ClientFrame, Member, PositionWire, PublicationWire, ServerFrame};
