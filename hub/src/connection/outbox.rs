//! A connection's bounded outbox: a single-consumer FIFO of [`Outgoing`]
//! items that holds no memory while it is empty, bounded in items and in
//! bytes.
//!
//! The byte budget counts an item from the moment it is queued until the
//! receiver comes back for more after taking it (the writer takes a batch,
//! writes it, and only then takes again), so bytes held by a writer blocked
//! in a write still count. An item is admitted while the count is below the
//! budget, so one item larger than the budget (a big `history` reply) still
//! passes when the connection has nothing else pending: a connection holds
//! at most its budget plus one item, plus the batch being written.
//!
//! `tokio::sync::mpsc` allocates its channel state and a first block of 32
//! slots when the channel is created, about 1.5 KiB, which every idle
//! connection would then carry for nothing. Here the queue is one inline
//! slot plus a `VecDeque` for the rest, behind a `std::sync::Mutex` (held
//! only to push or take, never across an `.await`). The head item lives in
//! the slot, so the common case of fan-out (one publication waiting per
//! connection) allocates nothing; the deque is freed when drained, so an
//! idle connection holds no storage. (Allocating per delivery is not free:
//! the fan-out allocates for thousands of connections in a row and their
//! writers free later, which defeats the allocator's per-thread caches; it
//! cost about 1 µs of hub CPU per delivery when measured.)
//!
//! The API mirrors the parts of `mpsc` the hub uses: [`channel`],
//! [`Sender::try_send`], [`Sender::send`], [`Receiver::recv`],
//! [`Receiver::try_recv`] and [`Receiver::recv_many`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::fanout::Outgoing;

/// FIFO with the head inline: `first` is `None` only when `rest` is empty.
#[derive(Default)]
struct Queue {
    first: Option<Outgoing>,
    rest: VecDeque<Outgoing>,
    /// Bytes of the queued items plus those the receiver took last time.
    bytes: usize,
}

impl Queue {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn push_back(&mut self, item: Outgoing) {
        if self.first.is_none() {
            self.first = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    fn pop_front(&mut self) -> Option<Outgoing> {
        let head = self.first.take()?;
        self.first = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            // Drained: give the storage back, an idle connection holds none.
            self.rest = VecDeque::new();
        }
        Some(head)
    }
}

struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    max_bytes: usize,
    /// Wakes the receiver when the queue turns non-empty (or a side closes).
    ready: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
    sender_gone: AtomicBool,
    receiver_gone: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A bounded outbox of `capacity` items (at least one), without a byte budget.
pub fn channel(capacity: usize) -> (Sender, Receiver) {
    bounded(capacity, usize::MAX)
}

/// A bounded outbox of `capacity` items (at least one) and `max_bytes`
/// bytes (see the module doc for how bytes are counted).
pub fn bounded(capacity: usize, max_bytes: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        capacity: capacity.max(1),
        max_bytes: max_bytes.max(1),
        ready: Notify::new(),
        room: Notify::new(),
        sender_gone: AtomicBool::new(false),
        receiver_gone: AtomicBool::new(false),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            taken_bytes: 0,
        },
    )
}

/// Why [`Sender::try_send`] did not queue its item.
#[derive(Debug)]
pub enum TrySendError {
    /// The outbox holds `capacity` items or its byte budget.
    Full(Outgoing),
    /// The receiver is gone.
    Closed(Outgoing),
}

/// The receiver is gone; the item was not queued.
#[derive(Debug)]
pub struct SendError(pub Outgoing);

/// Nothing to take right now ([`Receiver::try_recv`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// The outbox is empty.
    Empty,
    /// The outbox is empty and the sender is gone.
    Disconnected,
}

