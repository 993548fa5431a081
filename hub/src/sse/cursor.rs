//! SSE event ids: what a client knows of every topic of its stream, small
//! enough for a header however many topics the stream has.
//!
//! An EventSource sends back only the id of the last event it saw, so each id
//! must let the hub resume *every* topic of the stream, not just the topic of
//! that event. The id does not name topics (the reconnect repeats them in the
//! URL): it lists one offset per topic, in the stream's topic order (sorted,
//! duplicates removed), and one 64-bit fingerprint of the topic names and of
//! every topic's epoch:
//!
//! ```text
//! h1.<16 hex digits: fingerprint>.<offset>.<offset>…    offsets in base 36, `-` = none yet
//! h1.9c1f04d2b8e77a10.5.-.2s                             three topics
//! ```
//!
//! An id is at most `20 + 14 × topics` bytes (offsets below 36⁴ ≈ 1.7 million
//! take at most 5 bytes per topic: about 1.3 KiB at the default limit of 256
//! topics per stream), whatever the topic names. On resume the hub reads the
//! current epoch of each topic and recomputes the fingerprint: equal, every
//! topic resumes after its offset; different (a topic's history was lost, or
//! the id belongs to another topic list), every topic of the stream is told
//! `reset` — never a silent gap, at the price of a coarser reset when only one
//! topic's epoch changed.
//!
//! Ids of the first format (`topic|epoch|offset` entries joined by `,`, which
//! grow with topic names) are still accepted, so streams opened by older
//! builds and the SDK's `since=` keep working.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::broker::{Epoch, Position};
use crate::topic::Topic;

/// A malformed `Last-Event-ID` / `lastEventID` / `since`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventIdError {
    /// An entry is not `topic|epoch|offset` (first format).
    #[error("entry {0} is not topic|epoch|offset")]
    Shape(usize),
    /// An entry's topic is invalid (first format).
    #[error("entry {0} has an invalid topic")]
    Topic(usize),
    /// An entry's offset is not an unsigned integer.
    #[error("entry {0} has an invalid offset")]
    Offset(usize),
    /// The fingerprint is not 16 hex digits.
    #[error("the fingerprint is not 16 hex digits")]
    Fingerprint,
    /// The id is longer than any this hub would send.
    #[error("event id is longer than {0} bytes")]
    TooLong(usize),
}

/// The longest event id accepted (ids of the first format could be long).
pub const MAX_EVENT_ID: usize = 64 * 1024;

const PREFIX: &str = "h1.";

/// A parsed event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventId {
    /// No id (empty): a fresh stream.
    Empty,
    /// The first format: positions by topic name.
    Named(BTreeMap<Topic, Position>),
    /// The compact format: a fingerprint and an offset per topic, in stream order.
    Compact {
        /// Of the topic names and the client's epochs.
        fingerprint: String,
        /// `None`: the client had no position for that topic yet.
        offsets: Vec<Option<u64>>,
    },
}

