//! The histogram upkeep thread lives exactly as long as its monitor (own test binary, so no
//! other test's monitors come and go meanwhile).
#![cfg(all(feature = "prometheus", target_os = "linux"))]

use std::time::{Duration, Instant};

use vitalsign_core::prometheus::UPKEEP_THREAD;
use vitalsign_core::{Monitor, RequestStart};

/// Threads of this process named like the upkeep thread (Linux keeps 15 bytes of a name).
fn upkeep_threads() -> usize {
    let short = &UPKEEP_THREAD[..UPKEEP_THREAD.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == short)
        .count()
}

fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn upkeep_runs_while_the_monitor_lives_and_stops_with_it() {
    assert_eq!(upkeep_threads(), 0);
    let monitor = Monitor::builder("up")
        .upkeep_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    wait_for("the upkeep thread starts", || upkeep_threads() == 1);
    let second = monitor.clone();
    for _ in 0..1000 {
        let mut flight = second
            .begin(RequestStart {
                method: b"GET",
                path: "/a",
                route: Some("/a"),
                request_id: None,
            })
            .unwrap();
        flight.set_status(200);
        flight.complete();
    }
    // Nothing rendered, yet the count is right once rendered (upkeep only folds samples).
    std::thread::sleep(Duration::from_millis(50));
    assert!(monitor.render_metrics().unwrap().contains(
        r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/a",http_response_status_code="200"} 1000"#
    ));
    drop(monitor);
    assert_eq!(upkeep_threads(), 1, "a clone keeps the monitor alive");
    drop(second);
    wait_for("the upkeep thread stops", || upkeep_threads() == 0);
}
