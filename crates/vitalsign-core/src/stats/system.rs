//! Process and OS figures (through `sysinfo`) and the Tokio runtime probes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sysinfo::{CpuRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate};
use tokio::sync::Notify;

/// Default period of the event-loop probes (see `MonitorBuilder::probe_interval`).
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Most delay samples kept for one window.
const MAX_SAMPLES: usize = 100_000;

/// Reads process and OS figures.
pub(crate) struct System {
    sys: sysinfo::System,
    pid: Option<Pid>,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl System {
    pub(crate) fn new() -> Self {
        let mut sys = sysinfo::System::new();
        sys.refresh_cpu_list(CpuRefreshKind::nothing());
        System {
            sys,
            pid: sysinfo::get_current_pid().ok(),
        }
    }

    /// The `process` and `os` blocks.
    pub(crate) fn collect(
        &mut self,
        uptime: Duration,
        delays: Option<&DelaySummary>,
    ) -> (Value, Value) {
        self.sys.refresh_memory();
        let mut rss = 0;
        if let Some(pid) = self.pid {
            self.sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                false,
                ProcessRefreshKind::nothing().with_memory(),
            );
            rss = self.sys.process(pid).map_or(0, |p| p.memory());
        }
        let total = self.sys.total_memory();
        let available = self.sys.available_memory();
        let peak = peak_rss().unwrap_or(rss).max(rss);
        let limit = cgroup_memory_limit()
            .filter(|l| *l < total)
            .unwrap_or(total);
        let delay_mean = delays.map_or(0.0, |d| d.mean);
        let process = json!({
            "pid": std::process::id(),
            "uptime_in_millis": uptime.as_millis() as u64,
            "memory": {
                "heap": { "used_in_bytes": rss, "total_in_bytes": peak, "size_limit": limit },
                "resident_set_size_in_bytes": rss,
            },
            "event_loop_delay": delay_mean,
            // Zeros while nothing was measured (no request yet, or an idle window).
            "event_loop_delay_histogram": delays.map_or_else(DelaySummary::zero_json, DelaySummary::json),
        });
        let load = sysinfo::System::load_average();
        let os = json!({
            "platform": std::env::consts::OS,
            "platformRelease": sysinfo::System::kernel_version().unwrap_or_default(),
            "load": { "1m": load.one, "5m": load.five, "15m": load.fifteen },
            "memory": {
                "total_in_bytes": total,
                "free_in_bytes": available,
                "used_in_bytes": total.saturating_sub(available),
            },
            "uptime_in_millis": sysinfo::System::uptime() * 1000,
            "cpus": self.sys.cpus().len(),
        });
        (process, os)
    }
}

/// The standard process figures, as the Prometheus client libraries name them
/// (`process_cpu_seconds_total`, `process_open_fds`, …); `None` where this OS does not tell.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ProcessFigures {
    pub(crate) cpu_seconds_total: Option<f64>,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
    pub(crate) virtual_memory_bytes: Option<u64>,
    pub(crate) virtual_memory_max_bytes: Option<u64>,
    pub(crate) resident_memory_bytes: Option<u64>,
    pub(crate) start_time_seconds: Option<u64>,
    pub(crate) threads: Option<u64>,
}

impl System {
    /// This process's standard figures, read now (for `/metrics`).
    pub(crate) fn process_figures(&mut self) -> ProcessFigures {
        let Some(pid) = self.pid else {
            return ProcessFigures::default();
        };
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let Some(process) = self.sys.process(pid) else {
            return ProcessFigures::default();
        };
        let status = std::fs::read_to_string("/proc/self/status").ok();
        ProcessFigures {
            // Milliseconds from the kernel's clock ticks (10 ms on Linux).
            cpu_seconds_total: Some(process.accumulated_cpu_time() as f64 / 1000.0),
            open_fds: process.open_files().map(|n| n as u64),
            max_fds: process.open_files_limit().map(|n| n as u64),
            virtual_memory_bytes: Some(process.virtual_memory()),
            virtual_memory_max_bytes: address_space_limit(),
            resident_memory_bytes: Some(process.memory()),
            start_time_seconds: Some(process.start_time()),
            threads: status.as_deref().and_then(|s| status_field(s, "Threads:")),
        }
    }
}

