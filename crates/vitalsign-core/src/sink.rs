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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::health::Level;
use crate::{AggregatePoint, ErrorPoint, Method, RequestPoint};

/// What a push sink reports about its queue, for `/metrics`
/// (`vitalsign_sink_*_points_total{sink}`) and `/stats` (`sinks`).
///
/// It may gain fields (`#[non_exhaustive]`): a sink builds it with [`SinkReport::new`] and sets
/// the counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkReport {
    /// The sink's name (the `sink` label).
    pub name: &'static str,
    /// Points delivered.
    pub sent: u64,
    /// Points dropped (queue full, rejected by the server, or undeliverable).
    pub dropped: u64,
    /// Points waiting in the queue.
    pub queued: u64,
}

impl SinkReport {
    /// The report of the sink named `name` (the `sink` label), all counts zero.
    ///
    /// ```
    /// use vitalsign_core::SinkReport;
    ///
    /// let mut report = SinkReport::new("my_sink");
    /// report.sent = 10;
    /// report.queued = 2;
    /// assert_eq!(report.dropped, 0);
    /// ```
    pub fn new(name: &'static str) -> Self {
        SinkReport {
            name,
            ..SinkReport::default()
        }
    }
}

/// Receives the monitoring points of a [`Monitor`](crate::Monitor).
///
/// For every request that is not excluded, a sink sees exactly one
/// [`request_started`](Sink::request_started), then exactly one
/// [`record_request`](Sink::record_request) (at end of stream, error, early drop or panic), then,
/// if the classifier calls it an error, one [`record_error`](Sink::record_error), then one
/// [`request_finished`](Sink::request_finished).
///
/// A sink that panics never fails a request: the panic is contained, counted in
/// `vitalsign_sink_panics_total{sink}` and logged once, and the other sinks still get the point.
pub trait Sink: Send + Sync + fmt::Debug + 'static {
    /// The sink's name: the `sink` label of `vitalsign_sink_*` series. Defaults to the name of
    /// [`Sink::report`] when the sink reports, else to the type's name without its path.
    fn name(&self) -> &'static str {
        match self.report() {
            Some(report) => report.name,
            None => short_type_name(std::any::type_name::<Self>()),
        }
    }

    /// A request began (for in-flight gauges). Defaults to doing nothing.
    fn request_started(&self, method: Method) {
        let _ = method;
    }

    /// Whether this sink reads [`RequestPoint::request_id`]. Defaults to `true`; a sink that
    /// never does returns `false`, and when no sink does, ids are only made for handlers that
    /// ask (points then carry [`RequestId::EMPTY`](crate::RequestId::EMPTY)).
    fn needs_request_id(&self) -> bool {
        true
    }

    /// Whether this sink reads [`RequestPoint::head_time`]. Defaults to `true`; a sink that
    /// never does returns `false`, and when no sink does, the response head is not timed
    /// (points then carry `None`: one clock reading a request fewer).
    fn needs_head_time(&self) -> bool {
        true
    }

    /// A request finished; `point` borrows from the monitor, copy what you keep.
    fn record_request(&self, point: &RequestPoint<'_>);

    /// A request started with [`Sink::request_started`] is over (called after
    /// [`Sink::record_request`] and [`Sink::record_error`]; also passed through by a
    /// [`PeriodAggregator`](crate::sinks::PeriodAggregator)). For in-flight gauges. Defaults to
    /// doing nothing.
    fn request_finished(&self, method: Method) {
        let _ = method;
    }

    /// A gRPC call began (feature `rpc`), in place of [`Sink::request_started`]. Defaults to
    /// `request_started(Method::Post)`.
    fn rpc_started(&self) {
        self.request_started(Method::Post);
    }

    /// A gRPC call started with [`Sink::rpc_started`] is over, in place of
    /// [`Sink::request_finished`]. Defaults to `request_finished(Method::Post)`.
    fn rpc_finished(&self) {
        self.request_finished(Method::Post);
    }

    /// A request failed (called after [`Sink::record_request`]). Defaults to doing nothing.
    fn record_error(&self, point: &ErrorPoint<'_>) {
        let _ = point;
    }

    /// One aggregate of a period, from a [`PeriodAggregator`](crate::sinks::PeriodAggregator)
    /// placed in front of this sink. Defaults to doing nothing.
    fn record_aggregate(&self, point: &AggregatePoint<'_>) {
        let _ = point;
    }

    /// Sends what is queued; the receiver completes when the queue is empty (called by
    /// [`Monitor::shutdown`](crate::Monitor::shutdown) within its deadline). Defaults to
    /// `None`: nothing queued.
    fn flush(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        None
    }

    /// Queue figures of a push sink. Defaults to `None`.
    fn report(&self) -> Option<SinkReport> {
        None
    }

    /// An upgraded session (a WebSocket) on `route` began: its request was recorded with
    /// status 101 and its handler holds an [`UpgradedSession`](crate::UpgradedSession).
    /// Defaults to doing nothing.
    fn upgraded_session_started(&self, route: &str) {
        let _ = route;
    }

    /// That session ended after `duration` (its guard was dropped). Defaults to doing nothing.
    fn upgraded_session_ended(&self, route: &str, duration: std::time::Duration) {
        let _ = (route, duration);
    }

    /// A health component has a new level (called once per component at start, then on
    /// each change). Defaults to doing nothing.
    fn health_changed(&self, component: &str, level: Level) {
        let _ = (component, level);
    }

    /// An annotation was recorded ([`Monitor::annotate`](crate::Monitor::annotate), the
    /// `POST /annotations/{stream}` endpoint, or vitalsign's own `lifecycle` and `health`
    /// events); `service` is the monitor's. Rare, never on the request path; it must not block
    /// all the same. Defaults to doing nothing.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use vitalsign_core::annotation::{Annotation, AnnotationEvent};
    /// use vitalsign_core::{Monitor, RequestPoint, Sink};
    ///
    /// #[derive(Debug, Default)]
    /// struct Titles(Mutex<Vec<String>>);
    ///
    /// impl Sink for Titles {
    ///     fn record_request(&self, _point: &RequestPoint<'_>) {}
    ///     fn record_annotation(&self, _service: &str, event: &AnnotationEvent) {
    ///         self.0.lock().unwrap().push(event.title.clone());
    ///     }
    /// }
    ///
    /// let titles = std::sync::Arc::new(Titles::default());
    /// let monitor = Monitor::builder("shop").sink(titles.clone()).build().unwrap();
    /// monitor.annotate("deploys", Annotation::new("v2")).unwrap();
    /// assert_eq!(*titles.0.lock().unwrap(), ["shop unknown started", "v2"]);
    /// ```
    fn record_annotation(&self, service: &str, event: &crate::annotation::AnnotationEvent) {
        let _ = (service, event);
    }
}

