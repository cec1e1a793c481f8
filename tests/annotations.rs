//! Annotations over real HTTP on 127.0.0.1, against the demo served by axum and by actix-web
//! (the parity style: the same steps on both, the same answers): a write with the token is
//! listed, read back (`since`) and counted on `/metrics`; refused writes (no token, a wrong
//! one, none configured, no title, 1 MiB, a `javascript:` link) store nothing; a dependency
//! going down is a `health` event with its levels; a flood of 100 000 events stays within the
//! store's bounds and counts what it evicted; the admin listener takes the same writes.

#[path = "../examples/demo/actix_app.rs"]
#[allow(dead_code)]
mod actix_app;
#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;
mod common;
#[path = "common/demo.rs"]
mod demo;

use std::time::Duration;

use common::*;
use demo::{Ctx, Framework, BOTH};
use serde_json::{json, Value};
use vitalsign::annotation::{Annotation, MAX_EVENTS_PER_STREAM, MAX_STORE_BYTES, MAX_STREAMS};
use vitalsign::health::Level;
use vitalsign::MonitorBuilder;

const TOKEN: &str = "s3cret";

fn with_token() -> MonitorBuilder {
    app::monitor_builder_with(&app::HealthOptions {
        token: Some(TOKEN.to_owned()),
        ..app::HealthOptions::default()
    })
    .unwrap()
}

