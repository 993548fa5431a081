//! Encoding and decoding on the two sub-protocols: `hubbub.v1.json` (text
//! frames) and `hubbub.v1.msgpack` (binary frames, MessagePack maps with the
//! same field names).

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::collections::HashMap;

use super::frames::{ClientFrame, ServerFrame};

/// The JSON sub-protocol name.
pub const JSON_PROTOCOL: &str = "hubbub.v1.json";
/// The MessagePack sub-protocol name.
pub const MSGPACK_PROTOCOL: &str = "hubbub.v1.msgpack";

/// A connection's sub-protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Text frames holding JSON objects.
    Json,
    /// Binary frames holding MessagePack maps.
    MsgPack,
}

/// A server frame encoded for one sub-protocol: JSON text or MessagePack
/// bytes. Cloning shares the bytes (a reference count), so one encoding
/// serves every WebSocket writer and SSE stream that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    /// A JSON object: a WebSocket text message, or an SSE event's data.
    Text(Utf8Bytes),
    /// A MessagePack map: a WebSocket binary message.
    Binary(Bytes),
}

impl Encoded {
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Encoded::Text(t) => t.as_bytes(),
            Encoded::Binary(b) => b,
        }
    }

    /// The JSON text, or `None` for a MessagePack frame.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Encoded::Text(t) => Some(t.as_str()),
            Encoded::Binary(_) => None,
        }
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether it holds no bytes (a MessagePack frame whose encoding failed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Encoded> for Message {
    /// The WebSocket message carrying it: text for JSON, binary for
    /// MessagePack. No bytes are copied.
    fn from(e: Encoded) -> Message {
        match e {
            Encoded::Text(t) => Message::Text(t),
            Encoded::Binary(b) => Message::Binary(b),
        }
    }
}

/// Why an incoming frame could not be turned into a command.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The frame is not a message object of this sub-protocol at all
    /// (not JSON/MessagePack, not a map, or the wrong frame kind). Closes with 4000.
    #[error("frame is not a {expected} message object: {detail}")]
    Protocol {
        /// Which sub-protocol was expected.
        expected: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The frame is a message object but not a valid command; answered with `bad_request`.
    #[error("{detail}")]
    BadCommand {
        /// The command id, when it could be read.
        id: Option<u32>,
        /// What was wrong.
        detail: String,
    },
}

/// A field of a command that failed to decode: only a numeric `id` matters.
#[derive(Deserialize)]
#[serde(untagged)]
enum Field {
    Number(u64),
    Other(IgnoredAny),
}

/// The lenient view used to find the id of a command that failed to decode:
/// any map (a non-map is not a message object at all).
type Envelope = HashMap<String, Field>;

impl Codec {
    /// Picks the codec for a negotiated sub-protocol name (JSON when none).
    pub fn from_protocol(name: Option<&str>) -> Codec {
        match name {
            Some(MSGPACK_PROTOCOL) => Codec::MsgPack,
            _ => Codec::Json,
        }
    }

    /// The sub-protocol name.
    pub fn protocol(self) -> &'static str {
        match self {
            Codec::Json => JSON_PROTOCOL,
            Codec::MsgPack => MSGPACK_PROTOCOL,
        }
    }

    /// Encodes a frame for this sub-protocol.
    pub fn encode(self, frame: &ServerFrame<'_>) -> Encoded {
        match self {
            Codec::Json => {
                // Serializing these frames cannot fail: every map key is a string.
                let text = serde_json::to_string(frame).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "json encoding failed");
                    String::from(
                        r#"{"type":"error","code":"internal","message":"encoding failed"}"#,
                    )
                });
                Encoded::Text(Utf8Bytes::from(text))
            }
            Codec::MsgPack => {
                let bin = rmp_serde::to_vec_named(frame).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "msgpack encoding failed");
                    Vec::new()
                });
                Encoded::Binary(Bytes::from(bin))
            }
        }
    }

    /// Decodes a data frame (text or binary) into a command.
    pub fn decode(self, payload: &[u8], binary: bool) -> Result<ClientFrame, DecodeError> {
        match (self, binary) {
            (Codec::Json, false) => decode_json(payload),
            (Codec::MsgPack, true) => decode_msgpack(payload),
            (Codec::Json, true) => Err(DecodeError::Protocol {
                expected: JSON_PROTOCOL,
                detail: "binary frame on the JSON sub-protocol".into(),
            }),
            (Codec::MsgPack, false) => Err(DecodeError::Protocol {
                expected: MSGPACK_PROTOCOL,
                detail: "text frame on the MessagePack sub-protocol".into(),
            }),
        }
    }
}

