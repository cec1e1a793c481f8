//! Native histograms and the protobuf exposition, end to end on both frameworks: a real
//! Prometheus started with `--enable-feature=native-histograms` (which asks `/metrics` for the
//! protobuf format first) scrapes the demo (axum and actix) after `/slow?ms=N` requests whose
//! durations are read back one by one from the classic histogram's `_sum`;
//! - `histogram_count` and `histogram_sum` of the native series equal what was sent;
//! - `histogram_quantile(0.9, …)` lies within the schema's relative error (2^(1/8) − 1) of the
//!   true 0.9 quantile of those durations;
//! - every series of the text exposition reached Prometheus through the protobuf too, with its
//!   HELP and TYPE, and the counters with their values;
//! - the text format (still served to any other `Accept`) passes `promtool check metrics`, and
//!   the negotiation honours q-values.
#![cfg(all(feature = "axum", feature = "prometheus"))]

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;

use std::collections::BTreeSet;
use std::time::Duration;

use common::processes::{query, query_one, start_prometheus_with, Daemon};
use common::*;
use demo::{Ctx, Framework};
use vitalsign::endpoint::{PROMETHEUS_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE};
use vitalsign::prometheus::NATIVE_MAX_RELATIVE_ERROR;

/// The `Accept` header of Prometheus 2.42 with `--enable-feature=native-histograms`.
const PROMETHEUS_ACCEPT: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// The sleeps of the `/slow` requests, in milliseconds: spread over two decades, so that the
/// 0.9 quantile is far from the zero bucket and from the clamp.
const SLEEPS_MS: [u64; 20] = [
    2, 4, 6, 9, 12, 16, 20, 25, 31, 38, 46, 55, 65, 76, 88, 101, 115, 130, 146, 163,
];

/// The `/slow` series (200) of the demo's duration histogram.
const SLOW: [(&str, &str); 4] = [
    ("http_request_method", "GET"),
    ("http_route", "/slow"),
    ("http_response_status_code", "200"),
    ("handler_id", ""),
];

/// The lengths of the length-delimited messages of `body` (varint prefixes), `None` when the
/// framing does not end exactly at the body's end.
fn delimited_lengths(mut body: &[u8]) -> Option<Vec<usize>> {
    let mut lengths = Vec::new();
    while !body.is_empty() {
        let mut length = 0usize;
        let mut shift = 0;
        loop {
            let (&byte, rest) = body.split_first()?;
            body = rest;
            length |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        body = body.get(length..)?;
        lengths.push(length);
    }
    Some(lengths)
}

fn job(framework: Framework) -> &'static str {
    match framework {
        Framework::Axum => "axum",
        Framework::Actix => "actix",
    }
}

/// The classic `_sum` and `_count` of the `/slow` series, read from the monitor's text.
fn slow_sum_and_count(ctx: &Ctx) -> (f64, f64) {
    let text = ctx.monitor.render_metrics().unwrap();
    let m = Exposition::parse(&text);
    (
        m.get(SUM, &SLOW).unwrap_or(0.0),
        m.get(COUNT, &SLOW).unwrap_or(0.0),
    )
}

/// Sends the `/slow` requests one at a time and returns each one's duration as the monitor
/// recorded it (the growth of the classic `_sum`): a request takes its sleep plus whatever the
/// machine adds, so the sleeps alone are not the truth.
async fn send_slow_requests(ctx: &Ctx) -> Vec<f64> {
    let mut durations = Vec::new();
    for ms in SLEEPS_MS {
        let (sum, count) = slow_sum_and_count(ctx);
        let (status, body) = ctx.server.get(&format!("/slow?ms={ms}")).await;
        assert_eq!(status, 200, "{body}");
        eventually("the /slow request recorded", || async {
            slow_sum_and_count(ctx).1 == count + 1.0
        })
        .await;
        durations.push(slow_sum_and_count(ctx).0 - sum);
    }
    durations
}

