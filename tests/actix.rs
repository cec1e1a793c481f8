//! actix-web over real HTTP on 127.0.0.1: what only actix needs checking (the shared behaviour
//! is in tests/parity.rs).

mod common;

use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use common::*;
use vitalsign::{MemorySink, Monitor};
use vitalsign_actix::{configure, Monitoring};

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
