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
