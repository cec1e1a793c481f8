//! gRPC calls through the flight (feature `rpc`): how a call begins and what its flight
//! carries; the point's gRPC part is made in `record`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::flight::NO_HEAD;
use super::routes::Route;
use super::{Flight, InFlight, Monitor};
use crate::handle::HandlerScope;
use crate::rpc::{GrpcCode, GrpcErrorCodes, RequestCounter, RpcMethods, RpcState};
use crate::{Method, RequestId};

/// What a gRPC adapter knows about a call when it arrives.
///
/// It may gain fields (`#[non_exhaustive]`): build it with [`RpcStart::new`] and the `with_*`
/// methods.
///
/// ```
/// use vitalsign_core::adapter::{self, RpcStart};
/// use vitalsign_core::rpc::{GrpcCode, RpcMethods};
/// use vitalsign_core::Monitor;
///
/// let monitor = Monitor::builder("shop").build()?;
/// let known = RpcMethods::new().service("demo.v1.Greeter");
/// let mut flight = adapter::begin_rpc(&monitor, RpcStart::new("/demo.v1.Greeter/SayHello", &known));
/// if let Some(counter) = flight.rpc_request_counter() {
///     counter.add(1); // the request body's adapter counts the messages received
/// }
/// let mut flight = flight.response(200);
/// flight.rpc_responses(1);
/// flight.rpc_status(GrpcCode::OK);
/// flight.complete();
/// let text = monitor.render_metrics().unwrap();
/// assert!(text.contains(
///     "rpc_server_call_duration_seconds_count{rpc_system=\"grpc\",rpc_service=\"demo.v1.Greeter\",\
///      rpc_method=\"SayHello\",rpc_grpc_status_code=\"0\"} 1"
/// ));
/// assert!(text.contains("rpc_server_responses_per_rpc_sum{rpc_system=\"grpc\",rpc_service=\"demo.v1.Greeter\",\
///      rpc_method=\"SayHello\",rpc_grpc_status_code=\"0\"} 1"));
/// # Ok::<(), vitalsign_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RpcStart<'a> {
    /// The request path, `/package.Service/Method` (a label only when `known` has it).
    pub path: &'a str,
    /// The methods recorded under their own names.
    pub known: &'a RpcMethods,
    /// The statuses that are errors.
    pub errors: GrpcErrorCodes,
    /// The `x-request-id` header, if present.
    pub request_id: Option<&'a [u8]>,
}

impl<'a> RpcStart<'a> {
    /// A call to `path`, bounded by `known`, with the default error codes and no request id.
    pub fn new(path: &'a str, known: &'a RpcMethods) -> Self {
        RpcStart {
            path,
            known,
            errors: GrpcErrorCodes::default(),
            request_id: None,
        }
    }

    /// With these statuses counted as errors.
    #[must_use]
    pub fn with_errors(mut self, errors: GrpcErrorCodes) -> Self {
        self.errors = errors;
        self
    }

    /// With the `x-request-id` header's value.
    #[must_use]
    pub fn with_request_id(mut self, request_id: Option<&'a [u8]>) -> Self {
        self.request_id = request_id;
        self
    }
}

impl Monitor {
    /// A gRPC call arrives: `None` when its path is excluded.
    pub(crate) fn begin_rpc(&self, start: &RpcStart<'_>) -> Option<InFlight> {
        if self.is_excluded(start.path, None) {
            return None;
        }
        let route = match start.known.resolve(start.path) {
            None => Route::UNMATCHED,
            Some(path) => self.intern(path),
        };
        let request_id = RequestId::from_header(start.request_id)
            .or_else(|| self.inner.needs_request_id.then(RequestId::generate));
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        self.each_sink(|sink| sink.rpc_started());
        let now = self.inner.clock.now();
        Some(InFlight {
            monitor: self.clone(),
            method: Method::Post,
            route,
            start: now,
            // The call's messages and status live in its shared part (one allocation).
            scope: HandlerScope::new_rpc(request_id, RpcState::new(start.errors)),
            status: None,
            head_nanos: NO_HEAD,
            body_bytes: 0,
            route_excluded: false,
            body_failed: false,
            done: false,
        })
    }
}

impl InFlight {
    /// The gRPC part of this flight (`None` for an HTTP request).
    pub(super) fn rpc(&self) -> Option<&RpcState> {
        self.scope
            .shared
            .as_deref()
            .and_then(|shared| shared.rpc.as_ref())
    }
}

impl Flight {
    /// The counter of the messages this gRPC call receives, for the adapter's request body;
    /// `None` for a flight that records nothing or is not a gRPC call.
    pub fn rpc_request_counter(&self) -> Option<RequestCounter> {
        let shared = self.0.as_ref()?.scope.shared.as_ref()?;
        shared
            .rpc
            .is_some()
            .then(|| RequestCounter(Arc::clone(shared)))
    }

    /// The gRPC call sent `n` more messages.
    #[inline]
    pub fn rpc_responses(&mut self, n: u32) {
        if let Some(rpc) = self.0.as_ref().and_then(InFlight::rpc) {
            if n != 0 {
                rpc.add_responses(n);
            }
        }
    }

    /// The gRPC call's status (`grpc-status` of the trailers, or of the headers of a
    /// trailers-only response).
    #[inline]
    pub fn rpc_status(&mut self, code: GrpcCode) {
        if let Some(rpc) = self.0.as_ref().and_then(InFlight::rpc) {
            rpc.set_status(code);
        }
    }

    /// Whether the gRPC call's status is known.
    pub fn rpc_has_status(&self) -> bool {
        self.0
            .as_ref()
            .and_then(InFlight::rpc)
            .is_some_and(|rpc| rpc.has_status())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{PointHandle, RequestPoint, Sink};

    /// Keeps each point's request id; reads no id itself (as Prometheus and `/stats`).
    #[derive(Debug, Default)]
    struct Ids(Mutex<Vec<String>>);

    impl Sink for Ids {
        fn needs_request_id(&self) -> bool {
            false
        }
        fn record_request(&self, point: &RequestPoint<'_>) {
            self.0
                .lock()
                .unwrap()
                .push(point.request_id.as_str().to_owned());
        }
    }

    /// A gRPC call without `x-request-id` that no sink needs an id for makes none (no UUID
    /// formatted per call); a handler that reads its id gets a fresh one, which the point then
    /// carries too; an `x-request-id` is kept as it is.
    #[test]
    fn a_calls_request_id_is_made_only_when_read() {
        let ids = Arc::new(Ids::default());
        let monitor = Monitor::builder("rpc").sink(ids.clone()).build().unwrap();
        let known = RpcMethods::new().service("demo.v1.Greeter");
        let call = |start: RpcStart<'_>, read: bool| {
            let mut flight = crate::adapter::begin_rpc(&monitor, start);
            let read =
                flight.in_scope(|| read.then(|| PointHandle::current().unwrap().request_id()));
            let mut flight = flight.response(200);
            flight.rpc_status(GrpcCode::OK);
            flight.complete();
            read
        };
        let path = "/demo.v1.Greeter/SayHello";
        assert_eq!(call(RpcStart::new(path, &known), false), None);
        let read = call(RpcStart::new(path, &known), true).unwrap();
        assert_eq!(read.as_str().len(), 36, "a UUID: {read:?}");
        call(
            RpcStart::new(path, &known).with_request_id(Some(b"abc-1")),
            false,
        );
        let seen = ids.0.lock().unwrap().clone();
        assert_eq!(seen, ["", read.as_str(), "abc-1"]);
    }
}
