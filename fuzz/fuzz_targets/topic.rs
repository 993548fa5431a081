//! `Topic` parsing on arbitrary strings, against an independent reading of
//! the contract's grammar: `namespace` or `namespace:resource`, namespace
//! bytes `A-Z a-z 0-9 _ - .`, resource bytes also `: = @`, 1 to 255 bytes.
//! A valid topic round-trips through `Display`/`FromStr` and serde, and its
//! namespace and resource put back together give the topic.
#![no_main]

use hubbub::topic::Topic;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn reference(s: &str) -> bool {
    let ns_byte = |b: u8| b.is_ascii_alphanumeric() || b"_-.".contains(&b);
    let res_byte = |b: u8| ns_byte(b) || b":=@".contains(&b);
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let bytes = s.as_bytes();
    let ns_len = bytes.iter().take_while(|&&b| ns_byte(b)).count();
    if ns_len == 0 {
        return false;
    }
    match bytes.get(ns_len) {
        None => true,
        Some(b':') => {
            let rest = &bytes[ns_len + 1..];
            !rest.is_empty() && rest.iter().all(|&b| res_byte(b))
        }
        Some(_) => false,
    }
}

fuzz_target!(|s: &str| {
    let parsed = s.parse::<Topic>();
    let via_serde = serde_json::from_value::<Topic>(Value::String(s.to_owned()));
    assert_eq!(parsed.is_ok(), reference(s), "grammar disagrees on {s:?}");
    assert_eq!(
        parsed.is_ok(),
        via_serde.is_ok(),
        "serde disagrees on {s:?}"
    );
    if let Ok(topic) = parsed {
        assert_eq!(topic.as_str(), s);
        let again: Topic = topic.to_string().parse().expect("Display round-trips");
        assert_eq!(again, topic);
        assert_eq!(via_serde.ok().as_ref(), Some(&topic));
        assert_eq!(
            serde_json::to_value(&topic).ok(),
            Some(Value::String(s.to_owned()))
        );
        match topic.resource() {
            Some(r) => {
                assert_eq!(format!("{}:{r}", topic.namespace()), s);
                assert!(!topic.namespace().contains(':'));
            }
            None => assert_eq!(topic.namespace(), s),
        }
    }
});
