//! The health model through the public API: checks, hysteresis, timeouts, panics, staleness,
//! task thresholds, rules on the request stream, drain, token, JSON formats, watchers.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vitalsign_core::adapter::RequestStart;
use vitalsign_core::endpoint::{EndpointRequest, HEALTH_JSON_CONTENT_TYPE};
use vitalsign_core::health::{Check, Condition, Level, Rule, Signal, Task, TaskStatus};
use vitalsign_core::{Monitor, MonitorBuilder};

const FAST: Duration = Duration::from_millis(20);

fn level(monitor: &Monitor, component: &str) -> Level {
    monitor.health().components[component].level
}

/// Waits (up to 10 s) until `component` has `want`.
async fn wait_level(monitor: &Monitor, component: &str, want: Level) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while level(monitor, component) != want {
        assert!(
            Instant::now() < deadline,
            "{component} stayed {:?} ({}), wanted {want:?}",
            level(monitor, component),
            monitor.health().components[component].summary
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

fn flag_check(up: &Arc<AtomicBool>) -> Check {
    let up = up.clone();
    Check::new(move || {
        let up = up.load(Ordering::SeqCst);
        async move {
            if up {
                Ok(())
            } else {
                Err("dependency refused")
            }
        }
    })
    .interval(FAST)
}

#[tokio::test]
async fn a_check_flips_the_service_and_readiness_and_recovers() {
    let up = Arc::new(AtomicBool::new(true));
    let monitor = Monitor::builder("s")
        .check("db", flag_check(&up))
        .build()
        .unwrap();
    wait_level(&monitor, "db", Level::Available).await;
    assert!(monitor.is_ready());
    assert_eq!(
        monitor
            .health_endpoint(&EndpointRequest::default(), None)
            .status,
        200
    );

    up.store(false, Ordering::SeqCst);
    wait_level(&monitor, "db", Level::Unavailable).await;
    let snapshot = monitor.health();
    assert_eq!(snapshot.overall, Level::Unavailable);
    assert!(
        snapshot
            .summary
            .contains("db is unavailable (dependency refused)"),
        "{}",
        snapshot.summary
    );
    assert!(!snapshot.ready);
    assert_eq!(
        monitor
            .health_endpoint(&EndpointRequest::default(), None)
            .status,
        503
    );
    let ready = monitor.ready_endpoint();
    assert_eq!(ready.status, 503);
    assert!(
        ready
            .text()
            .unwrap()
            .contains("critical components unavailable: db"),
        "{}",
        ready.text().unwrap()
    );
    assert_eq!(
        monitor.live_endpoint().status,
        200,
        "liveness never depends on a check"
    );

    up.store(true, Ordering::SeqCst);
    wait_level(&monitor, "db", Level::Available).await;
    assert!(monitor.is_ready());
}

#[tokio::test]
async fn readiness_waits_for_the_first_result_of_critical_checks() {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let monitor = Monitor::builder("s")
        .check(
            "slow_start",
            Check::new(move || {
                let gate = gate.clone();
                async move {
                    gate.notified().await;
                    Ok::<(), String>(())
                }
            })
            .interval(FAST)
            .timeout(Duration::from_secs(30)),
        )
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ready = monitor.ready_endpoint();
    assert_eq!(ready.status, 503);
    assert!(
        ready
            .text()
            .unwrap()
            .contains("waiting for a first result from: slow_start"),
        "{}",
        ready.text().unwrap()
    );
    release.notify_one();
    wait_level(&monitor, "slow_start", Level::Available).await;
    assert_eq!(monitor.ready_endpoint().status, 200);
}

#[tokio::test]
async fn fall_and_rise_need_consecutive_results() {
    let up = Arc::new(AtomicBool::new(true));
    let runs = Arc::new(AtomicU32::new(0));
    let (u, r) = (up.clone(), runs.clone());
    let check = Check::new(move || {
        r.fetch_add(1, Ordering::SeqCst);
        let up = u.load(Ordering::SeqCst);
        async move {
            if up {
                Ok(())
            } else {
                Err("down")
            }
        }
    })
    .interval(FAST)
    .fall(3)
    .rise(2);
    let monitor = Monitor::builder("s").check("db", check).build().unwrap();
    wait_level(&monitor, "db", Level::Available).await;
    let mut watch = monitor.watch_level(Some("db")).unwrap();
    watch.borrow_and_update();
    up.store(false, Ordering::SeqCst);
    let failing_since = runs.load(Ordering::SeqCst);
    wait_level(&monitor, "db", Level::Unavailable).await;
    assert!(
        runs.load(Ordering::SeqCst) - failing_since >= 3,
        "went down before 3 failures"
    );
    watch.changed().await.unwrap();
    assert_eq!(
        *watch.borrow_and_update(),
        Level::Unavailable,
        "the watcher saw the transition"
    );
    up.store(true, Ordering::SeqCst);
    let rising_since = runs.load(Ordering::SeqCst);
    wait_level(&monitor, "db", Level::Available).await;
    assert!(
        runs.load(Ordering::SeqCst) - rising_since >= 2,
        "came back before 2 successes"
    );
}

/// Regression (review item 13): this test checked `/health/live` 100 ms after the panic, when
/// liveness could only fail after 5 s. Now it waits for the check to run again after its
/// panics, and liveness says at once when the health thread has ended.
#[tokio::test]
async fn a_panicking_check_is_contained_and_reported() {
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let monitor = Monitor::builder("s")
        .check(
            "boom",
            Check::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async {
                    panic!("the check exploded");
                    #[allow(unreachable_code)]
                    Ok::<(), String>(())
                }
            })
            .interval(FAST),
        )
        .check(
            "fine",
            Check::new(|| async { Ok::<(), String>(()) }).interval(FAST),
        )
        .build()
        .unwrap();
    wait_level(&monitor, "boom", Level::Unavailable).await;
    wait_level(&monitor, "fine", Level::Available).await;
    let summary = monitor.health().components["boom"].summary.clone();
    assert!(
        summary.contains("check panicked: the check exploded"),
        "{summary}"
    );
    // It keeps running: the panics are caught and the check runs again, on a live thread.
    let after = runs.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while runs.load(Ordering::SeqCst) < after + 3 {
        assert!(
            Instant::now() < deadline,
            "the check stopped running after panicking"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live = monitor.live_endpoint();
    assert_eq!(live.status, 200, "{}", live.text().unwrap());
}

#[tokio::test]
async fn a_hanging_check_times_out_and_never_delays_a_probe() {
    let monitor = Monitor::builder("s")
        .check(
            "hang",
            Check::new(|| async {
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            })
            .interval(Duration::from_millis(200))
            .timeout(Duration::from_millis(300)),
        )
        .build()
        .unwrap();
    // While the check hangs, probes answer from the snapshot.
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let started = Instant::now();
        let page = monitor.health_endpoint(&EndpointRequest::default(), None);
        slowest = slowest.max(started.elapsed());
        assert_eq!(page.status, 503, "pending check: unavailable");
    }
    println!("slowest /health answer while a check hangs: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(250),
        "a probe waited on the check: {slowest:?}"
    );
    wait_level(&monitor, "hang", Level::Unavailable).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !monitor.health().components["hang"]
        .summary
        .contains("timed out after 300 ms")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            monitor.health().components["hang"].summary
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_check_that_blocks_its_thread_goes_stale() {
    let first = Arc::new(AtomicBool::new(true));
    let check = Check::new(move || {
        let first = first.swap(false, Ordering::SeqCst);
        async move {
            if !first {
                // Wrong: blocking the health thread. Staleness must still show.
                std::thread::sleep(Duration::from_secs(3));
            }
            Ok::<(), String>(())
        }
    })
    .interval(Duration::from_millis(50));
    let monitor = Monitor::builder("s")
        .check("blocker", check)
        .build()
        .unwrap();
    wait_level(&monitor, "blocker", Level::Available).await;
    wait_level(&monitor, "blocker", Level::Unavailable).await;
    let summary = monitor.health().components["blocker"].summary.clone();
    assert!(summary.starts_with("stale: no result for"), "{summary}");
}

#[tokio::test]
async fn task_statuses_count_toward_a_threshold() {
    let monitor = Monitor::builder("s")
        .task("ingest", Task::new().threshold(3))
        .task_classifier(|e: &(dyn std::error::Error + 'static)| {
            if e.to_string().contains("schema") {
                TaskStatus::Fatal
            } else {
                vitalsign_core::health::ClassifyTaskError::classify(
                    &vitalsign_core::health::DefaultTaskClassifier,
                    e,
                )
            }
        })
        .build()
        .unwrap();
    assert_eq!(level(&monitor, "ingest"), Level::Available);
    let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    assert_eq!(
        monitor.report_task_error("ingest", &refused),
        Ok(TaskStatus::ConnectionError)
    );
    assert_eq!(level(&monitor, "ingest"), Level::Degraded);
    monitor
        .report_task("ingest", TaskStatus::OtherException)
        .unwrap();
    assert_eq!(level(&monitor, "ingest"), Level::Degraded);
    monitor.report_task("ingest", TaskStatus::Internal).unwrap();
    assert_eq!(level(&monitor, "ingest"), Level::Unavailable);
    let summary = monitor.health().components["ingest"].summary.clone();
    assert!(
        summary.contains("3 consecutive failed runs (threshold 3), last: internal"),
        "{summary}"
    );
    monitor
        .report_task_result::<(), std::io::Error>("ingest", &Ok(()))
        .unwrap();
    assert_eq!(level(&monitor, "ingest"), Level::Available);
    let schema = std::io::Error::other("schema mismatch");
    assert_eq!(
        monitor.report_task_error("ingest", &schema),
        Ok(TaskStatus::Fatal)
    );
    assert_eq!(
        level(&monitor, "ingest"),
        Level::Unavailable,
        "fatal at once"
    );
    assert!(monitor.report_task("nope", TaskStatus::Ok).is_err());
    // A non-critical task never makes the service unavailable.
    assert_eq!(monitor.health().overall, Level::Degraded);
    assert_eq!(
        monitor
            .health_endpoint(&EndpointRequest::default(), None)
            .status,
        200
    );
}

/// A request to `/x` in flight.
fn begin(monitor: &Monitor) -> vitalsign_core::adapter::Flight {
    vitalsign_core::adapter::begin(
        monitor,
        RequestStart::new(b"GET", "/x").with_route(Some("/x")),
    )
}

fn request(monitor: &Monitor, status: u16) {
    let mut flight = begin(monitor);
    flight.set_status(status);
    flight.complete();
}

fn rule_monitor(rule: Rule) -> Monitor {
    Monitor::builder("s").rule("http", rule).build().unwrap()
}

#[tokio::test]
async fn an_error_ratio_rule_degrades_and_clears_when_the_window_passes() {
    let monitor = rule_monitor(
        Rule::new(Signal::ServerErrorRatio, Condition::Above(0.5))
            .window(Duration::from_secs(1))
            .min_requests(10),
    );
    for _ in 0..6 {
        request(&monitor, 500);
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        level(&monitor, "http"),
        Level::Available,
        "6 requests: too few to judge"
    );
    for _ in 0..4 {
        request(&monitor, 200);
    }
    wait_level(&monitor, "http", Level::Degraded).await;
    let status = monitor.health().components["http"].clone();
    assert!(
        status.summary.starts_with("5xx ratio 0.600 above 0.5"),
        "{}",
        status.summary
    );
    assert_eq!(status.meta.unwrap()["requests"], 10);
    wait_level(&monitor, "http", Level::Available).await;
}

#[tokio::test]
async fn absent_latency_and_rate_rules() {
    let absent = rule_monitor(
        Rule::new(Signal::RequestRate, Condition::Absent)
            .window(Duration::from_secs(1))
            .level(Level::Unavailable)
            .critical(true),
    );
    wait_level(&absent, "http", Level::Unavailable).await;
    assert_eq!(
        absent
            .health_endpoint(&EndpointRequest::default(), None)
            .status,
        503
    );
    request(&absent, 200);
    wait_level(&absent, "http", Level::Available).await;

    let slow = rule_monitor(
        Rule::new(Signal::LatencyQuantile(0.9), Condition::Above(0.05))
            .window(Duration::from_secs(5)),
    );
    let mut flight = begin(&slow);
    std::thread::sleep(Duration::from_millis(120));
    flight.set_status(200);
    flight.complete();
    wait_level(&slow, "http", Level::Degraded).await;

    let quiet = rule_monitor(
        Rule::new(Signal::RequestRate, Condition::Below(100.0))
            .window(Duration::from_secs(1))
            .hold(Duration::from_millis(300)),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        level(&quiet, "http"),
        Level::Available,
        "held for less than 300 ms"
    );
    wait_level(&quiet, "http", Level::Degraded).await;
}

/// The level of every component.
fn levels(snapshot: &vitalsign_core::health::HealthSnapshot) -> Vec<(String, Level)> {
    snapshot
        .components
        .iter()
        .map(|(name, status)| (name.clone(), status.level))
        .collect()
}

/// Regression (review item 5): a rule's window summed the current partial second plus
/// `seconds - 1` whole ones, so a 1 s window held 0 to 1 s of requests: at every second
/// boundary `Absent` fired and the request rate dropped (divided by the whole window however
/// little it covered), each flip logged and sent to watchers. Under a steady 50 requests/s
/// for 5 s, no level changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_never_flips_rate_or_absent_rules() {
    let rate = |seconds| {
        Rule::new(Signal::RequestRate, Condition::Below(10.0)).window(Duration::from_secs(seconds))
    };
    let absent = |seconds| {
        Rule::new(Signal::RequestRate, Condition::Absent).window(Duration::from_secs(seconds))
    };
    let monitor = Monitor::builder("s")
        .rule("rate_1s", rate(1))
        .rule("rate_10s", rate(10))
        .rule("absent_1s", absent(1))
        .rule("absent_10s", absent(10))
        .build()
        .unwrap();
    let sending = Arc::new(AtomicBool::new(true));
    let traffic = tokio::spawn({
        let (monitor, sending) = (monitor.clone(), sending.clone());
        async move {
            let mut pace = tokio::time::interval(Duration::from_millis(20));
            while sending.load(Ordering::SeqCst) {
                pace.tick().await;
                request(&monitor, 200);
            }
        }
    });
    // The rate rules start degraded (no traffic yet); all four are available once it flows.
    for name in ["rate_1s", "rate_10s", "absent_1s", "absent_10s"] {
        wait_level(&monitor, name, Level::Available).await;
    }
    let mut watch = monitor.health_watch();
    let mut last = levels(&watch.borrow_and_update());
    let (mut snapshots, mut flips) = (0, Vec::new());
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(changed) = tokio::time::timeout_at(end, watch.changed()).await {
        changed.unwrap();
        let snapshot = watch.borrow_and_update().clone();
        snapshots += 1;
        let now = levels(&snapshot);
        if now != last {
            flips.push(snapshot.summary.clone());
            last = now;
        }
    }
    sending.store(false, Ordering::SeqCst);
    traffic.await.unwrap();
    assert!(snapshots > 0, "the rules were evaluated during the traffic");
    assert!(
        flips.is_empty(),
        "levels changed under steady traffic: {flips:?}"
    );
    let last = monitor.health();
    let seen = last.components["rate_1s"].meta.as_ref().unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!(seen > 10.0, "the 1 s rate rule saw the traffic: {seen}");
}

#[tokio::test]
async fn shutdown_flips_readiness_first_then_waits_for_in_flight_requests() {
    let monitor = Monitor::builder("s").build().unwrap();
    assert!(monitor.is_ready());
    let mut flight = begin(&monitor);
    let drain = tokio::spawn({
        let monitor = monitor.clone();
        async move { monitor.shutdown(Duration::from_secs(10)).await }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while monitor.is_ready() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = monitor.ready_endpoint();
    assert_eq!(
        (
            ready.status,
            json(ready.text().unwrap())["summary"].as_str()
        ),
        (503, Some("draining"))
    );
    assert!(!drain.is_finished(), "still waiting for the request");
    tokio::time::sleep(Duration::from_millis(100)).await;
    flight.set_status(200);
    flight.complete();
    let report = drain.await.unwrap();
    assert_eq!(report.cut, 0);
    assert!(report.waited >= Duration::from_millis(100));

    let cut_short = Monitor::builder("s").build().unwrap();
    let _stuck = begin(&cut_short);
    let report = cut_short.shutdown(Duration::from_millis(50)).await;
    assert_eq!(report.cut, 1);
}

#[tokio::test]
async fn a_token_guards_details_metrics_and_components() {
    let monitor = Monitor::builder("s")
        .version("1.2.3")
        .task("ingest", Task::new())
        .token("s3cret")
        .build()
        .unwrap();
    monitor
        .report_task("ingest", TaskStatus::ConnectionError)
        .unwrap();
    let anonymous = EndpointRequest::default();
    let wrong = EndpointRequest {
        authorization: Some(b"Bearer s3cre"),
        accept: None,
    };
    let right = EndpointRequest {
        authorization: Some(b"Bearer s3cret"),
        accept: None,
    };

    let page = monitor.health_endpoint(&anonymous, None);
    assert_eq!(page.status, 200);
    let body = json(page.text().unwrap());
    assert_eq!(
        body["status"]["overall"],
        serde_json::json!({ "level": "degraded" })
    );
    assert!(body["status"].get("statuses").is_none(), "{body}");
    assert!(!page.text().unwrap().contains("connection_error"));

    for request in [&anonymous, &wrong] {
        for page in [
            monitor.metrics_endpoint(request),
            monitor.health_endpoint(request, Some("ingest")),
        ] {
            assert_eq!(page.status, 401);
            assert!(page
                .headers
                .contains(&("www-authenticate", "Bearer realm=\"vitalsign\"")));
        }
    }
    assert_eq!(monitor.metrics_endpoint(&right).status, 200);
    let page = monitor.health_endpoint(&right, None);
    let body = json(page.text().unwrap());
    assert_eq!(body["name"], "s");
    assert_eq!(body["version"], "1.2.3");
    assert_eq!(body["status"]["statuses"]["ingest"]["level"], "degraded");
    assert_eq!(
        body["status"]["statuses"]["ingest"]["meta"]["last_status"],
        "connection_error"
    );
    let one = monitor.health_endpoint(&right, Some("ingest"));
    assert_eq!(
        (one.status, json(one.text().unwrap())["level"].as_str()),
        (200, Some("degraded"))
    );
    assert_eq!(monitor.health_endpoint(&right, Some("nope")).status, 404);
    // Probes stay open.
    assert_eq!(monitor.live_endpoint().status, 200);
    assert_eq!(monitor.ready_endpoint().status, 200);
    assert!(
        !format!("{monitor:?}").contains("s3cret"),
        "the token is never printed"
    );
}

#[tokio::test]
async fn health_json_and_headers() {
    let up = Arc::new(AtomicBool::new(false));
    let monitor = Monitor::builder("svc")
        .version("9")
        .check("db", flag_check(&up))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !monitor.health().pending.is_empty() {
        assert!(Instant::now() < deadline, "no first result");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let accept = EndpointRequest {
        authorization: None,
        accept: Some(b"application/health+json, */*"),
    };
    let page = monitor.health_endpoint(&accept, None);
    assert_eq!(
        (page.status, page.content_type),
        (503, HEALTH_JSON_CONTENT_TYPE)
    );
    assert!(page.headers.contains(&("cache-control", "no-store")));
    let body = json(page.text().unwrap());
    assert_eq!(body["status"], "fail");
    assert_eq!(body["version"], "9");
    assert_eq!(body["serviceId"], "svc");
    assert_eq!(body["checks"]["db"][0]["status"], "fail");
    assert_eq!(body["checks"]["db"][0]["output"], "dependency refused");
    let kibana = json(
        monitor
            .health_endpoint(&EndpointRequest::default(), None)
            .text()
            .unwrap(),
    );
    assert_eq!(kibana["status"]["overall"]["level"], "unavailable");
    assert_eq!(
        kibana["status"]["statuses"]["db"]["summary"],
        "dependency refused"
    );
}

#[test]
fn component_names_are_checked() {
    let check = || Check::new(|| async { Ok::<(), String>(()) });
    for bad in [
        "",
        "overall",
        "live",
        "ready",
        "has space",
        "a/b",
        &"x".repeat(65),
    ] {
        assert!(
            Monitor::builder("s").check(bad, check()).build().is_err(),
            "{bad:?}"
        );
    }
    let twice = Monitor::builder("s")
        .check("db", check())
        .task("db", Task::new());
    assert!(twice
        .build()
        .unwrap_err()
        .to_string()
        .contains("registered twice"));
    let bad_q = Rule::new(Signal::LatencyQuantile(1.5), Condition::Above(1.0));
    assert!(MonitorBuilder::new("s").rule("r", bad_q).build().is_err());
}

#[cfg(feature = "prometheus")]
#[tokio::test]
async fn the_health_gauge_follows_every_component() {
    let up = Arc::new(AtomicBool::new(true));
    let monitor = Monitor::builder("s")
        .check("db", flag_check(&up))
        .task("ingest", Task::new())
        .build()
        .unwrap();
    wait_level(&monitor, "db", Level::Available).await;
    let text = monitor.render_metrics().unwrap();
    assert!(
        text.contains("service_health_status{component=\"db\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("service_health_status{component=\"ingest\"} 2"),
        "{text}"
    );
    up.store(false, Ordering::SeqCst);
    monitor.report_task("ingest", TaskStatus::Unknown).unwrap();
    wait_level(&monitor, "db", Level::Unavailable).await;
    let text = monitor.render_metrics().unwrap();
    assert!(
        text.contains("service_health_status{component=\"db\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("service_health_status{component=\"ingest\"} 1"),
        "{text}"
    );
}
