//! `/stats`: process, OS, runtime, response-time and request statistics in the shape a Kibana
//! stats client reads, plus the application's own custom stats.
//!
//! ```
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop").build().unwrap();
//! monitor.custom_stats().inc("jobs", "processed", 3);
//! monitor.custom_stats().set("queue", "depth", 12.0);
//! let stats = monitor.stats_json();
//! assert_eq!(stats["custom"]["jobs"]["processed"], 3);
//! assert!(stats["process"]["memory"]["resident_set_size_in_bytes"].as_u64().unwrap() > 0);
//! ```
//!
//! # Fields
//!
//! Cumulative figures since the monitor started are at the top level; the `window` block has
//! the same request and response-time figures for the last completed collection interval, so
//! nothing resets silently. Before the first interval closes, `window` is the empty span at
//! the start (`from` = `to`), with zeros, in the same shape.
//!
//! | field | meaning for a Rust process |
//! |---|---|
//! | `process.pid` | the process id |
//! | `process.uptime_in_millis` | time since the monitor was built |
//! | `process.memory.heap.used_in_bytes` | Rust has no managed heap: the resident set size (RSS) |
//! | `process.memory.heap.total_in_bytes` | the peak resident set size (`VmHWM` on Linux; the current RSS elsewhere) |
//! | `process.memory.heap.size_limit` | the cgroup memory limit if one is set (containers), else the physical memory |
//! | `process.memory.resident_set_size_in_bytes` | the resident set size |
//! | `process.event_loop_delay` | mean scheduling delay, in ms, over the last interval, of a probe task on each Tokio runtime serving requests (one per actix worker), which sleeps [`probe_interval`](crate::MonitorBuilder::probe_interval) (100 ms) at a time while requests arrive and waits for the next request after a period without one |
//! | `process.event_loop_delay_histogram` | `min`, `mean` and `percentiles` `50`/`75`/`95`/`99` of those delays, in ms; `max` is also at least the longest single poll of a request's handler future in the interval (each is timed), so a handler that blocks any one worker shows in full; zeros while nothing was measured |
//! | `os.platform`, `os.platformRelease` | `linux`, `macos`, …; the kernel release |
//! | `os.load.{1m,5m,15m}` | load averages |
//! | `os.memory.{total,free,used}_in_bytes` | physical memory; free is what is available to new allocations |
//! | `os.uptime_in_millis`, `os.cpus` | host uptime; logical CPUs |
//! | `response_times.{avg,max}_in_millis` | over every recorded request, until its body ended |
//! | `requests.total`, `requests.disconnects` | recorded requests; those whose client hung up first |
//! | `requests.status_codes` | `"200"` → count (`499`: client left before a response existed) |
//! | `concurrent_connections` | requests in flight now (not TCP connections: vitalsign sees requests) |
//! | `collection_interval_in_millis`, `last_updated` | the window's length; when the last window closed (RFC 3339) |
//! | `runtime.{workers,alive_tasks,global_queue_depth}` | Tokio runtime figures of the probed runtimes, summed |
//! | `sinks` | per push sink: points `sent`, `dropped` (queue full, rejected, undeliverable), `queued` |
//! | `custom` | sections of [`CustomStats`] |

mod custom;
mod process;
mod requests;
mod runtime;

use std::sync::{Arc, Mutex, PoisonError};

use runtime::DelaySummary;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

pub use custom::CustomStats;
#[cfg_attr(not(feature = "prometheus"), allow(unused_imports))]
pub(crate) use process::ProcessFigures;
pub(crate) use requests::RequestStats;
#[cfg(feature = "status")]
pub(crate) use requests::Totals;
pub use runtime::DEFAULT_PROBE_INTERVAL;
pub(crate) use runtime::{PollTimes, RuntimeProbes};

/// Default collection interval of the `window` block.
pub const DEFAULT_COLLECTION_INTERVAL: Duration = Duration::from_secs(5);

/// Everything `/stats` reads, owned by the monitor.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) requests: Arc<RequestStats>,
    pub(crate) custom: CustomStats,
    pub(crate) probes: RuntimeProbes,
    pub(crate) polls: PollTimes,
    interval: Duration,
    started: Instant,
    window: Mutex<Window>,
    system: Mutex<process::System>,
    reporters: std::sync::OnceLock<Vec<Arc<dyn crate::Sink>>>,
}

#[derive(Debug)]
struct Window {
    opened: SystemTime,
    opened_at: Instant,
    closed: Option<(SystemTime, SystemTime, requests::Totals)>,
    delays: Option<runtime::DelaySummary>,
}

