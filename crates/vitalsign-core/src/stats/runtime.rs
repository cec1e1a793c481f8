//! The Tokio runtime probes (event-loop delay, runtime gauges) and the longest poll of a
//! request, summarised per window.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Notify;

/// Default period of the event-loop probes (see `MonitorBuilder::probe_interval`).
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Most delay samples kept for one window.
const MAX_SAMPLES: usize = 100_000;

/// Event-loop delay figures of one window, in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DelaySummary {
    min: f64,
    max: f64,
    pub(crate) mean: f64,
    percentiles: [(u8, f64); 4],
}

impl DelaySummary {
    fn of(samples: &mut [f64]) -> Option<DelaySummary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let at = |p: u8| {
            let rank = (f64::from(p) / 100.0 * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Some(DelaySummary {
            min: samples[0],
            max: samples[samples.len() - 1],
            mean: samples.iter().sum::<f64>() / samples.len() as f64,
            percentiles: [(50, at(50)), (75, at(75)), (95, at(95)), (99, at(99))],
        })
    }

    /// The figures of a window: the probes' samples, with a maximum of at least the longest
    /// poll that held a worker (`None`: none timed). With no sample, that poll is the one.
    pub(crate) fn of_window(mut samples: Vec<f64>, longest_poll: Option<f64>) -> Option<Self> {
        match (DelaySummary::of(&mut samples), longest_poll) {
            (Some(mut summary), Some(poll)) => {
                summary.max = summary.max.max(poll);
                Some(summary)
            }
            (None, Some(poll)) => DelaySummary::of(&mut [poll]),
            (summary, None) => summary,
        }
    }

    pub(super) fn zero_json() -> Value {
        let zero = DelaySummary {
            min: 0.0,
            max: 0.0,
            mean: 0.0,
            percentiles: [(50, 0.0), (75, 0.0), (95, 0.0), (99, 0.0)],
        };
        zero.json()
    }

    pub(super) fn json(&self) -> Value {
        let percentiles: serde_json::Map<String, Value> = self
            .percentiles
            .iter()
            .map(|(p, v)| (p.to_string(), (*v).into()))
            .collect();
        json!({ "min": self.min, "max": self.max, "mean": self.mean, "percentiles": percentiles })
    }
}

#[derive(Debug)]
struct ProbeState {
    period: Duration,
    samples: Mutex<Vec<f64>>,
    /// One entry per live probe; a probe's guard takes its entry out when its runtime drops
    /// the probe (the runtime shut down: an actix worker that restarted, a test's runtime).
    runtimes: Mutex<Vec<Probed>>,
    next_id: AtomicU64,
    attached_once: AtomicBool,
    /// No request has begun since a probe last looked: probes wait for one instead of waking
    /// an idle runtime every period.
    quiet: AtomicBool,
    wake: Notify,
    /// The monitor is gone: probes end.
    closed: AtomicBool,
}

#[derive(Debug)]
struct Probed {
    id: u64,
    thread: ThreadId,
    handle: tokio::runtime::Handle,
}

/// Probe tasks on the Tokio runtimes that serve requests: their scheduling delay is the
/// event-loop delay; their handles give the runtime gauges.
#[derive(Debug)]
pub(crate) struct RuntimeProbes {
    state: Arc<ProbeState>,
}

impl RuntimeProbes {
    /// Probes that measure every `period` while requests arrive.
    pub(crate) fn new(period: Duration) -> Self {
        RuntimeProbes {
            state: Arc::new(ProbeState {
                period,
                samples: Mutex::new(Vec::new()),
                runtimes: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(0),
                attached_once: AtomicBool::new(false),
                quiet: AtomicBool::new(false),
                wake: Notify::new(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Starts a probe on the runtime of the calling thread, unless this thread has one.
    pub(crate) fn attach(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let thread = std::thread::current().id();
        let mut runtimes = self.state.runtimes();
        if runtimes.iter().any(|p| p.thread == thread) {
            return;
        }
        let id = self.state.next_id.fetch_add(1, Ordering::Relaxed);
        runtimes.push(Probed {
            id,
            thread,
            handle: handle.clone(),
        });
        // Unlocked first: a runtime that is shutting down drops the probe at once, and the
        // guard's drop takes the lock.
        drop(runtimes);
        let guard = Registration {
            state: Arc::clone(&self.state),
            id,
        };
        handle.spawn(probe(guard));
    }

    /// [`RuntimeProbes::attach`] on the first call only (a cheap check afterwards), and again
    /// after that runtime shut down.
    pub(crate) fn attach_once(&self) {
        if !self.state.attached_once.load(Ordering::Relaxed)
            && !self.state.attached_once.swap(true, Ordering::Relaxed)
        {
            self.attach();
        }
    }

    /// What the request path calls to wake probes that wait for a request.
    pub(crate) fn waker(&self) -> ProbeWaker {
        ProbeWaker(Arc::clone(&self.state))
    }

    pub(crate) fn close_window(&self) -> Vec<f64> {
        std::mem::take(&mut *self.state.samples())
    }

    pub(crate) fn peek(&self) -> Vec<f64> {
        self.state.samples().clone()
    }

    /// Summed Tokio figures of the probed runtimes: `(workers, alive tasks, global queue)`.
    pub(crate) fn runtime_figures(&self) -> (usize, usize, usize) {
        let runtimes = self.state.runtimes();
        let mut seen: Vec<&tokio::runtime::Handle> = Vec::new();
        let mut totals = (0, 0, 0);
        for probed in runtimes.iter() {
            let handle = &probed.handle;
            // Several threads of one multi-thread runtime count once.
            if seen.iter().any(|h| same_runtime(h, handle)) {
                continue;
            }
            seen.push(handle);
            let metrics = handle.metrics();
            totals.0 += metrics.num_workers();
            totals.1 += metrics.num_alive_tasks();
            totals.2 += metrics.global_queue_depth();
        }
        totals
    }

    /// Probes running now.
    pub(crate) fn probed_threads(&self) -> usize {
        self.state.runtimes().len()
    }

    pub(crate) fn runtime_json(&self) -> Value {
        let (workers, alive_tasks, global_queue_depth) = self.runtime_figures();
        json!({
            "probed_threads": self.probed_threads(),
            "workers": workers,
            "alive_tasks": alive_tasks,
            "global_queue_depth": global_queue_depth,
        })
    }
}

/// Wakes probes that wait for a request (see [`RuntimeProbes::waker`]).
#[derive(Debug)]
pub(crate) struct ProbeWaker(Arc<ProbeState>);

impl ProbeWaker {
    /// A request began: a load of a flag that a probe sets at most once a period.
    #[inline]
    pub(crate) fn request_began(&self) {
        let state = &self.0;
        if state.quiet.load(Ordering::Relaxed) && state.quiet.swap(false, Ordering::SeqCst) {
            state.wake.notify_waiters();
        }
    }
}

/// The longest single poll of a request's handler, future or response body in the open
/// window: how long it held its worker thread away from every other task. Adapters poll
/// through [`Flight::in_scope`](crate::adapter::Flight::in_scope) and
/// [`Flight::in_body`](crate::adapter::Flight::in_body), which read the TSC around each
/// poll, so a handler that blocks any one worker of a multi-thread runtime shows in full,
/// whichever worker the probe happens to run on, and an idle service times nothing.
#[derive(Debug)]
pub(crate) struct PollTimes {
    clock: quanta::Clock,
    /// Raw clock units.
    longest: AtomicU64,
}

impl PollTimes {
    pub(crate) fn new() -> Self {
        PollTimes {
            clock: quanta::Clock::new(),
            longest: AtomicU64::new(0),
        }
    }

    /// A poll starts: the raw time to pass to [`PollTimes::ended`].
    #[inline]
    pub(crate) fn start(&self) -> u64 {
        self.clock.raw()
    }

    /// The poll that started at `started` returned.
    #[inline]
    pub(crate) fn ended(&self, started: u64) {
        let held = self.clock.raw().saturating_sub(started);
        // A read first: the maximum rarely moves.
        if held > self.longest.load(Ordering::Relaxed) {
            self.longest.fetch_max(held, Ordering::Relaxed);
        }
    }

    fn millis(&self, raw: u64) -> Option<f64> {
        (raw > 0).then(|| self.clock.delta_as_nanos(0, raw) as f64 / 1e6)
    }

    /// The longest poll of the window that closes, in ms; the next window starts from zero.
    pub(crate) fn close_window(&self) -> Option<f64> {
        self.millis(self.longest.swap(0, Ordering::Relaxed))
    }

    /// The longest poll so far in the open window, in ms.
    pub(crate) fn peek(&self) -> Option<f64> {
        self.millis(self.longest.load(Ordering::Relaxed))
    }
}

impl Drop for RuntimeProbes {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.state.wake.notify_waiters();
    }
}

impl ProbeState {
    fn samples(&self) -> std::sync::MutexGuard<'_, Vec<f64>> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn runtimes(&self) -> std::sync::MutexGuard<'_, Vec<Probed>> {
        self.runtimes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A probe's entry in [`ProbeState::runtimes`], taken out when the probe is dropped.
struct Registration {
    state: Arc<ProbeState>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut runtimes = self.state.runtimes();
        runtimes.retain(|p| p.id != self.id);
        // The runtime that `attach_once` chose is gone: the next request attaches again.
        if runtimes.is_empty() {
            self.state.attached_once.store(false, Ordering::Relaxed);
        }
    }
}

/// Stable Tokio has no runtime id: current-thread runtimes (one per actix worker) are counted
/// each, multi-thread handles are taken as one runtime (the usual single `#[tokio::main]`).
fn same_runtime(a: &tokio::runtime::Handle, b: &tokio::runtime::Handle) -> bool {
    a.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        && b.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
}

/// Sleeps a period at a time and records how late it wakes. After a period in which no
/// request began, it waits for the next one instead (an idle service costs no wake-ups).
async fn probe(guard: Registration) {
    let state = &guard.state;
    while !state.closed.load(Ordering::Relaxed) {
        let started = Instant::now();
        tokio::time::sleep(state.period).await;
        let delay = started.elapsed().saturating_sub(state.period);
        {
            let mut samples = state.samples();
            if samples.len() < MAX_SAMPLES {
                samples.push(delay.as_secs_f64() * 1000.0);
            }
        }
        if state.quiet.swap(true, Ordering::SeqCst) {
            let woken = state.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if state.quiet.load(Ordering::SeqCst) && !state.closed.load(Ordering::SeqCst) {
                woken.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_summary_percentiles() {
        let mut samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = DelaySummary::of(&mut samples).unwrap();
        assert_eq!((s.min, s.max, s.mean), (1.0, 100.0, 50.5));
        assert_eq!(
            s.percentiles,
            [(50, 50.0), (75, 75.0), (95, 95.0), (99, 99.0)]
        );
        assert!(DelaySummary::of(&mut []).is_none());
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Regression (review item 12): every actix worker restart (a new runtime on a new
    /// thread) added an entry to `RuntimeProbes.runtimes`, and none ever left.
    #[test]
    fn probes_of_runtimes_that_shut_down_are_dropped() {
        let probes = RuntimeProbes::new(Duration::from_millis(5));
        for restart in 0..20 {
            std::thread::scope(|s| {
                s.spawn(|| {
                    let runtime = current_thread();
                    runtime.block_on(async {
                        probes.attach();
                        tokio::task::yield_now().await;
                    });
                    assert_eq!(probes.probed_threads(), 1, "restart {restart}");
                    assert_eq!(probes.runtime_json()["workers"], 1);
                });
            });
            assert_eq!(probes.probed_threads(), 0, "restart {restart}");
        }
        // `attach_once` (the Tower layer's) attaches again once its runtime is gone.
        for _ in 0..2 {
            let runtime = current_thread();
            runtime.block_on(async { probes.attach_once() });
            assert_eq!(probes.probed_threads(), 1);
            drop(runtime);
            assert_eq!(probes.probed_threads(), 0);
        }
    }

    /// A probe measures while requests begin, then waits for the next one instead of waking
    /// its runtime every period; a request wakes it.
    #[test]
    fn probes_wait_while_no_request_begins() {
        let probes = RuntimeProbes::new(Duration::from_millis(5));
        let waker = probes.waker();
        let runtime = current_thread();
        runtime.block_on(async {
            probes.attach();
            let samples = || probes.peek().len();
            // No request: a period or two of samples, then none.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut quiet_since = (samples(), Instant::now());
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let now = samples();
                if now == quiet_since.0 {
                    break;
                }
                quiet_since = (now, Instant::now());
                assert!(Instant::now() < deadline, "the probe never went quiet");
            }
            let parked = samples();
            assert!(parked <= 3, "{parked} samples without a request");
            // A request wakes it.
            waker.request_began();
            let deadline = Instant::now() + Duration::from_secs(10);
            while samples() == parked {
                assert!(
                    Instant::now() < deadline,
                    "a request did not wake the probe"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
}
