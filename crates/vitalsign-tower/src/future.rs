//! [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use vitalsign_core::adapter::Flight;

use crate::ResponseBody;

pin_project! {
    /// The response future of [`MonitorService`](crate::MonitorService). Dropping it before it
    /// resolves records a disconnect.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        flight: Flight,
    }
}

impl<F> ResponseFuture<F> {
    /// The future of the inner service's call (made inside [`Flight::enter_call`]).
    #[inline]
    pub(crate) fn new(inner: F, flight: Flight) -> Self {
        ResponseFuture { inner, flight }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("flight", &self.flight)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        match ready!(this.flight.in_scope(|| inner.as_mut().poll(cx))) {
            Ok(response) => {
                this.flight.set_status(response.status().as_u16());
                // HEAD, 204, 304, empty bodies: the server will not poll (or not send) the body.
                this.flight.body_starts(response.body().is_end_stream());
                let flight = std::mem::take(this.flight);
                Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, flight))))
            }
            Err(error) => {
                // No response: the server answers 500 or closes the connection.
                this.flight.failed(500);
                Poll::Ready(Err(error))
            }
        }
    }
}
