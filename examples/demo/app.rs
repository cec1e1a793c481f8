//! The demo application: the same routes the README shows, shared by `main.rs` and the tests.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use vitalsign::axum::{endpoints, Point};
use vitalsign::{ConfigError, Monitor, MonitorBuilder, MonitorLayer, Sink};

/// Service name of the demo.
pub(crate) const SERVICE: &str = "vitalsign-demo";

/// The demo's monitor configuration: `handler_id` is declared as a label.
pub(crate) fn monitor_builder() -> Result<MonitorBuilder, ConfigError> {
    Monitor::builder(SERVICE).label_tag("handler_id")
}

/// The demo monitor, with extra sinks (tests add a collecting one).
pub(crate) fn monitor(sinks: Vec<Arc<dyn Sink>>) -> Result<Monitor, ConfigError> {
    sinks
        .into_iter()
        .fold(monitor_builder()?, |b, s| b.sink(s))
        .build()
}

/// The demo routes, without any middleware.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/users/{id}", get(get_user))
        .route("/error", get(error))
        .route("/slow", get(slow))
        .route("/stream", get(stream))
        .route("/panic", get(panic))
}

/// The demo app: routes, `/metrics`, `/health/live`, monitoring, panic-to-500.
///
/// The layer comes last: axum's `Router::merge` replaces a layered default fallback with the
/// other router's unlayered one, so layering before a merge would leave 404s unrecorded.
pub(crate) fn axum_app(monitor: &Monitor) -> Router {
    routes()
        .merge(endpoints(monitor))
        .route("/health/live", get(|| async { "ok" }))
        .layer(MonitorLayer::new(monitor))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
}

async fn get_user(point: Point, Path(id): Path<String>) -> impl IntoResponse {
    point
        .tag("handler_id", "get_user")
        .field("user_id", id.as_str());
    // A stand-in for a database call, timed into the field `db_time`.
    point
        .timed("db_time", tokio::time::sleep(Duration::from_millis(2)))
        .await;
    Json(json!({ "id": id, "name": format!("user {id}") }))
}

async fn error(point: Point) -> impl IntoResponse {
    point.tag("handler_id", "error").error_code(1001);
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": 1001, "message": "demo failure" })),
    )
}

#[derive(serde::Deserialize)]
struct SlowQuery {
    ms: Option<u64>,
}

async fn slow(Query(q): Query<SlowQuery>) -> impl IntoResponse {
    let ms = q.ms.unwrap_or(100);
    if ms > 60_000 {
        return (
            StatusCode::BAD_REQUEST,
            format!("ms={ms} is over the limit of 60000\n"),
        );
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    (StatusCode::OK, format!("slept {ms} ms\n"))
}

async fn stream() -> impl IntoResponse {
    let chunks = futures_util::stream::unfold(0u32, |i| async move {
        if i == 5 {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some((
            Ok::<_, std::convert::Infallible>(format!("chunk {i}\n")),
            i + 1,
        ))
    });
    axum::body::Body::from_stream(chunks)
}

async fn panic() -> &'static str {
    panic!("the demo's /panic handler panics on purpose")
}
