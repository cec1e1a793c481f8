//! actix-web middleware of [vitalsign](https://docs.rs/vitalsign): [`Monitoring`] (which
//! answers vitalsign's endpoints too, with [`Monitoring::with_endpoints`]), the [`Point`]
//! extractor and the [`configure`] endpoints, fed by the same
//! [`Monitor`](vitalsign_core::Monitor) as the Tower layer and holding no rule of its own.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use vitalsign_actix::{Monitoring, Point};
//! use vitalsign_core::Monitor;
//!
//! async fn user(point: Point) -> &'static str {
//!     point.tag("handler_id", "user");
//!     "user"
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let monitor = Monitor::builder("shop").build().unwrap();
//! HttpServer::new(move || {
//!     App::new()
//!         .wrap(Monitoring::new(&monitor).with_endpoints()) // + /metrics, /health*, /stats, ...
//!         .route("/users/{id}", web::get().to(user))
//! })
//! .bind("127.0.0.1:3000")?
//! .run()
//! .await
//! # }
//! ```
//!
//! Its types pair with the Tower layer's (`vitalsign-tower`): [`Monitoring`] /
//! `MonitorLayer`, [`MonitoringMiddleware`] / `MonitorService`, [`ResponseFuture`],
//! [`ResponseBody`], [`RequestBodySize`] / `RequestBodySizeLayer`,
//! [`RequestBodySizeMiddleware`] / `RequestBodySize`, [`Point`],
//! [`Monitoring::with_endpoints`] or [`configure`] / `axum::endpoints` (the full table is in the `vitalsign` facade's documentation).
//!
//! # What is recorded when
//!
//! Exactly as with the Tower layer: once, when the response body's last chunk has been
//! produced (or at once when there is nothing to send: HEAD, 204, 304, empty bodies), as an
//! error with error code `body_error` when the body yields `Err`, or as a disconnect when actix
//! drops the future or the body first; a panic is a 500 with error code `panic`.
//!
//! # Client hang-ups: what actix lets a middleware see
//!
//! A disconnect is recorded when actix drops the response future or body before its end, which
//! it does when it learns that the client has gone. It learns it later than hyper (axum):
//!
//! - A hang-up *while the handler is still running* is not seen at all: actix keeps running the
//!   handler and writes the (small) response into the closed socket, a complete response.
//!   hyper drops the handler: a disconnect with status 499.
//! - An orderly close (FIN) *during a streamed body* is seen only when a write into the socket
//!   fails, as actix allows half-closed connections by default. The first write after the close
//!   still succeeds (the client's system answers it with a reset), so the body is polled until
//!   the second write, two more chunks for a body whose chunks come some time apart: a hang-up
//!   with three or more chunks to go is a disconnect, one with one or two chunks to go is a
//!   complete response with all its bytes. hyper reads the close at once: a disconnect in
//!   every case.
//! - A connection reset (a client that closes with unread data, or with `SO_LINGER` 0) is seen
//!   at once, as with hyper.
//!
//! With [`HttpServer::h1_allow_half_closed(false)`](actix_web::HttpServer::h1_allow_half_closed),
//! actix ends the connection at the client's close, as hyper does, and every hang-up during a
//! streamed body is a disconnect (clients that half-close their side after sending a request
//! are then cut off).
//!
//! # Feature flags
//!
//! None. `/metrics` ([`Monitoring::with_endpoints`], [`configure`]) renders the monitor's Prometheus sink whenever it has one
//! (`vitalsign-core`'s `prometheus` feature, which the `vitalsign` facade turns on by default).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod endpoints;
mod extract;
mod middleware;
mod request_body;
mod routes;

pub use body::ResponseBody;
pub use endpoints::configure;
pub use extract::Point;
pub use middleware::{Monitoring, MonitoringMiddleware, ResponseFuture};
pub use request_body::{RequestBodySize, RequestBodySizeMiddleware};
/// The admin listener (feature `admin`): [`ServeAdmin::serve_admin`] serves the monitor's
/// endpoints on a listener of their own, beside the actix `HttpServer` (re-exported from
/// `vitalsign_core::admin`; hyper's HTTP/1 server, no axum).
#[cfg(feature = "admin")]
pub use vitalsign_core::admin::{AdminServer, ServeAdmin};
