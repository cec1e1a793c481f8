//! The demo's gRPC service (`--grpc-addr`): tonic's `demo.v1.Greeter` from `proto/demo.proto`,
//! recorded by `GrpcLayer` on the same monitor as the HTTP app (its series on the same
//! `/metrics`). Shared by `main.rs` and the tests.

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use tonic::{Request, Response, Status};
use vitalsign::Monitor;
use vitalsign_demo_proto::greeter_server::{Greeter, GreeterServer};
use vitalsign_demo_proto::{HelloReply, HelloRequest};
use vitalsign_tower::grpc::GrpcLayer;

/// Replies of `StreamHello`.
pub(crate) const STREAM_REPLIES: u32 = 5;
/// Pause between two replies of `StreamHello`.
pub(crate) const STREAM_INTERVAL: Duration = Duration::from_millis(50);
/// Message of `Fail`'s status.
pub(crate) const FAILURE: &str = "demo failure";

/// `demo.v1.Greeter`: `SayHello` answers, `Fail` fails with `INTERNAL`, `StreamHello` streams
/// five replies 50 ms apart.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DemoGreeter;

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

#[tonic::async_trait]
impl Greeter for DemoGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: format!("hello {}", request.into_inner().name),
        }))
    }

    async fn fail(&self, _: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        Err(Status::internal(FAILURE))
    }

    type StreamHelloStream = ReplyStream;

    async fn stream_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<Self::StreamHelloStream>, Status> {
        let name = request.into_inner().name;
        let replies = futures_util::stream::unfold(0, move |i| {
            let name = name.clone();
            async move {
                if i == STREAM_REPLIES {
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(STREAM_INTERVAL).await;
                }
                let reply = HelloReply {
                    message: format!("hello {name} #{}", i + 1),
                };
                Some((Ok(reply), i + 1))
            }
        });
        Ok(Response::new(Box::pin(replies) as ReplyStream))
    }
}

/// The layer recording the Greeter's calls into `monitor`: its methods (listed from
/// `demo.proto` at build time) by their names, any other path (`/demo.v1.Greeter/Nope`)
/// `unmatched`. (`GrpcLayer::service(GreeterServer::<DemoGreeter>::NAME)` would take every
/// method name of the service, capped.)
pub(crate) fn grpc_layer(monitor: &Monitor) -> GrpcLayer {
    vitalsign_demo_proto::METHODS
        .iter()
        .fold(GrpcLayer::new(monitor), |layer, path| layer.method(*path))
}

/// Serves the Greeter on `listener` until `shutdown` completes.
pub(crate) async fn serve_grpc(
    monitor: Monitor,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .layer(grpc_layer(&monitor))
        .add_service(GreeterServer::new(DemoGreeter))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
