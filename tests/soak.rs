//! A bounded soak: one million requests over a fixed set of routes leave resident memory flat
//! (histogram samples drained by the upkeep thread, bounded handle maps). Linux only (reads
//! `/proc/self/statm`).
#![cfg(all(feature = "axum", feature = "prometheus", target_os = "linux"))]

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use vitalsign::{Monitor, MonitorLayer};

const PATHS: [&str; 6] = [
    "/users/1",
    "/users/2",
    "/orders/9",
    "/error",
    "/nope",
    "/users/3",
];

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

async fn drive(router: &mut Router, n: usize) {
    for i in 0..n {
        let request = Request::get(PATHS[i % PATHS.len()])
            .body(Body::empty())
            .unwrap();
        let response = ServiceExt::<Request<Body>>::ready(&mut *router)
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap();
        response.into_body().collect().await.unwrap();
    }
}

#[test]
fn a_million_requests_leave_resident_memory_flat() {
    let monitor = Monitor::builder("soak")
        .upkeep_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut router = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/orders/{id}", get(|| async { "order" }))
        .route(
            "/error",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "e") }),
        )
        .layer(MonitorLayer::new(&monitor))
        .with_state(());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(drive(&mut router, 100_000)); // warm-up: series, maps, allocator pools
    let before = resident_bytes();
    let mut samples = Vec::new();
    for _ in 0..9 {
        runtime.block_on(drive(&mut router, 100_000));
        samples.push(resident_bytes());
    }
    let after = *samples.last().unwrap();
    let grown = after.saturating_sub(before);
    println!(
        "resident memory: {:.1} MiB after warm-up, {:.1} MiB after 1M requests (+{:.2} MiB); samples {:?} MiB",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        grown as f64 / 1048576.0,
        samples.iter().map(|s| (*s as f64 / 1048576.0 * 10.0).round() / 10.0).collect::<Vec<_>>()
    );
    // Without upkeep, 900k histogram samples alone would take ~7 MiB; with it memory is flat.
    assert!(grown < 4 * 1048576, "resident memory grew by {grown} bytes");
    let text = monitor.render_metrics().unwrap();
    let count: f64 = text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(count, 1_000_000.0, "every request is counted");
}
