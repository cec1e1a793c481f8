//! gRPC calls as monitoring points (feature `rpc`): what a gRPC adapter (the Tower layer's
//! `GrpcLayer`) shares with the monitor.
//!
//! A gRPC call is recorded as a [`RequestPoint`](crate::RequestPoint) whose
//! [`rpc`](crate::RequestPoint::rpc) part is set: its route is the call's bounded method path
//! (`/demo.v1.Greeter/SayHello`, or [`UNMATCHED_ROUTE`](crate::UNMATCHED_ROUTE) for a path
//! outside the known set), its tags carry `rpc_service`, `rpc_method` and `grpc_status` for
//! the push sinks and `/stats`, and the Prometheus sink records it under the OpenTelemetry RPC
//! semantic conventions (v1.37.0 attributes `rpc.system`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`, with the duration in seconds as `rpc.server.call.duration`):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `rpc_server_call_duration_seconds` | histogram | `rpc_system`, `rpc_service`, `rpc_method`, `rpc_grpc_status_code` |
//! | `rpc_server_requests_per_rpc` | histogram (messages) | the same |
//! | `rpc_server_responses_per_rpc` | histogram (messages) | the same |
//! | `rpc_server_errors_total` | counter | the same |
//! | `rpc_server_disconnects_total` | counter | `rpc_system`, `rpc_service`, `rpc_method` |
//! | `rpc_server_active_calls` | gauge | `rpc_system` |
//!
//! The status is the `grpc-status` of the trailers (or of the headers of a trailers-only
//! response); a stream that ends without one is [`UNKNOWN`](GrpcCode::UNKNOWN), a call whose
//! client went away is [`CANCELLED`](GrpcCode::CANCELLED) and a disconnect. Which statuses are
//! errors is a [`GrpcErrorCodes`] set (by default the server errors of the conventions).
//!
//! ```
//! use vitalsign_core::rpc::{GrpcCode, GrpcErrorCodes, MessageCounter, RpcMethods};
//!
//! let known = RpcMethods::new().service("demo.v1.Greeter");
//! assert_eq!(known.resolve("/demo.v1.Greeter/SayHello"), Some("/demo.v1.Greeter/SayHello"));
//! assert_eq!(known.resolve("/x.Y/Z"), None);
//! assert!(GrpcErrorCodes::default().contains(GrpcCode::INTERNAL));
//! assert!(!GrpcErrorCodes::default().contains(GrpcCode::NOT_FOUND));
//!
//! // Two messages of 3 and 0 bytes, split anywhere: counted from their 5-byte prefixes.
//! let mut counter = MessageCounter::default();
//! let wire = [0u8, 0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0, 0];
//! assert_eq!(counter.feed(&wire[..2]) + counter.feed(&wire[2..]), 2);
//! ```

mod frames;
mod methods;

pub use frames::MessageCounter;
pub use methods::RpcMethods;

use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};

/// `rpc_system` of gRPC calls.
pub const GRPC_SYSTEM: &str = "grpc";

/// A gRPC status code (`grpc-status`), 0 to 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrpcCode(pub u16);

