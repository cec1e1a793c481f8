//! `/stats` of the demo over real HTTP on 127.0.0.1, on axum and on actix-web: exact request
//! figures (cumulative and window), process and OS figures, event-loop delay, custom stats,
//! the token rule.

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use demo::{Ctx, Framework, BOTH};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INTERVAL: Duration = Duration::from_secs(3);

async fn stats(ctx: &Ctx) -> Value {
    let (status, body) = ctx.server.get("/stats").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn start(framework: Framework) -> Ctx {
    demo::start(
        framework,
        app::monitor_builder()
            .unwrap()
            .collection_interval(INTERVAL),
    )
    .await
}

/// Waits until the window closes (its `to` changes).
async fn next_window(ctx: &Ctx) -> Value {
    let before = stats(ctx).await["window"]["to"].clone();
    let deadline = Instant::now() + INTERVAL * 3;
    loop {
        let now = stats(ctx).await;
        if now["window"]["to"] != before {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: the window never closed",
            ctx.framework
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The request figures the collecting sink saw, computed as `/stats` computes them.
fn expected(ctx: &Ctx) -> (Value, Value) {
    let points = ctx.sink.requests();
    let micros: Vec<u64> = points
        .iter()
        .map(|p| (p.execution_time * 1e6) as u64)
        .collect();
    let total = points.len() as u64;
    let mut codes = BTreeMap::new();
    for p in &points {
        *codes.entry(p.status_code.to_string()).or_insert(0u64) += 1;
    }
    let disconnects = points.iter().filter(|p| p.disconnected).count() as u64;
    let requests = json!({ "total": total, "disconnects": disconnects, "status_codes": codes });
    let avg = micros.iter().sum::<u64>() as f64 / total as f64 / 1000.0;
    let max = *micros.iter().max().unwrap() as f64 / 1000.0;
    (
        requests,
        json!({ "avg_in_millis": avg, "max_in_millis": max }),
    )
}

async fn known_mix(ctx: &Ctx) {
    for id in 0..5 {
        assert_eq!(ctx.server.get(&format!("/users/{id}")).await.0, 200);
    }
    for _ in 0..3 {
        assert_eq!(ctx.server.get("/error").await.0, 500);
    }
    for _ in 0..2 {
        assert_eq!(ctx.server.get("/no/such/page").await.0, 404);
    }
    assert_eq!(ctx.server.get("/slow?ms=150").await.0, 200);
    // A client that hangs up in the middle of the stream.
    let mut stream = tokio::net::TcpStream::connect(ctx.server.addr)
        .await
        .unwrap();
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 512];
    let _ = stream.read(&mut head).await.unwrap();
    drop(stream);
    all_recorded(&ctx.monitor, "the mix is recorded").await;
}

/// Response times agree to the last few bits (serde_json's float parsing is not always
/// correctly rounded, so the same f64 may come back one ulp apart).
fn assert_times(got: &Value, want: &Value, what: &str) {
    for key in ["avg_in_millis", "max_in_millis"] {
        let (g, w) = (got[key].as_f64().unwrap(), want[key].as_f64().unwrap());
        assert!((g - w).abs() <= w.abs() * 1e-12, "{what} {key}: {g} != {w}");
    }
}

async fn exact_request_figures(framework: Framework) {
    let ctx = start(framework).await;
    // Start right after a window closed, so that the whole mix falls in the next one.
    next_window(&ctx).await;
    known_mix(&ctx).await;
    let (requests, response_times) = expected(&ctx);
    assert_eq!(requests["total"], 12);
    assert_eq!(requests["disconnects"], 1);
    assert_eq!(
        requests["status_codes"],
        json!({ "200": 7, "404": 2, "500": 3 })
    );
    assert!(response_times["max_in_millis"].as_f64().unwrap() >= 150.0);

    let cumulative = stats(&ctx).await;
    assert_eq!(cumulative["requests"], requests, "{framework:?} cumulative");
    assert_times(
        &cumulative["response_times"],
        &response_times,
        &format!("{framework:?} cumulative"),
    );
    assert_eq!(cumulative["concurrent_connections"], 0);
    assert_eq!(
        cumulative["collection_interval_in_millis"],
        INTERVAL.as_millis() as u64
    );

    let closed = next_window(&ctx).await;
    assert_eq!(
        closed["window"]["requests"], requests,
        "{framework:?} window"
    );
    assert_times(
        &closed["window"]["response_times"],
        &response_times,
        &format!("{framework:?} window"),
    );
    assert_eq!(
        closed["requests"], requests,
        "cumulative unchanged by the window closing"
    );
    assert_eq!(closed["last_updated"], closed["window"]["to"]);

    // Nothing resets silently: the next window is empty, the cumulative figures stay.
    let later = next_window(&ctx).await;
    assert_eq!(later["window"]["requests"]["total"], 0);
    assert_eq!(later["requests"], requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_figures_match_what_was_sent_in_the_window_and_cumulatively() {
    tokio::join!(
        exact_request_figures(Framework::Axum),
        exact_request_figures(Framework::Actix)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_and_os_figures_are_positive() {
    for framework in BOTH {
        let ctx = start(framework).await;
        let s = stats(&ctx).await;
        assert_eq!(s["process"]["pid"], std::process::id());
        assert!(s["process"]["uptime_in_millis"].as_u64().is_some());
        if cfg!(target_os = "linux") {
            for path in [
                &s["process"]["memory"]["heap"]["used_in_bytes"],
                &s["process"]["memory"]["heap"]["total_in_bytes"],
                &s["process"]["memory"]["heap"]["size_limit"],
                &s["process"]["memory"]["resident_set_size_in_bytes"],
                &s["os"]["memory"]["total_in_bytes"],
                &s["os"]["memory"]["free_in_bytes"],
                &s["os"]["memory"]["used_in_bytes"],
                &s["os"]["uptime_in_millis"],
                &s["os"]["cpus"],
            ] {
                assert!(
                    path.as_u64().is_some_and(|v| v > 0),
                    "{framework:?}: {path} in {s}"
                );
            }
            assert_eq!(s["os"]["platform"], "linux");
            assert!(!s["os"]["platformRelease"].as_str().unwrap().is_empty());
            for load in ["1m", "5m", "15m"] {
                assert!(
                    s["os"]["load"][load].as_f64().is_some_and(|v| v >= 0.0),
                    "{s}"
                );
            }
        }
        assert!(
            s["runtime"]["workers"].as_u64().unwrap() >= 1,
            "{framework:?}: {s}"
        );
    }
}

fn delay_max(stats: &Value) -> f64 {
    stats["process"]["event_loop_delay_histogram"]["max"]
        .as_f64()
        .unwrap_or_else(|| panic!("no event-loop delay maximum: {stats}"))
}

/// Waits until a window closes after the one that closed at `to`.
async fn window_after(ctx: &Ctx, to: &Value) -> Value {
    let deadline = Instant::now() + INTERVAL * 3;
    loop {
        let now = stats(ctx).await;
        if now["window"]["to"] != *to {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: the window never closed",
            ctx.framework
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Blocks one worker thread for 300 ms with one request; returns the event-loop delay maximum
/// of the window in which the block ended, and of the quiet window before.
async fn one_blocked_worker(framework: Framework) -> (f64, f64) {
    let ctx = start(framework).await;
    assert_eq!(ctx.server.get("/users/1").await.0, 200); // the probes start with requests
    let quiet = next_window(&ctx).await;
    let before = quiet["window"]["to"].clone();
    assert_eq!(ctx.server.get("/block?ms=300").await.0, 200);
    // The blocking poll ended before the response left: in the window open then, which is
    // the one shown now if it has closed meanwhile, or else the next one to close.
    let now = stats(&ctx).await;
    let mut max = 0.0f64;
    if now["window"]["to"] != before {
        max = delay_max(&now);
    }
    let next = window_after(&ctx, &now["window"]["to"]).await;
    let histogram = &next["process"]["event_loop_delay_histogram"];
    for p in ["50", "75", "95", "99"] {
        assert!(
            histogram["percentiles"][p].as_f64().is_some(),
            "{histogram}"
        );
    }
    (max.max(delay_max(&next)), delay_max(&quiet))
}

/// Regression (review item 17): on axum, a handler blocking one of two Tokio workers for
/// 300 ms left the window's maximum event-loop delay at about 1 ms (the probe task ran on the
/// other worker); only blocking every worker showed. Now every poll of a request's handler
/// and body is timed, so one blocked worker shows on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_blocked_worker_shows_in_the_event_loop_delay() {
    let (axum, actix) = tokio::join!(
        one_blocked_worker(Framework::Axum),
        one_blocked_worker(Framework::Actix)
    );
    println!(
        "event-loop delay max after blocking one worker 300 ms: axum {:.1} ms (quiet {:.1}), actix {:.1} ms (quiet {:.1})",
        axum.0, axum.1, actix.0, actix.1
    );
    for (framework, (max, quiet)) in [("axum", axum), ("actix", actix)] {
        assert!(
            max >= 250.0,
            "{framework}: max delay {max} ms after blocking one worker 300 ms (quiet: {quiet} ms)"
        );
    }
}

/// CPU time this process has used, from `/proc/self/stat` (user + system, in USER_HZ = 100
/// ticks a second).
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Spins on this thread until it has burnt `cpu` of CPU time or more.
fn burn(cpu: f64) {
    let target = own_cpu_seconds() + cpu;
    let mut x = 0u64;
    while own_cpu_seconds() < target {
        for i in 0..100_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
}

/// Regression (review item 16): `process_cpu_seconds_total` was written in whole seconds (0
/// while the process had used 0.61 s), so `rate()` over it was useless on a lightly loaded
/// service. It keeps its counter type and now has the precision of `/proc` (10 ms).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_cpu_seconds_are_fractional() {
    for framework in BOTH {
        let ctx = start(framework).await;
        tokio::task::block_in_place(|| burn(0.3));
        // A whole number of seconds happens by chance once in a hundred: burn a little more
        // then, until a fractional value shows (always whole before the fix).
        let mut values = Vec::new();
        for _ in 0..10 {
            let before = own_cpu_seconds();
            let m = ctx.server.metrics().await;
            let after = own_cpu_seconds();
            let cpu = m.get("process_cpu_seconds_total", &[]).unwrap();
            assert!(
                cpu >= before - 1e-9 && cpu <= after + 1e-9,
                "{framework:?}: {cpu} s, /proc said {before} s then {after} s"
            );
            assert!(
                m.text
                    .contains("# TYPE process_cpu_seconds_total counter\n"),
                "still a counter"
            );
            values.push(cpu);
            if cpu.fract() != 0.0 {
                break;
            }
            tokio::task::block_in_place(|| burn(0.01));
        }
        let last = *values.last().unwrap();
        assert!(
            last >= 0.3 - 1e-9 && last.fract() != 0.0,
            "{framework:?}: process_cpu_seconds_total read {values:?}"
        );
        promtool_check(&ctx.server.metrics().await.text);
    }
}

/// Regression (review item 20): during the first collection interval `window` had no
/// `requests` nor `response_times` and a null `to`; a client crashed on it. It has the shape
/// of every later window from the start, with zeros (and the event-loop figures are an
/// object of zeros until something is measured).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_has_its_shape_from_the_start() {
    fn shape(value: &Value) -> Value {
        match value {
            Value::Object(map)
                if map.keys().all(|k| k.parse::<u16>().is_ok()) && !map.is_empty() =>
            {
                json!("codes")
            }
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
            }
            Value::Number(_) => json!("number"),
            Value::String(_) => json!("string"),
            other => other.clone(),
        }
    }
    for framework in BOTH {
        // Long enough that the first interval cannot close during the test.
        let first = demo::start(
            framework,
            app::monitor_builder()
                .unwrap()
                .collection_interval(Duration::from_secs(3600)),
        )
        .await;
        let s = stats(&first).await;
        let window = &s["window"];
        assert_eq!(
            (&window["requests"], &window["response_times"]),
            (
                &json!({ "total": 0, "disconnects": 0, "status_codes": {} }),
                &json!({ "avg_in_millis": 0.0, "max_in_millis": 0.0 })
            ),
            "{framework:?}: {window}"
        );
        assert!(
            window["from"].is_string() && window["from"] == window["to"],
            "{window}"
        );
        assert_eq!(
            s["process"]["event_loop_delay_histogram"]["max"], 0.0,
            "{framework:?}: nothing measured yet: {s}"
        );
        // The same shape as a window that closed with requests in it.
        let ctx = start(framework).await;
        known_mix(&ctx).await;
        let closed = next_window(&ctx).await;
        let (mut early, mut later) = (shape(&s), shape(&closed));
        for doc in [&mut early, &mut later] {
            // Figures of their own kind: custom stats and sinks vary with the test.
            doc["window"]["requests"]["status_codes"] = json!("codes");
        }
        assert_eq!(early["window"], later["window"], "{framework:?}");
        assert_eq!(
            early["process"]["event_loop_delay_histogram"],
            later["process"]["event_loop_delay_histogram"],
            "{framework:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_stats_round_trip_to_json_and_metrics() {
    for framework in BOTH {
        let ctx = start(framework).await;
        let custom = ctx.monitor.custom_stats();
        assert!(custom.inc("jobs", "done", 2));
        assert!(custom.inc("jobs", "done", 1));
        assert!(custom.set("queue", "depth", 7.5));
        for id in ["a", "b", "c", "d"] {
            assert!(custom.append("jobs", "recent", id, 3));
        }
        assert!(custom.insert("build", "commit", "4f2c1e0"));
        assert!(custom.insert("build", "branch", "main"));
        assert!(custom.remove("build", "branch"));
        let s = stats(&ctx).await;
        assert_eq!(
            s["custom"],
            json!({
                "build": { "commit": "4f2c1e0" },
                "jobs": { "done": 3, "recent": ["b", "c", "d"] },
                "queue": { "depth": 7.5 },
            }),
            "{framework:?}"
        );
        let m = ctx.server.metrics().await;
        assert_eq!(
            m.get(
                "vitalsign_custom_total",
                &[("section", "jobs"), ("key", "done")]
            ),
            Some(3.0)
        );
        assert_eq!(
            m.get(
                "vitalsign_custom",
                &[("section", "queue"), ("key", "depth")]
            ),
            Some(7.5)
        );
        assert_eq!(
            m.get(
                "vitalsign_custom",
                &[("section", "jobs"), ("key", "recent")]
            ),
            Some(3.0)
        );
        for family in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
            "process_max_fds",
            "process_threads",
            "tokio_workers",
            "tokio_event_loop_delay_seconds",
        ] {
            assert!(
                m.text.contains(&format!("# HELP {family} ")),
                "{family} has no HELP"
            );
            assert!(!m.matching(family, &[]).is_empty(), "{family} missing");
        }
        promtool_check(&m.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_obeys_the_token() {
    for framework in BOTH {
        let options = app::HealthOptions {
            token: Some("st4ts".into()),
            ..app::HealthOptions::default()
        };
        let ctx = demo::start(framework, app::monitor_builder_with(&options).unwrap()).await;
        let anonymous = client().get(ctx.server.url("/stats")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{framework:?}");
        assert_eq!(
            anonymous.headers()["www-authenticate"],
            "Bearer realm=\"vitalsign\""
        );
        let authorized = client()
            .get(ctx.server.url("/stats"))
            .header("authorization", "Bearer st4ts")
            .send()
            .await
            .unwrap();
        assert_eq!(authorized.status(), 200);
        let body: Value = authorized.json().await.unwrap();
        assert!(body["process"]["pid"].is_u64());
        assert_eq!(ctx.sink.requests().len(), 0, "/stats is not recorded");
    }
}
