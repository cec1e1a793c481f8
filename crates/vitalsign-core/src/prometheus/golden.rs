//! The classic text format, byte for byte: a fixed set of points rendered and compared with
//! the text the sink rendered before OpenMetrics and exemplars existed
//! (`testdata/classic.prom`, written by the code of that time), although most points now carry
//! sampled traces.

use crate::prometheus::PrometheusSink;
use crate::{ErrorPoint, Method, Monitor, RequestId, RequestPoint, Sink};

/// A monitor with every optional histogram, a global label and a label tag, fed fixed points.
pub(super) fn fed_monitor() -> Monitor {
    let monitor = Monitor::builder("golden")
        .global_label("region", "eu\"1\\")
        .label_tag("tier")
        .response_head_histogram(true)
        .response_size_histogram(true)
        .request_size_histogram(true)
        .build()
        .unwrap();
    feed(monitor.prometheus().unwrap());
    monitor
}

fn feed(sink: &PrometheusSink) {
    let id = RequestId::from_header(Some(b"golden-1")).unwrap();
    let tags = [crate::point::Tag {
        key: "tier".into(),
        value: "gold\nplus".to_owned(),
    }];
    for (i, (route, method, status, seconds)) in [
        ("/users/{id}", Method::Get, 200, 0.0042),
        ("/users/{id}", Method::Get, 200, 0.7),
        ("/users/{id}", Method::Post, 201, 0.031),
        ("/orders", Method::Get, 500, 2.2),
        ("/orders", Method::Delete, 404, 12.5),
        ("unmatched", Method::Other, 499, 0.000_3),
    ]
    .into_iter()
    .enumerate()
    {
        let mut point = RequestPoint::new("golden", route, method, status, &id);
        point.execution_time = seconds;
        point.head_time = Some(seconds / 2.0);
        point.response_body_bytes = 100 * i as u64;
        point.request_body_bytes = 7 * i as u64;
        point.disconnected = status == 499;
        if i % 2 == 0 {
            point.tags = &tags;
        }
        // Traces (sampled or not) change nothing in the classic text: the fixture predates them.
        point.trace = crate::TraceContext::new([i as u8 + 1; 16], [7; 8], (i % 3 != 0) as u8);
        sink.request_started(method);
        sink.record_request(&point);
        if status >= 500 {
            sink.record_error(&ErrorPoint::new(&point, "boom"));
        }
        if i < 2 {
            sink.request_finished(method);
        }
    }
    sink.health_changed("db", crate::health::Level::Degraded);
    sink.upgraded_session_started("/ws");
    sink.upgraded_session_ended("/ws", std::time::Duration::from_millis(1500));
}

/// The classic rendering of the fixed points is what it was before the change.
#[test]
fn the_classic_text_is_unchanged() {
    let monitor = fed_monitor();
    let text = monitor.render_metrics().unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/prometheus/testdata/classic.prom"
    );
    if std::env::var_os("VITALSIGN_WRITE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap();
    assert_eq!(steady(&text), steady(&expected));
}

/// The text without the families that change on their own (process and runtime figures, with
/// the `stats` feature; the time of the monitor's start annotation) and without the panic
/// counter of the `stats` feature's own sink.
pub(super) fn steady(text: &str) -> String {
    text.split_inclusive("\n\n")
        .filter(|block| {
            let name = block.lines().next().unwrap_or_default();
            ![
                "# HELP process_",
                "# HELP tokio_",
                "# TYPE process_",
                "# TYPE tokio_",
                "# HELP vitalsign_annotation_last_timestamp_seconds ",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        })
        .flat_map(|block| block.split_inclusive('\n'))
        .filter(|line| !line.contains("sink=\"RequestStats\""))
        .collect()
}

/// Requests through the adapter API with `traceparent` headers: the sampled one's trace is the
/// exemplar of its bucket in OpenMetrics (never in the classic text); unsampled and invalid
/// ones leave none; the trace id is the request id unless `x-request-id` was sent.
#[test]
fn sampled_traces_become_exemplars_and_request_ids() {
    use crate::adapter::{self, RequestStart};
    use crate::prometheus::ExpositionFormat;
    use std::sync::Arc;

    let sink = Arc::new(crate::MemorySink::new(16));
    let monitor = Monitor::builder("ex").sink(sink.clone()).build().unwrap();
    let send =
        |route: &'static str, traceparent: &'static str, request_id: Option<&'static [u8]>| {
            let start = RequestStart::new(b"GET", route)
                .with_route(Some(route))
                .with_request_id(request_id)
                .with_traceparent(Some(traceparent.as_bytes()));
            adapter::begin(&monitor, start).response(200).complete();
        };
    let sampled = "4bf92f3577b34da6a3ce929d0e0e4736";
    send(
        "/a",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        None,
    );
    send(
        "/b",
        "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-00f067aa0ba902b7-00",
        Some(b"mine"),
    );
    send(
        "/c",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        None,
    );

    let requests = sink.requests();
    assert_eq!(requests[0].request_id.as_str(), sampled);
    assert_eq!(requests[0].trace.unwrap().trace_id_hex().as_str(), sampled);
    assert_eq!(requests[1].request_id.as_str(), "mine");
    assert!(!requests[1].trace.unwrap().sampled());
    assert_eq!(requests[2].trace, None);
    assert_ne!(requests[2].request_id.as_str(), "0".repeat(32));

    let open = String::from_utf8(
        monitor
            .render_metrics_as(ExpositionFormat::OpenMetrics)
            .unwrap(),
    )
    .unwrap();
    let exemplars: Vec<&str> = open.lines().filter(|l| l.contains(" # {")).collect();
    assert_eq!(exemplars.len(), 1, "{open}");
    let line = exemplars[0];
    assert!(
        line.starts_with("http_server_request_duration_seconds_bucket{")
            && line.contains("http_route=\"/a\""),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "# {{trace_id=\"{sampled}\",span_id=\"00f067aa0ba902b7\"}} "
        )),
        "{line}"
    );
    // The exemplar sits on the first bucket its value fits in.
    let le: f64 = line
        .split("le=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let value: f64 = line
        .split("} ")
        .nth(2)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let first = crate::DEFAULT_DURATION_BUCKETS
        .iter()
        .find(|b| value <= **b)
        .copied()
        .unwrap_or(f64::INFINITY);
    assert_eq!(le, first, "{line}");
    assert!(open.ends_with("# EOF\n"));
    assert!(!monitor.render_metrics().unwrap().contains(" # {"));
}
