//! The exporter's upkeep thread lives exactly as long as its monitor (own test binary, so no
//! other test's monitors come and go meanwhile).
#![cfg(all(feature = "prometheus", target_os = "linux"))]

use std::time::{Duration, Instant};

use vitalsign_core::adapter::RequestStart;
use vitalsign_core::prometheus::UPKEEP_THREAD;
use vitalsign_core::Monitor;

/// `/proc/self/task/*/status` of the threads named like the upkeep thread (Linux keeps 15
/// bytes of a name).
fn upkeep_threads() -> Vec<String> {
    let short = &UPKEEP_THREAD[..UPKEEP_THREAD.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let path = t.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            (name.trim_end() == short)
                .then(|| std::fs::read_to_string(path.join("status")).ok())
                .flatten()
        })
        .collect()
}

/// How many times the upkeep threads went to sleep: each run of the upkeep ends in a wait
/// for the next one, a voluntary context switch.
fn upkeep_sleeps() -> u64 {
    upkeep_threads()
        .iter()
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .sum()
}

fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Regression (review item 13): this test slept 50 ms and called that upkeep; it now waits
/// until the thread has run several times.
#[test]
fn upkeep_runs_while_the_monitor_lives_and_stops_with_it() {
    assert_eq!(upkeep_threads().len(), 0);
    // vitalsign's own recorder holds no histograms to fold: no upkeep thread at all.
    let own = Monitor::builder("own")
        .upkeep_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(upkeep_threads().len(), 0, "an own recorder needs no upkeep");
    drop(own);
    // A recorder the application built may hold its own histograms: upkeep runs.
    let monitor = Monitor::builder("up")
        .prometheus_recorder(metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder())
        .upkeep_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    wait_for("the upkeep thread starts", || upkeep_threads().len() == 1);
    let slept = upkeep_sleeps();
    wait_for("the upkeep runs again and again", || {
        upkeep_sleeps() >= slept + 3
    });
    let second = monitor.clone();
    for _ in 0..1000 {
        let mut flight = vitalsign_core::adapter::begin(
            &second,
            RequestStart::new(b"GET", "/a").with_route(Some("/a")),
        );
        flight.set_status(200);
        flight.complete();
    }
    // vitalsign's histograms are atomics of its own: exact as soon as recorded.
    assert!(monitor.render_metrics().unwrap().contains(
        r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/a",http_response_status_code="200"} 1000"#
    ));
    drop(monitor);
    assert_eq!(upkeep_threads().len(), 1, "a clone keeps the monitor alive");
    drop(second);
    wait_for("the upkeep thread stops", || upkeep_threads().is_empty());
}
