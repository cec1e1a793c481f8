//! Where vitalsign's endpoints are mounted ([`Endpoints`]): custom paths, a prefix, a subset,
//! beside an application's own routes on the same paths; the same scenarios over real HTTP on
//! axum and on actix-web. The endpoints' own requests are never recorded, wherever they are.
#![cfg(feature = "axum")]

mod common;

use std::sync::Arc;

use common::*;
use vitalsign::endpoint::{Endpoint, Endpoints};
use vitalsign::{ConfigErrorKind, MemorySink, Monitor};

#[derive(Clone, Copy, Debug)]
enum Framework {
    Axum,
    Actix,
}

const BOTH: [Framework; 2] = [Framework::Axum, Framework::Actix];

/// A monitor mounting `endpoints`, recording into a memory sink.
fn monitor(endpoints: Endpoints) -> (Monitor, Arc<MemorySink>) {
    monitor_with_sink(|b| b.endpoints(endpoints))
}

/// Serves the application's own GET routes (`path` answers `body`) with vitalsign's endpoints
/// mounted beside them and the monitoring middleware around everything.
async fn serve(
    framework: Framework,
    monitor: &Monitor,
    own: &'static [(&'static str, &'static str)],
) -> Server {
    match framework {
        Framework::Axum => {
            let mut app = axum::Router::new();
            for (path, body) in own {
                app = app.route(path, axum::routing::get(move || async move { *body }));
            }
            let app = app
                .merge(vitalsign::axum::endpoints(monitor))
                .layer(vitalsign::MonitorLayer::new(monitor));
            Server::start(app).await
        }
        Framework::Actix => {
            use actix_web::{web, App, HttpServer};
            let m = monitor.clone();
            Server::start_actix(move || {
                let server = HttpServer::new(move || {
                    let mut app = App::new()
                        .wrap(vitalsign_actix::Monitoring::new(&m))
                        .configure(vitalsign_actix::configure(&m));
                    for (path, body) in own {
                        app = app.route(path, web::get().to(move || async move { *body }));
                    }
                    app
                })
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")?;
                let addrs = server.addrs();
                Ok((server.run(), addrs))
            })
        }
    }
}

