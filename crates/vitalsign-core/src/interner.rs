//! The bounded interner: owned keys to shared values, at most a cap of them, then an overflow
//! value (made once, on first need) and one warning; optionally fronted by a write-once
//! lock-free cache ([`OnceCache`]) whose hits take no lock and allocate nothing.
//!
//! Routes (`monitor/routes.rs`), Prometheus series (`prometheus/series.rs`) and the period
//! aggregator's tag sets (`sinks/aggregate/tag_sets.rs`) are interners. Custom stats, whose
//! keys change and can be removed, keep their own map behind the same [`Cap`].
//!
//! A lookup probes the cache first (with its own, cheap key: the request's shape), then the
//! map under its read lock, then the map under its write lock, which adds the entry or, past
//! the cap, hands out the overflow value. The caller then offers the cache an entry made of
//! the probe and the value ([`Miss::offer`]); when every probed slot is taken the entry is not
//! cached, and the map stays the authority.

use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use hashbrown::{Equivalent, HashMap};

use crate::cache::OnceCache;

/// Entries an interner's cache is sized for at the most (it has twice as many slots); further
/// ones are looked up under the map's lock.
pub(crate) const CACHED_ENTRIES: usize = 1024;

/// A cap on distinct entries, and its warning, logged once, when the cap first refuses one.
#[derive(Debug)]
pub(crate) struct Cap {
    max: usize,
    /// What is capped, in the plural (`"distinct routes"`).
    what: Cow<'static, str>,
    /// Where refused entries go (`the route "__overflow__"`); `None`: they are refused.
    overflow: Option<Cow<'static, str>>,
    warned: AtomicBool,
}

impl Cap {
    /// A cap of `max` `what`, past which entries go to `overflow`.
    pub(crate) fn new(
        max: usize,
        what: impl Into<Cow<'static, str>>,
        overflow: impl Into<Cow<'static, str>>,
    ) -> Self {
        Cap {
            max,
            what: what.into(),
            overflow: Some(overflow.into()),
            warned: AtomicBool::new(false),
        }
    }

    /// A cap of `max` `what`, past which entries are refused.
    #[cfg_attr(not(feature = "stats"), allow(dead_code))]
    pub(crate) fn refusing(max: usize, what: impl Into<Cow<'static, str>>) -> Self {
        Cap {
            max,
            what: what.into(),
            overflow: None,
            warned: AtomicBool::new(false),
        }
    }

    /// Whether an entry may join `len` others; the first refusal logs the warning.
    pub(crate) fn admits(&self, len: usize) -> bool {
        if len < self.max {
            return true;
        }
        if !self.warned.load(Ordering::Relaxed) && !self.warned.swap(true, Ordering::Relaxed) {
            let (what, max) = (&*self.what, self.max);
            match &self.overflow {
                Some(overflow) => tracing::warn!(
                    what,
                    max,
                    overflow = &**overflow,
                    "vitalsign: more {what} than the cap of {max}; further ones go to {overflow}"
                ),
                None => tracing::warn!(
                    what,
                    max,
                    "vitalsign: more {what} than the cap of {max}; further ones are refused"
                ),
            }
        }
        false
    }

    /// Whether the cap has refused an entry.
    #[cfg(test)]
    pub(crate) fn reached(&self) -> bool {
        self.warned.load(Ordering::Relaxed)
    }
}

/// Whether a value is a regular entry or an overflow value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An entry of its own, counted against the cap.
    Regular,
    /// The value of the overflow key, shared by every key past the cap.
    Overflow,
}

/// A bounded map from owned keys `K` to values `V`, looked up by borrowed keys
/// ([`Equivalent`]), optionally fronted by a cache of entries `E`.
///
/// At most the cap's number of regular entries; past it, a key gets the value of its overflow
/// key (most interners have one; the period aggregator has one per series), made by the same
/// `make` on its first use and not counted against the cap. Entries are kept for the
/// interner's life.
pub(crate) struct Interner<K, V, E = ()> {
    cap: Cap,
    map: RwLock<Map<K, V>>,
    cache: Option<OnceCache<E>>,
}

struct Map<K, V> {
    /// Counted against the cap.
    regular: HashMap<K, V>,
    /// The overflow values, by overflow key.
    overflow: HashMap<K, V>,
}

impl<K, V, E> fmt::Debug for Interner<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interner")
            .field("cap", &self.cap)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// What the cache answered a probe.
