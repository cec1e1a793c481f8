//! An idle monitor wakes no thread: the health thread and the event-loop probe sleep while
//! they have nothing to do (own test binary: threads are told apart by name).
#![cfg(all(feature = "stats", target_os = "linux"))]

use std::time::{Duration, Instant};

use vitalsign_core::adapter::RequestStart;
use vitalsign_core::health::{Condition, Rule, Signal, HEALTH_THREAD};
use vitalsign_core::Monitor;

/// The application's runtime thread.
const APP_THREAD: &str = "idle-app";

/// How many times the threads named `name` went to sleep (voluntary context switches): each
/// wake-up of a thread ends in one.
fn sleeps(name: &str) -> u64 {
    let short = &name[..name.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let path = t.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            if comm.trim_end() != short {
                return None;
            }
            std::fs::read_to_string(path.join("status"))
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn both() -> (u64, u64) {
    (sleeps(HEALTH_THREAD), sleeps(APP_THREAD))
}

fn request(monitor: &Monitor) {
    let mut flight = vitalsign_core::adapter::begin(
        monitor,
        RequestStart::new(b"GET", "/x").with_route(Some("/x")),
    );
    flight.set_status(200);
    flight.complete();
}

/// Regression (review item 18): an idle service with vitalsign used 0.30 s of CPU a minute:
/// a probe woke the application's runtime every 20 ms and the health thread ticked every
/// 100 ms with nothing to evaluate. After traffic stops, neither wakes any more.
#[test]
fn an_idle_monitor_wakes_no_thread() {
    let monitor = Monitor::builder("idle")
        // Deadlines of their own, out of the way: the stats window and the exporter's upkeep.
        .collection_interval(Duration::from_secs(3600))
        .upkeep_interval(Duration::from_secs(3600))
        .probe_interval(Duration::from_millis(10))
        // A rule, as the demo has: evaluated while its window holds requests.
        .rule(
            "http",
            Rule::new(Signal::ServerErrorRatio, Condition::Above(0.5))
                .window(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = {
        let monitor = monitor.clone();
        std::thread::Builder::new()
            .name(APP_THREAD.into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    vitalsign_core::adapter::probe_runtime(&monitor);
                    for _ in 0..20 {
                        request(&monitor);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    let _ = stopped.await;
                });
            })
            .unwrap()
    };
    // Traffic is over once the requests have left the rule's window and the probe has seen a
    // period without a request: then nothing wakes either thread for half a second.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = both();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = both();
        if now == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still waking (health thread, application runtime): {last:?} -> {now:?}"
        );
        last = now;
    }
    assert!(last.0 > 0 && last.1 > 0, "both threads were seen: {last:?}");
    // And for two more seconds.
    std::thread::sleep(Duration::from_secs(2));
    let now = both();
    assert!(
        now.0 - last.0 <= 1 && now.1 - last.1 <= 1,
        "an idle monitor woke (health thread, application runtime): {last:?} -> {now:?}"
    );
    // A request wakes them again, and the monitor still answers for it.
    let _ = stop.send(());
    app.join().unwrap();
    request(&monitor);
    let deadline = Instant::now() + Duration::from_secs(10);
    while monitor.health().components["http"].meta.as_ref().unwrap()["requests"] != 1 {
        assert!(
            Instant::now() < deadline,
            "the rule was not evaluated after a request"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
