//! Configuration errors: data with a kind, the setting it concerns, and a sentence.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// What kind of mistake a [`ConfigError`] reports.
///
/// ```
/// use vitalsign_core::{ConfigErrorKind, Monitor};
///
/// let err = Monitor::builder("shop").global_label("le", "x").build().unwrap_err();
/// assert_eq!(err.kind(), ConfigErrorKind::ReservedName);
/// assert_eq!(err.setting(), "global_label");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A metric, label or component name that is not valid where it is used.
    InvalidName,
    /// A name that Prometheus or vitalsign itself writes (`le`, `quantile`, `http_route`, …).
    ReservedName,
    /// One name given twice, by one setting or by two label sources.
    DuplicateName,
    /// A number outside the range the setting accepts.
    OutOfRange,
    /// A value the setting cannot use (an unsupported URL scheme, an empty token, …).
    InvalidValue,
    /// Something the monitor or a sink needs could not be created (a thread, a socket, a
    /// runtime); [`std::error::Error::source`] holds the cause.
    Resource,
}

/// A configuration value was refused: which setting, what kind of mistake, and why.
///
/// `Display` is one lowercase sentence that names the setting and the value.
///
/// ```
/// use vitalsign_core::{ConfigErrorKind, Monitor};
///
/// let err = Monitor::builder("shop").exclude_status(700).build().unwrap_err();
/// assert_eq!(err.kind(), ConfigErrorKind::OutOfRange);
/// assert_eq!(err.setting(), "exclude_status");
/// assert!(err.to_string().contains("700"));
/// ```
#[derive(Clone)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    setting: Cow<'static, str>,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl ConfigError {
    /// An error of `kind` about `setting` (the builder method's name), explained by `message`.
    ///
    /// For sinks and adapters built outside this crate that report their own configuration
    /// mistakes the same way.
    pub fn new(
        kind: ConfigErrorKind,
        setting: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            kind,
            setting: setting.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause, returned by [`std::error::Error::source`].
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The setting (builder method) that was refused, e.g. `global_label`.
    pub fn setting(&self) -> &str {
        &self.setting
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigError")
            .field("kind", &self.kind)
            .field("setting", &self.setting)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
