//! The request-recording pipeline: a request starts, and once it ends its point reaches every sink.

use super::dispatch::SinkRef;
use super::flight::NO_HEAD;
use super::labels::RequestInfo;
use super::routes::Route;
use super::{InFlight, Monitor};
use crate::handle::HandlerScope;
use crate::point::{ErrorPoint, RequestPoint, CLIENT_CLOSED_REQUEST};
use crate::{ClassifyError, Method, RequestId, TraceContext};
use std::sync::atomic::Ordering;

/// What an adapter knows about a request when it arrives.
///
/// It may gain fields (`#[non_exhaustive]`): build it with [`RequestStart::new`] and the
/// `with_*` methods (all `const`, free at run time).
///
/// ```
/// use vitalsign_core::adapter::RequestStart;
///
/// const START: RequestStart<'static> =
///     RequestStart::new(b"GET", "/users/7").with_route(Some("/users/{id}"));
/// assert_eq!(START.request_id, None);
/// ```
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct RequestStart<'a> {
    /// The method token as received.
    pub method: &'a [u8],
    /// The raw path (used only to check exclusions; never a label).
    pub path: &'a str,
    /// The matched route template, if the router matched one.
    pub route: Option<&'a str>,
    /// The `x-request-id` header, if present.
    pub request_id: Option<&'a [u8]>,
    /// The W3C `traceparent` header, if present ([`crate::trace`]).
    pub traceparent: Option<&'a [u8]>,
    /// Looks a request header up by name, for the label functions
    /// ([`MonitorBuilder::label_fn`](crate::MonitorBuilder::label_fn)); see
    /// [`RequestStart::with_headers`].
    headers: Option<&'a HeaderLookup<'a>>,
}

/// Looks a request header up by (lower-case) name: its value's bytes, if present.
pub type HeaderLookup<'a> = dyn Fn(&str) -> Option<&'a [u8]> + 'a;

impl std::fmt::Debug for RequestStart<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStart")
            .field("method", &String::from_utf8_lossy(self.method))
            .field("path", &self.path)
            .field("route", &self.route)
            .field("request_id", &self.request_id.map(String::from_utf8_lossy))
            .field(
                "traceparent",
                &self.traceparent.map(String::from_utf8_lossy),
            )
            .field("headers", &self.headers.is_some())
            .finish()
    }
}

impl<'a> RequestStart<'a> {
    /// A request with this method token and raw path, no route template (yet) and no
    /// `x-request-id` header.
    #[inline]
    pub const fn new(method: &'a [u8], path: &'a str) -> Self {
        RequestStart {
            method,
            path,
            route: None,
            request_id: None,
            traceparent: None,
            headers: None,
        }
    }

    /// With the matched route template (`None`: the router matched none).
    #[inline]
    #[must_use]
    pub const fn with_route(mut self, route: Option<&'a str>) -> Self {
        self.route = route;
        self
    }

    /// With the `x-request-id` header's value.
    #[inline]
    #[must_use]
    pub const fn with_request_id(mut self, request_id: Option<&'a [u8]>) -> Self {
        self.request_id = request_id;
        self
    }

    /// With the W3C `traceparent` header's value ([`TRACEPARENT_HEADER`](crate::TRACEPARENT_HEADER)):
    /// a valid one links the request's duration to its trace (an exemplar, when sampled), and
    /// its trace id is the request id when no `x-request-id` was sent. An invalid one is
    /// ignored.
    #[inline]
    #[must_use]
    pub const fn with_traceparent(mut self, traceparent: Option<&'a [u8]>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// With a lookup of the request's headers by name. The monitor's label functions
    /// ([`MonitorBuilder::label_fn`](crate::MonitorBuilder::label_fn)) read headers through
    /// it when the request begins; it is called only when label functions are configured, so
    /// an adapter can always pass it.
    ///
    /// ```
    /// use vitalsign_core::adapter::{self, RequestStart};
    /// use vitalsign_core::{MemorySink, Monitor};
    /// use std::sync::Arc;
    ///
    /// let sink = Arc::new(MemorySink::new(8));
    /// let monitor = Monitor::builder("shop")
    ///     .sink(sink.clone())
    ///     .label_fn("client", |req| {
    ///         req.header("x-client").map(|v| String::from_utf8_lossy(v).into_owned())
    ///     })
    ///     .build()?;
    /// let headers = |name: &str| (name == "x-client").then_some(&b"mobile"[..]);
    /// let mut flight =
    ///     adapter::begin(&monitor, RequestStart::new(b"GET", "/a").with_headers(&headers));
    /// flight.response(200).complete();
    /// assert_eq!(sink.requests()[0].tags[0].value, "mobile");
    /// # Ok::<(), vitalsign_core::ConfigError>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn with_headers(mut self, headers: &'a HeaderLookup<'a>) -> Self {
        self.headers = Some(headers);
        self
    }
}

