//! `sse::parse_event_id` (the `Last-Event-ID` / `since=` parser) on arbitrary
//! strings: never panics; what it accepts is valid topics with non-empty
//! epochs free of the separators; format → parse gives back the same
//! positions, and the formatted id is never longer than the input.
#![no_main]

use hubbub::sse::{format_event_id, parse_event_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|id: &str| {
    let Ok(positions) = parse_event_id(id) else {
        return;
    };
    for position in positions.values() {
        let epoch = position.epoch.as_str();
        assert!(
            !epoch.is_empty() && !epoch.contains([',', '|']),
            "{epoch:?}"
        );
    }
    let formatted = format_event_id(&positions);
    assert!(formatted.len() <= id.len(), "{formatted:?} from {id:?}");
    let again = parse_event_id(&formatted).expect("a formatted id parses");
    assert_eq!(again, positions, "round trip of {id:?}");
});
