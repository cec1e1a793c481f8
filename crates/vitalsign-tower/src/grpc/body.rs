//! [`GrpcRequestBody`] and [`GrpcResponseBody`]: count messages as they pass, and end the call
//! at the trailers.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use vitalsign_core::adapter::Flight;
use vitalsign_core::rpc::{GrpcCode, MessageCounter, RequestCounter};

/// Messages whose prefixes pass in `data`, read in place (no copy). Frames of hyper and
/// tonic are `Bytes`, one piece; a buffer of several pieces is read through up to 64 of them
/// (`Buf` shows no further pieces without consuming them).
fn count_messages(counter: &mut MessageCounter, data: &impl Buf) -> u32 {
    let chunk = data.chunk();
    if chunk.len() == data.remaining() {
        return counter.feed(chunk);
    }
    let mut slices = [std::io::IoSlice::new(&[]); 64];
    let filled = data.chunks_vectored(&mut slices);
    slices[..filled].iter().map(|s| counter.feed(s)).sum()
}

pin_project! {
    /// A gRPC request body that counts the messages the server reads from it.
    pub struct GrpcRequestBody<B> {
        #[pin]
        inner: B,
        counter: Option<RequestCounter>,
        messages: MessageCounter,
    }
}

impl<B> GrpcRequestBody<B> {
    pub(crate) fn new(inner: B, counter: Option<RequestCounter>) -> Self {
        GrpcRequestBody {
            inner,
            counter,
            messages: MessageCounter::default(),
        }
    }
}

impl<B> std::fmt::Debug for GrpcRequestBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcRequestBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for GrpcRequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let (Some(Ok(frame)), Some(counter)) = (&frame, this.counter.as_ref()) {
            if let Some(data) = frame.data_ref() {
                counter.add(count_messages(this.messages, data));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A gRPC response body: counts the messages sent, reads the status of the trailers and
    /// records the call when the stream ends (or, dropped before, as `CANCELLED`).
    pub struct GrpcResponseBody<B> {
        #[pin]
        inner: B,
        flight: Flight,
        messages: MessageCounter,
    }
}

impl<B: Body> GrpcResponseBody<B> {
    /// The body, with its flight (completed already if the body is empty).
    pub(crate) fn new(inner: B, flight: Flight) -> Self {
        GrpcResponseBody {
            inner,
            flight,
            messages: MessageCounter::default(),
        }
    }
}

impl<B> std::fmt::Debug for GrpcResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcResponseBody")
            .field("flight", &self.flight)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for GrpcResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let result = ready!(this.flight.in_body(|| inner.as_mut().poll_frame(cx)));
        match &result {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.flight.body_bytes(data.remaining() as u64);
                    this.flight
                        .rpc_responses(count_messages(this.messages, data));
                } else if let Some(trailers) = frame.trailers_ref() {
                    if let Some(status) = trailers.get(&super::GRPC_STATUS) {
                        this.flight
                            .rpc_status(GrpcCode::from_header(status.as_bytes()));
                    }
                    // The trailers end a gRPC response.
                    this.flight.complete();
                }
                if inner.is_end_stream() {
                    this.flight.complete();
                }
            }
            None => this.flight.complete(),
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
