//! What the memory engine may hold and what it holds now: the caps
//! (`memory.max_topics`, `memory.max_history_bytes`), the node-wide counters
//! that every topic's state updates as it stores and drops entries, and the
//! size each stored entry is counted at.
//!
//! A stored entry is counted at an estimate of the heap it keeps alive: its
//! data as parsed JSON (strings, array slots, object entries, each with the
//! allocator's overhead), its names, and a fixed overhead per entry. The
//! estimate is deterministic, so an entry is uncounted with exactly what it
//! was counted at.

use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::broker::{Publication, StoreFull};

/// The caps of one memory engine (one node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryCaps {
    /// Topics with a stream (published to, not yet swept) the node keeps.
    pub max_topics: usize,
    /// Bytes of history and idempotency keys the node keeps, as counted by
    /// [`publication_bytes`] and [`idempotency_bytes`].
    pub max_history_bytes: usize,
}

/// The node-wide counters, shared by every topic's state.
#[derive(Debug)]
pub(crate) struct Usage {
    pub(crate) caps: MemoryCaps,
    topics: AtomicUsize,
    bytes: AtomicUsize,
}

impl Usage {
    pub(crate) fn new(caps: MemoryCaps) -> Usage {
        Usage {
            caps,
            topics: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }

    /// Topics counted now.
    pub(crate) fn topics(&self) -> usize {
        self.topics.load(Ordering::Acquire)
    }

    /// Bytes counted now.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Counts one more topic, unless the node is at `max_topics`.
    pub(crate) fn reserve_topic(&self) -> Result<(), StoreFull> {
        let max = self.caps.max_topics;
        self.topics
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| StoreFull::Topics { max })
    }

    /// Gives back a topic counted by [`Usage::reserve_topic`].
    pub(crate) fn release_topic(&self) {
        self.topics.fetch_sub(1, Ordering::AcqRel);
    }

    /// Counts `add` more bytes, unless the count minus `freed` (bytes counted
    /// now that the same store will drop right after) plus `add` would exceed
    /// `max_history_bytes`.
    pub(crate) fn reserve_bytes(&self, add: usize, freed: usize) -> Result<(), StoreFull> {
        let max = self.caps.max_history_bytes;
        self.bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n.saturating_sub(freed).saturating_add(add) <= max).then_some(n + add)
            })
            .map(|_| ())
            .map_err(|_| StoreFull::HistoryBytes { max })
    }

    /// Uncounts `n` bytes counted by [`Usage::reserve_bytes`].
    pub(crate) fn release_bytes(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One heap allocation's bookkeeping in the allocator, on top of its size.
const ALLOCATION: usize = 16;

/// A history entry's fixed cost: the `Publication` behind its `Arc` (with the
/// two reference counts), the ring slot, and the allocator's overhead.
const PUBLICATION_FIXED: usize = size_of::<Publication>()
    + 2 * size_of::<usize>()
    + ALLOCATION
    + size_of::<super::state::Stored>();

/// An idempotency key's fixed cost: its map slot and its order slot.
const IDEMPOTENCY_FIXED: usize =
    2 * (size_of::<String>() + ALLOCATION) + size_of::<u64>() + size_of::<tokio::time::Instant>();

/// What a stored publication is counted at.
pub(crate) fn publication_bytes(event: &str, id: &str, data: &Value) -> usize {
    PUBLICATION_FIXED
        .saturating_add(event.len() + ALLOCATION)
        .saturating_add(id.len() + ALLOCATION)
        .saturating_add(value_heap_bytes(data))
}

/// What a remembered idempotency key is counted at (it is kept twice: in the
/// lookup map and in the expiry order).
pub(crate) fn idempotency_bytes(key: &str) -> usize {
    IDEMPOTENCY_FIXED.saturating_add(key.len().saturating_mul(2))
}

/// The heap `value` holds beyond its own slot (walked with an explicit
/// stack: a deep value cannot overflow the thread's stack here).
fn value_heap_bytes(value: &Value) -> usize {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        let here = match v {
            Value::String(s) if s.is_empty() => 0,
            Value::String(s) => s.len() + ALLOCATION,
            Value::Array(items) => {
                stack.extend(items.iter());
                if items.is_empty() {
                    0
                } else {
                    items.len() * size_of::<Value>() + ALLOCATION
                }
            }
            Value::Object(map) => {
                let mut entries = 0usize;
                for (k, item) in map {
                    stack.push(item);
                    // Key string, its slot and the value's slot in a B-tree
                    // node (nodes hold up to 11 entries; counted per entry).
                    entries += k.len()
                        + ALLOCATION
                        + size_of::<String>()
                        + size_of::<Value>()
                        + size_of::<usize>();
                }
                entries
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        };
        total = total.saturating_add(here);
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_grow_with_the_data_and_are_stable() {
        let small = publication_bytes("e", "id", &json!({"n": 1}));
        let big = publication_bytes("e", "id", &json!({"blob": "x".repeat(10_000)}));
        assert!(big >= small + 10_000, "{small} {big}");
        assert_eq!(
            big,
            publication_bytes("e", "id", &json!({"blob": "x".repeat(10_000)}))
        );
        assert!(idempotency_bytes("abc") > 6);
    }

    #[test]
    fn a_deep_value_is_measured_without_recursion() {
        let mut v = json!(1);
        for _ in 0..10_000 {
            v = Value::Array(vec![v]);
        }
        assert!(value_heap_bytes(&v) >= 10_000 * size_of::<Value>());
        // Dropping it recursively would overflow the test thread's stack.
        std::mem::forget(v);
    }

    #[test]
    fn reservations_respect_the_caps() {
        let usage = Usage::new(MemoryCaps {
            max_topics: 2,
            max_history_bytes: 100,
        });
        usage.reserve_topic().unwrap();
        usage.reserve_topic().unwrap();
        assert_eq!(usage.reserve_topic(), Err(StoreFull::Topics { max: 2 }));
        usage.release_topic();
        usage.reserve_topic().unwrap();

        usage.reserve_bytes(60, 0).unwrap();
        assert_eq!(
            usage.reserve_bytes(60, 0),
            Err(StoreFull::HistoryBytes { max: 100 })
        );
        // 60 counted, 30 of them about to be dropped: 60 - 30 + 60 = 90 fits.
        usage.reserve_bytes(60, 30).unwrap();
        assert_eq!(usage.bytes(), 120);
        usage.release_bytes(30);
        usage.release_bytes(90);
        assert_eq!(usage.bytes(), 0);
    }
}
