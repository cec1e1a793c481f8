//! [`MonitoredBody`].

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use pin_project_lite::pin_project;
use vitalsign_core::InFlight;

pin_project! {
    /// Response body of [`Monitoring`](crate::Monitoring): records the request when the body
    /// ends (last chunk, error, or nothing to send), or as a disconnect when actix drops it
    /// before that.
    pub struct MonitoredBody<B> {
        #[pin]
        body: B,
        flight: Option<InFlight>,
    }
}

impl<B: MessageBody> MonitoredBody<B> {
    pub(crate) fn new(body: B, mut flight: Option<InFlight>) -> Self {
        let nothing_to_send = matches!(body.size(), BodySize::None | BodySize::Sized(0))
            || flight.as_ref().is_some_and(|f| !f.response_has_body());
        if nothing_to_send {
            if let Some(mut flight) = flight.take() {
                flight.complete();
            }
        }
        MonitoredBody { body, flight }
    }
}

impl<B> std::fmt::Debug for MonitoredBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitoredBody")
            .field("flight", &self.flight)
            .finish_non_exhaustive()
    }
}

impl<B: MessageBody> MessageBody for MonitoredBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut this = self.project();
        let result = ready!(match this.flight.as_mut() {
            Some(flight) => flight.in_scope(|| this.body.as_mut().poll_next(cx)),
            None => this.body.as_mut().poll_next(cx),
        });
        if matches!(result, None | Some(Err(_))) {
            if let Some(mut flight) = this.flight.take() {
                flight.complete();
            }
        }
        Poll::Ready(result)
    }

    /// A body that is all in memory is handed over whole: the request ends here.
    fn try_into_bytes(self) -> Result<Bytes, Self> {
        let MonitoredBody { body, mut flight } = self;
        match body.try_into_bytes() {
            Ok(bytes) => {
                if let Some(mut flight) = flight.take() {
                    flight.complete();
                }
                Ok(bytes)
            }
            Err(body) => Err(MonitoredBody { body, flight }),
        }
    }
}
