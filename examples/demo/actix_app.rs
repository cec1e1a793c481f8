//! The demo application on actix-web: the same routes and behaviours as the axum one.

use std::panic::AssertUnwindSafe;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{guard, web, App, HttpResponse};
use futures_util::FutureExt as _;
use vitalsign::Monitor;
use vitalsign_actix::{Monitoring, Point};

use crate::app;

/// Registers the demo on an actix `App`: routes, `/metrics` and `/health*`, monitoring, and
/// panic-to-500 ([`catch_panic`], the counterpart of tower-http's `CatchPanicLayer`).
pub(crate) fn actix_app(
    monitor: &Monitor,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(vitalsign_actix::RequestBodySize)
        // The middleware answers `/metrics`, `/health*`, `/stats`, ... itself, before actix
        // routes: the router holds the application's routes only.
        .wrap(Monitoring::new(monitor).with_endpoints())
        .wrap(from_fn(catch_panic))
        .service(get("/users/{id}", user))
        .service(get("/error", error))
        .service(get("/slow", slow))
        .service(get("/block", block))
        .service(get("/stream", stream))
        .service(get("/panic", panic))
        .service(get("/ws", ws))
        .route(
            "/echo",
            web::post().to(|body: web::Bytes| async move { app::echo(&body) }),
        )
        .service(web::scope("/api/v1").service(get("/orders/{order}/items/{item}", item)))
}

/// A panic in the handlers or the middleware inside (vitalsign's, which records the request
/// as a 500 with error code `panic`) becomes an empty 500, as actix-web-lab's `CatchPanic`
/// does; wrapped last, outside `Monitoring`. Written out here so that the demo's build needs no
/// crate for it.
async fn catch_panic(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    AssertUnwindSafe(next.call(req))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(actix_web::error::ErrorInternalServerError("")))
}

/// A resource answering GET and HEAD (as axum's `get` does) and 405 to other methods.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path).route(
        web::route()
            .guard(guard::Any(guard::Get()).or(guard::Head()))
            .to(handler),
    )
}

async fn user(point: Point, id: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().json(app::user(&point, id.into_inner()).await)
}

async fn error(point: Point) -> HttpResponse {
    HttpResponse::InternalServerError().json(app::error(&point))
}

async fn slow(query: web::Query<app::SlowQuery>) -> HttpResponse {
    text(app::slow(query.ms).await)
}

/// 200 with the text, or 400 with the reason.
fn text(result: Result<String, String>) -> HttpResponse {
    let mut response = match result {
        Ok(_) => HttpResponse::Ok(),
        Err(_) => HttpResponse::BadRequest(),
    };
    response
        .content_type("text/plain; charset=utf-8")
        .body(result.unwrap_or_else(|e| e))
}

async fn block(query: web::Query<app::SlowQuery>) -> HttpResponse {
    text(app::block(query.ms))
}

async fn stream(query: web::Query<app::StreamQuery>) -> HttpResponse {
    match app::chunks(&query) {
        Ok(stream) => HttpResponse::Ok().streaming(stream),
        Err(reason) => text(Err(reason)),
    }
}

async fn panic() -> HttpResponse {
    app::panic_now()
}

/// `/ws`: a WebSocket that echoes each text message, its session counted by the guard it
/// holds (actix-ws).
async fn ws(
    point: Point,
    req: actix_web::HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let (response, mut session, mut messages) = actix_ws::handle(&req, body)?;
    let guard = point.upgraded_session();
    actix_web::rt::spawn(async move {
        let _session = guard;
        while let Some(Ok(message)) = messages.recv().await {
            let sent = match message {
                actix_ws::Message::Text(text) => session.text(text).await,
                actix_ws::Message::Ping(bytes) => session.pong(&bytes).await,
                actix_ws::Message::Close(_) => break,
                _ => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}

async fn item(path: web::Path<(String, String)>) -> HttpResponse {
    let (order, item) = path.into_inner();
    HttpResponse::Ok().json(app::item(&order, &item))
}

/// The demo's actix server on `addr` (two workers sharing one monitor).
pub(crate) fn actix_server(
    monitor: &Monitor,
    addr: std::net::SocketAddr,
) -> std::io::Result<(actix_web::dev::Server, Vec<std::net::SocketAddr>)> {
    let monitor = monitor.clone();
    let server = actix_web::HttpServer::new(move || actix_app(&monitor))
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(addr)?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}
