//! Handler-side API: add tags and fields to the current request's point, attach an error code,
//! and time a section of the handler's work into a field.
//!
//! Adapters run the inner service inside [`InFlight::in_scope`](crate::InFlight::in_scope); while
//! it runs, [`PointHandle::current`] returns the handle of that request. Nothing is allocated for
//! a request whose handler never asks for its handle. The axum extractor and the actix
//! `FromRequest` impl are thin wrappers around [`PointHandle::current`].
//!
//! ```
//! use vitalsign_core::PointHandle;
//!
//! // Outside a monitored request there is no handle.
//! assert!(PointHandle::current().is_none());
//! ```
//!
//! What a handler does with it (the adapter runs the handler inside `in_scope`):
//!
//! ```
//! use std::sync::Arc;
//! use vitalsign_core::{FieldValue, MemorySink, Monitor, PointHandle, RequestStart};
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
//! let mut flight = monitor
//!     .begin(RequestStart { method: b"GET", path: "/users/1", route: Some("/users/{id}"), request_id: None })
//!     .unwrap();
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
/// Cheap to clone; clones refer to the same point. What is added after the request has been
/// recorded (for example from a task the handler spawned and that outlives the response) is
/// ignored.
#[derive(Clone, Debug)]
#[must_use]
pub struct PointHandle {
    shared: Arc<Shared>,
}

impl PointHandle {
    /// The handle of the request being processed on this thread, if a monitor is running one.
    pub fn current() -> Option<PointHandle> {
        let shared = match CURRENT.take()? {
            Slot::Ready(shared) => shared,
            Slot::Lazy { with_id } => Arc::new(Shared {
                request_id: with_id
                    .then(|| CURRENT_ID.get())
                    .flatten()
                    .unwrap_or_else(RequestId::generate),
                extras: Mutex::new(Extras::default()),
                request_body_bytes: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        CURRENT.set(Some(Slot::Ready(shared.clone())));
        Some(PointHandle { shared })
    }

    /// This request's id.
    pub fn request_id(&self) -> RequestId {
        self.shared.request_id
    }

    /// Adds a tag (replacing an earlier tag of the same key). Tags reach every sink; on
    /// `/metrics` a tag becomes a label only if its key was declared with
    /// [`MonitorBuilder::label_tag`](crate::MonitorBuilder::label_tag).
    pub fn tag(&self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) -> &Self {
        let key = key.into();
        let value = value.into();
        let mut extras = self.shared.lock();
        match extras.tags.iter_mut().find(|t| t.key == key) {
            Some(tag) => tag.value = value,
            None => extras.tags.push(Tag { key, value }),
        }
        self
    }

    /// Adds a field (replacing an earlier field of the same key). Fields never become labels.
    pub fn field(&self, key: impl Into<Cow<'static, str>>, value: impl Into<FieldValue>) -> &Self {
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
        self.shared
            .request_body_bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Attaches an error code: the request is then an error whatever its status (with the default
    /// classifier), and its error point and `http_server_errors_total` carry this code.
    pub fn error_code(&self, code: impl fmt::Display) -> &Self {
        self.shared.lock().error_code = Some(code.to_string());
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
        let mut extras = self.shared.lock();
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
