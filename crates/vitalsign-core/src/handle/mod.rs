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

// This file: the state a request's handles share (what handlers added to its point).
mod ids; // a request's id and trace context, inline
mod point_handle; // `PointHandle` and `SectionTimer`: what a handler does with its point
mod scope; // the current request: thread-locals, `HandlerScope`, requests that record nothing
mod session; // `UpgradedSession`: the life of an upgraded connection
#[cfg(test)]
mod unrecorded_and_carried;

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::point::{Field, Tag};
use crate::RequestId;

pub use point_handle::{PointHandle, SectionTimer};
pub(crate) use scope::{
    enter_unrecorded, entered_unrecorded, Entered, EnteredUnrecorded, HandlerScope,
};
pub(crate) use session::SessionSlot;
pub use session::{UpgradedSession, SESSION_DURATION_BUCKETS};

/// What a request's handles share: its id, what handlers added, the request body bytes read.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Set when the shared part is made, except for a gRPC call without an `x-request-id`
    /// that no sink needs an id for: generated then only if a handler reads it.
    request_id: std::sync::OnceLock<RequestId>,
    extras: Mutex<Extras>,
    request_body_bytes: std::sync::atomic::AtomicU64,
    /// A gRPC call's messages and status (shared with its request body's adapter).
    #[cfg(feature = "rpc")]
    pub(crate) rpc: Option<crate::rpc::RpcState>,
}

/// What handlers added to a point.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    pub(crate) tags: Vec<Tag>,
    pub(crate) fields: Vec<Field>,
    pub(crate) error_code: Option<String>,
    /// The upgraded session a handler holds a guard of, started when the 101 is recorded.
    pub(crate) upgrade: Option<std::sync::Arc<SessionSlot>>,
}

impl Shared {
    fn new(request_id: RequestId) -> Shared {
        Shared::with_id(std::sync::OnceLock::from(request_id))
    }

    fn with_id(request_id: std::sync::OnceLock<RequestId>) -> Shared {
        Shared {
            request_id,
            extras: Mutex::new(Extras::default()),
            request_body_bytes: std::sync::atomic::AtomicU64::new(0),
            #[cfg(feature = "rpc")]
            rpc: None,
        }
    }

    /// The shared part of a gRPC call, made when it begins.
    #[cfg(feature = "rpc")]
    pub(crate) fn new_rpc(request_id: Option<RequestId>, rpc: crate::rpc::RpcState) -> Shared {
        Shared {
            rpc: Some(rpc),
            ..Shared::with_id(
                request_id.map_or_else(std::sync::OnceLock::new, std::sync::OnceLock::from),
            )
        }
    }

    /// The id the point carries: [`RequestId::EMPTY`] if none was needed yet.
    pub(crate) fn request_id(&self) -> &RequestId {
        self.request_id.get().unwrap_or(&RequestId::EMPTY)
    }

    /// The id a handler reads: generated now if there is none yet (then also the point's).
    pub(crate) fn request_id_for_handler(&self) -> RequestId {
        *self.request_id.get_or_init(RequestId::generate)
    }

    pub(crate) fn request_body_bytes(&self) -> u64 {
        self.request_body_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Extras> {
        self.extras.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