/// The true `q` quantile as `histogram_quantile` defines its rank: the observation at rank
/// `q × count` (1-based, rounded up) of the sorted durations.
fn true_quantile(durations: &[f64], q: f64) -> f64 {
    let mut sorted = durations.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.max(1) - 1]
}

/// Waits (at most 60 s: scrapes every second) until `expr` returns `want` in Prometheus.
async fn wait_for(prometheus: &Daemon, expr: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = query_one(prometheus, expr).await;
        if got == Some(want) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let targets = prometheus.get_json("/api/v1/targets").await;
            panic!(
                "{expr} is {got:?}, not {want}; targets: {targets}\nPrometheus' log:\n{}",
                prometheus.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_reads_native_histograms_from_both_frameworks() {
    let mut demos = Vec::new();
    for framework in demo::BOTH {
        let builder = app::monitor_builder().unwrap().native_histograms(true);
        demos.push(demo::start(framework, builder).await);
    }
    // An error and a user first: counters and the other series to compare.
    for ctx in &demos {
        assert_eq!(ctx.server.get("/error").await.0, 500);
        assert_eq!(ctx.server.get("/users/7").await.0, 200);
    }
    let scrape_configs: String = demos
        .iter()
        .map(|ctx| {
            format!(
                "  - job_name: {}\n    static_configs:\n      - targets: ['{}']\n",
                job(ctx.framework),
                ctx.server.addr
            )
        })
        .collect();
    let Some(prometheus) = start_prometheus_with(
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n{scrape_configs}"
        ),
        &[],
        &["--enable-feature=native-histograms"],
    ) else {
        return;
    };
    prometheus
        .wait_ready("/-/ready", Duration::from_secs(30))
        .await;

    for ctx in &demos {
        let framework = ctx.framework;
        let durations = send_slow_requests(ctx).await;
        let (classic_sum, classic_count) = slow_sum_and_count(ctx);
        assert_eq!(classic_count, SLEEPS_MS.len() as f64);
        let selector = format!(
            "http_server_request_duration_seconds{{job=\"{}\",http_route=\"/slow\",http_response_status_code=\"200\"}}",
            job(framework)
        );
        wait_for(
            &prometheus,
            &format!("histogram_count({selector})"),
            SLEEPS_MS.len() as f64,
        )
        .await;
        let sum = query_one(&prometheus, &format!("histogram_sum({selector})"))
            .await
            .unwrap();
        let sent: f64 = durations.iter().sum();
        assert!(
            (sum - classic_sum).abs() <= classic_sum * 1e-12 && (sum - sent).abs() <= sent * 1e-9,
            "{framework:?}: histogram_sum {sum}, classic _sum {classic_sum}, sent {sent}"
        );
        let estimate = query_one(&prometheus, &format!("histogram_quantile(0.9, {selector})"))
            .await
            .unwrap();
        let truth = true_quantile(&durations, 0.9);
        let error = (estimate - truth).abs() / truth;
        eprintln!(
            "{framework:?}: histogram_quantile(0.9) {estimate} s, true {truth} s, relative \
             error {error:.4}; histogram_sum {sum} s"
        );
        assert!(
            error <= NATIVE_MAX_RELATIVE_ERROR,
            "{framework:?}: histogram_quantile(0.9) {estimate} s, true {truth} s: relative \
             error {error} above {NATIVE_MAX_RELATIVE_ERROR}; durations {durations:?}"
        );
        // A native histogram, not classic buckets: no `_bucket` series reached Prometheus.
        let buckets = query(
            &prometheus,
            &format!(
                "http_server_request_duration_seconds_bucket{{job=\"{}\"}}",
                job(framework)
            ),
        )
        .await
        .unwrap();
        assert!(buckets.is_empty(), "{framework:?}: {buckets:?}");
    }

    // Everything the text has reached Prometheus through the protobuf.
    for ctx in &demos {
        let framework = ctx.framework;
        let text = ctx.monitor.render_metrics().unwrap();
        let m = Exposition::parse(&text);
        let duration = "http_server_request_duration_seconds";
        let expected: BTreeSet<String> = m
            .samples
            .iter()
            .map(|s| {
                // The duration family arrives as one native series per label set.
                if s.name
                    .strip_prefix(duration)
                    .is_some_and(|rest| matches!(rest, "_bucket" | "_sum" | "_count"))
                {
                    duration.to_owned()
                } else {
                    s.name.clone()
                }
            })
            .collect();
        let names = prometheus
            .get_json(&format!(
                "/api/v1/label/__name__/values?match[]={{job=\"{}\"}}",
                job(framework)
            ))
            .await;
        let got: BTreeSet<String> = names["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let missing: Vec<&String> = expected.difference(&got).collect();
        assert!(
            missing.is_empty(),
            "{framework:?}: missing {missing:?} of {got:?}"
        );
        // Labels and values: the error counter.
        let errors = query_one(
            &prometheus,
            &format!(
                "http_server_errors_total{{job=\"{}\",http_route=\"/error\",error_code=\"1001\"}}",
                job(framework)
            ),
        )
        .await;
        assert_eq!(
            errors,
            m.get(
                ERRORS,
                &[
                    ("http_request_method", "GET"),
                    ("http_route", "/error"),
                    ("http_response_status_code", "500"),
                    ("error_code", "1001")
                ]
            ),
            "{framework:?}"
        );
        // HELP and TYPE.
        let metadata = prometheus
            .get_json("/api/v1/metadata?metric=http_server_errors_total")
            .await;
        let entry = &metadata["data"]["http_server_errors_total"][0];
        assert_eq!(entry["type"], "counter", "{metadata}");
        let help = text
            .lines()
            .find_map(|l| l.strip_prefix("# HELP http_server_errors_total "))
            .unwrap();
        assert_eq!(entry["help"], help, "{metadata}");
    }
}

/// `/metrics` answers the protobuf format when the `Accept` header prefers it (q-values
/// honoured) and the text otherwise, on both frameworks and on the admin listener; the text
/// with native histograms on still passes `promtool check metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_negotiates_protobuf_by_q_value_on_both_frameworks() {
    use vitalsign::axum::ServeAdmin;
    for framework in demo::BOTH {
        let builder = app::monitor_builder().unwrap().native_histograms(true);
        let ctx = demo::start(framework, builder).await;
        assert_eq!(ctx.server.get("/slow?ms=1").await.0, 200);
        all_recorded(&ctx.monitor, "the /slow request").await;
        let admin = ctx.monitor.serve_admin("127.0.0.1:0").await.unwrap();
        let admin_url = format!("http://{}/metrics", admin.local_addr());
        for ((accept, protobuf), url) in [
            (Some(PROMETHEUS_ACCEPT), true),
            (
                Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"),
                true,
            ),
            (None, false),
            (Some("text/plain;version=0.0.4"), false),
            (
                Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.2,text/plain;q=0.9"),
                false,
            ),
            (Some("application/vnd.google.protobuf;proto=other.Message"), false),
        ]
        .into_iter()
        .flat_map(|case| [(case, ctx.server.url("/metrics")), (case, admin_url.clone())])
        {
            let mut request = client().get(&url);
            if let Some(accept) = accept {
                request = request.header("accept", accept);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            let body = response.bytes().await.unwrap();
            if protobuf {
                assert_eq!(content_type, PROTOBUF_CONTENT_TYPE, "{framework:?} {url} {accept:?}");
                // One message per family of the text, framed exactly.
                let families = Exposition::parse(&ctx.monitor.render_metrics().unwrap())
                    .text
                    .matches("# TYPE ")
                    .count();
                let lengths = delimited_lengths(&body);
                assert_eq!(
                    lengths.as_ref().map(Vec::len),
                    Some(families),
                    "{framework:?} {url} {accept:?}: {lengths:?}"
                );
            } else {
                assert_eq!(content_type, PROMETHEUS_CONTENT_TYPE, "{framework:?} {url} {accept:?}");
                let text = String::from_utf8(body.to_vec()).unwrap();
                assert!(text.contains(BUCKET), "{text}");
                promtool_check(&text);
            }
        }
    }
}
