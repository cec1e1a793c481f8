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
//! - `axum` (default): the Tower layer's axum integration ([`axum`] module).
//! - `prometheus` (default): the Prometheus sink and `/metrics`.
//! - `actix`: the actix-web middleware (the `actix` module).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use vitalsign_core::*;
#[cfg(feature = "tower")]
pub use vitalsign_tower::{
    DefaultResolver, MonitorLayer, MonitorService, NoRoute, RequestBodySizeLayer, RequestHead,
    ResolveRoute, ResponseBody, ResponseFuture, RouteFn, UriPath,
};

/// axum integration: [`axum::Point`] extractor, [`axum::endpoints`] router, `MatchedPath` routes.
#[cfg(feature = "axum")]
pub mod axum {
    pub use vitalsign_tower::axum::*;
}

/// actix-web middleware: [`actix::Monitoring`], the [`actix::Point`] extractor and
/// [`actix::configure`] for the endpoints (feature `actix`).
///
/// ```
/// use actix_web::{web, App};
/// use vitalsign::{actix::{configure, Monitoring}, Monitor};
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// let app = App::new()
///     .wrap(Monitoring::new(&monitor))
///     .configure(configure(&monitor))
///     .route("/users/{id}", web::get().to(|| async { "user" }));
/// # let _ = app;
/// ```
#[cfg(feature = "actix")]
pub mod actix {
    pub use vitalsign_actix::*;
}

/// The Tower layer and its parts (feature `tower`, included in `axum`).
#[cfg(feature = "tower")]
pub mod tower {
    pub use vitalsign_tower::*;
}