/// What a finished request's pass over the sinks calls on each sink, in this order.
#[derive(Clone, Copy)]
enum Stage {
    /// [`Sink::record_request`](crate::Sink::record_request), unless the request is excluded.
    Record,
    /// [`Sink::record_error`](crate::Sink::record_error), if the request is an error.
    Error,
    /// [`Sink::request_finished`](crate::Sink::request_finished) (or `rpc_finished`).
    Finished,
}

/// Error code of a request whose response body failed (see [`InFlight::body_failed`]).
const BODY_ERROR_CODE: &str = "body_error";

impl Monitor {
    /// A request arrives: `None` for an excluded request, otherwise the guard that records it
    /// exactly once. Adapters call [`crate::adapter::begin`], which wraps it in a [`Flight`].
    pub(crate) fn begin(&self, start: &RequestStart<'_>) -> Option<InFlight> {
        if self.is_excluded(start.path, start.route) {
            return None;
        }
        let method = Method::from_bytes(start.method);
        let route = match start.route {
            None => Route::UNMATCHED,
            Some(route) => self.intern(route),
        };
        let trace = match start.traceparent {
            None => None,
            Some(value) => TraceContext::from_traceparent(value),
        };
        #[cfg(feature = "tracing-otel")]
        let trace = trace.or_else(crate::trace::current_span_context);
        // `x-request-id`, else the trace id, else generated only if a sink reads ids
        // (Prometheus and `/stats` do not), or a handler asks.
        let request_id = RequestId::from_header(start.request_id)
            .or_else(|| trace.map(|trace| trace.request_id()))
            .or_else(|| self.inner.needs_request_id.then(RequestId::generate));
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        // Built-in sinks only: their `request_started` is an atomic addition and a load,
        // which cannot panic.
        if let Some(lean) = &self.inner.lean {
            lean.request_started(method);
        } else {
            self.each_sink(|sink| sink.request_started(method));
        }
        let now = self.inner.clock.now();
        Some(InFlight {
            monitor: self.clone(),
            method,
            route,
            start: now,
            scope: HandlerScope::new(request_id, trace),
            status: None,
            head_nanos: NO_HEAD,
            body_bytes: 0,
            route_excluded: false,
            body_failed: false,
            done: false,
        })
    }

    /// Runs the label functions on the request that `flight` records, when some are configured
    /// and the adapter gave a header lookup ([`RequestStart::with_headers`]).
    #[inline]
    pub(crate) fn apply_label_fns(&self, flight: &mut Option<InFlight>, start: &RequestStart<'_>) {
        if let (Some(flight), Some(headers)) = (flight, start.headers) {
            if !self.inner.label_fns.is_empty() {
                flight.apply_label_fns(&RequestInfo::new(start.method, start.path, headers));
            }
        }
    }

    pub(super) fn record(&self, flight: &InFlight, disconnected: bool) {
        if self.record_lean(flight, disconnected) {
            return;
        }
        let own_id;
        let request_id = match (&flight.scope.shared, flight.scope.ids.request_id()) {
            (Some(shared), _) => shared.request_id(),
            (None, Some(id)) => {
                own_id = id;
                &own_id
            }
            (None, None) => &RequestId::EMPTY,
        };
        let panicked = flight.scope.panicked;
        let status = if panicked {
            500
        } else {
            flight.status.unwrap_or(CLIENT_CLOSED_REQUEST)
        };
        let extras = flight.scope.shared.as_ref().map(|shared| shared.lock());
        let (tags, fields, attached_code) = match &extras {
            Some(extras) => (
                &extras.tags[..],
                &extras.fields[..],
                extras.error_code.as_deref(),
            ),
            None => (&[][..], &[][..], None),
        };
        #[cfg(feature = "rpc")]
        let rpc = flight
            .rpc()
            .map(|state| state.call(flight.route(), disconnected && !panicked));
        #[cfg(feature = "rpc")]
        let rpc_tags: Vec<crate::Tag>;
        #[cfg(feature = "rpc")]
        let tags = match &rpc {
            Some(call) => {
                rpc_tags = crate::rpc::tags_of(call, tags);
                &rpc_tags[..]
            }
            None => tags,
        };
        let point = RequestPoint {
            service: &self.inner.service,
            route: flight.route(),
            method: flight.method,
            status_code: status,
            request_id,
            trace: flight.scope.trace(),
            execution_time: self.inner.clock.since(flight.start).as_secs_f64(),
            start_unix_nanos: self.inner.clock.unix_nanos(flight.start),
            disconnected: disconnected && !panicked,
            head_time: (flight.head_nanos != NO_HEAD).then(|| flight.head_nanos as f64 / 1e9),
            response_body_bytes: flight.body_bytes,
            request_body_bytes: flight
                .scope
                .shared
                .as_ref()
                .map_or(0, |shared| shared.request_body_bytes()),
            tags,
            fields,
            #[cfg(feature = "rpc")]
            rpc,
            route_key: match flight.route {
                Route::Slot(slot) => Some(slot),
                Route::Interned(_) => None,
            },
        };
        let status_excluded = self
            .inner
            .excluded_statuses
            .as_ref()
            .is_some_and(|excluded| excluded[usize::from(status).min(599)]);
        let recorded = !status_excluded && !flight.route_excluded;
        let mut status_text = itoa::Buffer::new();
        let error = if recorded {
            if status == 101 {
                if let Some(slot) = extras.as_ref().and_then(|e| e.upgrade.as_ref()) {
                    slot.start(self, point.route);
                }
            }
            let code = attached_code
                .or(panicked.then_some("panic"))
                .or(flight.body_failed.then_some(BODY_ERROR_CODE));
            self.error_point(&point, code, &mut status_text)
        } else {
            None
        };
        #[cfg(feature = "rpc")]
        let is_rpc = rpc.is_some();
        // One pass over the sinks: each gets the point, then its error point if it is one, then
        // the end of the request (a sink's in-flight gauge goes down after its histogram).
        self.each_sink_staged(|sink, stage| match stage {
            Stage::Record => {
                if recorded {
                    sink.record_request(&point);
                }
            }
            Stage::Error => {
                if let Some(error) = &error {
                    sink.record_error(error);
                }
            }
            Stage::Finished => {
                #[cfg(feature = "rpc")]
                if is_rpc {
                    return sink.rpc_finished();
                }
                sink.request_finished(point.method);
            }
        });
        self.request_done();
    }

