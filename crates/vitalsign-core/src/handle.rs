//! Handler-side API: add tags and fields to the current request's point, attach an error code,
//! and time a section of the handler's work into a field.
//!
//! Adapters run the inner service inside [`Flight::in_scope`](crate::adapter::Flight::in_scope); while
//! it runs, [`PointHandle::current`] returns the handle of that request (a thread-local: the fast
//! path). Nothing is allocated for a request whose handler never asks for its handle.
//!
//! Code that runs on another task than the one polling the monitored service (the worker of
//! tower's `Buffer` calls the inner service, a handler spawns a task) finds no thread-local
//! request. For it, the adapters also put each request's handle into the request's extensions
//! when [`MonitorBuilder::point_in_extensions`](crate::MonitorBuilder::point_in_extensions) is
//! set. The axum extractor and the actix `FromRequest` impl are thin wrappers around
//! [`PointHandle::of_request`]: the thread-local first, then the extensions.
//!
//! A request that passed the adapter but is not recorded (its path is excluded) gets a handle
//! that records nothing ([`PointHandle::noop`]), so that a monitoring setting never breaks a
//! handler; so does a request that never passed the adapter, with a warning logged once.
//!
//! ```
//! use vitalsign_core::PointHandle;
//!
//! // Outside a monitored request there is no handle.
//! assert!(PointHandle::current().is_none());
//! // An extractor then hands out one that records nothing (and logs a warning once).
//! assert!(!PointHandle::of_request(|| None).is_recording());
//! ```
//!
//! What a handler does with it (the adapter runs the handler inside `in_scope`):
//!
//! ```
//! use std::sync::Arc;
//! use vitalsign_core::adapter::{self, RequestStart};
//! use vitalsign_core::{FieldValue, MemorySink, Monitor, PointHandle};
//!
//! fn handler() -> &'static str {
//!     let point = PointHandle::current().expect("inside a monitored request");
//!     point.tag("handler_id", "get_user").field("cache_hit", false);
//!     let timer = point.time("db_time"); // seconds, added when the timer drops
//!     let name = "ada"; // ... the database call ...
//!     drop(timer);
//!     name
//! }
//!
//! let sink = Arc::new(MemorySink::new(10));
//! let monitor = Monitor::builder("shop").sink(sink.clone()).build().unwrap();
//! let mut flight = adapter::begin(
//!     &monitor,
//!     RequestStart::new(b"GET", "/users/1").with_route(Some("/users/{id}")),
//! );
//! assert_eq!(flight.in_scope(handler), "ada");
//! flight.set_status(200);
//! flight.complete();
//! let point = &sink.requests()[0];
//! assert_eq!(point.tag("handler_id"), Some("get_user"));
//! assert!(matches!(point.field("db_time"), Some(FieldValue::Float(_))));
//! ```

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::point::{Field, FieldValue, Tag};
use crate::RequestId;

thread_local! {
    static CURRENT: Cell<Option<Slot>> = const { Cell::new(None) };
    /// The id of the current request while its handle does not exist yet, if it has one. Kept
    /// apart so that entering a request without an id moves no more than a pointer.
    static CURRENT_ID: Cell<Option<RequestId>> = const { Cell::new(None) };
}

enum Slot {
    /// In a monitored request whose handler has not asked for its handle yet; its id, if it
    /// has one yet, is in `CURRENT_ID`.
    Lazy { with_id: bool },
    /// The handle exists.
    Ready(Arc<Shared>),
    /// In a request that passed a monitor without being recorded (its path is excluded):
    /// handlers get a handle that records nothing.
    Unrecorded,
}

/// The warning logged (once) when a handler asks for its point outside any monitored request.
const UNMONITORED: &str = "vitalsign: a handler asked for its point, but its request did \
     not pass vitalsign's middleware, so the point records nothing (logged once). Wrap the \
     app or router in the middleware (axum: Router::layer(MonitorLayer) after the last route, \
     merge and nest; actix: App::wrap(Monitoring)). A handler that runs on another task than \
     the middleware (behind tower's Buffer, in a spawned task) finds its point only with \
     MonitorBuilder::point_in_extensions(true)";

