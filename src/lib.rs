//! # vitalsign
//!
//! Vital signs for Rust web services. Wrap an axum router in [`MonitorLayer`] and every request
//! becomes a monitoring point — route template, method, status, execution time until the last
//! body byte, request id, handler-added tags and fields — that feeds Prometheus `/metrics` and
//! any [`Sink`] you plug in.
//!
//! ```no_run
//! # #[cfg(all(feature = "axum", feature = "prometheus"))]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//! use vitalsign::{axum::endpoints, Monitor, MonitorLayer};
//!
//! let monitor = Monitor::builder("shop").build()?;
//! let app = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .merge(endpoints(&monitor))
//!     .layer(MonitorLayer::new(&monitor));
//! axum::serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?, app).await?;
//! # Ok(()) }
//! ```
//!
//! Handlers reach their own point through the [`axum::Point`] extractor:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use vitalsign::axum::Point;
//!
//! async fn get_user(point: Point) -> &'static str {
//!     point.tag("handler_id", "get_user").field("cache_hit", true);
//!     let _db = point.time("db_time"); // seconds spent until `_db` drops
//!     "user"
//! }
//! # }
//! ```
//!
//! # Exported metrics
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_server_request_duration_seconds` | histogram | `http_request_method`, `http_route`, `http_response_status_code` |
//! | `http_server_active_requests` | gauge | `http_request_method` |
//! | `http_server_errors_total` | counter | the three above + `error_code` |
//! | `http_server_disconnects_total` | counter | `http_request_method`, `http_route` |
//!
//! # Feature flags
//!
//! - `axum` (default): the Tower layer ([`MonitorLayer`], [`tower`]) with its axum integration
//!   (the [`axum`] module: `MatchedPath` routes, the `Point` extractor, the `endpoints` router,
//!   the admin listener). Includes `tower`.
//! - `tower`: the Tower layer alone, for tonic or plain Tower stacks (pick a route resolver).
//! - `prometheus` (default): the Prometheus sink and `/metrics` (the [`prometheus`] module,
//!   [`metrics`] and [`metrics_exporter_prometheus`] re-exported).
//! - `stats`: `/stats` (process, OS, runtime, request figures, custom stats) and, with
//!   `prometheus`, the standard `process_*` series and the Tokio runtime gauges. Off by default
//!   (it adds about a tenth to a clean build); without it `/stats` answers 404 and says why.
//! - `status`: `/status`, a self-contained HTML status page, and `/status/data`, the JSON
//!   document it reads (the `status` module); includes `stats` and `prometheus`. Without it
//!   both answer 404 and say why.
//! - `actix`: the actix-web middleware (the `actix` module).
//! - `influx`: the InfluxDB push sink (`sinks::InfluxSink`), with TLS for `https://` URLs.
//! - `influx-base`: the InfluxDB push sink without TLS (`http://` URLs and UDP).
//! - `influx-tls`: TLS for the InfluxDB sink (rustls on ring, the system's root certificates).
//! - `statsd`: the StatsD push sink (`sinks::StatsdSink`).
//! - `otel`: the OpenTelemetry sink (`sinks::OtelSink`): HTTP semantic-convention instruments
//!   in the application's `MeterProvider`, or exported over OTLP/HTTP (protobuf).
//! - `slo`: service-level objectives (`Objective`, `MonitorBuilder::objective`) and the
//!   Prometheus rule file and Grafana dashboard generated from them (`slo`). Includes
//!   `prometheus`.
//! - `native-histograms`: Prometheus native histograms of the request duration
//!   (`MonitorBuilder::native_histograms`) and the protobuf exposition format on `/metrics`,
//!   served when the scraper's `Accept` header prefers it (prost). Includes `prometheus`.
//! - `admin` (comes with `axum`; add it to `actix`): the admin listener ([`admin::ServeAdmin`]): the
//!   endpoints on a listener of their own (hyper's HTTP/1 server), whatever the framework.
//! - `tracing-otel`: a request without a valid `traceparent` header takes its trace (exemplar,
//!   request id) from the current `tracing` span's OpenTelemetry context
//!   (tracing-opentelemetry's layer); see the `trace` module.
//!
//! Features only add: turning one on anywhere in a dependency graph changes no type. An
//! actix-only build (`default-features = false, features = ["actix", "prometheus"]`) compiles
//! nothing of the Tower adapter.
//!
//! # Tower and actix-web names
//!
//! The two adapters behave the same and their parts pair up; each follows its framework's
//! habit (Tower: `FooLayer` makes the service `Foo`; actix-web: the `Transform` `Foo` makes the
//! service `FooMiddleware`).
//!
//! | Tower / axum (`axum`, `tower` features) | actix-web (`actix` feature) |
//! |---|---|
//! | `MonitorLayer` (a `Layer`, `Router::layer`) | `actix::Monitoring` (a `Transform`, `App::wrap`) |
//! | `tower::MonitorService<S>` | `actix::MonitoringMiddleware<S>` |
//! | `tower::ResponseFuture` | `actix::ResponseFuture` |
//! | `tower::ResponseBody` | `actix::ResponseBody` |
//! | `RequestBodySizeLayer` | `actix::RequestBodySize` |
//! | `tower::RequestBodySize<S>` | `actix::RequestBodySizeMiddleware<S>` |
//! | `tower::CountingBody<B>` (the counted request body) | none (the payload stream is replaced inside) |
//! | `axum::Point` (extractor) | `actix::Point` (extractor) |
//! | `axum::endpoints(&monitor)` (a `Router` to merge) | `actix::Monitoring::with_endpoints()` (the middleware answers them), or `actix::configure(&monitor)` (for `App::configure`) |
//! | `admin::ServeAdmin` (admin listener, also `axum::ServeAdmin`) | the same trait (also `actix::ServeAdmin`), on actix's Tokio runtime |
//! | route resolvers (`tower::DefaultResolver`, `UriPath`, `tower::NoRoute`, `route_fn`) | none: actix's matched resource pattern |
//!
//! # Writing an adapter
//!
//! What only adapters use (the request guard, `begin`, the probes) is in [`adapter`]; the
//! endpoints' framework-independent answers are in [`endpoint`].
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "admin")]
pub use vitalsign_core::admin;
#[cfg(feature = "prometheus")]
pub use vitalsign_core::prometheus;
#[cfg(feature = "slo")]
pub use vitalsign_core::slo;
#[cfg(feature = "slo")]
pub use vitalsign_core::slo::Objective;
#[cfg(feature = "stats")]
pub use vitalsign_core::stats;
#[cfg(feature = "status")]
pub use vitalsign_core::status;
pub use vitalsign_core::{
    adapter, annotation, endpoint, health, sinks, AggregatePoint, ClassifyError, ConfigError,
    ConfigErrorKind, DefaultClassifier, Endpoint, Endpoints, ErrorPoint, Field, FieldValue,
    MemorySink, Method, Monitor, MonitorBuilder, OwnedErrorPoint, OwnedRequestPoint, PointHandle,
    RequestId, RequestInfo, RequestPoint, SectionTimer, Sink, SinkReport, Tag, UpgradedSession,
    CLIENT_CLOSED_REQUEST, DEFAULT_DURATION_BUCKETS, DEFAULT_EXCLUDED_PATHS,
    DEFAULT_MAX_LABEL_SETS, MAX_LABEL_TAGS, OVERFLOW_ROUTE, REQUEST_ID_HEADER,
    RESERVED_LABEL_NAMES, SESSION_DURATION_BUCKETS, UNMATCHED_ROUTE,
};
pub use vitalsign_core::{trace, TraceContext, TRACEPARENT_HEADER};
#[cfg(feature = "tower")]
pub use vitalsign_tower::{MonitorLayer, RequestBodySizeLayer, UriPath};

