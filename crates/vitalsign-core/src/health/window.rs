//! [`RequestWindow`]: per-second request figures over a sliding window, for [`Rule`]s.
//!
//! [`Rule`]: super::Rule

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

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
    /// The time the figures cover: the current second so far plus the whole seconds before it
    /// (fewer while the window is younger than the rule's window).
    pub(crate) span: Duration,
}

impl WindowTotals {
    /// Requests per second over the span covered (0 without requests).
    pub(crate) fn rate(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.requests as f64 / self.span.as_secs_f64().max(1e-3)
    }

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
///
/// The health thread sleeps while no rule has a request in its window; it [arms](Self::arm)
/// the window first, and the next request wakes it. The request count, the slot's second and
/// the flag are read and written in sequentially consistent order on both sides (plain loads
/// and the same locked additions on x86), so that either the thread sees the request or the
/// request sees the flag.
#[derive(Debug)]
pub(crate) struct RequestWindow {
    start: Instant,
    slots: Box<[Slot]>,
    /// The health thread waits for a request (see [`RequestWindow::arm`]).
    idle: AtomicBool,
    wake: Arc<Notify>,
}

impl RequestWindow {
    /// A window able to answer for the last `seconds` whole seconds (plus the current one);
    /// a request arriving while it is [armed](Self::arm) notifies `wake`.
    pub(crate) fn new(seconds: u64, wake: Arc<Notify>) -> Self {
        Self::starting_at(Instant::now(), seconds, wake)
    }

    fn starting_at(start: Instant, seconds: u64, wake: Arc<Notify>) -> Self {
        let slots = (0..seconds.max(1) + 2).map(|_| Slot::default()).collect();
        RequestWindow {
            start,
            slots,
            idle: AtomicBool::new(false),
            wake,
        }
    }

    /// The slot of this second, emptied if it held an older second.
    fn slot(&self) -> &Slot {
        let second = self.start.elapsed().as_secs();
        let slot = &self.slots[(second % self.slots.len() as u64) as usize];
        let epoch = slot.epoch.load(SeqCst);
        if epoch != second + 1
            && slot
                .epoch
                .compare_exchange(epoch, second + 1, SeqCst, Relaxed)
                .is_ok()
        {
            slot.requests.store(0, SeqCst);
            slot.errors.store(0, Relaxed);
            slot.server_errors.store(0, Relaxed);
            for bucket in &slot.latency {
                bucket.store(0, Relaxed);
            }
        }
        slot
    }

    /// Sums the current second so far and the `seconds` whole seconds before it: at least
    /// `seconds` seconds of requests once the window is that old, never less (a 1 s window
    /// does not empty at every second boundary). [`WindowTotals::span`] says how long that is.
    pub(crate) fn totals(&self, seconds: u64) -> WindowTotals {
        let elapsed = self.start.elapsed();
        let now = elapsed.as_secs();
        let seconds = seconds.clamp(1, self.slots.len() as u64 - 2);
        let oldest = now.saturating_sub(seconds);
        let mut totals = WindowTotals {
            span: elapsed - Duration::from_secs(oldest),
            ..WindowTotals::default()
        };
        for slot in self.slots.iter() {
            let epoch = slot.epoch.load(SeqCst);
            if epoch == 0 || epoch - 1 < oldest || epoch - 1 > now {
                continue;
            }
            totals.requests += slot.requests.load(SeqCst);
            totals.errors += slot.errors.load(Relaxed);
            totals.server_errors += slot.server_errors.load(Relaxed);
            for (sum, bucket) in totals.latency.iter_mut().zip(&slot.latency) {
                *sum += bucket.load(Relaxed);
            }
        }
        totals
    }

    /// Arms the window before the health thread sleeps: the next request wakes it. Returns
    /// `false` (not armed) when the last `seconds` already hold a request, so that the thread
    /// keeps evaluating.
    pub(crate) fn arm(&self, seconds: u64) -> bool {
        if self.totals(seconds).requests > 0 {
            return false;
        }
        self.idle.store(true, SeqCst);
        // A request that counted itself before the flag was up did not see it: look again.
        if self.totals(seconds).requests > 0 {
            self.idle.store(false, SeqCst);
            return false;
        }
        true
    }
}

impl Sink for RequestWindow {
    fn needs_request_id(&self) -> bool {
        false
    }

