//! The OpenTelemetry sink against a real OTLP/HTTP receiver on 127.0.0.1, built on the official
//! `opentelemetry-proto` types (the server side of the protocol the sink's exporter speaks):
//! the demo's metrics from both frameworks, with their semantic-convention names, attributes,
//! bucket counts and sums checked against the points the monitor recorded; the application's
//! own meter provider; and a receiver that is down, where the service keeps serving and the
//! sink reports what it could not deliver.
#![cfg(all(feature = "axum", feature = "prometheus"))]

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;
#[path = "common/otlp.rs"]
mod otlp;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::{all_recorded, eventually, Server};
use demo::{Framework, BOTH};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use otlp::{attributes, histogram, Receiver};
use vitalsign::sinks::otel::opentelemetry_sdk::metrics::{
    PeriodicReader, SdkMeterProvider, Temporality,
};
use vitalsign::sinks::otel::{ACTIVE_REQUESTS, DURATION, DURATION_BUCKETS};
use vitalsign::sinks::OtelSink;
use vitalsign::{ConfigErrorKind, Sink, SinkReport};

/// What the receiver must hold for one attribute set: count, sum and bucket counts computed
/// from the execution times the monitor recorded (OpenTelemetry buckets are upper-inclusive).
#[derive(Debug, Default)]
struct Expected {
    count: u64,
    sum: f64,
    buckets: Vec<u64>,
}

impl Expected {
    fn add(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; DURATION_BUCKETS.len() + 1];
        }
        self.count += 1;
        self.sum += seconds;
        let i = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[i] += 1;
    }
}

/// The expected attribute sets of what `sink` (the demo's collecting sink) recorded.
fn expected(ctx: &demo::Ctx) -> BTreeMap<BTreeMap<String, String>, Expected> {
    let errors: HashMap<String, String> = ctx
        .sink
        .errors()
        .into_iter()
        .map(|e| (e.request_id.as_str().to_owned(), e.error_code))
        .collect();
    let mut sets: BTreeMap<BTreeMap<String, String>, Expected> = BTreeMap::new();
    for point in ctx.sink.requests() {
        let mut set = BTreeMap::from([
            (
                "http.request.method".to_owned(),
                point.method.as_str().to_owned(),
            ),
            (
                "http.response.status_code".to_owned(),
                point.status_code.to_string(),
            ),
            ("url.scheme".to_owned(), "http".to_owned()),
            ("network.protocol.version".to_owned(), "1.1".to_owned()),
        ]);
        if point.route != vitalsign::UNMATCHED_ROUTE {
            set.insert("http.route".to_owned(), point.route.clone());
        }
        if let Some(code) = errors.get(point.request_id.as_str()) {
            set.insert("error.type".to_owned(), code.clone());
        }
        sets.entry(set).or_default().add(point.execution_time);
    }
    sets
}

/// The requests of the scenario: three users, two failures with the demo's error code, a slow
/// one, and one that matches no route.
async fn send_requests(server: &Server) -> u64 {
    let mut sent = 0;
    for (path, status) in [
        ("/users/1", 200),
        ("/users/2", 200),
        ("/users/3", 200),
        ("/error", 500),
        ("/error", 500),
        ("/slow?ms=30", 200),
        ("/no/such/route", 404),
    ] {
        assert_eq!(server.get(path).await.0, status, "{path}");
        sent += 1;
    }
    sent
}

/// `vitalsign_sink_*{sink="otel"}` on the demo's `/metrics`: (sent, dropped, queued).
async fn otel_series(server: &Server) -> (f64, f64, f64) {
    let m = server.metrics().await;
    let get = |name: &str| m.get(name, &[("sink", "otel")]).unwrap_or(f64::NAN);
    (
        get("vitalsign_sink_sent_points_total"),
        get("vitalsign_sink_dropped_points_total"),
        get("vitalsign_sink_queued_points"),
    )
}

async fn start_demo(framework: Framework, sinks: Vec<Arc<dyn Sink>>) -> demo::Ctx {
    demo::start(
        framework,
        app::with_sinks(app::monitor_builder().unwrap(), sinks),
    )
    .await
}