/// The `metrics` crate this version records with (feature `prometheus`): the application's own
/// `metrics::counter!`s appear on the same `/metrics` when the monitor shares its recorder.
#[cfg(feature = "prometheus")]
pub use metrics;
/// The `metrics-exporter-prometheus` crate whose `PrometheusHandle` and `PrometheusRecorder`
/// [`MonitorBuilder::prometheus_handle`] and [`MonitorBuilder::prometheus_recorder`] take
/// (feature `prometheus`).
#[cfg(feature = "prometheus")]
pub use metrics_exporter_prometheus;

/// axum integration: [`axum::Point`] extractor, [`axum::endpoints`] router, `MatchedPath` routes.
#[cfg(feature = "axum")]
pub mod axum {
    pub use vitalsign_tower::axum::*;
}

/// actix-web middleware: [`actix::Monitoring`] (which answers the endpoints with
/// [`actix::Monitoring::with_endpoints`]), the [`actix::Point`] extractor and
/// [`actix::configure`] for the endpoints of an app without the middleware (feature `actix`).
///
/// ```
/// use actix_web::{web, App};
/// use vitalsign::{actix::Monitoring, Monitor};
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// let app = App::new()
///     .wrap(Monitoring::new(&monitor).with_endpoints())
///     .route("/users/{id}", web::get().to(|| async { "user" }));
/// # let _ = app;
/// ```
#[cfg(feature = "actix")]
pub mod actix {
    pub use vitalsign_actix::*;
}

