//! [`RequestBodySize`]: counts request body bytes actually read, for
//! `http_server_request_body_size_bytes` and `RequestPoint::request_body_bytes`.

use std::future::{ready, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::web::Bytes;
use actix_web::{error::PayloadError, Error, HttpMessage};
use vitalsign_core::PointHandle;

/// Counts the request body bytes the handler reads. Register it *inside* [`Monitoring`]
/// (wrap it first):
///
/// ```
/// use actix_web::{web, App};
/// use vitalsign_actix::{RequestBodySize, Monitoring};
/// use vitalsign_core::Monitor;
///
/// let monitor = Monitor::builder("shop").request_size_histogram(true).build().unwrap();
/// let app = App::new()
///     .wrap(RequestBodySize)
///     .wrap(Monitoring::new(&monitor))
///     .route("/upload", web::post().to(|body: String| async move { body.len().to_string() }));
/// # let _ = app;
/// ```
///
/// It replaces the payload with a counting stream (an allocation per request), which is why it
/// is a middleware of its own.
///
/// [`Monitoring`]: crate::Monitoring
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestBodySize;

impl<S, B> Transform<S, ServiceRequest> for RequestBodySize
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestBodySizeMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestBodySizeMiddleware { service }))
    }
}

/// The service of [`RequestBodySize`].
#[derive(Debug)]
pub struct RequestBodySizeMiddleware<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for RequestBodySizeMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = S::Future;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let point = PointHandle::current()
            .or_else(|| req.extensions().get::<PointHandle>().cloned())
            .filter(PointHandle::is_recording);
        if let Some(point) = point {
            let inner = req.take_payload();
            let counting = Counting { inner, point };
            req.set_payload(Payload::from(Box::pin(counting)
                as Pin<
                    Box<dyn futures_core::Stream<Item = Result<Bytes, PayloadError>>>,
                >));
        }
        self.service.call(req)
    }
}

/// The request payload, counting into its request's point.
pub(crate) struct Counting {
    pub(crate) inner: Payload,
    pub(crate) point: PointHandle,
}

impl futures_core::Stream for Counting {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &item {
            self.point.count_request_body(bytes.len() as u64);
        }
        item
    }
}