    fn needs_head_time(&self) -> bool {
        false
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        let slot = self.slot();
        slot.requests.fetch_add(1, SeqCst);
        #[cfg(feature = "rpc")]
        let rpc_error = point.rpc.is_some_and(|call| call.is_error);
        #[cfg(not(feature = "rpc"))]
        let rpc_error = false;
        if point.status_code >= 500 || rpc_error {
            slot.server_errors.fetch_add(1, Relaxed);
        }
        let bucket = DEFAULT_DURATION_BUCKETS
            .iter()
            .position(|bound| point.execution_time <= *bound)
            .unwrap_or(BUCKETS - 1);
        slot.latency[bucket].fetch_add(1, Relaxed);
        if self.idle.load(SeqCst) && self.idle.swap(false, SeqCst) {
            self.wake.notify_one();
        }
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
            execution_time: seconds,
            ..RequestPoint::new("s", "/", Method::Get, status, id)
        }
    }

    fn window_aged(age: Duration, seconds: u64) -> RequestWindow {
        let start = Instant::now()
            .checked_sub(age)
            .expect("the clock is older than that");
        RequestWindow::starting_at(start, seconds, Arc::default())
    }

    /// Puts `n` requests into second `second` (counted from the window's start).
    fn put(window: &RequestWindow, second: u64, n: u64) {
        let slot = &window.slots[(second % window.slots.len() as u64) as usize];
        slot.epoch.store(second + 1, SeqCst);
        slot.requests.store(n, SeqCst);
    }

    /// Regression (review item 5): a rule's window summed the current partial second plus
    /// `seconds - 1` whole ones, so a 1 s window held 0 to 1 s of requests and emptied at every
    /// second boundary; rates were divided by the nominal window however little it covered.
    #[test]
    fn totals_cover_whole_seconds_and_say_how_long() {
        // 3.4 s old: second 3 is the current one, 0.4 s in.
        let window = window_aged(Duration::from_millis(3_400), 10);
        put(&window, 1, 7);
        put(&window, 2, 5);
        let one = window.totals(1);
        assert_eq!(
            one.requests, 5,
            "the whole second before the current one counts"
        );
        assert!(
            one.span >= Duration::from_millis(1_400) && one.span < Duration::from_millis(1_600),
            "{:?}",
            one.span
        );
        assert!((one.rate() - 5.0 / one.span.as_secs_f64()).abs() < 1e-9);
        let two = window.totals(2);
        assert_eq!(two.requests, 12);
        // Younger than its 10 s: covers the 3.4 s since the start, and the rate says so.
        let ten = window.totals(10);
        assert_eq!(ten.requests, 12);
        assert!(
            ten.span >= Duration::from_millis(3_400) && ten.span < Duration::from_millis(3_600),
            "{:?}",
            ten.span
        );
        assert!(ten.rate() > 3.0, "{}", ten.rate());
        // Seconds older than the window, and a slot still holding an old second, are left out.
        let old = window_aged(Duration::from_millis(12_300), 10);
        put(&old, 1, 100);
        put(&old, 3, 2);
        assert_eq!(old.totals(10).requests, 2);
        assert_eq!(old.totals(1).requests, 0);
        assert_eq!(old.totals(1).rate(), 0.0);
    }

    #[test]
    fn an_armed_window_wakes_the_health_thread_on_the_next_request() {
        let wake = Arc::new(Notify::new());
        let window = RequestWindow::new(1, wake.clone());
        assert!(window.arm(1), "empty: armed");
        let id = RequestId::generate();
        window.record_request(&point(200, 0.001, &id));
        let woken = wake.notified();
        tokio::pin!(woken);
        assert!(
            futures_now(woken.as_mut()),
            "the request left a wake-up for the thread"
        );
        assert!(!window.arm(1), "a request in the window: not armed");
    }

    /// Polls `future` once.
    fn futures_now<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> bool {
        let waker = std::task::Waker::noop();
        future
            .poll(&mut std::task::Context::from_waker(waker))
            .is_ready()
    }

    #[test]
    fn totals_count_requests_errors_and_latency() {
        let window = RequestWindow::new(10, Arc::default());
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
        assert_eq!(
            RequestWindow::new(5, Arc::default())
                .totals(5)
                .quantile(0.9),
            None
        );
    }
}
