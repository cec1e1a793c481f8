//! Tests of the monitor: recording, policy and the builder's checks.

use super::*;
use std::time::Duration;

use super::routes::ROUTE_CACHE_ROUTES;
use crate::point::{CLIENT_CLOSED_REQUEST, UNMATCHED_ROUTE};
use crate::{FieldValue, MemorySink, Method, PointHandle, RequestPoint};

#[test]
fn routes_and_label_sets_past_the_lock_free_caches_are_recorded_alike() {
    // More routes than the route cache and the series cache hold: the rest go through the
    // locked maps, with the same results.
    let routes = ROUTE_CACHE_ROUTES * 3;
    let sink = Arc::new(MemorySink::new(2 * routes));
    let monitor = Monitor::builder("svc")
        .max_label_sets(routes + 10)
        .sink(sink.clone())
        .build()
        .unwrap();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let monitor = monitor.clone();
            std::thread::spawn(move || {
                for i in 0..routes {
                    let route = format!("/r/{i}");
                    let mut flight = monitor.begin(start(b"GET", &route, Some(&route))).unwrap();
                    assert_eq!(flight.route(), route);
                    flight.set_status(200 + (i % 2) as u16);
                    flight.complete();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let points = sink.requests();
    assert_eq!(points.len(), 2 * routes);
    for point in &points {
        let i: usize = point.route["/r/".len()..].parse().unwrap();
        assert_eq!(point.status_code, 200 + (i % 2) as u16);
    }
    #[cfg(feature = "prometheus")]
    {
        let text = monitor.render_metrics().unwrap();
        for i in [0, ROUTE_CACHE_ROUTES + 1, routes - 1] {
            let line = format!(
                "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"/r/{i}\",http_response_status_code=\"{}\"}} 2",
                200 + i % 2
            );
            assert!(text.contains(&line), "{line}");
        }
        assert_eq!(monitor.prometheus().unwrap().label_sets(), routes);
    }
}

#[test]
fn an_in_flight_request_fits_in_two_cache_lines() {
    // Adapters move it from the request to the response future to the body; at this size
    // the compiler moves it with a few vector stores rather than a call to `memcpy`.
    assert!(std::mem::size_of::<InFlight>() <= 128);
    assert_eq!(
        std::mem::size_of::<Flight>(),
        std::mem::size_of::<InFlight>()
    );
}

fn monitor(build: impl FnOnce(MonitorBuilder) -> MonitorBuilder) -> (Monitor, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new(1000));
    let monitor = build(Monitor::builder("svc").sink(sink.clone()))
        .build()
        .unwrap();
    (monitor, sink)
}

fn start<'a>(method: &'a [u8], path: &'a str, route: Option<&'a str>) -> RequestStart<'a> {
    RequestStart {
        method,
        path,
        route,
        request_id: None,
    }
}

#[test]
fn a_completed_request_becomes_one_point() {
    let (monitor, sink) = monitor(|b| b);
    let mut flight = monitor
        .begin(RequestStart {
            request_id: Some(b"rid-1"),
            ..start(b"GET", "/users/7", Some("/users/{id}"))
        })
        .unwrap();
    assert_eq!(monitor.in_flight(), 1);
    assert!(sink.requests().is_empty(), "not recorded yet");
    flight.set_status(200);
    flight.complete();
    flight.complete();
    drop(flight);
    let points = sink.requests();
    assert_eq!(points.len(), 1, "recorded exactly once");
    let p = &points[0];
    assert_eq!(
        (
            p.service.as_str(),
            p.route.as_str(),
            p.method,
            p.status_code
        ),
        ("svc", "/users/{id}", Method::Get, 200)
    );
    assert_eq!(p.request_id.as_str(), "rid-1");
    assert!(!p.disconnected && p.execution_time >= 0.0 && p.start_unix_nanos > 0);
    assert!(sink.errors().is_empty());
    assert_eq!(monitor.in_flight(), 0);
}

#[test]
fn route_and_method_policy() {
    let (monitor, sink) = monitor(|b| b);
    for (method, route) in [(&b"GET"[..], None), (b"BREW", Some("/a"))] {
        let mut flight = monitor.begin(start(method, "/raw/123", route)).unwrap();
        flight.set_status(404);
        flight.complete();
    }
    let points = sink.requests();
    assert_eq!(
        (points[0].route.as_str(), points[0].method),
        (UNMATCHED_ROUTE, Method::Get)
    );
    assert_eq!(
        (points[1].route.as_str(), points[1].method.as_str()),
        ("/a", "_OTHER")
    );
}