/// The demo's `--otlp URL` sink (`app::push_sinks`, the code the flag runs) exports, every
/// second, the semantic-convention histogram of every request, with the right attributes,
/// counts, sums and bucket counts, and the active requests per method; from both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_otlp_sink_exports_semantic_convention_metrics_from_both_frameworks() {
    for framework in BOTH {
        let receiver = Receiver::start().await;
        let sinks = app::push_sinks(&app::PushOptions {
            otlp: Some(receiver.server.base.clone()),
            ..app::PushOptions::default()
        })
        .unwrap();
        assert_eq!(sinks.len(), 1);
        let otel = sinks[0].clone();
        let ctx = start_demo(framework, sinks).await;
        let sent = send_requests(&ctx.server).await;
        all_recorded(&ctx.monitor, "every request recorded").await;
        eventually(
            &format!("{framework:?}: {sent} requests exported"),
            || async { receiver.latest_count() == sent },
        )
        .await;

        let (service, scope, metric) = receiver.latest_duration().unwrap();
        assert_eq!(
            service,
            app::SERVICE,
            "{framework:?}: resource service.name"
        );
        assert_eq!(scope, "vitalsign", "{framework:?}: instrumentation scope");
        assert_eq!(metric.unit, "s");
        let mut want = expected(&ctx);
        assert_eq!(want.values().map(|e| e.count).sum::<u64>(), sent);
        assert!(
            want.keys()
                .any(|set| set.get("error.type").map(String::as_str) == Some("1001")),
            "{framework:?}: the demo's error code is an error.type: {want:#?}"
        );
        assert!(
            want.keys().any(|set| !set.contains_key("http.route")),
            "{framework:?}: the unmatched request has no http.route"
        );
        let points = histogram(&metric);
        assert_eq!(points.len(), want.len(), "{framework:?}: {points:#?}");
        for point in &points {
            let set = attributes(&point.attributes);
            let expected = want
                .remove(&set)
                .unwrap_or_else(|| panic!("{framework:?}: unexpected attributes {set:?}"));
            assert_eq!(point.count, expected.count, "{framework:?} {set:?}");
            assert_eq!(
                point.bucket_counts, expected.buckets,
                "{framework:?} {set:?}"
            );
            assert_eq!(point.explicit_bounds, DURATION_BUCKETS.to_vec());
            let sum = point.sum.unwrap();
            assert!(
                (sum - expected.sum).abs() < 1e-9,
                "{framework:?} {set:?}: sum {sum} != {}",
                expected.sum
            );
        }
        // The slow request took at least its 30 ms: in the bucket above 25 ms or higher.
        let slow = points
            .iter()
            .find(|p| {
                attributes(&p.attributes)
                    .get("http.route")
                    .map(String::as_str)
                    == Some("/slow")
            })
            .unwrap();
        assert!(slow.sum.unwrap() >= 0.030);
        assert_eq!(slow.bucket_counts[..3], [0, 0, 0]);

        // Nothing in flight now: the GET series of active requests reads 0.
        let (_, _, active) = receiver.metrics(ACTIVE_REQUESTS).pop().unwrap();
        let Some(metric::Data::Sum(sum)) = &active.data else {
            panic!("{ACTIVE_REQUESTS} is not a sum: {active:?}");
        };
        assert!(!sum.is_monotonic);
        let get = sum
            .data_points
            .iter()
            .find(|p| {
                attributes(&p.attributes)
                    .get("http.request.method")
                    .map(String::as_str)
                    == Some("GET")
            })
            .expect("a GET series");
        assert_eq!(get.value, Some(number_data_point::Value::AsInt(0)));
        assert_eq!(
            attributes(&get.attributes)
                .get("url.scheme")
                .map(String::as_str),
            Some("http")
        );

        // The sink's report, on `/metrics` too: every request delivered once, however many
        // cumulative exports carried it (two at least, here), none dropped.
        eventually(
            &format!("{framework:?}: a second export of the totals"),
            || async {
                let full = |(_, _, m): &(String, String, _)| {
                    histogram(m).iter().map(|p| p.count).sum::<u64>() == sent
                };
                receiver
                    .metrics(DURATION)
                    .iter()
                    .filter(|m| full(m))
                    .count()
                    >= 2
            },
        )
        .await;
        let report = otel.report();
        let mut want_report = SinkReport::new("otel");
        want_report.sent = sent;
        assert_eq!(report, Some(want_report), "{framework:?}");
        assert_eq!(otel_series(&ctx.server).await, (sent as f64, 0.0, 0.0));
    }
}

