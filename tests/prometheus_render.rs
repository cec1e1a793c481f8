//! An application with its own global Prometheus recorder shared with vitalsign
//! (`prometheus_handle`), serving `/metrics` both ways: vitalsign's endpoint, and a handler of
//! its own that answers `Monitor::render_metrics`. Its own test binary, since a global
//! recorder can be installed once per process.
#![cfg(all(feature = "axum", feature = "prometheus"))]

mod common;

use axum::routing::get;
use axum::Router;
use common::*;
use metrics_exporter_prometheus::PrometheusBuilder;
use vitalsign::endpoint::PROMETHEUS_CONTENT_TYPE;
use vitalsign::{Monitor, MonitorLayer};

/// Regression (review item "a shared `PrometheusHandle`'s render lacks vitalsign's
/// `http_server_*` series"): an application serving `/metrics` from its handle's `render()`
/// lost vitalsign's histograms, which are vitalsign's own atomics. The documented call,
/// `Monitor::render_metrics`, renders everything; vitalsign's endpoint answers the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ways_of_serving_metrics_render_everything() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("first global recorder of this process");
    let monitor = Monitor::builder("shared")
        .prometheus_handle(handle.clone())
        .build()
        .unwrap();
    metrics::describe_counter!("shop_orders_total", "Orders placed.");
    let orders = || async {
        metrics::counter!("shop_orders_total").increment(1);
        "order"
    };

    // (a) vitalsign's `/metrics` endpoint.
    let with_endpoint = Server::start(
        Router::new()
            .route("/orders", get(orders))
            .merge(vitalsign::axum::endpoints(&monitor))
            .layer(MonitorLayer::new(&monitor)),
    )
    .await;
    // (b) The application's own `/metrics` handler (vitalsign's endpoints not mounted).
    let render = monitor.clone();
    let own_handler = Server::start(
        Router::new()
            .route("/orders", get(orders))
            .route(
                "/metrics",
                get(move || {
                    let text = render.render_metrics().expect("a Prometheus sink");
                    async move { ([("content-type", PROMETHEUS_CONTENT_TYPE)], text) }
                }),
            )
            .layer(MonitorLayer::new(&monitor)),
    )
    .await;

    assert_eq!(with_endpoint.get("/orders").await.0, 200);
    assert_eq!(own_handler.get("/orders").await.0, 200);
    all_recorded(&monitor, "both /orders recorded").await;

    let (a, b) = (with_endpoint.metrics().await, own_handler.metrics().await);
    // The application's own `/metrics` request is one of its routes, recorded once it ends;
    // the figures below count `/orders` only.
    for (way, m) in [
        ("vitalsign's endpoint", &a),
        ("the application's handler", &b),
    ] {
        assert_eq!(
            m.get("shop_orders_total", &[]),
            Some(2.0),
            "{way}\n{}",
            m.text
        );
        assert_eq!(
            m.get(
                COUNT,
                &[
                    ("http_request_method", "GET"),
                    ("http_route", "/orders"),
                    ("http_response_status_code", "200"),
                ]
            ),
            Some(2.0),
            "{way}\n{}",
            m.text
        );
        assert!(
            m.text
                .contains("# TYPE http_server_request_duration_seconds histogram"),
            "{way}"
        );
        assert!(
            m.text.contains("# TYPE http_server_active_requests gauge"),
            "{way}"
        );
        promtool_check(&m.text);
    }
    // Why the documented call: the handle alone has the application's series but not
    // vitalsign's histograms.
    let alone = handle.render();
    assert!(alone.contains("shop_orders_total"), "{alone}");
    assert!(
        !alone.contains("http_server_request_duration_seconds"),
        "{alone}"
    );
}
