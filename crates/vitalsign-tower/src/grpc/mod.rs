//! [`GrpcLayer`] (feature `grpc`): records every call of a tonic server (or any gRPC server
//! built on Tower) under the OpenTelemetry RPC semantic conventions; see
//! [`vitalsign_core::rpc`] for the metrics and the status rules.
//!
//! ```
//! use vitalsign_core::Monitor;
//! use vitalsign_tower::grpc::GrpcLayer;
//!
//! let monitor = Monitor::builder("shop").build()?;
//! // With tonic: `Server::builder().layer(layer).add_service(GreeterServer::new(greeter))`,
//! // the known services named by their `NamedService::NAME`.
//! let layer = GrpcLayer::new(&monitor)
//!     .service("demo.v1.Greeter")
//!     .method("/grpc.health.v1.Health/Check");
//! # let _ = layer;
//! # Ok::<(), vitalsign_core::ConfigError>(())
//! ```

mod body;
mod future;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;
use vitalsign_core::adapter::{self, RpcStart};
use vitalsign_core::rpc::{GrpcErrorCodes, RpcMethods};
use vitalsign_core::{Monitor, REQUEST_ID_HEADER};

pub use body::{GrpcRequestBody, GrpcResponseBody};
pub use future::GrpcResponseFuture;

/// The request-id header, parsed once.
static REQUEST_ID: http::HeaderName = http::HeaderName::from_static(REQUEST_ID_HEADER);
/// `grpc-status`, named once (a `&str` key is parsed on every lookup).
pub(crate) static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// A Tower layer that records each gRPC call as a point of the monitor: duration until the
/// last message and the trailers were sent, the status of the `grpc-status` trailer (or of
/// the headers of a trailers-only response; `UNKNOWN` when a finished stream has none,
/// `CANCELLED` and a disconnect when the client goes away first), the messages received and
/// sent (counted from their 5-byte prefixes as the bodies pass, nothing decoded or copied).
///
/// Calls to methods outside the known set ([`GrpcLayer::service`], [`GrpcLayer::method`]) are
/// recorded under `unmatched`, so that scanners cannot grow the label sets. Which statuses are
/// errors: [`GrpcLayer::error_codes`].
///
/// Per call: one small allocation (the count of messages received, shared with the request
/// body, which the inner service takes away) plus the three tags of the point.
#[derive(Clone, Debug)]
#[must_use]
pub struct GrpcLayer {
    monitor: Monitor,
    known: Arc<RpcMethods>,
    errors: GrpcErrorCodes,
}

impl GrpcLayer {
    /// A layer recording into `monitor`, with no known method yet (every call `unmatched`
    /// until services are added) and the default error codes.
    pub fn new(monitor: &Monitor) -> Self {
        GrpcLayer {
            monitor: monitor.clone(),
            known: Arc::new(RpcMethods::new()),
            errors: GrpcErrorCodes::default(),
        }
    }

    /// Records the methods of the service `name` (tonic's `NamedService::NAME` of the
    /// generated server, `demo.v1.Greeter`) under their own names.
    pub fn service(mut self, name: impl Into<Box<str>>) -> Self {
        let known = Arc::make_mut(&mut self.known);
        *known = std::mem::take(known).service(name);
        self
    }

    /// Records the method at `path` (`/demo.v1.Greeter/SayHello`) under its own name.
    pub fn method(mut self, path: impl Into<Box<str>>) -> Self {
        let known = Arc::make_mut(&mut self.known);
        *known = std::mem::take(known).method(path);
        self
    }

    /// The statuses that count as errors (default: [`GrpcErrorCodes::default`]).
    pub fn error_codes(mut self, codes: GrpcErrorCodes) -> Self {
        self.errors = codes;
        self
    }
}

impl<S> Layer<S> for GrpcLayer {
    type Service = GrpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`GrpcLayer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct GrpcService<S> {
    inner: S,
    layer: GrpcLayer,
}

impl<S> GrpcService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcService<S>
where
    S: Service<Request<GrpcRequestBody<ReqBody>>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<GrpcResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = GrpcResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let layer = &self.layer;
        adapter::probe_runtime_once(&layer.monitor);
        let mut flight = adapter::begin_rpc(
            &layer.monitor,
            RpcStart::new(req.uri().path(), &layer.known)
                .with_errors(layer.errors)
                .with_request_id(req.headers().get(&REQUEST_ID).map(|v| v.as_bytes())),
        );
        let counter = flight.rpc_request_counter();
        let req = req.map(|body| GrpcRequestBody::new(body, counter));
        let future = {
            let _scope = flight.enter_call();
            self.inner.call(req)
        };
        GrpcResponseFuture::new(future, flight)
    }
}
