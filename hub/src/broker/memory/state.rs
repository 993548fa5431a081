//! One topic's stream in the memory engine: offset, epoch, history ring and
//! idempotency keys, and the bytes they are counted at. Every entry goes in
//! and out through the methods here, which keep the topic's count and the
//! node's [`Usage`] in step; dropping the state gives back whatever it
//! still counts, so the node's counters cannot drift.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::usage::{Usage, idempotency_bytes};
use crate::broker::{Epoch, Position, Publication, TopicOptions};

/// A publication in the history ring, with when it was stored and what it
/// is counted at.
#[derive(Debug)]
pub(crate) struct Stored {
    at: Instant,
    publication: Arc<Publication>,
    bytes: usize,
}

/// A topic's stream.
#[derive(Debug)]
pub(crate) struct TopicState {
    pub(crate) epoch: Epoch,
    pub(crate) offset: u64,
    history: VecDeque<Stored>,
    idempotency: HashMap<String, u64>,
    idempotency_order: VecDeque<(Instant, String)>,
    last_active: Instant,
    history_ttl: Duration,
    idempotency_window: Duration,
    /// Bytes this topic counts in `usage` (its history and keys).
    bytes: usize,
    /// Taken out of the broker's map (swept, or refused before its first
    /// publication): a publisher that still holds it looks the topic up again.
    pub(crate) removed: bool,
    usage: Arc<Usage>,
}

impl TopicState {
    /// A stream with no publication yet, in `epoch`; the topic was counted in
    /// `usage` by the caller ([`Usage::reserve_topic`]) and is given back on drop.
    pub(crate) fn new(epoch: Epoch, now: Instant, usage: Arc<Usage>) -> TopicState {
        TopicState {
            epoch,
            offset: 0,
            history: VecDeque::new(),
            idempotency: HashMap::new(),
            idempotency_order: VecDeque::new(),
            last_active: now,
            history_ttl: Duration::ZERO,
            idempotency_window: Duration::ZERO,
            bytes: 0,
            removed: false,
            usage,
        }
    }

    pub(crate) fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.offset,
        }
    }

    /// Bytes this topic counts.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The namespace's options, as of the latest publish (the sweep expires
    /// with them).
    pub(crate) fn set_options(&mut self, options: &TopicOptions) {
        self.history_ttl = options.history_ttl;
        self.idempotency_window = options.idempotency_window;
    }

    /// Drops publications older than the history TTL and idempotency keys
    /// older than the window.
    pub(crate) fn expire(&mut self, now: Instant) {
        while self
            .history
            .front()
            .is_some_and(|s| now.duration_since(s.at) > self.history_ttl)
        {
            self.pop_history();
        }
        while self
            .idempotency_order
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > self.idempotency_window)
        {
            if let Some((_, key)) = self.idempotency_order.pop_front() {
                self.idempotency.remove(&key);
                self.uncount(idempotency_bytes(&key));
            }
        }
    }

    fn pop_history(&mut self) {
        if let Some(s) = self.history.pop_front() {
            self.uncount(s.bytes);
        }
    }

    fn uncount(&mut self, n: usize) {
        self.bytes -= n;
        self.usage.release_bytes(n);
    }

    /// The offset a repeated idempotency key was first published at.
    pub(crate) fn repeated(&self, key: &str) -> Option<u64> {
        self.idempotency.get(key).copied()
    }

    /// Bytes the oldest publications that a new one would push out of a
    /// history of `history_size` are counted at.
    pub(crate) fn trimmed_by_one_more(&self, history_size: usize) -> usize {
        if history_size == 0 {
            return 0;
        }
        let over = (self.history.len() + 1).saturating_sub(history_size);
        self.history.iter().take(over).map(|s| s.bytes).sum()
    }

    /// Stores an accepted publication (counted at `bytes`, already reserved
    /// in `usage` by the caller when `history_size > 0`) and trims the ring
    /// to `history_size`.
    pub(crate) fn store(
        &mut self,
        now: Instant,
        publication: Arc<Publication>,
        bytes: usize,
        history_size: usize,
    ) {
        if history_size > 0 {
            self.bytes += bytes;
            self.history.push_back(Stored {
                at: now,
                publication,
                bytes,
            });
            while self.history.len() > history_size {
                self.pop_history();
            }
        }
    }

    /// Remembers an idempotency key (counted at [`idempotency_bytes`],
    /// already reserved in `usage` by the caller).
    pub(crate) fn remember(&mut self, now: Instant, key: String, offset: u64) {
        self.bytes += idempotency_bytes(&key);
        self.idempotency.insert(key.clone(), offset);
        self.idempotency_order.push_back((now, key));
    }

    /// A publication was accepted now.
    pub(crate) fn touch(&mut self, now: Instant) {
        self.last_active = now;
    }

    /// Publications, oldest first.
    pub(crate) fn history(
        &self,
    ) -> impl DoubleEndedIterator<Item = &Arc<Publication>> + ExactSizeIterator {
        self.history.iter().map(|s| &s.publication)
    }

    /// Publications with offset > `after`, if the history still holds all of them.
    pub(crate) fn since(&self, after: u64) -> Option<Vec<Arc<Publication>>> {
        let first_retained = self
            .history
            .front()
            .map_or(self.offset + 1, |s| s.publication.offset);
        if first_retained > after + 1 {
            return None;
        }
        Some(
            self.history()
                .filter(|p| p.offset > after)
                .cloned()
                .collect(),
        )
    }

    /// Idle past both the history TTL and the idempotency window, so every
    /// retained publication and key has expired.
    pub(crate) fn idle_for(&self, now: Instant) -> bool {
        now.duration_since(self.last_active) > self.history_ttl.max(self.idempotency_window)
    }
}

impl Drop for TopicState {
    fn drop(&mut self) {
        self.usage.release_bytes(self.bytes);
        self.usage.release_topic();
    }
}
