//! Criterion benches of vitalsign's per-request cost, in process, no sockets, response bodies
//! fully collected:
//!
//! - `axum_request/{bare,vitalsign,axum-prometheus}`: the same router, as `axum::serve` runs it;
//! - `actix_request/{bare,vitalsign,actix-web-prom}`: the same app;
//! - `core/prometheus`: one request through `Monitor::begin` + `complete` into the Prometheus
//!   sink (cached handles) and `/stats`; `core/influx_queue`: the same into the InfluxDB sink's
//!   queue (and `/stats`) instead of Prometheus;
//! - `render/{1000,10000}`: `/metrics` with that many label sets.
//!
//! `cargo bench -p vitalsign-benches --bench overhead`. `benches/compare.rs` runs the request variants alternating
//! round by round and prints the added cost per request; `scripts/bench-instructions.sh`
//! counts instructions.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use vitalsign::{Monitor, MonitorLayer};

mod common;

/// The router as `axum::serve` runs it: state applied once (calling a `Router<()>` that was
/// never given its state rebuilds handlers and layers on every request).
fn app() -> Router<()> {
    Router::new().route("/users/{id}", get(|| async { "user" }))
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

fn axum_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter(); // axum-prometheus spawns its upkeep task here
    let monitor = Monitor::builder("bench").build().unwrap();
    let (prom_layer, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let variants = [
        ("bare", app().with_state(())),
        (
            "vitalsign",
            app().layer(MonitorLayer::new(&monitor)).with_state(()),
        ),
        ("axum-prometheus", app().layer(prom_layer).with_state(())),
    ];
    let mut group = c.benchmark_group("axum_request");
    for (name, mut router) in variants {
        group.bench_function(name, |b| b.iter(|| runtime.block_on(one(&mut router))));
    }
    group.finish();
}

fn actix_request(c: &mut Criterion) {
    use actix_web::{test, web, App};
    let monitor = Monitor::builder("bench-actix").build().unwrap();
    let prom = actix_web_prom::PrometheusMetricsBuilder::new("bench")
        .build()
        .unwrap();
    let system = actix_web::rt::System::new();
    let mut group = c.benchmark_group("actix_request");
    macro_rules! variant {
        ($name:expr, $app:expr) => {{
            let app = system.block_on(test::init_service($app));
            group.bench_function($name, |b| {
                b.iter(|| {
                    system.block_on(async {
                        let request = test::TestRequest::get().uri("/users/42").to_request();
                        let response = test::call_service(&app, request).await;
                        std::hint::black_box(test::read_body(response).await);
                    })
                })
            });
        }};
    }
    let user = || web::get().to(|| async { "user" });
    variant!("bare", App::new().route("/users/{id}", user()));
    variant!(
        "vitalsign",
        App::new()
            .wrap(vitalsign::actix::Monitoring::new(&monitor))
            .route("/users/{id}", user())
    );
    variant!(
        "actix-web-prom",
        App::new().wrap(prom.clone()).route("/users/{id}", user())
    );
    group.finish();
}

fn record(monitor: &Monitor) {
    let mut flight = vitalsign::adapter::begin(monitor, common::START);
    flight.set_status(200);
    flight.complete();
}

fn core(c: &mut Criterion) {
    let mut group = c.benchmark_group("core");
    let monitor = Monitor::builder("core").build().unwrap();
    group.bench_function("prometheus", |b| b.iter(|| record(&monitor)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let monitor = common::influx_monitor();
    group.bench_function("influx_queue", |b| b.iter(|| record(&monitor)));
    group.finish();
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    group.sample_size(10);
    for sets in [1_000usize, 10_000] {
        let monitor = common::monitor_with_label_sets(sets);
        group.bench_with_input(BenchmarkId::from_parameter(sets), &monitor, |b, m| {
            b.iter(|| std::hint::black_box(m.render_metrics()))
        });
    }
    group.finish();
}

criterion_group!(benches, axum_request, actix_request, core, render);
criterion_main!(benches);