/// Parses an event id of either format.
pub fn parse_event_id(id: &str) -> Result<EventId, EventIdError> {
    if id.len() > MAX_EVENT_ID {
        return Err(EventIdError::TooLong(MAX_EVENT_ID));
    }
    let id = id.trim();
    if id.is_empty() {
        return Ok(EventId::Empty);
    }
    let Some(rest) = id.strip_prefix(PREFIX) else {
        return parse_named(id).map(EventId::Named);
    };
    let mut parts = rest.split('.');
    let fingerprint = parts.next().unwrap_or_default();
    if fingerprint.len() != 16 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EventIdError::Fingerprint);
    }
    let offsets = parts
        .enumerate()
        .map(|(i, o)| match o {
            "-" => Ok(None),
            o => u64::from_str_radix(o, 36)
                .map(Some)
                .map_err(|_| EventIdError::Offset(i)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventId::Compact {
        fingerprint: fingerprint.to_ascii_lowercase(),
        offsets,
    })
}

fn parse_named(id: &str) -> Result<BTreeMap<Topic, Position>, EventIdError> {
    let mut out = BTreeMap::new();
    for (i, entry) in id.split(',').enumerate() {
        let mut parts = entry.split('|');
        let (Some(topic), Some(epoch), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(EventIdError::Shape(i));
        };
        if epoch.is_empty() {
            return Err(EventIdError::Shape(i));
        }
        let topic: Topic = topic.parse().map_err(|_| EventIdError::Topic(i))?;
        let offset: u64 = offset.parse().map_err(|_| EventIdError::Offset(i))?;
        out.insert(
            topic,
            Position {
                epoch: Epoch::from_wire(epoch),
                offset,
            },
        );
    }
    Ok(out)
}

/// The fingerprint of `topics` with the client's `state` (same length).
pub fn fingerprint(topics: &[Topic], state: &[Option<Position>]) -> String {
    let mut h = Sha256::new();
    for (topic, position) in topics.iter().zip(state) {
        h.update(topic.as_str().as_bytes());
        match position {
            Some(p) => {
                h.update([0]);
                h.update(p.epoch.as_str().as_bytes());
            }
            None => h.update([1]),
        }
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

fn base36(mut n: u64, out: &mut String) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = [0u8; 13];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[usize::try_from(n % 36).unwrap_or(0)];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

/// An epoch no topic has: a position in it is never recoverable.
pub fn lost_epoch() -> Epoch {
    Epoch::from_wire("")
}

/// What the client knows of each topic of one stream, as its event ids say.
#[derive(Debug)]
pub struct Cursor {
    topics: Vec<Topic>,
    state: Vec<Option<Position>>,
    /// Cached fingerprint; `None` when an epoch changed since it was computed.
    fingerprint: Option<String>,
}

impl Cursor {
    /// A cursor over `topics` (sorted, no duplicates), knowing nothing yet.
    pub fn new(topics: Vec<Topic>) -> Cursor {
        let state = vec![None; topics.len()];
        Cursor {
            topics,
            state,
            fingerprint: None,
        }
    }

    /// The stream's topics, in id order.
    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// What the client knows of `topic`.
    pub fn get(&self, topic: &Topic) -> Option<&Position> {
        let i = self.topics.binary_search(topic).ok()?;
        self.state[i].as_ref()
    }

    /// The client now knows `position` of `topic`.
    pub fn set(&mut self, topic: &Topic, position: Position) {
        let Ok(i) = self.topics.binary_search(topic) else {
            return;
        };
        let same_epoch = self.state[i]
            .as_ref()
            .is_some_and(|p| p.epoch == position.epoch);
        if !same_epoch {
            self.fingerprint = None;
        }
        self.state[i] = Some(position);
    }

    /// Sets what the client knows from a parsed id. `current` holds the
    /// topics' current epochs, in topic order, for a compact id (`None` where
    /// its offset is `None`). Topics whose position cannot be trusted get a
    /// position in [`lost_epoch`], so their subscription answers
    /// `recovered: false`.
    pub fn resume(&mut self, id: EventId, current: &[Option<Epoch>]) {
        match id {
            EventId::Empty => {}
            EventId::Named(mut positions) => {
                for (i, topic) in self.topics.iter().enumerate() {
                    self.state[i] = positions.remove(topic);
                }
            }
            EventId::Compact {
                fingerprint: fp,
                offsets,
            } => {
                if offsets.len() != self.topics.len() {
                    // Another topic list: nothing in it can be trusted.
                    for slot in &mut self.state {
                        *slot = Some(Position {
                            epoch: lost_epoch(),
                            offset: 0,
                        });
                    }
                } else {
                    let candidate: Vec<Option<Position>> = offsets
                        .iter()
                        .zip(current)
                        .map(|(o, e)| {
                            o.map(|offset| Position {
                                epoch: e.clone().unwrap_or_else(lost_epoch),
                                offset,
                            })
                        })
                        .collect();
                    if fingerprint(&self.topics, &candidate) == fp {
                        self.state = candidate;
                    } else {
                        self.state = offsets
                            .iter()
                            .map(|o| {
                                o.map(|offset| Position {
                                    epoch: lost_epoch(),
                                    offset,
                                })
                            })
                            .collect();
                    }
                }
            }
        }
        self.fingerprint = None;
    }

    /// The id of an event sent now.
    pub fn event_id(&mut self) -> String {
        let fp = match &self.fingerprint {
            Some(fp) => fp.clone(),
            None => {
                let fp = fingerprint(&self.topics, &self.state);
                self.fingerprint = Some(fp.clone());
                fp
            }
        };
        let mut id = String::with_capacity(PREFIX.len() + 16 + self.state.len() * 3);
        id.push_str(PREFIX);
        id.push_str(&fp);
        for p in &self.state {
            id.push('.');
            match p {
                Some(p) => base36(p.offset, &mut id),
                None => id.push('-'),
            }
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Topic {
        s.parse().unwrap()
    }

    fn pos(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: Epoch::from_wire(epoch),
            offset,
        }
    }

    #[test]
    fn compact_ids_round_trip_and_stay_small() {
        let topics: Vec<Topic> = (0..256)
            .map(|i| t(&format!("bookings:{i:03}-{}", "x".repeat(240))))
            .collect();
        let mut c = Cursor::new(topics.clone());
        for (i, topic) in topics.iter().enumerate() {
            c.set(topic, pos(&format!("{i:016x}"), 1_000_000 + i as u64));
        }
        let id = c.event_id();
        assert!(id.len() <= 20 + 256 * 5, "{}", id.len());
        let EventId::Compact {
            fingerprint: fp,
            offsets,
        } = parse_event_id(&id).unwrap()
        else {
            panic!("compact")
        };
        assert_eq!(offsets[7], Some(1_000_007));
        let current: Vec<Option<Epoch>> = (0..256)
            .map(|i| Some(Epoch::from_wire(&format!("{i:016x}"))))
            .collect();
        let mut back = Cursor::new(topics.clone());
        back.resume(
            EventId::Compact {
                fingerprint: fp,
                offsets,
            },
            &current,
        );
        assert_eq!(back.state, c.state);
        assert_eq!(back.event_id(), id);
    }

    #[test]
    fn a_changed_epoch_or_topic_list_resets_every_topic() {
        let topics = vec![t("bookings:1"), t("bookings:2")];
        let mut c = Cursor::new(topics.clone());
        c.set(&topics[0], pos("a", 3));
        let id = parse_event_id(&c.event_id()).unwrap();
        assert_eq!(
            id,
            EventId::Compact {
                fingerprint: fingerprint(&topics, &c.state),
                offsets: vec![Some(3), None]
            }
        );
        let mut same = Cursor::new(topics.clone());
        same.resume(id.clone(), &[Some(Epoch::from_wire("a")), None]);
        assert_eq!(same.get(&topics[0]), Some(&pos("a", 3)));
        assert_eq!(same.get(&topics[1]), None);

        let mut changed = Cursor::new(topics.clone());
        changed.resume(id.clone(), &[Some(Epoch::from_wire("b")), None]);
        assert_eq!(changed.get(&topics[0]), Some(&pos("", 3)));

        let mut other = Cursor::new(vec![t("bookings:1"), t("bookings:3")]);
        other.resume(id.clone(), &[Some(Epoch::from_wire("a")), None]);
        assert_eq!(other.get(&topics[0]), Some(&pos("", 3)), "names are hashed");

        let mut fewer = Cursor::new(vec![t("bookings:1")]);
        fewer.resume(id, &[Some(Epoch::from_wire("a"))]);
        assert_eq!(fewer.get(&topics[0]), Some(&pos("", 0)));
    }

    #[test]
    fn named_ids_are_still_accepted() {
        let a = t("bookings:1");
        let b = t("guests:wedding-7@x=y");
        let (pa, pb) = (pos("e1", 5), pos("ff00", 0));
        let id = "bookings:1|e1|5,guests:wedding-7@x=y|ff00|0";
        let EventId::Named(parsed) = parse_event_id(id).unwrap() else {
            panic!("named")
        };
        assert_eq!(parsed.get(&a), Some(&pa));
        assert_eq!(parsed.get(&b), Some(&pb));
        assert_eq!(parse_event_id("").unwrap(), EventId::Empty);
    }

    #[test]
    fn malformed_event_ids_are_refused() {
        assert_eq!(parse_event_id("bookings:1|e"), Err(EventIdError::Shape(0)));
        assert_eq!(
            parse_event_id("bookings:1|e|1|x"),
            Err(EventIdError::Shape(0))
        );
        assert_eq!(parse_event_id("bookings:1||1"), Err(EventIdError::Shape(0)));
        assert_eq!(
            parse_event_id("bookings:1|e|1,bad topic|e|1"),
            Err(EventIdError::Topic(1))
        );
        assert_eq!(
            parse_event_id("bookings:1|e|-1"),
            Err(EventIdError::Offset(0))
        );
        assert_eq!(parse_event_id("h1.xyz.1"), Err(EventIdError::Fingerprint));
        assert_eq!(
            parse_event_id("h1.0123456789abcdef.1.!"),
            Err(EventIdError::Offset(1))
        );
        assert_eq!(
            parse_event_id(&"a".repeat(MAX_EVENT_ID + 1)),
            Err(EventIdError::TooLong(MAX_EVENT_ID))
        );
    }

    #[test]
    fn base36_offsets() {
        let mut s = String::new();
        base36(0, &mut s);
        s.push(' ');
        base36(35, &mut s);
        s.push(' ');
        base36(36, &mut s);
        s.push(' ');
        base36(u64::MAX, &mut s);
        assert_eq!(s, "0 z 10 3w5e11264sgsf");
        assert_eq!(u64::from_str_radix("3w5e11264sgsf", 36), Ok(u64::MAX));
    }
}
