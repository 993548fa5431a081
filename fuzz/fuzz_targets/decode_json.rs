//! `Codec::Json::decode` on arbitrary bytes: never panics; a decoded command
//! is a JSON object that decodes to the same command on the MessagePack
//! sub-protocol; a `protocol_error` is never given to a JSON object; a
//! `bad_request` keeps the command's `id` when it is a u32; binary frames are
//! always refused.
#![no_main]

use hubbub::protocol::{Codec, DecodeError};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    assert!(matches!(
        Codec::Json.decode(data, true),
        Err(DecodeError::Protocol { .. })
    ));
    let object = serde_json::from_slice::<Map<String, Value>>(data).ok();
    match Codec::Json.decode(data, false) {
        Ok(frame) => {
            let object = object.expect("a decoded command is a JSON object");
            let bin = rmp_serde::to_vec_named(&object).expect("JSON encodes as MessagePack");
            assert_eq!(
                Codec::MsgPack.decode(&bin, true).as_ref(),
                Ok(&frame),
                "the same command on MessagePack"
            );
        }
        Err(DecodeError::BadCommand { id, .. }) => {
            if let Some(object) = object {
                let expected = object
                    .get("id")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok());
                assert_eq!(id, expected, "the id of a bad command");
            }
        }
        Err(DecodeError::Protocol { .. }) => {
            assert!(object.is_none(), "a JSON object is never a protocol error");
        }
    }
});
