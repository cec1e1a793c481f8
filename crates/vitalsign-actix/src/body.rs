//! [`ResponseBody`].

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use pin_project_lite::pin_project;
use vitalsign_core::adapter::Flight;

pin_project! {
    /// Response body of [`Monitoring`](crate::Monitoring): records the request when the body
    /// ends (last chunk, or nothing to send), as an error with error code `body_error` when it
    /// yields an error, or as a disconnect when actix drops it before that.
    pub struct ResponseBody<B> {
        #[pin]
        body: B,
        flight: Flight,
    }
}

impl<B: MessageBody> ResponseBody<B> {
    pub(crate) fn new(body: B, mut flight: Flight) -> Self {
        flight.body_starts(matches!(body.size(), BodySize::None | BodySize::Sized(0)));
        ResponseBody { body, flight }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("flight", &self.flight)
            .finish_non_exhaustive()
    }
}

impl<B: MessageBody> MessageBody for ResponseBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let mut body = this.body;
        let result = ready!(this.flight.in_body(|| body.as_mut().poll_next(cx)));
        if let Some(Ok(bytes)) = &result {
            this.flight.body_bytes(bytes.len() as u64);
        }
        match &result {
            None => this.flight.complete(),
            // actix closes the connection: an error of the service, not a client's hang-up.
            Some(Err(_)) => this.flight.body_failed(),
            Some(Ok(_)) => {}
        }
        Poll::Ready(result)
    }

    /// A body that is all in memory is handed over whole: the request ends here.
    fn try_into_bytes(self) -> Result<Bytes, Self> {
        let ResponseBody { body, mut flight } = self;
        match body.try_into_bytes() {
            Ok(bytes) => {
                flight.body_bytes(bytes.len() as u64);
                flight.complete();
                Ok(bytes)
            }
            Err(body) => Err(ResponseBody { body, flight }),
        }
    }
}
