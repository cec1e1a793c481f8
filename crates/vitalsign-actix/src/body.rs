//! [`ResponseBody`].

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::web::Bytes;
use pin_project_lite::pin_project;
use std::rc::Rc;

use vitalsign_core::adapter::{Flight, FlightTable, ParkedFlight};

pin_project! {
    /// Response body of [`Monitoring`](crate::Monitoring): records the request when the body
    /// ends (last chunk, or nothing to send), as an error with error code `body_error` when it
    /// yields an error, or as a disconnect when actix drops it before that.
    pub struct ResponseBody<B> {
        #[pin]
        body: Inner<B>,
        // Parked in the worker's table: the response moves many times on its way to the socket,
        // and a body carrying the flight itself (two cache lines) made each move a `memcpy`.
        flight: ParkedFlight,
    }
}

pin_project! {
    /// The body sent.
    #[project = InnerProj]
    enum Inner<B> {
        /// The application's.
        App { #[pin] body: B },
        /// An endpoint's answer ([`Monitoring::with_endpoints`](crate::Monitoring::with_endpoints)).
        Endpoint { body: Bytes },
    }
}

impl<B: MessageBody> ResponseBody<B> {
    /// The application's body, its flight parked (after [`Flight::body_starts`]).
    pub(crate) fn new(body: B, flight: ParkedFlight) -> Self {
        ResponseBody {
            body: Inner::App { body },
            flight,
        }
    }

    /// The body of an endpoint's answer.
    pub(crate) fn endpoint(body: Bytes, flight: ParkedFlight) -> Self {
        ResponseBody {
            body: Inner::Endpoint { body },
            flight,
        }
    }
}

/// The response head is here: tells `flight` its status and whether the body has anything to
/// send (see [`Flight::body_starts`]), and parks it in the worker's table for the body.
pub(crate) fn park<B: MessageBody>(
    flight: &mut Flight,
    response: &ServiceResponse<B>,
    flights: &Rc<FlightTable>,
) -> ParkedFlight {
    flight.set_status(response.status().as_u16());
    let size = response.response().body().size();
    flight.body_starts(matches!(size, BodySize::None | BodySize::Sized(0)));
    flight.park(flights)
}

impl<B: MessageBody> Inner<B> {
    #[inline]
    fn size(&self) -> BodySize {
        match self {
            Inner::App { body } => body.size(),
            Inner::Endpoint { body } => body.size(),
        }
    }

    #[inline]
    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, B::Error>>> {
        match self.project() {
            InnerProj::App { body } => body.poll_next(cx),
            // All in memory: handed over in one chunk, then the end.
            InnerProj::Endpoint { body } => {
                Poll::Ready((!body.is_empty()).then(|| Ok(std::mem::take(body))))
            }
        }
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
        if !this.flight.is_recording() {
            // Recorded already (the chunk that ended it was polled), or excluded: a plain poll.
            return body.poll_next(cx);
        }
        let result = ready!(this.flight.in_body(|| body.as_mut().poll_next(cx)));
        match &result {
            // A sized body that has nothing left after this chunk has ended (actix polls it
            // once more for its end, which is then a plain poll).
            Some(Ok(bytes)) if body.size() == BodySize::Sized(0) => {
                this.flight.last_bytes(bytes.len() as u64);
            }
            Some(Ok(bytes)) => this.flight.body_bytes(bytes.len() as u64),
            None => this.flight.complete(),
            // actix closes the connection: an error of the service, not a client's hang-up.
            Some(Err(_)) => this.flight.body_failed(),
        }
        Poll::Ready(result)
    }

    /// A body that is all in memory is handed over whole: the request ends here.
    fn try_into_bytes(self) -> Result<Bytes, Self> {
        let ResponseBody { body, mut flight } = self;
        let bytes = match body {
            Inner::App { body } => match body.try_into_bytes() {
                Ok(bytes) => bytes,
                Err(body) => {
                    return Err(ResponseBody {
                        body: Inner::App { body },
                        flight,
                    })
                }
            },
            Inner::Endpoint { body } => body,
        };
        flight.body_bytes(bytes.len() as u64);
        flight.complete();
        Ok(bytes)
    }
}
