//! [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use vitalsign_core::InFlight;

use crate::ResponseBody;

pin_project! {
    /// The response future of [`MonitorService`](crate::MonitorService). Dropping it before it
    /// resolves records a disconnect.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        flight: Option<InFlight>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, flight: Option<InFlight>) -> Self {
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
        let mut this = self.project();
        let result = ready!(match this.flight.as_mut() {
            Some(flight) => flight.in_scope(|| this.inner.as_mut().poll(cx)),
            None => this.inner.as_mut().poll(cx),
        });
        let mut flight = this.flight.take();
        match result {
            Ok(response) => {
                if let Some(flight) = &mut flight {
                    flight.set_status(response.status().as_u16());
                }
                Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, flight))))
            }
            Err(error) => {
                if let Some(flight) = &mut flight {
                    // The service failed without a response: the server answers 500 or closes.
                    flight.set_status(500);
                    flight.complete();
                }
                Poll::Ready(Err(error))
            }
        }
    }
}
