//! Framework-independent answers of vitalsign's endpoints (by default `/metrics`, `/stats`,
//! `/health`, `/health/{component}`, `/health/live`, `/health/ready`) and where they are
//! mounted ([`Endpoints`]); adapters only translate them into their framework's routes and
//! response type, so both frameworks serve the same bytes at the same paths.
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
//! assert!(health.body.contains(r#""overall":{"level":"available""#));
//! ```

use serde_json::{json, Map, Value};

use crate::health::{ComponentStatus, Level};
use crate::{ConfigError, ConfigErrorKind, Monitor};

/// Content type of the Prometheus text exposition format (version 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
}

impl Endpoint {
    /// Every endpoint with its default route (axum and actix share the `{param}` syntax),
    /// static routes before the one with a parameter.
    pub const ALL: [(&'static str, Endpoint); 6] = [
        ("/metrics", Endpoint::Metrics),
        ("/stats", Endpoint::Stats),
        ("/health", Endpoint::Health),
        ("/health/live", Endpoint::Live),
        ("/health/ready", Endpoint::Ready),
        ("/health/{component}", Endpoint::Component),
    ];

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
/// health path is `/healthz`). A prefix goes before every path, custom ones included.
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
/// assert_eq!(paths, ["/metrics", "/healthz", "/livez", "/readyz", "/healthz/{component}"]);
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
    /// has no path of its own: it follows [`Endpoint::Health`]'s.
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
        if let Some((_, path)) = self.paths.iter().find(|(e, _)| *e == Endpoint::Component) {
            return Err(ConfigError::new(
                ConfigErrorKind::InvalidValue,
                "endpoints",
                format!(
                    "path(Endpoint::Component, {path:?}): /health/{{component}} follows the \
                     health path; set Endpoint::Health's path instead"
                ),
            ));
        }
        for (_, path) in &self.paths {
            check_path("path", path)?;
        }
        let mut routes: Vec<(Box<str>, Endpoint)> = Vec::new();
        for (_, endpoint) in Endpoint::ALL {
            if !self.mounted(endpoint) {
                continue;
            }
            let path = if endpoint == Endpoint::Component {
                format!(
                    "{}{}/{{component}}",
                    self.prefix,
                    self.own_path(Endpoint::Health)
                )
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
    /// Body.
    pub body: String,
}

const NO_STORE: (&str, &str) = ("cache-control", "no-store");

impl EndpointResponse {
    fn json(status: u16, content_type: &'static str, body: &Value) -> Self {
        EndpointResponse {
            status,
            content_type,
            headers: vec![NO_STORE],
            body: body.to_string(),
        }
    }

    /// 401; the text tells a missing header from one that does not carry the token.
    fn unauthorized(request: &EndpointRequest<'_>) -> Self {
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
            body: body.to_owned(),
        }
    }
}

fn status_for(level: Level) -> u16 {
    if level == Level::Unavailable {
        503
    } else {
        200
    }
}

fn component_json(status: &ComponentStatus) -> Value {
    let mut object = Map::new();
    object.insert("level".into(), status.level.as_str().into());
    object.insert("summary".into(), status.summary.clone().into());
    if let Some(detail) = &status.detail {
        object.insert("detail".into(), detail.clone().into());
    }
    if let Some(meta) = &status.meta {
        object.insert("meta".into(), meta.clone());
    }
    object.insert("critical".into(), status.critical.into());
    Value::Object(object)
}

fn wants_ietf(accept: Option<&[u8]>) -> bool {
    accept.is_some_and(|a| {
        a.windows(HEALTH_JSON_CONTENT_TYPE.len())
            .any(|w| w.eq_ignore_ascii_case(HEALTH_JSON_CONTENT_TYPE.as_bytes()))
    })
}

impl Monitor {
    /// The endpoints to mount and their paths ([`MonitorBuilder::endpoints`](crate::MonitorBuilder::endpoints);
    /// by default [`Endpoint::ALL`]), in the order to mount them. Adapters' routers and the
    /// admin listener serve exactly these.
    pub fn endpoint_routes(&self) -> &[(Box<str>, Endpoint)] {
        self.endpoint_table()
    }

    /// Answers `endpoint`; `path` is the request path (the component name is its last segment).
    pub fn serve_endpoint(
        &self,
        endpoint: Endpoint,
        path: &str,
        request: &EndpointRequest<'_>,
    ) -> EndpointResponse {
        match endpoint {
            Endpoint::Metrics => self.metrics_endpoint(request),
            Endpoint::Health => self.health_endpoint(request, None),
            Endpoint::Live => self.live_endpoint(),
            Endpoint::Ready => self.ready_endpoint(),
            Endpoint::Component => {
                let name = path.rsplit('/').next().unwrap_or_default();
                self.health_endpoint(request, Some(name))
            }
            Endpoint::Stats => self.stats_endpoint(request),
        }
    }

    /// `GET /stats`: the statistics document (see [`crate::stats`]); 401 without the token
    /// when one is configured; 404 with a reason without the `stats` feature.
    pub fn stats_endpoint(&self, request: &EndpointRequest<'_>) -> EndpointResponse {
        if !self.authorized(request) {
            return EndpointResponse::unauthorized(request);
        }
        #[cfg(feature = "stats")]
        return EndpointResponse::json(200, JSON_CONTENT_TYPE, &self.stats_json());
        #[cfg(not(feature = "stats"))]
        EndpointResponse {
            status: 404,
            content_type: TEXT_CONTENT_TYPE,
            headers: vec![NO_STORE],
            body: "vitalsign: built without the `stats` feature\n".to_owned(),
        }
    }

    fn authorized(&self, request: &EndpointRequest<'_>) -> bool {
        self.token()
            .is_none_or(|token| token.authorizes(request.authorization))
    }

    /// `GET /metrics`: the exposition text; 401 without the token when one is configured; 404
    /// with a reason when the monitor has no Prometheus sink.
    pub fn metrics_endpoint(&self, request: &EndpointRequest<'_>) -> EndpointResponse {
        if !self.authorized(request) {
            return EndpointResponse::unauthorized(request);
        }
        #[cfg(feature = "prometheus")]
        if let Some(body) = self.render_metrics() {
            return EndpointResponse {
                status: 200,
                content_type: PROMETHEUS_CONTENT_TYPE,
                headers: Vec::new(),
                body,
            };
        }
        EndpointResponse {
            status: 404,
            content_type: TEXT_CONTENT_TYPE,
            headers: Vec::new(),
            body: "vitalsign: this monitor has no Prometheus sink\n".to_owned(),
        }
    }

    /// `GET /health` (`component: None`) or `GET /health/{component}`.
    ///
    /// `/health` answers 200 when available or degraded, 503 when a critical component is
    /// unavailable, in the Kibana status shape
    /// `{"name","version","status":{"overall":{"level","summary"},"statuses":{…}}}`, or in the
    /// IETF `application/health+json` format when the `Accept` header asks for it. With a
    /// token configured, an anonymous caller gets only the overall level. `/health/{component}`
    /// answers one component (503 when it is unavailable, 404 when unknown, 401 without the
    /// token).
    pub fn health_endpoint(
        &self,
        request: &EndpointRequest<'_>,
        component: Option<&str>,
    ) -> EndpointResponse {
        let snapshot = self.health();
        let authorized = self.authorized(request);
        let ietf = wants_ietf(request.accept);
        if let Some(name) = component {
            if !authorized {
                return EndpointResponse::unauthorized(request);
            }
            let Some(status) = snapshot.components.get(name) else {
                let body = json!({ "error": format!("no health component named {name:?}") });
                return EndpointResponse::json(404, JSON_CONTENT_TYPE, &body);
            };
            let body = if ietf {
                ietf_check(name, status)
            } else {
                component_json(status)
            };
            let content_type = if ietf {
                HEALTH_JSON_CONTENT_TYPE
            } else {
                JSON_CONTENT_TYPE
            };
            return EndpointResponse::json(status_for(status.level), content_type, &body);
        }
        let http_status = status_for(snapshot.overall);
        if ietf {
            let mut body = Map::new();
            body.insert("status".into(), snapshot.overall.ietf_status().into());
            body.insert("version".into(), self.version().into());
            body.insert("serviceId".into(), self.service().into());
            if authorized {
                body.insert("description".into(), snapshot.summary.clone().into());
                let mut checks = Map::new();
                for (name, status) in &snapshot.components {
                    checks.insert(name.clone(), json!([ietf_check(name, status)]));
                }
                body.insert("checks".into(), Value::Object(checks));
            }
            return EndpointResponse::json(
                http_status,
                HEALTH_JSON_CONTENT_TYPE,
                &Value::Object(body),
            );
        }
        let status = if authorized {
            let mut statuses = Map::new();
            for (name, status) in &snapshot.components {
                statuses.insert(name.clone(), component_json(status));
            }
            json!({
                "overall": { "level": snapshot.overall.as_str(), "summary": snapshot.summary },
                "statuses": statuses,
            })
        } else {
            json!({ "overall": { "level": snapshot.overall.as_str() } })
        };
        let body = json!({ "name": self.service(), "version": self.version(), "status": status });
        EndpointResponse::json(http_status, JSON_CONTENT_TYPE, &body)
    }

    /// `GET /health/live`: the process is alive and not stuck. Each call asks vitalsign's
    /// health thread for a round, which takes the monitor's locks; 503 once that thread has
    /// been busy without a pause for [`LIVENESS_STALL`] (stuck on a lock, in a check that
    /// blocks it, or ended), so a deadlock shows by the next probe. No dependency check is
    /// involved.
    pub fn live_endpoint(&self) -> EndpointResponse {
        let health = self.health_engine();
        health.poke();
        let stalled = health.stalled_for();
        let alive = stalled < LIVENESS_STALL;
        let body = json!({
            "level": if alive { "available" } else { "unavailable" },
            "summary": if alive {
                "alive".to_owned()
            } else if stalled == std::time::Duration::MAX {
                "stuck: the health thread has ended".to_owned()
            } else {
                format!(
                    "stuck: the health thread has been busy for {} ms without a pause",
                    stalled.as_millis()
                )
            },
        });
        EndpointResponse::json(if alive { 200 } else { 503 }, JSON_CONTENT_TYPE, &body)
    }

    /// `GET /health/ready`: 200 when ready for traffic; 503 until every critical check has
    /// reported once, while draining, or while a critical component is unavailable.
    pub fn ready_endpoint(&self) -> EndpointResponse {
        let snapshot = self.health();
        let reason = if snapshot.draining {
            "draining".to_owned()
        } else if !snapshot.pending.is_empty() {
            format!(
                "waiting for a first result from: {}",
                snapshot.pending.join(", ")
            )
        } else if snapshot.ready {
            "ready".to_owned()
        } else {
            let down: Vec<&str> = snapshot
                .components
                .iter()
                .filter(|(_, s)| s.critical && s.level == Level::Unavailable)
                .map(|(name, _)| name.as_str())
                .collect();
            format!("critical components unavailable: {}", down.join(", "))
        };
        let body = json!({ "ready": snapshot.ready, "summary": reason });
        EndpointResponse::json(
            if snapshot.ready { 200 } else { 503 },
            JSON_CONTENT_TYPE,
            &body,
        )
    }
}

fn ietf_check(name: &str, status: &ComponentStatus) -> Value {
    let mut check = Map::new();
    check.insert("componentId".into(), name.into());
    check.insert("status".into(), status.level.ietf_status().into());
    if status.level != Level::Available {
        check.insert("output".into(), status.summary.clone().into());
    }
    if let Some(value) = status
        .meta
        .as_ref()
        .and_then(|m| m.get("value"))
        .filter(|v| !v.is_null())
    {
        check.insert("observedValue".into(), value.clone());
    }
    Value::Object(check)
}
