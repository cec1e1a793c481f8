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

/// The app of the endpoint scenarios: routes of its own under the endpoints' prefixes and
/// beside them, and vitalsign's endpoints answered by the middleware
/// (`Monitoring::with_endpoints`, no `configure`) or mounted by `configure` after the routes
/// (the README's wiring before the middleware answered them); request bodies counted.
fn endpoints_app(monitor: &Monitor, by_middleware: bool) -> Server {
    let monitor = monitor.clone();
    Server::start_actix(move || {
        let server = HttpServer::new(move || {
            let routes = |config: &mut web::ServiceConfig| {
                config
                    .route("/ok", web::get().to(|| async { "ok" }))
                    .route("/health/live", web::put().to(|| async { "app: put" }))
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
            };
            let app = App::new().wrap(vitalsign_actix::RequestBodySize);
            if by_middleware {
                app.wrap(Monitoring::new(&monitor).with_endpoints())
                    .configure(routes)
            } else {
                app.wrap(Monitoring::new(&monitor))
                    .configure(routes)
                    .configure(configure(&monitor))
            }
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")?;
        let addrs = server.addrs();
        Ok((server.run(), addrs))
    })
}

/// A request of the endpoint scenarios.
struct Ask {
    method: &'static str,
    path: &'static str,
    token: Option<&'static str>,
    body: Option<&'static str>,
    /// Whether the answer's body is the same from one request to the next (not `/metrics`,
    /// `/stats`, `/status/data`, the id of a new annotation).
    deterministic: bool,
}

const fn ask(method: &'static str, path: &'static str, deterministic: bool) -> Ask {
    Ask {
        method,
        path,
        token: Some("s3cret"),
        body: None,
        deterministic,
    }
}

/// What the endpoint scenarios compare: status, the headers but `date`, and the body.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn answer(server: &Server, ask: &Ask) -> Answer {
    let method = reqwest::Method::from_bytes(ask.method.as_bytes()).unwrap();
    let mut request = client().request(method, server.url(ask.path));
    if let Some(token) = ask.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = ask.body {
        request = request.body(body);
    }
    let response = request.send().await.unwrap();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    Answer {
        status: response.status().as_u16(),
        headers,
        body: response.bytes().await.unwrap().to_vec(),
    }
}

/// `Monitoring::with_endpoints` answers every endpoint itself, with no `configure`: the same
/// answers as `configure`'s routes, byte for byte where they are deterministic (status and
/// headers but the length elsewhere): GET and HEAD, POST of an annotation, 401 without the
/// token, 404 for an unknown component; other methods (PUT) and other paths under the
/// endpoints' prefixes (`/health/a/b`, `/health-check`) reach the application's routes, as they
/// pass `configure`'s (actix puts a route's method guard on its resource: no 405).
#[tokio::test]
async fn with_endpoints_answers_as_configure_does() {
    let (monitor, sink) = monitor_with_sink(|b| b.token("s3cret"));
    let middleware = endpoints_app(&monitor, true);
    let configured = endpoints_app(&monitor, false);
    let asks = [
        ask("GET", "/health", true),
        Ask {
            token: None,
            ..ask("GET", "/health", true)
        },
        ask("GET", "/health/live", true),
        ask("HEAD", "/health/live", true),
        ask("GET", "/health/ready", true),
        ask("GET", "/health/nope", true),
        ask("HEAD", "/health/nope", true),
        Ask {
            token: None,
            ..ask("GET", "/health/nope", true)
        },
        ask("PUT", "/health/nope", true),
        ask("GET", "/metrics", false),
        ask("HEAD", "/metrics", false),
        Ask {
            token: None,
            ..ask("GET", "/metrics", true)
        },
        Ask {
            token: Some("wrong"),
            ..ask("GET", "/metrics", true)
        },
        ask("PUT", "/metrics", true),
        ask("POST", "/metrics", true),
        ask("DELETE", "/health", true),
        ask("GET", "/stats", false),
        ask("GET", "/status", true),
        ask("GET", "/status/data", false),
        Ask {
            body: Some(r#"{"title": "v1.4.2 rolled out"}"#),
            ..ask("POST", "/annotations/deploys", false)
        },
        Ask {
            body: Some("not json"),
            ..ask("POST", "/annotations/deploys", true)
        },
        ask("PUT", "/annotations/deploys", true),
        ask("PUT", "/health/live", true),
        ask("GET", "/annotations", true),
        ask("GET", "/annotations/deploys?since=0", true),
        ask("GET", "/annotations/nope", true),
        ask("GET", "/ok", true),
        ask("GET", "/health/a/b", true),
        ask("GET", "/health-check", true),
        ask("GET", "/annotations/x/y", true),
        ask("GET", "/health/", true),
        ask("GET", "/metrics/", true),
    ];
    for ask in &asks {
        let (from_middleware, from_configure) = if ask.method == "POST" {
            // Each POST adds an event: the same one to each app, in turn, so that the streams
            // both read stay the same.
            let from_middleware = answer(&middleware, ask).await;
            (from_middleware, answer(&configured, ask).await)
        } else {
            (
                answer(&middleware, ask).await,
                answer(&configured, ask).await,
            )
        };
        let what = format!("{} {}", ask.method, ask.path);
        if ask.deterministic {
            assert_eq!(from_middleware, from_configure, "{what}");
        } else {
            assert_eq!(from_middleware.status, from_configure.status, "{what}");
            let other_headers = |a: &Answer| -> Vec<(String, String)> {
                a.headers
                    .iter()
                    .filter(|(name, _)| name != "content-length")
                    .cloned()
                    .collect()
            };
            assert_eq!(
                other_headers(&from_middleware),
                other_headers(&from_configure),
                "{what}"
            );
        }
        let ok = [200, 201].contains(&from_middleware.status);
        assert!(
            ok || ask.path.ends_with("nope")
                || ask.token != Some("s3cret")
                || ["PUT", "POST", "DELETE"].contains(&ask.method)
                || ask.path.ends_with('/'),
            "{what}: {from_middleware:?}"
        );
    }
    let status = |a: &Answer| a.status;
    let put = answer(&middleware, &ask("PUT", "/annotations/deploys", true)).await;
    assert_eq!(status(&put), 404);
    let put = answer(&middleware, &ask("PUT", "/health/live", true)).await;
    assert_eq!(put.body, b"app: put");
    let anonymous = Ask {
        token: None,
        ..ask("GET", "/metrics", true)
    };
    assert_eq!(status(&answer(&middleware, &anonymous).await), 401);
    let posted = Ask {
        body: Some(r#"{"title": "v2"}"#),
        ..ask("POST", "/annotations/deploys", false)
    };
    assert_eq!(status(&answer(&middleware, &posted).await), 201);
    let head = answer(&middleware, &ask("HEAD", "/health/live", true)).await;
    assert!(head.body.is_empty());
    assert_eq!(
        answer(&middleware, &ask("GET", "/health/a/b", true))
            .await
            .body,
        b"app: two segments"
    );
    assert_eq!(
        answer(&middleware, &ask("GET", "/health-check", true))
            .await
            .body,
        b"app: health-check"
    );
    // Paths are compared as they arrive, as axum's router and the admin listener compare them
    // (actix's router would match the percent-decoded `/metrics`).
    assert_eq!(
        status(&answer(&middleware, &ask("GET", "/%6Detrics", true)).await),
        404
    );
    // The endpoints' paths are left out of recording, whichever answered them; the
    // application's routes are recorded.
    all_recorded(&monitor, "every request recorded").await;
    let routes: std::collections::BTreeSet<String> =
        sink.requests().into_iter().map(|p| p.route).collect();
    assert_eq!(
        routes.into_iter().collect::<Vec<_>>(),
        [
            "/annotations/x/y",
            "/health-check",
            "/health/a/b",
            "/ok",
            "unmatched"
        ]
    );
}

/// With the endpoints recorded (`monitor_own_endpoints`), a request the middleware answers is
/// recorded as one routed to `configure`'s routes: the endpoint's path as route, method,
/// status, body sizes and the path parameter as label; the application's routes are recorded
/// as before.
#[tokio::test]
async fn endpoints_answered_by_the_middleware_are_recorded_as_configured_ones() {
    let build = |b: vitalsign::MonitorBuilder| {
        b.monitor_own_endpoints(true)
            .path_label("stream")
            .request_size_histogram(true)
    };
    let (by_middleware, middleware_sink) = monitor_with_sink(build);
    let (by_configure, configure_sink) = monitor_with_sink(build);
    let middleware = endpoints_app(&by_middleware, true);
    let configured = endpoints_app(&by_configure, false);
    let asks = [
        ask("GET", "/health/live", true),
        ask("HEAD", "/health", true),
        ask("GET", "/health/nope", true),
        ask("PUT", "/health/live", true),
        Ask {
            body: Some(r#"{"title": "v1.4.2 rolled out"}"#),
            ..ask("POST", "/annotations/deploys", false)
        },
        ask("GET", "/ok", true),
        ask("GET", "/health/a/b", true),
        ask("GET", "/unknown", true),
    ];
    for ask in &asks {
        answer(&middleware, ask).await;
        answer(&configured, ask).await;
    }
    all_recorded(&by_middleware, "the middleware's requests recorded").await;
    all_recorded(&by_configure, "configure's requests recorded").await;
    let recorded = |sink: &MemorySink| -> Vec<String> {
        sink.requests()
            .iter()
            .map(|p| {
                let tags: Vec<String> = p
                    .tags
                    .iter()
                    .map(|t| format!("{}={}", t.key, t.value))
                    .collect();
                format!(
                    "{:?} {} {} {}/{} bytes {tags:?} disconnected={}",
                    p.method,
                    p.route,
                    p.status_code,
                    p.request_body_bytes,
                    p.response_body_bytes,
                    p.disconnected
                )
            })
            .collect()
    };
    let from_middleware = recorded(&middleware_sink);
    assert_eq!(from_middleware, recorded(&configure_sink));
    assert_eq!(from_middleware.len(), asks.len(), "{from_middleware:#?}");
    let routes: Vec<&str> = from_middleware
        .iter()
        .map(|p| p.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(
        routes,
        [
            "/health/live",
            "/health",
            "/health/{component}",
            "/health/live",
            "/annotations/{stream}",
            "/ok",
            "/health/a/b",
            "unmatched"
        ]
    );
}