pub(crate) enum Probe<'a, E> {
    /// The entry and its slot, found without a lock.
    Hit(u32, &'a E),
    /// Not in the cache (or no cache): look the value up, then offer an entry.
    Miss(Miss<'a, E>),
}

/// A probe the cache did not answer; [`Miss::offer`] files an entry in its place.
pub(crate) struct Miss<'a, E> {
    /// The cache and the probe's hash; `None` without a cache.
    cache: Option<(&'a OnceCache<E>, u64)>,
}

impl<'a, E> Miss<'a, E> {
    /// Files the entry `entry` makes (only when there is a cache) under the probe: its slot and
    /// the entry, or `None` without a cache or when every probed slot is taken.
    #[inline]
    pub(crate) fn offer(self, entry: impl FnOnce() -> E) -> Option<(u32, &'a E)> {
        let (cache, hash) = self.cache?;
        let slot = cache.insert(hash, entry())?;
        Some((slot as u32, cache.get(slot)?))
    }
}

impl<K: Hash + Eq, V, E> Interner<K, V, E> {
    /// An interner under `cap`; with `cached`, fronted by a cache sized for the cap (at most
    /// [`CACHED_ENTRIES`]).
    pub(crate) fn new(cap: Cap, cached: bool) -> Self {
        let slots = cap.max.min(CACHED_ENTRIES) * 2;
        Interner {
            cap,
            map: RwLock::new(Map {
                regular: HashMap::new(),
                overflow: HashMap::new(),
            }),
            cache: cached.then(|| OnceCache::new(slots)),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Map<K, V>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks `probe` up in the cache: no lock, no allocation. `matches` tells the entry of
    /// `probe` (which hashes as the entries' probes did).
    #[inline]
    pub(crate) fn probe(&self, probe: impl Hash, matches: impl FnMut(&E) -> bool) -> Probe<'_, E> {
        match &self.cache {
            Some(cache) => self.probe_hashed(cache.hash(probe), matches),
            None => Probe::Miss(Miss { cache: None }),
        }
    }

    /// [`Interner::probe`] under a hash made by the caller (for a key with a cheap, well-mixed
    /// hash of its own; every probe of this interner must then use the same).
    #[inline]
    pub(crate) fn probe_hashed(&self, hash: u64, matches: impl FnMut(&E) -> bool) -> Probe<'_, E> {
        let Some(cache) = &self.cache else {
            return Probe::Miss(Miss { cache: None });
        };
        match cache.find(hash, matches) {
            Some((slot, entry)) => Probe::Hit(slot as u32, entry),
            None => Probe::Miss(Miss {
                cache: Some((cache, hash)),
            }),
        }
    }

    /// The cached entry in `slot` (from [`Probe::Hit`] or [`Miss::offer`]).
    #[inline]
    pub(crate) fn cached(&self, slot: u32) -> Option<&E> {
        self.cache.as_ref()?.get(slot as usize)
    }

    /// Calls `f` with the value of `key`: found under the read lock, else made by `make` and
    /// added under the write lock, or, past the cap, the value of `overflow` (made by `make` on
    /// its first use). `make` gives the owned key (equivalent to `key`, or to `overflow`) and
    /// the value.
    pub(crate) fn with<Q, R>(
        &self,
        key: &Q,
        overflow: &Q,
        make: impl FnOnce(Kind) -> (K, V),
        f: impl FnOnce(&V, Kind) -> R,
    ) -> R
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        {
            let map = self.read();
            if let Some(value) = map.regular.get(key) {
                return f(value, Kind::Regular);
            }
            if map.regular.len() >= self.cap.max {
                if let Some(value) = map.overflow.get(overflow) {
                    return f(value, Kind::Overflow);
                }
            }
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = map.regular.get(key) {
            return f(value, Kind::Regular);
        }
        let (kind, map) = if self.cap.admits(map.regular.len()) {
            (Kind::Regular, &mut map.regular)
        } else if let Some(value) = map.overflow.get(overflow) {
            return f(value, Kind::Overflow);
        } else {
            (Kind::Overflow, &mut map.overflow)
        };
        let (key, value) = make(kind);
        f(map.entry(key).or_insert(value), kind)
    }

    /// The value of `key` (see [`Interner::with`]) and its kind.
    pub(crate) fn get<Q>(
        &self,
        key: &Q,
        overflow: &Q,
        make: impl FnOnce(Kind) -> (K, V),
    ) -> (V, Kind)
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: Clone,
    {
        self.with(key, overflow, make, |value, kind| (value.clone(), kind))
    }

    /// Regular entries (those counted against the cap).
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.read().regular.len()
    }

    /// Calls `f` with every entry's key and value under the read lock, the overflow values
    /// last (for the status page's sampler, once per collection interval).
    #[cfg(feature = "status")]
    pub(crate) fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        let map = self.read();
        for (key, value) in map.regular.iter().chain(map.overflow.iter()) {
            f(key, value);
        }
    }

    /// Regular entries and overflow values.
    pub(crate) fn total_len(&self) -> usize {
        let map = self.read();
        map.regular.len() + map.overflow.len()
    }

    /// Every value, the overflow values last.
    pub(crate) fn values(&self) -> Vec<V>
    where
        V: Clone,
    {
        let map = self.read();
        map.regular
            .values()
            .chain(map.overflow.values())
            .cloned()
            .collect()
    }

    /// Whether the cap has refused a key.
    #[cfg(test)]
    pub(crate) fn overflowed(&self) -> bool {
        self.cap.reached()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::count_warnings;
    use std::sync::atomic::AtomicUsize;

    const OVERFLOW: &str = "(overflow)";

    /// An interner of names to numbers, numbering the values it makes (the overflow ones from
    /// 1000), and counting what it makes of each kind.
    struct Numbers {
        interner: Interner<Box<str>, usize, (Box<str>, usize)>,
        made: [AtomicUsize; 2],
    }

    impl Numbers {
        fn new(cap: usize, cached: bool) -> Self {
            Numbers {
                interner: Interner::new(Cap::new(cap, "names", "the name \"(overflow)\""), cached),
                made: [AtomicUsize::new(0), AtomicUsize::new(0)],
            }
        }

        fn get(&self, name: &str) -> (usize, Kind) {
            self.get_or(name, OVERFLOW)
        }

        fn get_or(&self, name: &str, overflow: &str) -> (usize, Kind) {
            self.interner.get(name, overflow, |kind| {
                let (key, made) = match kind {
                    Kind::Regular => (name, &self.made[0]),
                    Kind::Overflow => (overflow, &self.made[1]),
                };
                let n = made.fetch_add(1, Ordering::SeqCst);
                (
                    key.into(),
                    if kind == Kind::Overflow { 1000 + n } else { n },
                )
            })
        }

        fn made(&self) -> [usize; 2] {
            self.made.each_ref().map(|m| m.load(Ordering::SeqCst))
        }
    }

    #[test]
    fn past_the_cap_every_key_gets_the_one_overflow_value_made_once() {
        let numbers = Numbers::new(2, false);
        let got: Vec<_> = ["a", "b", "c", "d", "a", "c", "b"]
            .into_iter()
            .map(|name| numbers.get(name))
            .collect();
        let (regular, overflow) = (Kind::Regular, Kind::Overflow);
        assert_eq!(
            got,
            [
                (0, regular),
                (1, regular),
                (1000, overflow),
                (1000, overflow),
                (0, regular),
                (1000, overflow),
                (1, regular),
            ]
        );
        assert_eq!(
            numbers.made(),
            [2, 1],
            "two regular values, one overflow value"
        );
        assert_eq!(
            numbers.interner.len(),
            2,
            "the overflow value is not counted"
        );
        assert_eq!(numbers.interner.total_len(), 3);
        let mut values = numbers.interner.values();
        assert_eq!(values.pop(), Some(1000), "the overflow value last");
        values.sort_unstable();
        assert_eq!(values, [0, 1]);
        assert!(numbers.interner.overflowed());
    }

    #[test]
    fn each_overflow_key_has_its_own_overflow_value() {
        let numbers = Numbers::new(1, false);
        assert_eq!(numbers.get_or("a", "(requests)"), (0, Kind::Regular));
        assert_eq!(numbers.get_or("b", "(requests)"), (1000, Kind::Overflow));
        assert_eq!(numbers.get_or("c", "(errors)"), (1001, Kind::Overflow));
        assert_eq!(numbers.get_or("d", "(requests)"), (1000, Kind::Overflow));
        assert_eq!(numbers.made(), [1, 2]);
        assert_eq!(
            (numbers.interner.len(), numbers.interner.total_len()),
            (1, 3)
        );
    }

    #[test]
    fn a_cap_of_zero_sends_every_key_to_the_overflow_value() {
        let numbers = Numbers::new(0, true);
        for name in ["a", "b", "a"] {
            assert_eq!(numbers.get(name), (1000, Kind::Overflow));
        }
        assert_eq!(numbers.made(), [0, 1]);
        assert_eq!(numbers.interner.len(), 0);
        assert!(numbers.interner.overflowed());
    }

    #[test]
    fn a_cap_of_one_keeps_the_first_key() {
        let numbers = Numbers::new(1, true);
        assert!(!numbers.interner.overflowed());
        assert_eq!(numbers.get("a"), (0, Kind::Regular));
        assert!(
            !numbers.interner.overflowed(),
            "the cap is reached, not passed"
        );
        assert_eq!(numbers.get("b"), (1000, Kind::Overflow));
        assert_eq!(numbers.get("a"), (0, Kind::Regular));
        assert_eq!(numbers.made(), [1, 1]);
    }

    /// The warning names what overflowed, the cap and where further keys go, and is logged
    /// once however many keys overflow.
    #[test]
    fn the_first_refusal_warns_once() {
        let text = "more names than the cap of 2; further ones go to the name \"(overflow)\"";
        let seen = count_warnings(text, |seen| {
            let numbers = Numbers::new(2, false);
            for name in ["a", "b", "a", "b"] {
                numbers.get(name);
            }
            assert_eq!(seen.load(Ordering::SeqCst), 0, "the cap is not passed yet");
            for name in ["c", "d", "c", "e"] {
                numbers.get(name);
            }
            numbers.get_or("f", "(other overflow)");
        });
        assert_eq!(seen, 1, "logged once");
    }

    #[test]
    fn a_refusing_cap_warns_once_and_says_so() {
        let text = "more keys than the cap of 1; further ones are refused";
        let seen = count_warnings(text, |_| {
            let cap = Cap::refusing(1, "keys");
            assert!(cap.admits(0));
            assert!(!cap.reached());
            assert!(!cap.admits(1));
            assert!(!cap.admits(2));
            assert!(cap.reached());
        });
        assert_eq!(seen, 1, "logged once");
    }

    /// What the cached path looks like at a call site: the cache, else the map and an offer.
    fn lookup(numbers: &Numbers, name: &str) -> (Option<u32>, usize, bool) {
        let miss = match numbers.interner.probe(name, |(known, _)| **known == *name) {
            Probe::Hit(slot, (_, n)) => return (Some(slot), *n, true),
            Probe::Miss(miss) => miss,
        };
        let (n, _) = numbers.get(name);
        let slot = miss.offer(|| (name.into(), n)).map(|(slot, _)| slot);
        (slot, n, false)
    }

    #[test]
    fn the_cache_answers_what_it_was_offered_and_declines_when_full() {
        // A cap of 4: eight slots, all in every probe window.
        let numbers = Numbers::new(4, true);
        let (slot, n, hit) = lookup(&numbers, "a");
        assert!(!hit, "first sight: a miss");
        let slot = slot.expect("filed");
        assert_eq!(lookup(&numbers, "a"), (Some(slot), n, true), "then a hit");
        assert_eq!(numbers.interner.cached(slot), Some(&("a".into(), n)));
        // Regular and overflow entries alike fill the other seven slots.
        for name in ["b", "c", "d", "e", "f", "g", "h"] {
            let (slot, _, hit) = lookup(&numbers, name);
            assert!(slot.is_some() && !hit, "{name}");
        }
        assert_eq!(lookup(&numbers, "i"), (None, 1000, false), "no free slot");
        assert_eq!(
            lookup(&numbers, "i"),
            (None, 1000, false),
            "still not cached"
        );
        assert!(lookup(&numbers, "e").2, "the overflow entries are cached");
        assert_eq!(numbers.made(), [4, 1]);
    }

    #[test]
    fn without_a_cache_every_probe_misses_and_nothing_is_made_for_it() {
        let numbers = Numbers::new(4, false);
        for _ in 0..2 {
            let Probe::Miss(miss) = numbers.interner.probe("a", |_| true) else {
                panic!("no cache, no hit");
            };
            assert!(miss.offer(|| panic!("no entry is made")).is_none());
        }
        assert_eq!(numbers.interner.cached(0), None);
    }

    /// Threads interning overlapping keys: each key has one value, exactly the cap of them are
    /// regular, and one overflow value is made.
    #[test]
    fn concurrent_inserts_agree_and_respect_the_cap() {
        const THREADS: usize = 4;
        const KEYS: usize = 300;
        const CAP: usize = 100;
        let numbers = Numbers::new(CAP, true);
        let seen: Vec<Vec<(usize, Kind)>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    let numbers = &numbers;
                    scope.spawn(move || {
                        // Each thread in its own order, twice: through the cache and the map.
                        let mut order: Vec<usize> = (0..KEYS).collect();
                        order.rotate_left(t * KEYS / THREADS);
                        let mut seen = vec![(0, Kind::Regular); KEYS];
                        for _ in 0..2 {
                            for &k in &order {
                                let name = format!("k{k}");
                                let (_, n, _) = lookup(numbers, &name);
                                let kind = if n >= 1000 {
                                    Kind::Overflow
                                } else {
                                    Kind::Regular
                                };
                                seen[k] = (n, kind);
                            }
                        }
                        seen
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(numbers.made(), [CAP, 1]);
        assert_eq!(numbers.interner.len(), CAP);
        for k in 0..KEYS {
            let first = seen[0][k];
            assert!(seen.iter().all(|s| s[k] == first), "k{k}: {first:?}");
        }
        let mut regular: Vec<usize> = seen[0]
            .iter()
            .filter(|(_, kind)| *kind == Kind::Regular)
            .map(|(n, _)| *n)
            .collect();
        regular.sort_unstable();
        assert_eq!(regular, (0..CAP).collect::<Vec<_>>(), "each made once");
    }
}
