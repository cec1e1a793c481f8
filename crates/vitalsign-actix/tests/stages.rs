//! When the actix middleware records, stage by stage, with `actix_web::test` services; and the
//! two ways errors reach it (`Err(Error)` and `response().error()`).

use std::sync::Arc;
use std::task::Poll;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::web::Bytes;
use actix_web::{error, test, web, App, HttpResponse};
use vitalsign_actix::{configure, Monitoring, Point, ResponseBody};
use vitalsign_core::{MemorySink, Monitor, CLIENT_CLOSED_REQUEST};

fn monitor() -> (Monitor, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new(100));
    let monitor = Monitor::builder("stages")
        .sink(sink.clone())
        .build()
        .unwrap();
    (monitor, sink)
}

fn chunks(n: usize) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    futures_util::stream::iter((0..n).map(|i| Ok(Bytes::from(format!("chunk {i}")))))
}

#[actix_web::test]
async fn recorded_at_the_end_of_a_streamed_body_not_before() {
    let (monitor, sink) = monitor();
    let app = test::init_service(App::new().wrap(Monitoring::new(&monitor)).route(
        "/s",
        web::get().to(|| async { HttpResponse::Ok().streaming(chunks(3)) }),
    ))
    .await;
    let response = app
        .call(test::TestRequest::get().uri("/s").to_request())
        .await
        .unwrap();
    assert_eq!(
        (sink.started(), sink.requests().len()),
        (1, 0),
        "after the future"
    );
    let mut body = std::pin::pin!(response.into_body());
    for _ in 0..3 {
        futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .unwrap()
            .unwrap();
        assert!(sink.requests().is_empty(), "after a chunk");
    }
    assert!(
        futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .is_none()
    );
    let points = sink.requests();
    assert_eq!(points.len(), 1);
    assert_eq!(
        (
            points[0].route.as_str(),
            points[0].status_code,
            points[0].disconnected
        ),
        ("/s", 200, false)
    );
}

/// Regression (review item 9): a body that yielded `Err` was recorded as if it ended well.
#[actix_web::test]
async fn a_body_error_is_an_error_point_with_the_status_sent_not_a_disconnect() {
    let (monitor, sink) = monitor();
    let app = test::init_service(App::new().wrap(Monitoring::new(&monitor)).route(
        "/s",
        web::get().to(|| async {
            HttpResponse::Ok().streaming(futures_util::stream::iter([
                Ok(Bytes::from_static(b"chunk 0\n")),
                Err(std::io::Error::other("upstream cut")),
                Ok(Bytes::from_static(b"never sent")),
            ]))
        }),
    ))
    .await;
    let response = app
        .call(test::TestRequest::get().uri("/s").to_request())
        .await
        .unwrap();
    let mut body = Box::pin(response.into_body());
    futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
        .await
        .unwrap()
        .unwrap();
    assert!(sink.requests().is_empty(), "after a chunk");
    assert!(
        futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .unwrap()
            .is_err()
    );
    let points = sink.requests();
    assert_eq!(points.len(), 1, "recorded at the error");
    let p = &points[0];
    assert_eq!(
        (
            p.route.as_str(),
            p.status_code,
            p.disconnected,
            p.response_body_bytes
        ),
        ("/s", 200, false, 8)
    );
    let errors = sink.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error_code, "body_error");
    drop(body);
    assert_eq!(sink.requests().len(), 1, "exactly once");
    assert_eq!(monitor.in_flight(), 0);
}

#[actix_web::test]
async fn dropping_the_body_early_is_a_disconnect_recorded_once() {
    let (monitor, sink) = monitor();
    let app = test::init_service(App::new().wrap(Monitoring::new(&monitor)).route(
        "/s",
        web::get().to(|| async { HttpResponse::Ok().streaming(chunks(3)) }),
    ))
    .await;
    let response = app
        .call(test::TestRequest::get().uri("/s").to_request())
        .await
        .unwrap();
    drop(response);
    let points = sink.requests();
    assert_eq!(points.len(), 1);
    assert_eq!((points[0].status_code, points[0].disconnected), (200, true));
    assert_eq!(monitor.in_flight(), 0);
}

#[actix_web::test]
async fn dropping_the_future_is_a_499_disconnect() {
    let (monitor, sink) = monitor();
    let app = test::init_service(App::new().wrap(Monitoring::new(&monitor)).route(
        "/hang",
        web::get().to(|| async {
            std::future::pending::<()>().await;
            HttpResponse::Ok().finish()
        }),
    ))
    .await;
    let mut future = Box::pin(app.call(test::TestRequest::get().uri("/hang").to_request()));
    assert!(matches!(
        futures_util::poll!(future.as_mut()),
        Poll::Pending
    ));
    assert_eq!(monitor.in_flight(), 1);
    drop(future);
    let p = &sink.requests()[0];
    assert_eq!(
        (p.status_code, p.disconnected),
        (CLIENT_CLOSED_REQUEST, true)
    );
}

