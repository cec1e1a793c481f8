//! A real Prometheus server (Debian's `prometheus` package) scrapes the demo app on 127.0.0.1
//! and its query API returns the exact counts we sent.
#![cfg(all(feature = "axum", feature = "prometheus"))]

#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;

use std::time::Duration;

use common::processes::{query_one as query, start_prometheus, Daemon};
use common::*;

/// Starts Prometheus scraping `target` every 200 ms; `None` only when the run opted out of
/// external servers ([`require`]).
fn start(target: &str) -> Option<Daemon> {
    start_prometheus(
        &format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: vitalsign\n    static_configs:\n      - targets: ['{target}']\n"
        ),
        &[],
    )
}

#[tokio::test]
async fn prometheus_scrapes_the_demo_and_sees_exact_counts() {
    let monitor = app::monitor(Vec::new()).unwrap();
    let server = Server::start(app::axum_app(&monitor)).await;
    let Some(prometheus) = start(&server.addr.to_string()) else {
        return;
    };
    for id in 0..7 {
        assert_eq!(server.get(&format!("/users/{id}")).await.0, 200);
    }
    for _ in 0..3 {
        assert_eq!(server.get("/error").await.0, 500);
    }
    assert_eq!(server.get("/nowhere").await.0, 404);

    let checks = [
        (r#"up{job="vitalsign"}"#, 1.0),
        (
            r#"http_server_request_duration_seconds_count{http_route="/users/{id}",http_response_status_code="200"}"#,
            7.0,
        ),
        (
            r#"http_server_errors_total{http_route="/error",error_code="1001"}"#,
            3.0,
        ),
        (
            r#"http_server_request_duration_seconds_count{http_route="unmatched"}"#,
            1.0,
        ),
        (r#"sum(http_server_active_requests)"#, 0.0),
        (
            r#"scrape_samples_post_metric_relabeling{job="vitalsign"} > 0"#,
            -1.0,
        ),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for (expr, want) in checks {
        loop {
            let got = query(&prometheus, expr).await;
            if got.is_some_and(|v| want < 0.0 || v == want) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{expr}: got {got:?}, want {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The scrape itself reports no problem.
    let targets = prometheus.get_json("/api/v1/targets").await;
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");
}

/// The family names of an exposition, in the order of their `# TYPE` lines.
fn family_names(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| rest.split(' ').next().unwrap())
        .collect()
}

/// The sample lines of family `name` (its `_bucket`, `_sum` and `_count` lines too).
fn sample_lines<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ', '_']))
        })
        .collect()
}

/// Regression (review item 20): metric families came out in a new order on each scrape (the
/// registry renders from hash maps, vitalsign's own histograms were appended after it), and so
/// did the series of a family, so two scrapes could not be compared with `diff`.
#[tokio::test]
async fn families_and_series_come_out_sorted_whatever_the_traffic() {
    let monitor = app::monitor(Vec::new()).unwrap();
    let server = Server::start(app::axum_app(&monitor)).await;
    let traffic: [&[&str]; 2] = [
        &["/users/1", "/error", "/stream"],
        &[
            "/nowhere",
            "/users/2",
            "/panic",
            "/error",
            "/slow?ms=1",
            "/health",
        ],
    ];
    let mut scrapes = Vec::new();
    for paths in traffic {
        for path in paths {
            server.get(path).await;
        }
        all_recorded(&monitor, "the traffic recorded").await;
        scrapes.push(server.metrics().await.text);
    }
    for text in &scrapes {
        let names = family_names(text);
        assert!(names.len() > 5, "{text}");
        assert!(
            names.contains(&"http_server_errors_total"),
            "from the registry: {text}"
        );
        assert!(
            names.contains(&COUNT.trim_end_matches("_count")),
            "vitalsign's own: {text}"
        );
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "families not sorted: {names:?}"
        );
        for family in [
            "http_server_errors_total",
            "http_server_request_duration_seconds",
        ] {
            let lines: Vec<&str> = sample_lines(text, family)
                .into_iter()
                .filter(|line| {
                    line.starts_with(&format!("{family}_count")) || family.ends_with("_total")
                })
                .collect();
            assert!(!lines.is_empty(), "{family}: {lines:?}");
            assert!(
                lines.windows(2).all(|w| w[0] < w[1]),
                "{family} series not sorted: {lines:?}"
            );
        }
    }
    let (first, second) = (family_names(&scrapes[0]), family_names(&scrapes[1]));
    assert!(
        first.iter().all(|name| second.contains(name)),
        "{first:?} {second:?}"
    );
    assert!(sample_lines(&scrapes[1], "http_server_errors_total").len() > 1);
    promtool_check(&scrapes[1]);
}
