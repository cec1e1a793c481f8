//! actix-web over real HTTP on 127.0.0.1: what only actix needs checking (the shared behaviour
//! is in tests/parity.rs).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, App, FromRequest, HttpMessage, HttpRequest, HttpResponse, HttpServer};
use common::*;
use vitalsign::{MemorySink, Monitor};
use vitalsign_actix::{configure, Monitoring, Point};

fn server(monitor: &Monitor) -> Server {
    server_with(monitor, 2, Arc::default())
}

/// A value placed in a request's extensions, counting its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The test app on `workers` workers; `/tracked` puts a [`Tracked`] counting into `drops` in
/// its request's extensions.
fn server_with(monitor: &Monitor, workers: usize, drops: Arc<AtomicUsize>) -> Server {
    let monitor = monitor.clone();
    Server::start_actix(move || {
        let server = HttpServer::new(move || {
            let drops = drops.clone();
            App::new()
                .wrap(Monitoring::new(&monitor))
                .configure(configure(&monitor))
                .route(
                    "/panic",
                    web::get().to(|| async { panic!("no CatchPanic here") as HttpResponse }),
                )
                .route("/ok", web::get().to(|| async { "ok" }))
                .route(
                    "/tracked",
                    web::get().to(move |req: HttpRequest| {
                        req.extensions_mut().insert(Tracked(drops.clone()));
                        async { "tracked" }
                    }),
                )
                .service(web::scope("/api/{version}").route(
                    "/panic/{id}",
                    web::get().to(|| async { panic!("nested, no CatchPanic") as HttpResponse }),
                ))
        })
        .workers(workers)
        .disable_signals()
        .bind("127.0.0.1:0")?;
        let addrs = server.addrs();
        Ok((server.run(), addrs))
    })
}

#[tokio::test]
async fn a_panic_without_catch_panic_is_a_500_and_the_workers_keep_serving() {
    let (monitor, sink) = monitor_with_sink(|b| b);
    let server = server(&monitor);
    a_panic_without_catch_panic_is_a_500_and_the_server_keeps_serving(&server, &sink).await;
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
    tag_and_answer(&point)
}

/// A handler whose work runs in a future it spawns (another task of the worker), which
/// extracts the point from the request there.
async fn spawning_handler(request: HttpRequest) -> String {
    actix_web::rt::spawn(async move {
        let Ok(point) = Point::extract(&request).await;
        tag_and_answer(&point)
    })
    .await
    .unwrap()
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

/// `configure` mounts `/health/{component}` and `/annotations/{stream}` in scopes of their
/// static prefix (so that the application's requests skip their patterns): registered before
/// the application's routes, they still answer their own paths, and leave the application
/// every other path under those prefixes.
#[tokio::test]
async fn endpoint_scopes_take_only_their_own_paths() {
    let (monitor, _sink) = monitor_with_sink(|b| b);
    let server = wrapped(&monitor, |routes| {
        routes
            .route(
                "/health/a/b",
                web::get().to(|| async { "app: two segments" }),
            )
            .route(
                "/health-check",
                web::get().to(|| async { "app: health-check" }),
            )
            .route(
                "/annotations/x/y",
                web::get().to(|| async { "app: annotations" }),
            );
    });
    assert_eq!(
        server.get("/health/a/b").await,
        (200, "app: two segments".to_owned())
    );
    assert_eq!(
        server.get("/health-check").await,
        (200, "app: health-check".to_owned())
    );
    assert_eq!(
        server.get("/annotations/x/y").await,
        (200, "app: annotations".to_owned())
    );
    let (status, body) = server.get("/health/nope").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains(r#"no health component named \"nope\""#),
        "{body}"
    );
    assert_eq!(server.get("/health/live").await.0, 200);
    assert_eq!(server.get("/annotations/lifecycle").await.0, 200);
    assert_eq!(server.get("/health/").await.0, 404);
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
    excluded_paths_answer_and_only_kept_is_recorded(&server, &monitor, &sink).await;
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
    uncovered_route_answers_with_a_point_that_records_nothing(
        &server,
        &monitor,
        &sink,
        "/api/kept",
    )
    .await;
}

/// Regression (review item 7): a future the handler spawns runs on another task, where
/// `Point::extract(&request)` found no point (500). With `point_in_extensions` the handle is
/// in the request's extensions, and what the future adds lands on the request's point.
#[tokio::test]
async fn a_future_the_handler_spawns_finds_its_point_in_the_extensions() {
    spawned_work_finds_its_point_in_the_extensions(|monitor| async move {
        wrapped(&monitor, |routes| {
            routes.route("/spawned", web::get().to(spawning_handler));
        })
    })
    .await;
}

/// Regression (review item 1): the middleware kept a clone of the first request that got a
/// response, for the life of the worker, and with it that request's headers, extensions and
/// app data. Every request's extensions must be dropped when the request ends, on a worker
/// that served many requests; and a request that ends without a response (a panic, no
/// CatchPanic) still gets its route, nested scopes included.
#[tokio::test]
async fn no_request_outlives_its_response_and_routes_of_panics_stay_right() {
    let sink = Arc::new(MemorySink::new(1000));
    let monitor = Monitor::builder("actix")
        .sink(sink.clone())
        .build()
        .unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let server = server_with(&monitor, 1, drops.clone());
    const REQUESTS: usize = 40;
    // Keep-alive and fresh connections, one worker.
    let fresh = client_without_pool();
    for i in 0..REQUESTS {
        let client = if i % 2 == 0 { client() } else { fresh.clone() };
        let response = client
            .get(server.url("/tracked"))
            .header("authorization", "Bearer secret")
            .send()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "tracked");
        if i % 10 == 5 {
            assert!(client.get(server.url("/panic")).send().await.is_err());
            let nested = client.get(server.url("/api/v2/panic/7")).send().await;
            assert!(nested.is_err());
        }
    }
    eventually("every request's extensions are dropped", || async {
        drops.load(Ordering::SeqCst) == REQUESTS
    })
    .await;
    all_recorded(&monitor, "every request recorded").await;
    let routes = |route: &str| sink.requests_for(route).len();
    assert_eq!(routes("/tracked"), REQUESTS);
    assert_eq!(routes("/panic"), 4);
    assert_eq!(routes("/api/{version}/panic/{id}"), 4);
    assert!(sink
        .requests()
        .iter()
        .filter(|p| p.route != "/tracked")
        .all(|p| p.status_code == 500 && !p.disconnected));
    assert_eq!(drops.load(Ordering::SeqCst), REQUESTS, "and no more");
}
