//! Hostile input over real HTTP on 127.0.0.1, on axum and on actix-web: unique unmatched paths,
//! invented methods, huge headers, invalid percent-escapes, label values with quotes,
//! backslashes and newlines, odd request ids. The service keeps serving, nothing raw becomes a
//! label, `/metrics` stays valid exposition and pushed line protocol stays parseable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vitalsign::sinks::InfluxSink;
use vitalsign::{MemorySink, Monitor, Sink};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framework {
    Axum,
    Actix,
}

/// Unique unmatched paths sent.
const UNMATCHED: usize = 20_000;

/// Handler tags with hostile values: `tenant` (declared as a label) comes from the query.
const HOSTILE: [&str; 5] = [
    "quote\"d",
    "back\\slash",
    "new\nline",
    "comma, space=equals",
    "uni\u{e9}\u{2603} tab\t",
];

fn monitor(sinks: Vec<Arc<dyn Sink>>) -> Monitor {
    sinks
        .into_iter()
        .fold(Monitor::builder("hostile").label_tag("tenant"), |b, s| {
            b.sink(s)
        })
        .max_label_sets(200)
        .build()
        .unwrap()
}

fn start(framework: Framework, monitor: &Monitor) -> Server {
    match framework {
        Framework::Axum => {
            use axum::extract::Query;
            use axum::routing::get;
            let app = axum::Router::new()
                .route(
                    "/users/{id}",
                    get(|point: vitalsign::axum::Point, Query(q): Query<std::collections::HashMap<String, String>>| async move {
                        if let Some(v) = q.get("t") {
                            point.tag("tenant", v.clone()).field("note", v.clone());
                        }
                        "user"
                    }),
                )
                .merge(vitalsign::axum::endpoints(monitor))
                .layer(vitalsign::MonitorLayer::new(monitor));
            let rt = tokio::runtime::Handle::current();
            let (tx, rx) = std::sync::mpsc::channel();
            rt.spawn(async move {
                tx.send(Server::start(app).await).unwrap();
            });
            rx.recv().unwrap()
        }
        Framework::Actix => {
            use actix_web::{web, App, HttpServer};
            let monitor = monitor.clone();
            Server::start_actix(move || {
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(vitalsign_actix::Monitoring::new(&monitor))
                        .configure(vitalsign_actix::configure(&monitor))
                        .route(
                            "/users/{id}",
                            web::get().to(
                                |point: vitalsign_actix::Point, q: web::Query<std::collections::HashMap<String, String>>| async move {
                                    if let Some(v) = q.get("t") {
                                        point.tag("tenant", v.clone()).field("note", v.clone());
                                    }
                                    "user"
                                },
                            ),
                        )
                })
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")?;
                let addrs = server.addrs();
                Ok((server.run(), addrs))
            })
        }
    }
}

fn encode(v: &str) -> String {
    v.bytes().map(|b| format!("%{b:02X}")).collect()
}

