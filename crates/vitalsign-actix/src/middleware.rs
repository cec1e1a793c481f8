//! [`Monitoring`]: the actix-web `Transform`, its `Service` and response future.

use std::cell::OnceCell;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::HeaderName;
use actix_web::http::Method;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use pin_project_lite::pin_project;
use vitalsign_core::adapter::{self, Flight, FlightTable, RequestStart};
use vitalsign_core::endpoint::{EndpointLookup, EndpointMatch};
use vitalsign_core::{Endpoint, Monitor, PointHandle, REQUEST_ID_HEADER, TRACEPARENT_HEADER};

use crate::request_body::Counting;
use crate::routes::{PendingRoute, Routes};
use crate::{endpoints, ResponseBody};

static REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
/// The W3C Trace Context header, parsed once.
static TRACEPARENT: HeaderName = HeaderName::from_static(TRACEPARENT_HEADER);

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
    /// The monitor's endpoints, when the middleware answers them ([`Monitoring::with_endpoints`]).
    endpoints: Option<EndpointLookup>,
}

impl Monitoring {
    /// Middleware recording into `monitor`.
    pub fn new(monitor: &Monitor) -> Self {
        Monitoring {
            monitor: monitor.clone(),
            endpoints: None,
        }
    }

    /// The middleware also answers vitalsign's endpoints itself, before actix routes the
    /// request: the monitor's table
    /// ([`MonitorBuilder::endpoints`](vitalsign_core::MonitorBuilder::endpoints); by default
    /// `/metrics`, `/stats`, `/health`, `/health/live`, `/health/ready`, `/health/{component}`,
    /// `/annotations`, `/annotations/{stream}`, `/status` and `/status/data`), with the answers
    /// of [`configure`](crate::configure)'s routes: GET and HEAD, POST where the endpoint takes
    /// a body, the token and query string as there. A request with another method goes on to
    /// the application's routes (its 404), as it passes `configure`'s (actix matches a route's
    /// method as part of its path).
    ///
    /// The application's router then holds no entry of vitalsign's, so its routes cost the
    /// same wherever they are registered: actix tries every router entry a request passes (some
    /// 200 instructions each), and a request to any other path costs the middleware one bit
    /// test (its second byte against the endpoints'), a few more for paths that start like an
    /// endpoint's. Paths are compared as they arrive, without percent-decoding (as axum and
    /// the admin listener do). Other paths under an endpoint's (`/health/a/b`, `/health-check`)
    /// reach the application's routes.
    ///
    /// ```
    /// use actix_web::{web, App};
    /// use vitalsign_actix::Monitoring;
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// let app = App::new()
    ///     .wrap(Monitoring::new(&monitor).with_endpoints())
    ///     .route("/users/{id}", web::get().to(|| async { "user" }));
    /// # let _ = app;
    /// ```
    ///
    /// Requests it answers are recorded as those routed to [`configure`](crate::configure)'s
    /// routes are: not at all by default (the endpoints' paths are excluded), with the
    /// endpoint's path as route (`/health/{component}`) when
    /// [`MonitorBuilder::monitor_own_endpoints`](vitalsign_core::MonitorBuilder::monitor_own_endpoints)
    /// records them; the bytes of a POST's body it reads count as [`RequestBodySize`](crate::RequestBodySize)
    /// would count them. An application without this middleware, or a second `HttpServer`
    /// serving only the endpoints, mounts them with [`configure`](crate::configure) instead;
    /// with both, the middleware answers first.
    pub fn with_endpoints(mut self) -> Self {
        self.endpoints = Some(EndpointLookup::new(self.monitor.endpoint_routes()));
        self
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
            endpoints: self.endpoints.clone(),
            routes: OnceCell::new(),
            flights: Rc::default(),
        }))
    }
}

/// The service made by [`Monitoring`].
#[derive(Debug)]
pub struct MonitoringMiddleware<S> {
    service: S,
    monitor: Monitor,
    /// The endpoints the middleware answers itself ([`Monitoring::with_endpoints`]).
    endpoints: Option<EndpointLookup>,
    /// The application's routes, as the worker's first request shows them.
    routes: OnceCell<Rc<Routes>>,
    /// The flights of the worker's response bodies.
    flights: Rc<FlightTable>,
}

// Why the route is read from the response: before routing, `match_pattern()` matches the path
// against every resource again (regular expressions and two allocations); after routing, actix
// walks straight to the resource that matched, and [`Routes`] remembers its template. Only a
// request that ends without a response (a panic, a hang-up, an error) is matched by its path,
// against the application's resource map.
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
        if let Some(found) = self.endpoints.as_ref().and_then(|e| e.find(req.path())) {
            // Other methods go on to the application, as they pass `configure`'s routes.
            if endpoints::takes(found.endpoint, req.method()) {
                let endpoint = found.endpoint;
                let flight = self.endpoint_flight(&req, found);
                return self.answer_endpoint(endpoint, flight, req);
            }
        }
        // The route is read from the response when the path can be kept for a request that
        // ends without one; otherwise actix matches the path now (nested scopes joined). A path
        // that may lead to an excluded route template is matched now, so that an excluded
        // request is left out from its start.
        let pending = if adapter::may_route_to_excluded_template(&self.monitor, req.path()) {
            None
        } else {
            PendingRoute::new(req.path(), Routes::of(&self.routes, &req))
        };
        let route = match pending {
            Some(_) => None,
            None => req.match_pattern(),
        };
        let mut flight = self.begin(&req, route.as_deref());
        let inner = {
            let _scope = flight.enter_call();
            self.service.call(req)
        };
        ResponseFuture {
            inner: Inner::Service { future: inner },
            flight,
            pending,
            flights: Rc::clone(&self.flights),
        }
    }
}

