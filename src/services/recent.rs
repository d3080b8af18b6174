//! A bounded memory of the most recent orders, so that a service's memory does not grow with
//! the orders it has handled.
//!
//! The in-memory services (Part A's Inventory and Notification, Part C's Inventory and
//! Analytics) must recognise a repeat — a retried HTTP call, a redelivered or re-appended
//! record — and answer it as before instead of acting twice. A repeat comes soon after the
//! original: a retry within the caller's timeout, a redelivery within a consumer's session, a
//! producer's re-append after a broker restart at most a few thousand records later. So each
//! keeps the last [`REMEMBERED`] orders it decided, and counts for everything older.
//!
//! The price, stated where it is paid: a repeat of an order older than the last [`REMEMBERED`]
//! is not recognised and is handled again. Part B keeps every order in its store (SQLite on
//! disk, or PostgreSQL), which is where a deployment that must recognise any repeat keeps them.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Orders a service remembers, most recent first: about 10 MB of ids and outcomes.
pub const REMEMBERED: usize = 65_536;

/// The last `capacity` keys inserted, each with its value; inserting one more forgets the
/// oldest.
#[derive(Debug, Clone)]
pub struct Recent<K, V> {
    values: HashMap<K, V>,
    /// Keys, oldest first.
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Recent<K, V> {
    pub fn new(capacity: usize) -> Self {
        Recent { values: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.values.get(key)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.values.contains_key(key)
    }

    /// Remembers `key` with `value`, forgetting the oldest key if full. Returns false, and
    /// changes nothing, if `key` is remembered already.
    pub fn insert(&mut self, key: K, value: V) -> bool {
        if self.values.contains_key(&key) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.values.remove(&oldest);
            }
        }
        self.order.push_back(key.clone());
        self.values.insert(key, value);
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The remembered entries, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        self.order.iter().map(|k| (k, &self.values[k]))
    }
}

impl<K: Hash + Eq + Clone, V: PartialEq> PartialEq for Recent<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.capacity == other.capacity && self.order == other.order && self.values == other.values
    }
}

impl<K: Hash + Eq + Clone, V: Eq> Eq for Recent<K, V> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_memory_forgets_the_oldest_and_only_it() {
        let mut recent = Recent::new(3);
        for (k, v) in [(1, 'a'), (2, 'b'), (3, 'c')] {
            assert!(recent.insert(k, v));
        }
        assert!(!recent.insert(2, 'x'), "a key remembered is a repeat");
        assert_eq!(recent.get(&2), Some(&'b'), "and its value is the first one");
        assert!(recent.insert(4, 'd'));
        assert!(!recent.contains(&1) && recent.contains(&2) && recent.contains(&4));
        assert_eq!(recent.len(), 3);
        assert_eq!(recent.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [2, 3, 4]);
    }
}
