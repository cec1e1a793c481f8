//! Request figures for `/stats`: lock-free counters for the current window, folded into the
//! cumulative totals when the window closes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use serde_json::{json, Map, Value};

use super::runtime::ProbeWaker;
use crate::{RequestPoint, Sink};

/// Status codes counted one by one (100 to 599); others are counted under 0 (`"other"`).
const STATUSES: usize = 600;

#[derive(Debug)]
struct Counters {
    disconnects: AtomicU64,
    sum_micros: AtomicU64,
    max_micros: AtomicU64,
    statuses: Box<[AtomicU64]>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            disconnects: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            max_micros: AtomicU64::new(0),
            statuses: (0..STATUSES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Counters {
    /// Reads the counters; with `reset`, each one is swapped for 0 (every request is counted
    /// in exactly one window).
    fn read(&self, reset: bool) -> Totals {
        let get = |a: &AtomicU64| {
            if reset {
                a.swap(0, Relaxed)
            } else {
                a.load(Relaxed)
            }
        };
        // Every request is counted under exactly one status slot: their sum is the total.
        let mut status_codes = BTreeMap::new();
        let mut total = 0;
        for (status, counter) in self.statuses.iter().enumerate() {
            let n = get(counter);
            if n > 0 {
                status_codes.insert(status as u16, n);
                total += n;
            }
        }
        Totals {
            total,
            disconnects: get(&self.disconnects),
            sum_micros: get(&self.sum_micros),
            max_micros: get(&self.max_micros),
            status_codes,
        }
    }
}

/// Request figures over some span.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) total: u64,
    pub(crate) disconnects: u64,
    sum_micros: u64,
    max_micros: u64,
    pub(crate) status_codes: BTreeMap<u16, u64>,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.total += other.total;
        self.disconnects += other.disconnects;
        self.sum_micros += other.sum_micros;
        self.max_micros = self.max_micros.max(other.max_micros);
        for (status, n) in &other.status_codes {
            *self.status_codes.entry(*status).or_default() += n;
        }
    }

    pub(crate) fn response_times_json(&self) -> Value {
        let avg = if self.total == 0 {
            0.0
        } else {
            self.sum_micros as f64 / self.total as f64 / 1000.0
        };
        json!({ "avg_in_millis": avg, "max_in_millis": self.max_micros as f64 / 1000.0 })
    }

    pub(crate) fn requests_json(&self) -> Value {
        let codes: Map<String, Value> = self
            .status_codes
            .iter()
            .map(|(status, n)| {
                let key = if *status == 0 {
                    "other".to_owned()
                } else {
                    status.to_string()
                };
                (key, (*n).into())
            })
            .collect();
        json!({ "total": self.total, "disconnects": self.disconnects, "status_codes": codes })
    }
}

/// The request side of `/stats`, fed as a sink.
#[derive(Debug)]
pub(crate) struct RequestStats {
    current: Counters,
    folded: Mutex<Totals>,
    /// Wakes the event-loop probes when requests come back after a quiet spell.
    probes: ProbeWaker,
}

impl RequestStats {
    pub(crate) fn new(probes: ProbeWaker) -> Self {
        RequestStats {
            current: Counters::default(),
            folded: Mutex::default(),
            probes,
        }
    }

    /// Closes the current window: returns its totals and folds them into the cumulative ones.
    pub(crate) fn close_window(&self) -> Totals {
        let mut folded = self.folded.lock().unwrap_or_else(PoisonError::into_inner);
        let window = self.current.read(true);
        folded.add(&window);
        window
    }

    /// Totals since the start (closed windows plus the open one).
    pub(crate) fn cumulative(&self) -> Totals {
        let folded = self.folded.lock().unwrap_or_else(PoisonError::into_inner);
        let mut totals = folded.clone();
        totals.add(&self.current.read(false));
        totals
    }
}

impl Sink for RequestStats {
    fn needs_request_id(&self) -> bool {
        false
    }

    fn needs_head_time(&self) -> bool {
        false
    }

    fn request_started(&self, _method: crate::Method) {
        self.probes.request_began();
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        self.record_parts(point.execution_time, point.disconnected, point.status_code);
    }
}

impl RequestStats {
    /// Records a finished request from its parts: what [`Sink::record_request`] reads of a
    /// point, and all that the monitor's lean path hands over.
    #[inline]
    pub(crate) fn record_parts(&self, seconds: f64, disconnected: bool, status: u16) {
        let c = &self.current;
        let micros = (seconds * 1e6) as u64;
        c.sum_micros.fetch_add(micros, Relaxed);
        // A read first: the maximum rarely moves, and a read is cheaper than an update.
        if micros > c.max_micros.load(Relaxed) {
            c.max_micros.fetch_max(micros, Relaxed);
        }
        if disconnected {
            c.disconnects.fetch_add(1, Relaxed);
        }
        let status = usize::from(status);
        let slot = if (100..STATUSES).contains(&status) {
            status
        } else {
            0
        };
        c.statuses[slot].fetch_add(1, Relaxed);
    }
}