impl<S> MonitoringMiddleware<S> {
    /// The request's flight, `route` its route if already known.
    #[inline]
    fn begin(&self, req: &ServiceRequest, route: Option<&str>) -> Flight {
        let headers = req.headers();
        let lookup = |name: &str| headers.get(name).map(|v| v.as_bytes());
        let mut flight = adapter::begin(
            &self.monitor,
            RequestStart::new(req.method().as_str().as_bytes(), req.path())
                .with_route(route)
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
        flight
    }

    /// The flight of a request to one of the endpoints ([`Monitoring::with_endpoints`]):
    /// recorded as a request routed to [`configure`](crate::configure)'s routes is, with the
    /// endpoint's path as route and its parameter as path parameter.
    #[cold]
    #[inline(never)]
    fn endpoint_flight(&self, req: &ServiceRequest, found: EndpointMatch<'_>) -> Flight {
        let mut flight = self.begin(req, Some(found.route));
        if flight.wants_path_params() {
            flight.path_params(found.param);
        }
        flight
    }

    /// Answers a request to one of the endpoints as [`configure`](crate::configure)'s routes
    /// do.
    #[cold]
    #[inline(never)]
    fn answer_endpoint<F>(
        &self,
        endpoint: Endpoint,
        flight: Flight,
        req: ServiceRequest,
    ) -> ResponseFuture<F> {
        let monitor = self.monitor.clone();
        let (request, payload) = req.into_parts();
        let answer: EndpointAnswer = if *request.method() == Method::POST {
            Box::pin(async move {
                // Polled inside the request's scope: count the body as `RequestBodySize` does.
                let response = match PointHandle::current().filter(PointHandle::is_recording) {
                    Some(point) => {
                        let counting = Counting {
                            inner: payload,
                            point,
                        };
                        endpoints::answer_post(&monitor, endpoint, &request, counting).await
                    }
                    None => endpoints::answer_post(&monitor, endpoint, &request, payload).await,
                };
                ServiceResponse::new(request, response)
            })
        } else {
            Box::pin(async move {
                let response = endpoints::answer(&monitor, endpoint, &request);
                ServiceResponse::new(request, response)
            })
        };
        ResponseFuture {
            inner: Inner::Endpoint {
                answer: Box::new(answer),
            },
            flight,
            pending: None,
            flights: Rc::clone(&self.flights),
        }
    }
}

/// An endpoint's answer on its way ([`Monitoring::with_endpoints`]).
type EndpointAnswer = Pin<Box<dyn Future<Output = ServiceResponse<Bytes>>>>;

pin_project! {
    /// What a [`ResponseFuture`] waits for.
    #[project = InnerProj]
    enum Inner<F> {
        /// The application's answer (the inner service's).
        Service { #[pin] future: F },
        /// An endpoint's, answered by the middleware; boxed twice so that the variant is one
        /// thin pointer, which fits beside the application's future: the response future is
        /// no larger than without it (224 bytes in an `App`).
        Endpoint { answer: Box<EndpointAnswer> },
    }
}

pin_project! {
    /// Response future of [`MonitoringMiddleware`]. Dropping it before it resolves records a
    /// disconnect.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Inner<F>,
        flight: Flight,
        pending: Option<PendingRoute>,
        flights: Rc<FlightTable>,
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
        let mut inner = match this.inner.project() {
            InnerProj::Service { future } => future,
            InnerProj::Endpoint { answer } => {
                let response = ready!(this.flight.in_scope(|| (**answer).as_mut().poll(cx)));
                let flight = crate::body::park(this.flight, &response, this.flights);
                return Poll::Ready(Ok(
                    response.map_body(move |_, body| ResponseBody::endpoint(body, flight))
                ));
            }
        };
        match ready!(this.flight.in_scope(|| inner.as_mut().poll(cx))) {
            // Handler errors arrive here too, inside `response().error()`: their status is the
            // response's status.
            Ok(response) => {
                if let Some(pending) = this.pending.take() {
                    // Routed: actix walks straight to the matched resource.
                    pending.routed(response.request(), |route| this.flight.set_route(route));
                }
                // Path parameters exist once actix has routed.
                if this.flight.wants_path_params() {
                    this.flight
                        .path_params(response.request().match_info().iter());
                }
                let flight = crate::body::park(this.flight, &response, this.flights);
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
