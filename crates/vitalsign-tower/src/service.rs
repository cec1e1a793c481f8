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

/// Whether `S`'s `call` runs none of the application's code, so that the request's scope (where
/// [`PointHandle::current`](vitalsign_core::PointHandle::current) finds it) need not be entered
/// around it: axum's `Route`, what `Router::layer` wraps, whose `call` only puts the request in
/// a future (tower's `Oneshot`) that calls the route's service when first polled, inside the
/// scope of the response future's polls. Told by the type's name (about 100 instructions a
/// request on axum): a name that no longer matches only enters the scope again.
#[cfg_attr(not(feature = "axum"), allow(clippy::extra_unused_type_parameters))]
fn defers_its_call<S>() -> bool {
    #[cfg(feature = "axum")]
    {
        std::any::type_name::<S>() == std::any::type_name::<axum::routing::Route>()
    }
    #[cfg(not(feature = "axum"))]
    {
        false
    }
}

/// The service made by [`MonitorLayer`](crate::MonitorLayer).
#[derive(Clone, Debug)]
#[must_use]
pub struct MonitorService<S, R = DefaultResolver> {
    inner: S,
    monitor: Monitor,
    resolver: R,
    /// Whether the inner service's `call` runs inside the request's scope (see
    /// [`defers_its_call`]).
    call_scope: bool,
}

impl<S, R> MonitorService<S, R> {
    pub(crate) fn new(inner: S, monitor: Monitor, resolver: R) -> Self {
        MonitorService {
            inner,
            monitor,
            resolver,
            call_scope: !defers_its_call::<S>(),
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
        if !self.call_scope {
            // The inner future built where the response future holds it: axum's `Route`
            // returns one that holds the request, which an intermediate binding would have
            // moved once more with `memcpy` (29 instructions a request).
            return ResponseFuture::new(self.inner.call(req), flight);
        }
        let inner = {
            let _scope = flight.enter_call();
            self.inner.call(req)
        };
        ResponseFuture::new(inner, flight)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "axum")]
    #[test]
    fn axum_routes_are_told_by_their_type() {
        assert!(super::defers_its_call::<axum::routing::Route>());
        assert!(!super::defers_its_call::<axum::Router>());
        assert!(!super::defers_its_call::<
            tower::util::BoxCloneSyncService<(), (), ()>,
        >());
    }
}
