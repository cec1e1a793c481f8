//! [`InFlight`] and [`Flight`]: the guard that an adapter carries through a request.

use std::borrow::Cow;
use std::sync::Arc;

use super::labels::RequestInfo;
use super::routes::Route;
#[cfg(doc)]
use super::MonitorBuilder;
use super::{Monitor, OVERFLOW_ROUTE};
use crate::handle::HandlerScope;
#[cfg(doc)]
use crate::point::CLIENT_CLOSED_REQUEST;
use crate::point::UNMATCHED_ROUTE;
use crate::{Method, RequestId};

/// [`InFlight::head_nanos`] before the response head.
pub(super) const NO_HEAD: u64 = u64::MAX;

/// One request being served: the completion guard that adapters carry from the request to the
/// end of the response body.
///
/// Records exactly once: [`InFlight::complete`] for a response that ended normally,
/// [`InFlight::body_failed`] for one whose body failed; dropping it before that records a
/// disconnect (status [`CLIENT_CLOSED_REQUEST`] if no response head was
/// seen), or status 500 with error code `panic` if the inner service panicked inside
/// [`InFlight::in_scope`].
#[derive(Debug)]
#[must_use = "dropping an InFlight records the request as a disconnect"]
pub(crate) struct InFlight {
    pub(super) monitor: Monitor,
    pub(super) method: Method,
    pub(super) route: Route,
    pub(super) start: quanta::Instant,
    pub(super) scope: HandlerScope,
    pub(super) status: Option<u16>,
    /// Nanoseconds from the start to the response head ([`NO_HEAD`] before it).
    pub(super) head_nanos: u64,
    pub(super) body_bytes: u64,
    /// The route set after the start is excluded: nothing is recorded.
    pub(super) route_excluded: bool,
    /// The response body yielded an error ([`InFlight::body_failed`]).
    pub(super) body_failed: bool,
    pub(super) done: bool,
}

impl InFlight {
    /// The request id.
    pub(crate) fn request_id(&mut self) -> RequestId {
        self.scope.request_id()
    }

    /// The route label this request is recorded under.
    pub(crate) fn route(&self) -> &str {
        match &self.route {
            Route::Slot(Route::UNMATCHED_SLOT) => UNMATCHED_ROUTE,
            Route::Slot(Route::OVERFLOW_SLOT) => OVERFLOW_ROUTE,
            Route::Slot(slot) => self.monitor.inner.routes.cached(*slot).map_or("", |r| r),
            Route::Interned(route) => route,
        }
    }

