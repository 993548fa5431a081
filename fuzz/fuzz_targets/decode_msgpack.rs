//! `Codec::MsgPack::decode` on arbitrary bytes: never panics (nor overflows
//! the stack); a decoded command is exactly one MessagePack value (no trailing
//! bytes, as a JSON frame is exactly one JSON value) and, when that value is
//! also a JSON value (string keys, no binary), decodes to the same command on
//! the JSON sub-protocol (every publication must reach JSON subscribers too);
//! text frames are always refused.
#![no_main]

use std::io::Cursor;

use hubbub::protocol::{Codec, DecodeError};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// Nesting depth of a JSON value (serde_json refuses more than 128 levels).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    assert!(matches!(
        Codec::MsgPack.decode(data, false),
        Err(DecodeError::Protocol { .. })
    ));
    if let Ok(frame) = Codec::MsgPack.decode(data, true) {
        let mut de = rmp_serde::Deserializer::new(Cursor::new(data));
        IgnoredAny::deserialize(&mut de).expect("a decoded command is MessagePack");
        assert_eq!(
            usize::try_from(de.position()).ok(),
            Some(data.len()),
            "a decoded command is exactly one MessagePack value"
        );
        // Unknown fields are ignored on both sub-protocols; here they may
        // have non-string keys or binary values, which JSON cannot carry.
        let Ok(value) = rmp_serde::from_slice::<Value>(data) else {
            return;
        };
        assert!(value.is_object(), "{value}");
        if depth(&value) < 120 {
            let json = serde_json::to_vec(&value).expect("JSON values encode");
            assert_eq!(
                Codec::Json.decode(&json, false).as_ref(),
                Ok(&frame),
                "the same command on JSON"
            );
        }
    }
});