/// The response of an application with [`Monitoring`] whose handler answers `"in memory"`.
async fn in_memory_response(monitor: &Monitor) -> ServiceResponse<ResponseBody<BoxBody>> {
    let app = test::init_service(
        App::new()
            .wrap(Monitoring::new(monitor))
            .route("/b", web::get().to(|| async { "in memory" })),
    )
    .await;
    app.call(test::TestRequest::get().uri("/b").to_request())
        .await
        .unwrap()
}

/// As on the Tower layer: a sized body with nothing left after a chunk has ended, so the
/// request is recorded with that chunk (bytes counted, no disconnect), and the poll for its
/// end records nothing more.
#[actix_web::test]
async fn a_sized_body_is_recorded_with_its_last_chunk() {
    let (monitor, sink) = monitor();
    let response = in_memory_response(&monitor).await;
    let mut body = std::pin::pin!(response.into_body());
    assert!(sink.requests().is_empty(), "before the body");
    let chunk = futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&chunk[..], b"in memory");
    let points = sink.requests();
    assert_eq!(points.len(), 1, "recorded with the last chunk");
    assert_eq!(
        (
            points[0].status_code,
            points[0].response_body_bytes,
            points[0].disconnected
        ),
        (200, 9, false)
    );
    assert_eq!(monitor.in_flight(), 0);
    assert!(
        futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .is_none()
    );
    assert_eq!(sink.requests().len(), 1, "exactly once");
}

#[actix_web::test]
async fn in_memory_bodies_complete_when_handed_over() {
    let (monitor, sink) = monitor();
    let response = in_memory_response(&monitor).await;
    let Ok(bytes) = response.into_body().try_into_bytes() else {
        panic!("an in-memory body converts into bytes");
    };
    assert_eq!(&bytes[..], b"in memory");
    let p = &sink.requests()[0];
    assert_eq!((p.status_code, p.disconnected), (200, false));
}

#[actix_web::test]
async fn handler_errors_are_classified_by_their_status() {
    let (monitor, sink) = monitor();
    let app = test::init_service(
        App::new()
            .wrap(Monitoring::new(&monitor))
            .route(
                "/bad-gateway",
                web::get().to(|| async {
                    Err::<HttpResponse, _>(error::ErrorBadGateway("upstream down"))
                }),
            )
            .route(
                "/not-found",
                web::get()
                    .to(|| async { Err::<HttpResponse, _>(error::ErrorNotFound("no such thing")) }),
            ),
    )
    .await;
    for uri in ["/bad-gateway", "/not-found"] {
        let response =
            test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert!(response.response().error().is_some());
        test::read_body(response).await;
    }
    let statuses: Vec<u16> = sink.requests().iter().map(|p| p.status_code).collect();
    assert_eq!(statuses, [502, 404]);
    let errors: Vec<String> = sink.errors().into_iter().map(|e| e.error_code).collect();
    assert_eq!(errors, ["502"]);
}

#[actix_web::test]
async fn errors_returned_by_inner_middleware_are_recorded() {
    let (monitor, sink) = monitor();
    let app = test::init_service(
        App::new()
            .wrap(actix_web::middleware::from_fn(
                |_req: actix_web::dev::ServiceRequest,
                 _next: actix_web::middleware::Next<actix_web::body::BoxBody>| async {
                    Err::<actix_web::dev::ServiceResponse, _>(error::ErrorServiceUnavailable(
                        "maintenance",
                    ))
                },
            ))
            .wrap(Monitoring::new(&monitor))
            .route("/x", web::get().to(|| async { "x" })),
    )
    .await;
    let result = app
        .call(test::TestRequest::get().uri("/x").to_request())
        .await;
    assert!(result.is_err());
    let p = &sink.requests()[0];
    assert_eq!(
        (p.route.as_str(), p.status_code, p.disconnected),
        ("/x", 503, false)
    );
    assert_eq!(sink.errors()[0].error_code, "503");
}

/// Review item 15: without the middleware `Point` no longer fails (it answered 500): it is a
/// point that records nothing, and the wiring mistake is logged once.
#[actix_web::test]
async fn without_the_middleware_point_records_nothing() {
    let app = test::init_service(App::new().route(
        "/p",
        web::get().to(|point: Point| async move { point.is_recording().to_string() }),
    ))
    .await;
    let response = test::call_service(&app, test::TestRequest::get().uri("/p").to_request()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(&test::read_body(response).await[..], b"false");
}

#[actix_web::test]
async fn metrics_endpoint_is_mounted_and_excluded() {
    let (monitor, sink) = monitor();
    let app = test::init_service(
        App::new()
            .wrap(Monitoring::new(&monitor))
            .configure(configure(&monitor))
            .route("/x", web::get().to(|| async { "x" })),
    )
    .await;
    test::call_and_read_body(&app, test::TestRequest::get().uri("/x").to_request()).await;
    let response =
        test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        vitalsign_core::endpoint::PROMETHEUS_CONTENT_TYPE
    );
    let text = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
    assert!(text.contains(
        r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/x",http_response_status_code="200"} 1"#
    ));
    assert_eq!(sink.requests().len(), 1, "/metrics itself is not recorded");
}
