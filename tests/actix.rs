//! actix-web over real HTTP on 127.0.0.1: what only actix needs checking (the shared behaviour
//! is in tests/parity.rs).

mod common;

use std::sync::Arc;

use actix_web::{web, App, FromRequest, HttpRequest, HttpResponse, HttpServer};
use common::*;
use vitalsign::{FieldValue, MemorySink, Monitor};
use vitalsign_actix::{configure, Monitoring, Point};

fn server(monitor: &Monitor) -> Server {
    let monitor = monitor.clone();
    Server::start_actix(move || {
        let server = HttpServer::new(move || {
            App::new()
                .wrap(Monitoring::new(&monitor))
                .configure(configure(&monitor))
                .route(
                    "/panic",
                    web::get().to(|| async { panic!("no CatchPanic here") as HttpResponse }),
                )
                .route("/ok", web::get().to(|| async { "ok" }))
        })
        .workers(2)
        .disable_signals()
        .bind("127.0.0.1:0")?;
        let addrs = server.addrs();
        Ok((server.run(), addrs))
    })
}

#[tokio::test]
async fn a_panic_without_catch_panic_is_a_500_and_the_workers_keep_serving() {
    let sink = Arc::new(MemorySink::new(1000));
    let monitor = Monitor::builder("actix")
        .sink(sink.clone())
        .build()
        .unwrap();
    let server = server(&monitor);
    // actix drops the connection of a panicked handler: the client sees no response.
    for _ in 0..3 {
        assert!(client().get(server.url("/panic")).send().await.is_err());
    }
    for _ in 0..10 {
        assert_eq!(server.get("/ok").await.0, 200);
    }
    let m = server.metrics().await;
    let labels = [
        ("http_request_method", "GET"),
        ("http_route", "/panic"),
        ("http_response_status_code", "500"),
    ];
    assert_eq!(m.get(COUNT, &labels), Some(3.0));
    assert_eq!(m.sum(DISCONNECTS, &[]), 0.0, "a panic is not a disconnect");
    assert_eq!(active(&m), 0.0);
    assert_eq!(
        sink.errors()
            .iter()
            .filter(|e| e.error_code == "panic")
            .count(),
        3
    );
}

