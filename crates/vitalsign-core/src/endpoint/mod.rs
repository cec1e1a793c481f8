//! Framework-independent answers of vitalsign's endpoints (by default `/metrics`, `/stats`,
//! `/health`, `/health/{component}`, `/health/live`, `/health/ready`, `/annotations`,
//! `/annotations/{stream}`, `/status` and `/status/data`) and where they are mounted
//! ([`Endpoints`]); adapters only translate them into their framework's routes and response
//! type, so both frameworks serve the same bytes at the same paths. [`EndpointLookup`] finds
//! the endpoint of a request path without a router (the actix middleware's
//! `Monitoring::with_endpoints`, the admin listener).
//!
//! ```
//! use vitalsign_core::endpoint::{EndpointRequest, PROMETHEUS_CONTENT_TYPE};
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop").build().unwrap();
//! let page = monitor.metrics_endpoint(&EndpointRequest::default());
//! assert_eq!((page.status, page.content_type), (200, PROMETHEUS_CONTENT_TYPE));
//!
//! let health = monitor.health_endpoint(&EndpointRequest::default(), None);
//! assert_eq!(health.status, 200);
//! assert!(health.text().unwrap().contains(r#""overall":{"level":"available""#));
//! ```

// This file: what the endpoints are and where they are mounted ([`Endpoint`], [`Endpoints`]),
// and the request, body and response types adapters translate.
mod answers; // `Monitor`'s answer to each endpoint: `/metrics`, health, `/stats`, annotations, status
mod lookup; // `EndpointLookup`: which endpoint a request path is for

pub use lookup::{EndpointLookup, EndpointMatch};

use serde_json::Value;

#[cfg(doc)]
use crate::Monitor;

use crate::{ConfigError, ConfigErrorKind};

/// Content type of the Prometheus text exposition format (version 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Content type of the Prometheus protobuf exposition format: length-delimited
/// `io.prometheus.client.MetricFamily` messages (feature `native-histograms`).
#[cfg(feature = "native-histograms")]
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Content type of plain-text answers.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Content type of JSON answers.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Content type of the IETF health check response format (draft-inadarei-api-health-check).
pub const HEALTH_JSON_CONTENT_TYPE: &str = "application/health+json";

/// How long the health thread may stay busy without a pause before `/health/live` says the
/// process is stuck.
pub const LIVENESS_STALL: std::time::Duration = std::time::Duration::from_secs(5);

/// vitalsign's endpoints. Adapters mount the monitor's table
/// ([`Monitor::endpoint_routes`]), each path with one handler that calls
/// [`Monitor::serve_endpoint`]; [`Endpoints`] chooses the paths and which are mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/metrics`
    Metrics,
    /// `/health`
    Health,
    /// `/health/live`
    Live,
    /// `/health/ready`
    Ready,
    /// `/health/{component}`: follows the path of [`Endpoint::Health`].
    Component,
    /// `/stats`
    Stats,
    /// `/annotations`: the annotation streams (GET).
    Annotations,
    /// `/annotations/{stream}`: a stream's events (GET) and new events (POST); follows the
    /// path of [`Endpoint::Annotations`].
    AnnotationStream,
    /// `/status`: the HTML status page (feature `status`; 404 with a reason without it).
    Status,
    /// `/status/data`: the JSON document the status page reads (feature `status`).
    StatusData,
}

