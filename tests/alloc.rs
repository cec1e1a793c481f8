//! Allocation budget of the hot path, counted on this thread with a counting global allocator
//! (`allocation-counter`), over 10k requests on a known route after a warm-up.
//!
//! Five measurements:
//! - Tower stack (`MonitorLayer` wrapping the service directly): monitored minus bare.
//! - axum `Router::layer`: axum boxes every layered route's future and converts the wrapped
//!   response body into its boxed `Body`, for *any* body-wrapping middleware. That cost is
//!   axum's, so vitalsign's share is measured as the same router and layer with the route
//!   recorded minus with the route excluded from recording (the layer runs, records nothing).
//! - actix: monitored minus bare, and recording minus not recording.
//! - `MonitorBuilder::native_histograms` (off by default): the Tower stack with them on.
//! - `MonitorBuilder::point_in_extensions` (off by default): what carrying each request's point
//!   handle in its extensions adds, on the three set-ups above.
//!
//! Vitalsign's own budget: at most 0.02 allocations per request (its histograms are fixed
//! atomic buckets and its caches are filled once, so it measures 0).
#![cfg(all(feature = "axum", feature = "prometheus"))]

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};
use vitalsign::{Monitor, MonitorLayer};

const REQUESTS: u64 = 10_000;
const BUDGET: f64 = 0.02;

/// The router as `axum::serve` runs it: state applied once (calling a `Router<()>` that was
/// never given its state rebuilds handlers and layers on every request).
fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .with_state(())
}

async fn drive<S, B>(service: &mut S, n: u64)
where
    S: Service<Request<Body>, Response = axum::http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: axum::body::HttpBody,
    B::Error: std::fmt::Debug,
{
    for _ in 0..n {
        let request = Request::get("/users/42").body(Body::empty()).unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"user");
    }
}

/// Allocations per request (on this thread) over `REQUESTS` requests after a warm-up.
fn per_request<S, B>(mut service: S) -> f64
where
    S: Service<Request<Body>, Response = axum::http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: axum::body::HttpBody,
    B::Error: std::fmt::Debug,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(drive(&mut service, 100)); // series registered, maps and pools sized
    let info = allocation_counter::measure(|| runtime.block_on(drive(&mut service, REQUESTS)));
    info.count_total as f64 / REQUESTS as f64
}

fn assert_counted(monitor: &Monitor, route: &str) {
    let text = monitor.render_metrics().unwrap();
    let line = format!(
        "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"{route}\",http_response_status_code=\"200\"}} {}",
        REQUESTS + 100
    );
    assert!(text.contains(&line), "{line} not in\n{text}");
}

#[test]
fn tower_stack_adds_at_most_two_hundredths_of_an_allocation_per_request() {
    let bare = per_request(app());
    let monitor = Monitor::builder("alloc").build().unwrap();
    let layer = MonitorLayer::new(&monitor).route_fn(|_head| Some("/users/{id}"));
    let monitored = per_request(layer.layer(app()));
    let added = monitored - bare;
    println!("tower stack: bare {bare:.4}, monitored {monitored:.4}, added {added:.4} allocations/request");
    assert!(added <= BUDGET, "added {added} allocations per request");
    assert_counted(&monitor, "/users/{id}");
}

/// Native histograms (`MonitorBuilder::native_histograms`): preallocated buckets, so recording
/// them allocates nothing either.
#[test]
fn native_histograms_add_no_allocation_per_request() {
    let bare = per_request(app());
    let monitor = Monitor::builder("alloc")
        .native_histograms(true)
        .build()
        .unwrap();
    let layer = MonitorLayer::new(&monitor).route_fn(|_head| Some("/users/{id}"));
    let monitored = per_request(layer.layer(app()));
    let added = monitored - bare;
    println!("tower stack, native histograms: bare {bare:.4}, monitored {monitored:.4}, added {added:.4} allocations/request");
    assert!(added <= BUDGET, "added {added} allocations per request");
    assert_counted(&monitor, "/users/{id}");
}

#[test]
fn axum_router_layer_recording_adds_at_most_two_hundredths_of_an_allocation_per_request() {
    let bare = per_request(app());
    let idle = Monitor::builder("alloc")
        .exclude_path("/users/{id}")
        .build()
        .unwrap();
    let layer_only = per_request(app().layer(MonitorLayer::new(&idle)).with_state(()));
    let monitor = Monitor::builder("alloc").build().unwrap();
    let monitored = per_request(app().layer(MonitorLayer::new(&monitor)).with_state(()));
    let added = monitored - layer_only;
    println!(
        "axum Router::layer: bare {bare:.4}, layer not recording {layer_only:.4} (axum's boxing), \
         monitored {monitored:.4}, added by recording {added:.4} allocations/request"
    );
    assert!(
        added <= BUDGET,
        "recording added {added} allocations per request"
    );
    assert_counted(&monitor, "/users/{id}");
    assert!(idle.render_metrics().unwrap().matches("_count{").count() == 0);
}

