//! vitalsign inside an application that already installed a global Prometheus recorder:
//! one `/metrics` with both the application's series and vitalsign's. Its own test binary,
//! since a global recorder can be installed once per process.
#![cfg(all(feature = "axum", feature = "prometheus"))]

mod common;

use axum::routing::get;
use axum::Router;
use common::*;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use vitalsign::axum::endpoints;
use vitalsign::{Monitor, MonitorLayer, DEFAULT_DURATION_BUCKETS};

#[tokio::test]
async fn an_installed_recorder_is_shared_with_the_application() {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_server_request_duration_seconds".into()),
            DEFAULT_DURATION_BUCKETS,
        )
        .unwrap()
        .install_recorder()
        .expect("first global recorder of this process");
    let monitor = Monitor::builder("shared")
        .prometheus_handle(handle)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/orders",
            get(|| async {
                metrics::counter!("shop_orders_total").increment(1);
                "order"
            }),
        )
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    assert_eq!(server.get("/orders").await.0, 200);
    assert_eq!(server.get("/orders").await.0, 200);
    let m = server.metrics().await;
    assert_eq!(m.get("shop_orders_total", &[]), Some(2.0), "{}", m.text);
    assert_eq!(
        m.get(
            COUNT,
            &[
                ("http_request_method", "GET"),
                ("http_route", "/orders"),
                ("http_response_status_code", "200"),
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.matching(BUCKET, &[("http_route", "/orders")]).len(),
        DEFAULT_DURATION_BUCKETS.len() + 1
    );
    assert!(m
        .text
        .contains("# HELP http_server_request_duration_seconds "));

    // A second monitor with its own recorder in the same process does not conflict.
    let own = Monitor::builder("other").build().unwrap();
    let app = Router::new()
        .route("/x", get(|| async { "x" }))
        .merge(endpoints(&own))
        .layer(MonitorLayer::new(&own));
    let other = Server::start(app).await;
    assert_eq!(other.get("/x").await.0, 200);
    let mo = other.metrics().await;
    assert_eq!(mo.sum(COUNT, &[]), 1.0);
    assert!(!mo.text.contains("shop_orders_total"));
    assert_eq!(server.metrics().await.sum(COUNT, &[]), 2.0);
}
