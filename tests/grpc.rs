//! gRPC (tonic) on both frameworks' demo apps: a real tonic client against the demo's
//! `demo.v1.Greeter`, served by tonic behind `GrpcLayer` on the same monitor as the HTTP app,
//! whose `/metrics` then has the `rpc_server_*` series: exact counts per method and status,
//! `Fail`'s trailer status, `StreamHello`'s message counts, a client that cancels mid-stream
//! (`CANCELLED`, a disconnect, nothing in flight), unknown methods under `unmatched`,
//! promtool clean, and the points seen by a sink with their gRPC tags.
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
#[path = "../examples/demo/grpc.rs"]
#[allow(dead_code)]
mod grpc;

use std::time::Duration;

use common::*;
use demo::{Ctx, Framework, BOTH};
use futures_util::StreamExt;
use tonic::transport::Channel;
use vitalsign_demo_proto::greeter_client::GreeterClient;
use vitalsign_demo_proto::{HelloReply, HelloRequest};

const CALLS: &str = "rpc_server_call_duration_seconds_count";
const REQUESTS_PER_RPC: &str = "rpc_server_requests_per_rpc";
const RESPONSES_PER_RPC: &str = "rpc_server_responses_per_rpc";
const RPC_ERRORS: &str = "rpc_server_errors_total";
const RPC_DISCONNECTS: &str = "rpc_server_disconnects_total";
const RPC_ACTIVE: &str = "rpc_server_active_calls";
const SERVICE: (&str, &str) = ("rpc_service", "demo.v1.Greeter");

/// The demo on `framework` plus its gRPC server on the same monitor, and a client of it.
async fn start(framework: Framework) -> (Ctx, GreeterClient<Channel>, Channel) {
    start_with(framework, app::monitor_builder().unwrap()).await
}

/// [`start`] with the monitor `builder` makes.
async fn start_with(
    framework: Framework,
    builder: vitalsign::MonitorBuilder,
) -> (Ctx, GreeterClient<Channel>, Channel) {
    let ctx = demo::start(framework, builder).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let monitor = ctx.monitor.clone();
    tokio::spawn(grpc::serve_grpc(monitor, listener, std::future::pending()));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{framework:?}: connect to the gRPC server: {e}"));
    (ctx, GreeterClient::new(channel.clone()), channel)
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
    }
}

/// The series of `method` with status `code` of the metric `name`.
fn call(m: &Exposition, name: &str, method: &str, code: &str) -> f64 {
    m.sum(
        name,
        &[
            ("rpc_system", "grpc"),
            SERVICE,
            ("rpc_method", method),
            ("rpc_grpc_status_code", code),
        ],
    )
}

/// A gRPC call to `path` with the Greeter's messages, whatever the server has there.
async fn raw_call(channel: &Channel, path: &'static str) -> tonic::Status {
    let mut client = tonic::client::Grpc::new(channel.clone());
    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
    client
        .unary(
            tonic::Request::new(hello("scanner")),
            http::uri::PathAndQuery::from_static(path),
            codec,
        )
        .await
        .expect_err("no such method")
}