fn envelope_id(env: &Envelope) -> Option<u32> {
    match env.get("id") {
        Some(Field::Number(n)) => u32::try_from(*n).ok(),
        Some(Field::Other(_)) | None => None,
    }
}

/// Whether the frame's top-level value is a JSON object. Serde would also
/// build a command from an array (`[0, 7, "token"]` as `connect`: variant
/// index, then the fields in order), which is not a message object.
fn is_json_object(payload: &[u8]) -> bool {
    payload
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b == b'{')
}

/// Whether the frame's top-level value is a MessagePack map (fixmap, map 16
/// or map 32), for the same reason.
fn is_msgpack_map(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(0x80..=0x8f | 0xde | 0xdf))
}

fn decode_json(payload: &[u8]) -> Result<ClientFrame, DecodeError> {
    if !is_json_object(payload) {
        return Err(DecodeError::Protocol {
            expected: JSON_PROTOCOL,
            detail: "the frame is not a JSON object".into(),
        });
    }
    match serde_json::from_slice::<ClientFrame>(payload) {
        Ok(frame) => Ok(frame),
        Err(err) => match serde_json::from_slice::<Envelope>(payload) {
            Ok(env) => Err(DecodeError::BadCommand {
                id: envelope_id(&env),
                detail: err.to_string(),
            }),
            Err(_) => Err(DecodeError::Protocol {
                expected: JSON_PROTOCOL,
                detail: err.to_string(),
            }),
        },
    }
}

/// The deepest nesting a MessagePack frame may have: serde_json's recursion
/// limit, so both sub-protocols accept the same data. rmp-serde's own default
/// (1024) lets a ~1 KiB frame of nested arrays overflow a 2 MiB Tokio worker
/// stack and abort the whole process.
const MAX_MSGPACK_DEPTH: usize = 128;

/// Decodes exactly one MessagePack value filling the whole frame: bytes
/// after it are refused, as serde_json refuses them after a JSON value.
fn from_msgpack<T: DeserializeOwned>(payload: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(payload));
    de.set_max_depth(MAX_MSGPACK_DEPTH);
    let value = T::deserialize(&mut de)?;
    if usize::try_from(de.position()).ok() != Some(payload.len()) {
        return Err(rmp_serde::decode::Error::Syntax(
            "trailing bytes after the message object".into(),
        ));
    }
    Ok(value)
}