impl GrpcCode {
    /// `OK` (0).
    pub const OK: GrpcCode = GrpcCode(0);
    /// `CANCELLED` (1): also what a call whose client went away is recorded with.
    pub const CANCELLED: GrpcCode = GrpcCode(1);
    /// `UNKNOWN` (2): also what a stream that ends without a status is recorded with.
    pub const UNKNOWN: GrpcCode = GrpcCode(2);
    /// `INVALID_ARGUMENT` (3).
    pub const INVALID_ARGUMENT: GrpcCode = GrpcCode(3);
    /// `DEADLINE_EXCEEDED` (4).
    pub const DEADLINE_EXCEEDED: GrpcCode = GrpcCode(4);
    /// `NOT_FOUND` (5).
    pub const NOT_FOUND: GrpcCode = GrpcCode(5);
    /// `ALREADY_EXISTS` (6).
    pub const ALREADY_EXISTS: GrpcCode = GrpcCode(6);
    /// `PERMISSION_DENIED` (7).
    pub const PERMISSION_DENIED: GrpcCode = GrpcCode(7);
    /// `RESOURCE_EXHAUSTED` (8).
    pub const RESOURCE_EXHAUSTED: GrpcCode = GrpcCode(8);
    /// `FAILED_PRECONDITION` (9).
    pub const FAILED_PRECONDITION: GrpcCode = GrpcCode(9);
    /// `ABORTED` (10).
    pub const ABORTED: GrpcCode = GrpcCode(10);
    /// `OUT_OF_RANGE` (11).
    pub const OUT_OF_RANGE: GrpcCode = GrpcCode(11);
    /// `UNIMPLEMENTED` (12).
    pub const UNIMPLEMENTED: GrpcCode = GrpcCode(12);
    /// `INTERNAL` (13).
    pub const INTERNAL: GrpcCode = GrpcCode(13);
    /// `UNAVAILABLE` (14).
    pub const UNAVAILABLE: GrpcCode = GrpcCode(14);
    /// `DATA_LOSS` (15).
    pub const DATA_LOSS: GrpcCode = GrpcCode(15);
    /// `UNAUTHENTICATED` (16).
    pub const UNAUTHENTICATED: GrpcCode = GrpcCode(16);

    const NAMES: [&'static str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];

    /// The code of a `grpc-status` value (ASCII digits); a value that is not a code from 0 to
    /// 16 is [`GrpcCode::UNKNOWN`], as gRPC clients read it.
    ///
    /// ```
    /// use vitalsign_core::rpc::GrpcCode;
    ///
    /// assert_eq!(GrpcCode::from_header(b"13"), GrpcCode::INTERNAL);
    /// assert_eq!(GrpcCode::from_header(b"99"), GrpcCode::UNKNOWN);
    /// ```
    pub fn from_header(value: &[u8]) -> GrpcCode {
        let code = match value {
            [d] if d.is_ascii_digit() => u16::from(d - b'0'),
            [b'1', d] if d.is_ascii_digit() => 10 + u16::from(d - b'0'),
            _ => return GrpcCode::UNKNOWN,
        };
        if code <= 16 {
            GrpcCode(code)
        } else {
            GrpcCode::UNKNOWN
        }
    }

    /// The code's name (`INTERNAL`), the `grpc_status` tag of push sinks and the error code of
    /// a failed call.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .get(usize::from(self.0))
            .copied()
            .unwrap_or("UNKNOWN")
    }

    /// The code as label text (`13`), without allocating.
    pub fn as_str(self) -> &'static str {
        const NUMBERS: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        NUMBERS.get(usize::from(self.0)).copied().unwrap_or("2")
    }
}

/// Which gRPC status codes count as errors (`rpc_server_errors_total`, error points, health
/// rules). The default is the server errors of the OpenTelemetry gRPC conventions: `UNKNOWN`,
/// `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS`.
///
/// ```
/// use vitalsign_core::rpc::{GrpcCode, GrpcErrorCodes};
///
/// let codes = GrpcErrorCodes::default()
///     .with(GrpcCode::RESOURCE_EXHAUSTED)
///     .without(GrpcCode::UNIMPLEMENTED);
/// assert!(codes.contains(GrpcCode::RESOURCE_EXHAUSTED));
/// assert!(!codes.contains(GrpcCode::UNIMPLEMENTED));
/// assert!(!GrpcErrorCodes::none().contains(GrpcCode::INTERNAL));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrpcErrorCodes(u32);

impl Default for GrpcErrorCodes {
    fn default() -> Self {
        GrpcErrorCodes::none()
            .with(GrpcCode::UNKNOWN)
            .with(GrpcCode::DEADLINE_EXCEEDED)
            .with(GrpcCode::UNIMPLEMENTED)
            .with(GrpcCode::INTERNAL)
            .with(GrpcCode::UNAVAILABLE)
            .with(GrpcCode::DATA_LOSS)
    }
}

