//! [`configure`]: vitalsign's endpoints on an actix `App` or a separate server.

use actix_web::http::{header, StatusCode};
use actix_web::{guard, web, HttpRequest, HttpResponse};
use vitalsign_core::endpoint::{EndpointRequest, EndpointResponse};
use vitalsign_core::Monitor;

/// Mounts vitalsign's endpoints: by default `/metrics` (Prometheus text format), `/stats`,
/// `/health`, `/health/live`, `/health/ready` and `/health/{component}`, each for GET and
/// HEAD; the paths and the set are the monitor's
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
                    let page = handler_monitor.serve_endpoint(endpoint, req.path(), &request(&req));
                    async move { into_response(page) }
                }),
            );
        }
    }
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