/// Logs [`UNMONITORED`] the first time it is called in the process.
fn warn_unmonitored() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.load(Ordering::Relaxed) && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!("{UNMONITORED}");
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    request_id: RequestId,
    extras: Mutex<Extras>,
    request_body_bytes: std::sync::atomic::AtomicU64,
}

/// What handlers added to a point.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    pub(crate) tags: Vec<Tag>,
    pub(crate) fields: Vec<Field>,
    pub(crate) error_code: Option<String>,
}

impl Shared {
    fn new(request_id: RequestId) -> Shared {
        Shared {
            request_id,
            extras: Mutex::new(Extras::default()),
            request_body_bytes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    pub(crate) fn request_body_bytes(&self) -> u64 {
        self.request_body_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Extras> {
        self.extras.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The handle of one request's monitoring point.
///
/// Cheap to clone; clones refer to the same point, and may be moved to other tasks and threads.
/// What is added after the request has been recorded (for example from a task the handler
/// spawned and that outlives the response) is ignored.
///
/// A handle may record nothing ([`PointHandle::noop`], [`PointHandle::is_recording`]): the one
/// of a request excluded from recording, or of a request that never passed vitalsign's
/// middleware. Its methods then do nothing, so that handlers need not care.
#[derive(Clone, Debug)]
#[must_use]
pub struct PointHandle {
    /// `None`: records nothing.
    shared: Option<Arc<Shared>>,
}

impl PointHandle {
    /// The handle of the request being processed on this thread, if a monitor is running one
    /// (a handle that records nothing for a request excluded from recording).
    ///
    /// This is a thread-local: it finds the request only on the task that polls the monitored
    /// service. See [`PointHandle::of_request`] for code that may run elsewhere.
    pub fn current() -> Option<PointHandle> {
        let shared = match CURRENT.take()? {
            Slot::Ready(shared) => shared,
            Slot::Lazy { with_id } => Arc::new(Shared::new(
                with_id
                    .then(|| CURRENT_ID.get())
                    .flatten()
                    .unwrap_or_else(RequestId::generate),
            )),
            Slot::Unrecorded => {
                CURRENT.set(Some(Slot::Unrecorded));
                return Some(PointHandle::noop());
            }
        };
        CURRENT.set(Some(Slot::Ready(shared.clone())));
        Some(PointHandle {
            shared: Some(shared),
        })
    }

    /// The handle of a request, for extractors: [`PointHandle::current`] (the thread-local, the
    /// fast path), else `carried` (which reads the handle adapters put into the request's
    /// extensions with
    /// [`MonitorBuilder::point_in_extensions`](crate::MonitorBuilder::point_in_extensions), for
    /// code running on another task), else a handle that records nothing: the request never
    /// passed vitalsign's middleware, a wiring mistake that is logged once, at `warn`.
    ///
    /// A Tower service that may run on another task (behind tower's `Buffer`, on a spawned task)
    /// does what the extractors do:
    /// `PointHandle::of_request(|| request.extensions().get::<PointHandle>().cloned())`.
    pub fn of_request(carried: impl FnOnce() -> Option<PointHandle>) -> PointHandle {
        PointHandle::current().or_else(carried).unwrap_or_else(|| {
            warn_unmonitored();
            PointHandle::noop()
        })
    }

    /// A handle that records nothing: what it is given is dropped.
    pub const fn noop() -> PointHandle {
        PointHandle { shared: None }
    }

    /// Whether what is added reaches a monitoring point: `false` for a handle that records
    /// nothing (the request is excluded by its path, or never passed vitalsign's middleware).
    /// A request excluded later, by its status, still takes tags and drops them.
    pub fn is_recording(&self) -> bool {
        self.shared.is_some()
    }

    /// This request's id ([`RequestId::EMPTY`] for a handle that records nothing).
    pub fn request_id(&self) -> RequestId {
        self.shared
            .as_ref()
            .map_or(RequestId::EMPTY, |shared| shared.request_id)
    }

    /// Adds a tag (replacing an earlier tag of the same key). Tags reach every sink; on
    /// `/metrics` a tag becomes a label only if its key was declared with
    /// [`MonitorBuilder::label_tag`](crate::MonitorBuilder::label_tag).
    pub fn tag(&self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) -> &Self {
        let Some(shared) = &self.shared else {
            return self;
        };
        let key = key.into();
        let value = value.into();
        let mut extras = shared.lock();
        match extras.tags.iter_mut().find(|t| t.key == key) {
            Some(tag) => tag.value = value,
            None => extras.tags.push(Tag { key, value }),
        }
        self
    }

    /// Adds a field (replacing an earlier field of the same key). Fields never become labels.
    pub fn field(&self, key: impl Into<Cow<'static, str>>, value: impl Into<FieldValue>) -> &Self {
        if self.shared.is_none() {
            return self;
        }
        let value = value.into();
        self.update_field(key.into(), |slot| match slot {
            Some(slot) => {
                *slot = value;
                None
            }
            None => Some(value),
        });
        self
    }

    /// Counts `n` bytes of request body read (used by the request-body counting middleware of
    /// the adapters; the total is the point's `request_body_bytes`).
    pub fn count_request_body(&self, n: u64) {
        if let Some(shared) = &self.shared {
            shared.request_body_bytes.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Attaches an error code: the request is then an error whatever its status (with the default
    /// classifier), and its error point and `http_server_errors_total` carry this code.
    pub fn error_code(&self, code: impl fmt::Display) -> &Self {
        if let Some(shared) = &self.shared {
            shared.lock().error_code = Some(code.to_string());
        }
        self
    }

    /// Starts timing a section; when the returned timer is dropped (or
    /// [`SectionTimer::stop`]ped) the elapsed seconds are added to the float field `name`
    /// (sections timed twice under one name add up).
    pub fn time(&self, name: impl Into<Cow<'static, str>>) -> SectionTimer {
        SectionTimer {
            handle: self.clone(),
            name: Some(name.into()),
            start: Instant::now(),
        }
    }

    /// Awaits `future`, timing it into the float field `name` (see [`PointHandle::time`]).
    pub async fn timed<F: Future>(
        &self,
        name: impl Into<Cow<'static, str>>,
        future: F,
    ) -> F::Output {
        let _timer = self.time(name);
        future.await
    }

    fn add_seconds(&self, name: Cow<'static, str>, seconds: f64) {
        self.update_field(name, |slot| match slot {
            Some(FieldValue::Float(total)) => {
                *total += seconds;
                None
            }
            Some(other) => {
                *other = FieldValue::Float(seconds);
                None
            }
            None => Some(FieldValue::Float(seconds)),
        });
    }

    /// Runs `update` on the field `key` (or on `None` if absent); a value it returns is added.
    fn update_field(
        &self,
        key: Cow<'static, str>,
        update: impl FnOnce(Option<&mut FieldValue>) -> Option<FieldValue>,
    ) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut extras = shared.lock();
        let existing = extras.fields.iter_mut().find(|f| f.key == key);
        if let Some(value) = update(existing.map(|f| &mut f.value)) {
            extras.fields.push(Field { key, value });
        }
    }
}

/// Times a section of a handler into a field of its request's point; see [`PointHandle::time`].
#[derive(Debug)]
#[must_use = "the section ends when the timer is dropped"]
pub struct SectionTimer {
    handle: PointHandle,
    name: Option<Cow<'static, str>>,
    start: Instant,
}

impl SectionTimer {
    /// Ends the section now and returns its length in seconds.
    pub fn stop(mut self) -> f64 {
        self.finish()
    }

    fn finish(&mut self) -> f64 {
        let seconds = self.start.elapsed().as_secs_f64();
        if let Some(name) = self.name.take() {
            self.handle.add_seconds(name, seconds);
        }
        seconds
    }
}

impl Drop for SectionTimer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Per-request state of the handler API, owned by the adapter's in-flight record.
#[derive(Debug)]
pub(crate) struct HandlerScope {
    /// The id from the request header, or one generated when first needed.
    pub(crate) request_id: Option<RequestId>,
    pub(crate) shared: Option<Arc<Shared>>,
    /// A panic unwound out of [`HandlerScope::enter`].
    pub(crate) panicked: bool,
}

impl HandlerScope {
    pub(crate) fn new(request_id: Option<RequestId>) -> Self {
        HandlerScope {
            request_id,
            shared: None,
            panicked: false,
        }
    }

    /// The request id: the handle's if the handler created one, else the header's, else a
    /// fresh one (kept).
    pub(crate) fn request_id(&mut self) -> RequestId {
        if let Some(shared) = &self.shared {
            return shared.request_id;
        }
        *self.request_id.get_or_insert_with(RequestId::generate)
    }

    /// The handle of this request, made now if the handler has not asked for it yet.
    pub(crate) fn handle(&mut self) -> PointHandle {
        let request_id = self.request_id;
        let shared = self.shared.get_or_insert_with(|| {
            Arc::new(Shared::new(request_id.unwrap_or_else(RequestId::generate)))
        });
        PointHandle {
            shared: Some(Arc::clone(shared)),
        }
    }

    /// Runs `f`, noting a panic unwinding out of it.
    pub(crate) fn watch<R>(&mut self, f: impl FnOnce() -> R) -> R {
        struct Watch<'a>(&'a mut bool);
        impl Drop for Watch<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    *self.0 = true;
                }
            }
        }
        let _watch = Watch(&mut self.panicked);
        f()
    }

    /// Runs `f` with this request as the thread's current request.
    pub(crate) fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match (self.shared.take(), self.request_id) {
            (Some(shared), _) => self.enter_slot(Slot::Ready(shared), f),
            (None, Some(id)) => {
                // The id goes to its own thread-local while the handle does not exist.
                struct RestoreId(Option<RequestId>);
                impl Drop for RestoreId {
                    fn drop(&mut self) {
                        CURRENT_ID.set(self.0.take());
                    }
                }
                let _id = RestoreId(CURRENT_ID.replace(Some(id)));
                self.enter_slot(Slot::Lazy { with_id: true }, f)
            }
            (None, None) => self.enter_slot(Slot::Lazy { with_id: false }, f),
        }
    }

    fn enter_slot<R>(&mut self, slot: Slot, f: impl FnOnce() -> R) -> R {
        let previous = CURRENT.replace(Some(slot));
        // Restores the previous request (nested monitors) even if `f` unwinds, and keeps the
        // handle if the handler made one.
        struct Restore<'a> {
            shared: &'a mut Option<Arc<Shared>>,
            panicked: &'a mut bool,
            previous: Option<Slot>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    *self.panicked = true;
                }
                if let Some(Slot::Ready(shared)) = CURRENT.replace(self.previous.take()) {
                    *self.shared = Some(shared);
                }
            }
        }
        let _restore = Restore {
            shared: &mut self.shared,
            panicked: &mut self.panicked,
            previous,
        };
        f()
    }
}

