//! Process and OS figures: the `process` and `os` blocks of `/stats` and the standard
//! `process_*` series of `/metrics`, read through `sysinfo` and, on Linux, `/proc`.

use std::time::Duration;

use serde_json::{json, Value};
use sysinfo::{CpuRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate};

use super::runtime::DelaySummary;

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

/// This process's user + system CPU time from `/proc/self/stat` (fields 14 and 15, after the
/// command name, which may hold spaces and parentheses): one read, where sysinfo's refresh also
/// lists the process's tasks and reads `/proc/stat` and `/proc/uptime`. The kernel counts these
/// in `USER_HZ` ticks, 100 a second on every architecture Rust targets on Linux.
#[cfg(all(feature = "status", target_os = "linux"))]
fn linux_cpu_seconds() -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_ascii_whitespace();
    // Field 3 (the state) is the first after the name; utime and stime are 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The standard process figures, as the Prometheus client libraries name them
/// (`process_cpu_seconds_total`, `process_open_fds`, …); `None` where this OS does not tell.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
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
    /// This process's CPU time so far, in seconds, read now: only what that needs (the status
    /// page's sampler reads it at every collection interval, idle or not; the full
    /// [`System::process_figures`] also lists the open descriptors and reads the limits, a few
    /// milliseconds of an idle process's time every interval).
    #[cfg(feature = "status")]
    pub(crate) fn cpu_seconds_total(&mut self) -> Option<f64> {
        #[cfg(target_os = "linux")]
        if let Some(seconds) = linux_cpu_seconds() {
            return Some(seconds);
        }
        self.refreshed(ProcessRefreshKind::nothing().with_cpu())
            .map(cpu_seconds)
    }

    /// This process, its `kind` of figures refreshed now; `None` where sysinfo cannot see it.
    fn refreshed(&mut self, kind: ProcessRefreshKind) -> Option<&sysinfo::Process> {
        let pid = self.pid?;
        self.sys
            .refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), false, kind);
        self.sys.process(pid)
    }

    /// This process's standard figures, read now (for `/metrics`).
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn process_figures(&mut self) -> ProcessFigures {
        let Some(process) = self.refreshed(ProcessRefreshKind::nothing().with_cpu().with_memory())
        else {
            return ProcessFigures::default();
        };
        let status = std::fs::read_to_string("/proc/self/status").ok();
        ProcessFigures {
            cpu_seconds_total: Some(cpu_seconds(process)),
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

/// A process's user + system CPU time in seconds, from sysinfo's milliseconds (the kernel's
/// clock ticks, 10 ms on Linux).
fn cpu_seconds(process: &sysinfo::Process) -> f64 {
    process.accumulated_cpu_time() as f64 / 1000.0
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
#[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
fn address_space_limit() -> Option<u64> {
    soft_limit(
        &std::fs::read_to_string("/proc/self/limits").ok()?,
        "Max address space",
    )
}

/// The soft limit of one resource in the text of `/proc/<pid>/limits`; `None` when unlimited.
#[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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

    /// The CPU time the status page's sampler reads alone is the one sysinfo reads.
    #[test]
    #[cfg(all(feature = "status", target_os = "linux"))]
    fn the_cpu_time_read_alone_is_sysinfos() {
        let mut system = System::new();
        // Burn user and system time (reads of `/proc`) so that both are well above a tick.
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(300) {
            std::hint::black_box(std::fs::read("/proc/self/status").unwrap());
        }
        let alone = linux_cpu_seconds().unwrap();
        let full = system.process_figures().cpu_seconds_total.unwrap();
        let again = linux_cpu_seconds().unwrap();
        assert!(alone > 0.1, "{alone}");
        // sysinfo reads the same ticks between the two direct reads.
        assert!(
            alone <= full + 1e-9 && full <= again + 1e-9,
            "{alone} {full} {again}"
        );
        assert_eq!(system.cpu_seconds_total().map(|s| s >= again), Some(true));
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
