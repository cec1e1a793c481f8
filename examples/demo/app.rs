//! The demo application, served by axum (here) or actix-web (`actix_app.rs`) with the same
//! routes and behaviours; shared by `main.rs` and the tests.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{json, Value};
use vitalsign::axum::{endpoints, Point};
use vitalsign::health::{Check, Condition, Level, Rule, Signal};
use vitalsign::sinks::{InfluxSink, OtelSink, PeriodAggregator, StatsdSink};
use vitalsign::{ConfigError, Monitor, MonitorBuilder, MonitorLayer, PointHandle, Sink};
// An application writes `vitalsign::Objective` with the facade's `slo` feature; the demo takes
// it from vitalsign-core (as it does the push sinks' features) so that `cargo run --example
// demo` needs no feature flag.
use vitalsign_core::Objective;

/// Service name of the demo.
pub(crate) const SERVICE: &str = "vitalsign-demo";
/// Error code `/error` attaches.
pub(crate) const ERROR_CODE: u32 = 1001;
/// Longest sleep `/slow` accepts, in milliseconds.
pub(crate) const MAX_SLOW_MS: u64 = 60_000;
/// Longest block `/block` accepts, in milliseconds.
pub(crate) const MAX_BLOCK_MS: u64 = 5_000;
/// Default sleep of `/slow`, in milliseconds.
pub(crate) const DEFAULT_SLOW_MS: u64 = 100;

/// The demo's health options (flags `--dependency`, `--check-interval-ms`, `--token`).
#[derive(Clone, Debug)]
pub(crate) struct HealthOptions {
    /// `HOST:PORT` of a dependency checked by a TCP connect: the critical component `dependency`.
    pub(crate) dependency: Option<String>,
    /// Interval of the dependency check.
    pub(crate) check_interval: Duration,
    /// Bearer token guarding `/metrics` and health details.
    pub(crate) token: Option<String>,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            dependency: None,
            check_interval: Duration::from_millis(1000),
            token: None,
        }
    }
}

/// The demo's push sinks (flags `--influx`, `--influx-token`, `--flush-ms`, `--statsd`,
/// `--statsd-prefix`, `--aggregate-ms`, `--otlp`).
#[derive(Clone, Debug, Default)]
pub(crate) struct PushOptions {
    /// Full InfluxDB write URL.
    pub(crate) influx: Option<String>,
    /// InfluxDB 2.x token.
    pub(crate) influx_token: Option<String>,
    /// Flush period of the push sinks.
    pub(crate) flush: Option<Duration>,
    /// StatsD `host:port`.
    pub(crate) statsd: Option<String>,
    /// StatsD metric prefix.
    pub(crate) statsd_prefix: Option<String>,
    /// Aggregation period in front of the push sinks.
    pub(crate) aggregate: Option<Duration>,
    /// OTLP/HTTP endpoint base (`http://127.0.0.1:4318`): metrics go to `{base}/v1/metrics`.
    pub(crate) otlp: Option<String>,
}

/// How often the demo's OpenTelemetry sink exports (`--otlp`).
pub(crate) const OTLP_EXPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Builds the push sinks the options ask for.
pub(crate) fn push_sinks(options: &PushOptions) -> Result<Vec<Arc<dyn Sink>>, ConfigError> {
    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    if let Some(url) = &options.influx {
        let mut influx = InfluxSink::http(url.clone());
        if let Some(token) = &options.influx_token {
            influx = influx.token(token.clone());
        }
        if let Some(flush) = options.flush {
            influx = influx.flush_period(flush);
        }
        sinks.push(influx.build()?);
    }
    if let Some(addr) = &options.statsd {
        let mut statsd = StatsdSink::udp(addr.clone());
        if let Some(prefix) = &options.statsd_prefix {
            statsd = statsd.prefix(prefix.clone());
        }
        if let Some(flush) = options.flush {
            statsd = statsd.flush_period(flush);
        }
        sinks.push(statsd.build()?);
    }
    if let Some(period) = options.aggregate {
        sinks = sinks
            .into_iter()
            .map(|sink| PeriodAggregator::new(period, sink) as Arc<dyn Sink>)
            .collect();
    }
    // Never behind the aggregator: OpenTelemetry aggregates by itself.
    if let Some(base) = &options.otlp {
        sinks.push(
            OtelSink::otlp()
                .endpoint(base.clone())
                .export_interval(OTLP_EXPORT_INTERVAL)
                .service_name(SERVICE)
                // Both servers of the demo speak HTTP/1.1 only.
                .network_protocol_version("1.1")
                .build()?,
        );
    }
    Ok(sinks)
}

/// Timeout of the dependency's TCP connect.
pub(crate) const DEPENDENCY_TIMEOUT: Duration = Duration::from_millis(200);