impl Stats {
    pub(crate) fn new(
        interval: Duration,
        max_custom_keys: usize,
        probe_interval: Duration,
    ) -> Self {
        let probes = RuntimeProbes::new(probe_interval);
        Stats {
            requests: Arc::new(RequestStats::new(probes.waker())),
            custom: CustomStats::new(max_custom_keys),
            probes,
            polls: PollTimes::new(),
            interval,
            started: Instant::now(),
            window: Mutex::new(Window {
                opened: SystemTime::now(),
                opened_at: Instant::now(),
                closed: None,
                delays: None,
            }),
            system: Mutex::new(process::System::new()),
            reporters: std::sync::OnceLock::new(),
        }
    }

    /// This process's CPU time so far, in seconds (see
    /// [`process::System::cpu_seconds_total`]).
    #[cfg(feature = "status")]
    pub(crate) fn cpu_seconds_total(&self) -> Option<f64> {
        self.system
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cpu_seconds_total()
    }

    /// The standard process figures, read now (the `process_*` series of `/metrics`).
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn process_figures(&self) -> ProcessFigures {
        self.system
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .process_figures()
    }

    /// The push sinks whose queue figures `/stats` shows under `sinks`.
    pub(crate) fn set_reporters(&self, sinks: Vec<Arc<dyn crate::Sink>>) {
        let _ = self.reporters.set(sinks);
    }

    /// Closes the window when the interval has passed (run by the health thread); returns
    /// when the open window closes.
    pub(crate) fn tick(&self, now: Instant) -> Instant {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(window.opened_at) >= self.interval {
            let totals = self.requests.close_window();
            let closed_at = SystemTime::now();
            window.closed = Some((window.opened, closed_at, totals));
            window.delays =
                DelaySummary::of_window(self.probes.close_window(), self.polls.close_window());
            window.opened = closed_at;
            window.opened_at = now;
        }
        window.opened_at + self.interval
    }

    /// The last closed window: when it opened and closed, and its request totals (for the
    /// status page's sampler, which runs right after [`Stats::tick`]).
    #[cfg(feature = "status")]
    pub(crate) fn closed_window(&self) -> Option<(SystemTime, SystemTime, requests::Totals)> {
        let window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.closed.clone()
    }

    /// The window length.
    #[cfg(feature = "status")]
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Event-loop delays of the last closed window, or of the open one if that had none.
    fn delays(&self, window: &Window) -> Option<DelaySummary> {
        window
            .delays
            .clone()
            .or_else(|| DelaySummary::of_window(self.probes.peek(), self.polls.peek()))
    }

    /// Mean event-loop delay of the last closed window (or the open one before that), in ms.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn event_loop_delay_ms(&self) -> f64 {
        let window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        self.delays(&window).map_or(0.0, |d| d.mean)
    }

    /// The `/stats` document.
    pub(crate) fn json(&self, in_flight: u64) -> Value {
        let window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let delays = self.delays(&window);
        let mut system = self.system.lock().unwrap_or_else(PoisonError::into_inner);
        let (process, os) = system.collect(self.started.elapsed(), delays.as_ref());
        drop(system);
        let cumulative = self.requests.cumulative();
        let mut document = Map::new();
        document.insert("process".into(), process);
        document.insert("os".into(), os);
        document.insert("response_times".into(), cumulative.response_times_json());
        document.insert("requests".into(), cumulative.requests_json());
        document.insert("concurrent_connections".into(), in_flight.into());
        document.insert(
            "collection_interval_in_millis".into(),
            (self.interval.as_millis() as u64).into(),
        );
        let last_updated = window
            .closed
            .as_ref()
            .map_or(window.opened, |(_, to, _)| *to);
        document.insert("last_updated".into(), rfc3339(last_updated).into());
        // Before the first interval closes: an empty window at the start, in the same shape.
        let empty = requests::Totals::default();
        let (from, to, totals) = match &window.closed {
            Some((from, to, totals)) => (*from, *to, totals),
            None => (window.opened, window.opened, &empty),
        };
        let window_json = json!({
            "from": rfc3339(from),
            "to": rfc3339(to),
            "response_times": totals.response_times_json(),
            "requests": totals.requests_json(),
        });
        document.insert("window".into(), window_json);
        document.insert("runtime".into(), self.probes.runtime_json());
        let sinks: Map<String, Value> = self
            .reporters
            .get()
            .into_iter()
            .flatten()
            .filter_map(|s| s.report())
            .map(|r| {
                let figures = json!({ "sent": r.sent, "dropped": r.dropped, "queued": r.queued });
                (r.name.to_owned(), figures)
            })
            .collect();
        document.insert("sinks".into(), Value::Object(sinks));
        document.insert("custom".into(), self.custom.json());
        Value::Object(document)
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
