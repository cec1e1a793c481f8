//! `GrpcLayer` on a hand-made gRPC service (feature `grpc`): message prefixes split across
//! frames in both directions, a stream that ends without a status, the error-code setting.
#![cfg(feature = "grpc")]

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tower::{Layer, ServiceExt};
use vitalsign_core::rpc::GrpcErrorCodes;
use vitalsign_core::Monitor;
use vitalsign_tower::grpc::GrpcLayer;

type Frames =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn body(frames: Vec<Frame<Bytes>>) -> Frames {
    StreamBody::new(stream::iter(frames.into_iter().map(Ok).collect::<Vec<_>>()))
}

fn data(bytes: &'static [u8]) -> Frame<Bytes> {
    Frame::data(Bytes::from_static(bytes))
}

/// Calls `/pkg.S/M` through `layer`: the request sends two messages (1 byte and empty) with
/// their prefixes split across frames; the response sends two (2 bytes and 1 byte), split too,
/// then `trailers` if any.
async fn call(layer: GrpcLayer, trailers: Option<HeaderMap>) {
    let service = layer.layer(tower::service_fn(move |req: Request<_>| {
        let trailers = trailers.clone();
        async move {
            // The handler reads the whole request, as tonic does.
            let _ = BodyExt::collect(req.into_body()).await;
            let mut frames = vec![
                data(&[0, 0, 0, 0, 2, b'a']),
                data(&[b'b', 0, 0]),
                data(&[0, 0, 1, b'c']),
            ];
            frames.extend(trailers.map(Frame::trailers));
            Ok::<_, Infallible>(Response::new(body(frames)))
        }
    }));
    let request = Request::post("/pkg.S/M")
        .header("content-type", "application/grpc")
        .body(body(vec![
            data(&[0, 0, 0]),
            data(&[0, 1, b'x', 0, 0, 0, 0, 0]),
        ]))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    BodyExt::collect(response.into_body()).await.unwrap();
}

const LABELS: &str =
    r#"{rpc_system="grpc",rpc_service="pkg.S",rpc_method="M",rpc_grpc_status_code="#;

/// Regression (issue 16): a gRPC stream that ends without a `grpc-status` is `UNKNOWN` (an
/// error by default), and messages whose prefixes are split across frames are each counted
/// once, in both directions.
#[tokio::test]
async fn a_stream_without_status_is_unknown_and_split_prefixes_count_once() {
    let monitor = Monitor::builder("grpc").build().unwrap();
    call(GrpcLayer::new(&monitor).service("pkg.S"), None).await;
    assert_eq!(monitor.in_flight(), 0);
    let text = monitor.render_metrics().unwrap();
    for line in [
        format!("rpc_server_call_duration_seconds_count{LABELS}\"2\"}} 1"),
        format!("rpc_server_requests_per_rpc_sum{LABELS}\"2\"}} 2"),
        format!("rpc_server_responses_per_rpc_sum{LABELS}\"2\"}} 2"),
        format!("rpc_server_errors_total{LABELS}\"2\"}} 1"),
        r#"rpc_server_active_calls{rpc_system="grpc"} 0"#.to_owned(),
    ] {
        assert!(text.contains(&line), "missing {line}\n{text}");
    }
    assert!(!text.contains("rpc_server_disconnects_total{"), "{text}");
}

/// The trailers' status is the call's; the error codes are the layer's to choose.
#[tokio::test]
async fn the_trailers_give_the_status_and_the_error_codes_are_configurable() {
    let monitor = Monitor::builder("grpc").build().unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "14".parse().unwrap());
    let layer = GrpcLayer::new(&monitor).method("/pkg.S/M");
    call(layer.clone(), Some(trailers.clone())).await;
    call(layer.error_codes(GrpcErrorCodes::none()), Some(trailers)).await;
    let text = monitor.render_metrics().unwrap();
    let count = format!("rpc_server_call_duration_seconds_count{LABELS}\"14\"}} 2");
    let errors = format!("rpc_server_errors_total{LABELS}\"14\"}} 1");
    assert!(text.contains(&count), "{text}");
    assert!(
        text.contains(&errors),
        "UNAVAILABLE once an error, once not:\n{text}"
    );
}