/// The Tower layer and its parts: route resolvers ([`tower::UriPath`], [`tower::NoRoute`],
/// [`tower::ResolveRoute`], ...), the service, future and body types (feature `tower`,
/// included in `axum`).
#[cfg(feature = "tower")]
pub mod tower {
    pub use vitalsign_tower::*;
}

/// gRPC (tonic): [`grpc::GrpcLayer`] records every call of a tonic server under the
/// OpenTelemetry RPC semantic conventions; the status codes, error sets and known methods are
/// [`vitalsign_core::rpc`]'s (feature `grpc`).
///
/// ```
/// use vitalsign::grpc::{GrpcCode, GrpcErrorCodes, GrpcLayer};
/// use vitalsign::Monitor;
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// // tonic: `Server::builder().layer(layer).add_service(GreeterServer::new(greeter))`
/// let layer = GrpcLayer::new(&monitor)
///     .service("demo.v1.Greeter") // `GreeterServer::<G>::NAME`
///     .error_codes(GrpcErrorCodes::default().with(GrpcCode::RESOURCE_EXHAUSTED));
/// # let _ = layer;
/// ```
#[cfg(feature = "grpc")]
pub mod grpc {
    pub use vitalsign_core::rpc::*;
    pub use vitalsign_tower::grpc::*;
}

/// The public API's shape, checked by doc tests (`cargo test -p vitalsign --doc`).
///
/// Regression (issue "Ready to adopt (2 of 2)"): the facade re-exported all of
/// `vitalsign_core` (`pub use vitalsign_core::*`), adapter-only types included; structs users
/// receive could not grow; `Method::ALL` froze the number of methods; counts were signed.
///
/// Adapter-only items are not at the facade's root:
///
/// ```compile_fail
/// use vitalsign::Flight;
/// ```
///
/// ```compile_fail
/// use vitalsign::RequestStart;
/// ```
///
/// but in `adapter`, with one guard type:
///
/// ```
/// use vitalsign::adapter::{self, Flight, RequestStart};
///
/// let monitor = vitalsign::Monitor::builder("shop").build().unwrap();
/// let flight: Flight = adapter::begin(&monitor, RequestStart::new(b"GET", "/"));
/// drop(flight);
/// ```
///
/// Points are not built from literals (they may grow):
///
/// ```compile_fail
/// let _ = vitalsign::SinkReport { name: "x", sent: 0, dropped: 0, queued: 0 };
/// ```
///
/// ```
/// let report = vitalsign::SinkReport::new("x");
/// assert_eq!(report.sent, 0);
/// ```
///
/// `Method::ALL` has no length in its type:
///
/// ```compile_fail
/// let _: [vitalsign::Method; 10] = vitalsign::Method::ALL;
/// ```
///
/// Counts are unsigned:
///
/// ```
/// let monitor = vitalsign::Monitor::builder("shop").build().unwrap();
/// let in_flight: u64 = monitor.in_flight();
/// assert_eq!(in_flight, 0);
/// ```
///
/// The endpoint table and the admin listener are reachable from the facade, whatever the
/// adapter:
///
/// ```
/// use vitalsign::{admin::ServeAdmin, Endpoint, Endpoints};
///
/// let endpoints = Endpoints::default().path(Endpoint::Live, "/livez");
/// let monitor = vitalsign::Monitor::builder("shop").endpoints(endpoints).build().unwrap();
/// fn admin_listener<T: ServeAdmin>(_: &T) {}
/// admin_listener(&monitor);
/// ```
#[cfg(doctest)]
pub struct ApiShape;