    /// Runs `f` (a call or poll of the inner service or body) with this request as the thread's
    /// current request, so that [`PointHandle::current`](crate::PointHandle::current) finds it,
    /// and notes a panic unwinding out of `f`.
    ///
    /// Each call is timed (two reads of the TSC): the maximum event-loop delay of a collection
    /// interval on `/stats` is at least its longest call, since a poll that blocks holds its
    /// worker thread that long. Adapters use it for the polls of the handler's future; the
    /// call of the inner service ([`Flight::in_call`]) and the polls of the response body
    /// ([`InFlight::watch_panics`]) are not timed.
    pub(crate) fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "stats")]
        let started = self.monitor.inner.stats.polls.start();
        let result = self.scope.enter(f);
        #[cfg(feature = "stats")]
        self.monitor.inner.stats.polls.ended(started);
        result
    }

    /// The handle of this request's point (made now if no handler has asked for it yet).
    pub(crate) fn handle(&mut self) -> crate::PointHandle {
        self.scope.handle()
    }

    /// Runs `f` noting only a panic unwinding out of it (cheaper than
    /// [`InFlight::in_scope`]; for polls of the response body, where no handler extracts).
    /// Not timed: a handler that blocks its worker does so in the polls that
    /// [`InFlight::in_scope`] times, and body frames are polled many times per request.
    pub(crate) fn watch_panics<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.scope.watch(f)
    }

    /// The response head is known (its time is noted as the time to the response head).
    pub(crate) fn set_status(&mut self, status: u16) {
        self.status = Some(status);
        // Timed only when a sink reads it (the clock is the costly part).
        if self.monitor.inner.needs_head_time {
            let head = self.monitor.inner.clock.since(self.start).as_nanos();
            self.head_nanos = u64::try_from(head).unwrap_or(NO_HEAD - 1).min(NO_HEAD - 1);
        }
    }

    /// Sets the route template, for an adapter that learns it only after the request began
    /// (actix-web knows the matched resource cheaply once it has routed). `None` is
    /// [`UNMATCHED_ROUTE`]. A route that is excluded from recording (an excluded path that is
    /// a route template, such as `/health/{component}`) makes the request unrecorded; it still
    /// counted in flight while it ran, as a request with an excluded status does.
    pub(crate) fn set_route(&mut self, route: Option<&str>) {
        self.route = match route {
            None => Route::UNMATCHED,
            Some(route) => {
                self.route_excluded = self.monitor.excluded_exactly(route);
                self.monitor.intern(route)
            }
        };
    }

    /// A path parameter of this request: kept as a label if [`MonitorBuilder::path_label`]
    /// asked for it on this request's route.
    pub(crate) fn path_param(&mut self, name: &str, value: &str) {
        let inner = Arc::clone(&self.monitor.inner);
        let Some(label) = inner.path_labels.iter().find(|l| **l == *name) else {
            return;
        };
        let allowed = inner
            .path_label_routes
            .iter()
            .filter(|(l, _)| l == label)
            .all(|(_, routes)| routes.iter().any(|r| **r == *self.route()));
        if allowed {
            self.tag(label.clone(), value);
        }
    }

    /// Adds a tag to this request's point (as a handler would; adapters use it for path
    /// parameters kept as labels). Allocates, like a handler's tag.
    pub(crate) fn tag(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        self.scope.enter(|| {
            if let Some(point) = crate::PointHandle::current() {
                point.tag(key, value);
            }
        });
    }

    /// Runs the monitor's label functions on `request` and tags the point with their results.
    pub(crate) fn apply_label_fns(&mut self, request: &RequestInfo<'_>) {
        let monitor = self.monitor.clone();
        for (name, f) in &monitor.inner.label_fns {
            if let Some(value) = (f.0)(request) {
                self.tag(name.clone(), value);
            }
        }
    }

    /// `n` more bytes of response body were produced.
    pub(crate) fn add_body_bytes(&mut self, n: u64) {
        self.body_bytes += n;
    }

    /// Whether the response, by HTTP's rules, has a body to wait for: not for `HEAD`, nor for
    /// status 1xx, 204 or 304 (RFC 9110 §6.4.1). Servers drop such bodies unpolled, so an adapter
    /// completes the request at the response head when this is false.
    pub(crate) fn response_has_body(&self) -> bool {
        self.method != Method::Head && !matches!(self.status, Some(100..=199 | 204 | 304))
    }

    /// The response ended normally (last body frame sent, or an empty body).
    /// Records the request; later calls and the drop do nothing.
    pub(crate) fn complete(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            self.monitor.record(self, false);
        }
    }

    /// The response body yielded an error: records the request now, with the status it was
    /// sent with, as an error with error code `body_error` (unless the handler attached a code),
    /// not as a disconnect. Later calls and the drop do nothing.
    pub(crate) fn body_failed(&mut self) {
        if !self.done {
            self.body_failed = true;
            self.complete();
        }
    }
}

/// One request being served: the guard that an adapter carries from the request
/// ([`adapter::begin`](crate::adapter::begin)) to the end of the response body. Every step an
/// adapter takes is one call here, so that the Tower layer and the actix middleware share one
/// logic.
///
/// Records exactly once: at [`Flight::complete`] for a response that ended normally, at
/// [`Flight::body_failed`] for one whose body failed, at [`Flight::failed`] for an inner
/// service that failed; dropping it before that records a disconnect (status
/// [`CLIENT_CLOSED_REQUEST`] if no response head was seen), or status 500 with error code
/// `panic` if the inner service panicked inside [`Flight::in_scope`]. A request excluded from
/// recording ([`MonitorBuilder::exclude_path`]) gets a flight that records nothing
/// ([`Flight::is_recording`] is `false`), on which every call is cheap.
#[derive(Debug, Default)]
#[must_use = "dropping a Flight before it completes records a disconnect"]
pub struct Flight(pub(super) Option<InFlight>);

impl Flight {
    #[inline]
    pub(crate) fn from_start(flight: Option<InFlight>) -> Self {
        Flight(flight)
    }

