//! The work queue keyed by environment: deduplicated, one reconcile per environment at a time.
//!
//! A key enqueued while it is queued is not added twice; a key enqueued while it is running
//! gets exactly one follow-up after the running reconcile ends. Parallelism across keys is
//! bounded by the caller (the agent's semaphore); this type only decides *what* may run.

use std::collections::{BTreeSet, VecDeque};

/// The queue's state. Not thread-safe by itself: the agent owns it in its main loop.
#[derive(Debug, Default)]
pub struct WorkQueue {
    queued: VecDeque<String>,
    queued_set: BTreeSet<String>,
    running: BTreeSet<String>,
    follow_up: BTreeSet<String>,
}

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        WorkQueue::default()
    }

    /// Asks for a reconcile of `key`. Returns false when it was already pending.
    pub fn enqueue(&mut self, key: &str) -> bool {
        if self.running.contains(key) {
            return self.follow_up.insert(key.to_string());
        }
        if self.queued_set.insert(key.to_string()) {
            self.queued.push_back(key.to_string());
            return true;
        }
        false
    }

    /// Takes the next key that is not running, marking it running.
    pub fn take_next(&mut self) -> Option<String> {
        let key = self.queued.pop_front()?;
        self.queued_set.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// Marks `key` done; requeues it once when a change arrived meanwhile.
    pub fn done(&mut self, key: &str) {
        self.running.remove(key);
        if self.follow_up.remove(key) {
            self.enqueue(key);
        }
    }

    /// Whether `key` is running now.
    pub fn is_running(&self, key: &str) -> bool {
        self.running.contains(key)
    }

    /// Number of queued (not running) keys.
    pub fn queued_len(&self) -> usize {
        self.queued.len()
    }

    /// Number of running keys.
    pub fn running_len(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_merged_while_queued() {
        let mut queue = WorkQueue::new();
        assert!(queue.enqueue("a"));
        assert!(!queue.enqueue("a"));
        assert!(queue.enqueue("b"));
        assert_eq!(queue.queued_len(), 2);
        assert_eq!(queue.take_next().as_deref(), Some("a"));
        assert_eq!(queue.take_next().as_deref(), Some("b"));
        assert_eq!(queue.take_next(), None);
    }

    #[test]
    fn a_change_during_a_run_queues_exactly_one_follow_up() {
        let mut queue = WorkQueue::new();
        queue.enqueue("a");
        assert_eq!(queue.take_next().as_deref(), Some("a"));
        assert!(queue.is_running("a"));
        // Three changes while running: one follow-up, and never a second concurrent run.
        queue.enqueue("a");
        queue.enqueue("a");
        queue.enqueue("a");
        assert_eq!(queue.take_next(), None);
        queue.done("a");
        assert_eq!(queue.take_next().as_deref(), Some("a"));
        queue.done("a");
        assert_eq!(queue.take_next(), None);
        assert_eq!(queue.running_len(), 0);
    }

    proptest::proptest! {
        /// Whatever the interleaving, a key is never handed out while it runs.
        #[test]
        fn never_runs_a_key_twice_at_once(ops in proptest::collection::vec((0u8..3, 0u8..4), 0..200)) {
            let mut queue = WorkQueue::new();
            let mut running: Vec<String> = Vec::new();
            for (op, key) in ops {
                let key = format!("env-{key}");
                match op {
                    0 => { queue.enqueue(&key); }
                    1 => if let Some(next) = queue.take_next() {
                        proptest::prop_assert!(!running.contains(&next));
                        running.push(next);
                    },
                    _ => if let Some(pos) = running.iter().position(|k| *k == key) {
                        running.remove(pos);
                        queue.done(&key);
                    },
                }
            }
        }
    }
}
