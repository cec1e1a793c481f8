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

async fn blocking_raises_event_loop_delay(framework: Framework) -> f64 {
    let ctx = start(framework).await;
    assert_eq!(ctx.server.get("/users/1").await.0, 200); // the probe starts with the first request
    let quiet = next_window(&ctx).await;
    let quiet_max = quiet["process"]["event_loop_delay_histogram"]["max"]
        .as_f64()
        .unwrap();
    // Block every worker thread for 200 ms (axum's runtime here has two; each actix worker
    // runs its own probe, so one blocked worker shows).
    let blockers = (0..2).map(|_| {
        let url = ctx.server.url("/block?ms=200");
        tokio::spawn(async move { client().get(url).send().await.unwrap().status().as_u16() })
    });
    for blocker in blockers.collect::<Vec<_>>() {
        assert_eq!(blocker.await.unwrap(), 200);
    }
    let blocked = next_window(&ctx).await;
    let histogram = &blocked["process"]["event_loop_delay_histogram"];
    let max = histogram["max"].as_f64().unwrap();
    assert!(max >= 100.0, "{framework:?}: max delay {max} ms after blocking 200 ms (quiet: {quiet_max} ms): {histogram}");
    assert!(max > quiet_max);
    for p in ["50", "75", "95", "99"] {
        assert!(
            histogram["percentiles"][p].as_f64().is_some(),
            "{histogram}"
        );
    }
    max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_the_runtime_raises_the_event_loop_delay() {
    let (axum, actix) = tokio::join!(
        blocking_raises_event_loop_delay(Framework::Axum),
        blocking_raises_event_loop_delay(Framework::Actix)
    );
    println!("event-loop delay max after a 200 ms block: axum {axum:.1} ms, actix {actix:.1} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_stats_round_trip_to_json_and_metrics() {
    for framework in BOTH {
        let ctx = start(framework).await;
        let custom = ctx.monitor.stats();
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
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
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
