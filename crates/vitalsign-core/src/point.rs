//! Monitoring points: one [`RequestPoint`] per finished request (series `requests`) and one
//! [`ErrorPoint`] per failed request (series `errors`).
//!
//! Points are borrowed views built on the stack when a request ends; a sink that keeps a point
//! past the call copies what it needs (see [`RequestPoint::to_owned_point`]).
//!
//! ```
//! use vitalsign_core::{Method, RequestId, RequestPoint};
//!
//! let id = RequestId::generate();
//! // As a custom sink's test builds one: the required parts, then any other field.
//! let mut point = RequestPoint::new("shop", "/users/{id}", Method::Get, 200, &id);
//! point.execution_time = 0.012;
//! point.head_time = Some(0.004);
//! point.response_body_bytes = 42;
//! assert_eq!(RequestPoint::SERIES, "requests");
//! assert_eq!(point.to_owned_point().route, "/users/{id}");
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::{Method, RequestId, TraceContext};

/// Route value of a request that matched no route template.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Status recorded for a request whose client hung up before a response head existed
/// (nginx's "client closed request").
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A tag a handler added to its request's point (becomes a label only when declared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// Tag name.
    pub key: Cow<'static, str>,
    /// Tag value.
    pub value: String,
}

/// A field a handler added to its request's point (never a label).
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Field name.
    pub key: Cow<'static, str>,
    /// Field value.
    pub value: FieldValue,
}

/// The value of a [`Field`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// A float (section timers record seconds as floats).
    Float(f64),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Float(v) => write!(f, "{v}"),
            FieldValue::Int(v) => write!(f, "{v}"),
            FieldValue::UInt(v) => write!(f, "{v}"),
            FieldValue::Bool(v) => write!(f, "{v}"),
            FieldValue::Str(v) => f.write_str(v),
        }
    }
}

macro_rules! field_from {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {
        $(impl From<$t> for FieldValue {
            fn from(v: $t) -> Self {
                FieldValue::$variant(v as $as)
            }
        })*
    };
}
field_from!(f64 => Float as f64, f32 => Float as f64, i64 => Int as i64, i32 => Int as i64,
    u64 => UInt as u64, u32 => UInt as u64, usize => UInt as u64);

impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Bool(v)
    }
}
impl From<String> for FieldValue {
    fn from(v: String) -> Self {
        FieldValue::Str(v)
    }
}
impl From<&str> for FieldValue {
    fn from(v: &str) -> Self {
        FieldValue::Str(v.to_owned())
    }
}

fn find_tag<'t>(tags: &'t [Tag], key: &str) -> Option<&'t str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

fn find_field<'f>(fields: &'f [Field], key: &str) -> Option<&'f FieldValue> {
    fields.iter().find(|f| f.key == key).map(|f| &f.value)
}

/// One finished request (series `requests`).
///
/// Tags: `service`, `route`, `method`, `status_code`, plus [`RequestPoint::tags`].
/// Fields: `request_id`, `execution_time`, plus [`RequestPoint::fields`].
///
/// It may gain fields (`#[non_exhaustive]`): build one with [`RequestPoint::new`] and set the
/// other fields.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RequestPoint<'a> {
    /// The monitor's service name.
    pub service: &'a str,
    /// Matched route template, or [`UNMATCHED_ROUTE`]. Never the raw path.
    pub route: &'a str,
    /// Request method (non-standard methods are [`Method::Other`]).
    pub method: Method,
    /// Response status; [`CLIENT_CLOSED_REQUEST`] when the client left before a response existed,
    /// 500 when the handler panicked.
    pub status_code: u16,
    /// Request id: from `x-request-id` when sane, else the trace id of a valid `traceparent`
    /// (32 hex digits), else generated (when a sink or handler needs one).
    pub request_id: &'a RequestId,
    /// The trace the request belongs to, from a valid W3C `traceparent` header
    /// ([`crate::trace`]; with the feature `tracing-otel`, else from the current `tracing`
    /// span's OpenTelemetry context); the duration histogram keeps sampled ones as exemplars.
    /// `None` also when an `x-request-id` longer than 36 characters came with it (the request
    /// keeps its id inline, and the id wins).
    pub trace: Option<TraceContext>,
    /// Seconds from the request's arrival at the middleware until its response body ended (or
    /// was dropped).
    pub execution_time: f64,
    /// Request start, nanoseconds since the Unix epoch (the point's timestamp).
    pub start_unix_nanos: u64,
    /// The request or its body was dropped before completion (client hang-up).
    pub disconnected: bool,
    /// Seconds from arrival until the response head was ready; `None` if there was none.
    pub head_time: Option<f64>,
    /// Bytes of response body actually produced (not a size hint).
    pub response_body_bytes: u64,
    /// Bytes of request body actually read, when the adapter's request-body counting
    /// middleware is in place (0 otherwise).
    pub request_body_bytes: u64,
    /// Tags added by the handler.
    pub tags: &'a [Tag],
    /// Fields added by the handler.
    pub fields: &'a [Field],
    /// The gRPC part of a gRPC call's point (feature `rpc`; see [`crate::rpc`]); `None` for an
    /// HTTP request. Such a point's route is the call's method path (or [`UNMATCHED_ROUTE`]),
    /// its tags start with `rpc_service`, `rpc_method` and `grpc_status`.
    #[cfg(feature = "rpc")]
    pub rpc: Option<crate::rpc::RpcCall<'a>>,
    /// The route's slot in the monitor's route cache, when it has one: the same route always
    /// has the same slot, so the Prometheus sink finds the point's series by this number
    /// without hashing or comparing the route text. `None` in points built elsewhere.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) route_key: Option<u32>,
}