/// The routes the monitor recorded, once every request has reached the sink.
async fn recorded_routes(monitor: &Monitor, sink: &MemorySink) -> Vec<String> {
    all_recorded(monitor, "every request recorded").await;
    let mut routes: Vec<String> = sink.requests().into_iter().map(|p| p.route).collect();
    routes.sort();
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_paths_are_served_on_both_frameworks_and_not_recorded() {
    for framework in BOTH {
        let (monitor, sink) = monitor(
            Endpoints::new()
                .path(Endpoint::Health, "/healthz")
                .path(Endpoint::Live, "/livez")
                .path(Endpoint::Ready, "/readyz"),
        );
        let server = serve(framework, &monitor, &[("/work", "done")]).await;
        assert_eq!(
            server.get("/work").await,
            (200, "done".into()),
            "{framework:?}"
        );
        let (status, body) = server.get("/livez").await;
        assert_eq!(status, 200, "{framework:?}");
        assert!(
            body.contains(r#""summary":"alive""#),
            "{framework:?}: {body}"
        );
        let (status, body) = server.get("/readyz").await;
        assert_eq!(status, 200, "{framework:?}");
        assert!(body.contains(r#""ready":true"#), "{framework:?}: {body}");
        let (status, body) = server.get("/healthz").await;
        assert_eq!(status, 200, "{framework:?}");
        assert!(
            body.contains(r#""overall":{"level":"available""#),
            "{framework:?}: {body}"
        );
        // `/health/{component}` moved with the health path.
        let (status, body) = server.get("/healthz/db").await;
        assert_eq!(status, 404, "{framework:?}");
        assert!(
            body.contains("no health component named"),
            "{framework:?}: {body}"
        );
        assert_eq!(server.get("/metrics").await.0, 200, "{framework:?}");
        // The default paths are not served any more.
        for path in ["/health", "/health/live", "/health/ready"] {
            let (status, body) = server.get(path).await;
            assert_eq!(status, 404, "{framework:?} {path}");
            assert!(!body.contains("level"), "{framework:?} {path}: {body}");
        }
        let routes = recorded_routes(&monitor, &sink).await;
        assert!(
            routes.iter().any(|r| r == "/work"),
            "{framework:?}: {routes:?}"
        );
        for own in [
            "/healthz",
            "/livez",
            "/readyz",
            "/healthz/{component}",
            "/metrics",
        ] {
            assert!(
                !routes.iter().any(|r| r == own),
                "{framework:?} recorded {own}: {routes:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_moves_every_endpoint_on_both_frameworks() {
    for framework in BOTH {
        let (monitor, sink) = monitor(Endpoints::new().prefix("/_vitalsign"));
        let server = serve(framework, &monitor, &[("/work", "done")]).await;
        assert_eq!(server.get("/work").await.0, 200, "{framework:?}");
        for path in [
            "/_vitalsign/metrics",
            "/_vitalsign/stats",
            "/_vitalsign/health",
            "/_vitalsign/health/live",
            "/_vitalsign/health/ready",
        ] {
            assert_eq!(server.get(path).await.0, 200, "{framework:?} {path}");
        }
        let (status, body) = server.get("/_vitalsign/health/db").await;
        assert_eq!(status, 404, "{framework:?}");
        assert!(
            body.contains("no health component named"),
            "{framework:?}: {body}"
        );
        all_recorded(&monitor, "/work recorded").await;
        let page = server.get("/_vitalsign/metrics").await.1;
        let m = Exposition::parse(&page);
        assert_eq!(
            m.sum(COUNT, &[("http_route", "/work")]),
            1.0,
            "{framework:?}"
        );
        assert_eq!(
            m.matching(COUNT, &[]).len(),
            1,
            "{framework:?}: only /work recorded\n{page}"
        );
        for path in ["/metrics", "/stats", "/health", "/health/live"] {
            assert_eq!(server.get(path).await.0, 404, "{framework:?} {path}");
        }
        let routes = recorded_routes(&monitor, &sink).await;
        assert!(
            routes.iter().any(|r| r == "/work")
                && !routes.iter().any(|r| r.starts_with("/_vitalsign")),
            "{framework:?}: {routes:?}"
        );
    }
}

/// The application's own `/stats` answers where vitalsign's is not mounted, and is recorded
/// as any route of the application's (the exclusion follows what is mounted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subset_leaves_the_other_paths_to_the_application_on_both_frameworks() {
    for framework in BOTH {
        let (monitor, sink) = monitor(Endpoints::new().only([Endpoint::Metrics, Endpoint::Live]));
        let server = serve(framework, &monitor, &[("/stats", "the app's own stats")]).await;
        assert_eq!(server.get("/metrics").await.0, 200, "{framework:?}");
        assert_eq!(server.get("/health/live").await.0, 200, "{framework:?}");
        for path in ["/health", "/health/ready", "/health/db"] {
            assert_eq!(server.get(path).await.0, 404, "{framework:?} {path}");
        }
        assert_eq!(
            server.get("/stats").await,
            (200, "the app's own stats".into()),
            "{framework:?}"
        );
        let routes = recorded_routes(&monitor, &sink).await;
        assert!(
            routes.iter().any(|r| r == "/stats"),
            "{framework:?}: {routes:?}"
        );
        assert!(
            !routes
                .iter()
                .any(|r| r == "/metrics" || r == "/health/live"),
            "{framework:?}: {routes:?}"
        );
    }
}

/// Regression (review item "Endpoints fit beside what the application already has"): an app
/// that serves its own `/health` panicked at start-up on axum ("Overlapping method route")
/// when it merged `endpoints(&monitor)`; with vitalsign's health elsewhere it starts, both
/// answer, and only the application's route is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_with_its_own_health_route_keeps_it_on_both_frameworks() {
    for framework in BOTH {
        let (monitor, sink) = monitor(Endpoints::new().path(Endpoint::Health, "/vitalsign/health"));
        let server = serve(framework, &monitor, &[("/health", "the app's own health")]).await;
        assert_eq!(
            server.get("/health").await,
            (200, "the app's own health".into()),
            "{framework:?}"
        );
        let (status, body) = server.get("/vitalsign/health").await;
        assert_eq!(status, 200, "{framework:?}");
        assert!(body.contains(r#""overall""#), "{framework:?}: {body}");
        assert_eq!(server.get("/health/live").await.0, 200, "{framework:?}");
        assert_eq!(
            server.get("/vitalsign/health/db").await.0,
            404,
            "{framework:?}"
        );
        let routes = recorded_routes(&monitor, &sink).await;
        assert_eq!(routes, ["/health"], "{framework:?}");
    }
}

/// Without the builder, the overlap is axum's start-up panic: what the README warns about.
#[test]
#[should_panic(expected = "Overlapping method route")]
fn the_default_endpoints_overlap_an_app_health_route_on_axum() {
    let monitor = Monitor::builder("overlap").build().unwrap();
    let _app: axum::Router = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .merge(vitalsign::axum::endpoints(&monitor));
}

/// On actix the overlap does not panic: the route registered first answers (here
/// vitalsign's, mounted before the application's), as the README says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_actix_the_first_registered_route_of_an_overlap_answers() {
    let (monitor, _sink) = monitor(Endpoints::new());
    let server = serve(
        Framework::Actix,
        &monitor,
        &[("/health", "the app's own health")],
    )
    .await;
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""overall""#), "{body}");
}

#[test]
fn bad_or_clashing_paths_are_refused_at_build() {
    let cases = [
        (
            Endpoints::new().path(Endpoint::Live, "livez"),
            ConfigErrorKind::InvalidValue,
        ),
        (
            Endpoints::new().path(Endpoint::Live, "/livez/"),
            ConfigErrorKind::InvalidValue,
        ),
        (
            Endpoints::new().path(Endpoint::Live, "/"),
            ConfigErrorKind::InvalidValue,
        ),
        (
            Endpoints::new().path(Endpoint::Live, "/a/{x}"),
            ConfigErrorKind::InvalidValue,
        ),
        (
            Endpoints::new().path(Endpoint::Live, "/a b"),
            ConfigErrorKind::InvalidValue,
        ),
        (
            Endpoints::new().path(Endpoint::Live, "/a//b"),
            ConfigErrorKind::InvalidValue,
        ),
        (
            Endpoints::new().prefix("_vitalsign"),
            ConfigErrorKind::InvalidValue,
        ),
        (
            Endpoints::new().prefix("/_vitalsign/"),
            ConfigErrorKind::InvalidValue,
        ),
        (
            Endpoints::new().path(Endpoint::Component, "/c/{name}"),
            ConfigErrorKind::InvalidValue,
        ),
        (
            Endpoints::new().path(Endpoint::Stats, "/metrics"),
            ConfigErrorKind::DuplicateName,
        ),
    ];
    for (endpoints, kind) in cases {
        let err = Monitor::builder("bad")
            .endpoints(endpoints.clone())
            .build()
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.setting()),
            (kind, "endpoints"),
            "{endpoints:?}: {err}"
        );
    }
    // A clash with a path left unmounted is no clash.
    assert!(Monitor::builder("ok")
        .endpoints(
            Endpoints::new()
                .path(Endpoint::Stats, "/metrics")
                .without(Endpoint::Metrics)
        )
        .build()
        .is_ok());
}
