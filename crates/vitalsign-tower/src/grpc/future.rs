//! [`GrpcResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use vitalsign_core::adapter::Flight;
use vitalsign_core::rpc::GrpcCode;

use super::GrpcResponseBody;

pin_project! {
    /// The response future of [`GrpcService`](super::GrpcService): notes the response head
    /// (and the status of a trailers-only response) and hands the call on to the body.
    pub struct GrpcResponseFuture<F> {
        #[pin]
        inner: F,
        flight: Flight,
    }
}

impl<F> GrpcResponseFuture<F> {
    pub(crate) fn new(inner: F, flight: Flight) -> Self {
        GrpcResponseFuture { inner, flight }
    }
}

impl<F> std::fmt::Debug for GrpcResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcResponseFuture")
            .field("flight", &self.flight)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for GrpcResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<GrpcResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        match ready!(this.flight.in_scope(|| inner.as_mut().poll(cx))) {
            Ok(response) => {
                // A trailers-only response (an error before any message, an unknown method)
                // carries its status in the headers.
                if let Some(status) = response.headers().get(&super::GRPC_STATUS) {
                    this.flight
                        .rpc_status(GrpcCode::from_header(status.as_bytes()));
                }
                this.flight.set_status(response.status().as_u16());
                if response.body().is_end_stream() {
                    this.flight.complete();
                }
                let flight = std::mem::take(this.flight);
                Poll::Ready(Ok(response.map(|body| GrpcResponseBody::new(body, flight))))
            }
            Err(error) => {
                this.flight.failed(500);
                Poll::Ready(Err(error))
            }
        }
    }
}