/// `http.server.active_requests` counts a request while it runs, and no longer after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_requests_count_a_request_while_it_runs_on_both_frameworks() {
    for framework in BOTH {
        let receiver = Receiver::start().await;
        let sink = OtelSink::otlp()
            .endpoint(receiver.server.base.clone())
            .export_interval(Duration::from_millis(100))
            .build()
            .unwrap();
        let ctx = start_demo(framework, vec![sink]).await;
        let active_gets = || {
            receiver
                .metrics(ACTIVE_REQUESTS)
                .pop()
                .and_then(|(_, _, m)| match m.data {
                    Some(metric::Data::Sum(sum)) => sum.data_points.into_iter().find(|p| {
                        attributes(&p.attributes)
                            .get("http.request.method")
                            .map(String::as_str)
                            == Some("GET")
                    }),
                    _ => None,
                })
                .and_then(|p| p.value)
        };
        let slow = tokio::spawn({
            let url = ctx.server.url("/slow?ms=5000");
            async move { common::client().get(url).send().await.unwrap().status() }
        });
        eventually(
            &format!("{framework:?}: one GET in flight exported"),
            || async { active_gets() == Some(number_data_point::Value::AsInt(1)) },
        )
        .await;
        assert_eq!(slow.await.unwrap(), 200);
        all_recorded(&ctx.monitor, "the slow request recorded").await;
        eventually(
            &format!("{framework:?}: no GET in flight exported"),
            || async { active_gets() == Some(number_data_point::Value::AsInt(0)) },
        )
        .await;
    }
}

/// With an OTLP receiver that is down, the service keeps serving; with delta temporality the
/// requests of the failed exports are lost, and the sink says so (`dropped`, on `/metrics`
/// too); with cumulative temporality (the default) they wait (`queued`) and reach the
/// receiver once it is up, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_receiver_down_the_service_serves_and_the_sink_counts_what_it_could_not_deliver() {
    for framework in BOTH {
        // Delta: failed exports are drops.
        let port = common::free_port();
        let sink = OtelSink::otlp()
            .endpoint(format!("http://127.0.0.1:{port}"))
            .export_interval(Duration::from_millis(100))
            .temporality(Temporality::Delta)
            .build()
            .unwrap();
        let ctx = start_demo(framework, vec![sink.clone()]).await;
        let sent = send_requests(&ctx.server).await;
        all_recorded(&ctx.monitor, "every request recorded").await;
        eventually(
            &format!("{framework:?}: {sent} requests dropped"),
            || async { sink.report().is_some_and(|r| r.dropped == sent) },
        )
        .await;
        let report = sink.report().unwrap();
        assert_eq!((report.sent, report.queued), (0, 0), "{framework:?}");
        assert_eq!(otel_series(&ctx.server).await, (0.0, sent as f64, 0.0));
        assert_eq!(ctx.server.get("/users/9").await.0, 200, "still serving");
        drop(ctx);

        // Cumulative: failed exports wait, then the receiver gets every request.
        let port = common::free_port();
        let sink = OtelSink::otlp()
            .endpoint(format!("http://127.0.0.1:{port}"))
            .export_interval(Duration::from_millis(100))
            .temporality(Temporality::Cumulative)
            .build()
            .unwrap();
        let ctx = start_demo(framework, vec![sink.clone()]).await;
        let sent = send_requests(&ctx.server).await;
        all_recorded(&ctx.monitor, "every request recorded").await;
        // Recorded into the instruments, and at least one export failed since.
        let failed = || async {
            let (_, _, queued) = otel_series(&ctx.server).await;
            queued == sent as f64
        };
        eventually(&format!("{framework:?}: {sent} requests queued"), failed).await;
        assert_eq!(sink.report().unwrap().dropped, 0, "{framework:?}");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let receiver = Receiver::serve(listener).await;
        eventually(
            &format!("{framework:?}: delivered once the receiver is up"),
            || async {
                receiver.latest_count() == sent
                    && sink
                        .report()
                        .is_some_and(|r| (r.sent, r.dropped, r.queued) == (sent, 0, 0))
            },
        )
        .await;
    }
}

