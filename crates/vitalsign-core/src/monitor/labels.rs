//! Label policy: the names a label source may use, and label functions.

use super::record::HeaderLookup;
use std::fmt;
use std::sync::Arc;

#[cfg(doc)]
use super::MonitorBuilder;
use crate::error::{ConfigError, ConfigErrorKind};

/// Default cap on distinct label sets per metric (see [`MonitorBuilder::max_label_sets`]).
pub const DEFAULT_MAX_LABEL_SETS: usize = 10_000;

/// Most handler tags that can be declared as labels.
pub const MAX_LABEL_TAGS: usize = 8;

/// Label names that Prometheus or vitalsign itself writes: no label source may use them.
pub const RESERVED_LABEL_NAMES: &[&str] = &[
    "le",
    "quantile",
    "http_request_method",
    "http_route",
    "http_response_status_code",
    "error_code",
    "component",
    "otel_metric_overflow",
    "sink",
    "section",
    "key",
];

/// Checks a Prometheus metric or label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub(crate) fn check_name(setting: &'static str, what: &str, name: &str) -> Result<(), ConfigError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__");
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            ConfigErrorKind::InvalidName,
            setting,
            format!(
                "{what} {name:?} is not a valid Prometheus name: use [a-zA-Z_][a-zA-Z0-9_]*, not starting with \"__\""
            ),
        ))
    }
}

/// What a label function sees of a request.
pub struct RequestInfo<'a> {
    /// The method token as received.
    pub method: &'a [u8],
    /// The raw path.
    pub path: &'a str,
    headers: &'a HeaderLookup<'a>,
}

impl<'a> RequestInfo<'a> {
    /// Adapters build it from their request; `headers` looks a header up by name.
    pub fn new(method: &'a [u8], path: &'a str, headers: &'a HeaderLookup<'a>) -> Self {
        RequestInfo {
            method,
            path,
            headers,
        }
    }

    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        (self.headers)(name)
    }
}

impl fmt::Debug for RequestInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestInfo")
            .field("method", &String::from_utf8_lossy(self.method))
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The signature of a label function.
pub(super) type LabelFnDyn = dyn Fn(&RequestInfo<'_>) -> Option<String> + Send + Sync;

/// A label function, printed by name.
#[derive(Clone)]
pub(super) struct LabelFn(pub(super) Arc<LabelFnDyn>);

impl fmt::Debug for LabelFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LabelFn")
    }
}