/// `a::b::Type<c::D>` → `Type`.
fn short_type_name(name: &'static str) -> &'static str {
    let base = name.split('<').next().unwrap_or(name);
    base.rsplit("::").next().unwrap_or(base)
}

/// Panics of each sink of a monitor, then of its error classifier (the last slot).
#[derive(Debug)]
pub(crate) struct Panics {
    names: Box<[&'static str]>,
    counts: Box<[AtomicU64]>,
    logged: Box<[AtomicBool]>,
}

impl Panics {
    /// The name of the error classifier's slot.
    pub(crate) const CLASSIFIER: &'static str = "error_classifier";

    pub(crate) fn new(sinks: &[Arc<dyn Sink>]) -> Self {
        let names: Box<[&'static str]> = sinks
            .iter()
            .map(|s| s.name())
            .chain(std::iter::once(Self::CLASSIFIER))
            .collect();
        Panics {
            counts: names.iter().map(|_| AtomicU64::new(0)).collect(),
            logged: names.iter().map(|_| AtomicBool::new(false)).collect(),
            names,
        }
    }

    /// Slot `index` panicked: count it, log the first time.
    pub(crate) fn panicked(&self, index: usize) {
        let Some(count) = self.counts.get(index) else {
            return;
        };
        count.fetch_add(1, Ordering::Relaxed);
        if !self.logged[index].swap(true, Ordering::Relaxed) {
            tracing::error!(
                sink = self.names[index],
                "vitalsign: a sink panicked; the request is still served and recorded by the \
                 other sinks (counted in vitalsign_sink_panics_total, logged once per sink)"
            );
        }
    }

    /// `(name, panics)` of every slot (read by the Prometheus sink).
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.names
            .iter()
            .zip(self.counts.iter())
            .map(|(name, count)| (*name, count.load(Ordering::Relaxed)))
    }
}
