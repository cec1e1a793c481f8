//! The [`Sink`] plugin trait: where finished points go.
//!
//! A sink is called on the request path, so it must not block: a push sink hands points to a
//! bounded queue drained by a background task; the Prometheus sink records into pre-registered
//! atomic handles.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use vitalsign_core::{ErrorPoint, Monitor, OwnedRequestPoint, RequestPoint, Sink};
//!
//! #[derive(Debug, Default)]
//! struct Collect(Mutex<Vec<OwnedRequestPoint>>);
//!
//! impl Sink for Collect {
//!     fn record_request(&self, point: &RequestPoint<'_>) {
//!         self.0.lock().unwrap().push(point.to_owned_point());
//!     }
//! }
//!
//! let sink = Arc::new(Collect::default());
//! let monitor = Monitor::builder("shop").sink(sink.clone()).build().unwrap();
//! # let _ = monitor;
//! ```

use std::fmt;

use crate::health::Level;
use crate::{ErrorPoint, Method, RequestPoint};

/// Receives the monitoring points of a [`Monitor`](crate::Monitor).
///
/// For every request that is not excluded, a sink sees exactly one
/// [`request_started`](Sink::request_started), then exactly one
/// [`record_request`](Sink::record_request) (at end of stream, error, early drop or panic), then,
/// if the classifier calls it an error, one [`record_error`](Sink::record_error).
pub trait Sink: Send + Sync + fmt::Debug + 'static {
    /// A request began (for in-flight gauges). Defaults to doing nothing.
    fn request_started(&self, method: Method) {
        let _ = method;
    }

    /// A request finished; `point` borrows from the monitor, copy what you keep.
    fn record_request(&self, point: &RequestPoint<'_>);

    /// A request failed (called after [`Sink::record_request`]). Defaults to doing nothing.
    fn record_error(&self, point: &ErrorPoint<'_>) {
        let _ = point;
    }

    /// A health component has a new level (called once per component at start, then on
    /// each change). Defaults to doing nothing.
    fn health_changed(&self, component: &str, level: Level) {
        let _ = (component, level);
    }
}
