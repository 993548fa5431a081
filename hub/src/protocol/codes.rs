//! Error codes carried in `error` replies and close codes sent with `disconnect`.
//! Error codes live in `hubbub-wire` (shared with the REST API) and are
//! re-exported here; close codes are named here. Everything else maps its
//! own error types onto these.

/// The code of an `error` reply (contract: "Error codes in `error` replies"),
/// the same codes the REST API answers with: one enum, owned by `hubbub-wire`.
pub use hubbub_wire::ErrorCode;

/// A WebSocket close code of the contract, sent with a `disconnect` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// 4000: the client broke the protocol; do not reconnect.
    ProtocolError = 4000,
    /// 4001: the token is invalid; do not reconnect.
    Unauthorized = 4001,
    /// 4003: the client is not allowed here; do not reconnect.
    Forbidden = 4003,
    /// 4009: a frame exceeded `max_frame_bytes`; do not reconnect.
    MessageTooBig = 4009,
    /// 4100: the token expired; get a new token, then reconnect.
    TokenExpired = 4100,
    /// 4101: the client did not read fast enough; reconnect with backoff and recover.
    SlowConsumer = 4101,
    /// 4102: too many commands; reconnect with backoff.
    RateLimited = 4102,
    /// 4103: too many connections; reconnect with backoff.
    ConnectionLimit = 4103,
    /// 4104: no `connect` within `connect_timeout`; reconnect with backoff.
    ConnectTimeout = 4104,
    /// 4200: the node is draining; reconnect now (to another node).
    Shutdown = 4200,
    /// 4201: the server asks the client to reconnect now (e.g. `POST /api/v1/disconnect`).
    Rebalance = 4201,
}

impl CloseCode {
    /// Every close code, in a stable order (used to label metrics).
    pub const ALL: [CloseCode; 11] = [
        CloseCode::ProtocolError,
        CloseCode::Unauthorized,
        CloseCode::Forbidden,
        CloseCode::MessageTooBig,
        CloseCode::TokenExpired,
        CloseCode::SlowConsumer,
        CloseCode::RateLimited,
        CloseCode::ConnectionLimit,
        CloseCode::ConnectTimeout,
        CloseCode::Shutdown,
        CloseCode::Rebalance,
    ];

    /// The numeric close code.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The reason string sent in `disconnect` and the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::ProtocolError => "protocol_error",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::Forbidden => "forbidden",
            CloseCode::MessageTooBig => "message_too_big",
            CloseCode::TokenExpired => "token_expired",
            CloseCode::SlowConsumer => "slow_consumer",
            CloseCode::RateLimited => "rate_limited",
            CloseCode::ConnectionLimit => "connection_limit",
            CloseCode::ConnectTimeout => "connect_timeout",
            CloseCode::Shutdown => "shutdown",
            CloseCode::Rebalance => "rebalance",
        }
    }

    /// Whether the client should reconnect (4100 and above).
    pub fn reconnect(self) -> bool {
        self.code() >= 4100
    }

    /// Looks a close code up by its number.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Index into [`CloseCode::ALL`].
    pub fn index(self) -> usize {
        CloseCode::ALL
            .iter()
            .position(|c| *c == self)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_classes_follow_the_contract() {
        for c in CloseCode::ALL {
            let n = c.code();
            assert_eq!(c.reconnect(), n >= 4100, "{c:?}");
            assert_eq!(CloseCode::from_code(n), Some(c));
            assert_eq!(CloseCode::ALL[c.index()], c);
        }
        assert_eq!(CloseCode::SlowConsumer.code(), 4101);
        assert_eq!(CloseCode::Shutdown.reason(), "shutdown");
        assert_eq!(CloseCode::from_code(1000), None);
    }

    #[test]
    fn error_codes_serialize_as_snake_case() {
        for c in ErrorCode::ALL {
            let s = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(s, format!("\"{}\"", c.as_str()));
            assert_eq!(ErrorCode::ALL[c.index()], c);
        }
    }
}