/// The producing side (one per connection, held by its handle).
pub struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Queues `item` unless the outbox is full or the receiver is gone.
    pub fn try_send(&self, item: Outgoing) -> Result<(), TrySendError> {
        let s = &*self.shared;
        if s.receiver_gone.load(Ordering::Acquire) {
            return Err(TrySendError::Closed(item));
        }
        let was_empty = {
            let cost = item.cost();
            let mut q = s.lock();
            if q.len() >= s.capacity || q.bytes >= s.max_bytes {
                return Err(TrySendError::Full(item));
            }
            q.bytes = q.bytes.saturating_add(cost);
            q.push_back(item);
            q.len() == 1
        };
        if was_empty {
            // Stores a permit when the receiver is not waiting yet: no lost wake-up.
            s.ready.notify_one();
        }
        Ok(())
    }

    /// Queues `item`, waiting for room while the outbox is full.
    pub async fn send(&self, mut item: Outgoing) -> Result<(), SendError> {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before the check, so a take between the check and
            // the wait still wakes us.
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(SendError(back)),
                Err(TrySendError::Full(back)) => item = back,
            }
            room.await;
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.sender_gone.store(true, Ordering::Release);
        self.shared.ready.notify_one();
    }
}

/// The consuming side (the connection's writer).
pub struct Receiver {
    shared: Arc<Shared>,
    /// Bytes of the items taken last time, counted until the next take.
    taken_bytes: usize,
}

impl Receiver {
    /// Moves up to `limit` items into `buf`, waiting while the outbox is
    /// empty. Returns how many; 0 means the sender is gone and nothing is left.
    pub async fn recv_many(&mut self, buf: &mut Vec<Outgoing>, limit: usize) -> usize {
        loop {
            let n = self.take(buf, limit);
            if n > 0 {
                return n;
            }
            if self.shared.sender_gone.load(Ordering::Acquire) {
                // A last item may have been queued just before the sender went.
                return self.take(buf, limit);
            }
            self.shared.ready.notified().await;
        }
    }

    /// Moves up to `limit` items into `buf` without waiting; returns how many.
    pub fn take(&mut self, buf: &mut Vec<Outgoing>, limit: usize) -> usize {
        self.take_with(limit, |item| buf.push(item))
    }

    fn take_with(&mut self, limit: usize, mut each: impl FnMut(Outgoing)) -> usize {
        let s = &*self.shared;
        let (n, was_full, has_room) = {
            let mut q = s.lock();
            let was_full = q.len() >= s.capacity || q.bytes >= s.max_bytes;
            // Coming back for more: what was taken last time is written.
            q.bytes = q
                .bytes
                .saturating_sub(std::mem::take(&mut self.taken_bytes));
            let mut n = 0;
            while n < limit {
                let Some(item) = q.pop_front() else { break };
                self.taken_bytes += item.cost();
                each(item);
                n += 1;
            }
            let has_room = q.len() < s.capacity && q.bytes < s.max_bytes;
            (n, was_full, has_room)
        };
        // Senders only wait when they found the outbox full, so a take from a
        // full outbox is the only one that can have someone to wake.
        if was_full && has_room {
            s.room.notify_waiters();
        }
        n
    }