async fn calls_statuses_and_messages(framework: Framework) {
    let (ctx, mut client, channel) = start(framework).await;
    for i in 0..3 {
        let reply = client.say_hello(hello(&format!("n{i}"))).await.unwrap();
        assert_eq!(reply.into_inner().message, format!("hello n{i}"));
    }
    for _ in 0..2 {
        let status = client.fail(hello("x")).await.expect_err("Fail fails");
        assert_eq!(status.code(), tonic::Code::Internal, "{framework:?}");
        assert_eq!(status.message(), grpc::FAILURE, "{framework:?}");
    }
    let mut stream = client.stream_hello(hello("s")).await.unwrap().into_inner();
    let mut replies = Vec::new();
    while let Some(reply) = stream.next().await {
        replies.push(reply.unwrap().message);
    }
    assert_eq!(
        replies.len(),
        grpc::STREAM_REPLIES as usize,
        "{framework:?}"
    );
    for path in ["/demo.v1.Greeter/Nope", "/x.Y/Z"] {
        let status = raw_call(&channel, path).await;
        assert_eq!(
            status.code(),
            tonic::Code::Unimplemented,
            "{framework:?} {path}"
        );
    }
    all_recorded(&ctx.monitor, "the gRPC calls recorded").await;

    let m = ctx.server.metrics().await;
    assert_eq!(call(&m, CALLS, "SayHello", "0"), 3.0, "{framework:?}");
    assert_eq!(call(&m, CALLS, "Fail", "13"), 2.0, "{framework:?}");
    assert_eq!(call(&m, CALLS, "StreamHello", "0"), 1.0, "{framework:?}");
    assert_eq!(m.sum(CALLS, &[]), 8.0, "{framework:?}: eight calls in all");
    // Errors: INTERNAL and the two UNIMPLEMENTED (server errors by default), not OK.
    assert_eq!(call(&m, RPC_ERRORS, "Fail", "13"), 2.0, "{framework:?}");
    assert_eq!(call(&m, RPC_ERRORS, "SayHello", "0"), 0.0, "{framework:?}");
    // Messages per call, from the 5-byte prefixes: unary 1 and 1; StreamHello 1 and 5.
    let stream_labels = |name: &str| call(&m, &format!("{name}_sum"), "StreamHello", "0");
    assert_eq!(stream_labels(REQUESTS_PER_RPC), 1.0, "{framework:?}");
    assert_eq!(stream_labels(RESPONSES_PER_RPC), 5.0, "{framework:?}");
    let say_sum = |name: &str| call(&m, &format!("{name}_sum"), "SayHello", "0");
    assert_eq!(say_sum(REQUESTS_PER_RPC), 3.0, "{framework:?}");
    assert_eq!(say_sum(RESPONSES_PER_RPC), 3.0, "{framework:?}");
    // Fail answers trailers-only: one request, no response message.
    assert_eq!(
        call(&m, &format!("{RESPONSES_PER_RPC}_sum"), "Fail", "13"),
        0.0
    );
    // Unknown methods, of a known service or not, share one bounded label.
    let unmatched = [
        ("rpc_service", "unmatched"),
        ("rpc_method", "unmatched"),
        ("rpc_grpc_status_code", "12"),
    ];
    assert_eq!(m.sum(CALLS, &unmatched), 2.0, "{framework:?}");
    assert!(
        !m.text.contains("Nope") && !m.text.contains("x.Y"),
        "{framework:?}: no label of an unknown path"
    );
    assert_eq!(m.get(RPC_ACTIVE, &[("rpc_system", "grpc")]), Some(0.0));
    // gRPC calls are not HTTP requests on /metrics.
    assert_eq!(
        m.sum(COUNT, &[("http_route", "/demo.v1.Greeter/SayHello")]),
        0.0
    );
    promtool_check(&m.text);

    // A sink (as the push sinks and `/stats`) sees each call as a point with its gRPC tags.
    let points = ctx.sink.requests_for("/demo.v1.Greeter/Fail");
    assert_eq!(points.len(), 2, "{framework:?}");
    for point in &points {
        assert_eq!(point.tag("rpc_service"), Some("demo.v1.Greeter"));
        assert_eq!(point.tag("rpc_method"), Some("Fail"));
        assert_eq!(point.tag("grpc_status"), Some("INTERNAL"));
    }
    let errors: Vec<_> = ctx
        .sink
        .errors()
        .into_iter()
        .filter(|e| e.route == "/demo.v1.Greeter/Fail")
        .collect();
    assert_eq!(errors.len(), 2, "{framework:?}");
    assert_eq!(errors[0].error_code, "INTERNAL");
    assert_eq!(ctx.sink.requests_for("unmatched").len(), 2, "{framework:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_statuses_and_messages_on_both_frameworks() {
    for framework in BOTH {
        calls_statuses_and_messages(framework).await;
    }
}

async fn cancelled_mid_stream(framework: Framework) {
    let (ctx, mut client, _channel) = start(framework).await;
    let mut stream = client.stream_hello(hello("c")).await.unwrap().into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a first reply within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(first.message, "hello c #1");
    // The client goes away mid-stream (RST_STREAM): the call ends as CANCELLED.
    drop(stream);
    all_recorded(&ctx.monitor, "the cancelled call recorded").await;
    let m = ctx.server.metrics().await;
    assert_eq!(call(&m, CALLS, "StreamHello", "1"), 1.0, "{framework:?}");
    assert_eq!(m.sum(CALLS, &[]), 1.0, "{framework:?}");
    assert_eq!(
        m.sum(RPC_DISCONNECTS, &[SERVICE, ("rpc_method", "StreamHello")]),
        1.0,
        "{framework:?}"
    );
    assert_eq!(
        m.sum(RPC_ERRORS, &[]),
        0.0,
        "CANCELLED is not a server error"
    );
    let sent = call(&m, &format!("{RESPONSES_PER_RPC}_sum"), "StreamHello", "1");
    assert!(
        (1.0..5.0).contains(&sent),
        "{framework:?}: {sent} replies sent"
    );
    assert_eq!(m.get(RPC_ACTIVE, &[("rpc_system", "grpc")]), Some(0.0));
    promtool_check(&m.text);
    let points = ctx.sink.requests_for("/demo.v1.Greeter/StreamHello");
    assert_eq!(points.len(), 1);
    assert!(points[0].disconnected, "{framework:?}");
    assert_eq!(points[0].tag("grpc_status"), Some("CANCELLED"));
}

/// Regression (issue 16): a client that cancels a server stream leaves a call recorded
/// `CANCELLED`, counted as a disconnect, and nothing in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_mid_stream_is_cancelled_and_a_disconnect_on_both_frameworks() {
    for framework in BOTH {
        cancelled_mid_stream(framework).await;
    }
}