#[test]
fn routes_past_the_cap_are_overflow() {
    let (monitor, sink) = monitor(|b| b.max_label_sets(2));
    for route in ["/a", "/b", "/c", "/a"] {
        let mut flight = monitor.begin(start(b"GET", route, Some(route))).unwrap();
        flight.set_status(200);
        flight.complete();
    }
    let routes: Vec<String> = sink.requests().into_iter().map(|p| p.route).collect();
    assert_eq!(routes, ["/a", "/b", OVERFLOW_ROUTE, "/a"]);
}

#[test]
fn exclusions_match_paths_and_templates() {
    let (monitor, sink) = monitor(|b| b.exclude_path("/internal/{x}"));
    assert!(monitor.begin(start(b"GET", "/metrics", None)).is_none());
    assert!(monitor
        .begin(start(b"GET", "/health/db", Some("/health/{component}")))
        .is_none());
    assert!(monitor
        .begin(start(b"GET", "/internal/1", Some("/internal/{x}")))
        .is_none());
    assert_eq!(sink.started(), 0);
    let (monitor, _) = self::monitor(|b| b.monitor_own_endpoints(true));
    assert!(monitor
        .begin(start(b"GET", "/metrics", Some("/metrics")))
        .is_some());
}

/// Review item 11: actix reads routes after routing, and asks this first.
#[test]
fn paths_that_may_be_routed_to_an_excluded_template() {
    let (monitor, _) = monitor(|b| {
        b.exclude_path("/files/{*rest}")
            .exclude_path("/n/{id:\\d+}/x")
            .exclude_path("/a/{x}.txt")
    });
    for path in [
        "/health/db",
        "/health/live",
        "/health/",
        "/files/a/b/c",
        "/n/12/x",
        "/n/12/y/z",
        "/a/report.txt",
        "/h%65alth/db",
    ] {
        assert!(monitor.may_route_to_excluded_template(path), "{path}");
    }
    for path in [
        "/users/42",
        "/health",
        "/healthz/db",
        "/health/db/more",
        "/files",
        "/n",
        "/a/b/c",
        "/",
    ] {
        assert!(!monitor.may_route_to_excluded_template(path), "{path}");
    }
    let (monitor, _) = self::monitor(|b| b.monitor_own_endpoints(true));
    assert!(!monitor.may_route_to_excluded_template("/health/db"));
    assert!(!monitor.may_route_to_excluded_template("/h%65alth/db"));
}

#[test]
fn path_prefixes_are_excluded() {
    let (monitor, _) = monitor(|b| b.exclude_path("/internal/*"));
    assert!(monitor.is_excluded("/internal/metrics/x", None));
    assert!(monitor.is_excluded("/internal/", Some("/internal/{*rest}")));
    assert!(!monitor.is_excluded("/internals", None));
    assert!(!monitor.is_excluded("/users/1", Some("/users/{id}")));
}

#[test]
fn excluded_statuses_are_not_recorded() {
    let (monitor, sink) = monitor(|b| b.exclude_status(404));
    for status in [404, 200, 404] {
        let mut flight = monitor.begin(start(b"GET", "/x", Some("/x"))).unwrap();
        flight.set_status(status);
        flight.complete();
    }
    assert_eq!(sink.started(), 3);
    assert_eq!(sink.requests().len(), 1);
    assert_eq!(monitor.in_flight(), 0);
}

#[test]
fn a_drop_before_the_head_is_a_499_disconnect_and_not_an_error() {
    let (monitor, sink) = monitor(|b| b);
    drop(
        monitor
            .begin(start(b"GET", "/slow", Some("/slow")))
            .unwrap(),
    );
    let p = &sink.requests()[0];
    assert_eq!(
        (p.status_code, p.disconnected),
        (CLIENT_CLOSED_REQUEST, true)
    );
    assert!(sink.errors().is_empty());
    assert_eq!(monitor.in_flight(), 0);
}

#[test]
fn a_drop_mid_body_keeps_the_status() {
    let (monitor, sink) = monitor(|b| b);
    let mut flight = monitor
        .begin(start(b"GET", "/stream", Some("/stream")))
        .unwrap();
    flight.set_status(200);
    drop(flight);
    let p = &sink.requests()[0];
    assert_eq!((p.status_code, p.disconnected), (200, true));
}

