//! [`MemorySink`]: keeps points in memory, for tests and debugging endpoints.
//!
//! ```
//! use std::sync::Arc;
//! use vitalsign_core::adapter::{self, RequestStart};
//! use vitalsign_core::{MemorySink, Monitor};
//!
//! let sink = Arc::new(MemorySink::new(1_000));
//! let monitor = Monitor::builder("shop").sink(sink.clone()).build().unwrap();
//! let mut flight = adapter::begin(
//!     &monitor,
//!     RequestStart::new(b"GET", "/a").with_route(Some("/a")).with_request_id(Some(b"id-1")),
//! );
//! flight.set_status(503);
//! flight.complete();
//! assert_eq!(sink.requests()[0].request_id.as_str(), "id-1");
//! assert_eq!(sink.errors()[0].error_code, "503");
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{ErrorPoint, Method, OwnedRequestPoint, RequestId, RequestPoint, Sink};

/// An error point as kept by [`MemorySink`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OwnedErrorPoint {
    /// Id of the failed request.
    pub request_id: RequestId,
    /// Its route.
    pub route: String,
    /// The error code.
    pub error_code: String,
}

/// A sink that keeps the last `capacity` request and error points in memory.
#[derive(Debug)]
pub struct MemorySink {
    capacity: usize,
    started: AtomicU64,
    dropped: AtomicU64,
    points: Mutex<(VecDeque<OwnedRequestPoint>, VecDeque<OwnedErrorPoint>)>,
}

impl MemorySink {
    /// Keeps at most `capacity` points of each kind; older ones are dropped and counted.
    pub fn new(capacity: usize) -> Self {
        MemorySink {
            capacity: capacity.max(1),
            started: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            points: Mutex::new((VecDeque::new(), VecDeque::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (VecDeque<OwnedRequestPoint>, VecDeque<OwnedErrorPoint>)> {
        self.points.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The request points kept, oldest first.
    pub fn requests(&self) -> Vec<OwnedRequestPoint> {
        self.lock().0.iter().cloned().collect()
    }

    /// The request points of one route, oldest first.
    pub fn requests_for(&self, route: &str) -> Vec<OwnedRequestPoint> {
        self.lock()
            .0
            .iter()
            .filter(|p| p.route == route)
            .cloned()
            .collect()
    }

    /// The error points kept, oldest first.
    pub fn errors(&self) -> Vec<OwnedErrorPoint> {
        self.lock().1.iter().cloned().collect()
    }

    /// Requests started (recorded or not yet).
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Points dropped because the sink was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Forgets every point kept.
    pub fn clear(&self) {
        let mut points = self.lock();
        points.0.clear();
        points.1.clear();
    }

    fn push<T>(&self, queue: &mut VecDeque<T>, item: T) {
        if queue.len() == self.capacity {
            queue.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queue.push_back(item);
    }
}

impl Sink for MemorySink {
    fn request_started(&self, _method: Method) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        let owned = point.to_owned_point();
        let mut points = self.lock();
        self.push(&mut points.0, owned);
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        let owned = OwnedErrorPoint {
            request_id: *point.request.request_id,
            route: point.request.route.to_owned(),
            error_code: point.error_code.to_owned(),
        };
        let mut points = self.lock();
        self.push(&mut points.1, owned);
    }
}