    /// Whether this flight records its request (`false` for an excluded request, and once the
    /// request has been recorded or has moved on with [`Flight::response`]).
    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }

    /// The request id (the `x-request-id` header's, the one a handler created, or a fresh one,
    /// kept), for an adapter that echoes it; `None` once the flight no longer records.
    pub fn request_id(&mut self) -> Option<RequestId> {
        self.0.as_mut().map(InFlight::request_id)
    }

    /// The response head is here, with this status (its time is noted as the time to the
    /// response head). [`Flight::response`] does this and moves the flight on with the body.
    pub fn set_status(&mut self, status: u16) {
        if let Some(flight) = &mut self.0 {
            flight.set_status(status);
        }
    }

    /// Runs `f` (a call or poll of the inner service, future or body) with this request as
    /// the thread's current request, so that
    /// [`PointHandle::current`](crate::PointHandle::current) finds it, and notes a panic
    /// unwinding out of `f`; for an excluded request, inside a scope where handlers get a
    /// handle that records nothing (see [`PointHandle::noop`](crate::PointHandle::noop)).
    ///
    /// Each call is timed (two reads of the TSC): the maximum event-loop delay of a collection
    /// interval on `/stats` is at least its longest call, since a poll that blocks holds its
    /// worker thread that long.
    pub fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match &mut self.0 {
            Some(flight) => flight.in_scope(f),
            None => crate::handle::enter_unrecorded(f),
        }
    }

    /// [`Flight::in_scope`] for the call of the inner service, which is not timed: axum and
    /// actix-web run handlers in the polls of the future that the call returns.
    pub fn in_call<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _scope = self.enter_call();
        f()
    }

    /// [`Flight::in_call`] as a guard: this request is the thread's current request until the
    /// guard drops. For an adapter whose inner service takes the request by value, which a
    /// closure would move once more (measured: 6 to 39 instructions a request fewer on the
    /// three adapters).
    ///
    /// ```
    /// use vitalsign_core::adapter::{self, RequestStart};
    /// use vitalsign_core::{Monitor, PointHandle};
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// let mut flight = adapter::begin(&monitor, RequestStart::new(b"GET", "/"));
    /// let seen = {
    ///     let _scope = flight.enter_call();
    ///     PointHandle::current().is_some() // the inner service's call
    /// };
    /// assert!(seen);
    /// assert!(PointHandle::current().is_none());
    /// # flight.complete();
    /// ```
    #[inline]
    pub fn enter_call(&mut self) -> CallScope<'_> {
        CallScope(match &mut self.0 {
            Some(flight) => CallScopeKind::Recorded {
                _guard: flight.scope.entered(),
            },
            None => CallScopeKind::Unrecorded {
                _guard: crate::handle::entered_unrecorded(),
            },
        })
    }

    /// The handle an adapter puts into the request's extensions when
    /// [`adapter::point_in_extensions`](crate::adapter::point_in_extensions) is true, given the one already there (`carried`): this
    /// request's handle; for an excluded request, a handle that records nothing, unless the
    /// extensions already carry one (an outer monitor's). `None`: leave the extensions alone.
    pub fn carry(&mut self, carried: Option<&crate::PointHandle>) -> Option<crate::PointHandle> {
        match &mut self.0 {
            Some(flight) => Some(flight.handle()),
            None => carried.is_none().then(crate::PointHandle::noop),
        }
    }

    /// Runs `f` (a poll of the response body) noting a panic unwinding out of it (cheaper than
    /// [`Flight::in_scope`], as no handler extracts there; timed as it is).
    pub fn in_body<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match &mut self.0 {
            Some(flight) => flight.watch_panics(f),
            None => f(),
        }
    }

    /// The response head is here; the flight moves on with the body.
    pub fn response(&mut self, status: u16) -> Flight {
        if let Some(flight) = &mut self.0 {
            flight.set_status(status);
        }
        Flight(self.0.take())
    }

    /// The inner service failed with this status instead of producing a response: the request
    /// is recorded now.
    pub fn failed(&mut self, status: u16) {
        if let Some(mut flight) = self.0.take() {
            flight.set_status(status);
            flight.complete();
        }
    }

    /// The response body is about to be sent; `empty` says it has nothing to send. Completes
    /// at once when there is nothing to wait for: an empty body, or a response that by HTTP's
    /// rules has none (`HEAD`, status 1xx, 204 or 304, RFC 9110 §6.4.1), whose body servers
    /// drop unpolled.
    pub fn body_starts(&mut self, empty: bool) {
        if empty || self.0.as_ref().is_some_and(|f| !f.response_has_body()) {
            self.complete();
        }
    }

    /// Whether the monitor keeps any path parameter as a label
    /// ([`MonitorBuilder::path_label`]): only then need an adapter read the request's path
    /// parameters for [`Flight::path_params`].
    #[inline]
    pub fn wants_path_params(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|flight| !flight.monitor.inner.path_labels.is_empty())
    }

    /// The request's path parameters, as `(name, value)` pairs: those that
    /// [`MonitorBuilder::path_label`] asked for on this request's route are kept as labels, the
    /// others are ignored. Give them once the route is known (after [`Flight::set_route`] for
    /// an adapter that learns it late).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use vitalsign_core::adapter::{self, RequestStart};
    /// use vitalsign_core::{MemorySink, Monitor};
    ///
    /// let sink = Arc::new(MemorySink::new(8));
    /// let monitor = Monitor::builder("shop")
    ///     .path_label("tenant")
    ///     .sink(sink.clone())
    ///     .build()?;
    /// let start = RequestStart::new(b"GET", "/t/acme/users/7")
    ///     .with_route(Some("/t/{tenant}/users/{id}"));
    /// let mut flight = adapter::begin(&monitor, start);
    /// if flight.wants_path_params() {
    ///     flight.path_params([("tenant", "acme"), ("id", "7")]);
    /// }
    /// flight.response(200).complete();
    /// let point = &sink.requests()[0];
    /// assert_eq!(point.tags.len(), 1, "only the parameter asked for");
    /// assert_eq!((&*point.tags[0].key, &*point.tags[0].value), ("tenant", "acme"));
    /// # Ok::<(), vitalsign_core::ConfigError>(())
    /// ```
    pub fn path_params<'v>(&mut self, params: impl IntoIterator<Item = (&'v str, &'v str)>) {
        if let Some(flight) = &mut self.0 {
            for (name, value) in params {
                flight.path_param(name, value);
            }
        }
    }

    /// Sets the route template, for an adapter that learns it only after the request began
    /// (actix-web knows the matched resource cheaply once it has routed). `None` is
    /// [`UNMATCHED_ROUTE`]. A route that is excluded from recording (an excluded path that is
    /// a route template, such as `/health/{component}`) makes the request unrecorded; it still
    /// counted in flight while it ran, as a request with an excluded status does.
    pub fn set_route(&mut self, route: Option<&str>) {
        if let Some(flight) = &mut self.0 {
            flight.set_route(route);
        }
    }

    /// Adds a tag to this request's point (as a handler would). Allocates, like a handler's
    /// tag.
    pub fn tag(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        if let Some(flight) = &mut self.0 {
            flight.tag(key, value);
        }
    }

    /// The body produced `n` bytes.
    pub fn body_bytes(&mut self, n: u64) {
        if let Some(flight) = &mut self.0 {
            flight.add_body_bytes(n);
        }
    }

    /// The response ended normally (the body yielded its last frame or its end, or there is
    /// no body): the request is recorded now. Later calls and the drop do nothing.
    pub fn complete(&mut self) {
        if let Some(flight) = &mut self.0 {
            flight.complete();
            self.0 = None;
        }
    }

    /// The body yielded an error: the request is recorded now, with the status it was sent
    /// with, as an error with error code `body_error` (unless the handler attached a code), not
    /// as a disconnect. Later calls and the drop do nothing.
    pub fn body_failed(&mut self) {
        if let Some(flight) = &mut self.0 {
            flight.body_failed();
            self.0 = None;
        }
    }
}

/// The guard of [`Flight::enter_call`]: while it lives, the flight's request is the thread's
/// current request; dropping it (also by an unwinding panic, which the flight notes) restores
/// the thread's previous one.
#[must_use = "the request is the current one only while the guard lives"]
pub struct CallScope<'a>(CallScopeKind<'a>);

/// The guards restore the thread when dropped.
enum CallScopeKind<'a> {
    Recorded {
        _guard: crate::handle::Entered<'a>,
    },
    Unrecorded {
        _guard: crate::handle::EnteredUnrecorded,
    },
}

impl std::fmt::Debug for CallScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let recorded = matches!(self.0, CallScopeKind::Recorded { .. });
        f.debug_struct("CallScope")
            .field("recorded", &recorded)
            .finish()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            if std::thread::panicking() {
                self.scope.panicked = true;
            }
            self.monitor.record(self, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_flight_request_fits_in_two_cache_lines() {
        // Adapters move it from the request to the response future to the body; at this size
        // the compiler moves it with a few vector stores rather than a call to `memcpy`.
        assert!(std::mem::size_of::<InFlight>() <= 128);
        assert_eq!(
            std::mem::size_of::<Flight>(),
            std::mem::size_of::<InFlight>()
        );
    }
}
