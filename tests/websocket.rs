//! WebSockets on both frameworks, with a real client (tokio-tungstenite) against the demo's
//! `/ws`: the upgrade request is recorded once, with status 101 and the time to its head, never
//! as a disconnect, and leaves the in-flight gauge; the session guard counts open sessions and
//! their lengths, released when the socket closes or the client vanishes without a close frame.
#![cfg(all(feature = "axum", feature = "prometheus"))]

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
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const SESSIONS: &str = "http_server_upgraded_sessions";
const SESSION_COUNT: &str = "http_server_upgraded_session_duration_seconds_count";
const ROUTE: [(&str, &str); 1] = [("http_route", "/ws")];

/// The `/ws` series of the request histogram, by status.
fn ws_requests(m: &Exposition, status: &str) -> f64 {
    m.sum(
        COUNT,
        &[("http_route", "/ws"), ("http_response_status_code", status)],
    )
}

async fn sessions_and_requests(framework: Framework) {
    let ctx: Ctx = demo::start(framework, app::monitor_builder().unwrap()).await;
    let url = format!("ws://{}/ws", ctx.server.addr);
    let mut sockets = Vec::new();
    for i in 0..10 {
        let (mut socket, response) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("{framework:?}: connect {i}: {e}"));
        assert_eq!(response.status().as_u16(), 101);
        // Each socket echoes.
        socket
            .send(Message::text(format!("hello {i}")))
            .await
            .unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an echo within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(echo, Message::text(format!("hello {i}")), "{framework:?}");
        sockets.push(socket);
    }
    // Ten open sessions; ten requests recorded, each once, with status 101; none in flight.
    all_recorded(&ctx.monitor, "the upgrade requests recorded").await;
    eventually("ten sessions open", || async {
        ctx.server.metrics().await.get(SESSIONS, &ROUTE) == Some(10.0)
    })
    .await;
    let m = ctx.server.metrics().await;
    assert_eq!(ws_requests(&m, "101"), 10.0, "{framework:?}");
    assert_eq!(m.sum(COUNT, &ROUTE), 10.0, "{framework:?}: only 101s");
    assert_eq!(
        active(&m),
        0.0,
        "{framework:?}: the upgrades are not in flight"
    );
    assert_eq!(m.get(SESSION_COUNT, &ROUTE), None, "no session ended yet");
    let points = ctx.sink.requests_for("/ws");
    assert_eq!(points.len(), 10);
    for point in &points {
        assert_eq!(point.status_code, 101);
        assert!(!point.disconnected);
        assert!(
            point.execution_time < 5.0,
            "{framework:?}: the time to the 101 head, not the session: {}",
            point.execution_time
        );
    }
    // Nine close with a close frame; one client vanishes (its TCP connection dropped, no
    // close frame).
    let vanished = sockets.pop().unwrap();
    drop(vanished);
    for mut socket in sockets {
        socket.close(None).await.unwrap();
        // Read until the server's close answer (or the end).
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout(Duration::from_secs(10), socket.next()).await
        {}
    }
    eventually("every session released", || async {
        let m = ctx.server.metrics().await;
        m.get(SESSIONS, &ROUTE) == Some(0.0) && m.get(SESSION_COUNT, &ROUTE) == Some(10.0)
    })
    .await;
    // Closing changed nothing of the requests: still ten 101s, no disconnect, none in flight.
    let m = ctx.server.metrics().await;
    assert_eq!(m.sum(COUNT, &ROUTE), 10.0, "{framework:?}");
    assert_eq!(m.sum(DISCONNECTS, &ROUTE), 0.0, "{framework:?}");
    assert_eq!(active(&m), 0.0);
    assert_eq!(ctx.sink.requests_for("/ws").len(), 10, "recorded once each");
    promtool_check(&m.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_and_their_requests_on_both_frameworks() {
    for framework in BOTH {
        sessions_and_requests(framework).await;
    }
}

/// A request to `/ws` that is not a WebSocket handshake is refused (no 101), and starts no
/// session even though its handler asked for a guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_starts_no_session_on_both_frameworks() {
    for framework in BOTH {
        let ctx = demo::start(framework, app::monitor_builder().unwrap()).await;
        let (status, _) = ctx.server.get("/ws").await;
        assert!((400..500).contains(&status), "{framework:?}: {status}");
        all_recorded(&ctx.monitor, "the refused handshake recorded").await;
        let m = ctx.server.metrics().await;
        assert_eq!(m.get(SESSIONS, &ROUTE), None, "{framework:?}");
        assert_eq!(m.get(SESSION_COUNT, &ROUTE), None, "{framework:?}");
        assert_eq!(ws_requests(&m, "101"), 0.0);
    }
}
