//! For people writing a new adapter (a framework's middleware): what the Tower layer
//! (`vitalsign-tower`) and the actix-web middleware (`vitalsign-actix`) use, and applications
//! do not.
//!
//! An adapter extracts `(method, path, route template, request id, a header lookup)` from its
//! framework's request, calls [`begin`], and carries the returned [`Flight`] to the end of the
//! response body, telling it each step: [`Flight::in_scope`] around every call or poll of the
//! inner service (so that handlers find their point), [`Flight::response`] at the response
//! head, [`Flight::body_starts`], [`Flight::body_bytes`] and [`Flight::complete`] (or
//! [`Flight::body_failed`]) along the body, [`Flight::failed`] when the inner service fails,
//! and [`Flight::path_params`] once the route's parameters are known (if
//! [`Flight::wants_path_params`]).
//! Dropping the flight early records a disconnect. Every rule (exclusions, route cap, label
//! policy, what is recorded when) lives in the flight, once, so that adapters stay thin glue.
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
//! flight.in_scope(|| {
//!     // ... call the handler: it finds its point through `PointHandle::current()`
//!     vitalsign_core::PointHandle::current().unwrap().tag("handler_id", "get_user");
//! });
//! let mut flight = flight.response(200);
//! flight.body_starts(false);
//! flight.body_bytes(4);
//! flight.complete();
//! assert_eq!(monitor.in_flight(), 0);
//! # Ok::<(), vitalsign_core::ConfigError>(())
//! ```
//!
//! The endpoints' answers, shared by both adapters, are in [`crate::endpoint`].

#[cfg(feature = "rpc")]
pub use crate::monitor::RpcStart;
pub use crate::monitor::{
    CallScope, Flight, FlightTable, HeaderLookup, ParkedFlight, RequestStart,
};
use crate::Monitor;

/// A request arrives: the [`Flight`] that records it exactly once (see [`Flight`]), or, for a
/// request excluded from recording, a flight that records nothing.
#[inline]
pub fn begin(monitor: &Monitor, start: RequestStart<'_>) -> Flight {
    let mut flight = monitor.begin(&start);
    monitor.apply_label_fns(&mut flight, &start);
    Flight::from_start(flight)
}

/// A gRPC call arrives (feature `rpc`): the [`Flight`] that records it exactly once, as
/// [`begin`] does for a request, with its gRPC part (see [`crate::rpc`]); tell it the messages
/// sent ([`Flight::rpc_responses`]) and the status ([`Flight::rpc_status`]), and count the
/// messages received through [`Flight::rpc_request_counter`].
#[cfg(feature = "rpc")]
#[inline]
pub fn begin_rpc(monitor: &Monitor, start: RpcStart<'_>) -> Flight {
    Flight::from_start(monitor.begin_rpc(&start))
}

/// Whether a request to this path / route template is excluded from recording
/// ([`MonitorBuilder::exclude_path`](crate::MonitorBuilder::exclude_path)); [`begin`] checks it.
pub fn is_excluded(monitor: &Monitor, path: &str, route: Option<&str>) -> bool {
    monitor.is_excluded(path, route)
}

/// Whether a request to `path` may be routed to an excluded route template (an excluded path
/// with a `{parameter}`, such as `/health/{component}`). For an adapter that reads the route
/// only after routing (actix-web): it resolves the route of such a request when the request
/// arrives, so that the request is left out from its start (never in flight, never started in
/// a sink), as with an adapter that knows its route from the start. Cheap, and false for most
/// paths; may be true for a path that is routed elsewhere.
#[inline]
pub fn may_route_to_excluded_template(monitor: &Monitor, path: &str) -> bool {
    monitor.may_route_to_excluded_template(path)
}

/// Whether adapters put each request's handle into the request's extensions
/// ([`MonitorBuilder::point_in_extensions`](crate::MonitorBuilder::point_in_extensions); see
/// [`Flight::carry`]).
#[inline]
pub fn point_in_extensions(monitor: &Monitor) -> bool {
    monitor.point_in_extensions()
}

/// Starts an event-loop delay probe on the Tokio runtime of the calling thread (once per
/// thread, while that runtime runs; with the `stats` feature). The actix adapter calls it on
/// every worker; nothing happens outside a runtime.
pub fn probe_runtime(monitor: &Monitor) {
    monitor.probe_runtime();
}

/// [`probe_runtime`] on the first call, a relaxed atomic load afterwards (the Tower layer calls
/// it on every request: a multi-thread runtime needs one probe); again once the probed runtime
/// has shut down.
#[inline]
pub fn probe_runtime_once(monitor: &Monitor) {
    monitor.probe_runtime_once();
}
