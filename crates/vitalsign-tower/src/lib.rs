//! Tower layer of [vitalsign](https://docs.rs/vitalsign): [`MonitorLayer`], [`MonitorService`],
//! [`ResponseFuture`] and [`ResponseBody`], for axum, tonic or any Tower stack.
//!
//! Every request becomes a monitoring point of the [`Monitor`](vitalsign_core::Monitor): route
//! template, method, status, execution time until the response body's last frame (or its early
//! drop), request id, and what the handler added through its
//! [`PointHandle`](vitalsign_core::PointHandle).
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//! use vitalsign_core::Monitor;
//! use vitalsign_tower::{axum::endpoints, MonitorLayer};
//!
//! let monitor = Monitor::builder("shop").build()?;
//! let app = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .merge(endpoints(&monitor))
//!     .layer(MonitorLayer::new(&monitor));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # What is recorded when
//!
//! - The request is recorded once: when the body yields its last frame or an error, at once for
//!   a body that is already empty (HEAD, 204), or, if the response future or the body is dropped
//!   first, as a disconnect (status 499 when no response head existed yet).
//! - A handler that panics is recorded as status 500 with error code `panic`, whether or not
//!   tower-http's `CatchPanicLayer` turns the panic into a response.
//!
//! # Feature flags
//!
//! None is on by default (as in tower-http).
//!
//! - `axum`: the `axum` module: routes from `MatchedPath` (which the [`DefaultResolver`] of
//!   [`MonitorLayer::new`] then reads at run time; its type stays the same), the `Point`
//!   extractor, the `endpoints` router and the admin listener.
//!
//! - `grpc`: the `grpc` module, [`GrpcLayer`](grpc::GrpcLayer) for tonic servers: every call
//!   under the OpenTelemetry RPC conventions (`rpc_server_*`), with its gRPC status and
//!   message counts.
//!
//! `/metrics` is served whenever the monitor has a Prometheus sink (`vitalsign-core`'s
//! `prometheus` feature); this crate has no feature of its own for it.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
pub mod axum;
mod body;
mod future;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
mod layer;
mod request_body;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::{
    DefaultResolver, MonitorLayer, NoRoute, RequestHead, ResolveRoute, RouteFn, UriPath,
};
pub use request_body::{CountingBody, RequestBodySize, RequestBodySizeLayer};
pub use service::MonitorService;
