use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use super::worker::{Message, Record};
use super::*;
use crate::adapter::{self, RequestStart};
use crate::{Monitor, PointHandle};

/// Attribute set (as text) → request count, of the latest export's duration histogram.
type Counts = BTreeMap<BTreeMap<String, String>, u64>;

/// An exporter keeping the latest duration histogram it was given (cumulative).
#[derive(Clone, Debug, Default)]
struct Latest(Arc<Mutex<Counts>>);

impl PushMetricExporter for Latest {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        for scope in metrics.scope_metrics() {
            for metric in scope.metrics().filter(|m| m.name() == DURATION) {
                if let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data() {
                    let mut latest = self.0.lock().unwrap();
                    latest.clear();
                    for point in h.data_points() {
                        let set = point
                            .attributes()
                            .map(|kv| {
                                let value = match &kv.value {
                                    Value::I64(i) => i.to_string(),
                                    other => other.as_str().into_owned(),
                                };
                                (kv.key.to_string(), value)
                            })
                            .collect();
                        latest.insert(set, point.count());
                    }
                }
            }
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

fn provider() -> (SdkMeterProvider, Latest) {
    let latest = Latest::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(latest.clone()).build())
        .build();
    (provider, latest)
}

fn request(monitor: &Monitor, route: &str, status: u16, code: Option<&str>) {
    let mut flight = adapter::begin(
        monitor,
        RequestStart::new(b"GET", route).with_route(Some(route)),
    );
    if let Some(code) = code {
        flight.in_scope(|| {
            PointHandle::current().unwrap().error_code(code);
        });
    }
    let mut flight = flight.response(status);
    flight.body_starts(true);
    flight.complete();
}

fn set(
    route: &str,
    status: u16,
    error_type: Option<&str>,
    scheme: &str,
) -> BTreeMap<String, String> {
    let mut set = BTreeMap::from([
        ("http.request.method".to_owned(), "GET".to_owned()),
        ("http.route".to_owned(), route.to_owned()),
        ("http.response.status_code".to_owned(), status.to_string()),
        ("url.scheme".to_owned(), scheme.to_owned()),
    ]);
    if let Some(error_type) = error_type {
        set.insert("error.type".to_owned(), error_type.to_owned());
    }
    set
}

/// Two OpenTelemetry sinks on one monitor each get every request with its own `error.type`
/// (the request a sink is recording waits per sink, on the thread, for `record_error`).
#[test]
fn two_sinks_on_one_monitor_each_record_every_request_with_its_error_type() {
    let (provider_a, latest_a) = provider();
    let (provider_b, latest_b) = provider();
    let a = OtelSink::meter_provider(&provider_a).build().unwrap();
    let b = OtelSink::meter_provider(&provider_b)
        .url_scheme("https")
        .build()
        .unwrap();
    let monitor = Monitor::builder("shop")
        .sink(a.clone())
        .sink(b.clone())
        .build()
        .unwrap();
    request(&monitor, "/ok", 200, None);
    request(&monitor, "/ok", 200, None);
    request(&monitor, "/fails", 503, None);
    request(&monitor, "/coded", 200, Some("E42"));
    for (sink, provider, latest, scheme) in [
        (&a, &provider_a, &latest_a, "http"),
        (&b, &provider_b, &latest_b, "https"),
    ] {
        sink.flush().unwrap().blocking_recv().unwrap();
        provider.force_flush().unwrap();
        let want = Counts::from([
            (set("/ok", 200, None, scheme), 2),
            (set("/fails", 503, Some("503"), scheme), 1),
            (set("/coded", 200, Some("E42"), scheme), 1),
        ]);
        assert_eq!(*latest.0.lock().unwrap(), want);
        assert_eq!(
            sink.report().map(|r| (r.sent, r.dropped, r.queued)),
            Some((4, 0, 0))
        );
    }
}

/// A request recorded outside a monitor (no `request_finished`) is queued when the next one
/// comes, not lost.
#[test]
fn a_request_without_request_finished_is_queued_with_the_next() {
    let (provider, latest) = provider();
    let sink = OtelSink::meter_provider(&provider).build().unwrap();
    let id = crate::RequestId::EMPTY;
    let first = RequestPoint::new("shop", "/a", Method::Get, 200, &id);
    let second = RequestPoint::new("shop", "/b", Method::Get, 200, &id);
    sink.record_request(&first);
    sink.record_request(&second);
    sink.request_started(Method::Get);
    sink.request_finished(Method::Get);
    sink.flush().unwrap().blocking_recv().unwrap();
    provider.force_flush().unwrap();
    let want = Counts::from([
        (set("/a", 200, None, "http"), 1),
        (set("/b", 200, None, "http"), 1),
    ]);
    assert_eq!(*latest.0.lock().unwrap(), want);
}

/// A sink whose queue nobody drains (no recorder thread): the test holds the other end.
fn undrained(capacity: usize) -> (Arc<OtelSink>, std::sync::mpsc::Receiver<Message>) {
    use opentelemetry::metrics::MeterProvider as _;
    let provider = SdkMeterProvider::builder().build();
    let (queue, received) = std::sync::mpsc::sync_channel(capacity);
    let sink = OtelSink {
        id: u64::MAX,
        queue,
        recorder: std::thread::current(),
        strings: OnceCache::new(16),
        active: Arc::default(),
        accepted: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        recorded: Arc::default(),
        delivery: None,
        _active_requests: provider
            .meter("test")
            .i64_observable_up_down_counter(ACTIVE_REQUESTS)
            .build(),
    };
    (Arc::new(sink), received)
}

/// A full queue refuses the requests that do not fit, counted as dropped, without waiting
/// for the recorder thread (which never comes here); what it took is intact, the route's
/// text shared, not copied, from the second request on.
#[test]
fn a_full_queue_drops_and_counts_without_waiting() {
    let (sink, received) = undrained(2);
    let monitor = Monitor::builder("shop").sink(sink.clone()).build().unwrap();
    for _ in 0..5 {
        request(&monitor, "/ok", 200, None);
    }
    assert_eq!(
        sink.report().map(|r| (r.sent, r.dropped, r.queued)),
        Some((0, 3, 2))
    );
    let taken: Vec<Record> = received
        .try_iter()
        .map(|message| match message {
            Message::Record(record) => record,
            Message::Flush(_) => panic!("no flush was asked"),
        })
        .collect();
    assert_eq!(taken.len(), 2);
    assert!(taken
        .iter()
        .all(|r| &*r.route == "/ok" && r.status == 200 && r.error_type.is_none()));
    assert!(Arc::ptr_eq(&taken[0].route, &taken[1].route));
}
