//! [`RequestWindow`]: per-second request figures over a sliding window, for [`Rule`]s.
//!
//! [`Rule`]: super::Rule

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::{ErrorPoint, RequestPoint, Sink, DEFAULT_DURATION_BUCKETS};

const BUCKETS: usize = DEFAULT_DURATION_BUCKETS.len() + 1;

/// One second of requests.
#[derive(Debug, Default)]
struct Slot {
    /// Second (since the window's start) + 1 that the counters belong to; 0 = empty.
    epoch: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    server_errors: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

/// Figures summed over a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct WindowTotals {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) server_errors: u64,
    latency: [u64; BUCKETS],
}

impl WindowTotals {
    /// Estimates quantile `q` from the buckets (linear inside a bucket, as PromQL's
    /// `histogram_quantile`); requests above the last bound count as the last bound.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, count) in self.latency.iter().enumerate() {
            let below = seen as f64;
            seen += count;
            if (seen as f64) >= rank && *count > 0 {
                let Some(upper) = DEFAULT_DURATION_BUCKETS.get(i) else {
                    return DEFAULT_DURATION_BUCKETS.last().copied();
                };
                let lower = if i == 0 {
                    0.0
                } else {
                    DEFAULT_DURATION_BUCKETS[i - 1]
                };
                return Some(lower + (upper - lower) * (rank - below) / *count as f64);
            }
        }
        DEFAULT_DURATION_BUCKETS.last().copied()
    }
}

/// A ring of per-second slots, fed as a sink: lock-free on the request path.
#[derive(Debug)]
pub(crate) struct RequestWindow {
    start: Instant,
    slots: Box<[Slot]>,
}

impl RequestWindow {
    /// A window able to answer for the last `seconds` seconds.
    pub(crate) fn new(seconds: u64) -> Self {
        let slots = (0..seconds.max(1) + 2).map(|_| Slot::default()).collect();
        RequestWindow {
            start: Instant::now(),
            slots,
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    /// The slot of this second, emptied if it held an older second.
    fn slot(&self) -> &Slot {
        let second = self.now();
        let slot = &self.slots[(second % self.slots.len() as u64) as usize];
        let epoch = slot.epoch.load(Relaxed);
        if epoch != second + 1
            && slot
                .epoch
                .compare_exchange(epoch, second + 1, Relaxed, Relaxed)
                .is_ok()
        {
            slot.requests.store(0, Relaxed);
            slot.errors.store(0, Relaxed);
            slot.server_errors.store(0, Relaxed);
            for bucket in &slot.latency {
                bucket.store(0, Relaxed);
            }
        }
        slot
    }

    /// Sums the last `seconds` seconds (the current, partial second included).
    pub(crate) fn totals(&self, seconds: u64) -> WindowTotals {
        let now = self.now();
        let oldest = (now + 1).saturating_sub(seconds.min(self.slots.len() as u64 - 1));
        let mut totals = WindowTotals::default();
        for slot in self.slots.iter() {
            let epoch = slot.epoch.load(Relaxed);
            if epoch == 0 || epoch - 1 < oldest || epoch - 1 > now {
                continue;
            }
            totals.requests += slot.requests.load(Relaxed);
            totals.errors += slot.errors.load(Relaxed);
            totals.server_errors += slot.server_errors.load(Relaxed);
            for (sum, bucket) in totals.latency.iter_mut().zip(&slot.latency) {
                *sum += bucket.load(Relaxed);
            }
        }
        totals
    }
}

impl Sink for RequestWindow {
    fn needs_request_id(&self) -> bool {
        false
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        let slot = self.slot();
        slot.requests.fetch_add(1, Relaxed);
        if point.status_code >= 500 {
            slot.server_errors.fetch_add(1, Relaxed);
        }
        let bucket = DEFAULT_DURATION_BUCKETS
            .iter()
            .position(|bound| point.execution_time <= *bound)
            .unwrap_or(BUCKETS - 1);
        slot.latency[bucket].fetch_add(1, Relaxed);
    }

    fn record_error(&self, _point: &ErrorPoint<'_>) {
        self.slot().errors.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, RequestId};

    fn point(status: u16, seconds: f64, id: &RequestId) -> RequestPoint<'_> {
        RequestPoint {
            service: "s",
            route: "/",
            method: Method::Get,
            status_code: status,
            request_id: id,
            execution_time: seconds,
            start_unix_nanos: 0,
            disconnected: false,
            head_time: None,
            response_body_bytes: 0,
            request_body_bytes: 0,
            tags: &[],
            fields: &[],
        }
    }

    #[test]
    fn totals_count_requests_errors_and_latency() {
        let window = RequestWindow::new(10);
        let id = RequestId::generate();
        for _ in 0..6 {
            window.record_request(&point(200, 0.003, &id));
        }
        for _ in 0..4 {
            let p = point(503, 0.2, &id);
            window.record_request(&p);
            window.record_error(&ErrorPoint {
                request: &p,
                error_code: "503",
            });
        }
        let totals = window.totals(10);
        assert_eq!(
            (totals.requests, totals.errors, totals.server_errors),
            (10, 4, 4)
        );
        let median = totals.quantile(0.5).unwrap();
        assert!(median > 0.0 && median <= 0.005, "{median}");
        let p99 = totals.quantile(0.99).unwrap();
        assert!(p99 > 0.1 && p99 <= 0.25, "{p99}");
    }

    #[test]
    fn an_empty_window_has_no_quantile() {
        assert_eq!(RequestWindow::new(5).totals(5).quantile(0.9), None);
    }
}
