//! [`configure`]: vitalsign's endpoints on an actix `App` or a separate server.

use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{guard, web, HttpRequest, HttpResponse};
use futures_core::Stream;
use vitalsign_core::endpoint::{EndpointBody, EndpointRequest, EndpointResponse};
use vitalsign_core::{Endpoint, Monitor};

/// Mounts vitalsign's endpoints: by default `/metrics` (Prometheus text format), `/stats`,
/// `/health`, `/health/live`, `/health/ready`, `/health/{component}`, `/annotations`,
/// `/annotations/{stream}`, `/status` and `/status/data`, each for GET and HEAD, and POST for `/annotations/{stream}` (its
/// body read up to [`MAX_BODY_BYTES`](vitalsign_core::endpoint::MAX_BODY_BYTES)); the paths
/// and the set are the monitor's
/// ([`MonitorBuilder::endpoints`](vitalsign_core::MonitorBuilder::endpoints)).
///
/// actix-web serves a path with the first route registered for it: when the application has a
/// route of its own on one of these paths, mount vitalsign's elsewhere or leave that one out.
///
/// ```
/// use actix_web::App;
/// use vitalsign_core::Monitor;
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// let app = App::new().configure(vitalsign_actix::configure(&monitor));
/// # let _ = app;
/// ```
///
/// For a separate admin listener, give the same function to a second `HttpServer`'s `App`.
///
/// An app wrapped in [`Monitoring`](crate::Monitoring) has the middleware answer the endpoints
/// instead ([`Monitoring::with_endpoints`](crate::Monitoring::with_endpoints)): its router then
/// holds none of these entries, each of which costs a request that passes it about 200
/// instructions. Mounted here, call this after the application's routes.
pub fn configure(monitor: &Monitor) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let monitor = monitor.clone();
    move |config: &mut web::ServiceConfig| {
        // actix tries its routes in order, each try costing an application's request about 180
        // instructions, and a pattern with a parameter (`/health/{component}`) is a regular
        // expression that allocates as it fails. So the endpoints sharing a first segment go
        // into one scope of that static prefix (`/health`: `/health`, `/live`, `/ready`,
        // `/{component}`), guarded to the endpoints' own paths: a request elsewhere costs one
        // prefix compare per group (four groups by default), never a regular expression, and
        // other paths under a prefix (`/health-check`, `/health/a/b`) still reach the
        // application's routes.
        for group in groups(monitor.endpoint_routes()) {
            let monitor = monitor.clone();
            match group.prefix {
                None => {
                    for (path, endpoint) in &group.routes {
                        mount(config, &monitor, path, *endpoint);
                    }
                }
                Some(prefix) => {
                    let paths = EndpointPaths::new(&group.routes);
                    config.service(
                        web::scope(&prefix)
                            .guard(guard::fn_guard(move |ctx| {
                                paths.matches(ctx.head().uri.path())
                            }))
                            .configure(|inner| {
                                // Static paths first, as actix matches in order.
                                for (path, endpoint) in &group.routes {
                                    mount(inner, &monitor, &path[prefix.len()..], *endpoint);
                                }
                            }),
                    );
                }
            }
        }
    }
}

/// Endpoints sharing a first path segment, in the order of the monitor's table.
struct Group {
    /// The scope's prefix; `None` for a route mounted alone.
    prefix: Option<String>,
    routes: Vec<(Box<str>, Endpoint)>,
}

/// The endpoints grouped by first segment: a scope for a group of several or one with a
/// parameter (`/annotations/{stream}`), a plain route for a static path alone (`/metrics`) or
/// a parameter in the first segment itself (no static prefix to scope by).
fn groups(routes: &[(Box<str>, Endpoint)]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (path, endpoint) in routes {
        let end = path[1..].find('/').map_or(path.len(), |i| i + 1);
        let prefix = &path[..end];
        match groups
            .iter_mut()
            .find(|g| g.prefix.as_deref() == Some(prefix))
        {
            Some(group) => group.routes.push((path.clone(), *endpoint)),
            None => groups.push(Group {
                prefix: Some(prefix.to_owned()),
                routes: vec![(path.clone(), *endpoint)],
            }),
        }
    }
    for group in &mut groups {
        let alone = group.routes.len() == 1 && !group.routes[0].0.contains('{');
        if alone || group.prefix.as_deref().is_some_and(|p| p.contains('{')) {
            group.prefix = None;
        }
    }
    groups
}

