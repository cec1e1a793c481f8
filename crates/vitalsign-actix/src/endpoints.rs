//! [`configure`]: vitalsign's endpoints on an actix `App` or a separate server.

use actix_web::http::{header, StatusCode};
use actix_web::{guard, web, HttpRequest, HttpResponse};
use vitalsign_core::endpoint::{Endpoint, EndpointRequest, EndpointResponse};
use vitalsign_core::Monitor;

/// Mounts vitalsign's endpoints: `/metrics` (Prometheus text format), `/health`,
/// `/health/live`, `/health/ready` and `/health/{component}`, each for GET and HEAD.
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
        // In the order of `Endpoint::ALL`: static paths first, as actix matches in order.
        for (path, endpoint) in Endpoint::ALL {
            let monitor = monitor.clone();
            config.route(
                path,
                get_or_head().to(move |req: HttpRequest| {
                    let page = monitor.serve_endpoint(endpoint, req.path(), &request(&req));
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
