//! Process and OS figures (through `sysinfo`) and the Tokio runtime probes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sysinfo::{CpuRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate};

/// How long the probe task sleeps between two measurements.
const PROBE_PERIOD: Duration = Duration::from_millis(20);

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
            "event_loop_delay_histogram": delays.map_or(Value::Null, DelaySummary::json),
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

/// Peak resident set size (`VmHWM`), on Linux.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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

    fn json(&self) -> Value {
        let percentiles: serde_json::Map<String, Value> = self
            .percentiles
            .iter()
            .map(|(p, v)| (p.to_string(), (*v).into()))
            .collect();
        json!({ "min": self.min, "max": self.max, "mean": self.mean, "percentiles": percentiles })
    }
}

#[derive(Debug, Default)]
struct ProbeState {
    samples: Mutex<Vec<f64>>,
    runtimes: Mutex<Vec<(ThreadId, tokio::runtime::Handle)>>,
    attached_once: AtomicBool,
}

/// Probe tasks on the Tokio runtimes that serve requests: their scheduling delay is the
/// event-loop delay; their handles give the runtime gauges.
#[derive(Debug, Default)]
pub(crate) struct RuntimeProbes {
    state: Arc<ProbeState>,
}

impl RuntimeProbes {
    /// Starts a probe on the runtime of the calling thread, unless this thread has one.
    pub(crate) fn attach(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let thread = std::thread::current().id();
        let mut runtimes = self
            .state
            .runtimes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if runtimes.iter().any(|(t, _)| *t == thread) {
            return;
        }
        runtimes.push((thread, handle.clone()));
        handle.spawn(probe(Arc::downgrade(&self.state)));
    }

    /// [`RuntimeProbes::attach`] on the first call only (a cheap check afterwards).
    pub(crate) fn attach_once(&self) {
        if !self.state.attached_once.load(Ordering::Relaxed)
            && !self.state.attached_once.swap(true, Ordering::Relaxed)
        {
            self.attach();
        }
    }

    pub(crate) fn close_window(&self) -> Option<DelaySummary> {
        let mut samples = std::mem::take(
            &mut *self
                .state
                .samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        DelaySummary::of(&mut samples)
    }

    pub(crate) fn peek(&self) -> Option<DelaySummary> {
        let mut samples = self
            .state
            .samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        DelaySummary::of(&mut samples)
    }

    /// Summed Tokio figures of the probed runtimes: `(workers, alive tasks, global queue)`.
    pub(crate) fn runtime_figures(&self) -> (usize, usize, usize) {
        let runtimes = self
            .state
            .runtimes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut seen: Vec<&tokio::runtime::Handle> = Vec::new();
        let mut totals = (0, 0, 0);
        for (_, handle) in runtimes.iter() {
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

    pub(crate) fn runtime_json(&self) -> Value {
        let (workers, alive_tasks, global_queue_depth) = self.runtime_figures();
        let runtimes = self
            .state
            .runtimes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        json!({
            "probed_threads": runtimes,
            "workers": workers,
            "alive_tasks": alive_tasks,
            "global_queue_depth": global_queue_depth,
        })
    }
}

/// Stable Tokio has no runtime id: current-thread runtimes (one per actix worker) are counted
/// each, multi-thread handles are taken as one runtime (the usual single `#[tokio::main]`).
fn same_runtime(a: &tokio::runtime::Handle, b: &tokio::runtime::Handle) -> bool {
    a.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        && b.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
}

async fn probe(state: Weak<ProbeState>) {
    loop {
        let started = Instant::now();
        tokio::time::sleep(PROBE_PERIOD).await;
        let delay = started.elapsed().saturating_sub(PROBE_PERIOD);
        let Some(state) = state.upgrade() else {
            return;
        };
        let mut samples = state.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() < MAX_SAMPLES {
            samples.push(delay.as_secs_f64() * 1000.0);
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
}
