//! axum integration: routes from [`MatchedPath`], the [`Point`] extractor and the
//! [`endpoints`] router.
//!
//! ```
//! use axum::{routing::get, Router};
//! use vitalsign_core::Monitor;
//! use vitalsign_tower::{axum::{endpoints, Point}, MonitorLayer};
//!
//! async fn user(point: Point) -> &'static str {
//!     point.tag("handler_id", "user");
//!     "user"
//! }
//!
//! let monitor = Monitor::builder("shop").build().unwrap();
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(user))
//!     .merge(endpoints(&monitor))
//!     .layer(MonitorLayer::new(&monitor));
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::ops::Deref;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use vitalsign_core::endpoint::{EndpointBody, EndpointRequest, EndpointResponse};
use vitalsign_core::{Monitor, PointHandle};

use crate::layer::{RequestHead, ResolveRoute};

/// Resolves the route template from axum's [`MatchedPath`] (full template, nested routers
/// included); requests served by the fallback are `unmatched`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatchedPathRoute;

impl ResolveRoute for MatchedPathRoute {
    fn resolve<'r>(&self, head: &RequestHead<'r>) -> Option<&'r str> {
        head.extensions
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
    }

    fn path_params(&self, head: &RequestHead<'_>, found: &mut dyn FnMut(&str, &str)) {
        // axum keeps the parameters in a private extension; its `RawPathParams` extractor reads
        // them from request parts, rebuilt here (only when path labels are set). The extractor
        // is ready at once.
        let mut parts = axum::http::Request::new(()).into_parts().0;
        parts.extensions = head.extensions.clone();
        let extract = axum::extract::RawPathParams::from_request_parts(&mut parts, &());
        let mut extract = std::pin::pin!(extract);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(Ok(params)) = extract.as_mut().poll(&mut cx) {
            for (name, value) in &params {
                found(name, value);
            }
        }
    }
}

/// Extractor of the current request's [`PointHandle`]: add tags and fields, attach an error
/// code, time a section. Dereferences to [`PointHandle`].
///
/// It never fails, so that a monitoring setting never breaks a route. Where nothing is recorded
/// it is a handle that records nothing ([`PointHandle::is_recording`] is `false`):
///
/// - the request's path is excluded from recording (`exclude_path`), silently;
/// - the request never passed [`MonitorLayer`](crate::MonitorLayer): the handler is not behind
///   it (a route added after `Router::layer`, a router merged after it). That is a wiring
///   mistake, logged once at `warn`.
///
/// The handle is found through a thread-local of the task that runs the layer, which costs
/// nothing. A handler that runs on another task (a middleware spawns it; tower's `Buffer`
/// calls the inner service on its worker, though axum handlers still run on the caller's task
/// there) finds its point in the request's extensions when the monitor is built with
/// [`MonitorBuilder::point_in_extensions`](vitalsign_core::MonitorBuilder::point_in_extensions);
/// otherwise it gets a handle that records nothing (and the warning). To tag from a task the
/// handler spawns, move a clone of the handle into it.
///
/// `Option<Point>` is accepted too, and is always `Some`.
#[derive(Clone, Debug)]
pub struct Point(pub PointHandle);

impl Deref for Point {
    type Target = PointHandle;

    fn deref(&self) -> &PointHandle {
        &self.0
    }
}

impl Point {
    fn of(parts: &Parts) -> Point {
        Point(PointHandle::of_request(|| {
            parts.extensions.get::<PointHandle>().cloned()
        }))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Point {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Point::of(parts))
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Point {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(Some(Point::of(parts)))
    }
}

/// A router with vitalsign's endpoints: by default `/metrics` (Prometheus text format),
/// `/stats`, `/health`, `/health/live`, `/health/ready`, `/health/{component}`,
/// `/annotations`, `/annotations/{stream}`, `/status` and `/status/data` (GET and HEAD; POST too for
/// `/annotations/{stream}`, its body read up to
/// [`MAX_BODY_BYTES`](vitalsign_core::endpoint::MAX_BODY_BYTES)); the paths and the set are the monitor's
/// ([`MonitorBuilder::endpoints`](vitalsign_core::MonitorBuilder::endpoints)). Merge it into the
/// application's router, or serve it on a separate listener.
///
/// axum panics at start-up ("Overlapping method route") when the application has a route of
/// its own on one of these paths: mount vitalsign's elsewhere or leave that one out.
///
/// ```
/// use axum::{routing::get, Router};
/// use vitalsign_core::endpoint::{Endpoint, Endpoints};
/// use vitalsign_core::Monitor;
///
/// // The application keeps its own /health; vitalsign's health goes to /healthz.
/// let monitor = Monitor::builder("shop")
///     .endpoints(Endpoints::new().path(Endpoint::Health, "/healthz"))
///     .build()
///     .unwrap();
/// let app: Router = Router::new()
///     .route("/health", get(|| async { "ok" }))
///     .merge(vitalsign_tower::axum::endpoints(&monitor));
/// # let _ = app;
/// ```
pub fn endpoints<S: Clone + Send + Sync + 'static>(monitor: &Monitor) -> Router<S> {
    monitor
        .endpoint_routes()
        .iter()
        .fold(Router::new(), |router, (path, endpoint)| {
            let endpoint = *endpoint;
            let getter = monitor.clone();
            let mut route = get(move |uri: Uri, headers: HeaderMap| {
                let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
                let page = getter.serve_endpoint(endpoint, path, &request(&headers));
                async move { into_response(page) }
            });
            if endpoint.takes_body() {
                let poster = monitor.clone();
                route = route.post(
                    move |uri: Uri, headers: HeaderMap, body: axum::body::Body| async move {
                        let body = read_body(body).await;
                        let page = poster.serve_endpoint_post(
                            endpoint,
                            uri.path(),
                            &request(&headers),
                            &body,
                        );
                        into_response(page)
                    },
                );
            }
            router.route(path, route)
        })
}

/// Reads a request body chunk by chunk into an [`EndpointBody`], which bounds what is kept
/// and says when to stop.
async fn read_body(body: axum::body::Body) -> EndpointBody {
    use http_body::Body as _;
    let mut collected = EndpointBody::new();
    let mut body = std::pin::pin!(body);
    while let Some(Ok(frame)) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        if let Some(data) = frame.data_ref() {
            if !collected.push(data) {
                break;
            }
        }
    }
    collected
}

fn request(headers: &HeaderMap) -> EndpointRequest<'_> {
    EndpointRequest {
        authorization: headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
        accept: headers.get(header::ACCEPT).map(|v| v.as_bytes()),
    }
}

fn into_response(page: EndpointResponse) -> Response {
    let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, page.content_type)],
        page.body,
    )
        .into_response();
    for (name, value) in page.headers {
        response
            .headers_mut()
            .insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// The admin listener, for any framework: [`ServeAdmin::serve_admin`] serves the monitor's
/// endpoints on a listener of their own (re-exported from
/// [`vitalsign_core::admin`]).
pub use vitalsign_core::admin::{AdminServer, ServeAdmin};