/// POSTs `body` to `/annotations/{stream}` with `Authorization: <authorization>`.
async fn post(
    ctx: &Ctx,
    stream: &str,
    body: impl Into<reqwest::Body>,
    authorization: Option<&str>,
) -> (u16, Value) {
    let mut request = client()
        .post(ctx.server.url(&format!("/annotations/{stream}")))
        .header("content-type", "application/json")
        .body(body);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// GET `path` with the token; the body as JSON (or as a string).
async fn get(ctx: &Ctx, path: &str) -> (u16, Value) {
    let response = client()
        .get(ctx.server.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn metrics(ctx: &Ctx) -> Exposition {
    let (status, text) = get(ctx, "/metrics").await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap().to_owned();
    promtool_check(&text);
    Exposition::parse(&text)
}

/// An event as both frameworks must answer it (its id and times aside).
fn comparable(event: &Value) -> Value {
    let mut event = event.clone();
    event.as_object_mut().unwrap().remove("id");
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_the_token_is_listed_read_back_and_counted_on_both_frameworks() {
    let mut answers = Vec::new();
    for framework in BOTH {
        let ctx = demo::start(framework, with_token()).await;
        let bearer = format!("Bearer {TOKEN}");
        let (status, event) = post(
            &ctx,
            "deploys",
            json!({
                "title": "v1.4.2 rolled out",
                "description": "canary first,\nthen everywhere",
                "source": "ci",
                "links": [{"rel": "build", "href": "https://ci.example.com/builds/812"}],
                "tags": {"region": "eu-west"},
                "start": "2026-01-01T00:00:00Z",
                "end": 1_767_225_690,
            })
            .to_string(),
            Some(&bearer),
        )
        .await;
        assert_eq!(status, 201, "{framework:?}: {event}");
        assert_eq!(event["start"], "2026-01-01T00:00:00.000Z");
        assert_eq!(event["end"], "2026-01-01T00:01:30.000Z");

        let (status, stream) = get(&ctx, "/annotations/deploys").await;
        assert_eq!(status, 200, "{stream}");
        let events = stream["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{stream}");
        assert_eq!(events[0], event);
        assert_eq!(
            events[0]["links"][0]["href"],
            "https://ci.example.com/builds/812"
        );
        assert_eq!(events[0]["tags"]["region"], "eu-west");
        // `since`: RFC 3339 or unix seconds; an event that ends after it is still there.
        for (since, held) in [
            ("2026-01-01T00:00:00Z", 1),
            ("2026-01-01T01:00:30%2B01:00", 1),
            ("1767225690", 1),
            ("1767225691", 0),
            ("2026-01-01T00:02:00Z", 0),
        ] {
            let (status, stream) = get(&ctx, &format!("/annotations/deploys?since={since}")).await;
            assert_eq!(status, 200, "{since}: {stream}");
            assert_eq!(
                stream["events"].as_array().unwrap().len(),
                held,
                "since={since}"
            );
        }
        let (status, refused) = get(&ctx, "/annotations/deploys?since=last-tuesday").await;
        assert_eq!(
            (status, &refused["field"]),
            (400, &json!("since")),
            "{refused}"
        );

        let (status, list) = get(&ctx, "/annotations").await;
        assert_eq!(status, 200);
        let names: Vec<&str> = list["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["deploys", "lifecycle"], "{list}");
        assert_eq!(list["streams"][0]["total"], 1);
        // The demo's own start, marked by the monitor.
        let (_, lifecycle) = get(&ctx, "/annotations/lifecycle").await;
        assert_eq!(
            lifecycle["events"][0]["title"],
            format!("{} {} started", app::SERVICE, env!("CARGO_PKG_VERSION"))
        );

        let m = metrics(&ctx).await;
        assert_eq!(
            m.get("vitalsign_annotations_total", &[("stream", "deploys")]),
            Some(1.0),
            "{}",
            m.text
        );
        assert_eq!(
            m.get(
                "vitalsign_annotation_last_timestamp_seconds",
                &[("stream", "deploys")]
            ),
            Some(1_767_225_600.0)
        );
        assert_eq!(m.get("vitalsign_annotations_evicted_total", &[]), Some(0.0));
        answers.push((comparable(&event), comparable(&events[0])));
    }
    assert_eq!(
        answers[0], answers[1],
        "axum (left) and actix (right) disagree"
    );
}

/// Writes refused with the right status, and nothing stored, on both frameworks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_writes_store_nothing_on_both_frameworks() {
    let mut outcomes = Vec::new();
    for framework in BOTH {
        let ctx = demo::start(framework, with_token()).await;
        let bearer = format!("Bearer {TOKEN}");
        let title = json!({"title": "v2"}).to_string();
        let mut statuses = Vec::new();
        let (status, body) = post(&ctx, "deploys", title.clone(), None).await;
        assert_eq!(status, 401, "{framework:?} without the token: {body}");
        statuses.push(status);
        let (status, body) = post(&ctx, "deploys", title.clone(), Some("Bearer nope")).await;
        assert_eq!(status, 401, "{framework:?} with a wrong token: {body}");
        statuses.push(status);
        let (status, body) = post(&ctx, "deploys", r#"{"source": "ci"}"#, Some(&bearer)).await;
        assert_eq!((status, &body["field"]), (400, &json!("title")), "{body}");
        statuses.push(status);
        let big = json!({"title": "v2", "description": "x".repeat(1024 * 1024)}).to_string();
        let (status, body) = post(&ctx, "deploys", big, Some(&bearer)).await;
        assert_eq!(status, 413, "{framework:?} 1 MiB: {body}");
        statuses.push(status);
        let script = json!({"title": "v2", "links": [{"rel": "x", "href": "javascript:alert(1)"}]});
        let (status, body) = post(&ctx, "deploys", script.to_string(), Some(&bearer)).await;
        assert_eq!((status, &body["field"]), (400, &json!("links")), "{body}");
        statuses.push(status);
        let (status, body) = post(&ctx, "de ploys", title.clone(), Some(&bearer)).await;
        assert_eq!(status, 400, "{body}");
        statuses.push(status);
        let (_, stream) = get(&ctx, "/annotations/deploys").await;
        assert_eq!(stream["events"], json!([]), "{framework:?}: nothing stored");
        assert!(ctx.monitor.annotations("deploys", None).is_empty());
        assert_eq!(ctx.monitor.annotation_streams().len(), 1, "lifecycle only");

        // No token configured: writing is refused, and the answer says how to enable it.
        let open = demo::start(framework, app::monitor_builder().unwrap()).await;
        let (status, body) = post(&open, "deploys", title.clone(), Some(&bearer)).await;
        assert_eq!(status, 403, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("token(") && error.contains("--token"),
            "{error}"
        );
        statuses.push(status);
        assert!(open.monitor.annotations("deploys", None).is_empty());
        // Reading is open without a token, as /stats is.
        assert_eq!(open.server.get("/annotations").await.0, 200);
        outcomes.push(statuses);
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "axum (left) and actix (right) disagree"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_going_down_is_a_health_event_with_from_and_to_on_both_frameworks() {
    for framework in BOTH {
        let dependency = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let options = app::HealthOptions {
            dependency: Some(dependency.local_addr().unwrap().to_string()),
            check_interval: Duration::from_millis(50),
            token: Some(TOKEN.to_owned()),
        };
        let ctx = demo::start(framework, app::monitor_builder_with(&options).unwrap()).await;
        eventually("the dependency is available", || async {
            ctx.monitor
                .health()
                .components
                .get("dependency")
                .is_some_and(|c| c.level == Level::Available)
        })
        .await;
        drop(dependency);
        let is_down = |e: &Value| {
            e["tags"]["component"] == "dependency"
                && e["tags"]["from"] == "available"
                && e["tags"]["to"] == "unavailable"
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let events = loop {
            let (status, stream) = get(&ctx, "/annotations/health").await;
            assert_eq!(status, 200);
            let events = stream["events"].as_array().unwrap().clone();
            if events.iter().any(is_down) {
                break events;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no health event for the dependency going down: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let down = events.iter().find(|e| is_down(e)).unwrap();
        assert_eq!(
            down["title"], "dependency: available -> unavailable",
            "{down}"
        );
        assert_eq!(down["source"], "vitalsign");
        assert!(
            down["description"]
                .as_str()
                .unwrap()
                .contains("TCP connect"),
            "the summary: {down}"
        );
        // It came up first: that change is an event too, older.
        assert!(
            events.iter().any(|e| e["tags"]["to"] == "available"),
            "{events:#?}"
        );
    }
}

/// Resident memory of this process, bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_100_000_events_keeps_memory_bounded_and_counts_evictions() {
    let ctx = demo::start(Framework::Axum, with_token()).await;
    let description = "d".repeat(2000);
    let before = resident_bytes();
    for i in 0..100_000u32 {
        ctx.monitor
            .annotate(
                "flood",
                Annotation::new(format!("event {i}")).description(description.clone()),
            )
            .unwrap();
    }
    let held = ctx.monitor.annotations("flood", None);
    assert!(held.len() <= MAX_EVENTS_PER_STREAM, "{}", held.len());
    assert_eq!(
        held[0].title, "event 99999",
        "newest first, the newest kept"
    );
    let m = metrics(&ctx).await;
    assert_eq!(
        m.get("vitalsign_annotations_total", &[("stream", "flood")]),
        Some(100_000.0)
    );
    // More streams than the store keeps, round robin: each new one evicts another.
    for i in 0..1_000u32 {
        ctx.monitor
            .annotate(&format!("s{}", i % 100), Annotation::new("x"))
            .unwrap();
    }
    let grown = resident_bytes().saturating_sub(before);
    // Unbounded, the descriptions alone would be 200 MB.
    assert!(
        grown < 48 * 1024 * 1024,
        "resident memory grew by {grown} bytes"
    );

    let (status, list) = get(&ctx, "/annotations").await;
    assert_eq!(status, 200);
    assert!(
        list["streams"].as_array().unwrap().len() <= MAX_STREAMS,
        "{list}"
    );
    assert!(
        list["bytes"].as_u64().unwrap() <= MAX_STORE_BYTES as u64,
        "{list}"
    );
    let recorded = 1 + 100_000 + 1_000; // with the start event
    let events = list["events"].as_u64().unwrap();
    let evicted = list["evicted_events"].as_u64().unwrap();
    assert_eq!(
        evicted,
        recorded - events,
        "every event held or counted: {list}"
    );
    assert!(list["evicted_streams"].as_u64().unwrap() > 0, "{list}");
    let m = metrics(&ctx).await;
    assert_eq!(
        m.get("vitalsign_annotations_evicted_total", &[]),
        Some(evicted as f64)
    );
    // The flood stream, written least recently, made room for the new ones.
    assert_eq!(
        m.get("vitalsign_annotations_total", &[("stream", "flood")]),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_takes_the_same_writes() {
    use vitalsign::admin::ServeAdmin;
    let monitor = with_token().build().unwrap();
    let admin = monitor.serve_admin("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/annotations/deploys", admin.local_addr());
    let send = |method: reqwest::Method, body: &str| {
        client()
            .request(method, &url)
            .bearer_auth(TOKEN)
            .body(body.to_owned())
            .send()
    };
    let response = send(reqwest::Method::POST, r#"{"title": "v3"}"#)
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = send(reqwest::Method::POST, r#"{"title": ""}"#)
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let big = format!(r#"{{"title": "{}"}}"#, "x".repeat(200_000));
    assert_eq!(
        send(reqwest::Method::POST, &big).await.unwrap().status(),
        413
    );
    let response = send(reqwest::Method::PUT, "{}").await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET,HEAD,POST");
    let response = send(reqwest::Method::GET, "").await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["events"][0]["title"], "v3");
    assert_eq!(monitor.annotations("deploys", None).len(), 1);
    admin.stop().await.unwrap();
}
