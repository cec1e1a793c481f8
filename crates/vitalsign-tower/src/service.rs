//! [`MonitorService`].

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use vitalsign_core::adapter::{self, RequestStart};
use vitalsign_core::{Monitor, REQUEST_ID_HEADER, TRACEPARENT_HEADER};

/// The request-id header, parsed once.
static REQUEST_ID: http::HeaderName = http::HeaderName::from_static(REQUEST_ID_HEADER);
/// The W3C Trace Context header, parsed once.
static TRACEPARENT: http::HeaderName = http::HeaderName::from_static(TRACEPARENT_HEADER);

use crate::layer::{DefaultResolver, RequestHead, ResolveRoute};
use crate::{ResponseBody, ResponseFuture};

fn head_of<B>(req: &Request<B>) -> RequestHead<'_> {
    RequestHead {
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        extensions: req.extensions(),
    }
}

/// The service made by [`MonitorLayer`](crate::MonitorLayer).
#[derive(Clone, Debug)]
#[must_use]
pub struct MonitorService<S, R = DefaultResolver> {
    inner: S,
    monitor: Monitor,
    resolver: R,
}

impl<S, R> MonitorService<S, R> {
    pub(crate) fn new(inner: S, monitor: Monitor, resolver: R) -> Self {
        MonitorService {
            inner,
            monitor,
            resolver,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for MonitorService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: ResolveRoute,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        adapter::probe_runtime_once(&self.monitor);
        let head = head_of(&req);
        let headers = req.headers();
        let lookup = |name: &str| headers.get(name).map(|v| v.as_bytes());
        let mut flight = adapter::begin(
            &self.monitor,
            RequestStart::new(req.method().as_str().as_bytes(), req.uri().path())
                .with_route(self.resolver.resolve(&head))
                .with_request_id(headers.get(&REQUEST_ID).map(|v| v.as_bytes()))
                .with_traceparent(headers.get(&TRACEPARENT).map(|v| v.as_bytes()))
                .with_headers(&lookup),
        );
        if flight.wants_path_params() {
            self.resolver.path_params(&head, &mut |name, value| {
                flight.path_params([(name, value)]);
            });
        }
        if adapter::point_in_extensions(&self.monitor) {
            // For handlers on another task (behind `Buffer`, spawned): see `Point`.
            if let Some(handle) = flight.carry(req.extensions().get()) {
                req.extensions_mut().insert(handle);
            }
        }
        let inner = {
            let _scope = flight.enter_call();
            self.inner.call(req)
        };
        ResponseFuture::new(inner, flight)
    }
}
