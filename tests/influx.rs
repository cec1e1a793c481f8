//! The InfluxDB sink against a real InfluxDB 1.x (Debian's `influxdb` package) started on
//! 127.0.0.1 with a temporary configuration: exact counts from both frameworks, error codes,
//! handler tags and fields, escaping round trips, an outage with a bounded queue, a 4xx that
//! does not loop, the aggregator (requests slower than its period included), and HTTPS with a
//! self-signed certificate the test makes.

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::*;
use demo::Framework;
use serde_json::Value;
use vitalsign::axum::{endpoints, Point};
use vitalsign::sinks::{InfluxSink, PeriodAggregator};
use vitalsign::{Monitor, MonitorLayer, Sink};

/// An `influxd` on 127.0.0.1 with its own directories, stopped on drop.
struct Influx {
    child: Option<Child>,
    config: PathBuf,
    dir: PathBuf,
    base: String,
    /// Talks to it (trusting its certificate, when it serves HTTPS).
    http: reqwest::Client,
}

/// A certificate and its private key, PEM.
struct Tls {
    certificate: String,
    key: String,
}

impl Tls {
    /// A self-signed certificate for 127.0.0.1 and localhost.
    fn self_signed() -> Tls {
        let made = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .unwrap();
        Tls {
            certificate: made.cert.pem(),
            key: made.signing_key.serialize_pem(),
        }
    }
}

impl Influx {
    /// Starts InfluxDB; `None` only when the run opted out of external servers ([`require`]).
    async fn start() -> Option<Influx> {
        Self::start_with(None).await
    }

