//! The classic text format, byte for byte: a fixed set of points rendered and compared with
//! the text the sink rendered before OpenMetrics and exemplars existed
//! (`testdata/classic.prom`, written by the code of that time).

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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/prometheus/testdata/classic.prom");
    if std::env::var_os("VITALSIGN_WRITE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap();
    assert_eq!(steady(&text), steady(&expected));
}

/// The text without the families that change on their own (process and runtime figures, with
/// the `stats` feature).
pub(super) fn steady(text: &str) -> String {
    text.split_inclusive("\n\n")
        .filter(|block| {
            let name = block.lines().next().unwrap_or_default();
            !["# HELP process_", "# HELP tokio_", "# TYPE process_", "# TYPE tokio_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
        })
        .collect()
}
