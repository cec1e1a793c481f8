//! [`configure`]: vitalsign's endpoints on an actix `App` or a separate server.

use actix_web::http::{header, StatusCode};
use actix_web::{guard, web, HttpRequest, HttpResponse};
use vitalsign_core::endpoint::{EndpointRequest, EndpointResponse};
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
        let m = monitor.clone();
        let metrics = move |req: HttpRequest| {
            let page = m.metrics_endpoint(&request(&req));
            async move { into_response(page) }
        };
        let m = monitor.clone();
        let health = move |req: HttpRequest| {
            let page = m.health_endpoint(&request(&req), None);
            async move { into_response(page) }
        };
        let m = monitor.clone();
        let live = move || {
            let page = m.live_endpoint();
            async move { into_response(page) }
        };
        let m = monitor.clone();
        let ready = move || {
            let page = m.ready_endpoint();
            async move { into_response(page) }
        };
        let m = monitor.clone();
        let component = move |req: HttpRequest, name: web::Path<String>| {
            let page = m.health_endpoint(&request(&req), Some(&name));
            async move { into_response(page) }
        };
        // Static paths first: actix matches in registration order.
        config
            .route("/metrics", get_or_head().to(metrics))
            .route("/health", get_or_head().to(health))
            .route("/health/live", get_or_head().to(live))
            .route("/health/ready", get_or_head().to(ready))
            .route("/health/{component}", get_or_head().to(component));
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
