//! Error classification: which finished requests are errors.
//!
//! ```
//! use vitalsign_core::{ClassifyError, DefaultClassifier, Monitor, RequestPoint};
//!
//! // Count 4xx as errors too.
//! let monitor = Monitor::builder("shop")
//!     .classify_errors(|point: &RequestPoint<'_>, code: Option<&str>| {
//!         point.status_code >= 400 || code.is_some()
//!     })
//!     .build()
//!     .unwrap();
//! # let _ = monitor;
//! ```

use std::fmt;

use crate::RequestPoint;

/// Decides whether a finished request is an error (and gets an
/// [`ErrorPoint`](crate::ErrorPoint)).
pub trait ClassifyError: Send + Sync + 'static {
    /// `error_code` is the code the handler attached, if any; else `panic` for a panic and
    /// `body_error` for a response body that failed.
    fn is_error(&self, point: &RequestPoint<'_>, error_code: Option<&str>) -> bool;
}

impl<F> ClassifyError for F
where
    F: Fn(&RequestPoint<'_>, Option<&str>) -> bool + Send + Sync + 'static,
{
    fn is_error(&self, point: &RequestPoint<'_>, error_code: Option<&str>) -> bool {
        self(point, error_code)
    }
}

/// The default rule: status >= 500, or an error code attached by the handler. A client hang-up
/// (status 499) is not an error of the service.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultClassifier;

impl ClassifyError for DefaultClassifier {
    fn is_error(&self, point: &RequestPoint<'_>, error_code: Option<&str>) -> bool {
        point.status_code >= 500 || error_code.is_some()
    }
}

pub(crate) struct BoxedClassifier(pub(crate) Box<dyn ClassifyError>, pub(crate) &'static str);

impl fmt::Debug for BoxedClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
}