/// Runs `f` (a call or poll for a request that passed a monitor without being recorded) so that
/// handlers get a handle that records nothing. Inside another monitor's request (nested
/// monitors), that request stays the current one.
pub(crate) fn enter_unrecorded<R>(f: impl FnOnce() -> R) -> R {
    let outer = CURRENT.take();
    let nested = outer.is_some();
    CURRENT.set(Some(outer.unwrap_or(Slot::Unrecorded)));
    // Leaves the thread as it found it, even if `f` unwinds; an outer request's slot (its handle
    // possibly made meanwhile) stays for the outer scope to collect.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            if !self.0 {
                CURRENT.set(None);
            }
        }
    }
    let _restore = Restore(nested);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_handle_outside_a_scope() {
        assert!(PointHandle::current().is_none());
    }

    #[test]
    fn no_allocation_unless_asked() {
        let mut scope = HandlerScope::new(Some(RequestId::generate()));
        scope.enter(|| ());
        assert!(scope.shared.is_none());
        scope.enter(|| {
            PointHandle::current().unwrap().tag("a", "1");
        });
        let shared = scope.shared.clone().unwrap();
        // A later poll sees the same handle.
        scope.enter(|| {
            PointHandle::current()
                .unwrap()
                .tag("a", "2")
                .field("f", 3u32);
        });
        let extras = shared.lock();
        assert_eq!(
            extras.tags,
            vec![Tag {
                key: "a".into(),
                value: "2".into()
            }]
        );
        assert_eq!(extras.fields[0].value, FieldValue::UInt(3));
        drop(extras);
        assert!(PointHandle::current().is_none(), "scope restored");
    }

    #[test]
    fn nested_scopes_restore_the_outer_request() {
        let outer_id = RequestId::generate();
        let mut outer = HandlerScope::new(Some(outer_id));
        let mut inner = HandlerScope::new(Some(RequestId::generate()));
        outer.enter(|| {
            inner.enter(|| {
                assert_ne!(PointHandle::current().unwrap().request_id(), outer_id);
            });
            assert_eq!(PointHandle::current().unwrap().request_id(), outer_id);
        });
    }

    #[test]
    fn scope_is_restored_when_the_inner_call_panics() {
        let mut scope = HandlerScope::new(Some(RequestId::generate()));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scope.enter(|| {
                PointHandle::current().unwrap().error_code("E1");
                panic!("handler panicked");
            })
        }));
        assert!(result.is_err());
        assert!(scope.panicked);
        assert!(PointHandle::current().is_none());
        assert_eq!(
            scope.shared.unwrap().lock().error_code.as_deref(),
            Some("E1")
        );
    }

    #[test]
    fn section_timers_add_up() {
        let mut scope = HandlerScope::new(Some(RequestId::generate()));
        let handle = scope.enter(|| PointHandle::current().unwrap());
        let first = handle.time("db").stop();
        let second = handle.time("db").stop();
        let extras = scope.shared.as_ref().unwrap().lock();
        match extras.fields[0].value {
            FieldValue::Float(total) => assert!((total - (first + second)).abs() < 1e-12),
            ref other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod unrecorded_and_carried {
    use super::*;
    use crate::adapter::{Flight, RequestStart};
    use crate::testing::count_warnings;
    use crate::{MemorySink, Monitor};

    fn monitor() -> (Monitor, Arc<MemorySink>) {
        let sink = Arc::new(MemorySink::new(10));
        let monitor = Monitor::builder("svc")
            .exclude_path("/excluded")
            .sink(sink.clone())
            .build()
            .unwrap();
        (monitor, sink)
    }

    fn begin(monitor: &Monitor, path: &str) -> Flight {
        crate::adapter::begin(
            monitor,
            RequestStart::new(b"GET", path).with_route(Some(path)),
        )
    }

    /// Regression (review item 15): an excluded request ran its handler outside any scope, so
    /// that a handler asking for its point failed. It now gets a handle that records nothing.
    #[test]
    fn an_excluded_request_gets_a_handle_that_records_nothing() {
        let (monitor, sink) = monitor();
        let mut flight = begin(&monitor, "/excluded");
        let handle = flight.in_scope(|| PointHandle::current().expect("a handle"));
        assert!(!handle.is_recording());
        handle.tag("t", "v").field("f", 1u32).error_code("E");
        handle.count_request_body(10);
        assert!(handle.time("s").stop() >= 0.0);
        assert_eq!(handle.request_id(), RequestId::EMPTY);
        assert!(PointHandle::current().is_none(), "scope left");
        let mut response = flight.response(200);
        response.complete();
        assert!(sink.requests().is_empty());
        assert_eq!(sink.started(), 0);
    }

    #[test]
    fn inside_an_outer_monitor_an_excluded_request_keeps_the_outer_point() {
        let (outer_monitor, outer_sink) = monitor();
        let (inner_monitor, _) = monitor();
        let mut outer = begin(&outer_monitor, "/kept");
        let mut inner = begin(&inner_monitor, "/excluded");
        outer.in_scope(|| {
            inner.in_scope(|| {
                PointHandle::current().unwrap().tag("from", "inner handler");
            });
            assert!(PointHandle::current().unwrap().is_recording());
        });
        assert!(PointHandle::current().is_none());
        outer.response(200).complete();
        assert_eq!(outer_sink.requests()[0].tag("from"), Some("inner handler"));
    }

    #[test]
    fn an_unwinding_excluded_request_leaves_no_scope_behind() {
        let (monitor, _) = monitor();
        let mut flight = begin(&monitor, "/excluded");
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            flight.in_scope(|| panic!("handler panicked"))
        }));
        assert!(unwound.is_err());
        assert!(PointHandle::current().is_none());
    }

    /// Review item 7: off the thread of the request's scope, the handle carried in
    /// the request (the extensions) is the same point: what is added there is recorded.
    #[test]
    fn the_carried_handle_reaches_the_point_from_another_thread() {
        let (monitor, sink) = monitor();
        let mut flight = begin(&monitor, "/kept");
        let carried = flight
            .carry(None)
            .expect("a recorded request carries its handle");
        assert!(carried.is_recording());
        std::thread::spawn(move || {
            let handle = PointHandle::of_request(|| Some(carried));
            handle.tag("where", "other thread");
        })
        .join()
        .unwrap();
        // On the request's own thread, the thread-local gives the same point.
        flight.in_scope(|| {
            PointHandle::current().unwrap().field("here", true);
        });
        flight.response(200).complete();
        let point = &sink.requests()[0];
        assert_eq!(point.tag("where"), Some("other thread"));
        assert_eq!(point.field("here"), Some(&crate::FieldValue::Bool(true)));
    }

    #[test]
    fn the_thread_local_comes_before_the_carried_handle() {
        let (monitor, _) = monitor();
        let mut flight = begin(&monitor, "/kept");
        let mut other = begin(&monitor, "/kept");
        let others = other.carry(None).unwrap();
        let id = flight.in_scope(|| {
            PointHandle::of_request(|| panic!("not read: the thread-local answers")).request_id()
        });
        assert_ne!(id, others.request_id());
        let _ = (flight.response(200), other.response(200));
    }

    #[test]
    fn excluded_requests_carry_a_noop_handle_unless_an_outer_one_is_there() {
        let (monitor, _) = monitor();
        let mut excluded = begin(&monitor, "/excluded");
        let noop = excluded.carry(None).expect("a handle that records nothing");
        assert!(!noop.is_recording());
        let mut outer = begin(&monitor, "/kept");
        let outer_handle = outer.carry(None).unwrap();
        assert!(excluded.carry(Some(&outer_handle)).is_none());
        let _ = outer.response(200);
    }

    /// Regression (review item 15): a request that never passed the middleware (a route added
    /// after the layer) got a 500 from the extractor; it now gets a handle that records nothing,
    /// and the wiring mistake is logged once, at `warn`.
    #[test]
    fn a_request_that_never_passed_the_middleware_gets_a_noop_handle_and_one_warning() {
        let seen = count_warnings("did not pass vitalsign's middleware", |seen| {
            // An excluded request passed the middleware: no warning.
            let (monitor, _) = monitor();
            let mut flight = begin(&monitor, "/excluded");
            flight.in_scope(|| assert!(!PointHandle::of_request(|| None).is_recording()));
            assert_eq!(
                seen.load(Ordering::SeqCst),
                0,
                "an excluded request is no mistake"
            );
            for _ in 0..3 {
                let handle = PointHandle::of_request(|| None);
                assert!(!handle.is_recording());
                handle.tag("t", "v");
            }
        });
        assert_eq!(seen, 1, "logged once");
    }
}
