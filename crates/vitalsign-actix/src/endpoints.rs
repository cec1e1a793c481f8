//! [`configure`]: vitalsign's endpoints on an actix `App` or a separate server.

use actix_web::http::{header, StatusCode};
use actix_web::{guard, web, HttpRequest, HttpResponse};
use vitalsign_core::endpoint::{EndpointBody, EndpointRequest, EndpointResponse};
use vitalsign_core::Monitor;

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
pub fn configure(monitor: &Monitor) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let monitor = monitor.clone();
    move |config: &mut web::ServiceConfig| {
        // Static paths first, as actix matches in order.
        for (path, endpoint) in monitor.endpoint_routes() {
            let endpoint = *endpoint;
            let handler_monitor = monitor.clone();
            config.route(
                path,
                get_or_head().to(move |req: HttpRequest| {
                    let path = match req.query_string() {
                        "" => std::borrow::Cow::Borrowed(req.path()),
                        query => format!("{}?{query}", req.path()).into(),
                    };
                    let page = handler_monitor.serve_endpoint(endpoint, &path, &request(&req));
                    async move { into_response(page) }
                }),
            );
            if endpoint.takes_body() {
                let poster = monitor.clone();
                config.route(
                    path,
                    web::post().to(move |req: HttpRequest, payload: web::Payload| {
                        let poster = poster.clone();
                        async move {
                            let body = read_body(payload).await;
                            into_response(poster.serve_endpoint_post(
                                endpoint,
                                req.path(),
                                &request(&req),
                                &body,
                            ))
                        }
                    }),
                );
            }
        }
    }
}

/// Reads a request body chunk by chunk into an [`EndpointBody`], which bounds what is kept
/// and says when to stop.
async fn read_body(payload: web::Payload) -> EndpointBody {
    use futures_core::Stream;
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

fn into_response(page: EndpointResponse) -> HttpResponse {
    let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.content_type(page.content_type);
    for header in page.headers {
        response.insert_header(header);
    }
    response.body(page.body)
}