#[tokio::test]
async fn two_workers_share_one_set_of_series() {
    let monitor = Monitor::builder("actix").build().unwrap();
    let server = server(&monitor);
    // A new connection per request, so that both workers take some.
    for _ in 0..40 {
        let response = client_without_pool()
            .get(server.url("/ok"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let m = server.metrics().await;
    let counts = m.matching(COUNT, &[("http_route", "/ok")]);
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].value, 40.0);
}

fn client_without_pool() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// A handler that tags its point and answers whether the point records.
async fn tagging_handler(point: Point) -> String {
    point.tag("handler", "ran").field("answered", true);
    if point.is_recording() {
        "recording".to_owned()
    } else {
        "not recording".to_owned()
    }
}

/// A handler whose work runs in a future it spawns (another task of the worker), which
/// extracts the point from the request there.
async fn spawning_handler(request: HttpRequest) -> String {
    let recording = actix_web::rt::spawn(async move {
        let Ok(point) = Point::extract(&request).await;
        point.tag("work", "spawned");
        point.is_recording()
    })
    .await
    .unwrap();
    if recording {
        "recording".to_owned()
    } else {
        "not recording".to_owned()
    }
}

/// The app wrapped in `Monitoring`, with `routes` and the endpoints.
fn wrapped(monitor: &Monitor, routes: fn(&mut web::ServiceConfig)) -> Server {
    let monitor = monitor.clone();
    Server::start_actix(move || {
        let server = HttpServer::new(move || {
            App::new()
                .wrap(Monitoring::new(&monitor))
                .configure(configure(&monitor))
                .configure(routes)
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")?;
        let addrs = server.addrs();
        Ok((server.run(), addrs))
    })
}

/// Regression (review item 15): a handler taking `Point` on an excluded path answered 500.
#[tokio::test]
async fn a_point_handler_on_an_excluded_path_answers_and_records_nothing() {
    let (monitor, sink) =
        monitor_with_sink(|b| b.exclude_path("/ping").exclude_path("/internal/*"));
    let server = wrapped(&monitor, |routes| {
        routes
            .route("/ping", web::get().to(tagging_handler))
            .route("/internal/{name}", web::get().to(tagging_handler))
            .route("/kept", web::get().to(tagging_handler));
    });
    assert_eq!(server.get("/ping").await, (200, "not recording".to_owned()));
    assert_eq!(
        server.get("/internal/x").await,
        (200, "not recording".to_owned())
    );
    assert_eq!(server.get("/kept").await, (200, "recording".to_owned()));
    all_recorded(&monitor, "/kept recorded").await;
    let points = sink.requests();
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0].route, "/kept");
    assert_eq!(points[0].tag("handler"), Some("ran"));
    assert_eq!(
        sink.started(),
        1,
        "the excluded requests never started a point"
    );
    let m = server.metrics().await;
    assert_eq!(m.sum(COUNT, &[]), 1.0, "{}", m.text);
}

/// Regression (review item 15): a resource that `Monitoring` does not wrap (outside the wrapped
/// scope) never passes the middleware; its `Point` handler answered 500. It now answers, with
/// a point that records nothing.
#[tokio::test]
async fn a_resource_outside_the_wrapped_scope_answers_with_a_point_that_records_nothing() {
    let (monitor, sink) = monitor_with_sink(|b| b);
    let server = {
        let monitor = monitor.clone();
        Server::start_actix(move || {
            let server = HttpServer::new(move || {
                App::new()
                    .service(
                        web::scope("/api")
                            .wrap(Monitoring::new(&monitor))
                            .route("/kept", web::get().to(tagging_handler)),
                    )
                    .route("/late", web::get().to(tagging_handler))
            })
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")?;
            let addrs = server.addrs();
            Ok((server.run(), addrs))
        })
    };
    assert_eq!(server.get("/late").await, (200, "not recording".to_owned()));
    assert_eq!(server.get("/api/kept").await, (200, "recording".to_owned()));
    all_recorded(&monitor, "/api/kept recorded").await;
    let points = sink.requests();
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0].route, "/api/kept");
    assert_eq!(points[0].field("answered"), Some(&FieldValue::Bool(true)));
    assert_eq!(sink.started(), 1, "/late never reached the monitor");
}

/// Regression (review item 7): a future the handler spawns runs on another task, where
/// `Point::extract(&request)` found no point (500). With `point_in_extensions` the handle is
/// in the request's extensions, and what the future adds lands on the request's point.
#[tokio::test]
async fn a_future_the_handler_spawns_finds_its_point_in_the_extensions() {
    let (monitor, sink) = monitor_with_sink(|b| b.point_in_extensions(true));
    let server = wrapped(&monitor, |routes| {
        routes.route("/spawned", web::get().to(spawning_handler));
    });
    for _ in 0..3 {
        assert_eq!(server.get("/spawned").await, (200, "recording".to_owned()));
    }
    all_recorded(&monitor, "/spawned recorded").await;
    let points = sink.requests_for("/spawned");
    assert_eq!(points.len(), 3);
    assert!(points.iter().all(|p| p.tag("work") == Some("spawned")));

    // Without it the handler still answers; the spawned future's point records nothing.
    let (monitor, sink) = monitor_with_sink(|b| b);
    let server = wrapped(&monitor, |routes| {
        routes.route("/spawned", web::get().to(spawning_handler));
    });
    assert_eq!(
        server.get("/spawned").await,
        (200, "not recording".to_owned())
    );
    all_recorded(&monitor, "/spawned recorded").await;
    let points = sink.requests_for("/spawned");
    assert_eq!((points.len(), points[0].tag("work")), (1, None));
}
