//! Bounded series: one handle per label set, up to a cap, then one overflow series.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, RwLock};

use hashbrown::{Equivalent, HashMap};
use metrics::KeyName;

/// Handles of one metric, one per label set, at most `cap` of them plus one overflow series.
pub(super) struct BoundedSeries<H> {
    pub(super) name: KeyName,
    pub(super) label_names: Vec<String>,
    pub(super) cap: usize,
    pub(super) map: RwLock<HashMap<Box<[Box<str>]>, H>>,
    pub(super) overflow: OnceLock<H>,
    pub(super) overflowed: AtomicBool,
}

/// Borrowed label values that hash and compare like the owned key.
struct LabelsRef<'a>(&'a [&'a str]);

impl Hash for LabelsRef<'_> {
    fn hash<S: Hasher>(&self, state: &mut S) {
        // `[&str]` and `[Box<str>]` hash identically (length, then each `str`).
        self.0.hash(state);
    }
}

impl Equivalent<Box<[Box<str>]>> for LabelsRef<'_> {
    fn equivalent(&self, key: &Box<[Box<str>]>) -> bool {
        self.0.len() == key.len() && self.0.iter().zip(key.iter()).all(|(a, b)| *a == &**b)
    }
}

impl<H: Clone> BoundedSeries<H> {
    pub(super) fn new(name: KeyName, label_names: Vec<String>, cap: usize) -> Self {
        BoundedSeries {
            name,
            label_names,
            cap,
            map: RwLock::new(HashMap::new()),
            overflow: OnceLock::new(),
            overflowed: AtomicBool::new(false),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Every handle, the overflow series last.
    pub(super) fn all(&self) -> Vec<H> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<H> = map.values().cloned().collect();
        all.extend(self.overflow.get().cloned());
        all
    }

    pub(super) fn with<R>(
        &self,
        values: &[&str],
        register: impl FnOnce() -> H,
        register_overflow: impl FnOnce() -> H,
        f: impl FnOnce(&H) -> R,
    ) -> R {
        if let Some(handle) = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&LabelsRef(values))
        {
            return f(handle);
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = map.get(&LabelsRef(values)) {
            return f(handle);
        }
        if map.len() >= self.cap {
            drop(map);
            return f(self.overflow.get_or_init(register_overflow));
        }
        let handle = register();
        let result = f(&handle);
        map.insert(
            values.iter().map(|v| Box::<str>::from(*v)).collect(),
            handle,
        );
        result
    }
}

pub(super) fn warn_overflow<H>(series: &BoundedSeries<H>) {
    if !series.overflowed.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            metric = series.name.as_str(),
            max = series.cap,
            "vitalsign: label-set cap reached; further label sets are recorded in the series labelled otel_metric_overflow=\"true\""
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn borrowed_and_owned_keys_hash_alike() {
        let state = hashbrown::DefaultHashBuilder::default();
        let owned: Box<[Box<str>]> = vec!["GET".into(), "/users/{id}".into(), "200".into()].into();
        let borrowed = ["GET", "/users/{id}", "200"];
        assert_eq!(state.hash_one(&owned), state.hash_one(LabelsRef(&borrowed)));
        assert!(LabelsRef(&borrowed).equivalent(&owned));
        assert!(!LabelsRef(&borrowed[..2]).equivalent(&owned));
    }

    #[test]
    fn bounded_series_overflows_into_one_handle() {
        let series: BoundedSeries<u32> = BoundedSeries::new("m".into(), vec!["l".into()], 2);
        let mut next = 0;
        let mut seen = Vec::new();
        for v in ["a", "b", "c", "d", "a"] {
            series.with(
                &[v],
                || {
                    next += 1;
                    next
                },
                || 99,
                |h| seen.push(*h),
            );
        }
        assert_eq!(seen, vec![1, 2, 99, 99, 1]);
        assert_eq!(series.len(), 2);
    }
}
