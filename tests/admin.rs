//! `serve_admin`: the endpoints on a listener of their own, beside an axum or an actix app that
//! does not mount them.

mod common;

use common::*;
use vitalsign::axum::ServeAdmin;
use vitalsign::Monitor;

/// The count of `GET /work` on the admin listener's `/metrics`.
async fn work_count(admin_url: &str) -> Option<f64> {
    let text = client()
        .get(format!("{admin_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels = [
        ("http_request_method", "GET"),
        ("http_route", "/work"),
        ("http_response_status_code", "200"),
    ];
    Exposition::parse(&text).get(COUNT, &labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_listener_serves_the_endpoints_of_an_axum_app() {
    use axum::routing::get;
    let monitor = Monitor::builder("admin-axum").build().unwrap();
    let app = axum::Router::new()
        .route("/work", get(|| async { "done" }))
        .layer(vitalsign::MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    let admin = monitor.serve_admin("127.0.0.1:0").await.unwrap();
    let admin_url = format!("http://{}", admin.local_addr());
    assert_eq!(server.get("/work").await.0, 200);
    assert_eq!(
        server.get("/metrics").await.0,
        404,
        "not on the application's listener"
    );
    all_recorded(&monitor, "the requests recorded").await;
    assert_eq!(work_count(&admin_url).await, Some(1.0));
    for path in ["/health", "/health/live", "/health/ready", "/stats"] {
        assert_eq!(
            client()
                .get(format!("{admin_url}{path}"))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{path}"
        );
    }
    admin.stop().await.unwrap();
    assert!(
        client()
            .get(format!("{admin_url}/metrics"))
            .send()
            .await
            .is_err(),
        "stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_listener_serves_the_endpoints_of_an_actix_app() {
    use actix_web::{web, App, HttpServer};
    let monitor = Monitor::builder("admin-actix").build().unwrap();
    let m = monitor.clone();
    let server = Server::start_actix(move || {
        let server = HttpServer::new(move || {
            App::new()
                .wrap(vitalsign_actix::Monitoring::new(&m))
                .route("/work", web::get().to(|| async { "done" }))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")?;
        let addrs = server.addrs();
        Ok((server.run(), addrs))
    });
    let admin = monitor.serve_admin("127.0.0.1:0").await.unwrap();
    let admin_url = format!("http://{}", admin.local_addr());
    for _ in 0..3 {
        assert_eq!(server.get("/work").await.0, 200);
    }
    all_recorded(&monitor, "the three requests recorded").await;
    assert_eq!(work_count(&admin_url).await, Some(3.0));
    drop(admin);
    // Regression (review item 13): a fixed 100 ms sleep stood here. Dropping the handle stops
    // the listener: wait until it refuses connections.
    eventually("the dropped admin listener refuses connections", || async {
        client()
            .get(format!("{admin_url}/metrics"))
            .send()
            .await
            .is_err()
    })
    .await;
}

#[tokio::test]
async fn a_taken_admin_address_is_an_error_at_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let monitor = Monitor::builder("admin").build().unwrap();
    let err = monitor
        .serve_admin(taken.local_addr().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

/// Regression (review item "`serve_admin` lives in `vitalsign::axum`"): the admin listener
/// was axum's, out of reach of an actix application built without the axum feature. It is
/// core's now (hyper's HTTP/1 server), re-exported by the actix adapter under its `admin`
/// feature: an actix app serves its endpoints there, at the paths of the monitor's table,
/// with the token rules of the routers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actix_app_gets_the_admin_listener_from_its_own_adapter() {
    use actix_web::{web, App, HttpServer};
    use vitalsign::endpoint::{Endpoint, Endpoints};
    use vitalsign_actix::ServeAdmin as ActixServeAdmin;
    let monitor = Monitor::builder("admin-actix-only")
        .token("s3cret")
        .endpoints(
            Endpoints::new()
                .prefix("/_vitalsign")
                .path(Endpoint::Health, "/healthz")
                .without(Endpoint::Stats),
        )
        .build()
        .unwrap();
    let m = monitor.clone();
    let server = Server::start_actix(move || {
        let server = HttpServer::new(move || {
            App::new()
                .wrap(vitalsign_actix::Monitoring::new(&m))
                .route("/work", web::get().to(|| async { "done" }))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")?;
        let addrs = server.addrs();
        Ok((server.run(), addrs))
    });
    let admin = ActixServeAdmin::serve_admin(&monitor, "127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", admin.local_addr());
    let get = |path: &str, token: Option<&str>| {
        let mut request = client().get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, content_type, response.text().await.unwrap())
        }
    };
    assert_eq!(server.get("/work").await.0, 200);
    all_recorded(&monitor, "/work recorded").await;

    let (status, content_type, text) = get("/_vitalsign/metrics", Some("s3cret")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        content_type.as_deref(),
        Some(vitalsign::endpoint::PROMETHEUS_CONTENT_TYPE)
    );
    let labels = [
        ("http_request_method", "GET"),
        ("http_route", "/work"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(Exposition::parse(&text).get(COUNT, &labels), Some(1.0));
    promtool_check(&text);
    // The token rules of the routers: 401 without it, the overall level only on /health.
    let (status, _, text) = get("/_vitalsign/metrics", None).await;
    assert_eq!(status, 401, "{text}");
    let (status, _, text) = get("/_vitalsign/healthz", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({
            "name": "admin-actix-only",
            "version": monitor.version(),
            "status": { "overall": { "level": "available" } },
        })
    );
    assert_eq!(get("/_vitalsign/healthz/db", None).await.0, 401);
    let (status, _, text) = get("/_vitalsign/healthz/db", Some("s3cret")).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no health component named"), "{text}");
    assert_eq!(get("/_vitalsign/health/live", None).await.0, 200);
    assert_eq!(get("/_vitalsign/health/ready", None).await.0, 200);
    // Unmounted and unknown paths, other methods.
    for path in ["/_vitalsign/stats", "/metrics", "/_vitalsign/healthz/a/b"] {
        assert_eq!(get(path, Some("s3cret")).await.0, 404, "{path}");
    }
    let response = client()
        .post(format!("{base}/_vitalsign/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    let response = client()
        .head(format!("{base}/_vitalsign/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), "");
    // The admin listener's own requests are not the application's: nothing more recorded.
    let (_, _, text) = get("/_vitalsign/metrics", Some("s3cret")).await;
    assert_eq!(Exposition::parse(&text).sum(COUNT, &[]), 1.0, "{text}");
    admin.stop().await.unwrap();
    assert!(get_fails(&format!("{base}/_vitalsign/health/live")).await);
}

async fn get_fails(url: &str) -> bool {
    client().get(url).send().await.is_err()
}
