//! [`Point`]: the handler's extractor of its request's point.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use vitalsign_core::PointHandle;

/// Extractor of the current request's [`PointHandle`]: add tags and fields, attach an error
/// code, time a section. Dereferences to [`PointHandle`].
///
/// ```
/// use vitalsign_actix::Point;
///
/// async fn get_user(point: Point) -> &'static str {
///     point.tag("handler_id", "get_user");
///     "user"
/// }
/// ```
///
/// It never fails, so that a monitoring setting never breaks a route. Where nothing is recorded
/// it is a handle that records nothing ([`PointHandle::is_recording`] is `false`):
///
/// - the request's path is excluded from recording (`exclude_path`), silently;
/// - the request never passed [`Monitoring`](crate::Monitoring): the resource is outside the
///   wrapped app or scope. That is a wiring mistake, logged once at `warn`.
///
/// The handle is found through a thread-local of the task that runs the middleware, which costs
/// nothing. A future the handler spawns that extracts its point from the request
/// (`Point::extract(&req)`) runs on another task: it finds the point in the request's
/// extensions when the monitor is built with
/// [`MonitorBuilder::point_in_extensions`](vitalsign_core::MonitorBuilder::point_in_extensions),
/// and otherwise gets a handle that records nothing (and the warning). Moving a clone of the
/// handler's `Point` into the spawned future works either way.
///
/// `Option<Point>` is accepted too, and is always `Some`.
#[derive(Clone, Debug)]
pub struct Point(pub PointHandle);

impl Deref for Point {
    type Target = PointHandle;

    fn deref(&self) -> &PointHandle {
        &self.0
    }
}

impl FromRequest for Point {
    type Error = Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Ok(Point(PointHandle::of_request(|| {
            req.extensions().get::<PointHandle>().cloned()
        }))))
    }
}
