//! The byte formats this engine writes to Redis: the encoded publication
//! (built by the publish script, stored in history and published on the
//! topic's channel), join/leave events on the same channel, and control and
//! probe messages. A publication is
//! `p\nEPOCH\nOFFSET\nTS\nID\nEVENT_LEN\nEVENT` followed by the data's JSON;
//! every header field but the event is free of newlines, and the event is
//! length-prefixed, so any event name and any data round-trip.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::broker::{BrokerError, Epoch, Publication};
use crate::protocol::frames::Member;
use crate::topic::Topic;

/// What arrives on a topic's channel.
#[derive(Debug)]
pub(crate) enum TopicEvent {
    /// A publication in `epoch`.
    Pub(Epoch, Arc<Publication>),
    /// A member joined.
    Join(Member),
    /// A member left.
    Leave(Member),
}

fn corrupt(what: &str) -> BrokerError {
    BrokerError::Corrupt(format!("undecodable {what}"))
}

/// Splits off `n` newline-terminated fields.
fn fields(mut rest: &[u8], n: usize) -> Option<(Vec<&str>, &[u8])> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let nl = rest.iter().position(|b| *b == b'\n')?;
        out.push(std::str::from_utf8(&rest[..nl]).ok()?);
        rest = &rest[nl + 1..];
    }
    Some((out, rest))
}

/// Decodes an encoded publication of `topic`.
pub(crate) fn decode_publication(
    topic: &Topic,
    bytes: &[u8],
) -> Result<(Epoch, Arc<Publication>), BrokerError> {
    let body = bytes
        .strip_prefix(b"p\n")
        .ok_or_else(|| corrupt("publication"))?;
    let (f, rest) = fields(body, 5).ok_or_else(|| corrupt("publication header"))?;
    let parse = |s: &str| s.parse::<u64>().map_err(|_| corrupt("publication number"));
    let (offset, ts, event_len) = (parse(f[1])?, parse(f[2])?, parse(f[4])?);
    let event_len = usize::try_from(event_len).map_err(|_| corrupt("event length"))?;
    if rest.len() < event_len {
        return Err(corrupt("publication event"));
    }
    let (event, data) = rest.split_at(event_len);
    let event = std::str::from_utf8(event).map_err(|_| corrupt("event name"))?;
    let data: Value = serde_json::from_slice(data).map_err(|_| corrupt("publication data"))?;
    Ok((
        Epoch::from_wire(f[0]),
        Arc::new(Publication {
            topic: topic.clone(),
            offset,
            event: event.to_owned(),
            data,
            ts,
            id: f[3].to_owned(),
        }),
    ))
}

/// A join (`joined`) or leave event.
pub(crate) fn encode_presence(member: &Member, joined: bool) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(if joined { b"j\n" } else { b"l\n" });
    // Serializing a Member (strings and a JSON value) cannot fail.
    out.extend_from_slice(&serde_json::to_vec(member).unwrap_or_default());
    Bytes::from(out)
}

/// A presence member as stored in the members hash: `1` (its leave is
/// announced when it expires) or `0`, then its JSON.
pub(crate) fn encode_stored_member(member: &Member, announce_leave: bool) -> Bytes {
    let mut out = vec![if announce_leave { b'1' } else { b'0' }];
    out.extend_from_slice(&serde_json::to_vec(member).unwrap_or_default());
    Bytes::from(out)
}

/// Decodes a member as stored in the members hash.
pub(crate) fn decode_stored_member(bytes: &[u8]) -> Result<Member, BrokerError> {
    match bytes.split_first() {
        Some((b'0' | b'1', json)) => decode_member(json),
        _ => Err(corrupt("stored presence member")),
    }
}

/// Decodes a stored member.
pub(crate) fn decode_member(bytes: &[u8]) -> Result<Member, BrokerError> {
    serde_json::from_slice(bytes).map_err(|_| corrupt("presence member"))
}

/// Decodes anything published on a topic's channel.
pub(crate) fn decode_topic_event(topic: &Topic, bytes: &[u8]) -> Result<TopicEvent, BrokerError> {
    match bytes.first() {
        Some(b'p') => decode_publication(topic, bytes).map(|(e, p)| TopicEvent::Pub(e, p)),
        Some(b'j') => decode_member(&bytes[2.min(bytes.len())..]).map(TopicEvent::Join),
        Some(b'l') => decode_member(&bytes[2.min(bytes.len())..]).map(TopicEvent::Leave),
        _ => Err(corrupt("channel message")),
    }
}

/// A request to close a user's connections on every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DisconnectRequest {
    /// Where answers go.
    pub(crate) request: String,
    /// The node that asked (it handles its own connections itself).
    pub(crate) from: String,
    /// Close code.
    pub(crate) code: u16,
    /// The user.
    pub(crate) user: String,
}

impl DisconnectRequest {
    pub(crate) fn encode(&self) -> Bytes {
        Bytes::from(format!(
            "d\n{}\n{}\n{}\n{}",
            self.request, self.from, self.code, self.user
        ))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<DisconnectRequest> {
        let body = bytes.strip_prefix(b"d\n")?;
        let (f, user) = fields(body, 3)?;
        Some(DisconnectRequest {
            request: f[0].to_owned(),
            from: f[1].to_owned(),
            code: f[2].parse().ok()?,
            user: std::str::from_utf8(user).ok()?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publications_round_trip_with_any_event_name() {
        let t: Topic = "bookings:1".parse().unwrap();
        let raw = b"p\nep1\n7\n1234\nid-1\n4\na\nb\n{\"x\":[1,\"\\n\"]}";
        let (epoch, p) = decode_publication(&t, raw).unwrap();
        assert_eq!(epoch.as_str(), "ep1");
        assert_eq!((p.offset, p.ts, p.id.as_str()), (7, 1234, "id-1"));
        assert_eq!(p.event, "a\nb\n");
        assert_eq!(p.data, serde_json::json!({"x": [1, "\n"]}));
        assert!(decode_publication(&t, b"p\nep\n1\n2\nid\n99\nshort").is_err());
        assert!(decode_publication(&t, b"x").is_err());
    }

    #[test]
    fn presence_and_control_messages_round_trip() {
        let t: Topic = "chat:1".parse().unwrap();
        let m = Member {
            client_id: "c".into(),
            user: "u".into(),
            info: serde_json::json!({"n": 1}),
        };
        match decode_topic_event(&t, &encode_presence(&m, false)).unwrap() {
            TopicEvent::Leave(got) => assert_eq!(got, m),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode_stored_member(&encode_stored_member(&m, true)).unwrap(),
            m
        );
        assert!(decode_stored_member(b"{}").is_err());
        let d = DisconnectRequest {
            request: "r1".into(),
            from: "node-a".into(),
            code: 4201,
            user: "user\nwith newline".into(),
        };
        assert_eq!(DisconnectRequest::decode(&d.encode()), Some(d));
    }
}