/// With the application's own meter provider, the sink records into it and the application's
/// exporter delivers (here the OTLP one, to the receiver, on the application's schedule); the
/// report counts what was recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applications_meter_provider_gets_the_instruments_on_both_frameworks() {
    use opentelemetry_otlp::WithExportConfig;
    use vitalsign::sinks::otel::opentelemetry_sdk::Resource;
    for framework in BOTH {
        let receiver = Receiver::start().await;
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(receiver.server.url("/v1/metrics"))
            .build()
            .unwrap();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter).build())
            .with_resource(Resource::builder_empty().with_service_name("app").build())
            .build();
        let sink = OtelSink::meter_provider(&provider)
            .url_scheme("https")
            .build()
            .unwrap();
        let ctx = start_demo(framework, vec![sink.clone()]).await;
        let sent = send_requests(&ctx.server).await;
        all_recorded(&ctx.monitor, "every request recorded").await;
        // The sink's flush hands every queued request to the instruments.
        sink.flush().unwrap().await.unwrap();
        assert_eq!(
            sink.report().map(|r| (r.sent, r.dropped, r.queued)),
            Some((sent, 0, 0))
        );
        let flushing = provider.clone();
        tokio::task::spawn_blocking(move || flushing.force_flush().unwrap())
            .await
            .unwrap();
        assert_eq!(receiver.latest_count(), sent, "{framework:?}");
        let (service, _, metric) = receiver.latest_duration().unwrap();
        assert_eq!(service, "app");
        for point in histogram(&metric) {
            let set = attributes(&point.attributes);
            assert_eq!(set.get("url.scheme").map(String::as_str), Some("https"));
            assert!(!set.contains_key("network.protocol.version"), "{set:?}");
        }
        tokio::task::spawn_blocking(move || provider.shutdown().unwrap())
            .await
            .unwrap();
    }
}

/// Settings the sink cannot honour fail at `build()`, with the setting named.
#[test]
fn impossible_settings_fail_at_build() {
    let provider = SdkMeterProvider::builder().build();
    let error = OtelSink::meter_provider(&provider)
        .endpoint("http://127.0.0.1:4318")
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::InvalidValue);
    assert_eq!(error.setting(), "endpoint");
    assert!(error.to_string().contains("OtelSink::otlp()"), "{error}");
    let error = OtelSink::otlp()
        .endpoint("https://collector:4318")
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::InvalidValue);
    assert_eq!(error.setting(), "endpoint");
    assert!(error.to_string().contains("http://"), "{error}");
}

/// The allocations per request of a Tower stack recording into `monitor`, counted on this
/// thread (`allocation-counter`) over 10 000 requests after a warm-up: the request path's
/// own, not the recorder thread's.
fn allocations_per_request(monitor: &vitalsign::Monitor) -> f64 {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::{Layer, Service, ServiceExt};

    const REQUESTS: u64 = 10_000;
    let app = axum::Router::new()
        .route("/users/{id}", axum::routing::get(|| async { "user" }))
        .with_state(());
    let mut service = vitalsign::MonitorLayer::new(monitor)
        .route_fn(|_head| Some("/users/{id}"))
        .layer(app);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut drive = |n: u64| {
        runtime.block_on(async {
            for _ in 0..n {
                let request: Request<Body> = Request::get("/users/42").body(Body::empty()).unwrap();
                let response = ServiceExt::<Request<Body>>::ready(&mut service)
                    .await
                    .unwrap()
                    .call(request)
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
            }
        })
    };
    drive(100);
    let info = allocation_counter::measure(|| drive(REQUESTS));
    info.count_total as f64 / REQUESTS as f64
}

/// On a known route, the sink adds no allocation to the request path: its record holds the
/// route as a shared string from the sink's cache and goes into a queue allocated once.
#[test]
fn the_sink_adds_no_allocation_to_the_request_path() {
    let without = allocations_per_request(&vitalsign::Monitor::builder("alloc").build().unwrap());
    let provider = SdkMeterProvider::builder().build();
    let sink = OtelSink::meter_provider(&provider)
        .queue_capacity(20_000)
        .build()
        .unwrap();
    let monitor = vitalsign::Monitor::builder("alloc")
        .sink(sink.clone())
        .build()
        .unwrap();
    let with = allocations_per_request(&monitor);
    let added = with - without;
    println!("without the sink {without:.4}, with it {with:.4}: {added:.4} allocations/request");
    assert!(
        added <= 0.02,
        "the sink adds {added} allocations per request"
    );
    let report = sink.report().unwrap();
    assert_eq!(report.dropped, 0);
    assert_eq!(report.sent + report.queued, 10_100);
}
