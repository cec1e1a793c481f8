//! axum over real HTTP on 127.0.0.1: what only axum needs checking, and monitor settings checked
//! through axum. The behaviour both frameworks share is in tests/parity.rs; the scenarios that
//! each framework wires its own way are written once in tests/common, called here and in
//! tests/actix.rs.
#![cfg(all(feature = "axum", feature = "prometheus"))]

#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitalsign::axum::{endpoints, Point};
use vitalsign::{MemorySink, Monitor, MonitorLayer, Sink};

async fn demo() -> (Server, Monitor, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new(100_000));
    let monitor = app::monitor(vec![sink.clone() as Arc<dyn Sink>]).unwrap();
    let server = Server::start(app::axum_app(&monitor)).await;
    (server, monitor, sink)
}

#[tokio::test]
async fn panics_without_catch_panic_layer_are_500s_too() {
    let (monitor, sink) = monitor_with_sink(|b| b);
    let app = Router::new()
        .route(
            "/panic",
            get(|| async { panic!("no CatchPanicLayer here") as &'static str }),
        )
        .route("/ok", get(|| async { "ok" }))
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    a_panic_without_catch_panic_is_a_500_and_the_server_keeps_serving(&server, &sink).await;
}

/// Opens a connection, sends a GET, waits `linger`, hangs up.
async fn hang_up(server: &Server, path: &str, linger: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = vec![0u8; 4096];
    let n = tokio::time::timeout(linger, stream.read(&mut seen))
        .await
        .unwrap_or(Ok(0))
        .unwrap_or(0);
    seen.truncate(n);
    drop(stream);
    seen
}

/// axum only: hyper drops the handler future of a client that hangs up, actix-web runs the
/// handler to its end (DESIGN.md; the actix half is pinned in tests/parity.rs).
#[tokio::test]
async fn client_hang_up_during_a_slow_handler_is_a_disconnect() {
    let (server, monitor, sink) = demo().await;
    let seen = hang_up(&server, "/slow?ms=3000", Duration::from_millis(200)).await;
    assert!(seen.is_empty(), "no response yet");
    eventually("the disconnect is recorded", || async {
        monitor.in_flight() == 0 && !sink.requests_for("/slow").is_empty()
    })
    .await;
    let m = server.metrics().await;
    assert_eq!(
        m.get(
            DISCONNECTS,
            &[("http_request_method", "GET"), ("http_route", "/slow")]
        ),
        Some(1.0)
    );
    // No response head existed: recorded as 499 (client closed request), not an error.
    assert_eq!(m.get(COUNT, &series("GET", "/slow", "499", "")), Some(1.0));
    assert_eq!(m.sum(ERRORS, &[]), 0.0);
    assert_eq!(active(&m), 0.0);
    let point = &sink.requests_for("/slow")[0];
    assert!(point.disconnected && point.execution_time < 3.0);
}

#[tokio::test]
async fn undeclared_tags_never_become_labels() {
    let (monitor, sink) = monitor_with_sink(|b| b);
    let app = Router::new()
        .route(
            "/t",
            get(|point: Point| async move {
                point.tag("tenant", "acme").tag("tenant", "acme-2");
                "t"
            }),
        )
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    assert_eq!(server.get("/t").await.0, 200);
    let m = server.metrics().await;
    assert!(!m.text.contains("tenant"));
    assert_eq!(
        sink.requests()[0].tag("tenant"),
        Some("acme-2"),
        "a repeated tag replaces"
    );
}

/// A handler that tags its point and answers whether the point records.
async fn tagging_handler(point: Point) -> String {
    tag_and_answer(&point)
}

/// Regression (review item 15): without any layer, `Point` answered 500; a monitoring setup
/// must never break a route, so it is a point that records nothing (and a warning, once).
#[tokio::test]
async fn without_the_layer_point_records_nothing_and_the_route_answers() {
    let app = Router::new().route("/t", get(tagging_handler));
    let server = Server::start(app).await;
    assert_eq!(server.get("/t").await, (200, "not recording".to_owned()));
}

/// Regression (review item 15): a handler taking `Point` on an excluded path answered 500.
#[tokio::test]
async fn a_point_handler_on_an_excluded_path_answers_and_records_nothing() {
    let (monitor, sink) =
        monitor_with_sink(|b| b.exclude_path("/ping").exclude_path("/internal/*"));
    let app = Router::new()
        .route("/ping", get(tagging_handler))
        .route("/internal/{name}", get(tagging_handler))
        .route("/kept", get(tagging_handler))
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    excluded_paths_answer_and_only_kept_is_recorded(&server, &monitor, &sink).await;
}

/// Regression (review item 15): a route added after `Router::layer` never passes the layer; its
/// `Point` handler answered 500. It now answers, with a point that records nothing.
#[tokio::test]
async fn a_route_added_after_the_layer_answers_with_a_point_that_records_nothing() {
    let (monitor, sink) = monitor_with_sink(|b| b);
    let app = Router::new()
        .route("/kept", get(tagging_handler))
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor))
        .route("/late", get(tagging_handler));
    let server = Server::start(app).await;
    uncovered_route_answers_with_a_point_that_records_nothing(&server, &monitor, &sink, "/kept")
        .await;
}

/// Serves `/spawned`, whose handler runs on a task of its own: a middleware spawns it (so that
/// a client hang-up does not cancel it), as some applications do.
async fn spawning_server(monitor: &Monitor) -> Server {
    let app = Router::new()
        .route("/spawned", get(tagging_handler))
        .layer(axum::middleware::from_fn(
            |request: axum::extract::Request, next: axum::middleware::Next| async move {
                tokio::spawn(next.run(request)).await.unwrap()
            },
        ))
        .merge(endpoints(monitor))
        .layer(MonitorLayer::new(monitor));
    Server::start(app).await
}