    /// Starts InfluxDB serving HTTPS with this certificate.
    async fn start_tls(tls: &Tls) -> Option<Influx> {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<&Tls>) -> Option<Influx> {
        if !require(&INFLUXD) {
            return None;
        }
        // A port found free can be taken by a parallel test before influxd binds it: then
        // influxd exits, and another attempt gets new ports.
        for _ in 0..5 {
            let (http, rpc) = (free_port(), free_port());
            let dir = std::env::temp_dir()
                .join(format!("vitalsign-influx-{}-{http}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let config = dir.join("influxdb.conf");
            let mut https = String::new();
            let mut client = reqwest::Client::builder().no_proxy();
            if let Some(tls) = tls {
                let (certificate, key) = (dir.join("cert.pem"), dir.join("key.pem"));
                std::fs::write(&certificate, &tls.certificate).unwrap();
                std::fs::write(&key, &tls.key).unwrap();
                https = format!(
                    "  https-enabled = true\n  https-certificate = \"{}\"\n  https-private-key = \"{}\"\n",
                    certificate.display(),
                    key.display()
                );
                let trusted = reqwest::Certificate::from_pem(tls.certificate.as_bytes()).unwrap();
                client = client.add_root_certificate(trusted);
            }
            std::fs::write(
                &config,
                format!(
                    "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
                     [meta]\n  dir = \"{d}/meta\"\n\
                     [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
                     [http]\n  enabled = true\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n{https}\
                     [logging]\n  level = \"error\"\n",
                    d = dir.display()
                ),
            )
            .unwrap();
            let scheme = if tls.is_some() { "https" } else { "http" };
            let mut influx = Influx {
                child: None,
                config,
                dir,
                base: format!("{scheme}://127.0.0.1:{http}"),
                http: client.build().unwrap(),
            };
            if influx.run().await {
                return Some(influx);
            }
        }
        panic!("influxd did not start in 5 attempts");
    }

    /// Starts influxd on this configuration; `false` if it exited (its port was taken).
    async fn run(&mut self) -> bool {
        let child = Command::new("influxd")
            .arg("-config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start influxd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            let ping = self.http.get(format!("{}/ping", self.base)).send().await;
            if ping.is_ok_and(|r| r.status() == 204) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // Still ours: the answer did not come from another test's influxd.
                return matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)));
            }
            assert!(Instant::now() < deadline, "influxd did not answer /ping");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn create_db(&self, db: &str) {
        let response = self
            .http
            .post(format!("{}/query", self.base))
            .form(&[("q", format!("CREATE DATABASE \"{db}\""))])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    fn write_url(&self, db: &str) -> String {
        format!("{}/write?db={db}", self.base)
    }

    /// The rows of an InfluxQL query's first series.
    async fn query(&self, db: &str, q: &str) -> Vec<Vec<Value>> {
        let response = self
            .http
            .get(format!("{}/query", self.base))
            .query(&[("db", db), ("q", q)])
            .send()
            .await
            .unwrap();
        let json: Value = response.json().await.unwrap();
        json["results"][0]["series"][0]["values"]
            .as_array()
            .map(|rows| rows.iter().map(|r| r.as_array().unwrap().clone()).collect())
            .unwrap_or_default()
    }

    /// Waits until a `SELECT count(...)` returns `want`.
    async fn wait_count(&self, db: &str, q: &str, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = self.query(db, q).await;
            let got = rows
                .first()
                .and_then(|r| r.get(1))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{q}: {got}, wanted {want}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Influx {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn influx_sink(url: String) -> Arc<InfluxSink> {
    InfluxSink::http(url)
        .flush_period(Duration::from_millis(100))
        .max_backoff(Duration::from_millis(300))
        .build()
        .unwrap()
}

async fn exact_counts(influx: &Influx, framework: Framework) {
    let db = format!("vs_{framework:?}").to_lowercase();
    influx.create_db(&db).await;
    let builder = app::with_sinks(
        app::monitor_builder().unwrap(),
        vec![influx_sink(influx.write_url(&db)) as Arc<dyn Sink>],
    );
    let ctx = demo::start(framework, builder).await;
    for id in 0..7 {
        assert_eq!(ctx.server.get(&format!("/users/{id}")).await.0, 200);
    }
    for _ in 0..3 {
        assert_eq!(ctx.server.get("/error").await.0, 500);
    }
    influx
        .wait_count(
            &db,
            "SELECT count(execution_time) FROM requests WHERE route='/users/{id}'",
            7,
        )
        .await;
    influx
        .wait_count(
            &db,
            "SELECT count(execution_time) FROM errors WHERE error_code='1001'",
            3,
        )
        .await;
    influx
        .wait_count(
            &db,
            "SELECT count(execution_time) FROM requests WHERE status_code='500'",
            3,
        )
        .await;
    let rows = influx
        .query(&db, "SELECT handler_id, user_id, db_time, request_id, method, service FROM requests WHERE route='/users/{id}'")
        .await;
    assert_eq!(rows.len(), 7, "{framework:?}");
    for row in &rows {
        assert_eq!(row[1], "get_user", "{row:?}");
        assert!(
            row[2].as_str().unwrap().parse::<u32>().is_ok(),
            "user_id field: {row:?}"
        );
        assert!(row[3].as_f64().unwrap() >= 0.002, "db_time field: {row:?}");
        assert_eq!(
            row[4].as_str().unwrap().len(),
            36,
            "request_id field: {row:?}"
        );
        assert_eq!(
            (row[5].as_str(), row[6].as_str()),
            (Some("GET"), Some(app::SERVICE))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_errors_arrive_exactly_from_both_frameworks() {
    let Some(influx) = Influx::start().await else {
        return;
    };
    exact_counts(&influx, Framework::Axum).await;
    exact_counts(&influx, Framework::Actix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_and_field_escaping_round_trips() {
    let Some(influx) = Influx::start().await else {
        return;
    };
    influx.create_db("escaping").await;
    let sink = influx_sink(influx.write_url("escaping"));
    let monitor = Monitor::builder("esc").sink(sink).build().unwrap();
    const TAG: &str = r#"a b,c="d"=e"#;
    const FIELD: &str = r#"say "hi", a=b c"#;
    let app = Router::new()
        .route(
            "/e",
            get(|point: Point| async move {
                point
                    .tag("weird", TAG)
                    .tag("spaced key", "v")
                    .field("note", FIELD);
                "e"
            }),
        )
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    assert_eq!(server.get("/e").await.0, 200);
    influx
        .wait_count("escaping", "SELECT count(execution_time) FROM requests", 1)
        .await;
    let rows = influx
        .query(
            "escaping",
            r#"SELECT "note", "weird", "spaced key" FROM requests"#,
        )
        .await;
    assert_eq!(rows[0][1], FIELD);
    assert_eq!(rows[0][2], TAG);
    assert_eq!(rows[0][3], "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_latency_loses_only_what_overflows_and_catches_up() {
    let Some(mut influx) = Influx::start().await else {
        return;
    };
    influx.create_db("outage").await;
    let sink = InfluxSink::http(influx.write_url("outage"))
        .flush_period(Duration::from_millis(50))
        .batch_size(5)
        .queue_capacity(20)
        .max_backoff(Duration::from_millis(200))
        .build()
        .unwrap();
    let monitor = Monitor::builder("outage")
        .sink(sink.clone())
        .build()
        .unwrap();
    let app = Router::new()
        .route("/x", get(|| async { "x" }))
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    for _ in 0..4 {
        assert_eq!(server.get("/x").await.0, 200);
    }
    influx
        .wait_count("outage", "SELECT count(execution_time) FROM requests", 4)
        .await;

    // Written and acknowledged: a write cut off by the outage would be retried (InfluxDB
    // overwrites identical points), and counted as queued.
    let sink_report = || sink.report().unwrap();
    // The 4 requests and the monitor's start (an annotation, stream `lifecycle`).
    eventually("the first points are acknowledged", || async {
        sink_report().sent == 5
    })
    .await;
    influx.stop();
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let started = Instant::now();
        assert_eq!(server.get("/x").await.0, 200);
        slowest = slowest.max(started.elapsed());
    }
    println!("slowest request while InfluxDB was down: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(2),
        "a request waited on the sink: {slowest:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // retries keep failing meanwhile
                                                      // A batch out for a (failing) write is put back in front; what no longer fits is dropped.
    eventually("the queue settles at its capacity", || async {
        sink_report().queued == 20
    })
    .await;
    let report = sink_report();
    assert_eq!(
        report.dropped, 10,
        "30 points into a queue of 20: the 10 oldest go ({report:?})"
    );
    let m = server.metrics().await;
    assert_eq!(
        m.get("vitalsign_sink_dropped_points_total", &[("sink", "influx")]),
        Some(10.0)
    );

    assert!(influx.run().await, "influxd restarts on its port");
    influx
        .wait_count("outage", "SELECT count(execution_time) FROM requests", 24)
        .await;
    // The writer counts a batch as sent once InfluxDB has answered.
    eventually("the sink counts what arrived", || async {
        sink_report().sent == 25
    })
    .await;
    let report = sink_report();
    assert_eq!(
        (report.sent, report.dropped, report.queued),
        (25, 10, 0),
        "{report:?}"
    );
    let stats: Value = serde_json::from_str(&server.get("/stats").await.1).unwrap();
    assert_eq!(
        stats["sinks"]["influx"],
        serde_json::json!({ "sent": 25, "dropped": 10, "queued": 0 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_answer_is_dropped_counted_and_not_retried() {
    // A real HTTP server that rejects every write, counting them.
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let rejecting = Router::new().route(
        "/write",
        axum::routing::post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { (axum::http::StatusCode::BAD_REQUEST, "unable to parse") }
        }),
    );
    let influx = Server::start(rejecting).await;
    let sink = InfluxSink::http(influx.url("/write?db=x"))
        .flush_period(Duration::from_millis(20))
        .batch_size(5)
        .build()
        .unwrap();
    let monitor = Monitor::builder("reject")
        .sink(sink.clone())
        .build()
        .unwrap();
    for _ in 0..10 {
        let mut flight = vitalsign::adapter::begin(
            &monitor,
            vitalsign::adapter::RequestStart::new(b"GET", "/").with_route(Some("/")),
        );
        flight.set_status(200);
        flight.complete();
    }
    // Eleven points: the ten requests and the monitor's lifecycle annotation ("reject unknown
    // started"), which the writer may send last, in a batch of its own after the requests'.
    let points = 11;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.report().unwrap().dropped < points {
        assert!(Instant::now() < deadline, "{:?}", sink.report());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let batches = hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        batches,
        "a rejected batch is not sent again"
    );
    assert!((3..=points).contains(&batches), "{batches}");
    assert_eq!(sink.report().unwrap().dropped, points);
    assert_eq!(sink.report().unwrap().sent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_points_arrive_one_per_tag_set_and_period() {
    let Some(influx) = Influx::start().await else {
        return;
    };
    influx.create_db("agg").await;
    let aggregator = PeriodAggregator::new(
        Duration::from_secs(3600),
        influx_sink(influx.write_url("agg")),
    );
    let monitor = Monitor::builder("agg").sink(aggregator).build().unwrap();
    let app = Router::new()
        .route("/a", get(|| async { "a" }))
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    for _ in 0..25 {
        assert_eq!(server.get("/a").await.0, 200);
    }
    let report = monitor.shutdown(Duration::from_secs(10)).await;
    assert!(report.flushed, "{report:?}");
    let rows = influx
        .query(
            "agg",
            "SELECT \"count\", \"min\", \"max\", \"sum\" FROM requests WHERE route='/a'",
        )
        .await;
    assert_eq!(rows.len(), 1, "one point for the period: {rows:?}");
    assert_eq!(rows[0][1], 25);
    let (min, max, sum) = (
        rows[0][2].as_f64().unwrap(),
        rows[0][3].as_f64().unwrap(),
        rows[0][4].as_f64().unwrap(),
    );
    assert!(min > 0.0 && min <= max && sum >= max && sum <= max * 25.0);
    // Timestamps are floored to the period.
    let time = influx.query("agg", "SELECT \"count\" FROM requests").await[0][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(time.ends_with(":00:00Z"), "{time}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2x_write_api_gets_the_token_and_udp_gets_datagrams() {
    // An HTTP endpoint in the shape of InfluxDB 2.x's write API, recording what it receives.
    let received = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let into = received.clone();
    let v2 = Router::new().route(
        "/api/v2/write",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let auth = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            into.lock().unwrap().push((auth, body));
            async { axum::http::StatusCode::NO_CONTENT }
        }),
    );
    let server = Server::start(v2).await;
    let sink = InfluxSink::http(server.url("/api/v2/write?org=o&bucket=b"))
        .token("v2-token")
        .flush_period(Duration::from_millis(20))
        .build()
        .unwrap();
    let monitor = Monitor::builder("v2").sink(sink.clone()).build().unwrap();
    record(&monitor, b"GET", "/v2", 200);
    let request_line = |body: &str| {
        body.lines().any(|l| {
            l.starts_with(
                "requests,method=GET,route=/v2,service=v2,status_code=200 execution_time=",
            )
        })
    };
    eventually("the 2.x write arrives", || async {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|(_, body)| request_line(body))
    })
    .await;
    // Every write (the monitor's start annotation, then the request) carries the token.
    for (auth, _) in received.lock().unwrap().iter() {
        assert_eq!(auth, "Token v2-token");
    }

    // UDP: lines in datagrams to a real socket.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sink = InfluxSink::udp(socket.local_addr().unwrap().to_string())
        .flush_period(Duration::from_millis(20))
        .build()
        .unwrap();
    let monitor = Monitor::builder("udp").sink(sink.clone()).build().unwrap();
    for _ in 0..3 {
        record(&monitor, b"POST", "/u", 201);
    }
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65536];
    while lines.len() < 3 {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        lines.extend(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .filter(|l| !l.starts_with("annotations,"))
                .map(str::to_owned),
        );
    }
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("requests,method=POST,route=/u,service=udp,status_code=201 ")),
        "{lines:?}"
    );
    // The 3 requests and the monitor's start annotation.
    eventually("the sink counts them", || async {
        sink.report().unwrap().sent == 4
    })
    .await;
}

/// Regression (review item 2): the aggregator filed a request under the period it started in
/// and emitted a period once it had ended, so a request that finished later opened a second
/// aggregate with the same tag set and timestamp, and InfluxDB kept only the last one. With a
/// period of 1 s and requests of 1.1 to 2 s, through a real InfluxDB: every aggregate the sink
/// wrote is stored (none overwrote another), and the counts add up to the requests sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_of_requests_slower_than_the_period_overwrite_nothing() {
    let Some(influx) = Influx::start().await else {
        return;
    };
    influx.create_db("slow").await;
    let sink = influx_sink(influx.write_url("slow"));
    let aggregator = PeriodAggregator::new(Duration::from_secs(1), sink.clone());
    let monitor = Monitor::builder("slow").sink(aggregator).build().unwrap();
    let app = Router::new()
        .route(
            "/slow/{ms}",
            get(
                |axum::extract::Path(ms): axum::extract::Path<u64>| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    "slow"
                },
            ),
        )
        .route("/fast", get(|| async { "fast" }))
        .merge(endpoints(&monitor))
        .layer(MonitorLayer::new(&monitor));
    let server = Server::start(app).await;
    const WAVES: u64 = 3;
    const SLOW: [u64; 4] = [1100, 1400, 1700, 2000];
    const FAST: u64 = 5;
    let mut slow = Vec::new();
    for _ in 0..WAVES {
        for ms in SLOW {
            let url = server.url(&format!("/slow/{ms}"));
            slow.push(tokio::spawn(async move {
                client().get(url).send().await.unwrap().status().as_u16()
            }));
        }
        for _ in 0..FAST {
            assert_eq!(server.get("/fast").await.0, 200);
        }
        // Spreads the waves over the periods (load shape, not synchronisation).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for request in slow {
        assert_eq!(request.await.unwrap(), 200);
    }
    let report = monitor.shutdown(Duration::from_secs(10)).await;
    assert!(report.flushed, "{report:?}");
    let sent = WAVES * (SLOW.len() as u64 + FAST);
    influx
        .wait_count("slow", r#"SELECT sum("count") FROM requests"#, sent)
        .await;
    influx
        .wait_count(
            "slow",
            r#"SELECT sum("count") FROM requests WHERE route='/slow/{ms}'"#,
            WAVES * SLOW.len() as u64,
        )
        .await;
    let written = sink.report().unwrap();
    assert_eq!((written.dropped, written.queued), (0, 0), "{written:?}");
    // The monitor's start, drain and shutdown went to the sink too (stream `lifecycle`).
    let annotations: u64 = monitor.annotation_streams().iter().map(|s| s.total).sum();
    assert_eq!(annotations, 3);
    // As many points stored as written: no (tag set, timestamp) came twice.
    influx
        .wait_count(
            "slow",
            r#"SELECT count("count") FROM requests"#,
            written.sent - annotations,
        )
        .await;
    let slow_points = influx
        .query(
            "slow",
            r#"SELECT "count" FROM requests WHERE route='/slow/{ms}'"#,
        )
        .await;
    assert!(
        slow_points.len() > 1,
        "slow requests ended in several periods: {slow_points:?}"
    );
}

/// Regression (review item 3): reqwest was built without a TLS backend, so an `https://` URL
/// was accepted and every write failed and was retried forever. Against InfluxDB serving
/// HTTPS with a self-signed certificate the test makes: a sink that trusts it
/// (`root_certificate_pem`) delivers every point; one that does not delivers none (the
/// certificate is checked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_writes_arrive_with_a_trusted_self_signed_certificate() {
    let tls = Tls::self_signed();
    let Some(influx) = Influx::start_tls(&tls).await else {
        return;
    };
    assert!(influx.base.starts_with("https://"), "{}", influx.base);
    influx.create_db("tls").await;
    let trusting = InfluxSink::http(influx.write_url("tls"))
        .root_certificate_pem(tls.certificate.as_bytes())
        .flush_period(Duration::from_millis(50))
        .build()
        .unwrap();
    let distrusting = InfluxSink::http(influx.write_url("tls"))
        .flush_period(Duration::from_millis(50))
        .max_backoff(Duration::from_millis(200))
        .build()
        .unwrap();
    let monitor = Monitor::builder("tls")
        .sink(trusting.clone())
        .sink(distrusting.clone())
        .build()
        .unwrap();
    for _ in 0..5 {
        record(&monitor, b"POST", "/tls", 201);
    }
    influx
        .wait_count(
            "tls",
            "SELECT count(execution_time) FROM requests WHERE route='/tls'",
            5,
        )
        .await;
    // The 5 requests and the monitor's start annotation.
    eventually("the trusting sink counts its points", || async {
        trusting.report().unwrap().sent == 6
    })
    .await;
    // Its twin wrote at the same time; its handshakes fail, and its points wait in its queue.
    let report = distrusting.report().unwrap();
    assert_eq!((report.sent, report.queued), (0, 6), "{report:?}");
}

/// A write to `POST /annotations/deploys` on each framework arrives in a real InfluxDB as a
/// point of series `annotations`: tags `service`, `stream`, `source`; fields `title`,
/// `description`, `links`, `end`; timestamp = start. The monitor's own start arrives in
/// stream `lifecycle`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_arrive_as_points_of_series_annotations_from_both_frameworks() {
    let Some(influx) = Influx::start().await else {
        return;
    };
    for framework in [Framework::Axum, Framework::Actix] {
        let db = format!("annotations_{framework:?}").to_lowercase();
        influx.create_db(&db).await;
        let options = app::HealthOptions {
            token: Some("s3cret".to_owned()),
            ..app::HealthOptions::default()
        };
        let builder = app::with_sinks(
            app::monitor_builder_with(&options).unwrap(),
            vec![influx_sink(influx.write_url(&db)) as Arc<dyn Sink>],
        );
        let ctx = demo::start(framework, builder).await;
        let response = client()
            .post(ctx.server.url("/annotations/deploys"))
            .bearer_auth("s3cret")
            .body(
                serde_json::json!({
                    "title": "v1.4.2 rolled out",
                    "description": "canary first",
                    "source": "ci",
                    "links": [
                        {"rel": "build", "href": "https://ci.example.com/builds/812"},
                        {"rel": "diff", "href": "https://git.example.com/compare/v1.4.1...v1.4.2"}
                    ],
                    "start": "2026-01-01T00:00:00Z",
                    "end": "2026-01-01T00:01:30.5Z",
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{framework:?}");
        influx
            .wait_count(
                &db,
                "SELECT count(title) FROM annotations WHERE stream='deploys'",
                1,
            )
            .await;
        let rows = influx
            .query(
                &db,
                "SELECT title, description, links, \"end\", service, source, stream \
                 FROM annotations WHERE stream='deploys'",
            )
            .await;
        assert_eq!(
            rows,
            [vec![
                Value::from("2026-01-01T00:00:00Z"),
                Value::from("v1.4.2 rolled out"),
                Value::from("canary first"),
                Value::from(
                    "build=https://ci.example.com/builds/812 \
                     diff=https://git.example.com/compare/v1.4.1...v1.4.2"
                ),
                Value::from(1_767_225_690_500u64),
                Value::from(app::SERVICE),
                Value::from("ci"),
                Value::from("deploys"),
            ]],
            "{framework:?}"
        );
        influx
            .wait_count(
                &db,
                "SELECT count(title) FROM annotations WHERE stream='lifecycle' AND source='vitalsign'",
                1,
            )
            .await;
    }
}
