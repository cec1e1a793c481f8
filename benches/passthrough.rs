//! The least a middleware that sees the end of each response does, on each framework: it wraps
//! the response body in a type that delegates every call, and records nothing. What the
//! framework charges for that (axum re-boxing the wrapped body, actix moving the larger
//! response through its futures) is a floor under any such middleware, vitalsign's and the
//! peers' alike; the README's overhead section compares against it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The least state a recording middleware carries from the request to the end of its body:
/// the monitor, the start time, the route and method (vitalsign's is two cache lines: it also
/// keeps the request id and trace context inline).
const STATE_WORDS: usize = 4;

pin_project_lite::pin_project! {
    /// The inner service's future or response body, with the middleware's per-request state:
    /// every call is delegated to it (the future wraps the response's body in turn).
    pub(crate) struct Carrying<T> {
        #[pin]
        inner: T,
        state: [u64; STATE_WORDS],
    }
}

impl<T> Carrying<T> {
    fn new(inner: T) -> Self {
        Carrying {
            inner,
            state: [0; STATE_WORDS],
        }
    }
}

impl<B: http_body::Body> http_body::Body for Carrying<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        std::hint::black_box(&this.state);
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B: actix_web::body::MessageBody> actix_web::body::MessageBody for Carrying<B> {
    type Error = B::Error;

    fn size(&self) -> actix_web::body::BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<bytes::Bytes, Self::Error>>> {
        let this = self.project();
        std::hint::black_box(&this.state);
        this.inner.poll_next(cx)
    }
}

/// Tower: a layer whose service wraps each response body in [`Carrying`].
#[derive(Clone, Copy, Default)]
pub(crate) struct WrapBodyLayer;

impl<S> tower::Layer<S> for WrapBodyLayer {
    type Service = WrapBody<S>;

    fn layer(&self, inner: S) -> WrapBody<S> {
        WrapBody { inner }
    }
}

/// The service of [`WrapBodyLayer`].
#[derive(Clone)]
pub(crate) struct WrapBody<S> {
    inner: S,
}

impl<S, Req, B> tower::Service<Req> for WrapBody<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
{
    type Response = http::Response<Carrying<B>>;
    type Error = S::Error;
    type Future = Carrying<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        Carrying::new(self.inner.call(req))
    }
}

/// A response whose body the future (a [`Carrying`]) wraps: the Tower one and actix-web's.
pub(crate) trait WrapResponse {
    type Wrapped;
    fn wrap(self) -> Self::Wrapped;
}

impl<B> WrapResponse for http::Response<B> {
    type Wrapped = http::Response<Carrying<B>>;
    fn wrap(self) -> Self::Wrapped {
        self.map(Carrying::new)
    }
}

impl<B> WrapResponse for actix_web::dev::ServiceResponse<B> {
    type Wrapped = actix_web::dev::ServiceResponse<Carrying<B>>;
    fn wrap(self) -> Self::Wrapped {
        self.map_body(|_, body| Carrying::new(body))
    }
}

impl<F, R, E> Future for Carrying<F>
where
    F: Future<Output = Result<R, E>>,
    R: WrapResponse,
{
    type Output = Result<R::Wrapped, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        std::hint::black_box(&this.state);
        match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => Poll::Ready(Ok(response.wrap())),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// actix-web: a middleware that wraps each response body in [`Carrying`].
pub(crate) struct WrapBodyTransform;

impl<S, B> actix_web::dev::Transform<S, actix_web::dev::ServiceRequest> for WrapBodyTransform
where
    S: actix_web::dev::Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    type Response = actix_web::dev::ServiceResponse<Carrying<B>>;
    type Error = actix_web::Error;
    type Transform = WrapBody<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<WrapBody<S>, ()>>;

    fn new_transform(&self, inner: S) -> Self::Future {
        std::future::ready(Ok(WrapBody { inner }))
    }
}

impl<S, B> actix_web::dev::Service<actix_web::dev::ServiceRequest> for WrapBody<S>
where
    S: actix_web::dev::Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    type Response = actix_web::dev::ServiceResponse<Carrying<B>>;
    type Error = actix_web::Error;
    type Future = Carrying<S::Future>;

    actix_web::dev::forward_ready!(inner);

    fn call(&self, req: actix_web::dev::ServiceRequest) -> Self::Future {
        Carrying::new(self.inner.call(req))
    }
}