impl std::fmt::Debug for GrpcErrorCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(
                (0..=16)
                    .map(GrpcCode)
                    .filter(|c| self.contains(*c))
                    .map(GrpcCode::name),
            )
            .finish()
    }
}

impl GrpcErrorCodes {
    /// No code is an error.
    pub const fn none() -> Self {
        GrpcErrorCodes(0)
    }

    /// With `code` counted as an error (codes above 16 are ignored).
    #[must_use]
    pub const fn with(self, code: GrpcCode) -> Self {
        if code.0 > 16 {
            return self;
        }
        GrpcErrorCodes(self.0 | 1 << code.0)
    }

    /// With `code` not counted as an error.
    #[must_use]
    pub const fn without(self, code: GrpcCode) -> Self {
        if code.0 > 16 {
            return self;
        }
        GrpcErrorCodes(self.0 & !(1 << code.0))
    }

    /// Whether `code` counts as an error.
    pub const fn contains(self, code: GrpcCode) -> bool {
        code.0 <= 16 && self.0 & (1 << code.0) != 0
    }
}

/// The gRPC part of a [`RequestPoint`](crate::RequestPoint) of a gRPC call.
///
/// It may gain fields (`#[non_exhaustive]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpcCall<'a> {
    /// `rpc_system`: [`GRPC_SYSTEM`].
    pub system: &'static str,
    /// The fully qualified service (`demo.v1.Greeter`), or
    /// [`UNMATCHED_ROUTE`](crate::UNMATCHED_ROUTE) for a path outside the known set.
    pub service: &'a str,
    /// The method (`SayHello`), or [`UNMATCHED_ROUTE`](crate::UNMATCHED_ROUTE).
    pub method: &'a str,
    /// The call's status.
    pub status: GrpcCode,
    /// Messages received from the client (counted from their 5-byte prefixes).
    pub requests: u32,
    /// Messages sent to the client.
    pub responses: u32,
    /// Whether the status counts as an error ([`GrpcErrorCodes`]).
    pub is_error: bool,
}

impl<'a> RpcCall<'a> {
    /// The call to `route` (a method path `/pkg.Service/Method`, or any other label such as
    /// [`UNMATCHED_ROUTE`](crate::UNMATCHED_ROUTE), which is then both service and method),
    /// with this status, no messages, and not an error; set the other fields as needed.
    ///
    /// ```
    /// use vitalsign_core::rpc::{GrpcCode, RpcCall};
    ///
    /// let call = RpcCall::new("/demo.v1.Greeter/SayHello", GrpcCode::OK);
    /// assert_eq!((call.service, call.method), ("demo.v1.Greeter", "SayHello"));
    /// assert_eq!(RpcCall::new("unmatched", GrpcCode::UNIMPLEMENTED).method, "unmatched");
    /// ```
    pub fn new(route: &'a str, status: GrpcCode) -> Self {
        let (service, method) = split_path(route);
        RpcCall {
            system: GRPC_SYSTEM,
            service,
            method,
            status,
            requests: 0,
            responses: 0,
            is_error: false,
        }
    }
}

/// `/pkg.Service/Method` as `(pkg.Service, Method)`; another label is both.
pub(crate) fn split_path(route: &str) -> (&str, &str) {
    route
        .strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .unwrap_or((route, route))
}

/// No status yet in [`RpcState::status`].
const NO_STATUS: u16 = u16::MAX;

/// What a gRPC call shares between the monitor's flight and its adapter's request body: the
/// messages received, the messages sent and the status seen. It lives in the call's shared
/// handler state, made when the call begins: one allocation per call (the request body leaves
/// the layer's hands with the inner service).
#[derive(Debug)]
pub(crate) struct RpcState {
    requests: AtomicU32,
    responses: AtomicU32,
    status: AtomicU16,
    errors: GrpcErrorCodes,
}

