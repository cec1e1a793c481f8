//! The health endpoints of the demo over real HTTP on 127.0.0.1, on axum and on actix-web:
//! a real TCP dependency that goes away and comes back, the error-rate rule, drain order,
//! token redaction, health+json, HEAD and cache headers, the health gauge.

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use demo::{Ctx, Framework, BOTH};
use serde_json::Value;
use vitalsign::health::{Check, Level};

async fn get_json(
    ctx: &Ctx,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = client().get(ctx.server.url(path));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, headers)
}

async fn wait_status(ctx: &Ctx, path: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body, _) = get_json(ctx, path, &[]).await;
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{:?} {path}: {status} {body}, wanted {want}",
            ctx.framework
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn options(dependency: Option<SocketAddr>, token: Option<&str>) -> app::HealthOptions {
    app::HealthOptions {
        dependency: dependency.map(|a| a.to_string()),
        check_interval: Duration::from_millis(50),
        token: token.map(str::to_owned),
    }
}

async fn start(framework: Framework, options: &app::HealthOptions) -> Ctx {
    demo::start(framework, app::monitor_builder_with(options).unwrap()).await
}

async fn dependency_flips_and_recovers(framework: Framework) {
    let mut dependency = Dependency::start().await;
    let ctx = start(framework, &options(Some(dependency.addr), None)).await;
    wait_status(&ctx, "/health/ready", 200).await;
    wait_status(&ctx, "/health", 200).await;

    dependency.stop().await;
    wait_status(&ctx, "/health", 503).await;
    let (status, body, _) = get_json(&ctx, "/health", &[]).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"]["overall"]["level"], "unavailable");
    let summary = body["status"]["statuses"]["dependency"]["summary"]
        .as_str()
        .unwrap();
    assert!(
        summary.contains(&format!("TCP connect to {} failed", dependency.addr)),
        "{summary}"
    );
    assert_eq!(get_json(&ctx, "/health/ready", &[]).await.0, 503);
    assert_eq!(
        get_json(&ctx, "/health/live", &[]).await.0,
        200,
        "{framework:?}: liveness stays up"
    );
    let gauge = ctx.server.metrics().await;
    assert_eq!(
        gauge.get("service_health_status", &[("component", "dependency")]),
        Some(0.0)
    );

    dependency.restart().await;
    wait_status(&ctx, "/health", 200).await;
    wait_status(&ctx, "/health/ready", 200).await;
    let gauge = ctx.server.metrics().await;
    assert_eq!(
        gauge.get("service_health_status", &[("component", "dependency")]),
        Some(2.0)
    );
    assert_eq!(
        gauge.get("service_health_status", &[("component", "http")]),
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_that_goes_away_makes_health_and_readiness_503_and_recovers() {
    tokio::join!(
        dependency_flips_and_recovers(Framework::Axum),
        dependency_flips_and_recovers(Framework::Actix)
    );
}

async fn error_rate_rule(framework: Framework) {
    let ctx = start(framework, &options(None, None)).await;
    for _ in 0..6 {
        assert_eq!(ctx.server.get("/error").await.0, 500);
    }
    for id in 0..4 {
        assert_eq!(ctx.server.get(&format!("/users/{id}")).await.0, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body, _) = get_json(&ctx, "/health/http", &[]).await;
        if body["level"] == "degraded" {
            assert_eq!(status, 200, "degraded is still 200");
            assert!(
                body["summary"]
                    .as_str()
                    .unwrap()
                    .starts_with("5xx ratio 0.600 above 0.5"),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{framework:?}: http never degraded: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body, _) = get_json(&ctx, "/health", &[]).await;
    assert_eq!(
        (status, body["status"]["overall"]["level"].as_str()),
        (200, Some("degraded"))
    );
    assert_eq!(
        ctx.server
            .metrics()
            .await
            .get("service_health_status", &[("component", "http")]),
        Some(1.0)
    );
    // The 10 s window passes with no new errors: the rule clears.
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(&ctx, "/health/http", &[]).await.1["level"] != "available" {
        assert!(
            Instant::now() < deadline,
            "{framework:?}: the rule never cleared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_rate_rule_degrades_http_and_clears_when_the_window_passes() {
    tokio::join!(
        error_rate_rule(Framework::Axum),
        error_rate_rule(Framework::Actix)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_flips_readiness_before_in_flight_requests_complete() {
    for framework in BOTH {
        let ctx = start(framework, &options(None, None)).await;
        wait_status(&ctx, "/health/ready", 200).await;
        let slow = tokio::spawn({
            let url = ctx.server.url("/slow?ms=800");
            async move { client().get(url).send().await.unwrap().status().as_u16() }
        });
        let monitor = ctx.monitor.clone();
        eventually("the slow request is in flight", || {
            let monitor = monitor.clone();
            async move { monitor.in_flight() == 1 }
        })
        .await;
        let drain = tokio::spawn({
            let monitor = ctx.monitor.clone();
            async move { monitor.shutdown(Duration::from_secs(10)).await }
        });
        wait_status(&ctx, "/health/ready", 503).await;
        assert!(
            !slow.is_finished(),
            "{framework:?}: readiness flipped while the request was still running"
        );
        let (_, body, _) = get_json(&ctx, "/health/ready", &[]).await;
        assert_eq!(body["summary"], "draining");
        assert_eq!(slow.await.unwrap(), 200, "the in-flight request completes");
        let report = drain.await.unwrap();
        assert_eq!(report.cut, 0);
        assert!(report.waited >= Duration::from_millis(200), "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_redacts_health_and_guards_metrics_and_components() {
    let mut anonymous_bodies = Vec::new();
    for framework in BOTH {
        let ctx = start(framework, &options(None, Some("t0ken"))).await;
        let (status, body, _) = get_json(&ctx, "/health", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            body["status"],
            serde_json::json!({ "overall": { "level": "available" } })
        );
        anonymous_bodies.push(body);
        for path in ["/metrics", "/health/http"] {
            for auth in [None, Some("Bearer wrong"), Some("Basic dDBrZW4=")] {
                let headers: Vec<(&str, &str)> =
                    auth.map(|a| ("authorization", a)).into_iter().collect();
                let (status, _, headers) = get_json(&ctx, path, &headers).await;
                assert_eq!(status, 401, "{framework:?} {path} {auth:?}");
                assert_eq!(headers["www-authenticate"], "Bearer realm=\"vitalsign\"");
            }
        }
        let auth = [("authorization", "Bearer t0ken")];
        let (status, body, _) = get_json(&ctx, "/health", &auth).await;
        assert_eq!(status, 200);
        assert_eq!(body["status"]["statuses"]["http"]["level"], "available");
        assert_eq!(body["name"], app::SERVICE);
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(get_json(&ctx, "/metrics", &auth).await.0, 200);
        assert_eq!(get_json(&ctx, "/health/http", &auth).await.0, 200);
        assert_eq!(get_json(&ctx, "/health/nope", &auth).await.0, 404);
        assert_eq!(
            get_json(&ctx, "/health/live", &[]).await.0,
            200,
            "probes stay open"
        );
        assert_eq!(
            get_json(&ctx, "/health/ready", &[]).await.0,
            200,
            "probes stay open"
        );
    }
    assert_eq!(
        anonymous_bodies[0], anonymous_bodies[1],
        "same answer from both frameworks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_json_head_and_no_store() {
    let mut bodies = Vec::new();
    for framework in BOTH {
        let ctx = start(framework, &options(None, None)).await;
        let (status, body, headers) =
            get_json(&ctx, "/health", &[("accept", "application/health+json")]).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/health+json");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(body["status"], "pass");
        assert_eq!(body["checks"]["http"][0]["status"], "pass");
        bodies.push(body);
        let (_, body, headers) = get_json(&ctx, "/health", &[]).await;
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(body["status"]["overall"]["level"], "available");
        for path in [
            "/health",
            "/health/live",
            "/health/ready",
            "/health/http",
            "/metrics",
        ] {
            let response = client().head(ctx.server.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{framework:?} HEAD {path}");
            assert!(response.bytes().await.unwrap().is_empty());
        }
        // The health endpoints are not recorded as requests.
        assert_eq!(ctx.sink.requests().len(), 0, "{framework:?}");
    }
    assert_eq!(bodies[0], bodies[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_check_never_delays_health_over_http() {
    for framework in BOTH {
        let builder = app::monitor_builder().unwrap().check(
            "hanging",
            Check::new(|| async {
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            })
            .interval(Duration::from_millis(100))
            .timeout(Duration::from_secs(30)),
        );
        let ctx = demo::start(framework, builder).await;
        let mut slowest = Duration::ZERO;
        for _ in 0..50 {
            let started = Instant::now();
            let (status, body, _) = get_json(&ctx, "/health", &[]).await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(status, 503);
            assert_eq!(
                body["status"]["statuses"]["hanging"]["level"],
                Level::Unavailable.as_str()
            );
        }
        println!("{framework:?}: slowest /health over HTTP while a check hangs: {slowest:?}");
        assert!(
            slowest < Duration::from_secs(2),
            "{framework:?}: {slowest:?}"
        );
    }
}