impl Endpoint {
    /// Every endpoint with its default route (axum and actix share the `{param}` syntax),
    /// static routes before those with a parameter. A slice, so that endpoints can be added.
    pub const ALL: &'static [(&'static str, Endpoint)] = &[
        ("/metrics", Endpoint::Metrics),
        ("/stats", Endpoint::Stats),
        ("/health", Endpoint::Health),
        ("/health/live", Endpoint::Live),
        ("/health/ready", Endpoint::Ready),
        ("/annotations", Endpoint::Annotations),
        ("/status", Endpoint::Status),
        ("/status/data", Endpoint::StatusData),
        ("/health/{component}", Endpoint::Component),
        ("/annotations/{stream}", Endpoint::AnnotationStream),
    ];

    /// Whether this endpoint also takes a `POST` with a body (read with [`EndpointBody`] and
    /// answered by [`Monitor::serve_endpoint_post`]): only [`Endpoint::AnnotationStream`].
    ///
    /// ```
    /// use vitalsign_core::Endpoint;
    ///
    /// assert!(Endpoint::AnnotationStream.takes_body());
    /// assert!(!Endpoint::Metrics.takes_body());
    /// ```
    pub fn takes_body(self) -> bool {
        self == Endpoint::AnnotationStream
    }

    /// The endpoint whose path this one's extends with a `/{parameter}`, if any.
    fn parent(self) -> Option<(Endpoint, &'static str)> {
        match self {
            Endpoint::Component => Some((Endpoint::Health, "component")),
            Endpoint::AnnotationStream => Some((Endpoint::Annotations, "stream")),
            _ => None,
        }
    }

    /// The default path of this endpoint.
    pub fn default_path(self) -> &'static str {
        Endpoint::ALL
            .iter()
            .find(|(_, e)| *e == self)
            .map_or("", |(path, _)| path)
    }
}

/// Where vitalsign's endpoints are mounted, and which: one table for both frameworks' routers
/// and the admin listener, given to [`MonitorBuilder::endpoints`](crate::MonitorBuilder::endpoints).
/// The monitor leaves requests to the mounted paths out of its figures (unless
/// [`MonitorBuilder::monitor_own_endpoints`](crate::MonitorBuilder::monitor_own_endpoints)),
/// so the exclusion follows the chosen paths.
///
/// Defaults: every endpoint, at the paths of [`Endpoint::ALL`], no prefix.
/// `/health/{component}` always sits under the health path (`/healthz/{component}` when the
/// health path is `/healthz`), and `/annotations/{stream}` under the annotations path. A
/// prefix goes before every path, custom ones included.
///
/// An application that already serves one of these paths itself (its own `/health`, say) must
/// mount vitalsign's elsewhere or leave that one out: axum panics at start-up on two routes
/// for one path ("Overlapping method route"), and actix serves whichever was registered first.
///
/// ```
/// use vitalsign_core::endpoint::{Endpoint, Endpoints};
/// use vitalsign_core::Monitor;
///
/// // Kubernetes-style probes, no /stats.
/// let monitor = Monitor::builder("shop")
///     .endpoints(
///         Endpoints::new()
///             .path(Endpoint::Health, "/healthz")
///             .path(Endpoint::Live, "/livez")
///             .path(Endpoint::Ready, "/readyz")
///             .without(Endpoint::Stats),
///     )
///     .build()
///     .unwrap();
/// let paths: Vec<&str> = monitor.endpoint_routes().iter().map(|(p, _)| &**p).collect();
/// assert_eq!(
///     paths,
///     ["/metrics", "/healthz", "/livez", "/readyz", "/annotations", "/status", "/status/data",
///      "/healthz/{component}", "/annotations/{stream}"]
/// );
///
/// // Everything under one prefix.
/// let monitor = Monitor::builder("shop")
///     .endpoints(Endpoints::new().prefix("/_vitalsign"))
///     .build()
///     .unwrap();
/// assert_eq!(&*monitor.endpoint_routes()[0].0, "/_vitalsign/metrics");
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Endpoints {
    prefix: String,
    paths: Vec<(Endpoint, String)>,
    only: Option<Vec<Endpoint>>,
    without: Vec<Endpoint>,
}

impl Endpoints {
    /// Every endpoint at its default path.
    pub fn new() -> Self {
        Endpoints::default()
    }

    /// Puts every endpoint under `prefix` (`"/_vitalsign"`, `"/admin"`): it starts with `/`
    /// and does not end with one.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Mounts `endpoint` at `path` (after the prefix, if any): it starts with `/`, does not end
    /// with one, and holds no empty segment, no segment starting with `:`, and no `{`, `}`,
    /// `*`, `?`, `#` or whitespace. [`Endpoint::Component`]
    /// has no path of its own: it follows [`Endpoint::Health`]'s; nor has
    /// [`Endpoint::AnnotationStream`], which follows [`Endpoint::Annotations`]'s.
    pub fn path(mut self, endpoint: Endpoint, path: impl Into<String>) -> Self {
        self.paths.retain(|(e, _)| *e != endpoint);
        self.paths.push((endpoint, path.into()));
        self
    }