    /// A recorded request stops being in flight. Only once every sink holds its point: whoever
    /// waits for zero in flight (a drain, a test) then finds it recorded.
    #[inline]
    pub(super) fn request_done(&self) {
        // SeqCst here and in `shutdown`: this decrement-then-read of `draining` and the drain's
        // store-then-read of `in_flight` must not both see the old value (a missed wake-up).
        if self.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
            && self.inner.health.is_draining()
        {
            self.inner.drained.notify_waiters();
        }
    }

    /// The error point of a finished request, if it is an error: a gRPC call's errors are its
    /// statuses in the adapter's `GrpcErrorCodes`; an HTTP request's are what the error
    /// classifier says (`code`: the error code attached, or of a panic or a failed body).
    #[inline]
    fn error_point<'p>(
        &self,
        point: &'p RequestPoint<'p>,
        code: Option<&'p str>,
        status_text: &'p mut itoa::Buffer,
    ) -> Option<ErrorPoint<'p>> {
        #[cfg(feature = "rpc")]
        if let Some(call) = &point.rpc {
            return call.is_error.then(|| ErrorPoint {
                request: point,
                error_code: code.unwrap_or(call.status.name()),
            });
        }
        let is_error = if self.inner.default_classifier {
            // The default rule, called directly: it cannot panic.
            crate::DefaultClassifier.is_error(point, code)
        } else {
            let classifier = &self.inner.classifier.0;
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                classifier.is_error(point, code)
            }))
            .unwrap_or_else(|_| {
                self.inner.panics.panicked(self.inner.sinks.len());
                false
            })
        };
        is_error.then(|| ErrorPoint {
            request: point,
            error_code: code.unwrap_or_else(|| status_text.format(point.status_code)),
        })
    }

    /// Calls `f` on every sink, in the stages of [`Stage`] for each sink before the next sink.
    /// A panic is contained as in [`Monitor::each_sink`]; the sink that panicked still gets its
    /// later stages. One `catch_unwind` covers all unless one panics.
    fn each_sink_staged(&self, mut f: impl FnMut(&SinkRef, Stage)) {
        let sinks = &self.inner.dispatch;
        // The sink to call and how many of its stages are done (its next stage after a panic).
        let (mut next, mut done) = (0, 0);
        while next < sinks.len() {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                while let Some(sink) = sinks.get(next) {
                    if done == 0 {
                        done = 1;
                        f(sink, Stage::Record);
                    }
                    if done == 1 {
                        done = 2;
                        f(sink, Stage::Error);
                    }
                    if done == 2 {
                        done = 3;
                        f(sink, Stage::Finished);
                    }
                    done = 0;
                    next += 1;
                }
            }));
            if run.is_err() {
                self.inner.panics.panicked(next);
                if done == 3 {
                    done = 0;
                    next += 1;
                }
            }
        }
    }

    /// Calls `f` on every sink. A sink that panics is contained: the panic is counted
    /// (`vitalsign_sink_panics_total{sink}`) and logged once, and the other sinks still get
    /// the call. One `catch_unwind` covers all sinks unless one panics.
    pub(super) fn each_sink(&self, mut f: impl FnMut(&SinkRef)) {
        let sinks = &self.inner.dispatch;
        let mut next = 0;
        while next < sinks.len() {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                while let Some(sink) = sinks.get(next) {
                    next += 1;
                    f(sink);
                }
            }));
            if run.is_err() {
                self.inner.panics.panicked(next - 1);
            }
        }
    }

    /// An upgraded session began on `route` (see [`crate::UpgradedSession`]).
    pub(crate) fn upgraded_session_started(&self, route: &str) {
        self.each_sink(|sink| sink.upgraded_session_started(route));
    }

    /// An upgraded session on `route` ended after `duration`.
    pub(crate) fn upgraded_session_ended(&self, route: &str, duration: std::time::Duration) {
        self.each_sink(|sink| sink.upgraded_session_ended(route, duration));
    }
}
