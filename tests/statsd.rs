//! The StatsD sink's wire format, read by a real UDP listener on 127.0.0.1: prefix, DogStatsD
//! tags or tags folded into names, several metrics per datagram, exact counter sums, the
//! in-flight gauge as an absolute value; and the aggregator's exact figures.

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;

use common::record;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demo::BOTH;
use tokio::net::UdpSocket;
use vitalsign::sinks::{PeriodAggregator, StatsdSink, TagStyle};
use vitalsign::{AggregatePoint, MemorySink, Monitor, RequestStart, Sink};

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
        // The in-flight gauge is set to absolute values and ends at 0.
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
        assert!(
            gauges.iter().any(|g| g.starts_with("shop.in_flight:1|g")),
            "{gauges:?}"
        );
        assert!(
            gauges.last().unwrap().starts_with("shop.in_flight:0|g"),
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = sink.report().unwrap();
    assert_eq!(
        report.sent + report.dropped + report.queued,
        100 * 4,
        "{report:?}"
    );
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

#[test]
fn the_aggregator_is_exact_per_tag_set_and_period() {
    let period = Duration::from_secs(3600);
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
        let mut flight = monitor
            .begin(RequestStart {
                method: b"GET",
                path: route,
                route: Some(route),
                request_id: None,
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(sleep_ms));
        flight.set_status(status);
        flight.complete();
    }
    // Flush the monitor's aggregator (what shutdown does).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(
        runtime
            .block_on(monitor.shutdown(Duration::from_secs(5)))
            .flushed
    );
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
    let expected_start = points[0].start_unix_nanos / period_ns * period_ns;
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
