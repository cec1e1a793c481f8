//! Per-request cost of vitalsign against the bare frameworks and the peer crates, in one run:
//! in process, no sockets, response bodies fully collected, the variants alternating round by
//! round; medians of the rounds. Also the core alone and `/metrics` rendering.
//!
//! ```text
//! cargo bench -p vitalsign-benches --bench compare            # full run (a few minutes)
//! VITALSIGN_BENCH_QUICK=1 cargo bench -p vitalsign-benches --bench compare
//! VITALSIGN_BENCH_ONLY=core cargo bench -p vitalsign-benches --bench compare   # one part: axum, actix, grpc, core, render
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use vitalsign::adapter::RequestStart;
use vitalsign::{Monitor, MonitorLayer};

mod common;
mod grpc;
mod passthrough;

const PATHS: [&str; 2] = ["/users/42", "/no/such/route"];

fn quick() -> bool {
    std::env::var_os("VITALSIGN_BENCH_QUICK").is_some()
}

fn rounds() -> usize {
    if quick() {
        3
    } else {
        7
    }
}

fn per_round() -> u32 {
    if quick() {
        5_000
    } else {
        40_000
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `VITALSIGN_BENCH_VARIANT=<part of a name>` and `VITALSIGN_BENCH_N=<requests>`: run just
/// the first variant whose name has it, once, without warm-up: for instruction counts under
/// `valgrind --tool=callgrind` (`scripts/bench-instructions.sh`), steady where timings are not.
fn single_variant() -> Option<(String, u32)> {
    let name = std::env::var("VITALSIGN_BENCH_VARIANT").ok()?;
    let n = std::env::var("VITALSIGN_BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    Some((name, n))
}

/// A named variant: runs `n` requests, returns the time taken.
type Variant<'a> = (&'a str, Box<dyn FnMut(u32) -> Duration + 'a>);

fn alternate(variants: &mut [Variant<'_>]) -> Vec<(String, f64)> {
    if let Some(one) = single_variant() {
        return variants
            .iter_mut()
            .filter(|(name, _)| name.contains(&one.0))
            .take(1) // the first that matches: plain variants come before their extensions
            .map(|(name, run)| (name.to_string(), run(one.1).as_nanos() as f64))
            .collect();
    }
    let mut samples: Vec<Vec<f64>> = variants.iter().map(|_| Vec::new()).collect();
    for (_, run) in variants.iter_mut() {
        run(per_round() / 10); // warm-up
    }
    for _ in 0..rounds() {
        for (i, (_, run)) in variants.iter_mut().enumerate() {
            let elapsed = run(per_round());
            samples[i].push(elapsed.as_nanos() as f64 / f64::from(per_round()));
        }
    }
    variants
        .iter()
        .zip(samples)
        .map(|((name, _), s)| (name.to_string(), median(s)))
        .collect()
}

fn print_table(framework: &str, results: &[(String, f64)]) {
    let bare = results[0].1;
    println!(
        "\n{framework}: median ns/request over {} rounds of {} requests",
        rounds(),
        per_round()
    );
    println!("| variant | ns/request | added over bare |");
    println!("|---|---:|---:|");
    for (name, ns) in results {
        println!("| {name} | {ns:.0} | {:+.0} |", ns - bare);
    }
}

fn axum_app() -> Router<()> {
    Router::new().route("/users/{id}", get(|| async { "user" }))
}

fn axum_runner(
    runtime: std::rc::Rc<tokio::runtime::Runtime>,
    router: Router,
) -> impl FnMut(u32) -> Duration {
    let mut router = router;
    move |n| drive_axum(&runtime, &mut router, n)
}

// The `drive_*` functions are the measured loops (`scripts/bench-instructions.sh` counts
// instructions inside them only).
#[inline(never)]
fn drive_axum(runtime: &tokio::runtime::Runtime, router: &mut Router, n: u32) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        for i in 0..n {
            let request = Request::get(PATHS[(i % 8 == 7) as usize])
                .body(Body::empty())
                .unwrap();
            let response = ServiceExt::<Request<Body>>::ready(&mut *router)
                .await
                .unwrap()
                .call(request)
                .await
                .unwrap();
            black_box(response.into_body().collect().await.unwrap());
        }
        started.elapsed()
    })
}

fn bench_axum() -> Vec<(String, f64)> {
    // One runtime for every variant (axum-prometheus spawns its upkeep task on it).
    let rt = std::rc::Rc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let _entered = rt.enter();
    let monitor = Monitor::builder("bench").build().unwrap();
    let (prom_layer, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let identity = tower::layer::util::Identity::new();
    let mut variants: Vec<Variant<'_>> = vec![
        (
            "bare axum",
            Box::new(axum_runner(rt.clone(), axum_app().with_state(()))),
        ),
        (
            "axum + an identity layer (axum's own cost of Router::layer)",
            Box::new(axum_runner(
                rt.clone(),
                axum_app().layer(identity).with_state(()),
            )),
        ),
        (
            "axum + a pass-through layer that wraps the body (the floor of any body-watching layer)",
            Box::new(axum_runner(
                rt.clone(),
                axum_app()
                    .layer(passthrough::WrapBodyLayer)
                    .with_state(()),
            )),
        ),
        (
            "vitalsign MonitorLayer",
            Box::new(axum_runner(
                rt.clone(),
                axum_app().layer(MonitorLayer::new(&monitor)).with_state(()),
            )),
        ),
        (
            "vitalsign MonitorLayer + endpoints, as the README wires it",
            Box::new(axum_runner(
                rt.clone(),
                axum_app()
                    .merge(vitalsign::axum::endpoints(&monitor))
                    .layer(MonitorLayer::new(&monitor))
                    .with_state(()),
            )),
        ),
        (
            "bare axum + endpoints merged (the cost of mounting them, no layer)",
            Box::new(axum_runner(
                rt.clone(),
                axum_app()
                    .merge(vitalsign::axum::endpoints(&monitor))
                    .with_state(()),
            )),
        ),
        (
            "axum-prometheus 0.10",
            Box::new(axum_runner(
                rt.clone(),
                axum_app().layer(prom_layer).with_state(()),
            )),
        ),
    ];
    alternate(&mut variants)
}

#[inline(never)]
fn drive_actix<S, R, B>(
    runtime: &actix_web::rt::SystemRunner,
    app: &S,
    request: impl Fn(&str) -> R,
    n: u32,
) -> Duration
where
    S: actix_web::dev::Service<
        R,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    use actix_web::test;
    runtime.block_on(async {
        let started = Instant::now();
        for i in 0..n {
            let request = request(PATHS[(i % 8 == 7) as usize]);
            let response = test::call_service(app, request).await;
            black_box(test::read_body(response).await);
        }
        started.elapsed()
    })
}