impl<'a> RequestPoint<'a> {
    /// A point of a request with no tags, fields, body bytes or response head, that took no
    /// time, started at the Unix epoch; set the other fields as needed (for tests of custom
    /// sinks).
    pub fn new(
        service: &'a str,
        route: &'a str,
        method: Method,
        status_code: u16,
        request_id: &'a RequestId,
    ) -> Self {
        RequestPoint {
            service,
            route,
            method,
            status_code,
            request_id,
            trace: None,
            execution_time: 0.0,
            start_unix_nanos: 0,
            disconnected: false,
            head_time: None,
            response_body_bytes: 0,
            request_body_bytes: 0,
            tags: &[],
            fields: &[],
            #[cfg(feature = "rpc")]
            rpc: None,
            route_key: None,
        }
    }

    /// Series name of request points.
    pub const SERIES: &'static str = "requests";

    /// The status code as label text, without allocating.
    pub fn status_str<'b>(&self, buf: &'b mut itoa::Buffer) -> &'b str {
        buf.format(self.status_code)
    }

    /// The value of a handler tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        find_tag(self.tags, key)
    }

    /// The value of a handler field.
    pub fn field(&self, key: &str) -> Option<&FieldValue> {
        find_field(self.fields, key)
    }

    /// An owned copy, for sinks that queue points.
    pub fn to_owned_point(&self) -> OwnedRequestPoint {
        OwnedRequestPoint {
            service: self.service.to_owned(),
            route: self.route.to_owned(),
            method: self.method,
            status_code: self.status_code,
            request_id: *self.request_id,
            trace: self.trace,
            execution_time: self.execution_time,
            start_unix_nanos: self.start_unix_nanos,
            disconnected: self.disconnected,
            head_time: self.head_time,
            response_body_bytes: self.response_body_bytes,
            request_body_bytes: self.request_body_bytes,
            tags: self.tags.to_vec(),
            fields: self.fields.to_vec(),
        }
    }
}

/// One failed request (series `errors`): the request's tags plus `error_code`.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ErrorPoint<'a> {
    /// The request this error belongs to.
    pub request: &'a RequestPoint<'a>,
    /// The error code the handler attached; else `panic` (a panic) or `body_error` (the response
    /// body failed); else the status code as text.
    pub error_code: &'a str,
}

impl<'a> ErrorPoint<'a> {
    /// The error point of `request`, with this error code.
    pub fn new(request: &'a RequestPoint<'a>, error_code: &'a str) -> Self {
        ErrorPoint {
            request,
            error_code,
        }
    }

    /// Series name of error points.
    pub const SERIES: &'static str = "errors";
}

/// An owned [`RequestPoint`].
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // same fields as RequestPoint
#[non_exhaustive]
pub struct OwnedRequestPoint {
    pub service: String,
    pub route: String,
    pub method: Method,
    pub status_code: u16,
    pub request_id: RequestId,
    pub trace: Option<TraceContext>,
    pub execution_time: f64,
    pub start_unix_nanos: u64,
    pub disconnected: bool,
    pub head_time: Option<f64>,
    pub response_body_bytes: u64,
    pub request_body_bytes: u64,
    pub tags: Vec<Tag>,
    pub fields: Vec<Field>,
}

impl OwnedRequestPoint {
    /// The value of a handler tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        find_tag(&self.tags, key)
    }

    /// The value of a handler field.
    pub fn field(&self, key: &str) -> Option<&FieldValue> {
        find_field(&self.fields, key)
    }
}

/// One aggregate of one period for one tag set, emitted by a
/// [`PeriodAggregator`](crate::sinks::PeriodAggregator): `count`, `min`, `max` and `sum` of
/// `execution_time` (seconds) over the requests (or errors) whose start fell in the period.
///
/// It may gain fields (`#[non_exhaustive]`): build one with [`AggregatePoint::new`] and set the
/// figures.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct AggregatePoint<'a> {
    /// `requests` or `errors`.
    pub series: &'a str,
    /// The tag set, sorted by key: `service`, `route`, `method`, `status_code` (+ `error_code`),
    /// plus handler tags. Handler fields and request ids are not aggregated.
    pub tags: &'a [(String, String)],
    /// Start of the period, nanoseconds since the Unix epoch (timestamps floored to the period).
    pub period_start_unix_nanos: u64,
    /// Length of the period.
    pub period: std::time::Duration,
    /// Requests in the period.
    pub count: u64,
    /// Shortest execution time, seconds.
    pub min: f64,
    /// Longest execution time, seconds.
    pub max: f64,
    /// Sum of execution times, seconds.
    pub sum: f64,
}

impl<'a> AggregatePoint<'a> {
    /// An aggregate of no request (`count`, `min`, `max` and `sum` zero) of `series` for the tag
    /// set `tags`, over the period of length `period` starting at `period_start_unix_nanos`;
    /// set the figures as needed (for tests of custom sinks).
    pub fn new(
        series: &'a str,
        tags: &'a [(String, String)],
        period_start_unix_nanos: u64,
        period: std::time::Duration,
    ) -> Self {
        AggregatePoint {
            series,
            tags,
            period_start_unix_nanos,
            period,
            count: 0,
            min: 0.0,
            max: 0.0,
            sum: 0.0,
        }
    }
}