/// The demo's monitor configuration: `handler_id` is declared as a label, the component
/// `http` degrades when more than half of at least 10 requests in the last 10 s were 5xx, and
/// the options add a dependency check and a token.
pub(crate) fn monitor_builder_with(options: &HealthOptions) -> Result<MonitorBuilder, ConfigError> {
    let mut builder = Monitor::builder(SERVICE)
        .version(env!("CARGO_PKG_VERSION"))
        .label_tag("handler_id")
        .rule(
            "http",
            Rule::new(Signal::ServerErrorRatio, Condition::Above(0.5))
                .window(Duration::from_secs(10))
                .min_requests(10)
                .level(Level::Degraded),
        );
    if let Some(dependency) = options.dependency.clone() {
        let check = Check::new(move || {
            let dependency = dependency.clone();
            async move {
                tokio::net::TcpStream::connect(&dependency)
                    .await
                    .map(drop)
                    .map_err(|e| format!("TCP connect to {dependency} failed: {e}"))
            }
        })
        .interval(options.check_interval)
        .timeout(DEPENDENCY_TIMEOUT)
        .critical(true);
        builder = builder.check("dependency", check);
    }
    if let Some(token) = &options.token {
        builder = builder.token(token.clone());
    }
    Ok(builder)
}

/// The demo's objective on every route: 99.9% of requests succeed (not 5xx, no error code).
pub(crate) const AVAILABILITY_OBJECTIVE: &str = "demo-availability";
/// The demo's latency objective: 99% of `/users/{id}` and `/slow` requests within 250 ms.
pub(crate) const LATENCY_OBJECTIVE: &str = "demo-latency";

/// Adds the demo's service-level objectives (what `--print-rules` and `--print-dashboard`
/// print), with every window divided by `time_scale` (flag `--slo-time-scale`, for tests).
pub(crate) fn with_objectives(builder: MonitorBuilder, time_scale: u32) -> MonitorBuilder {
    builder
        .objective(
            AVAILABILITY_OBJECTIVE,
            Objective::availability(0.999).time_scale(time_scale),
        )
        .objective(
            LATENCY_OBJECTIVE,
            Objective::latency(Duration::from_millis(250), 0.99)
                .routes(["/users/{id}", "/slow"])
                .time_scale(time_scale),
        )
}

#[allow(dead_code)] // used by the tests
/// The demo's monitor configuration with default options.
pub(crate) fn monitor_builder() -> Result<MonitorBuilder, ConfigError> {
    monitor_builder_with(&HealthOptions::default())
}

#[allow(dead_code)] // used by the tests
/// The demo monitor, with extra sinks (tests add a collecting one).
pub(crate) fn monitor(sinks: Vec<Arc<dyn Sink>>) -> Result<Monitor, ConfigError> {
    with_sinks(monitor_builder()?, sinks).build()
}

#[allow(dead_code)] // used by the tests
/// Adds `sinks` to `builder`.
pub(crate) fn with_sinks(builder: MonitorBuilder, sinks: Vec<Arc<dyn Sink>>) -> MonitorBuilder {
    sinks.into_iter().fold(builder, |b, s| b.sink(s))
}

// ---- behaviour shared by both frameworks ----

/// `/users/{id}`: tags and fields on the point, a timed stand-in for a database call.
pub(crate) async fn user(point: &PointHandle, id: String) -> Value {
    point
        .tag("handler_id", "get_user")
        .field("user_id", id.as_str());
    point
        .timed("db_time", tokio::time::sleep(Duration::from_millis(2)))
        .await;
    json!({ "id": id, "name": format!("user {id}") })
}

/// `/error`: the error code and the body of the 500.
pub(crate) fn error(point: &PointHandle) -> Value {
    point.tag("handler_id", "error").error_code(ERROR_CODE);
    json!({ "error": ERROR_CODE, "message": "demo failure" })
}

