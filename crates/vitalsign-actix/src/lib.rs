//! actix-web middleware of [vitalsign](https://docs.rs/vitalsign): [`Monitoring`], the
//! [`Point`] extractor and the [`configure`] endpoints, fed by the same
//! [`Monitor`](vitalsign_core::Monitor) as the Tower layer and holding no rule of its own.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use vitalsign_actix::{configure, Monitoring, Point};
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
//!         .wrap(Monitoring::new(&monitor))
//!         .configure(configure(&monitor))
//!         .route("/users/{id}", web::get().to(user))
//! })
//! .bind("127.0.0.1:3000")?
//! .run()
//! .await
//! # }
//! ```
//!
//! # What is recorded when
//!
//! Exactly as with the Tower layer: once, when the response body's last chunk has been
//! produced (or at once when there is nothing to send: HEAD, 204, 304, empty bodies), or as a
//! disconnect when actix drops the future or the body first; a panic is a 500 with error code
//! `panic`. One difference comes from actix itself: when a client hangs up while the handler is
//! still running, actix keeps running it and writes the (small) response into the closed
//! socket, so no middleware can see that hang-up; a hang-up in the middle of a streamed body is
//! seen and counted.
//!
//! # Feature flags
//!
//! - `prometheus` (default): `/metrics` in [`configure`] renders the Prometheus sink.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod endpoints;
mod extract;
mod middleware;
mod request_body;

pub use body::MonitoredBody;
pub use endpoints::configure;
pub use extract::Point;
pub use middleware::{Monitoring, MonitoringFuture, MonitoringMiddleware};
pub use request_body::{CountRequestBody, CountRequestBodyMiddleware};
