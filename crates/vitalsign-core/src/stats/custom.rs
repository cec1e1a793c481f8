//! [`CustomStats`]: the application's own figures (the service kit's MonitorStorage), shown
//! under `custom` in `/stats` and exported on `/metrics`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value};

use crate::interner::Cap;

/// One custom stat.
#[derive(Clone, Debug, PartialEq)]
enum Entry {
    /// `inc`: a counter (exported as `vitalsign_custom_total{section,key}`).
    Counter(u64),
    /// `set`: a gauge (exported as `vitalsign_custom{section,key}`).
    Gauge(f64),
    /// `append`: the last `max` values (its length exported as a gauge).
    List(VecDeque<String>),
    /// `insert`: a text entry (shown in `/stats` only).
    Text(String),
}

#[derive(Debug)]
struct Sections {
    sections: BTreeMap<String, BTreeMap<String, Entry>>,
    keys: usize,
    cap: Cap,
}

/// Named sections of application figures: counters, gauges, bounded lists and text entries.
///
/// A key holds one kind at a time (a later call of another kind replaces it). The number of
/// keys is bounded (the monitor's label-set cap); past it, new keys are refused (the call
/// returns `false`) and a warning is logged once.
///
/// ```
/// use vitalsign_core::Monitor;
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// let stats = monitor.custom_stats();
/// stats.inc("orders", "placed", 1);
/// stats.set("cache", "hit_ratio", 0.93);
/// stats.append("orders", "last_ids", "o-17", 3);
/// stats.insert("build", "commit", "4f2c1e0");
/// assert!(stats.remove("build", "commit"));
/// ```
#[derive(Clone, Debug)]
pub struct CustomStats {
    inner: Arc<Mutex<Sections>>,
}

impl CustomStats {
    pub(crate) fn new(max_keys: usize) -> Self {
        CustomStats {
            inner: Arc::new(Mutex::new(Sections {
                sections: BTreeMap::new(),
                keys: 0,
                cap: Cap::refusing(max_keys, "custom stats keys"),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sections> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes (or creates) `section.key` with `change`; `false` if refused by the key cap.
    fn with(
        &self,
        section: &str,
        key: &str,
        change: impl FnOnce(Option<&mut Entry>) -> Entry,
    ) -> bool {
        let mut all = self.lock();
        let exists = all
            .sections
            .get(section)
            .is_some_and(|s| s.contains_key(key));
        if !exists && !all.cap.admits(all.keys) {
            return false;
        }
        if !exists {
            all.keys += 1;
        }
        let entries = all.sections.entry(section.to_owned()).or_default();
        let current = entries.get_mut(key);
        let next = change(current);
        entries.insert(key.to_owned(), next);
        true
    }

    /// Adds `by` to the counter `section.key`.
    pub fn inc(&self, section: &str, key: &str, by: u64) -> bool {
        self.with(section, key, |entry| match entry {
            Some(Entry::Counter(n)) => Entry::Counter(n.saturating_add(by)),
            _ => Entry::Counter(by),
        })
    }

    /// Sets the gauge `section.key`.
    pub fn set(&self, section: &str, key: &str, value: f64) -> bool {
        self.with(section, key, |_| Entry::Gauge(value))
    }

    /// Appends `value` to the list `section.key`, keeping the last `max` values.
    pub fn append(&self, section: &str, key: &str, value: impl Into<String>, max: usize) -> bool {
        let value = value.into();
        self.with(section, key, |entry| {
            let mut list = match entry {
                Some(Entry::List(list)) => std::mem::take(list),
                _ => VecDeque::new(),
            };
            list.push_back(value);
            while list.len() > max.max(1) {
                list.pop_front();
            }
            Entry::List(list)
        })
    }

    /// Sets the text entry `section.key`.
    pub fn insert(&self, section: &str, key: &str, value: impl Into<String>) -> bool {
        let value = value.into();
        self.with(section, key, |_| Entry::Text(value))
    }

    /// Removes `section.key` (and the section when it becomes empty); `false` if absent.
    pub fn remove(&self, section: &str, key: &str) -> bool {
        let mut all = self.lock();
        let Some(entries) = all.sections.get_mut(section) else {
            return false;
        };
        let removed = entries.remove(key).is_some();
        if entries.is_empty() {
            all.sections.remove(section);
        }
        if removed {
            all.keys -= 1;
        }
        removed
    }

    /// The `custom` block of `/stats`.
    pub(crate) fn json(&self) -> Value {
        let all = self.lock();
        let sections: Map<String, Value> = all
            .sections
            .iter()
            .map(|(section, entries)| {
                let values: Map<String, Value> = entries
                    .iter()
                    .map(|(key, entry)| {
                        let value = match entry {
                            Entry::Counter(n) => Value::from(*n),
                            Entry::Gauge(v) => Value::from(*v),
                            Entry::List(list) => {
                                Value::from(list.iter().cloned().collect::<Vec<_>>())
                            }
                            Entry::Text(text) => Value::from(text.clone()),
                        };
                        (key.clone(), value)
                    })
                    .collect();
                (section.clone(), Value::Object(values))
            })
            .collect();
        Value::Object(sections)
    }

    /// Numeric views for `/metrics`: `(section, key, is_counter, value)`.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn numeric(&self) -> Vec<(String, String, bool, f64)> {
        let all = self.lock();
        let mut out = Vec::new();
        for (section, entries) in &all.sections {
            for (key, entry) in entries {
                let (counter, value) = match entry {
                    Entry::Counter(n) => (true, *n as f64),
                    Entry::Gauge(v) => (false, *v),
                    Entry::List(list) => (false, list.len() as f64),
                    Entry::Text(_) => continue,
                };
                out.push((section.clone(), key.clone(), counter, value));
            }
        }
        out
    }
}