/// `/slow?ms=N`: sleeps, or says why it will not.
pub(crate) async fn slow(ms: Option<u64>) -> Result<String, String> {
    let ms = ms.unwrap_or(DEFAULT_SLOW_MS);
    if ms > MAX_SLOW_MS {
        return Err(format!("ms={ms} is over the limit of {MAX_SLOW_MS}\n"));
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(format!("slept {ms} ms\n"))
}

/// `/block?ms=N`: the wrong way to wait, blocking the runtime thread (shows on the event-loop
/// delay of `/stats`).
pub(crate) fn block(ms: Option<u64>) -> Result<String, String> {
    let ms = ms.unwrap_or(DEFAULT_SLOW_MS);
    if ms > MAX_BLOCK_MS {
        return Err(format!("ms={ms} is over the limit of {MAX_BLOCK_MS}\n"));
    }
    std::thread::sleep(Duration::from_millis(ms));
    Ok(format!("blocked the runtime thread for {ms} ms\n"))
}

/// Chunks of `/stream`.
pub(crate) const STREAM_CHUNKS: u32 = 5;
/// Chunks `/stream?fail=1` sends before its body fails.
pub(crate) const CHUNKS_BEFORE_FAILURE: u32 = 3;
/// Default time between two chunks of `/stream`, in milliseconds.
pub(crate) const DEFAULT_CHUNK_MS: u64 = 50;

/// Query of `/stream`.
#[derive(serde::Deserialize)]
pub(crate) struct StreamQuery {
    /// Time between two chunks, in milliseconds.
    pub(crate) ms: Option<u64>,
    /// Not zero: the body fails after [`CHUNKS_BEFORE_FAILURE`] chunks.
    pub(crate) fail: Option<u8>,
}

/// `/stream?ms=N&fail=1`: 5 chunks of 8 bytes, N ms apart (default 50, at most 60 000); with
/// `fail=1`, the body fails after 3 chunks (the server cuts the response short). Or why it will
/// not stream.
pub(crate) fn chunks(
    query: &StreamQuery,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>>, String> {
    let ms = query.ms.unwrap_or(DEFAULT_CHUNK_MS);
    if ms > MAX_SLOW_MS {
        return Err(format!("ms={ms} is over the limit of {MAX_SLOW_MS}\n"));
    }
    let fail = query.fail.is_some_and(|f| f != 0);
    Ok(futures_util::stream::unfold(0u32, move |i| async move {
        if i == STREAM_CHUNKS {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if fail && i == CHUNKS_BEFORE_FAILURE {
            let error = std::io::Error::other("the demo's /stream?fail=1 fails on purpose");
            return Some((Err(error), STREAM_CHUNKS));
        }
        Some((Ok(Bytes::from(format!("chunk {i}\n"))), i + 1))
    }))
}

/// `/api/v1/orders/{order}/items/{item}` (a nested router / scope).
pub(crate) fn item(order: &str, item: &str) -> Value {
    json!({ "order": order, "item": item })
}

/// `POST /echo`: answers how many bytes the body had.
pub(crate) fn echo(body: &[u8]) -> String {
    format!("{} bytes\n", body.len())
}

/// `/panic`.
pub(crate) fn panic_now() -> ! {
    panic!("the demo's /panic handler panics on purpose")
}

// ---- axum ----

#[derive(serde::Deserialize)]
pub(crate) struct SlowQuery {
    pub(crate) ms: Option<u64>,
}

/// `/ws`: a WebSocket that echoes each text message, its session counted by the guard it
/// holds (axum's `ws` feature).
async fn ws(point: Point, upgrade: axum::extract::WebSocketUpgrade) -> axum::response::Response {
    use axum::extract::ws::Message;
    let session = point.upgraded_session();
    upgrade.on_upgrade(move |mut socket| async move {
        let _session = session;
        while let Some(Ok(message)) = socket.recv().await {
            let sent = match message {
                Message::Text(text) => socket.send(Message::Text(text)).await,
                Message::Close(_) => break,
                // Pings are answered by axum itself.
                _ => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
    })
}

/// The demo routes on axum, without any middleware.
pub(crate) fn routes() -> Router {
    let api = Router::new().route(
        "/orders/{order}/items/{item}",
        get(|Path((o, i)): Path<(String, String)>| async move { Json(item(&o, &i)) }),
    );
    Router::new()
        .route(
            "/users/{id}",
            get(|point: Point, Path(id): Path<String>| async move { Json(user(&point, id).await) }),
        )
        .route(
            "/error",
            get(|point: Point| async move { (StatusCode::INTERNAL_SERVER_ERROR, Json(error(&point))) }),
        )
        .route(
            "/slow",
            get(|Query(q): Query<SlowQuery>| async move {
                match slow(q.ms).await {
                    Ok(text) => (StatusCode::OK, text),
                    Err(text) => (StatusCode::BAD_REQUEST, text),
                }
            }),
        )
        .route(
            "/block",
            get(|Query(q): Query<SlowQuery>| async move {
                match block(q.ms) {
                    Ok(text) => (StatusCode::OK, text),
                    Err(text) => (StatusCode::BAD_REQUEST, text),
                }
            }),
        )
        .route(
            "/stream",
            get(|Query(q): Query<StreamQuery>| async move {
                match chunks(&q) {
                    Ok(stream) => axum::body::Body::from_stream(stream).into_response(),
                    Err(text) => (StatusCode::BAD_REQUEST, text).into_response(),
                }
            }),
        )
        .route("/panic", get(|| async { panic_now() as &'static str }))
        .route("/ws", get(ws))
        .route("/echo", axum::routing::post(|body: Bytes| async move { echo(&body) }))
        .nest("/api/v1", api)
}

/// The demo app on axum: routes, `/metrics` and `/health*`, monitoring, panic-to-500.
///
/// The layer comes last: axum's `Router::merge` keeps the merged router's default fallback,
/// which would not carry a layer added before it, and 404s would go unrecorded.
pub(crate) fn axum_app(monitor: &Monitor) -> Router {
    routes()
        .merge(endpoints(monitor))
        .layer(vitalsign::RequestBodySizeLayer)
        .layer(MonitorLayer::new(monitor))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
}