/// The paths of a group of endpoints, for its scope's guard.
struct EndpointPaths {
    /// Paths without a parameter (`/health/live`).
    exact: Vec<Box<str>>,
    /// Prefixes of the paths with one (`/health` of `/health/{component}`).
    parents: Vec<Box<str>>,
}

impl EndpointPaths {
    fn new(routes: &[(Box<str>, Endpoint)]) -> Self {
        let mut paths = EndpointPaths {
            exact: Vec::new(),
            parents: Vec::new(),
        };
        for (path, _) in routes {
            match path.split_once("/{") {
                Some((parent, _)) => paths.parents.push(parent.into()),
                None => paths.exact.push(path.clone()),
            }
        }
        paths
    }

    /// Whether `path` is an endpoint's: one of the exact paths, or a parent and one more
    /// non-empty segment.
    fn matches(&self, path: &str) -> bool {
        self.exact.iter().any(|p| **p == *path)
            || self.parents.iter().any(|parent| {
                path.strip_prefix(&**parent)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|segment| !segment.is_empty() && !segment.contains('/'))
            })
    }
}

/// Routes `endpoint` at `path` of `config`: GET and HEAD, and POST where it takes a body.
fn mount(config: &mut web::ServiceConfig, monitor: &Monitor, path: &str, endpoint: Endpoint) {
    let handler_monitor = monitor.clone();
    config.route(
        path,
        get_or_head().to(move |req: HttpRequest| {
            let response = answer(&handler_monitor, endpoint, &req);
            async move { response }
        }),
    );
    if endpoint.takes_body() {
        let poster = monitor.clone();
        config.route(
            path,
            web::post().to(move |req: HttpRequest, payload: web::Payload| {
                let poster = poster.clone();
                async move { answer_post(&poster, endpoint, &req, payload).await }
            }),
        );
    }
}

/// The answer to a GET or HEAD of `endpoint` (actix leaves out the body of a HEAD's answer):
/// the same for [`configure`]'s routes and for [`Monitoring::with_endpoints`](crate::Monitoring::with_endpoints).
/// The query string goes with the path.
pub(crate) fn answer(
    monitor: &Monitor,
    endpoint: Endpoint,
    req: &HttpRequest,
) -> HttpResponse<Bytes> {
    let path = match req.query_string() {
        "" => std::borrow::Cow::Borrowed(req.path()),
        query => format!("{}?{query}", req.path()).into(),
    };
    into_response(monitor.serve_endpoint(endpoint, &path, &request(req)))
}

/// The answer to a POST to `endpoint` (one that [takes a body](Endpoint::takes_body)),
/// its body read from `payload`.
pub(crate) async fn answer_post<P>(
    monitor: &Monitor,
    endpoint: Endpoint,
    req: &HttpRequest,
    payload: P,
) -> HttpResponse<Bytes>
where
    P: Stream<Item = Result<Bytes, PayloadError>>,
{
    let body = read_body(payload).await;
    into_response(monitor.serve_endpoint_post(endpoint, req.path(), &request(req), &body))
}

/// Whether [`configure`]'s routes take a request with `method` to `endpoint`: GET and HEAD,
/// and POST where the endpoint [takes a body](Endpoint::takes_body). actix moves a route's
/// method guard to its resource: a request with another method passes the endpoint's entries
/// and goes on to the application's routes (or its 404).
pub(crate) fn takes(endpoint: Endpoint, method: &Method) -> bool {
    *method == Method::GET
        || *method == Method::HEAD
        || (*method == Method::POST && endpoint.takes_body())
}

/// Reads a request body chunk by chunk into an [`EndpointBody`], which bounds what is kept
/// and says when to stop.
async fn read_body<P>(payload: P) -> EndpointBody
where
    P: Stream<Item = Result<Bytes, PayloadError>>,
{
    let mut collected = EndpointBody::new();
    let mut payload = std::pin::pin!(payload);
    while let Some(Ok(chunk)) = std::future::poll_fn(|cx| payload.as_mut().poll_next(cx)).await {
        if !collected.push(&chunk) {
            break;
        }
    }
    collected
}

fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

fn request(req: &HttpRequest) -> EndpointRequest<'_> {
    EndpointRequest {
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        accept: req.headers().get(header::ACCEPT).map(|v| v.as_bytes()),
    }
}

/// The page as actix's response builder makes it (`content_type`, `insert_header`, `body`),
/// its body kept as [`Bytes`].
fn into_response(page: EndpointResponse) -> HttpResponse<Bytes> {
    let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::with_body(status, Bytes::from(page.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(page.content_type),
    );
    for (name, value) in page.headers {
        headers.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}
