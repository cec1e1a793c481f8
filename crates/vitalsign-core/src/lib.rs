//! Framework-independent core of [vitalsign](https://docs.rs/vitalsign): monitoring points,
//! route and method policy, the [`Monitor`], error classification and [`Sink`]s.
//!
//! Adapters (the Tower layer in `vitalsign-tower`, the actix-web middleware) extract
//! `(method, route template, status, timings)` from their framework and drive a
//! [`Flight`](adapter::Flight) obtained from [`adapter::begin`]; every rule lives here, once.
//! The [`adapter`] module has what a new adapter needs.
//!
//! ```
//! use vitalsign_core::adapter::{self, RequestStart};
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop").build()?;
//! let mut flight = adapter::begin(
//!     &monitor,
//!     RequestStart::new(b"GET", "/users/7").with_route(Some("/users/{id}")),
//! );
//! flight.set_status(200);
//! flight.complete();
//! let metrics = monitor.render_metrics().unwrap();
//! assert!(metrics.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/users/{id}",http_response_status_code="200"} 1"#));
//! # Ok::<(), vitalsign_core::ConfigError>(())
//! ```
//!
//! # Feature flags
//!
//! - `prometheus` (default): the Prometheus sink ([`prometheus::PrometheusSink`]), built on
//!   `metrics` and `metrics-exporter-prometheus`.
//! - `stats` (default): `/stats` (process, OS, runtime, request figures, custom stats) and,
//!   with `prometheus`, the standard `process_*` series and Tokio runtime gauges.
//! - `slo`: service-level objectives (`MonitorBuilder::objective`) and the Prometheus rules
//!   and Grafana dashboard generated from them (module `slo`). Includes `prometheus`.
//! - `status`: `/status`, a self-contained HTML status page, and `/status/data`, the JSON
//!   document it reads (module `status`), with a bounded history of samples. Includes `stats`
//!   and `prometheus`.
//! - `native-histograms`: Prometheus native histograms of the request duration
//!   (`MonitorBuilder::native_histograms`, module `prometheus`) and the protobuf exposition
//!   format on `/metrics` (`Monitor::render_metrics_protobuf`), served when the scraper's
//!   `Accept` header prefers it; encoded with prost. Includes `prometheus`.
//! - `admin`: the admin listener ([`admin::ServeAdmin`]), vitalsign's endpoints on a listener
//!   of their own for any framework, on hyper's HTTP/1 server.
//! - `tracing-otel`: a request without a valid `traceparent` header takes its trace (exemplar,
//!   request id) from the current `tracing` span's OpenTelemetry context
//!   (tracing-opentelemetry's layer); see [`trace`].
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapter;
#[cfg(feature = "admin")]
pub mod admin;
pub mod annotation;
mod auth;
mod cache;
mod classify;
pub mod endpoint;
mod error;
mod handle;
pub mod health;
mod interner;
mod memory;
mod method;
mod monitor;
mod point;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod request_id;
#[cfg(feature = "rpc")]
pub mod rpc;
mod sink;
pub mod sinks;
#[cfg(feature = "slo")]
pub mod slo;
#[cfg(feature = "stats")]
pub mod stats;
#[cfg(feature = "status")]
pub mod status;
#[cfg(test)]
mod testing;
pub mod trace;

pub use classify::{ClassifyError, DefaultClassifier};
pub use endpoint::{Endpoint, Endpoints};
pub use handle::{PointHandle, SectionTimer, UpgradedSession, SESSION_DURATION_BUCKETS};
pub use memory::{MemorySink, OwnedErrorPoint};
pub use method::Method;
pub use monitor::{
    ConfigError, ConfigErrorKind, Monitor, MonitorBuilder, RequestInfo, DEFAULT_DURATION_BUCKETS,
    DEFAULT_EXCLUDED_PATHS, DEFAULT_MAX_LABEL_SETS, MAX_LABEL_TAGS, OVERFLOW_ROUTE,
    RESERVED_LABEL_NAMES,
};
pub use point::{
    AggregatePoint, ErrorPoint, Field, FieldValue, OwnedRequestPoint, RequestPoint, Tag,
    CLIENT_CLOSED_REQUEST, UNMATCHED_ROUTE,
};
pub use request_id::{RequestId, REQUEST_ID_HEADER};
pub use sink::{Sink, SinkReport};
#[cfg(feature = "slo")]
pub use slo::Objective;
pub use trace::{TraceContext, TRACEPARENT_HEADER};