/// Regression (review item 9): a body that failed was recorded as a normal completion.
#[test]
fn a_body_error_is_an_error_point_with_its_status_and_not_a_disconnect() {
    let (monitor, sink) = monitor(|b| b);
    let mut flight = Flight::from_start(monitor.begin(start(b"GET", "/s", Some("/s"))));
    let mut body = flight.response(200);
    body.body_bytes(8);
    assert!(
        sink.requests().is_empty(),
        "not recorded before the body ends"
    );
    body.body_failed();
    body.body_failed();
    body.complete();
    drop(body);
    let points = sink.requests();
    assert_eq!(points.len(), 1, "recorded exactly once");
    let p = &points[0];
    assert_eq!(
        (p.status_code, p.disconnected, p.response_body_bytes),
        (200, false, 8)
    );
    let errors = sink.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error_code, "body_error");
    assert_eq!(monitor.in_flight(), 0);
    // A code the handler attached names the error, as it does for a panic.
    let mut flight = monitor.begin(start(b"GET", "/s", Some("/s"))).unwrap();
    flight.in_scope(|| {
        PointHandle::current().unwrap().error_code("E_UPSTREAM");
    });
    flight.set_status(200);
    flight.body_failed();
    assert_eq!(sink.errors()[1].error_code, "E_UPSTREAM");
}

#[test]
fn a_panic_in_scope_is_a_500_with_error_code_panic() {
    let (monitor, sink) = monitor(|b| b);
    let mut flight = monitor.begin(start(b"GET", "/p", Some("/p"))).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        flight.in_scope(|| panic!("boom"));
    }));
    assert!(caught.is_err());
    drop(flight); // dropped after the unwinding, as tokio does with a panicked task
    let p = &sink.requests()[0];
    assert_eq!((p.status_code, p.disconnected), (500, false));
    assert_eq!(sink.errors()[0].error_code, "panic");
}