fn bench_actix() -> Vec<(String, f64)> {
    use actix_web::{test, web, App};
    let monitor = Monitor::builder("bench-actix").build().unwrap();
    let runtime = actix_web::rt::System::new();
    macro_rules! runner {
        ($app:expr) => {{
            let app = runtime.block_on(test::init_service($app));
            let runtime = &runtime;
            let request = |path: &str| test::TestRequest::get().uri(path).to_request();
            Box::new(move |n: u32| drive_actix(runtime, &app, request, n))
                as Box<dyn FnMut(u32) -> Duration>
        }};
    }
    let prom = actix_web_prom::PrometheusMetricsBuilder::new("bench")
        .build()
        .unwrap();
    let mut variants: Vec<Variant<'_>> = vec![
        (
            "bare actix-web",
            runner!(App::new().route("/users/{id}", web::get().to(|| async { "user" }))),
        ),
        (
            "actix-web + a pass-through middleware that wraps the body (the floor of any body-watching middleware)",
            runner!(App::new()
                .wrap(passthrough::WrapBodyTransform)
                .route("/users/{id}", web::get().to(|| async { "user" }))),
        ),
        (
            "vitalsign Monitoring",
            runner!(App::new()
                .wrap(vitalsign::actix::Monitoring::new(&monitor))
                .route("/users/{id}", web::get().to(|| async { "user" }))),
        ),
        (
            "vitalsign Monitoring + endpoints (with_endpoints(), no configure), as the README wires it",
            runner!(App::new()
                .wrap(vitalsign::actix::Monitoring::new(&monitor).with_endpoints())
                .route("/users/{id}", web::get().to(|| async { "user" }))),
        ),
        (
            "vitalsign Monitoring + configure after the routes",
            runner!(App::new()
                .wrap(vitalsign::actix::Monitoring::new(&monitor))
                .route("/users/{id}", web::get().to(|| async { "user" }))
                .configure(vitalsign::actix::configure(&monitor))),
        ),
        (
            "vitalsign Monitoring + configure before the routes",
            runner!(App::new()
                .wrap(vitalsign::actix::Monitoring::new(&monitor))
                .configure(vitalsign::actix::configure(&monitor))
                .route("/users/{id}", web::get().to(|| async { "user" }))),
        ),
        (
            "bare actix-web + configure before the routes (the cost of mounting them, no middleware)",
            runner!(App::new()
                .configure(vitalsign::actix::configure(&monitor))
                .route("/users/{id}", web::get().to(|| async { "user" }))),
        ),
        (
            "bare actix-web + configure after the routes (mounted behind the application's routes, no middleware)",
            runner!(App::new()
                .route("/users/{id}", web::get().to(|| async { "user" }))
                .configure(vitalsign::actix::configure(&monitor))),
        ),
        (
            "actix-web-prom 0.10",
            runner!(App::new()
                .wrap(prom.clone())
                .route("/users/{id}", web::get().to(|| async { "user" }))),
        ),
    ];
    alternate(&mut variants)
}

