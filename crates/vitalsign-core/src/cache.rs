//! A fixed-size, write-once, lock-free lookup table: the hot path's cache in front of the locked
//! maps that own routes and series.
//!
//! Slots are filled once and never emptied, so a reader needs no lock and no reference count:
//! it probes a few slots from the key's hash and compares. A miss goes to the owning map (under
//! its lock), which then offers the entry to the cache. When every probed slot holds another
//! key the entry is simply not cached; the owning map stays the authority.

use std::hash::{BuildHasher, Hash};
use std::sync::OnceLock;

/// Slots probed from a key's home slot.
const PROBES: usize = 8;

/// A write-once open-addressing table of `V`s, looked up by hash and an equality test.
pub(crate) struct OnceCache<V> {
    slots: Box<[OnceLock<V>]>,
    mask: usize,
    hasher: hashbrown::DefaultHashBuilder,
}

impl<V> std::fmt::Debug for OnceCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnceCache")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl<V> OnceCache<V> {
    /// A table of `capacity` slots, rounded up to a power of two.
    pub(crate) fn new(capacity: usize) -> Self {
        let len = capacity.max(PROBES).next_power_of_two();
        OnceCache {
            slots: (0..len).map(|_| OnceLock::new()).collect(),
            mask: len - 1,
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    /// The hash this table files `key` under.
    #[inline]
    pub(crate) fn hash(&self, key: impl Hash) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn probe(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        (0..PROBES).map(move |i| (hash as usize).wrapping_add(i) & self.mask)
    }

    /// The slot and value filed under `hash` for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(&V) -> bool) -> Option<(usize, &V)> {
        for index in self.probe(hash) {
            match self.slots[index].get() {
                None => return None,
                Some(value) if eq(value) => return Some((index, value)),
                Some(_) => {}
            }
        }
        None
    }

    /// Files `value` under `hash` in the first free probed slot; `None` when all are taken.
    pub(crate) fn insert(&self, hash: u64, value: V) -> Option<usize> {
        let mut value = value;
        for index in self.probe(hash) {
            match self.slots[index].set(value) {
                Ok(()) => return Some(index),
                Err(back) => value = back,
            }
        }
        None
    }

    /// The value in slot `index`, if filled.
    pub(crate) fn get(&self, index: usize) -> Option<&V> {
        self.slots.get(index)?.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_filed_and_declines_when_full() {
        let cache: OnceCache<(u32, &str)> = OnceCache::new(8);
        let hash = 3; // every key in one probe window
        for i in 0..8u32 {
            let slot = cache.insert(hash, (i, "v")).unwrap();
            assert_eq!(cache.get(slot), Some(&(i, "v")));
        }
        assert_eq!(
            cache.insert(hash, (8, "v")),
            None,
            "the probe window is full"
        );
        assert_eq!(
            cache.find(hash, |(k, _)| *k == 5).map(|(_, v)| v.0),
            Some(5)
        );
        assert!(cache.find(hash, |(k, _)| *k == 8).is_none());
        assert!(cache.find(cache.hash("other"), |_| false).is_none());
    }
}
