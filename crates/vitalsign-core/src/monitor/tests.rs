//! Tests of the recording pipeline and of a [`Flight`]'s steps, and helpers for the other
//! modules' tests.

use super::*;

use crate::point::CLIENT_CLOSED_REQUEST;
use crate::{FieldValue, MemorySink, Method, PointHandle, RequestPoint};

pub(super) fn monitor(
    build: impl FnOnce(MonitorBuilder) -> MonitorBuilder,
) -> (Monitor, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new(1000));
    let monitor = build(Monitor::builder("svc").sink(sink.clone()))
        .build()
        .unwrap();
    (monitor, sink)
}

pub(super) fn start<'a>(
    method: &'a [u8],
    path: &'a str,
    route: Option<&'a str>,
) -> RequestStart<'a> {
    RequestStart::new(method, path).with_route(route)
}

#[test]
fn a_completed_request_becomes_one_point() {
    let (monitor, sink) = monitor(|b| b);
    let mut flight = monitor
        .begin(&start(b"GET", "/users/7", Some("/users/{id}")).with_request_id(Some(b"rid-1")))
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
fn excluded_statuses_are_not_recorded() {
    let (monitor, sink) = monitor(|b| b.exclude_status(404));
    for status in [404, 200, 404] {
        let mut flight = monitor.begin(&start(b"GET", "/x", Some("/x"))).unwrap();
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
            .begin(&start(b"GET", "/slow", Some("/slow")))
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
        .begin(&start(b"GET", "/stream", Some("/stream")))
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
    let mut flight = Flight::from_start(monitor.begin(&start(b"GET", "/s", Some("/s"))));
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
    let mut flight = monitor.begin(&start(b"GET", "/s", Some("/s"))).unwrap();
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
    let mut flight = monitor.begin(&start(b"GET", "/p", Some("/p"))).unwrap();
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
        let mut flight = monitor.begin(&start(b"POST", "/o", Some("/o"))).unwrap();
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
    let mut flight = monitor.begin(&start(b"GET", "/x", Some("/x"))).unwrap();
    flight.set_status(404);
    flight.complete();
    assert_eq!(sink.errors()[0].error_code, "404");
}

#[test]
fn handler_tags_and_fields_reach_the_point() {
    let (monitor, sink) = monitor(|b| b);
    let mut flight = monitor.begin(&start(b"GET", "/u", Some("/u"))).unwrap();
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
    let mut head = monitor.begin(&start(b"HEAD", "/", Some("/"))).unwrap();
    head.set_status(200);
    assert!(!head.response_has_body());
    for (status, has_body) in [
        (200, true),
        (204, false),
        (304, false),
        (101, false),
        (500, true),
    ] {
        let mut flight = monitor.begin(&start(b"GET", "/", Some("/"))).unwrap();
        flight.set_status(status);
        assert_eq!(flight.response_has_body(), has_body, "{status}");
        flight.complete();
    }
    head.complete();
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
        let _flight = monitor.begin(&start(b"GET", "/p", Some("/p"))).unwrap();
        panic!("handler panics");
    }));
    assert!(unwound.is_err());
    for status in [200, 503] {
        let mut flight = monitor.begin(&start(b"GET", "/p", Some("/p"))).unwrap();
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
    #[cfg(feature = "prometheus")]
    {
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
}

/// The response head is timed only when some sink reads its time ([`Sink::needs_head_time`]):
/// a sink that says it does not (as Prometheus without its head histogram, `/stats`, the push
/// sinks) gets `None`; a sink that keeps the default, or Prometheus with the head histogram on,
/// makes the monitor time it.
#[test]
fn the_response_head_is_timed_only_for_a_sink_that_reads_it() {
    #[derive(Debug, Default)]
    struct Heads(std::sync::Mutex<Vec<Option<f64>>>, bool);
    impl Sink for Heads {
        fn needs_head_time(&self) -> bool {
            self.1
        }
        fn record_request(&self, point: &RequestPoint<'_>) {
            self.0.lock().unwrap().push(point.head_time);
        }
    }
    let heads_after = |reads: bool, head_histogram: bool| {
        let sink = Arc::new(Heads(Default::default(), reads));
        let builder = Monitor::builder("svc").sink(sink.clone());
        #[cfg(feature = "prometheus")]
        let builder = builder.response_head_histogram(head_histogram);
        #[cfg(not(feature = "prometheus"))]
        let _ = head_histogram;
        let monitor = builder.build().unwrap();
        let mut flight = monitor.begin(&start(b"GET", "/a", Some("/a"))).unwrap();
        flight.set_status(200);
        flight.complete();
        let heads = sink.0.lock().unwrap().clone();
        heads
    };
    assert!(matches!(heads_after(true, false)[..], [Some(t)] if t >= 0.0));
    assert_eq!(heads_after(false, false), [None]);
    #[cfg(feature = "prometheus")]
    assert!(matches!(heads_after(false, true)[..], [Some(t)] if t >= 0.0));
}
