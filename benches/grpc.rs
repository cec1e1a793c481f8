//! The gRPC part of `compare.rs` (`VITALSIGN_BENCH_ONLY=grpc`): unary `SayHello` calls through
//! a bare tonic `Routes` and through the same behind vitalsign's `GrpcLayer`, in process, the
//! response bodies (messages and trailers) fully collected.

use std::hint::black_box;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use prost::Message;
use tonic::{Request, Response, Status};
use tower::{Service, ServiceExt};
use vitalsign::grpc::GrpcLayer;
use vitalsign::Monitor;
use vitalsign_demo_proto::greeter_server::{Greeter, GreeterServer};
use vitalsign_demo_proto::{HelloReply, HelloRequest};

use super::{alternate, Variant};

/// A Greeter that answers `SayHello` (the other methods are not measured).
struct Bench;

type Replies =
    std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<HelloReply, Status>> + Send>>;

#[tonic::async_trait]
impl Greeter for Bench {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: request.into_inner().name,
        }))
    }

    async fn fail(&self, _: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        Err(Status::internal("bench"))
    }

    type StreamHelloStream = Replies;

    async fn stream_hello(
        &self,
        _: Request<HelloRequest>,
    ) -> Result<Response<Self::StreamHelloStream>, Status> {
        Err(Status::unimplemented("bench"))
    }
}

/// One framed `HelloRequest` (the 5-byte prefix and the message).
fn frame() -> bytes::Bytes {
    let message = HelloRequest {
        name: "bench".to_owned(),
    }
    .encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed.into()
}

// The measured loop (`scripts/bench-instructions.sh` counts instructions inside `drive_*`).
#[inline(never)]
fn drive_grpc<S, B>(runtime: &tokio::runtime::Runtime, service: &mut S, n: u32) -> Duration
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let body = frame();
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..n {
            let request = http::Request::post("/demo.v1.Greeter/SayHello")
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(tonic::body::Body::new(http_body_util::Full::new(
                    body.clone(),
                )))
                .unwrap();
            let response = service.ready().await.unwrap().call(request).await.unwrap();
            black_box(response.into_body().collect().await.unwrap());
        }
        started.elapsed()
    })
}

pub(crate) fn bench_grpc() -> Vec<(String, f64)> {
    let rt = std::rc::Rc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let _entered = rt.enter();
    let monitor = Monitor::builder("bench").build().unwrap();
    let routes = || tonic::service::Routes::new(GreeterServer::new(Bench));
    let mut bare = routes();
    let mut layered = tower::Layer::layer(
        &GrpcLayer::new(&monitor).service("demo.v1.Greeter"),
        routes(),
    );
    let (rt1, rt2) = (rt.clone(), rt.clone());
    let mut variants: Vec<Variant<'_>> = vec![
        (
            "bare tonic",
            Box::new(move |n| drive_grpc(&rt1, &mut bare, n)),
        ),
        (
            "vitalsign GrpcLayer",
            Box::new(move |n| drive_grpc(&rt2, &mut layered, n)),
        ),
    ];
    alternate(&mut variants)
}
