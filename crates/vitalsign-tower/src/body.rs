//! [`ResponseBody`].

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use vitalsign_core::adapter::Flight;

pin_project! {
    /// The response body of [`MonitorService`](crate::MonitorService): records the request when
    /// the body ends (last frame, or already empty), as an error with error code `body_error`
    /// when it yields an error, or as a disconnect when it is dropped before that.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        flight: Flight,
    }
}

impl<B: Body> ResponseBody<B> {
    /// The body, with its flight (after [`Flight::body_starts`]).
    pub(crate) fn new(inner: B, flight: Flight) -> Self {
        ResponseBody { inner, flight }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("flight", &self.flight)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        if !this.flight.is_recording() {
            // Recorded already (the frame that ended it was polled), or excluded: a plain poll.
            return inner.poll_frame(cx);
        }
        let result = ready!(this.flight.in_body(|| inner.as_mut().poll_frame(cx)));
        if let Some(Ok(frame)) = &result {
            if let Some(data) = frame.data_ref() {
                this.flight.body_bytes(bytes::Buf::remaining(data) as u64);
            }
        }
        match &result {
            // hyper stops polling a body with an exact length once it reports its end.
            None => this.flight.complete(),
            Some(Ok(_)) if inner.is_end_stream() => this.flight.complete(),
            Some(Ok(_)) => {}
            // The response is cut short: an error of the service, not a client's hang-up.
            Some(Err(_)) => this.flight.body_failed(),
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
