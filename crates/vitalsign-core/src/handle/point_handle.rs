//! [`PointHandle`], what a handler holds of its request's point: tags, fields, an error code,
//! timed sections ([`SectionTimer`]); and how a handler finds it (the thread-local, else the
//! request's extensions, else a handle that records nothing, with one warning).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::scope::{Slot, CURRENT, CURRENT_ID};
use super::Shared;
use crate::point::{Field, FieldValue, Tag};
use crate::RequestId;

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
    pub(super) shared: Option<Arc<Shared>>,
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
            .map_or(RequestId::EMPTY, |shared| shared.request_id_for_handler())
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

    /// The guard of this request's upgraded session (a WebSocket): keep it for as long as the
    /// session lasts (move it into the task that serves the socket). The session counts in
    /// `http_server_upgraded_sessions{http_route}` from the moment the request is recorded
    /// with status 101 until the guard is dropped (on panic too), and then its length goes to
    /// `http_server_upgraded_session_duration_seconds{http_route}`. The request itself is
    /// recorded once, at its 101 head (see the README's "WebSockets and other upgrades").
    ///
    /// ```
    /// use vitalsign_core::adapter::{self, RequestStart};
    /// use vitalsign_core::{Monitor, PointHandle};
    ///
    /// let monitor = Monitor::builder("chat").build()?;
    /// let mut flight =
    ///     adapter::begin(&monitor, RequestStart::new(b"GET", "/ws").with_route(Some("/ws")));
    /// let session = flight.in_scope(|| PointHandle::current().unwrap().upgraded_session());
    /// flight.response(101).complete(); // the 101 head: the session starts
    /// let text = monitor.render_metrics().unwrap();
    /// assert!(text.contains(r#"http_server_upgraded_sessions{http_route="/ws"} 1"#));
    /// drop(session); // the socket closed
    /// let text = monitor.render_metrics().unwrap();
    /// assert!(text.contains(r#"http_server_upgraded_sessions{http_route="/ws"} 0"#));
    /// assert!(text.contains(r#"http_server_upgraded_session_duration_seconds_count{http_route="/ws"} 1"#));
    /// # Ok::<(), vitalsign_core::ConfigError>(())
    /// ```
    pub fn upgraded_session(&self) -> super::UpgradedSession {
        let slot = self.shared.as_ref().map(|shared| {
            let slot = Arc::new(super::SessionSlot::new());
            shared.lock().upgrade = Some(Arc::clone(&slot));
            slot
        });
        super::UpgradedSession::new(slot)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::HandlerScope;

    #[test]
    fn section_timers_add_up() {
        let mut scope = HandlerScope::new(Some(RequestId::generate()), None);
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