async fn hostile(framework: Framework) {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_addr = udp.local_addr().unwrap().to_string();
    // Read datagrams from the start (a UDP receive buffer left unread overflows).
    let datagrams = Arc::new(std::sync::Mutex::new(String::new()));
    let into = datagrams.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = udp.recv(&mut buf).await {
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let influx = InfluxSink::udp(udp_addr)
        .flush_period(Duration::from_millis(20))
        .build()
        .unwrap();
    let points = Arc::new(MemorySink::new(100_000));
    let monitor = monitor(vec![influx as Arc<dyn Sink>, points.clone()]);
    let server = tokio::task::block_in_place(|| start(framework, &monitor));
    let c = client();

    // 20 000 unique unmatched paths: one series.
    for i in 0..UNMATCHED {
        assert_eq!(
            c.get(server.url(&format!("/scan/{i}/x{i}")))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    // Invented methods.
    for m in ["BREW", "PURGE", "X-ANYTHING", "get"] {
        let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        c.request(method, server.url("/users/1"))
            .send()
            .await
            .unwrap();
    }
    // Hostile tag values.
    for v in HOSTILE {
        let r = c
            .get(server.url(&format!("/users/7?t={}", encode(v))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{framework:?} {v:?}");
    }
    // Invalid percent-escapes in the path: answered, recorded under the template or unmatched.
    let raw = server
        .raw(
            b"GET /users/%zz%ff HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
    assert!(raw.starts_with("HTTP/1.1 "), "{framework:?}: {raw}");
    // A 60 KiB header: served or refused with a status, never a hang or a crash.
    let big = "x".repeat(60 * 1024);
    let raw = server
        .raw(
            format!(
                "GET /users/8 HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
            Duration::from_secs(5),
        )
        .await;
    assert!(
        raw.starts_with("HTTP/1.1 200")
            || raw.starts_with("HTTP/1.1 431")
            || raw.starts_with("HTTP/1.1 400"),
        "{framework:?}: {}",
        &raw[..raw.len().min(80)]
    );
    // Request ids: huge, binary, or with spaces are replaced; sane ones kept.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /users/9 HTTP/1.1\r\nhost: x\r\nx-request-id: \xff\xfe\x00bin\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await;
    for id in [
        "y".repeat(500),
        "has space".to_owned(),
        "ok-id-1".to_owned(),
    ] {
        c.get(server.url("/users/10"))
            .header("x-request-id", id.as_str())
            .send()
            .await
            .unwrap();
    }

    // Still serving, everything accounted for.
    assert_eq!(server.get("/users/11").await.0, 200);
    all_recorded(&monitor, "all recorded").await;
    let m = server.metrics().await;
    promtool_check(&m.text);
    let unmatched = m.matching(COUNT, &[("http_route", "unmatched")]);
    assert_eq!(
        unmatched.len(),
        1,
        "{framework:?}: one series for {UNMATCHED} unmatched paths"
    );
    assert_eq!(unmatched[0].value, UNMATCHED as f64);
    println!(
        "{framework:?}: {} requests, {} duration series, {} label sets",
        points.requests().len(),
        m.matching(COUNT, &[]).len(),
        monitor.prometheus().unwrap().label_sets()
    );
    assert!(!m.text.contains("/scan/"), "raw paths never become labels");
    assert!(
        !m.text.contains("BREW") && !m.text.contains("PURGE") && !m.text.contains("X-ANYTHING")
    );
    for v in HOSTILE {
        // The parser in tests/common unescapes; every hostile value comes back intact.
        assert_eq!(
            m.matching(COUNT, &[("tenant", v)]).len(),
            1,
            "{framework:?}: tenant {v:?} in\n{}",
            m.text
        );
    }
    let ids: Vec<String> = points
        .requests()
        .iter()
        .map(|p| p.request_id.to_string())
        .collect();
    assert!(ids.contains(&"ok-id-1".to_owned()));
    assert!(
        !ids.iter()
            .any(|id| id.contains(' ') || id.len() > 64 || id.contains("bin")),
        "{ids:?}"
    );
    assert_eq!(
        m.sum(COUNT, &[]) as usize,
        points.requests().len(),
        "every request counted once"
    );

    // The pushed line protocol parses, with the hostile values intact (newlines become spaces).
    eventually("the hostile lines arrive", || {
        let datagrams = datagrams.clone();
        async move { datagrams.lock().unwrap().matches("tenant=").count() >= HOSTILE.len() }
    })
    .await;
    let received = datagrams.lock().unwrap().clone();
    for line in received.lines() {
        if let Some(Err(e)) = influxdb_line_protocol::parse_lines(line).next() {
            panic!("{framework:?}: invalid line protocol ({e}): {line:?}");
        }
    }
    let lines: Vec<_> = influxdb_line_protocol::parse_lines(&received)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    for v in HOSTILE {
        let want = v.replace(['\n', '\t'], " ");
        assert!(
            lines
                .iter()
                .any(|l| l.series.tag_set.as_ref().is_some_and(|tags| tags
                    .iter()
                    .any(|(k, tv)| k.as_str() == "tenant" && tv.as_str() == want))),
            "{framework:?}: tenant {want:?} not in\n{received}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_on_axum() {
    hostile(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_on_actix() {
    hostile(Framework::Actix).await;
}