fn bench_core() {
    let (rounds, n) = match single_variant() {
        Some((_, n)) => (1, n),
        None => (rounds(), per_round() * 5),
    };
    let only = single_variant().map(|(name, _)| name);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    // (variant, what it measures, the monitor, the request)
    let traced = common::START.with_traceparent(Some(
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ));
    let monitors = [
        (
            "core",
            "the default sinks (Prometheus, /stats)",
            Monitor::builder("core").build().unwrap(),
            common::START,
        ),
        (
            "traced",
            "the default sinks, with a sampled traceparent (an exemplar per request)",
            Monitor::builder("core").build().unwrap(),
            traced,
        ),
        (
            "native",
            "the default sinks with native histograms on",
            Monitor::builder("core")
                .native_histograms(true)
                .build()
                .unwrap(),
            common::START,
        ),
        (
            "influx",
            "the InfluxDB queue and /stats",
            common::influx_monitor(),
            common::START,
        ),
        (
            "statsd",
            "the StatsD sink and /stats",
            common::statsd_monitor(),
            common::START,
        ),
    ];
    for (name, what, monitor, start) in monitors {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let mut samples = Vec::new();
        for _ in 0..rounds {
            samples.push(drive_core(&monitor, start, n).as_nanos() as f64 / f64::from(n));
        }
        println!(
            "\ncore: begin + complete of one request through {what}: {:.0} ns (median)",
            median(samples)
        );
    }
}

#[inline(never)]
fn drive_core(monitor: &Monitor, start: RequestStart<'_>, n: u32) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        let mut flight = vitalsign::adapter::begin(monitor, start);
        flight.set_status(200);
        flight.complete();
    }
    started.elapsed()
}

fn bench_render() {
    for sets in [1_000usize, 10_000] {
        let monitor = common::monitor_with_label_sets(sets);
        let mut samples = Vec::new();
        for _ in 0..rounds() {
            let started = Instant::now();
            black_box(monitor.render_metrics().unwrap());
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "/metrics render with {sets} label sets: {:.2} ms (median)",
            median(samples)
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches lists; nothing to list
    }
    // `VITALSIGN_BENCH_ONLY=core` (or axum, actix, grpc, render) runs one part, e.g. under a profiler.
    let only = std::env::var("VITALSIGN_BENCH_ONLY").ok();
    let run = |part: &str| only.as_deref().is_none_or(|only| only == part);
    if run("axum") {
        print_table("axum", &bench_axum());
    }
    if run("actix") {
        print_table("actix-web", &bench_actix());
    }
    if run("grpc") {
        print_table("tonic (unary SayHello)", &grpc::bench_grpc());
    }
    if run("core") {
        bench_core();
    }
    if run("render") {
        bench_render();
    }
}