async fn errors_reach_health_stats_and_statsd(framework: Framework) {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let statsd = vitalsign::sinks::StatsdSink::udp(udp.local_addr().unwrap().to_string())
        .flush_period(Duration::from_millis(20))
        .build()
        .unwrap();
    let builder = app::monitor_builder().unwrap().sink(statsd);
    let (ctx, mut client, _channel) = start_with(framework, builder).await;
    // The demo's rule: `http` degrades when more than half of at least 10 calls in 10 s fail.
    for _ in 0..10 {
        let status = client.fail(hello("x")).await.expect_err("Fail fails");
        assert_eq!(status.code(), tonic::Code::Internal);
    }
    all_recorded(&ctx.monitor, "the failed calls recorded").await;
    eventually("the health rule sees the INTERNAL calls", || async {
        ctx.monitor.health().components["http"].level == vitalsign::health::Level::Degraded
    })
    .await;
    // `/stats` counts them as requests.
    let stats = ctx.monitor.stats_json();
    assert_eq!(stats["requests"]["total"], 10, "{framework:?}: {stats}");
    // StatsD gets each call's point and error point, with the gRPC tags.
    let mut seen = String::new();
    let mut buf = vec![0u8; 65536];
    let want = [
        "rpc_service:demo.v1.Greeter",
        "rpc_method:Fail",
        "grpc_status:INTERNAL",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !seen
        .lines()
        .any(|l| l.contains("errors:1|c") && want.iter().all(|w| l.contains(w)))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let n = tokio::time::timeout(left, udp.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{framework:?}: no gRPC error in StatsD:\n{seen}"))
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    assert!(
        seen.lines()
            .any(|l| l.contains("requests:1|c") && want.iter().all(|w| l.contains(w))),
        "{seen}"
    );
}

/// Regression (issue 16): a gRPC error (HTTP 200, `grpc-status` 13 in the trailers-only
/// headers) must count as a server error for the health rules, and reach `/stats` and the push
/// sinks with its tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_errors_reach_health_rules_stats_and_push_sinks_on_both_frameworks() {
    for framework in BOTH {
        errors_reach_health_stats_and_statsd(framework).await;
    }
}