    /// Mounts only these endpoints (the others are not served, and requests to their paths
    /// reach the application's own routes, or its 404).
    pub fn only(mut self, endpoints: impl IntoIterator<Item = Endpoint>) -> Self {
        self.only = Some(endpoints.into_iter().collect());
        self
    }

    /// Does not mount `endpoint`.
    pub fn without(mut self, endpoint: Endpoint) -> Self {
        self.without.push(endpoint);
        self
    }

    fn mounted(&self, endpoint: Endpoint) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.contains(&endpoint))
            && !self.without.contains(&endpoint)
    }

    fn own_path(&self, endpoint: Endpoint) -> &str {
        self.paths
            .iter()
            .find(|(e, _)| *e == endpoint)
            .map_or(endpoint.default_path(), |(_, path)| path)
    }

    /// The mounted endpoints with their full paths, static paths before the one with a
    /// parameter (the order actix needs), checked: a bad prefix or path, or two endpoints
    /// on one path, is a [`ConfigError`].
    pub fn routes(&self) -> Result<Vec<(Box<str>, Endpoint)>, ConfigError> {
        if !self.prefix.is_empty() {
            check_path("prefix", &self.prefix)?;
        }
        if let Some((endpoint, path)) = self.paths.iter().find(|(e, _)| e.parent().is_some()) {
            let (parent, param) = endpoint.parent().unwrap_or((*endpoint, ""));
            return Err(ConfigError::new(
                ConfigErrorKind::InvalidValue,
                "endpoints",
                format!(
                    "path(Endpoint::{endpoint:?}, {path:?}): {}/{{{param}}} follows the path \
                     of Endpoint::{parent:?}; set that one instead",
                    parent.default_path()
                ),
            ));
        }
        for (_, path) in &self.paths {
            check_path("path", path)?;
        }
        let mut routes: Vec<(Box<str>, Endpoint)> = Vec::new();
        for &(_, endpoint) in Endpoint::ALL {
            if !self.mounted(endpoint) {
                continue;
            }
            let path = if let Some((parent, param)) = endpoint.parent() {
                format!("{}{}/{{{param}}}", self.prefix, self.own_path(parent))
            } else {
                format!("{}{}", self.prefix, self.own_path(endpoint))
            };
            if let Some((_, other)) = routes.iter().find(|(p, _)| **p == *path) {
                return Err(ConfigError::new(
                    ConfigErrorKind::DuplicateName,
                    "endpoints",
                    format!("{endpoint:?} and {other:?} are both mounted at {path:?}"),
                ));
            }
            routes.push((path.into_boxed_str(), endpoint));
        }
        Ok(routes)
    }
}

fn check_path(what: &str, path: &str) -> Result<(), ConfigError> {
    let problem = if !path.starts_with('/') {
        Some("must start with '/'")
    } else if path.len() == 1 || path.ends_with('/') {
        Some("must not end with '/'")
    } else if path
        .chars()
        .any(|c| matches!(c, '{' | '}' | '*' | '?' | '#') || c.is_whitespace() || c.is_control())
    {
        Some("must not hold '{', '}', '*', '?', '#' or whitespace")
    } else if path.contains("//") {
        Some("must not hold an empty segment ('//')")
    } else if path.contains("/:") {
        // axum refuses (panics on) a segment that starts with ':' (its old parameter syntax).
        Some("must not hold a segment starting with ':'")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(ConfigError::new(
            ConfigErrorKind::InvalidValue,
            "endpoints",
            format!("{what} {path:?} {problem}"),
        )),
    }
}

/// What an endpoint needs to know about the request.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointRequest<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a [u8]>,
    /// The `Accept` header.
    pub accept: Option<&'a [u8]>,
}

