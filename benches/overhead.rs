//! Per-request cost of `MonitorLayer` against the same axum router without it, in process, no
//! sockets, response bodies fully collected. (Peer crates join this bench in the performance
//! issue.)
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use vitalsign::{Monitor, MonitorLayer};

/// The router as `axum::serve` runs it: state applied once (calling a `Router<()>` that was
/// never given its state rebuilds handlers and layers on every request).
fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .with_state(())
}

async fn one(router: &mut Router) {
    let request = Request::get("/users/42").body(Body::empty()).unwrap();
    let response = ServiceExt::<Request<Body>>::ready(router)
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap();
    std::hint::black_box(body);
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("axum_request");
    let mut bare = app();
    group.bench_function("bare", |b| b.iter(|| runtime.block_on(one(&mut bare))));
    let monitor = Monitor::builder("bench").build().unwrap();
    let mut monitored = app().layer(MonitorLayer::new(&monitor)).with_state(());
    group.bench_function("vitalsign", |b| {
        b.iter(|| runtime.block_on(one(&mut monitored)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