fn decode_msgpack(payload: &[u8]) -> Result<ClientFrame, DecodeError> {
    if !is_msgpack_map(payload) {
        return Err(DecodeError::Protocol {
            expected: MSGPACK_PROTOCOL,
            detail: "the frame is not a MessagePack map".into(),
        });
    }
    match from_msgpack::<ClientFrame>(payload) {
        Ok(frame) => Ok(frame),
        Err(err) => match from_msgpack::<Envelope>(payload) {
            Ok(env) => Err(DecodeError::BadCommand {
                id: envelope_id(&env),
                detail: err.to_string(),
            }),
            Err(_) => Err(DecodeError::Protocol {
                expected: MSGPACK_PROTOCOL,
                detail: err.to_string(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frames::PositionWire;
    use serde_json::json;

    #[test]
    fn json_commands_decode() {
        let f = Codec::Json
            .decode(
                br#"{"type":"subscribe","id":7,"topic":"bookings:1","since":{"epoch":"e","offset":3}}"#,
                false,
            )
            .unwrap();
        assert_eq!(
            f,
            ClientFrame::Subscribe {
                id: 7,
                topic: "bookings:1".into(),
                since: Some(PositionWire {
                    epoch: "e".into(),
                    offset: 3
                }),
                latest: false,
            }
        );
        assert_eq!(f.id(), 7);
    }

    #[test]
    fn bad_json_is_a_protocol_error_and_bad_fields_keep_the_id() {
        assert!(matches!(
            Codec::Json.decode(b"{nope", false),
            Err(DecodeError::Protocol { .. })
        ));
        assert!(matches!(
            Codec::Json.decode(b"[1,2]", false),
            Err(DecodeError::Protocol { .. })
        ));
        assert_eq!(
            match Codec::Json.decode(br#"{"type":"subscribe","id":5,"topic":42}"#, false) {
                Err(DecodeError::BadCommand { id, .. }) => id,
                other => panic!("{other:?}"),
            },
            Some(5)
        );
        assert!(matches!(
            Codec::Json.decode(br#"{"type":"fly","id":9}"#, false),
            Err(DecodeError::BadCommand { id: Some(9), .. })
        ));
        assert!(matches!(
            Codec::Json.decode(br#"{"type":"ping","id":-1}"#, false),
            Err(DecodeError::BadCommand { id: None, .. })
        ));
        assert!(matches!(
            Codec::Json.decode(br#"{"type":"ping","id":1}"#, true),
            Err(DecodeError::Protocol { .. })
        ));
    }

    #[test]
    fn msgpack_round_trip_with_named_fields() {
        let cmd =
            json!({"type":"publish","id":3,"topic":"food:menu","event":"e","data":{"a":[1,2,"x"]}});
        let bin = rmp_serde::to_vec_named(&cmd).unwrap();
        let f = Codec::MsgPack.decode(&bin, true).unwrap();
        assert!(
            matches!(f, ClientFrame::Publish { id: 3, ref data, .. } if data == &json!({"a":[1,2,"x"]}))
        );
        assert!(matches!(
            Codec::MsgPack.decode(&bin, false),
            Err(DecodeError::Protocol { .. })
        ));
        assert!(matches!(
            Codec::MsgPack.decode(&[0xc1], true),
            Err(DecodeError::Protocol { .. })
        ));
    }

    /// A publish whose `data` is `depth` nested arrays, on either codec.
    fn nested_publish(codec: Codec, depth: usize) -> Vec<u8> {
        match codec {
            Codec::Json => format!(
                r#"{{"type":"publish","id":1,"topic":"chat:1","event":"e","data":{}null{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into_bytes(),
            Codec::MsgPack => {
                let head = json!({"type":"publish","id":1,"topic":"chat:1","event":"e"});
                let mut bin = rmp_serde::to_vec_named(&head).unwrap();
                bin[0] += 1; // one more map entry: `data`
                bin.extend_from_slice(b"\xa4data");
                bin.extend(std::iter::repeat_n(0x91u8, depth)); // array of one element
                bin.push(0xc0); // nil
                bin
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_a_worker_stack() {
        // Regression: a ~1 KiB MessagePack frame of 1000 nested arrays used to
        // overflow a 2 MiB stack (Tokio's worker default) and abort the hub.
        let outcome = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                for codec in [Codec::Json, Codec::MsgPack] {
                    let binary = codec == Codec::MsgPack;
                    assert!(
                        codec.decode(&nested_publish(codec, 100), binary).is_ok(),
                        "{codec:?}: 100 levels are fine"
                    );
                    for depth in [200, 1000, 1023, 1024, 1025, 10_000, 60_000] {
                        assert!(
                            matches!(
                                codec.decode(&nested_publish(codec, depth), binary),
                                Err(DecodeError::Protocol { .. })
                            ),
                            "{codec:?}: {depth} levels"
                        );
                    }
                }
            })
            .unwrap()
            .join();
        assert!(outcome.is_ok());
    }

    #[test]
    fn a_msgpack_frame_is_exactly_one_message_object() {
        // Found by the decode_msgpack fuzz target: a map followed by
        // arbitrary bytes was accepted, where JSON refuses trailing data.
        let ping = rmp_serde::to_vec_named(&json!({"type":"ping","id":1})).unwrap();
        assert!(Codec::MsgPack.decode(&ping, true).is_ok());
        for tail in [&[0xc0u8][..], &[0x01], b"garbage", &ping] {
            let mut frame = ping.clone();
            frame.extend_from_slice(tail);
            assert!(
                matches!(
                    Codec::MsgPack.decode(&frame, true),
                    Err(DecodeError::Protocol { .. })
                ),
                "{frame:?}"
            );
        }
        assert!(matches!(
            Codec::Json.decode(br#"{"type":"ping","id":1} x"#, false),
            Err(DecodeError::Protocol { .. })
        ));
    }

    #[test]
    fn arrays_are_not_message_objects() {
        // Found by the decode_msgpack fuzz target: [0, 7, "", 116] decoded as
        // `connect` (serde reads an internally tagged enum from a sequence:
        // variant index, then the fields in order). Same on JSON.
        let connect = json!([0, 7, "token", null]);
        let bin = rmp_serde::to_vec(&connect).unwrap();
        assert!(matches!(
            Codec::MsgPack.decode(&bin, true),
            Err(DecodeError::Protocol { .. })
        ));
        assert!(matches!(
            Codec::Json.decode(connect.to_string().as_bytes(), false),
            Err(DecodeError::Protocol { .. })
        ));
        assert!(
            Codec::Json
                .decode(b" \n{\"type\":\"ping\",\"id\":1}", false)
                .is_ok()
        );
    }

    #[test]
    fn floats_in_data_reach_subscribers_unchanged() {
        // Found by the decode_msgpack fuzz target (its cross-codec property):
        // without serde_json's `float_roundtrip`, parsing a float could be off
        // by one ulp, so a subscriber got a number the publisher never sent.
        for text in [
            "2.069567118516462e-24",
            "0.30000000000000004",
            "1.7976931348623157e308",
        ] {
            let frame = format!(
                r#"{{"type":"publish","id":1,"topic":"chat:1","event":"e","data":{text}}}"#
            );
            match Codec::Json.decode(frame.as_bytes(), false).unwrap() {
                ClientFrame::Publish { data, .. } => {
                    let exact: f64 = text.parse().unwrap();
                    assert_eq!(
                        data.as_f64().map(f64::to_bits),
                        Some(exact.to_bits()),
                        "{text}"
                    );
                    let again: serde_json::Value = serde_json::from_str(&data.to_string()).unwrap();
                    assert_eq!(again, data, "{text} survives re-encoding");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn server_frames_encode_on_both_protocols() {
        let frame = ServerFrame::Pong { id: 4 };
        match Codec::Json.encode(&frame) {
            Encoded::Text(t) => assert_eq!(t.as_str(), r#"{"type":"pong","id":4}"#),
            other => panic!("{other:?}"),
        }
        match Codec::MsgPack.encode(&frame) {
            Encoded::Binary(b) => {
                let v: serde_json::Value = rmp_serde::from_slice(&b).unwrap();
                assert_eq!(v, json!({"type":"pong","id":4}));
            }
            other => panic!("{other:?}"),
        }
        let err = ServerFrame::Error {
            id: None,
            code: crate::protocol::ErrorCode::BadRequest,
            message: "m",
        };
        match Codec::Json.encode(&err) {
            Encoded::Text(t) => assert_eq!(
                t.as_str(),
                r#"{"type":"error","code":"bad_request","message":"m"}"#
            ),
            other => panic!("{other:?}"),
        }
    }
}