impl RpcState {
    pub(crate) fn new(errors: GrpcErrorCodes) -> Self {
        RpcState {
            requests: AtomicU32::new(0),
            responses: AtomicU32::new(0),
            status: AtomicU16::new(NO_STATUS),
            errors,
        }
    }

    pub(crate) fn set_status(&self, code: GrpcCode) {
        self.status.store(code.0, Ordering::Relaxed);
    }

    pub(crate) fn has_status(&self) -> bool {
        self.status.load(Ordering::Relaxed) != NO_STATUS
    }

    pub(crate) fn add_responses(&self, n: u32) {
        self.responses.fetch_add(n, Ordering::Relaxed);
    }

    /// The call as recorded: `disconnected` (the flight was dropped before the end) is
    /// `CANCELLED` unless a status was already seen; a finished stream without one `UNKNOWN`.
    pub(crate) fn call<'a>(&self, route: &'a str, disconnected: bool) -> RpcCall<'a> {
        let status = match self.status.load(Ordering::Relaxed) {
            NO_STATUS if disconnected => GrpcCode::CANCELLED,
            NO_STATUS => GrpcCode::UNKNOWN,
            code => GrpcCode(code),
        };
        let mut call = RpcCall::new(route, status);
        call.requests = self.requests.load(Ordering::Relaxed);
        call.responses = self.responses.load(Ordering::Relaxed);
        call.is_error = self.errors.contains(status);
        call
    }
}

/// Counts the messages a gRPC call receives, for its request body: a handle on the call's
/// shared count (see [`Flight::rpc_request_counter`](crate::adapter::Flight::rpc_request_counter)).
#[derive(Clone, Debug)]
pub struct RequestCounter(pub(crate) std::sync::Arc<crate::handle::Shared>);

impl RequestCounter {
    /// `n` more messages were received.
    #[inline]
    pub fn add(&self, n: u32) {
        if let (Some(rpc), true) = (&self.0.rpc, n != 0) {
            rpc.requests.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// The tags of a gRPC call's point: `rpc_service`, `rpc_method`, `grpc_status` (the status'
/// name), then the handler's.
pub(crate) fn tags_of(call: &RpcCall<'_>, handler: &[crate::Tag]) -> Vec<crate::Tag> {
    let mut tags = Vec::with_capacity(3 + handler.len());
    for (key, value) in [
        ("rpc_service", call.service),
        ("rpc_method", call.method),
        ("grpc_status", call.status.name()),
    ] {
        tags.push(crate::Tag {
            key: key.into(),
            value: value.to_owned(),
        });
    }
    tags.extend_from_slice(handler);
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_and_numbers_cover_every_code() {
        for code in 0..=16 {
            let code = GrpcCode(code);
            assert_eq!(GrpcCode::from_header(code.as_str().as_bytes()), code);
            assert_ne!(code.name(), "");
        }
        assert_eq!(GrpcCode::from_header(b""), GrpcCode::UNKNOWN);
        assert_eq!(GrpcCode::from_header(b"17"), GrpcCode::UNKNOWN);
        assert_eq!(GrpcCode::from_header(b"1a"), GrpcCode::UNKNOWN);
    }

    #[test]
    fn a_call_without_status_is_unknown_when_finished_and_cancelled_when_dropped() {
        let state = RpcState::new(GrpcErrorCodes::default());
        let finished = state.call("/a.B/C", false);
        assert_eq!(
            (finished.status, finished.is_error),
            (GrpcCode::UNKNOWN, true)
        );
        let dropped = state.call("/a.B/C", true);
        assert_eq!(
            (dropped.status, dropped.is_error),
            (GrpcCode::CANCELLED, false)
        );
        state.set_status(GrpcCode::OK);
        assert_eq!(state.call("/a.B/C", true).status, GrpcCode::OK);
    }

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/demo.v1.Greeter/Fail"),
            ("demo.v1.Greeter", "Fail")
        );
        assert_eq!(split_path("unmatched"), ("unmatched", "unmatched"));
    }
}