/// An endpoint's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// Other headers.
    pub headers: Vec<(&'static str, &'static str)>,
    /// Body: text for every answer but the protobuf exposition of `/metrics`.
    pub body: Vec<u8>,
}

const NO_STORE: (&str, &str) = ("cache-control", "no-store");

/// The largest request body an endpoint uses (`POST /annotations/{stream}`): 64 KiB. A longer
/// one is answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How much of a too-large body is still read (and thrown away) before the answer, so that a
/// client that sends its whole body before reading gets the 413 rather than a reset
/// connection: 4 MiB. Past it, adapters stop reading.
pub const MAX_DRAIN_BYTES: u64 = 4 * 1024 * 1024;

/// The request body of an endpoint that takes one ([`Endpoint::takes_body`]), read by the
/// adapter chunk by chunk: it keeps at most [`MAX_BODY_BYTES`] (and one more, to know the
/// body is too large), and tells the adapter to stop reading past [`MAX_DRAIN_BYTES`].
///
/// ```
/// use vitalsign_core::endpoint::{EndpointBody, MAX_BODY_BYTES};
///
/// let mut body = EndpointBody::new();
/// assert!(body.push(b"{\"title\": \"v1\"}"));
/// assert!(!body.is_too_large());
/// assert_eq!(body.bytes(), b"{\"title\": \"v1\"}");
///
/// let mut big = EndpointBody::new();
/// let chunk = vec![b' '; 1024 * 1024];
/// while big.push(&chunk) {}
/// assert!(big.is_too_large());
/// assert_eq!(big.bytes().len(), MAX_BODY_BYTES + 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct EndpointBody {
    kept: Vec<u8>,
    length: u64,
}

impl EndpointBody {
    /// An empty body.
    pub fn new() -> Self {
        EndpointBody::default()
    }

    /// Takes the next chunk; returns whether to read on (`false` once more than
    /// [`MAX_DRAIN_BYTES`] have come: the answer is a 413 whatever follows).
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        self.length = self.length.saturating_add(chunk.len() as u64);
        let room = (MAX_BODY_BYTES + 1).saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        self.length <= MAX_DRAIN_BYTES
    }

    /// Whether the body is longer than [`MAX_BODY_BYTES`].
    pub fn is_too_large(&self) -> bool {
        self.kept.len() > MAX_BODY_BYTES
    }

    /// The bytes kept (the whole body unless it is too large).
    pub fn bytes(&self) -> &[u8] {
        &self.kept
    }
}

impl EndpointResponse {
    /// The body as text: `None` for a body that is not UTF-8 (the protobuf exposition of
    /// `/metrics`).
    ///
    /// ```
    /// use vitalsign_core::endpoint::EndpointRequest;
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// let page = monitor.health_endpoint(&EndpointRequest::default(), None);
    /// assert!(page.text().unwrap().starts_with('{'));
    /// ```
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// A JSON answer that caches must not keep.
    pub(crate) fn json_no_store(status: u16, body: &Value) -> Self {
        EndpointResponse::json(status, JSON_CONTENT_TYPE, body)
    }

    fn json(status: u16, content_type: &'static str, body: &Value) -> Self {
        EndpointResponse {
            status,
            content_type,
            headers: vec![NO_STORE],
            body: body.to_string().into_bytes(),
        }
    }

    /// 401; the text tells a missing header from one that does not carry the token.
    pub(crate) fn unauthorized(request: &EndpointRequest<'_>) -> Self {
        let body = if request.authorization.is_some() {
            "vitalsign: the Authorization header does not carry this endpoint's token: send \
             Authorization: Bearer <token>, with the token the monitor was configured with\n"
        } else {
            "vitalsign: this endpoint needs an Authorization: Bearer <token> header\n"
        };
        EndpointResponse {
            status: 401,
            content_type: TEXT_CONTENT_TYPE,
            headers: vec![("www-authenticate", "Bearer realm=\"vitalsign\""), NO_STORE],
            body: body.as_bytes().to_vec(),
        }
    }
}
