//! [`Point`]: the handler's extractor of its request's point.

use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use vitalsign_core::endpoint::{MISSING_POINT_MESSAGE, TEXT_CONTENT_TYPE};
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
/// Fails with a 500 that says why when the app is not wrapped in
/// [`Monitoring`](crate::Monitoring) (or the request is excluded). Use `Option<Point>` to
/// accept both.
#[derive(Clone, Debug)]
pub struct Point(pub PointHandle);

impl Deref for Point {
    type Target = PointHandle;

    fn deref(&self) -> &PointHandle {
        &self.0
    }
}

/// Error of [`Point`]: no monitored request is in scope.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MissingPoint;

impl std::fmt::Display for MissingPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MISSING_POINT_MESSAGE)
    }
}

impl ResponseError for MissingPoint {
    fn error_response(&self) -> HttpResponse {
        HttpResponse::InternalServerError()
            .content_type(TEXT_CONTENT_TYPE)
            .body(MISSING_POINT_MESSAGE)
    }
}

impl FromRequest for Point {
    type Error = MissingPoint;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(_req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(PointHandle::current().map(Point).ok_or(MissingPoint))
    }
}
