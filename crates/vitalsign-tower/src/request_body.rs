//! [`RequestBodySizeLayer`]: counts request body bytes actually read, for
//! `http_server_request_body_size_bytes` and `RequestPoint::request_body_bytes`.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Request;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use vitalsign_core::PointHandle;

/// Counts the request body bytes the handler reads. Add it *inside* [`MonitorLayer`]
/// (before it, with axum's `Router::layer`), so that it runs within the monitored request:
///
/// ```
/// use axum::{routing::post, Router};
/// use vitalsign_core::Monitor;
/// use vitalsign_tower::{MonitorLayer, RequestBodySizeLayer};
///
/// let monitor = Monitor::builder("shop").request_size_histogram(true).build().unwrap();
/// let app: Router = Router::new()
///     .route("/upload", post(|body: String| async move { body.len().to_string() }))
///     .layer(RequestBodySizeLayer)
///     .layer(MonitorLayer::new(&monitor));
/// ```
///
/// It changes the request body type (axum then boxes it): an allocation per request, which is
/// why it is a layer of its own.
///
/// [`MonitorLayer`]: crate::MonitorLayer
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestBodySizeLayer;

impl<S> Layer<S> for RequestBodySizeLayer {
    type Service = RequestBodySize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestBodySize { inner }
    }
}

/// The service of [`RequestBodySizeLayer`].
#[derive(Clone, Debug)]
pub struct RequestBodySize<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for RequestBodySize<S>
where
    S: Service<Request<CountingBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Behind tower's `Buffer` this runs on its worker: the handle is then in the
        // extensions, if the monitor puts it there.
        let point = PointHandle::current()
            .or_else(|| req.extensions().get::<PointHandle>().cloned())
            .filter(PointHandle::is_recording);
        self.inner
            .call(req.map(|inner| CountingBody { inner, point }))
    }
}

pin_project! {
    /// A request body that counts the bytes read from it into its request's point.
    pub struct CountingBody<B> {
        #[pin]
        inner: B,
        point: Option<PointHandle>,
    }
}

impl<B> std::fmt::Debug for CountingBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for CountingBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let (Some(Ok(frame)), Some(point)) = (&frame, this.point.as_ref()) {
            if let Some(data) = frame.data_ref() {
                point.count_request_body(bytes::Buf::remaining(data) as u64);
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