/// Regression (review item 7): a handler running on another task than the layer found no
/// point (the extractor answered 500 blaming the wiring). With `point_in_extensions` its
/// handle travels in the request's extensions, and what it adds lands on the request's point.
#[tokio::test]
async fn a_handler_on_a_spawned_task_finds_its_point_in_the_extensions() {
    spawned_work_finds_its_point_in_the_extensions(|monitor| async move {
        spawning_server(&monitor).await
    })
    .await;
}

/// Regression (review item 7): work a handler spawns that extracts the point from the request
/// (on another task) tags the same request's point; so does a handle moved into the task.
#[tokio::test]
async fn work_a_handler_spawns_tags_the_requests_point() {
    use axum::extract::FromRequestParts;

    let (monitor, sink) = monitor_with_sink(|b| b.point_in_extensions(true));
    let app = Router::new()
        .route(
            "/work",
            get(|point: Point, request: axum::extract::Request| async move {
                let moved = point.clone();
                tokio::spawn(async move {
                    moved.tag("moved", "yes");
                    let (mut parts, _body) = request.into_parts();
                    let Ok(extracted) = Point::from_request_parts(&mut parts, &()).await;
                    extracted.tag("extracted", "yes");
                    extracted.is_recording()
                })
                .await
                .unwrap()
                .to_string()
            }),
        )
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    assert_eq!(server.get("/work").await, (200, "true".to_owned()));
    all_recorded(&monitor, "/work recorded").await;
    let point = &sink.requests_for("/work")[0];
    assert_eq!(point.tag("moved"), Some("yes"));
    assert_eq!(point.tag("extracted"), Some("yes"));
}

/// Regression (review item 7): behind tower's `Buffer` its worker calls the inner service, off
/// the layer's task: the request body counter, which takes the point in `call`, counted nothing
/// there. With `point_in_extensions` it finds the point in the request's extensions; the
/// handler's `Point` (polled on the caller's task, like every future behind `Buffer`) reaches the
/// same point. (Inside `Router::layer`, axum defers every call to the first poll, so there a
/// `Buffer` leaves the whole request on the caller's task.)
#[tokio::test]
async fn behind_a_buffer_the_body_counter_and_the_handler_reach_the_point() {
    use axum::error_handling::HandleErrorLayer;
    use axum::http::StatusCode;
    use axum::routing::post;
    use tower::ServiceBuilder;
    use vitalsign::RequestBodySizeLayer;

    let (monitor, sink) =
        monitor_with_sink(|b| b.point_in_extensions(true).request_size_histogram(true));
    let upload = Router::new().route(
        "/upload",
        post(|point: Point, body: String| async move {
            point.tag("handler", "buffered");
            body.len().to_string()
        }),
    );
    let buffered = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            StatusCode::SERVICE_UNAVAILABLE
        }))
        .layer(MonitorLayer::new(&monitor).route_fn(|_head| Some("/upload")))
        .buffer(16)
        .layer(RequestBodySizeLayer)
        .service(upload);
    let app = Router::new()
        .merge(endpoints(&monitor))
        .fallback_service(buffered);
    let server = Server::start(app).await;
    for size in [10, 3000] {
        let response = client()
            .post(server.url("/upload"))
            .body("x".repeat(size))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), size.to_string());
    }
    all_recorded(&monitor, "/upload recorded").await;
    let mut points = sink.requests_for("/upload");
    points.sort_by_key(|p| p.request_body_bytes);
    let seen: Vec<_> = points
        .iter()
        .map(|p| (p.request_body_bytes, p.tag("handler")))
        .collect();
    assert_eq!(seen, [(10, Some("buffered")), (3000, Some("buffered"))]);
}

#[tokio::test]
async fn two_monitors_in_one_process_do_not_conflict() {
    let (a, _ma, _) = demo().await;
    let (b, _mb, _) = demo().await;
    assert_eq!(a.get("/users/1").await.0, 200);
    assert_eq!(a.get("/users/2").await.0, 200);
    assert_eq!(b.get("/error").await.0, 500);
    let ma = a.metrics().await;
    let mb = b.metrics().await;
    assert_eq!(ma.sum(COUNT, &[]), 2.0);
    assert_eq!(mb.sum(COUNT, &[]), 1.0);
    assert_eq!(ma.sum(ERRORS, &[]), 0.0);
}

#[tokio::test]
async fn namespace_and_global_labels_apply_to_every_series() {
    let (monitor, _sink) = monitor_with_sink(|b| {
        b.namespace("shop")
            .global_label("region", "eu \"west\"\n\\")
    });
    let app = Router::new()
        .route("/x", get(|| async { "x" }))
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    assert_eq!(server.get("/x").await.0, 200);
    let m = server.metrics().await;
    assert_eq!(
        m.get(
            "shop_http_server_request_duration_seconds_count",
            &[
                ("http_request_method", "GET"),
                ("http_route", "/x"),
                ("http_response_status_code", "200"),
                ("region", "eu \"west\"\n\\"),
            ]
        ),
        Some(1.0)
    );
    // Everything vitalsign names carries the namespace; the standard process collector keeps
    // its standard names.
    assert!(
        m.samples
            .iter()
            .all(|s| s.name.starts_with("shop_") || s.name.starts_with("process_")),
        "{}",
        m.text
    );
    assert!(m
        .samples
        .iter()
        .any(|s| s.name == "process_resident_memory_bytes"));
    assert!(m
        .samples
        .iter()
        .all(|s| s.labels.get("region").map(String::as_str) == Some("eu \"west\"\n\\")));
    promtool_check(&m.text);
}