    /// Bytes counted against the budget now (queued, and taken last time).
    pub fn bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    /// The next item, waiting while the outbox is empty; `None` once the
    /// sender is gone and the outbox is drained.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        loop {
            if let Ok(item) = self.try_recv() {
                return Some(item);
            }
            if self.shared.sender_gone.load(Ordering::Acquire) {
                return self.try_recv().ok();
            }
            self.shared.ready.notified().await;
        }
    }

    /// The next item if there is one.
    pub fn try_recv(&mut self) -> Result<Outgoing, TryRecvError> {
        let mut one = None;
        self.take_with(1, |item| one = Some(item));
        match one {
            Some(item) => Ok(item),
            None if self.shared.sender_gone.load(Ordering::Acquire) => {
                Err(TryRecvError::Disconnected)
            }
            None => Err(TryRecvError::Empty),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
        // Items left behind are dropped now, not when the last handle goes.
        let left = std::mem::take(&mut *self.shared.lock());
        drop(left);
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ws::Message;

    fn item(n: u8) -> Outgoing {
        Outgoing::Frame(Box::new(Message::Binary(vec![n].into())))
    }

    fn byte(o: Outgoing) -> u8 {
        match o {
            Outgoing::Frame(m) => match *m {
                Message::Binary(b) => b[0],
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn fifo_bounded_and_frees_storage_when_drained() {
        let (tx, mut rx) = channel(2);
        tx.try_send(item(1)).unwrap();
        assert_eq!(rx.shared.lock().rest.capacity(), 0, "the head is inline");
        tx.try_send(item(2)).unwrap();
        assert!(matches!(tx.try_send(item(3)), Err(TrySendError::Full(_))));
        assert_eq!(byte(rx.recv().await.unwrap()), 1);
        tx.try_send(item(3)).unwrap();
        let mut buf = Vec::new();
        assert_eq!(rx.recv_many(&mut buf, 10).await, 2);
        assert_eq!(buf.into_iter().map(byte).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(rx.shared.lock().rest.capacity(), 0, "storage given back");
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    #[tokio::test]
    async fn a_waiting_sender_gets_room_and_a_waiting_receiver_wakes() {
        let (tx, mut rx) = channel(1);
        tx.try_send(item(1)).unwrap();
        let tx = Arc::new(tx);
        let t2 = tx.clone();
        let sender = tokio::spawn(async move { t2.send(item(2)).await.is_ok() });
        tokio::task::yield_now().await;
        assert_eq!(byte(rx.recv().await.unwrap()), 1);
        assert!(sender.await.unwrap(), "woken once there was room");
        assert_eq!(byte(rx.recv().await.unwrap()), 2);
        let receiver = tokio::spawn(async move { rx.recv().await.map(byte) });
        tokio::task::yield_now().await;
        tx.try_send(item(7)).unwrap();
        assert_eq!(receiver.await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn either_side_going_is_seen_by_the_other() {
        let (tx, mut rx) = channel(4);
        tx.try_send(item(1)).unwrap();
        drop(tx);
        assert_eq!(byte(rx.recv().await.unwrap()), 1, "what was queued is kept");
        assert!(rx.recv().await.is_none());
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);

        let (tx, rx) = channel(1);
        tx.try_send(item(1)).unwrap();
        let tx = Arc::new(tx);
        let t2 = tx.clone();
        let blocked = tokio::spawn(async move { t2.send(item(2)).await.is_err() });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(
            blocked.await.unwrap(),
            "a blocked send fails when the receiver goes"
        );
        assert!(matches!(tx.try_send(item(3)), Err(TrySendError::Closed(_))));
    }

    fn sized(n: usize) -> Outgoing {
        Outgoing::Frame(Box::new(Message::Binary(vec![0; n].into())))
    }

    #[tokio::test]
    async fn bytes_count_until_the_receiver_comes_back_and_one_big_item_passes() {
        let (tx, mut rx) = bounded(16, 100);
        tx.try_send(sized(60)).unwrap();
        tx.try_send(sized(60)).unwrap(); // admitted below the budget
        assert!(matches!(tx.try_send(sized(1)), Err(TrySendError::Full(_))));
        let mut buf = Vec::new();
        assert_eq!(rx.take(&mut buf, 16), 2);
        assert_eq!(rx.bytes(), 120, "taken, not yet written: still counted");
        assert!(matches!(tx.try_send(sized(1)), Err(TrySendError::Full(_))));
        // A sender waiting for room is woken when the receiver comes back.
        let tx = Arc::new(tx);
        let t2 = tx.clone();
        let waiting = tokio::spawn(async move { t2.send(sized(500)).await.is_ok() });
        tokio::task::yield_now().await;
        assert_eq!(rx.take(&mut buf, 16), 0);
        assert!(
            waiting.await.unwrap(),
            "one item above the budget passes when nothing is pending"
        );
        assert_eq!(rx.bytes(), 500);
        assert!(matches!(tx.try_send(sized(1)), Err(TrySendError::Full(_))));
    }
}
