//! [`Monitoring`]: the actix-web `Transform`, its `Service` and response future.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::Error;
use pin_project_lite::pin_project;
use vitalsign_core::{Flight, Monitor, RequestStart, REQUEST_ID_HEADER};

use crate::MonitoredBody;

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
    type Response = ServiceResponse<MonitoredBody<B>>;
    type Error = Error;
    type Transform = MonitoringMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        // Runs once per worker, on the worker's runtime: probe its event-loop delay.
        self.monitor.probe_runtime();
        ready(Ok(MonitoringMiddleware {
            service,
            monitor: self.monitor.clone(),
        }))
    }
}

/// The service made by [`Monitoring`].
#[derive(Debug)]
pub struct MonitoringMiddleware<S> {
    service: S,
    monitor: Monitor,
}

impl<S, B> Service<ServiceRequest> for MonitoringMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<MonitoredBody<B>>;
    type Error = Error;
    type Future = MonitoringFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // Before routing, actix finds the pattern from the resource map (nested scopes joined).
        let route = req.match_pattern();
        let mut flight = Flight::from(self.monitor.begin(RequestStart {
            method: req.method().as_str().as_bytes(),
            path: req.path(),
            route: route.as_deref(),
            request_id: req.headers().get(REQUEST_ID_HEADER).map(|v| v.as_bytes()),
        }));
        if self.monitor.has_label_fns() {
            let headers = req.headers();
            let lookup = |name: &str| headers.get(name).map(|v| v.as_bytes());
            let info = vitalsign_core::RequestInfo::new(
                req.method().as_str().as_bytes(),
                req.path(),
                &lookup,
            );
            flight.apply_label_fns(&info);
        }
        let inner = flight.in_scope(|| self.service.call(req));
        // Path parameters exist once actix has routed: they are read from the response's request.
        let path_labels = (!self.monitor.path_labels().is_empty()).then(|| self.monitor.clone());
        MonitoringFuture {
            inner,
            flight,
            path_labels,
        }
    }
}

pin_project! {
    /// Response future of [`MonitoringMiddleware`]. Dropping it before it resolves records a
    /// disconnect.
    pub struct MonitoringFuture<F> {
        #[pin]
        inner: F,
        flight: Flight,
        path_labels: Option<Monitor>,
    }
}

impl<F> std::fmt::Debug for MonitoringFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitoringFuture")
            .field("flight", &self.flight)
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for MonitoringFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<MonitoredBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        match ready!(this.flight.in_scope(|| inner.as_mut().poll(cx))) {
            // Handler errors arrive here too, inside `response().error()`: their status is the
            // response's status.
            Ok(response) => {
                if let Some(monitor) = this.path_labels.take() {
                    for name in monitor.path_labels() {
                        if let Some(value) = response.request().match_info().get(name) {
                            this.flight.path_param(name, value);
                        }
                    }
                }
                let flight = this.flight.response(response.status().as_u16());
                Poll::Ready(Ok(
                    response.map_body(move |_, body| MonitoredBody::new(body, flight))
                ))
            }
            // An error actix turns into a response after the middleware: record its status now.
            Err(error) => {
                this.flight
                    .failed(error.as_response_error().status_code().as_u16());
                Poll::Ready(Err(error))
            }
        }
    }
}