/// A number field of `/proc/self/status` (`VmHWM:`, `Threads:`), in the field's own unit.
fn status_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set size (`VmHWM`), on Linux.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(status_field(&status, "VmHWM:")? * 1024)
}

/// The address-space limit (`RLIMIT_AS`) from `/proc/self/limits`, on Linux; `None` when
/// unlimited, as the Prometheus client libraries leave it out then.
fn address_space_limit() -> Option<u64> {
    soft_limit(
        &std::fs::read_to_string("/proc/self/limits").ok()?,
        "Max address space",
    )
}

/// The soft limit of one resource in the text of `/proc/<pid>/limits`; `None` when unlimited.
fn soft_limit(limits: &str, resource: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with(resource))?;
    line[resource.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The memory limit of this process's cgroup (v2 `memory.max`, or v1), if one is set.
fn cgroup_memory_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|path| std::fs::read_to_string(path).ok())
    .find_map(|text| text.trim().parse().ok())
}

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

    fn zero_json() -> Value {
        let zero = DelaySummary {
            min: 0.0,
            max: 0.0,
            mean: 0.0,
            percentiles: [(50, 0.0), (75, 0.0), (95, 0.0), (99, 0.0)],
        };
        zero.json()
    }

    fn json(&self) -> Value {
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

    #[test]
    fn process_and_os_figures_are_positive_on_linux() {
        let (process, os) = System::new().collect(Duration::from_millis(5), None);
        if cfg!(target_os = "linux") {
            assert!(
                process["memory"]["resident_set_size_in_bytes"]
                    .as_u64()
                    .unwrap()
                    > 0
            );
            assert!(
                process["memory"]["heap"]["total_in_bytes"]
                    .as_u64()
                    .unwrap()
                    > 0
            );
            assert!(process["memory"]["heap"]["size_limit"].as_u64().unwrap() > 0);
            assert!(os["memory"]["total_in_bytes"].as_u64().unwrap() > 0);
            assert!(os["cpus"].as_u64().unwrap() > 0);
            assert_eq!(os["platform"], "linux");
            assert!(!os["platformRelease"].as_str().unwrap().is_empty());
        }
    }

    /// The `process_*` figures (read through sysinfo and `/proc` since metrics-process was
    /// dropped) are all there on Linux and agree with what the kernel says.
    #[cfg(target_os = "linux")]
    #[test]
    fn process_figures_agree_with_proc() {
        let mut system = System::new();
        let first = system.process_figures();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss = status_field(&status, "VmRSS:").unwrap() * 1024;
        let resident = first.resident_memory_bytes.unwrap();
        assert!(
            resident > rss / 2 && resident < rss * 2,
            "{resident} vs {rss}"
        );
        assert!(first.virtual_memory_bytes.unwrap() >= resident);
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        assert_eq!(first.max_fds, soft_limit(&limits, "Max open files"));
        let fds = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let open = first.open_fds.unwrap();
        assert!(open >= 3 && open.abs_diff(fds) < 64, "{open} vs {fds}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let started = first.start_time_seconds.unwrap();
        assert!(started <= now && started + 3600 > now, "{started} vs {now}");

        // One more thread while it is alive; CPU time grows with work.
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || parked.recv());
        assert!(system.process_figures().threads.unwrap() >= 2);
        drop(stop);
        let _ = thread.join();
        let cpu = first.cpu_seconds_total.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut spin = 0u64;
        while system.process_figures().cpu_seconds_total.unwrap() <= cpu {
            assert!(Instant::now() < deadline, "CPU time did not grow");
            for i in 0..1_000_000u64 {
                spin = std::hint::black_box(spin.wrapping_add(i));
            }
        }
    }

    #[test]
    fn soft_limits_are_read_and_unlimited_is_none() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n\
                      Max address space         unlimited            unlimited            bytes     \n";
        assert_eq!(soft_limit(limits, "Max open files"), Some(1024));
        assert_eq!(soft_limit(limits, "Max address space"), None);
        assert_eq!(soft_limit(limits, "Max locked memory"), None);
    }
}
