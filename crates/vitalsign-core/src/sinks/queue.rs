//! The bounded queue between the request path and a push sink's background writer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Encoded points waiting to be written. Full: the oldest point is dropped and counted.
#[derive(Debug)]
pub(crate) struct Queue {
    items: Mutex<VecDeque<Vec<u8>>>,
    capacity: usize,
    batch_size: usize,
    /// Wakes the writer when a batch is full.
    pub(crate) batch_ready: tokio::sync::Notify,
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl Queue {
    pub(crate) fn new(capacity: usize, batch_size: usize) -> Self {
        Queue {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            batch_size: batch_size.max(1),
            batch_ready: tokio::sync::Notify::new(),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Vec<u8>>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push(&self, item: Vec<u8>) {
        let mut items = self.lock();
        if items.len() == self.capacity {
            items.pop_front();
            self.dropped.fetch_add(1, Relaxed);
        }
        items.push_back(item);
        if items.len() >= self.batch_size {
            drop(items);
            self.batch_ready.notify_one();
        }
    }

    /// Takes up to one batch, oldest first.
    pub(crate) fn take_batch(&self) -> Vec<Vec<u8>> {
        let mut items = self.lock();
        let n = items.len().min(self.batch_size);
        items.drain(..n).collect()
    }

    /// Puts a batch that could not be written back in front (for a retry); what no longer
    /// fits is the oldest, and is dropped and counted.
    pub(crate) fn put_back(&self, batch: Vec<Vec<u8>>) {
        let mut items = self.lock();
        for item in batch.into_iter().rev() {
            if items.len() == self.capacity {
                self.dropped.fetch_add(1, Relaxed);
                continue;
            }
            items.push_front(item);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queues_drop_the_oldest_and_count() {
        let q = Queue::new(3, 2);
        for i in 0..5u8 {
            q.push(vec![i]);
        }
        assert_eq!(q.dropped.load(Relaxed), 2);
        assert_eq!(q.take_batch(), vec![vec![2], vec![3]]);
        q.put_back(vec![vec![2], vec![3]]);
        q.push(vec![5]);
        assert_eq!(q.dropped.load(Relaxed), 3, "the oldest went");
        assert_eq!(q.take_batch(), vec![vec![3], vec![4]]);
        assert_eq!(q.take_batch(), vec![vec![5]]);
        assert!(q.take_batch().is_empty());
    }
}
