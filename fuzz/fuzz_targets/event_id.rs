//! `sse::cursor::parse_event_id` (the `Last-Event-ID` / `lastEventID` /
//! `since=` parser) on arbitrary strings: never panics; a named id yields
//! valid topics with non-empty epochs free of the separators; a compact id
//! has a 16-hex-digit fingerprint. A named id's positions, put in a
//! [`Cursor`], give a compact id that resumes exactly those positions when
//! the topics' epochs are unchanged.
#![no_main]

use hubbub::broker::Epoch;
use hubbub::sse::cursor::{Cursor, EventId, parse_event_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|id: &str| {
    let Ok(parsed) = parse_event_id(id) else {
        return;
    };
    match parsed {
        EventId::Empty => assert!(id.trim().is_empty(), "{id:?}"),
        EventId::Compact { fingerprint, .. } => {
            assert!(
                fingerprint.len() == 16 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
                "{fingerprint:?}"
            );
        }
        EventId::Named(positions) => {
            for position in positions.values() {
                let epoch = position.epoch.as_str();
                assert!(
                    !epoch.is_empty() && !epoch.contains([',', '|']),
                    "{epoch:?}"
                );
            }
            let topics: Vec<_> = positions.keys().cloned().collect();
            let mut cursor = Cursor::new(topics.clone());
            cursor.resume(EventId::Named(positions.clone()), &[]);
            let compact = parse_event_id(&cursor.event_id()).expect("a formatted id parses");
            let epochs: Vec<Option<Epoch>> =
                positions.values().map(|p| Some(p.epoch.clone())).collect();
            let mut resumed = Cursor::new(topics);
            resumed.resume(compact, &epochs);
            for (topic, position) in &positions {
                assert_eq!(resumed.get(topic), Some(position), "round trip of {id:?}");
            }
        }
    }
});