/// Allocations per request of an actix app (on this thread, after a warm-up).
macro_rules! actix_per_request {
    ($app:expr) => {{
        use actix_web::test;
        let system = actix_web::rt::System::new();
        let app = system.block_on(test::init_service($app));
        let drive = |n: u64| {
            system.block_on(async {
                for _ in 0..n {
                    let request = test::TestRequest::get().uri("/users/42").to_request();
                    let response = test::call_service(&app, request).await;
                    assert_eq!(response.status(), 200);
                    assert_eq!(&test::read_body(response).await[..], b"user");
                }
            })
        };
        drive(100);
        let info = allocation_counter::measure(|| drive(REQUESTS));
        info.count_total as f64 / REQUESTS as f64
    }};
}

#[test]
fn actix_recording_adds_at_most_two_hundredths_of_an_allocation_per_request() {
    use actix_web::{web, App};
    let bare =
        actix_per_request!(App::new().route("/users/{id}", web::get().to(|| async { "user" })));
    let monitor = Monitor::builder("alloc-actix").build().unwrap();
    let monitored = actix_per_request!(App::new()
        .wrap(vitalsign_actix::Monitoring::new(&monitor))
        .route("/users/{id}", web::get().to(|| async { "user" })));
    // Excluded by its status, not its route: the middleware reads the route from the response
    // as for a recorded request (a route template that is excluded is matched on arrival
    // instead, so that the request is left out from its start).
    let idle = Monitor::builder("alloc-actix-idle")
        .exclude_status(200)
        .build()
        .unwrap();
    let not_recording = actix_per_request!(App::new()
        .wrap(vitalsign_actix::Monitoring::new(&idle))
        .route("/users/{id}", web::get().to(|| async { "user" })));
    let added = monitored - bare;
    println!("actix: bare {bare:.4}, middleware not recording {not_recording:.4}, monitored {monitored:.4}, added {added:.4} allocations/request");
    // actix's `match_pattern()` builds a `String` on every call: the middleware asks it once per
    // resource and remembers the template (`routes.rs`), so neither reading the route nor
    // recording allocates.
    let recording = monitored - not_recording;
    assert!(
        recording <= BUDGET,
        "recording added {recording} allocations per request"
    );
    assert!(added <= BUDGET, "added {added} allocations per request");
    assert_counted(&monitor, "/users/{id}");
}

/// What `MonitorBuilder::point_in_extensions` costs (it is off by default because of this): the
/// point's shared state, made for every request instead of only when a handler asks, and the
/// boxed entry in the request's extensions; plus the extensions map's own allocations when the
/// request arrives without one (its box and table) or when the entry makes the table grow.
/// Measured: 3 on a Tower stack around a router and on axum's `Router::layer` (whose
/// extensions already hold three entries: the table grows), 2 on actix (whose pooled requests
/// keep their map).
#[test]
fn point_in_extensions_costs_at_most_four_allocations_per_request() {
    let carrying = || {
        Monitor::builder("alloc-carrying")
            .point_in_extensions(true)
            .build()
            .unwrap()
    };
    let bare = per_request(app());
    let monitor = carrying();
    let layer = MonitorLayer::new(&monitor).route_fn(|_head| Some("/users/{id}"));
    let stack = per_request(layer.layer(app())) - bare;
    assert_counted(&monitor, "/users/{id}");

    let plain = Monitor::builder("alloc").build().unwrap();
    let router_plain = per_request(app().layer(MonitorLayer::new(&plain)).with_state(()));
    let monitor = carrying();
    let router =
        per_request(app().layer(MonitorLayer::new(&monitor)).with_state(())) - router_plain;
    assert_counted(&monitor, "/users/{id}");

    use actix_web::{web, App};
    let plain = Monitor::builder("alloc-actix").build().unwrap();
    let actix_plain = actix_per_request!(App::new()
        .wrap(vitalsign_actix::Monitoring::new(&plain))
        .route("/users/{id}", web::get().to(|| async { "user" })));
    let monitor = carrying();
    let actix = actix_per_request!(App::new()
        .wrap(vitalsign_actix::Monitoring::new(&monitor))
        .route("/users/{id}", web::get().to(|| async { "user" })))
        - actix_plain;
    assert_counted(&monitor, "/users/{id}");

    println!(
        "point_in_extensions: tower stack +{stack:.4}, axum Router::layer +{router:.4}, \
         actix +{actix:.4} allocations/request"
    );
    for (setup, added) in [
        ("tower stack", stack),
        ("Router::layer", router),
        ("actix", actix),
    ] {
        assert!(added <= 4.0 + BUDGET, "{setup}: {added}");
    }
}
