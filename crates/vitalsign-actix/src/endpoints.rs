//! [`configure`]: vitalsign's endpoints on an actix `App` or a separate server.

use actix_web::http::StatusCode;
use actix_web::{guard, web, HttpResponse};
use vitalsign_core::endpoint::EndpointResponse;
use vitalsign_core::Monitor;

/// Mounts vitalsign's endpoints: `GET`/`HEAD /metrics` (Prometheus text format).
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
        let monitor = monitor.clone();
        config.route(
            "/metrics",
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(move || {
                    let page = monitor.metrics_endpoint();
                    async move { into_response(page) }
                }),
        );
    }
}

fn into_response(page: EndpointResponse) -> HttpResponse {
    let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type(page.content_type)
        .body(page.body)
}
