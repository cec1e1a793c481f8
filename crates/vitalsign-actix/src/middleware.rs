//! [`Monitoring`]: the actix-web `Transform`, its `Service` and response future.

use std::cell::OnceCell;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::{
    forward_ready, ResourceMap, Service, ServiceRequest, ServiceResponse, Transform,
};
use actix_web::http::header::HeaderName;
use actix_web::{Error, HttpMessage};
use pin_project_lite::pin_project;
use vitalsign_core::adapter::{self, Flight, RequestStart};
use vitalsign_core::{Monitor, REQUEST_ID_HEADER, TRACEPARENT_HEADER};

use crate::ResponseBody;

static REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
/// The W3C Trace Context header, parsed once.
static TRACEPARENT: HeaderName = HeaderName::from_static(TRACEPARENT_HEADER);

/// Paths up to this long are kept inline in the response future, so that a request that ends
/// without a response can still be matched to its route; longer ones are matched on arrival.
const INLINE_PATH: usize = 64;

/// actix-web middleware that records every request through a [`Monitor`].
///
/// ```
/// use actix_web::{web, App};
/// use vitalsign_actix::Monitoring;
/// use vitalsign_core::Monitor;
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// let app = App::new()
///     .wrap(Monitoring::new(&monitor))
///     .route("/users/{id}", web::get().to(|| async { "user" }));
/// # let _ = app;
/// ```
///
/// The route is the pattern actix matched (`/users/{id}`, nested scopes joined), `unmatched`
/// when none did. Register it with `App::wrap` so that it sees every request, the default
/// service (404) included.
///
/// The route is read from the response, once actix has routed (cheap: actix walks straight to
/// the resource that matched). For a request that ends without a response (a panic), the path
/// is matched against a copy of the application's resource map, which each worker makes at its
/// first request: no request, and nothing a request carries, outlives its response. The route
/// is matched on arrival instead for paths longer than 64 bytes, and for paths that may be
/// routed to an excluded route template (`/health/{component}`), so that such requests are
/// left out from their start, as with the Tower layer.
#[derive(Clone, Debug)]
#[must_use]
pub struct Monitoring {
    monitor: Monitor,
}

impl Monitoring {
    /// Middleware recording into `monitor`.
    pub fn new(monitor: &Monitor) -> Self {
        Monitoring {
            monitor: monitor.clone(),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Monitoring
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = Error;
    type Transform = MonitoringMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        // Runs once per worker, on the worker's runtime: probe its event-loop delay.
        adapter::probe_runtime(&self.monitor);
        ready(Ok(MonitoringMiddleware {
            service,
            monitor: self.monitor.clone(),
            routes: OnceCell::new(),
        }))
    }
}

/// The service made by [`Monitoring`].
#[derive(Debug)]
pub struct MonitoringMiddleware<S> {
    service: S,
    monitor: Monitor,
    /// Where routes are looked up for requests that end without a response.
    routes: OnceCell<Rc<ResourceMap>>,
}

/// Why the route is read from the response: before routing, `match_pattern()` matches the path
/// against every resource again (regular expressions and two allocations); after routing, actix
/// walks straight to the resource that matched. Only a request that ends without a response (a
/// panic, a hang-up, an error) is matched by its path, against the application's resource map.
///
/// actix lends that map only by reference, through a request. Keeping a request for it would
/// keep its headers, extensions and app data alive for the life of the worker; a copy of the
/// map made at the worker's first request holds none of them. The copy shares the resource
/// nodes of the original and is used only to match paths, which it does exactly as the
/// original (nested scopes joined through the nodes' links to their parents).
fn resource_map<'a>(
    cell: &'a OnceCell<Rc<ResourceMap>>,
    req: &ServiceRequest,
) -> &'a Rc<ResourceMap> {
    cell.get_or_init(|| Rc::new(req.resource_map().clone()))
}

/// The path of a request whose route is read from its response, kept for the case where there
/// is none.
struct PendingRoute {
    path: [u8; INLINE_PATH],
    len: u8,
    routes: Rc<ResourceMap>,
}

impl PendingRoute {
    fn new(path: &str, routes: &Rc<ResourceMap>) -> Option<Self> {
        if path.len() > INLINE_PATH {
            return None;
        }
        let mut inline = [0; INLINE_PATH];
        inline[..path.len()].copy_from_slice(path.as_bytes());
        Some(PendingRoute {
            path: inline,
            len: path.len() as u8,
            routes: Rc::clone(routes),
        })
    }

    /// The route of the kept path, matched against the resource map.
    fn resolve(&self) -> Option<String> {
        let path = std::str::from_utf8(&self.path[..usize::from(self.len)]).ok()?;
        self.routes.match_pattern(path)
    }
}

impl<S, B> Service<ServiceRequest> for MonitoringMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // The route is read from the response when the path can be kept for a request that
        // ends without one; otherwise actix matches the path now (nested scopes joined). A path
        // that may lead to an excluded route template is matched now, so that an excluded
        // request is left out from its start.
        let pending = if adapter::may_route_to_excluded_template(&self.monitor, req.path()) {
            None
        } else {
            PendingRoute::new(req.path(), resource_map(&self.routes, &req))
        };
        let route = match pending {
            Some(_) => None,
            None => req.match_pattern(),
        };
        let headers = req.headers();
        let lookup = |name: &str| headers.get(name).map(|v| v.as_bytes());
        let mut flight = adapter::begin(
            &self.monitor,
            RequestStart::new(req.method().as_str().as_bytes(), req.path())
                .with_route(route.as_deref())
                .with_request_id(headers.get(&REQUEST_ID).map(|v| v.as_bytes()))
                .with_traceparent(headers.get(&TRACEPARENT).map(|v| v.as_bytes()))
                .with_headers(&lookup),
        );
        if adapter::point_in_extensions(&self.monitor) {
            // For futures the handler spawns: see `Point`.
            let carried = flight.carry(req.extensions().get());
            if let Some(handle) = carried {
                req.extensions_mut().insert(handle);
            }
        }
        let inner = flight.in_call(|| self.service.call(req));
        ResponseFuture {
            inner,
            flight,
            pending,
        }
    }
}

pin_project! {
    /// Response future of [`MonitoringMiddleware`]. Dropping it before it resolves records a
    /// disconnect.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        flight: Flight,
        pending: Option<PendingRoute>,
    }
    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Ended before a response (a hang-up, or a panic unwinding): match the kept path.
            let this = this.project();
            if let Some(pending) = this.pending.take() {
                this.flight.set_route(pending.resolve().as_deref());
            }
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("flight", &self.flight)
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<ResponseBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        match ready!(this.flight.in_scope(|| inner.as_mut().poll(cx))) {
            // Handler errors arrive here too, inside `response().error()`: their status is the
            // response's status.
            Ok(response) => {
                if this.pending.take().is_some() {
                    // Routed: actix walks straight to the matched resource.
                    this.flight
                        .set_route(response.request().match_pattern().as_deref());
                }
                // Path parameters exist once actix has routed.
                if this.flight.wants_path_params() {
                    this.flight
                        .path_params(response.request().match_info().iter());
                }
                let flight = this.flight.response(response.status().as_u16());
                Poll::Ready(Ok(
                    response.map_body(move |_, body| ResponseBody::new(body, flight))
                ))
            }
            // An error actix turns into a response after the middleware: record its status now.
            Err(error) => {
                if let Some(pending) = this.pending.take() {
                    this.flight.set_route(pending.resolve().as_deref());
                }
                this.flight
                    .failed(error.as_response_error().status_code().as_u16());
                Poll::Ready(Err(error))
            }
        }
    }
}
