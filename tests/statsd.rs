//! The StatsD sink's wire format, read by a real UDP listener on 127.0.0.1: prefix, DogStatsD
//! tags or tags folded into names, several metrics per datagram, exact counter sums, the
//! in-flight gauge sent by the flusher as an absolute value; and the aggregator's exact
//! figures, and its request path that allocates nothing for a known tag set.

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;

use common::{eventually, record};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demo::BOTH;
use tokio::net::UdpSocket;
use vitalsign::adapter::RequestStart;
use vitalsign::sinks::{PeriodAggregator, StatsdSink, TagStyle};
use vitalsign::{AggregatePoint, MemorySink, Monitor, Sink};

/// Collects datagrams from a UDP socket in the background.
struct Listener {
    addr: String,
    datagrams: Arc<Mutex<Vec<String>>>,
}

impl Listener {
    async fn start() -> Listener {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        let datagrams = Arc::new(Mutex::new(Vec::new()));
        let into = datagrams.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf).await {
                into.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        Listener { addr, datagrams }
    }

    fn lines(&self) -> Vec<String> {
        self.datagrams
            .lock()
            .unwrap()
            .iter()
            .flat_map(|d| d.lines().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }

    /// Sum of the counter lines whose name is `name` and whose text contains `contains`.
    fn counter_sum(&self, name: &str, contains: &str) -> i64 {
        self.lines()
            .iter()
            .filter(|l| {
                l.starts_with(&format!("{name}:")) && l.contains("|c") && l.contains(contains)
            })
            .map(|l| {
                l[name.len() + 1..]
                    .split('|')
                    .next()
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            })
            .sum()
    }

    /// The values of the gauge lines named `name`, in arrival order.
    fn gauges(&self, name: &str) -> Vec<String> {
        self.lines()
            .iter()
            .filter(|l| l.starts_with(&format!("{name}:")) && l.contains("|g"))
            .map(|l| l[name.len() + 1..].split('|').next().unwrap().to_owned())
            .collect()
    }

    /// Waits until the last `n` values of gauge `name` (at least `n` of them since `since`
    /// gauges had arrived) all read `value`.
    async fn wait_gauge(&self, name: &str, since: usize, n: usize, value: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let gauges = self.gauges(name);
            let recent = &gauges[since.min(gauges.len())..];
            if recent.len() >= n && recent[recent.len() - n..].iter().all(|v| v == value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: wanted the last {n} (of those since {since}) at {value}: {gauges:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_counter(&self, name: &str, contains: &str, want: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.counter_sum(name, contains) != want {
            assert!(
                Instant::now() < deadline,
                "{name} ~ {contains}: {} != {want}\n{:#?}",
                self.counter_sum(name, contains),
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn statsd(addr: &str, style: TagStyle) -> Arc<StatsdSink> {
    StatsdSink::udp(addr)
        .prefix("shop")
        .tag_style(style)
        .flush_period(Duration::from_millis(50))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dogstatsd_counters_timers_and_gauge_from_both_frameworks() {
    for framework in BOTH {
        let listener = Listener::start().await;
        let sink = statsd(&listener.addr, TagStyle::DogStatsd);
        let builder = app::with_sinks(
            app::monitor_builder().unwrap(),
            vec![sink.clone() as Arc<dyn Sink>],
        );
        let ctx = demo::start(framework, builder).await;
        for id in 0..20 {
            assert_eq!(ctx.server.get(&format!("/users/{id}")).await.0, 200);
        }
        for _ in 0..3 {
            assert_eq!(ctx.server.get("/error").await.0, 500);
        }
        listener
            .wait_counter("shop.requests", "route:/users/{id}", 20)
            .await;
        listener
            .wait_counter("shop.requests", "status_code:500", 3)
            .await;
        listener
            .wait_counter("shop.errors", "error_code:1001", 3)
            .await;
        let lines = listener.lines();
        let timer = lines
            .iter()
            .find(|l| l.starts_with("shop.execution_time:") && l.contains("|ms"))
            .unwrap_or_else(|| panic!("{framework:?}: no timer in {lines:#?}"));
        assert!(
            timer.contains("handler_id:get_user") || timer.contains("handler_id:error"),
            "{timer}"
        );
        assert!(timer.contains("#"), "DogStatsD tags: {timer}");
        // The in-flight gauge is an absolute value, and reads 0 once everything is done.
        listener.wait_gauge("shop.in_flight", 0, 2, "0").await;
        let lines = listener.lines();
        let gauges: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("shop.in_flight:"))
            .collect();
        assert!(
            gauges
                .iter()
                .all(|g| g.contains("|g") && !g.contains(":+") && !g.contains(":-")),
            "{gauges:?}"
        );
        // Batching: datagrams carry several metrics.
        let datagrams = listener.datagrams.lock().unwrap().clone();
        assert!(
            datagrams.iter().any(|d| d.lines().count() > 1),
            "{datagrams:#?}"
        );
        assert!(datagrams.iter().all(|d| d.len() <= 512));
        assert_eq!(sink.report().unwrap().dropped, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_statsd_folds_tags_into_names() {
    let listener = Listener::start().await;
    let monitor = Monitor::builder("plain")
        .sink(statsd(&listener.addr, TagStyle::InName))
        .build()
        .unwrap();
    for status in [200, 200, 503] {
        record(&monitor, b"POST", "/orders/{id}", status);
    }
    listener
        .wait_counter("shop.requests._orders__id_.POST.200", "", 2)
        .await;
    listener
        .wait_counter("shop.requests._orders__id_.POST.503", "", 1)
        .await;
    listener
        .wait_counter("shop.errors._orders__id_.POST.503.503", "", 1)
        .await;
    assert!(
        listener.lines().iter().all(|l| !l.contains("|#")),
        "no DogStatsD tags"
    );
}

/// Regression (review item 6): the in-flight gauge was sent on every start and finish, each
/// time with a value read from a counter other requests were changing; sent out of order (or
/// reordered on the way) the last one could read 1 while the service was idle, and stayed
/// so. The flusher now sends it on each flush: while a request is held open the daemon keeps
/// hearing 1, once it is done 0, whatever the racing requests in between did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_gauge_is_sent_on_each_flush_and_settles_at_zero() {
    let listener = Listener::start().await;
    let sink = statsd(&listener.addr, TagStyle::DogStatsd);
    let monitor = Monitor::builder("gauge")
        .sink(sink.clone())
        .build()
        .unwrap();
    let mut held = vitalsign::adapter::begin(
        &monitor,
        RequestStart::new(b"GET", "/held").with_route(Some("/held")),
    );
    listener.wait_gauge("shop.in_flight", 0, 3, "1").await;
    // Requests racing on four threads while one is held.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..100 {
                    record(&monitor, b"GET", "/race", 200);
                }
            });
        }
    });
    let since = listener.gauges("shop.in_flight").len();
    listener.wait_gauge("shop.in_flight", since, 3, "1").await;
    held.set_status(200);
    held.complete();
    let since = listener.gauges("shop.in_flight").len();
    listener.wait_gauge("shop.in_flight", since, 3, "0").await;
    listener
        .wait_counter("shop.requests", "route:/race", 400)
        .await;
    listener
        .wait_counter("shop.requests", "route:/held", 1)
        .await;
    // The request path sends its counter and timer only.
    let per_request = listener
        .lines()
        .iter()
        .filter(|l| l.contains("route:/race"))
        .count();
    assert_eq!(per_request, 2 * 400);
}

#[tokio::test]
async fn a_statsd_server_that_is_down_never_reaches_the_app() {
    // Nothing listens on this port: sends fail (or vanish), requests are unaffected.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = statsd(&format!("127.0.0.1:{port}"), TagStyle::DogStatsd);
    let monitor = Monitor::builder("down").sink(sink.clone()).build().unwrap();
    for _ in 0..100 {
        record(&monitor, b"GET", "/", 200);
    }
    // Every metric of the requests (a counter and a timer each) is sent or counted as dropped
    // (besides the flusher's gauges).
    eventually("the queue drains", || async {
        let report = sink.report().unwrap();
        report.queued == 0 && report.sent + report.dropped >= 100 * 2
    })
    .await;
}

/// A sink that keeps aggregates.
#[derive(Debug, Default)]
struct Aggregates(Mutex<Vec<Kept>>);

/// (series, tags, period start, count, min, max, sum)
type Kept = (String, BTreeMap<String, String>, u64, u64, f64, f64, f64);

impl Sink for Aggregates {
    fn record_request(&self, _point: &vitalsign::RequestPoint<'_>) {}
    fn record_aggregate(&self, p: &AggregatePoint<'_>) {
        let tags = p.tags.iter().cloned().collect();
        self.0.lock().unwrap().push((
            p.series.to_owned(),
            tags,
            p.period_start_unix_nanos,
            p.count,
            p.min,
            p.max,
            p.sum,
        ));
    }
}

/// The hour-long periods of these tests must not end while they run: within 5 s of the next
/// hour, wait until it has begun.
fn away_from_an_hour_boundary() {
    let into_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        % 3600.0;
    if into_hour > 3595.0 {
        std::thread::sleep(Duration::from_secs_f64(3600.5 - into_hour));
    }
}

#[test]
fn the_aggregator_is_exact_per_tag_set_and_period() {
    let period = Duration::from_secs(3600);
    away_from_an_hour_boundary();
    let aggregates = Arc::new(Aggregates::default());
    let raw = Arc::new(MemorySink::new(1000));
    let monitor = Monitor::builder("agg")
        .sink(PeriodAggregator::new(period, aggregates.clone()))
        .sink(raw.clone())
        .build()
        .unwrap();
    for (route, status, sleep_ms) in [
        ("/a", 200, 1),
        ("/a", 200, 3),
        ("/a", 500, 2),
        ("/b", 200, 5),
        ("/a", 200, 2),
    ] {
        let mut flight = vitalsign::adapter::begin(
            &monitor,
            RequestStart::new(b"GET", route).with_route(Some(route)),
        );
        std::thread::sleep(Duration::from_millis(sleep_ms));
        flight.set_status(status);
        flight.complete();
    }
    // Flush the monitor's aggregator (what shutdown does): the points of the period under way
    // go out, timestamped with its start.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let unix_nanos = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    };
    let before = unix_nanos();
    assert!(
        runtime
            .block_on(monitor.shutdown(Duration::from_secs(5)))
            .flushed
    );
    let after = unix_nanos();
    let mut got = aggregates.0.lock().unwrap().clone();
    got.sort_by(|a, b| {
        (&a.0, a.1.get("route"), a.1.get("status_code")).cmp(&(
            &b.0,
            b.1.get("route"),
            b.1.get("status_code"),
        ))
    });
    let points = raw.requests();
    let exec = |route: &str, status: u16| -> Vec<f64> {
        points
            .iter()
            .filter(|p| p.route == route && p.status_code == status)
            .map(|p| p.execution_time)
            .collect()
    };
    let period_ns = period.as_nanos() as u64;
    let expected_start = got[0].2;
    assert!(
        [
            before / period_ns * period_ns,
            after / period_ns * period_ns
        ]
        .contains(&expected_start),
        "{expected_start}: the period of the flush"
    );
    let mut expected = Vec::new();
    for (series, route, status, code) in [
        ("errors", "/a", 500, Some("500")),
        ("requests", "/a", 200, None),
        ("requests", "/a", 500, None),
        ("requests", "/b", 200, None),
    ] {
        let times = exec(route, status);
        let mut tags: BTreeMap<String, String> =
            [("service", "agg"), ("route", route), ("method", "GET")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        tags.insert("status_code".into(), status.to_string());
        if let Some(code) = code {
            tags.insert("error_code".into(), code.into());
        }
        let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = times.iter().cloned().fold(0.0, f64::max);
        let sum: f64 = times.iter().sum();
        expected.push((
            series.to_owned(),
            tags,
            expected_start,
            times.len() as u64,
            min,
            max,
            sum,
        ));
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(
            (&g.0, &g.1, g.2, g.3, g.4, g.5),
            (&e.0, &e.1, e.2, e.3, e.4, e.5)
        );
        assert!((g.6 - e.6).abs() < 1e-12, "sum {} vs {}", g.6, e.6);
    }
    assert_eq!(got[1].3, 3, "three 200s on /a in one point");
    assert_eq!(
        expected_start % period_ns,
        0,
        "timestamps floored to the period"
    );
}

/// Regression (review item 2): the aggregator built the tag set of every point (a vector of
/// owned strings) and took one mutex shared by all requests. A point of a tag set it has
/// seen, handler tags included, now allocates nothing, and neither does its error point.
#[test]
fn the_aggregator_records_a_known_tag_set_without_allocating() {
    away_from_an_hour_boundary();
    let aggregates = Arc::new(Aggregates::default());
    let aggregator = PeriodAggregator::new(Duration::from_secs(3600), aggregates.clone());
    let id = vitalsign::RequestId::EMPTY;
    let tags = [
        vitalsign::Tag {
            key: "tenant".into(),
            value: "acme".into(),
        },
        vitalsign::Tag {
            key: "plan".into(),
            value: "gold".into(),
        },
    ];
    let mut point =
        vitalsign::RequestPoint::new("alloc", "/users/{id}", vitalsign::Method::Get, 503, &id);
    point.execution_time = 0.01;
    point.start_unix_nanos = 1;
    point.tags = &tags;
    let error = vitalsign::ErrorPoint::new(&point, "E1");
    // First sight registers both tag sets.
    aggregator.record_request(&point);
    aggregator.record_error(&error);
    const POINTS: u64 = 10_000;
    let info = allocation_counter::measure(|| {
        for _ in 0..POINTS {
            aggregator.record_request(&point);
            aggregator.record_error(&error);
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    drop(aggregator.flush());
    let counts: u64 = aggregates.0.lock().unwrap().iter().map(|k| k.3).sum();
    assert_eq!(counts, 2 * (POINTS + 1));
}

/// A write to `POST /annotations/deploys` arrives at a real UDP listener as a DogStatsD event,
/// `_e{<title len>,<text len>}:<title>|<text>|d:<timestamp>|#tags`, from both frameworks; with
/// tags folded into names (plain StatsD, which has no events) nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_arrive_as_dogstatsd_events_and_not_in_plain_statsd() {
    let options = app::HealthOptions {
        token: Some("s3cret".to_owned()),
        ..app::HealthOptions::default()
    };
    let body = serde_json::json!({
        "title": "v1.4.2 rolled out",
        "description": "canary first\nthen everywhere",
        "source": "ci",
        "links": [{"rel": "build", "href": "https://ci.example.com/builds/812"}],
        "start": 1_767_225_600,
    })
    .to_string();
    let text = "canary first\\nthen everywhere\\nbuild: https://ci.example.com/builds/812";
    let want = format!(
        "_e{{17,{}}}:v1.4.2 rolled out|{text}|d:1767225600|#service:{},stream:deploys,source:ci",
        text.len(),
        app::SERVICE
    );
    for framework in BOTH {
        let listener = Listener::start().await;
        let builder = app::with_sinks(
            app::monitor_builder_with(&options).unwrap(),
            vec![statsd(&listener.addr, TagStyle::DogStatsd) as Arc<dyn Sink>],
        );
        let ctx = demo::start(framework, builder).await;
        let response = common::client()
            .post(ctx.server.url("/annotations/deploys"))
            .bearer_auth("s3cret")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{framework:?}");
        eventually("the DogStatsD event", || async {
            listener
                .lines()
                .iter()
                .any(|l| l.contains("stream:deploys"))
        })
        .await;
        let events: Vec<String> = listener
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("_e{"))
            .collect();
        assert!(events.contains(&want), "{framework:?}: {events:#?}");
        assert!(
            events
                .iter()
                .any(|e| e.contains("stream:lifecycle,source:vitalsign")),
            "the monitor's start: {events:#?}"
        );
    }

    let listener = Listener::start().await;
    let monitor = Monitor::builder("plain")
        .sink(statsd(&listener.addr, TagStyle::InName))
        .build()
        .unwrap();
    monitor
        .annotate("deploys", vitalsign::annotation::Annotation::new("v2"))
        .unwrap();
    // Flushes after the annotation (the sink's queue is first in, first out): anything it
    // sent would have come before the last of them.
    let since = listener.gauges("shop.in_flight").len();
    listener.wait_gauge("shop.in_flight", since, 3, "0").await;
    let lines = listener.lines();
    assert!(!lines.iter().any(|l| l.starts_with("_e{")), "{lines:#?}");
}