#[test]
fn classification_and_error_codes() {
    let (monitor, sink) = monitor(|b| b);
    let run = |status: u16, code: Option<&str>| {
        let mut flight = monitor.begin(start(b"POST", "/o", Some("/o"))).unwrap();
        flight.in_scope(|| {
            if let Some(code) = code {
                PointHandle::current().unwrap().error_code(code);
            }
        });
        flight.set_status(status);
        flight.complete();
    };
    run(200, None);
    run(404, None);
    run(503, None);
    run(200, Some("E42"));
    let codes: Vec<String> = sink.errors().into_iter().map(|e| e.error_code).collect();
    assert_eq!(codes, ["503", "E42"]);

    let (monitor, sink) = self::monitor(|b| {
        b.classify_errors(|p: &RequestPoint<'_>, _code: Option<&str>| p.status_code >= 400)
    });
    let mut flight = monitor.begin(start(b"GET", "/x", Some("/x"))).unwrap();
    flight.set_status(404);
    flight.complete();
    assert_eq!(sink.errors()[0].error_code, "404");
}

#[test]
fn handler_tags_and_fields_reach_the_point() {
    let (monitor, sink) = monitor(|b| b);
    let mut flight = monitor.begin(start(b"GET", "/u", Some("/u"))).unwrap();
    let id = flight.request_id();
    flight.in_scope(|| {
        let handle = PointHandle::current().unwrap();
        assert_eq!(handle.request_id(), id);
        handle
            .tag("handler_id", "u")
            .field("rows", 3u32)
            .field("ratio", 0.5);
    });
    flight.set_status(200);
    flight.complete();
    let p = &sink.requests()[0];
    assert_eq!(p.tag("handler_id"), Some("u"));
    assert_eq!(p.field("rows"), Some(&FieldValue::UInt(3)));
    assert_eq!(p.field("ratio"), Some(&FieldValue::Float(0.5)));
}

#[test]
fn bodies_that_http_forbids_complete_at_the_head() {
    let (monitor, _) = monitor(|b| b);
    let mut head = monitor.begin(start(b"HEAD", "/", Some("/"))).unwrap();
    head.set_status(200);
    assert!(!head.response_has_body());
    for (status, has_body) in [
        (200, true),
        (204, false),
        (304, false),
        (101, false),
        (500, true),
    ] {
        let mut flight = monitor.begin(start(b"GET", "/", Some("/"))).unwrap();
        flight.set_status(status);
        assert_eq!(flight.response_has_body(), has_body, "{status}");
        flight.complete();
    }
    head.complete();
}

#[test]
fn builder_refuses_bad_values_with_a_reason() {
    let fails = |b: MonitorBuilder| b.build().unwrap_err();
    let err = fails(Monitor::builder("s").namespace("my-app"));
    assert!(err.to_string().contains("my-app"), "{err}");
    assert_eq!(
        (err.kind(), err.setting()),
        (ConfigErrorKind::InvalidName, "namespace")
    );
    for buckets in [&[1.0, 0.5][..], &[], &[f64::NAN]] {
        let err = fails(Monitor::builder("s").buckets(buckets));
        assert_eq!(err.setting(), "buckets", "{err}");
    }
    assert_eq!(
        fails(Monitor::builder("s").label_tag("__x")).kind(),
        ConfigErrorKind::InvalidName
    );
    let mut b = Monitor::builder("s");
    for i in 0..MAX_LABEL_TAGS {
        b = b.label_tag(format!("t{i}"));
    }
    let err = fails(b.label_tag("one_more"));
    assert!(err.to_string().contains("at most"), "{err}");
    assert_eq!(err.kind(), ConfigErrorKind::OutOfRange);
}

#[derive(Debug)]
struct Panicky {
    started: bool,
    record: bool,
    finished: bool,
}

impl Sink for Panicky {
    fn request_started(&self, _: Method) {
        assert!(!self.started, "sink panics in request_started");
    }
    fn record_request(&self, _: &RequestPoint<'_>) {
        assert!(!self.record, "sink panics in record_request");
    }
    fn request_finished(&self, _: Method) {
        assert!(!self.finished, "sink panics in request_finished");
    }
}

/// Regression (review item 10): a panicking sink or classifier aborted the process, because
/// user code runs inside `InFlight::drop`, possibly while a handler's panic unwinds.
#[test]
fn panicking_sinks_and_classifiers_are_contained_and_counted() {
    let memory = Arc::new(MemorySink::new(100));
    let monitor = Monitor::builder("svc")
        .sink(Arc::new(Panicky {
            started: true,
            record: true,
            finished: true,
        }))
        .sink(memory.clone())
        .classify_errors(|point: &RequestPoint<'_>, _: Option<&str>| {
            assert!(point.status_code != 503, "classifier panics");
            point.status_code >= 500
        })
        .build()
        .unwrap();
    // A handler that panics: the flight records while the panic unwinds.
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _flight = monitor.begin(start(b"GET", "/p", Some("/p"))).unwrap();
        panic!("handler panics");
    }));
    assert!(unwound.is_err());
    for status in [200, 503] {
        let mut flight = monitor.begin(start(b"GET", "/p", Some("/p"))).unwrap();
        flight.set_status(status);
        flight.complete();
    }
    assert_eq!(monitor.in_flight(), 0);
    // The sink after the panicking one got every point and every call.
    let points = memory.requests();
    assert_eq!(
        points.iter().map(|p| p.status_code).collect::<Vec<_>>(),
        [500, 200, 503]
    );
    assert_eq!(memory.started(), 3);
    // The 503's classifier panicked: not an error point; the panic's 500 is one.
    assert_eq!(memory.errors().len(), 1);
    let metrics = monitor.render_metrics().unwrap();
    assert!(
        metrics.contains(r#"vitalsign_sink_panics_total{sink="Panicky"} 9"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"vitalsign_sink_panics_total{sink="error_classifier"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"vitalsign_sink_panics_total{sink="MemorySink"} 0"#));
}

/// Regression (review item 8): `draining` and `in_flight` were read and written with
/// orderings that let both sides see stale values, so `shutdown(deadline)` could wait the
/// whole deadline. 1 000 shutdowns race a request finishing at that moment.
#[test]
fn a_shutdown_racing_the_last_request_never_waits_for_its_deadline() {
    use std::sync::atomic::AtomicUsize;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let deadline = Duration::from_secs(10);
    for round in 0..1000 {
        let builder = Monitor::builder("svc");
        #[cfg(feature = "prometheus")]
        let builder = builder.without_prometheus();
        let monitor = builder.build().unwrap();
        let flight = monitor.begin(start(b"GET", "/", Some("/"))).unwrap();
        let ready = Arc::new(AtomicUsize::new(0));
        let finisher = {
            let ready = Arc::clone(&ready);
            std::thread::spawn(move || {
                let mut flight = flight;
                ready.fetch_add(1, Ordering::SeqCst);
                while ready.load(Ordering::SeqCst) < 2 {
                    std::hint::spin_loop();
                }
                // Finish at a different moment of the shutdown each round.
                for _ in 0..(round % 100) * 50 {
                    std::hint::spin_loop();
                }
                flight.complete();
            })
        };
        ready.fetch_add(1, Ordering::SeqCst);
        while ready.load(Ordering::SeqCst) < 2 {
            std::hint::spin_loop();
        }
        let report = runtime.block_on(monitor.shutdown(deadline));
        finisher.join().unwrap();
        assert!(
            report.waited < deadline,
            "round {round}: shutdown missed the last request's wake-up: {report:?}"
        );
        assert_eq!(report.cut, 0);
    }
}

/// Regression (review item 4): `global_label("le", …)` was accepted and corrupted every
/// histogram line; label sources could share a name depending on call order;
/// `exclude_status(700)` silently excluded 599.
#[test]
fn build_validates_the_whole_configuration_in_any_order() {
    let fails = |b: MonitorBuilder| b.build().unwrap_err();
    for reserved in RESERVED_LABEL_NAMES {
        let err = fails(Monitor::builder("s").global_label(*reserved, "x"));
        assert_eq!(
            err.kind(),
            ConfigErrorKind::ReservedName,
            "{reserved}: {err}"
        );
        assert_eq!(err.setting(), "global_label");
        let err = fails(Monitor::builder("s").label_tag(*reserved));
        assert_eq!(
            err.kind(),
            ConfigErrorKind::ReservedName,
            "{reserved}: {err}"
        );
        let err = fails(Monitor::builder("s").path_label(*reserved));
        assert_eq!(
            err.kind(),
            ConfigErrorKind::ReservedName,
            "{reserved}: {err}"
        );
        let err = fails(Monitor::builder("s").label_fn(*reserved, |_| None));
        assert_eq!(
            err.kind(),
            ConfigErrorKind::ReservedName,
            "{reserved}: {err}"
        );
    }
    // Every pair of label sources, in both orders, refuses a shared name.
    type Source = fn(MonitorBuilder) -> MonitorBuilder;
    let sources: [(&str, Source); 5] = [
        ("global_label", |b| b.global_label("tenant", "a")),
        ("label_tag", |b| b.label_tag("tenant")),
        ("path_label", |b| b.path_label("tenant")),
        ("path_label_on", |b| {
            b.path_label_on(&["/t/{tenant}"], "tenant")
        }),
        ("label_fn", |b| b.label_fn("tenant", |_| None)),
    ];
    for (first_name, first) in sources {
        for (second_name, second) in sources {
            let err = fails(second(first(Monitor::builder("s"))));
            assert_eq!(
                err.kind(),
                ConfigErrorKind::DuplicateName,
                "{first_name} then {second_name}: {err}"
            );
            assert!(err.to_string().contains("tenant"), "{err}");
        }
        assert!(first(Monitor::builder("s")).build().is_ok(), "{first_name}");
    }
    for status in [0, 99, 600, 700, u16::MAX] {
        let err = fails(Monitor::builder("s").exclude_status(status));
        assert_eq!(err.kind(), ConfigErrorKind::OutOfRange, "{status}");
        assert!(err.to_string().contains(&status.to_string()), "{err}");
    }
    // 599 is a valid status: excluding it works, and 700 never excluded it.
    let (monitor, sink) = monitor(|b| b.exclude_status(599));
    let mut flight = monitor.begin(start(b"GET", "/", Some("/"))).unwrap();
    flight.set_status(599);
    flight.complete();
    assert!(sink.requests().is_empty());
    let err = fails(Monitor::builder("s").token(""));
    assert_eq!(
        (err.kind(), err.setting()),
        (ConfigErrorKind::InvalidValue, "token")
    );
    let err = fails(
        Monitor::builder("s")
            .task("db", crate::health::Task::new())
            .check(
                "db",
                crate::health::Check::new(|| async { Ok::<(), String>(()) }),
            ),
    );
    assert_eq!(
        (err.kind(), err.setting()),
        (ConfigErrorKind::DuplicateName, "check")
    );
    let err = fails(Monitor::builder("s").task("live", crate::health::Task::new()));
    assert_eq!(err.kind(), ConfigErrorKind::InvalidName);
}
