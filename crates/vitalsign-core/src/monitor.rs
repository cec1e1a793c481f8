//! [`Monitor`]: the shared, cheaply cloned heart of vitalsign, and its [`MonitorBuilder`].
//!
//! ```
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop")
//!     .namespace("shop")
//!     .global_label("region", "eu-west")
//!     .exclude_path("/internal/ping")
//!     .max_label_sets(2_000)
//!     .label_tag("tenant")
//!     .build()?;
//! assert_eq!(monitor.service(), "shop");
//! # Ok::<(), vitalsign_core::ConfigError>(())
//! ```

use std::borrow::Cow;

use hashbrown::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cache::OnceCache;
use crate::classify::{BoxedClassifier, ClassifyError, DefaultClassifier};
pub use crate::error::{ConfigError, ConfigErrorKind};
use crate::handle::HandlerScope;
use crate::health::{
    Check, ClassifyTaskError, ComponentKind, ComponentSpec, Condition, DefaultTaskClassifier,
    Health, HealthConfig, HealthSnapshot, HealthThread, Level, Rule, ShutdownReport, Signal, Task,
    TaskStatus, Ticker, UnknownComponent,
};
use crate::point::{ErrorPoint, RequestPoint, CLIENT_CLOSED_REQUEST, UNMATCHED_ROUTE};
use crate::{Method, RequestId, Sink};

/// The OpenTelemetry HTTP server duration buckets, in seconds.
pub const DEFAULT_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Default paths of vitalsign's own endpoints, excluded from recording by default (the paths
/// chosen with [`MonitorBuilder::endpoints`] are excluded instead when set).
pub const DEFAULT_EXCLUDED_PATHS: &[&str] = &[
    "/metrics",
    "/health",
    "/health/live",
    "/health/ready",
    "/health/{component}",
    "/stats",
];

/// Routes kept in the lock-free route cache; further ones are looked up under a lock.
const ROUTE_CACHE_ROUTES: usize = 1024;

/// Route value used for route templates beyond the cap of distinct routes.
pub const OVERFLOW_ROUTE: &str = "__overflow__";

/// Up to this many excluded paths, exclusion is a linear scan (no hashing).
const SCAN_EXCLUSIONS: usize = 16;

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

/// How the Prometheus sink gets its registry.
#[cfg(feature = "prometheus")]
#[derive(Debug)]
pub(crate) enum PrometheusSetup {
    /// vitalsign builds its own recorder (not installed globally).
    Own,
    /// A recorder the application built and hands over (not installed globally).
    Recorder(metrics_exporter_prometheus::PrometheusRecorder),
    /// The application installed a recorder globally; series are registered through the
    /// `metrics` facade and `/metrics` renders this handle.
    Installed(metrics_exporter_prometheus::PrometheusHandle),
    /// No Prometheus sink.
    Off,
}

/// Builds a [`Monitor`]. Every option has a default; see each method.
#[must_use]
#[derive(Debug)]
pub struct MonitorBuilder {
    pub(crate) service: String,
    pub(crate) namespace: Option<String>,
    pub(crate) global_labels: Vec<(String, String)>,
    pub(crate) buckets: Vec<f64>,
    excluded: HashSet<Box<str>>,
    excluded_prefixes: Vec<Box<str>>,
    excluded_statuses: Vec<u16>,
    exclude_own_endpoints: bool,
    endpoints: crate::endpoint::Endpoints,
    pub(crate) max_label_sets: usize,
    pub(crate) label_tags: Vec<Cow<'static, str>>,
    path_labels: Vec<Cow<'static, str>>,
    path_label_routes: Vec<(Cow<'static, str>, Vec<Box<str>>)>,
    label_fns: Vec<(Cow<'static, str>, LabelFn)>,
    classifier: BoxedClassifier,
    sinks: Vec<Arc<dyn Sink>>,
    pub(crate) upkeep_interval: Duration,
    pub(crate) head_histogram: bool,
    pub(crate) size_histogram: bool,
    pub(crate) request_size_histogram: bool,
    point_in_extensions: bool,
    #[cfg(feature = "prometheus")]
    pub(crate) prometheus: PrometheusSetup,
    version: String,
    #[cfg(feature = "stats")]
    collection_interval: Duration,
    #[cfg(feature = "stats")]
    probe_interval: Duration,
    health: HealthConfig,
    task_classifier: BoxedTaskClassifier,
    token: Option<String>,
    /// Which setting added each entry of `label_tags`, for error messages.
    label_sources: Vec<&'static str>,
}

/// A task classifier, printed by type name.
struct BoxedTaskClassifier(Box<dyn ClassifyTaskError>, &'static str);

impl fmt::Debug for BoxedTaskClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
}

/// A bearer token, never printed.
#[derive(Clone)]
pub(crate) struct Secret(Box<[u8]>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Whether an `Authorization` header value is `Bearer <this token>` (constant time in the
    /// token's bytes).
    pub(crate) fn authorizes(&self, authorization: Option<&[u8]>) -> bool {
        use subtle::ConstantTimeEq;
        let Some(value) = authorization else {
            return false;
        };
        let Some(given) = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
        else {
            return false;
        };
        bool::from(given.ct_eq(&self.0))
    }
}

/// Checks a health component name: 1 to 64 of `A-Z a-z 0-9 _ - .`, not `overall`.
fn check_component_name(setting: &'static str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && name != "overall"
        && !matches!(name, "live" | "ready");
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            ConfigErrorKind::InvalidName,
            setting,
            format!(
                "health component name {name:?} is not valid: use 1 to 64 of A-Z a-z 0-9 _ - ., \
                 and not overall, live or ready (they are taken)"
            ),
        ))
    }
}

impl MonitorBuilder {
    /// A builder for a service called `service` (the `service` tag of every point).
    pub fn new(service: impl Into<String>) -> Self {
        MonitorBuilder {
            service: service.into(),
            namespace: None,
            global_labels: Vec::new(),
            buckets: DEFAULT_DURATION_BUCKETS.to_vec(),
            excluded: HashSet::new(),
            excluded_prefixes: Vec::new(),
            excluded_statuses: Vec::new(),
            exclude_own_endpoints: true,
            endpoints: crate::endpoint::Endpoints::new(),
            max_label_sets: DEFAULT_MAX_LABEL_SETS,
            label_tags: Vec::new(),
            path_labels: Vec::new(),
            path_label_routes: Vec::new(),
            label_fns: Vec::new(),
            classifier: BoxedClassifier(Box::new(DefaultClassifier), "DefaultClassifier"),
            sinks: Vec::new(),
            upkeep_interval: Duration::from_secs(5),
            head_histogram: false,
            size_histogram: false,
            request_size_histogram: false,
            point_in_extensions: false,
            #[cfg(feature = "prometheus")]
            prometheus: PrometheusSetup::Own,
            version: "unknown".to_owned(),
            #[cfg(feature = "stats")]
            collection_interval: crate::stats::DEFAULT_COLLECTION_INTERVAL,
            #[cfg(feature = "stats")]
            probe_interval: crate::stats::DEFAULT_PROBE_INTERVAL,
            health: HealthConfig::default(),
            task_classifier: BoxedTaskClassifier(
                Box::new(DefaultTaskClassifier),
                "DefaultTaskClassifier",
            ),
            token: None,
            label_sources: Vec::new(),
        }
    }

    /// Length of the `window` block of `/stats` (the last completed interval). Defaults to 5 s.
    #[cfg(feature = "stats")]
    pub fn collection_interval(mut self, interval: Duration) -> Self {
        self.collection_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// How often the event-loop probe on each Tokio runtime that serves requests wakes to
    /// measure how late it is scheduled (`process.event_loop_delay` of `/stats`). Probes wake
    /// only while requests arrive: after a period without one, they wait for the next. The
    /// longest poll of a handler is timed on every poll whatever this period. At least 1 ms.
    /// Defaults to 100 ms.
    #[cfg(feature = "stats")]
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The service version shown by `/health`. Defaults to `unknown`; pass
    /// `env!("CARGO_PKG_VERSION")`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    fn component(mut self, name: impl Into<String>, kind: ComponentKind) -> Self {
        self.health.components.push(ComponentSpec {
            name: name.into(),
            kind,
        });
        self
    }

    /// Registers a component checked by `check` in the background. Its name is 1 to 64 of
    /// `A-Z a-z 0-9 _ - .` (not `overall`, `live` or `ready`), unique among components;
    /// [`MonitorBuilder::build`] says otherwise.
    pub fn check(self, name: impl Into<String>, check: Check) -> Self {
        self.component(name, ComponentKind::Check(check))
    }

    /// Registers a component fed by [`Monitor::report_task`] (names as for
    /// [`MonitorBuilder::check`]).
    pub fn task(self, name: impl Into<String>, task: Task) -> Self {
        self.component(name, ComponentKind::Task(task))
    }

    /// Registers a component set by a rule on the request stream (names as for
    /// [`MonitorBuilder::check`]; thresholds finite, quantiles within `0..=1`).
    pub fn rule(self, name: impl Into<String>, rule: Rule) -> Self {
        self.component(name, ComponentKind::Rule(rule))
    }

    /// Maps errors given to [`Monitor::report_task_error`] to statuses. Defaults to
    /// [`DefaultTaskClassifier`].
    pub fn task_classifier<C: ClassifyTaskError>(mut self, classifier: C) -> Self {
        self.task_classifier =
            BoxedTaskClassifier(Box::new(classifier), std::any::type_name::<C>());
        self
    }

    /// Guards `/metrics`, `/stats`, `/health/{component}` and the details of `/health` with
    /// `Authorization: Bearer <token>` (compared in constant time). Anonymous callers get only
    /// the overall level from `/health`, and 401 elsewhere. `/health/live` and `/health/ready`
    /// stay open for probes. Defaults to no token (all open).
    ///
    /// The token must be non-empty visible ASCII (it travels in a header).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Prefixes every metric name with `namespace_`. Defaults to no prefix.
    ///
    /// The namespace must be a valid Prometheus name. It does not prefix the standard
    /// `process_*` series, which keep the names every dashboard and alert expects.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Adds a label to every exported series (e.g. `service`, `region`). Defaults to none.
    ///
    /// The name must be a valid Prometheus label name, not one of [`RESERVED_LABEL_NAMES`], and
    /// used by no other label source (global labels, label tags, path labels, label functions).
    pub fn global_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.global_labels.push((key.into(), value.into()));
        self
    }

    /// Histogram buckets of `http_server_request_duration_seconds`, in seconds, strictly
    /// increasing. Defaults to [`DEFAULT_DURATION_BUCKETS`] (OpenTelemetry's 0.005 … 10 s).
    pub fn buckets(mut self, buckets: &[f64]) -> Self {
        self.buckets = buckets.to_vec();
        self
    }

    /// Does not record requests whose path or route template is `path`, or, when `path` ends
    /// with `*`, starts with what comes before it (`/internal/*`). vitalsign's own endpoints
    /// ([`DEFAULT_EXCLUDED_PATHS`]) are excluded unless [`MonitorBuilder::monitor_own_endpoints`]
    /// is set.
    pub fn exclude_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        match path.strip_suffix('*') {
            Some(prefix) => self.excluded_prefixes.push(prefix.into()),
            None => {
                self.excluded.insert(path.into_boxed_str());
            }
        }
        self
    }

    /// Does not record requests answered with `status` (e.g. 404 from scanners). They still
    /// count in the in-flight gauge while they run. `status` must be within `100..=599`.
    /// Defaults to none.
    pub fn exclude_status(mut self, status: u16) -> Self {
        self.excluded_statuses.push(status);
        self
    }

    /// Also exports `http_server_response_head_duration_seconds`: the time until the response
    /// head, beside the duration until the body's end (for streaming and SSE). Defaults to
    /// `false`.
    pub fn response_head_histogram(mut self, on: bool) -> Self {
        self.head_histogram = on;
        self
    }

    /// Also exports `http_server_response_body_size_bytes`: response body bytes actually
    /// produced (not size hints), in buckets from 64 B to 64 MiB. Defaults to `false`.
    pub fn response_size_histogram(mut self, on: bool) -> Self {
        self.size_histogram = on;
        self
    }

    /// Also exports `http_server_request_body_size_bytes`: request body bytes actually read.
    /// Needs the adapter's request-body counting middleware (`RequestBodySizeLayer` inside
    /// `MonitorLayer`, or actix's `RequestBodySize` inside `Monitoring`). Defaults to `false`.
    pub fn request_size_histogram(mut self, on: bool) -> Self {
        self.request_size_histogram = on;
        self
    }

    /// Also puts each request's [`PointHandle`](crate::PointHandle) into the request's
    /// extensions (Tower: `http::Extensions`; actix-web: `HttpRequest::extensions`), where the
    /// `Point` extractors look when the request is not the current one of their thread: for
    /// handlers that run on another task than the middleware (the worker of tower's `Buffer`
    /// calls the inner service; a handler spawns a task that extracts its point; a middleware
    /// spawns the handler).
    ///
    /// Costs allocations on every request, whether its handler asks for its point or not: the
    /// point's shared state and the boxed entry, plus the extensions map's own when the request
    /// had none or its table grows: 2 to 4 small blocks (measured: 3 per request on axum, 2 on
    /// actix-web). Without it the handler API costs nothing for requests whose handler does not
    /// use it, and works on the task that runs the middleware (an axum handler behind `Buffer`
    /// included: its future is polled there). Defaults to `false`.
    pub fn point_in_extensions(mut self, on: bool) -> Self {
        self.point_in_extensions = on;
        self
    }

    /// Records requests to vitalsign's own endpoints too. Defaults to `false`.
    pub fn monitor_own_endpoints(mut self, monitor: bool) -> Self {
        self.exclude_own_endpoints = !monitor;
        self
    }

    /// Where vitalsign's endpoints are mounted, and which (see
    /// [`Endpoints`](crate::endpoint::Endpoints)): the axum router, the actix `configure` and
    /// the admin listener serve this table, and requests to its paths are not recorded (unless
    /// [`MonitorBuilder::monitor_own_endpoints`]). Defaults to every endpoint at its default
    /// path ([`DEFAULT_EXCLUDED_PATHS`]). `build()` refuses a bad path or two endpoints on one.
    pub fn endpoints(mut self, endpoints: crate::endpoint::Endpoints) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Caps the distinct label sets of each metric (and the distinct routes the monitor
    /// remembers). Past the cap, new label sets go to one series labelled
    /// `otel_metric_overflow="true"` (OpenTelemetry's overflow attribute) and a warning is
    /// logged once. Defaults to [`DEFAULT_MAX_LABEL_SETS`].
    pub fn max_label_sets(mut self, max: usize) -> Self {
        self.max_label_sets = max.max(1);
        self
    }

    /// Declares a handler tag whose values become a label on
    /// `http_server_request_duration_seconds` (empty when a request lacks the tag). Values are
    /// bounded by the label-set cap. At most [`MAX_LABEL_TAGS`]; defaults to none.
    ///
    /// Names follow the rules of [`MonitorBuilder::global_label`].
    pub fn label_tag(self, key: impl Into<Cow<'static, str>>) -> Self {
        self.declare_label("label_tag", key.into())
    }

    fn declare_label(mut self, setting: &'static str, key: Cow<'static, str>) -> Self {
        self.label_tags.push(key);
        self.label_sources.push(setting);
        self
    }

    /// Keeps the path parameter `name` (e.g. `tenant` of `/tenants/{tenant}/orders`) as a
    /// label, like a declared handler tag (see [`MonitorBuilder::label_tag`]): requests whose
    /// route has no such parameter get an empty value, and values are bounded by the label-set
    /// cap. Defaults to none.
    pub fn path_label(self, name: impl Into<Cow<'static, str>>) -> Self {
        self.add_path_label("path_label", name.into())
    }

    fn add_path_label(mut self, setting: &'static str, name: Cow<'static, str>) -> Self {
        self = self.declare_label(setting, name.clone());
        self.path_labels.push(name);
        self
    }

    /// [`MonitorBuilder::path_label`] on the listed route templates only (an allowlist per
    /// route): on other routes the label stays empty.
    ///
    /// ```
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop")
    ///     .path_label_on(&["/tenants/{tenant}/orders"], "tenant")
    ///     .build()?;
    /// # Ok::<(), vitalsign_core::ConfigError>(())
    /// ```
    pub fn path_label_on(mut self, routes: &[&str], name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        self = self.add_path_label("path_label_on", name.clone());
        self.path_label_routes
            .push((name, routes.iter().map(|r| Box::<str>::from(*r)).collect()));
        self
    }

    /// A label computed from the request by `f` (e.g. a client class from a header), like a
    /// declared handler tag: `None` leaves it empty, and values are bounded by the label-set cap.
    /// Runs once per request, before the handler. Defaults to none.
    ///
    /// ```
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop")
    ///     .label_fn("client", |request| {
    ///         let agent = request.header("user-agent")?;
    ///         Some(if agent.starts_with(b"curl") { "curl" } else { "other" }.to_owned())
    ///     })
    ///     .build()?;
    /// # Ok::<(), vitalsign_core::ConfigError>(())
    /// ```
    pub fn label_fn<F>(mut self, name: impl Into<Cow<'static, str>>, f: F) -> Self
    where
        F: Fn(&RequestInfo<'_>) -> Option<String> + Send + Sync + 'static,
    {
        let name = name.into();
        self = self.declare_label("label_fn", name.clone());
        self.label_fns.push((name, LabelFn(Arc::new(f))));
        self
    }

    /// Decides which requests are errors. Defaults to [`DefaultClassifier`].
    pub fn classify_errors<C: ClassifyError>(mut self, classifier: C) -> Self {
        self.classifier = BoxedClassifier(Box::new(classifier), std::any::type_name::<C>());
        self
    }

    /// Adds a sink. The Prometheus sink is added by default (feature `prometheus`).
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// How often the exporter's upkeep runs: it folds the samples of histograms that the
    /// application records itself through a recorder it shares with vitalsign
    /// ([`MonitorBuilder::prometheus_recorder`], [`MonitorBuilder::prometheus_handle`]).
    /// With vitalsign's own recorder (the default) there is nothing to fold and no upkeep
    /// thread runs. Defaults to 5 s.
    pub fn upkeep_interval(mut self, interval: Duration) -> Self {
        self.upkeep_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Uses a Prometheus recorder the application built (e.g. with extra
    /// `PrometheusBuilder` options) instead of building one. Not installed globally. Its
    /// bucket settings apply to the application's own histograms; vitalsign's histograms use
    /// [`MonitorBuilder::buckets`].
    #[cfg(feature = "prometheus")]
    pub fn prometheus_recorder(
        mut self,
        recorder: metrics_exporter_prometheus::PrometheusRecorder,
    ) -> Self {
        self.prometheus = PrometheusSetup::Recorder(recorder);
        self
    }

    /// Uses the recorder the application already installed as the global `metrics` recorder;
    /// `handle` is its handle. vitalsign's series then sit beside the application's own
    /// `metrics::counter!`s on one `/metrics`; vitalsign's histograms use
    /// [`MonitorBuilder::buckets`].
    ///
    /// **An application that serves `/metrics` itself must render it with
    /// [`Monitor::render_metrics`], not with `handle.render()`.** vitalsign's histograms and
    /// in-flight gauge (`http_server_request_duration_seconds`,
    /// `http_server_active_requests`, …) are its own atomics, outside the recorder:
    /// `handle.render()` has the application's series and vitalsign's counters, but not them.
    /// `Monitor::render_metrics` renders everything: the recorder's series (the application's
    /// included), vitalsign's histograms and the process and runtime series. vitalsign's own
    /// `/metrics` endpoint answers the same text.
    ///
    /// ```
    /// use metrics_exporter_prometheus::PrometheusBuilder;
    /// use vitalsign_core::Monitor;
    ///
    /// let handle = PrometheusBuilder::new().install_recorder().unwrap();
    /// let monitor = Monitor::builder("shop").prometheus_handle(handle).build().unwrap();
    ///
    /// // The application's own `/metrics` handler answers this:
    /// let text = monitor.render_metrics().unwrap();
    /// assert!(text.contains("# HELP http_server_active_requests"));
    /// ```
    #[cfg(feature = "prometheus")]
    pub fn prometheus_handle(
        mut self,
        handle: metrics_exporter_prometheus::PrometheusHandle,
    ) -> Self {
        self.prometheus = PrometheusSetup::Installed(handle);
        self
    }

    /// No Prometheus sink (push sinks only).
    #[cfg(feature = "prometheus")]
    pub fn without_prometheus(mut self) -> Self {
        self.prometheus = PrometheusSetup::Off;
        self
    }

    /// Checks every setting, whatever the order they were given in, and builds the monitor.
    ///
    /// The error says which setting is wrong and why: invalid or reserved names
    /// ([`RESERVED_LABEL_NAMES`]), one label name used by two label sources, duplicate health
    /// components, buckets that are not strictly increasing, statuses outside `100..=599`, a
    /// token that cannot travel in a header, or a thread that could not be started.
    pub fn build(mut self) -> Result<Monitor, ConfigError> {
        self.validate()?;
        let endpoint_table = self.endpoints.routes()?.into_boxed_slice();
        if self.exclude_own_endpoints {
            for (path, _) in &endpoint_table {
                self.excluded.insert(path.clone());
            }
        }
        #[cfg_attr(not(feature = "prometheus"), allow(unused_mut))]
        let mut sinks = std::mem::take(&mut self.sinks);
        #[cfg(feature = "prometheus")]
        let prometheus = match std::mem::replace(&mut self.prometheus, PrometheusSetup::Off) {
            PrometheusSetup::Off => None,
            setup => {
                let sink = Arc::new(crate::prometheus::PrometheusSink::new(&self, setup)?);
                sinks.insert(0, sink.clone());
                Some(sink)
            }
        };
        let health = Arc::new(Health::new(
            std::mem::take(&mut self.health),
            std::mem::replace(
                &mut self.task_classifier,
                BoxedTaskClassifier(Box::new(DefaultTaskClassifier), ""),
            )
            .0,
        ));
        if let Some(window) = health.window() {
            sinks.push(window);
        }
        let clock = Arc::new(WallClock::new());
        #[allow(unused_mut)]
        let mut tickers: Vec<Ticker> = Vec::new();
        #[cfg(feature = "stats")]
        let stats = {
            let stats = Arc::new(crate::stats::Stats::new(
                self.collection_interval,
                self.max_label_sets,
                self.probe_interval,
            ));
            sinks.push(stats.requests.clone());
            let ticking = Arc::clone(&stats);
            tickers.push(Box::new(move |now| Some(ticking.tick(now))));
            stats.set_reporters(reporters(&sinks));
            stats
        };
        let panics = Arc::new(crate::sink::Panics::new(&sinks));
        #[cfg(feature = "prometheus")]
        if let Some(prometheus) = &prometheus {
            let sink_part = crate::prometheus::sink_collector(
                reporters(&sinks),
                Arc::clone(&panics),
                self.namespace.clone(),
            );
            #[cfg(feature = "stats")]
            let stats_part =
                crate::prometheus::stats_collector(Arc::clone(&stats), self.namespace.clone());
            prometheus.set_collector(Box::new(
                move |exposition: &mut crate::prometheus::Exposition<'_>| {
                    sink_part(exposition);
                    #[cfg(feature = "stats")]
                    stats_part(exposition);
                },
            ));
        }
        health.set_sinks(sinks.clone());
        let health_thread = HealthThread::spawn(Arc::clone(&health), tickers).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Resource,
                "build",
                format!("cannot start the health thread: {e}"),
            )
            .with_source(e)
        })?;
        Ok(Monitor {
            inner: Arc::new(Inner {
                needs_request_id: sinks.iter().any(|s| s.needs_request_id()),
                point_in_extensions: self.point_in_extensions,
                path_labels: self.path_labels,
                path_label_routes: self.path_label_routes,
                label_fns: self.label_fns,
                clock,
                version: self.version,
                token: self
                    .token
                    .map(|t| Secret(t.into_bytes().into_boxed_slice())),
                health,
                _health_thread: health_thread,
                drained: tokio::sync::Notify::new(),
                #[cfg(feature = "stats")]
                stats,
                service: self.service,
                excluded_statuses: (!self.excluded_statuses.is_empty()).then(|| {
                    let mut table = vec![false; 600];
                    for status in &self.excluded_statuses {
                        table[usize::from(*status)] = true;
                    }
                    table.into_boxed_slice()
                }),
                excluded_list: self.excluded.iter().cloned().collect(),
                excluded_prefixes: self.excluded_prefixes,
                excluded_templates: self
                    .excluded
                    .iter()
                    .filter_map(|e| ExcludedTemplate::new(e))
                    .collect(),
                excluded_lengths: self
                    .excluded
                    .iter()
                    .fold(0, |mask, e| mask | 1u64 << (e.len() % 64)),
                excluded: self.excluded,
                endpoint_table,
                max_routes: self.max_label_sets,
                routes: RwLock::new(HashSet::new()),
                route_cache: OnceCache::new(self.max_label_sets.min(ROUTE_CACHE_ROUTES) * 2),
                routes_overflowed: AtomicBool::new(false),
                classifier: self.classifier,
                panics,
                sinks,
                in_flight: AtomicI64::new(0),
                #[cfg(feature = "prometheus")]
                prometheus,
            }),
        })
    }
}

impl MonitorBuilder {
    /// Every check of [`MonitorBuilder::build`], independent of the order of the settings.
    fn validate(&self) -> Result<(), ConfigError> {
        use ConfigErrorKind::*;
        if let Some(namespace) = &self.namespace {
            check_name("namespace", "namespace", namespace)?;
        }
        if self.buckets.is_empty()
            || self.buckets.iter().any(|b| !b.is_finite())
            || self.buckets.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(ConfigError::new(
                InvalidValue,
                "buckets",
                format!(
                    "buckets {:?} must be finite, non-empty and strictly increasing",
                    self.buckets
                ),
            ));
        }
        if let Some(status) = self
            .excluded_statuses
            .iter()
            .find(|s| !(100..=599).contains(*s))
        {
            return Err(ConfigError::new(
                OutOfRange,
                "exclude_status",
                format!("exclude_status({status}) is not an HTTP status: use 100..=599"),
            ));
        }
        if let Some(token) = &self.token {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    InvalidValue,
                    "token",
                    "token must be non-empty visible ASCII (it travels in an Authorization header)",
                ));
            }
        }
        // Every label source in one list: (setting, name).
        let labels = self
            .global_labels
            .iter()
            .map(|(k, _)| ("global_label", k.as_str()))
            .chain(
                self.label_sources
                    .iter()
                    .zip(&self.label_tags)
                    .map(|(setting, k)| (*setting, &**k)),
            );
        let mut seen: Vec<(&'static str, &str)> = Vec::new();
        for (setting, name) in labels {
            check_name(setting, "label", name)?;
            if RESERVED_LABEL_NAMES.contains(&name) {
                return Err(ConfigError::new(
                    ReservedName,
                    setting,
                    format!(
                        "{setting}: label {name:?} is reserved (Prometheus or vitalsign writes it); \
                         choose another name"
                    ),
                ));
            }
            if let Some((first, _)) = seen.iter().find(|(_, n)| *n == name) {
                return Err(ConfigError::new(
                    DuplicateName,
                    setting,
                    format!("{setting}: label {name:?} is already set by {first}"),
                ));
            }
            seen.push((setting, name));
        }
        if self.label_tags.len() > MAX_LABEL_TAGS {
            return Err(ConfigError::new(
                OutOfRange,
                self.label_sources[MAX_LABEL_TAGS],
                format!(
                    "{} label tags, path labels and label functions are declared; at most {MAX_LABEL_TAGS} can be",
                    self.label_tags.len()
                ),
            ));
        }
        let mut names: Vec<&str> = Vec::new();
        for spec in &self.health.components {
            let setting = match spec.kind {
                ComponentKind::Check(_) => "check",
                ComponentKind::Task(_) => "task",
                ComponentKind::Rule(_) => "rule",
            };
            let name = spec.name.as_str();
            check_component_name(setting, name)?;
            if names.contains(&name) {
                return Err(ConfigError::new(
                    DuplicateName,
                    setting,
                    format!("health component {name:?} is registered twice"),
                ));
            }
            names.push(name);
            if let ComponentKind::Rule(rule) = &spec.kind {
                if let Condition::Above(v) | Condition::Below(v) = rule.condition {
                    if !v.is_finite() {
                        return Err(ConfigError::new(
                            InvalidValue,
                            "rule",
                            format!("rule {name:?}: threshold {v} is not finite"),
                        ));
                    }
                }
                if let Signal::LatencyQuantile(q) = rule.signal {
                    if !(0.0..=1.0).contains(&q) {
                        return Err(ConfigError::new(
                            OutOfRange,
                            "rule",
                            format!("rule {name:?}: quantile {q} is not within 0..=1"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a label function sees of a request.
pub struct RequestInfo<'a> {
    /// The method token as received.
    pub method: &'a [u8],
    /// The raw path.
    pub path: &'a str,
    headers: &'a dyn Fn(&str) -> Option<&'a [u8]>,
}

impl<'a> RequestInfo<'a> {
    /// Adapters build it from their request; `headers` looks a header up by name.
    pub fn new(
        method: &'a [u8],
        path: &'a str,
        headers: &'a dyn Fn(&str) -> Option<&'a [u8]>,
    ) -> Self {
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
type LabelFnDyn = dyn Fn(&RequestInfo<'_>) -> Option<String> + Send + Sync;

/// A label function, printed by name.
#[derive(Clone)]
struct LabelFn(Arc<LabelFnDyn>);

impl fmt::Debug for LabelFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LabelFn")
    }
}

/// The sinks that report queue figures (push sinks), for `/metrics` and `/stats`.
#[cfg_attr(not(any(feature = "stats", feature = "prometheus")), allow(dead_code))]
fn reporters(sinks: &[Arc<dyn Sink>]) -> Vec<Arc<dyn Sink>> {
    sinks
        .iter()
        .filter(|s| s.report().is_some())
        .cloned()
        .collect()
}

/// The monitor: configuration, sinks and live state shared by every adapter.
///
/// Cheap to clone (one `Arc`). Independent monitors never share state: two in one process
/// (two servers, parallel tests) do not conflict, and none touches a global recorder unless
/// told to with [`MonitorBuilder::prometheus_handle`].
#[derive(Clone, Debug)]
pub struct Monitor {
    inner: Arc<Inner>,
}

/// Wall-clock time from a monotonic reading: one clock read per request instead of two. The
/// offset is re-measured when a request is stamped more than [`RESYNC_NANOS`] after the last
/// measurement, so clock adjustments show within a second, and nothing runs while idle.
#[derive(Debug)]
struct WallClock {
    /// The request clock: the TSC where it is reliable (calibrated once per process).
    clock: quanta::Clock,
    anchor: quanta::Instant,
    /// Unix time of `anchor`, in nanoseconds, as last measured.
    anchor_unix_nanos: AtomicU64,
    /// Nanoseconds after `anchor` of that measurement.
    synced_at: AtomicU64,
}

/// Longest time the wall-clock offset is used without being measured again.
const RESYNC_NANOS: u64 = 1_000_000_000;

impl WallClock {
    fn new() -> Self {
        let source = quanta::Clock::new();
        let clock = WallClock {
            anchor: source.now(),
            clock: source,
            anchor_unix_nanos: AtomicU64::new(0),
            synced_at: AtomicU64::new(0),
        };
        clock.resync();
        clock
    }

    #[cold]
    fn resync(&self) {
        let now = self.now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let since_anchor = now.saturating_duration_since(self.anchor).as_nanos() as u64;
        self.anchor_unix_nanos
            .store(unix.saturating_sub(since_anchor), Ordering::Relaxed);
        self.synced_at.store(since_anchor, Ordering::Relaxed);
    }

    fn now(&self) -> quanta::Instant {
        self.clock.now()
    }

    /// Time since `start`.
    fn since(&self, start: quanta::Instant) -> Duration {
        self.now().saturating_duration_since(start)
    }

    fn unix_nanos(&self, at: quanta::Instant) -> u64 {
        let since_anchor = at.saturating_duration_since(self.anchor).as_nanos() as u64;
        if since_anchor.saturating_sub(self.synced_at.load(Ordering::Relaxed)) > RESYNC_NANOS {
            self.resync();
        }
        self.anchor_unix_nanos.load(Ordering::Relaxed) + since_anchor
    }
}

#[derive(Debug)]
struct Inner {
    /// Path parameters kept as labels.
    path_labels: Vec<Cow<'static, str>>,
    /// Route allowlists of some of them.
    path_label_routes: Vec<(Cow<'static, str>, Vec<Box<str>>)>,
    /// Labels computed from the request.
    label_fns: Vec<(Cow<'static, str>, LabelFn)>,
    clock: Arc<WallClock>,
    /// Some sink reads request ids (else ids are made only when a handler asks).
    needs_request_id: bool,
    /// Adapters put each request's handle into its extensions.
    point_in_extensions: bool,
    version: String,
    token: Option<Secret>,
    health: Arc<Health>,
    _health_thread: HealthThread,
    /// Woken when the last in-flight request ends (for `shutdown`).
    drained: tokio::sync::Notify,
    #[cfg(feature = "stats")]
    stats: Arc<crate::stats::Stats>,
    service: String,
    excluded: HashSet<Box<str>>,
    /// The mounted endpoints and their paths.
    endpoint_table: Box<[(Box<str>, crate::endpoint::Endpoint)]>,
    /// The same, for a linear scan when there are few.
    excluded_list: Vec<Box<str>>,
    /// Path prefixes not recorded (`exclude_path("/x/*")`).
    excluded_prefixes: Vec<Box<str>>,
    /// The excluded paths that are route templates (with a `{parameter}`).
    excluded_templates: Vec<ExcludedTemplate>,
    /// Statuses not recorded (indexed by status, 0..600), if any.
    excluded_statuses: Option<Box<[bool]>>,
    /// Bit `len % 64` set for the length of each excluded path.
    excluded_lengths: u64,
    max_routes: usize,
    routes: RwLock<HashSet<Arc<str>>>,
    /// Lock-free front of `routes` for the hot path (a request names its route by slot).
    route_cache: OnceCache<Box<str>>,
    routes_overflowed: AtomicBool,
    classifier: BoxedClassifier,
    sinks: Vec<Arc<dyn Sink>>,
    /// Panics of each sink, then of the error classifier.
    panics: Arc<crate::sink::Panics>,
    in_flight: AtomicI64,
    #[cfg(feature = "prometheus")]
    prometheus: Option<Arc<crate::prometheus::PrometheusSink>>,
}

/// What an adapter knows about a request when it arrives.
///
/// It may gain fields (`#[non_exhaustive]`): build it with [`RequestStart::new`] and the
/// `with_*` methods (all `const`, free at run time).
///
/// ```
/// use vitalsign_core::adapter::RequestStart;
///
/// const START: RequestStart<'static> =
///     RequestStart::new(b"GET", "/users/7").with_route(Some("/users/{id}"));
/// assert_eq!(START.request_id, None);
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RequestStart<'a> {
    /// The method token as received.
    pub method: &'a [u8],
    /// The raw path (used only to check exclusions; never a label).
    pub path: &'a str,
    /// The matched route template, if the router matched one.
    pub route: Option<&'a str>,
    /// The `x-request-id` header, if present.
    pub request_id: Option<&'a [u8]>,
}

impl<'a> RequestStart<'a> {
    /// A request with this method token and raw path, no route template (yet) and no
    /// `x-request-id` header.
    #[inline]
    pub const fn new(method: &'a [u8], path: &'a str) -> Self {
        RequestStart {
            method,
            path,
            route: None,
            request_id: None,
        }
    }

    /// With the matched route template (`None`: the router matched none).
    #[inline]
    #[must_use]
    pub const fn with_route(mut self, route: Option<&'a str>) -> Self {
        self.route = route;
        self
    }

    /// With the `x-request-id` header's value.
    #[inline]
    #[must_use]
    pub const fn with_request_id(mut self, request_id: Option<&'a [u8]>) -> Self {
        self.request_id = request_id;
        self
    }
}

impl Monitor {
    /// Starts a [`MonitorBuilder`].
    pub fn builder(service: impl Into<String>) -> MonitorBuilder {
        MonitorBuilder::new(service)
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Requests started and not yet recorded.
    pub fn in_flight(&self) -> u64 {
        // The counter goes up before it goes down; a negative reading cannot happen, and would
        // read as none.
        u64::try_from(self.inner.in_flight.load(Ordering::Acquire)).unwrap_or(0)
    }

    /// Path parameters kept as labels ([`MonitorBuilder::path_label`]); adapters hand their
    /// values to [`Flight::path_param`]. Adapter API: [`crate::adapter::path_labels`].
    pub(crate) fn path_labels(&self) -> &[Cow<'static, str>] {
        &self.inner.path_labels
    }

    /// Whether label functions are configured ([`MonitorBuilder::label_fn`]); adapters then
    /// call [`Flight::apply_label_fns`].
    pub(crate) fn has_label_fns(&self) -> bool {
        !self.inner.label_fns.is_empty()
    }

    /// Whether adapters put each request's handle into the request's extensions
    /// ([`MonitorBuilder::point_in_extensions`]; see [`Flight::carry`]).
    pub(crate) fn point_in_extensions(&self) -> bool {
        self.inner.point_in_extensions
    }

    /// The service version shown by `/health`.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    pub(crate) fn token(&self) -> Option<&Secret> {
        self.inner.token.as_ref()
    }

    pub(crate) fn health_engine(&self) -> &Health {
        &self.inner.health
    }

    pub(crate) fn endpoint_table(&self) -> &[(Box<str>, crate::endpoint::Endpoint)] {
        &self.inner.endpoint_table
    }

    /// The last published health snapshot (one read; never waits on a check).
    pub fn health(&self) -> Arc<HealthSnapshot> {
        self.inner.health.snapshot()
    }

    /// A receiver of every published health snapshot.
    pub fn health_watch(&self) -> tokio::sync::watch::Receiver<Arc<HealthSnapshot>> {
        self.inner.health.subscribe()
    }

    /// A receiver of the overall level (`None`) or of one component's level, changed only on
    /// transitions; `None` for an unknown component.
    pub fn watch_level(
        &self,
        component: Option<&str>,
    ) -> Option<tokio::sync::watch::Receiver<Level>> {
        self.inner.health.subscribe_level(component)
    }

    /// Reports the outcome of one run of the background task `name` (registered with
    /// [`MonitorBuilder::task`]).
    pub fn report_task(&self, name: &str, status: TaskStatus) -> Result<(), UnknownComponent> {
        self.inner.health.report_task(name, status)
    }

    /// Reports a failed run of task `name`, classified by the task classifier; returns the
    /// status it was given.
    pub fn report_task_error(
        &self,
        name: &str,
        error: &(dyn std::error::Error + 'static),
    ) -> Result<TaskStatus, UnknownComponent> {
        let status = self.inner.health.classify(error);
        self.inner.health.report_task(name, status).map(|()| status)
    }

    /// Reports a run of task `name` from its result: `Ok` is [`TaskStatus::Ok`], an error is
    /// classified.
    pub fn report_task_result<T, E>(
        &self,
        name: &str,
        result: &Result<T, E>,
    ) -> Result<TaskStatus, UnknownComponent>
    where
        E: std::error::Error + 'static,
    {
        match result {
            Ok(_) => self
                .report_task(name, TaskStatus::Ok)
                .map(|()| TaskStatus::Ok),
            Err(error) => self.report_task_error(name, error),
        }
    }

    /// The application's custom stats (under `custom` in `/stats`, and on `/metrics`).
    #[cfg(feature = "stats")]
    pub fn custom_stats(&self) -> crate::stats::CustomStats {
        self.inner.stats.custom.clone()
    }

    /// The `/stats` document (see [`crate::stats`] for every field).
    #[cfg(feature = "stats")]
    pub fn stats_json(&self) -> serde_json::Value {
        self.inner.stats.json(self.in_flight())
    }

    /// Starts an event-loop delay probe on the Tokio runtime of the calling thread (once per
    /// thread, while that runtime runs). The actix adapter calls it on every worker; nothing
    /// happens outside a runtime.
    pub(crate) fn probe_runtime(&self) {
        #[cfg(feature = "stats")]
        self.inner.stats.probes.attach();
    }

    /// [`Monitor::probe_runtime`] on the first call, a relaxed atomic load afterwards (the
    /// Tower layer calls it on every request: a multi-thread runtime needs one probe); again
    /// once the probed runtime has shut down.
    pub(crate) fn probe_runtime_once(&self) {
        #[cfg(feature = "stats")]
        self.inner.stats.probes.attach_once();
    }

    /// Whether the service is ready for traffic (what `/health/ready` answers).
    pub fn is_ready(&self) -> bool {
        self.inner.health.snapshot().ready
    }

    /// Starts draining: readiness answers 503 from now on. Requests are still served.
    pub fn drain(&self) {
        self.inner.health.set_draining();
    }

    /// Graceful drain: flips readiness to 503 first, then waits until every in-flight request
    /// has finished, or `deadline` passes (reporting how many were cut); then push sinks send
    /// what they have queued, within what is left of the deadline. Call it from axum's
    /// `with_graceful_shutdown` future or before stopping an actix server.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.drain();
        let started = Instant::now();
        let wait = async {
            loop {
                let drained = self.inner.drained.notified();
                // SeqCst: see `record`.
                if self.inner.in_flight.load(Ordering::SeqCst) <= 0 {
                    return;
                }
                drained.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        let waited = started.elapsed();
        let cut = self.in_flight();
        // Then push sinks send what they queued, within what is left of the deadline.
        let flushes: Vec<_> = self.inner.sinks.iter().filter_map(|s| s.flush()).collect();
        let all_flushed = async {
            for flush in flushes {
                let _ = flush.await;
            }
        };
        let flushed = tokio::time::timeout(deadline.saturating_sub(started.elapsed()), all_flushed)
            .await
            .is_ok();
        let report = ShutdownReport {
            waited,
            cut,
            flushed,
        };
        if report.cut > 0 {
            tracing::warn!(
                cut = report.cut,
                "vitalsign: drain deadline passed with requests in flight"
            );
        }
        report
    }

    /// The Prometheus sink, if the monitor has one.
    #[cfg(feature = "prometheus")]
    pub fn prometheus(&self) -> Option<&crate::prometheus::PrometheusSink> {
        self.inner.prometheus.as_deref()
    }

    /// Renders the Prometheus exposition text (`/metrics`); `None` without a Prometheus sink
    /// (built without the `prometheus` feature, or with `MonitorBuilder::without_prometheus`).
    /// Offered whatever the features, so that adapters need no feature of their own to serve
    /// `/metrics`.
    ///
    /// The one call that renders everything: vitalsign's histograms and gauges, the
    /// recorder's series (the application's own too with `MonitorBuilder::prometheus_handle`),
    /// the process and runtime series. An application that serves `/metrics` with a handler of
    /// its own answers this text (with
    /// [`PROMETHEUS_CONTENT_TYPE`](crate::endpoint::PROMETHEUS_CONTENT_TYPE)); a shared
    /// handle's own `render()` lacks vitalsign's histograms.
    pub fn render_metrics(&self) -> Option<String> {
        #[cfg(feature = "prometheus")]
        return self.prometheus().map(|p| p.render());
        #[cfg(not(feature = "prometheus"))]
        return None;
    }

    /// Whether a request to this path / route template is excluded from recording.
    pub(crate) fn is_excluded(&self, path: &str, route: Option<&str>) -> bool {
        if self
            .inner
            .excluded_prefixes
            .iter()
            .any(|p| path.starts_with(&**p))
        {
            return true;
        }
        self.excluded_exactly(path) || route.is_some_and(|r| self.excluded_exactly(r))
    }

    /// Whether a request to `path` may be routed to an excluded route template (an excluded
    /// path with a `{parameter}`, such as `/health/{component}`). For an adapter that reads the
    /// route only after routing (actix-web): it resolves the route of such a request when the
    /// request arrives, so that the request is left out from its start (never in flight, never
    /// started in a sink), as with an adapter that knows its route from the start. Cheap, and
    /// false for most paths; may be true for a path that is routed elsewhere.
    pub(crate) fn may_route_to_excluded_template(&self, path: &str) -> bool {
        let templates = &self.inner.excluded_templates;
        !templates.is_empty()
            && (templates.iter().any(|t| t.may_route(path))
                // The router may decode percent-escapes before matching: let it decide. (A byte
                // loop: paths are short, and `str::contains` goes through a char searcher.)
                || path.bytes().any(|b| b == b'%'))
    }

    /// Whether `candidate` (a path or a route) is one of the excluded paths.
    fn excluded_exactly(&self, candidate: &str) -> bool {
        if self.inner.excluded.len() > SCAN_EXCLUSIONS {
            return self.inner.excluded.contains(candidate);
        }
        // A handful of entries: a bitmask of their lengths rejects most candidates at once,
        // then a scan compares lengths before bytes; no hashing.
        self.inner.excluded_lengths & (1u64 << (candidate.len() % 64)) != 0
            && self
                .inner
                .excluded_list
                .iter()
                .any(|e| e.len() == candidate.len() && **e == *candidate)
    }

    /// A request arrives: `None` for an excluded request, otherwise the guard that records it
    /// exactly once. Adapters call [`crate::adapter::begin`], which wraps it in a [`Flight`].
    pub(crate) fn begin(&self, start: RequestStart<'_>) -> Option<InFlight> {
        if self.is_excluded(start.path, start.route) {
            return None;
        }
        let method = Method::from_bytes(start.method);
        let route = match start.route {
            None => Route::UNMATCHED,
            Some(route) => self.intern(route),
        };
        // Generated only if a sink reads ids (Prometheus and `/stats` do not), or a handler asks.
        let request_id = RequestId::from_header(start.request_id)
            .or_else(|| self.inner.needs_request_id.then(RequestId::generate));
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        self.each_sink(|sink| sink.request_started(method));
        let start = self.inner.clock.now();
        Some(InFlight {
            monitor: self.clone(),
            method,
            route,
            start,
            scope: HandlerScope::new(request_id),
            status: None,
            head_nanos: NO_HEAD,
            body_bytes: 0,
            route_excluded: false,
            body_failed: false,
            done: false,
        })
    }

    fn intern(&self, route: &str) -> Route {
        let cache = &self.inner.route_cache;
        let hash = cache.hash(route);
        if let Some((slot, _)) = cache.find(hash, |known| **known == *route) {
            return Route::Slot(slot as u32);
        }
        let interned = self.intern_locked(route);
        match interned {
            Route::Interned(_) => cache
                .insert(hash, route.into())
                .map_or(interned, |slot| Route::Slot(slot as u32)),
            other => other,
        }
    }

    fn intern_locked(&self, route: &str) -> Route {
        if let Some(known) = self
            .inner
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(route)
        {
            return Route::Interned(known.clone());
        }
        let mut routes = self.inner.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = routes.get(route) {
            return Route::Interned(known.clone());
        }
        if routes.len() >= self.inner.max_routes {
            if !self.inner.routes_overflowed.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = self.inner.max_routes,
                    "vitalsign: more distinct routes than the label-set cap; further routes are recorded as {OVERFLOW_ROUTE:?}"
                );
            }
            return Route::OVERFLOW;
        }
        let interned: Arc<str> = route.into();
        routes.insert(interned.clone());
        Route::Interned(interned)
    }

    fn record(&self, flight: &InFlight, disconnected: bool) {
        let request_id = match (&flight.scope.shared, &flight.scope.request_id) {
            (Some(shared), _) => shared.request_id(),
            (None, Some(id)) => id,
            (None, None) => &RequestId::EMPTY,
        };
        let panicked = flight.scope.panicked;
        let status = if panicked {
            500
        } else {
            flight.status.unwrap_or(CLIENT_CLOSED_REQUEST)
        };
        let extras = flight.scope.shared.as_ref().map(|shared| shared.lock());
        let (tags, fields, attached_code) = match &extras {
            Some(extras) => (
                &extras.tags[..],
                &extras.fields[..],
                extras.error_code.as_deref(),
            ),
            None => (&[][..], &[][..], None),
        };
        let point = RequestPoint {
            service: &self.inner.service,
            route: flight.route(),
            method: flight.method,
            status_code: status,
            request_id,
            execution_time: self.inner.clock.since(flight.start).as_secs_f64(),
            start_unix_nanos: self.inner.clock.unix_nanos(flight.start),
            disconnected: disconnected && !panicked,
            head_time: (flight.head_nanos != NO_HEAD).then(|| flight.head_nanos as f64 / 1e9),
            response_body_bytes: flight.body_bytes,
            request_body_bytes: flight
                .scope
                .shared
                .as_ref()
                .map_or(0, |shared| shared.request_body_bytes()),
            tags,
            fields,
        };
        let status_excluded = self
            .inner
            .excluded_statuses
            .as_ref()
            .is_some_and(|excluded| excluded[usize::from(status).min(599)]);
        if !status_excluded && !flight.route_excluded {
            let code = attached_code
                .or(panicked.then_some("panic"))
                .or(flight.body_failed.then_some(BODY_ERROR_CODE));
            self.send(&point, code);
        }
        self.each_sink(|sink| sink.request_finished(point.method));
        // Only now, with every sink holding the point, does the request stop being in flight:
        // whoever waits for zero in flight (a drain, a test) then finds it recorded.
        // SeqCst here and in `shutdown`: this decrement-then-read of `draining` and the drain's
        // store-then-read of `in_flight` must not both see the old value (a missed wake-up).
        if self.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
            && self.inner.health.is_draining()
        {
            self.inner.drained.notify_waiters();
        }
    }

    /// Calls `f` on every sink. A sink that panics is contained: the panic is counted
    /// (`vitalsign_sink_panics_total{sink}`) and logged once, and the other sinks still get
    /// the call. One `catch_unwind` covers all sinks unless one panics.
    fn each_sink(&self, mut f: impl FnMut(&dyn Sink)) {
        let sinks = &self.inner.sinks;
        let mut next = 0;
        while next < sinks.len() {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                while let Some(sink) = sinks.get(next) {
                    next += 1;
                    f(&**sink);
                }
            }));
            if run.is_err() {
                self.inner.panics.panicked(next - 1);
            }
        }
    }

    /// Hands a finished request (and its error point, if it is one) to every sink.
    fn send(&self, point: &RequestPoint<'_>, code: Option<&str>) {
        self.each_sink(|sink| sink.record_request(point));
        let classifier = &self.inner.classifier.0;
        let is_error = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            classifier.is_error(point, code)
        }))
        .unwrap_or_else(|_| {
            self.inner.panics.panicked(self.inner.sinks.len());
            false
        });
        if is_error {
            let mut buf = itoa::Buffer::new();
            let error = ErrorPoint {
                request: point,
                error_code: code.unwrap_or_else(|| buf.format(point.status_code)),
            };
            self.each_sink(|sink| sink.record_error(&error));
        }
    }
}

/// An excluded route template and the length of its literal part (before the first
/// parameter), found once: most paths differ there.
#[derive(Debug)]
struct ExcludedTemplate {
    template: Box<str>,
    literal: usize,
}

impl ExcludedTemplate {
    /// `None` for an excluded path that is no template.
    fn new(template: &str) -> Option<Self> {
        template.find('{').map(|literal| ExcludedTemplate {
            template: template.into(),
            literal,
        })
    }

    fn may_route(&self, path: &str) -> bool {
        path.as_bytes()
            .starts_with(&self.template.as_bytes()[..self.literal])
            && may_route_to(&self.template, path)
    }
}

/// Whether a router may route `path` to `template`, segment by segment: a segment with a
/// `{parameter}` matches any segment, one with a wildcard or a pattern (`{*rest}`, `{id:\d+}`)
/// any rest of the path; other segments match themselves.
fn may_route_to(template: &str, path: &str) -> bool {
    // Most paths differ in the literal part before the first parameter.
    let literal = template.find('{').map_or(template, |i| &template[..i]);
    if !path.starts_with(literal) {
        return false;
    }
    let mut segments = path.split('/');
    for expected in template.split('/') {
        let Some(segment) = segments.next() else {
            return false;
        };
        if expected.contains('{') {
            if expected.contains(['*', ':']) {
                return true;
            }
        } else if expected != segment {
            return false;
        }
    }
    segments.next().is_none()
}

/// A request's route label: a slot of the monitor's route cache (or one of two constants), or
/// (past the cache) a shared copy from the route set. Two words, so that an [`InFlight`] stays
/// small enough to be moved without a call to `memcpy`.
#[derive(Debug)]
enum Route {
    Slot(u32),
    Interned(Arc<str>),
}

impl Route {
    const UNMATCHED_SLOT: u32 = u32::MAX;
    const OVERFLOW_SLOT: u32 = u32::MAX - 1;
    const UNMATCHED: Route = Route::Slot(Self::UNMATCHED_SLOT);
    const OVERFLOW: Route = Route::Slot(Self::OVERFLOW_SLOT);
}

/// [`InFlight::head_nanos`] before the response head.
const NO_HEAD: u64 = u64::MAX;

/// Error code of a request whose response body failed (see [`InFlight::body_failed`]).
const BODY_ERROR_CODE: &str = "body_error";

/// One request being served: the completion guard that adapters carry from the request to the
/// end of the response body.
///
/// Records exactly once: [`InFlight::complete`] for a response that ended normally,
/// [`InFlight::body_failed`] for one whose body failed; dropping it before that records a
/// disconnect (status [`CLIENT_CLOSED_REQUEST`] if no response head was
/// seen), or status 500 with error code `panic` if the inner service panicked inside
/// [`InFlight::in_scope`].
#[derive(Debug)]
#[must_use = "dropping an InFlight records the request as a disconnect"]
pub(crate) struct InFlight {
    monitor: Monitor,
    method: Method,
    route: Route,
    start: quanta::Instant,
    scope: HandlerScope,
    status: Option<u16>,
    /// Nanoseconds from the start to the response head ([`NO_HEAD`] before it).
    head_nanos: u64,
    body_bytes: u64,
    /// The route set after the start is excluded: nothing is recorded.
    route_excluded: bool,
    /// The response body yielded an error ([`InFlight::body_failed`]).
    body_failed: bool,
    done: bool,
}

impl InFlight {
    /// The request id.
    pub(crate) fn request_id(&mut self) -> RequestId {
        self.scope.request_id()
    }

    /// The route label this request is recorded under.
    pub(crate) fn route(&self) -> &str {
        match &self.route {
            Route::Slot(Route::UNMATCHED_SLOT) => UNMATCHED_ROUTE,
            Route::Slot(Route::OVERFLOW_SLOT) => OVERFLOW_ROUTE,
            Route::Slot(slot) => self
                .monitor
                .inner
                .route_cache
                .get(*slot as usize)
                .map_or("", |r| r),
            Route::Interned(route) => route,
        }
    }

    /// Runs `f` (a call or poll of the inner service or body) with this request as the thread's
    /// current request, so that [`PointHandle::current`](crate::PointHandle::current) finds it,
    /// and notes a panic unwinding out of `f`.
    ///
    /// Each call is timed (two reads of the TSC): the maximum event-loop delay of a collection
    /// interval on `/stats` is at least its longest call, since a poll that blocks holds its
    /// worker thread that long. Adapters use it for the polls of the handler's future; the
    /// call of the inner service ([`Flight::in_call`]) and the polls of the response body
    /// ([`InFlight::watch_panics`]) are not timed.
    pub(crate) fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "stats")]
        let started = self.monitor.inner.stats.polls.start();
        let result = self.scope.enter(f);
        #[cfg(feature = "stats")]
        self.monitor.inner.stats.polls.ended(started);
        result
    }

    /// The handle of this request's point (made now if no handler has asked for it yet).
    pub(crate) fn handle(&mut self) -> crate::PointHandle {
        self.scope.handle()
    }

    /// Runs `f` noting only a panic unwinding out of it (cheaper than
    /// [`InFlight::in_scope`]; for polls of the response body, where no handler extracts).
    /// Not timed: a handler that blocks its worker does so in the polls that
    /// [`InFlight::in_scope`] times, and body frames are polled many times per request.
    pub(crate) fn watch_panics<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.scope.watch(f)
    }

    /// The response head is known (its time is noted as the time to the response head).
    pub(crate) fn set_status(&mut self, status: u16) {
        self.status = Some(status);
        let head = self.monitor.inner.clock.since(self.start).as_nanos();
        self.head_nanos = u64::try_from(head).unwrap_or(NO_HEAD - 1).min(NO_HEAD - 1);
    }

    /// Sets the route template, for an adapter that learns it only after the request began
    /// (actix-web knows the matched resource cheaply once it has routed). `None` is
    /// [`UNMATCHED_ROUTE`]. A route that is excluded from recording (an excluded path that is
    /// a route template, such as `/health/{component}`) makes the request unrecorded; it still
    /// counted in flight while it ran, as a request with an excluded status does.
    pub(crate) fn set_route(&mut self, route: Option<&str>) {
        self.route = match route {
            None => Route::UNMATCHED,
            Some(route) => {
                self.route_excluded = self.monitor.excluded_exactly(route);
                self.monitor.intern(route)
            }
        };
    }

    /// A path parameter of this request: kept as a label if [`MonitorBuilder::path_label`]
    /// asked for it on this request's route.
    pub(crate) fn path_param(&mut self, name: &str, value: &str) {
        let inner = Arc::clone(&self.monitor.inner);
        let Some(label) = inner.path_labels.iter().find(|l| **l == *name) else {
            return;
        };
        let allowed = inner
            .path_label_routes
            .iter()
            .filter(|(l, _)| l == label)
            .all(|(_, routes)| routes.iter().any(|r| **r == *self.route()));
        if allowed {
            self.tag(label.clone(), value);
        }
    }

    /// Adds a tag to this request's point (as a handler would; adapters use it for path
    /// parameters kept as labels). Allocates, like a handler's tag.
    pub(crate) fn tag(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        self.scope.enter(|| {
            if let Some(point) = crate::PointHandle::current() {
                point.tag(key, value);
            }
        });
    }

    /// Runs the monitor's label functions on `request` and tags the point with their results.
    pub(crate) fn apply_label_fns(&mut self, request: &RequestInfo<'_>) {
        let monitor = self.monitor.clone();
        for (name, f) in &monitor.inner.label_fns {
            if let Some(value) = (f.0)(request) {
                self.tag(name.clone(), value);
            }
        }
    }

    /// `n` more bytes of response body were produced.
    pub(crate) fn add_body_bytes(&mut self, n: u64) {
        self.body_bytes += n;
    }

    /// Whether the response, by HTTP's rules, has a body to wait for: not for `HEAD`, nor for
    /// status 1xx, 204 or 304 (RFC 9110 §6.4.1). Servers drop such bodies unpolled, so an adapter
    /// completes the request at the response head when this is false.
    pub(crate) fn response_has_body(&self) -> bool {
        self.method != Method::Head && !matches!(self.status, Some(100..=199 | 204 | 304))
    }

    /// The response ended normally (last body frame sent, or an empty body).
    /// Records the request; later calls and the drop do nothing.
    pub(crate) fn complete(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            self.monitor.record(self, false);
        }
    }

    /// The response body yielded an error: records the request now, with the status it was
    /// sent with, as an error with error code `body_error` (unless the handler attached a code),
    /// not as a disconnect. Later calls and the drop do nothing.
    pub(crate) fn body_failed(&mut self) {
        if !self.done {
            self.body_failed = true;
            self.complete();
        }
    }
}

/// One request being served: the guard that an adapter carries from the request
/// ([`adapter::begin`](crate::adapter::begin)) to the end of the response body. Every step an
/// adapter takes is one call here, so that the Tower layer and the actix middleware share one
/// logic.
///
/// Records exactly once: at [`Flight::complete`] for a response that ended normally, at
/// [`Flight::body_failed`] for one whose body failed, at [`Flight::failed`] for an inner
/// service that failed; dropping it before that records a disconnect (status
/// [`CLIENT_CLOSED_REQUEST`] if no response head was seen), or status 500 with error code
/// `panic` if the inner service panicked inside [`Flight::in_scope`]. A request excluded from
/// recording ([`MonitorBuilder::exclude_path`]) gets a flight that records nothing
/// ([`Flight::is_recording`] is `false`), on which every call is cheap.
#[derive(Debug, Default)]
#[must_use = "dropping a Flight before it completes records a disconnect"]
pub struct Flight(Option<InFlight>);

impl Flight {
    #[inline]
    pub(crate) fn from_start(flight: Option<InFlight>) -> Self {
        Flight(flight)
    }

    /// Whether this flight records its request (`false` for an excluded request, and once the
    /// request has been recorded or has moved on with [`Flight::response`]).
    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }

    /// The request id (the `x-request-id` header's, the one a handler created, or a fresh one,
    /// kept), for an adapter that echoes it; `None` once the flight no longer records.
    pub fn request_id(&mut self) -> Option<RequestId> {
        self.0.as_mut().map(InFlight::request_id)
    }

    /// The response head is here, with this status (its time is noted as the time to the
    /// response head). [`Flight::response`] does this and moves the flight on with the body.
    pub fn set_status(&mut self, status: u16) {
        if let Some(flight) = &mut self.0 {
            flight.set_status(status);
        }
    }

    /// Runs `f` (a call or poll of the inner service, future or body) with this request as
    /// the thread's current request, so that
    /// [`PointHandle::current`](crate::PointHandle::current) finds it, and notes a panic
    /// unwinding out of `f`; for an excluded request, inside a scope where handlers get a
    /// handle that records nothing (see [`PointHandle::noop`](crate::PointHandle::noop)).
    ///
    /// Each call is timed (two reads of the TSC): the maximum event-loop delay of a collection
    /// interval on `/stats` is at least its longest call, since a poll that blocks holds its
    /// worker thread that long.
    pub fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match &mut self.0 {
            Some(flight) => flight.in_scope(f),
            None => crate::handle::enter_unrecorded(f),
        }
    }

    /// [`Flight::in_scope`] for the call of the inner service, which is not timed: axum and
    /// actix-web run handlers in the polls of the future that the call returns.
    pub fn in_call<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match &mut self.0 {
            Some(flight) => flight.scope.enter(f),
            None => crate::handle::enter_unrecorded(f),
        }
    }

    /// The handle an adapter puts into the request's extensions when
    /// [`adapter::point_in_extensions`](crate::adapter::point_in_extensions) is true, given the one already there (`carried`): this
    /// request's handle; for an excluded request, a handle that records nothing, unless the
    /// extensions already carry one (an outer monitor's). `None`: leave the extensions alone.
    pub fn carry(&mut self, carried: Option<&crate::PointHandle>) -> Option<crate::PointHandle> {
        match &mut self.0 {
            Some(flight) => Some(flight.handle()),
            None => carried.is_none().then(crate::PointHandle::noop),
        }
    }

    /// Runs `f` (a poll of the response body) noting a panic unwinding out of it (cheaper than
    /// [`Flight::in_scope`], as no handler extracts there; timed as it is).
    pub fn in_body<R>(&mut self, f: impl FnOnce() -> R) -> R {
        match &mut self.0 {
            Some(flight) => flight.watch_panics(f),
            None => f(),
        }
    }

    /// The response head is here; the flight moves on with the body.
    pub fn response(&mut self, status: u16) -> Flight {
        if let Some(flight) = &mut self.0 {
            flight.set_status(status);
        }
        Flight(self.0.take())
    }

    /// The inner service failed with this status instead of producing a response: the request
    /// is recorded now.
    pub fn failed(&mut self, status: u16) {
        if let Some(mut flight) = self.0.take() {
            flight.set_status(status);
            flight.complete();
        }
    }

    /// The response body is about to be sent; `empty` says it has nothing to send. Completes
    /// at once when there is nothing to wait for: an empty body, or a response that by HTTP's
    /// rules has none (`HEAD`, status 1xx, 204 or 304, RFC 9110 §6.4.1), whose body servers
    /// drop unpolled.
    pub fn body_starts(&mut self, empty: bool) {
        if empty || self.0.as_ref().is_some_and(|f| !f.response_has_body()) {
            self.complete();
        }
    }

    /// Runs the monitor's label functions ([`MonitorBuilder::label_fn`]) on `request` and
    /// tags the point with their results (when
    /// [`adapter::has_label_fns`](crate::adapter::has_label_fns) is true).
    pub fn apply_label_fns(&mut self, request: &RequestInfo<'_>) {
        if let Some(flight) = &mut self.0 {
            flight.apply_label_fns(request);
        }
    }

    /// A path parameter of this request: kept as a label if [`MonitorBuilder::path_label`]
    /// asked for it on this request's route.
    pub fn path_param(&mut self, name: &str, value: &str) {
        if let Some(flight) = &mut self.0 {
            flight.path_param(name, value);
        }
    }

    /// Sets the route template, for an adapter that learns it only after the request began
    /// (actix-web knows the matched resource cheaply once it has routed). `None` is
    /// [`UNMATCHED_ROUTE`]. A route that is excluded from recording (an excluded path that is
    /// a route template, such as `/health/{component}`) makes the request unrecorded; it still
    /// counted in flight while it ran, as a request with an excluded status does.
    pub fn set_route(&mut self, route: Option<&str>) {
        if let Some(flight) = &mut self.0 {
            flight.set_route(route);
        }
    }

    /// Adds a tag to this request's point (as a handler would). Allocates, like a handler's
    /// tag.
    pub fn tag(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        if let Some(flight) = &mut self.0 {
            flight.tag(key, value);
        }
    }

    /// The body produced `n` bytes.
    pub fn body_bytes(&mut self, n: u64) {
        if let Some(flight) = &mut self.0 {
            flight.add_body_bytes(n);
        }
    }

    /// The response ended normally (the body yielded its last frame or its end, or there is
    /// no body): the request is recorded now. Later calls and the drop do nothing.
    pub fn complete(&mut self) {
        if let Some(flight) = &mut self.0 {
            flight.complete();
            self.0 = None;
        }
    }

    /// The body yielded an error: the request is recorded now, with the status it was sent
    /// with, as an error with error code `body_error` (unless the handler attached a code), not
    /// as a disconnect. Later calls and the drop do nothing.
    pub fn body_failed(&mut self) {
        if let Some(flight) = &mut self.0 {
            flight.body_failed();
            self.0 = None;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            if std::thread::panicking() {
                self.scope.panicked = true;
            }
            self.monitor.record(self, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FieldValue, MemorySink, PointHandle};

    #[test]
    fn routes_and_label_sets_past_the_lock_free_caches_are_recorded_alike() {
        // More routes than the route cache and the series cache hold: the rest go through the
        // locked maps, with the same results.
        let routes = ROUTE_CACHE_ROUTES * 3;
        let sink = Arc::new(MemorySink::new(2 * routes));
        let monitor = Monitor::builder("svc")
            .max_label_sets(routes + 10)
            .sink(sink.clone())
            .build()
            .unwrap();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let monitor = monitor.clone();
                std::thread::spawn(move || {
                    for i in 0..routes {
                        let route = format!("/r/{i}");
                        let mut flight =
                            monitor.begin(start(b"GET", &route, Some(&route))).unwrap();
                        assert_eq!(flight.route(), route);
                        flight.set_status(200 + (i % 2) as u16);
                        flight.complete();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let points = sink.requests();
        assert_eq!(points.len(), 2 * routes);
        for point in &points {
            let i: usize = point.route["/r/".len()..].parse().unwrap();
            assert_eq!(point.status_code, 200 + (i % 2) as u16);
        }
        #[cfg(feature = "prometheus")]
        {
            let text = monitor.render_metrics().unwrap();
            for i in [0, ROUTE_CACHE_ROUTES + 1, routes - 1] {
                let line = format!(
                    "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"/r/{i}\",http_response_status_code=\"{}\"}} 2",
                    200 + i % 2
                );
                assert!(text.contains(&line), "{line}");
            }
            assert_eq!(monitor.prometheus().unwrap().label_sets(), routes);
        }
    }

    #[test]
    fn an_in_flight_request_fits_in_two_cache_lines() {
        // Adapters move it from the request to the response future to the body; at this size
        // the compiler moves it with a few vector stores rather than a call to `memcpy`.
        assert!(std::mem::size_of::<InFlight>() <= 128);
        assert_eq!(
            std::mem::size_of::<Flight>(),
            std::mem::size_of::<InFlight>()
        );
    }

    fn monitor(build: impl FnOnce(MonitorBuilder) -> MonitorBuilder) -> (Monitor, Arc<MemorySink>) {
        let sink = Arc::new(MemorySink::new(1000));
        let monitor = build(Monitor::builder("svc").sink(sink.clone()))
            .build()
            .unwrap();
        (monitor, sink)
    }

    fn start<'a>(method: &'a [u8], path: &'a str, route: Option<&'a str>) -> RequestStart<'a> {
        RequestStart {
            method,
            path,
            route,
            request_id: None,
        }
    }

    #[test]
    fn a_completed_request_becomes_one_point() {
        let (monitor, sink) = monitor(|b| b);
        let mut flight = monitor
            .begin(RequestStart {
                request_id: Some(b"rid-1"),
                ..start(b"GET", "/users/7", Some("/users/{id}"))
            })
            .unwrap();
        assert_eq!(monitor.in_flight(), 1);
        assert!(sink.requests().is_empty(), "not recorded yet");
        flight.set_status(200);
        flight.complete();
        flight.complete();
        drop(flight);
        let points = sink.requests();
        assert_eq!(points.len(), 1, "recorded exactly once");
        let p = &points[0];
        assert_eq!(
            (
                p.service.as_str(),
                p.route.as_str(),
                p.method,
                p.status_code
            ),
            ("svc", "/users/{id}", Method::Get, 200)
        );
        assert_eq!(p.request_id.as_str(), "rid-1");
        assert!(!p.disconnected && p.execution_time >= 0.0 && p.start_unix_nanos > 0);
        assert!(sink.errors().is_empty());
        assert_eq!(monitor.in_flight(), 0);
    }

    #[test]
    fn route_and_method_policy() {
        let (monitor, sink) = monitor(|b| b);
        for (method, route) in [(&b"GET"[..], None), (b"BREW", Some("/a"))] {
            let mut flight = monitor.begin(start(method, "/raw/123", route)).unwrap();
            flight.set_status(404);
            flight.complete();
        }
        let points = sink.requests();
        assert_eq!(
            (points[0].route.as_str(), points[0].method),
            (UNMATCHED_ROUTE, Method::Get)
        );
        assert_eq!(
            (points[1].route.as_str(), points[1].method.as_str()),
            ("/a", "_OTHER")
        );
    }

    #[test]
    fn routes_past_the_cap_are_overflow() {
        let (monitor, sink) = monitor(|b| b.max_label_sets(2));
        for route in ["/a", "/b", "/c", "/a"] {
            let mut flight = monitor.begin(start(b"GET", route, Some(route))).unwrap();
            flight.set_status(200);
            flight.complete();
        }
        let routes: Vec<String> = sink.requests().into_iter().map(|p| p.route).collect();
        assert_eq!(routes, ["/a", "/b", OVERFLOW_ROUTE, "/a"]);
    }

    #[test]
    fn exclusions_match_paths_and_templates() {
        let (monitor, sink) = monitor(|b| b.exclude_path("/internal/{x}"));
        assert!(monitor.begin(start(b"GET", "/metrics", None)).is_none());
        assert!(monitor
            .begin(start(b"GET", "/health/db", Some("/health/{component}")))
            .is_none());
        assert!(monitor
            .begin(start(b"GET", "/internal/1", Some("/internal/{x}")))
            .is_none());
        assert_eq!(sink.started(), 0);
        let (monitor, _) = self::monitor(|b| b.monitor_own_endpoints(true));
        assert!(monitor
            .begin(start(b"GET", "/metrics", Some("/metrics")))
            .is_some());
    }

    /// Review item 11: actix reads routes after routing, and asks this first.
    #[test]
    fn paths_that_may_be_routed_to_an_excluded_template() {
        let (monitor, _) = monitor(|b| {
            b.exclude_path("/files/{*rest}")
                .exclude_path("/n/{id:\\d+}/x")
                .exclude_path("/a/{x}.txt")
        });
        for path in [
            "/health/db",
            "/health/live",
            "/health/",
            "/files/a/b/c",
            "/n/12/x",
            "/n/12/y/z",
            "/a/report.txt",
            "/h%65alth/db",
        ] {
            assert!(monitor.may_route_to_excluded_template(path), "{path}");
        }
        for path in [
            "/users/42",
            "/health",
            "/healthz/db",
            "/health/db/more",
            "/files",
            "/n",
            "/a/b/c",
            "/",
        ] {
            assert!(!monitor.may_route_to_excluded_template(path), "{path}");
        }
        let (monitor, _) = self::monitor(|b| b.monitor_own_endpoints(true));
        assert!(!monitor.may_route_to_excluded_template("/health/db"));
        assert!(!monitor.may_route_to_excluded_template("/h%65alth/db"));
    }

    #[test]
    fn path_prefixes_are_excluded() {
        let (monitor, _) = monitor(|b| b.exclude_path("/internal/*"));
        assert!(monitor.is_excluded("/internal/metrics/x", None));
        assert!(monitor.is_excluded("/internal/", Some("/internal/{*rest}")));
        assert!(!monitor.is_excluded("/internals", None));
        assert!(!monitor.is_excluded("/users/1", Some("/users/{id}")));
    }

    #[test]
    fn excluded_statuses_are_not_recorded() {
        let (monitor, sink) = monitor(|b| b.exclude_status(404));
        for status in [404, 200, 404] {
            let mut flight = monitor.begin(start(b"GET", "/x", Some("/x"))).unwrap();
            flight.set_status(status);
            flight.complete();
        }
        assert_eq!(sink.started(), 3);
        assert_eq!(sink.requests().len(), 1);
        assert_eq!(monitor.in_flight(), 0);
    }

    #[test]
    fn a_drop_before_the_head_is_a_499_disconnect_and_not_an_error() {
        let (monitor, sink) = monitor(|b| b);
        drop(
            monitor
                .begin(start(b"GET", "/slow", Some("/slow")))
                .unwrap(),
        );
        let p = &sink.requests()[0];
        assert_eq!(
            (p.status_code, p.disconnected),
            (CLIENT_CLOSED_REQUEST, true)
        );
        assert!(sink.errors().is_empty());
        assert_eq!(monitor.in_flight(), 0);
    }

    #[test]
    fn a_drop_mid_body_keeps_the_status() {
        let (monitor, sink) = monitor(|b| b);
        let mut flight = monitor
            .begin(start(b"GET", "/stream", Some("/stream")))
            .unwrap();
        flight.set_status(200);
        drop(flight);
        let p = &sink.requests()[0];
        assert_eq!((p.status_code, p.disconnected), (200, true));
    }

    /// Regression (review item 9): a body that failed was recorded as a normal completion.
    #[test]
    fn a_body_error_is_an_error_point_with_its_status_and_not_a_disconnect() {
        let (monitor, sink) = monitor(|b| b);
        let mut flight = Flight::from_start(monitor.begin(start(b"GET", "/s", Some("/s"))));
        let mut body = flight.response(200);
        body.body_bytes(8);
        assert!(
            sink.requests().is_empty(),
            "not recorded before the body ends"
        );
        body.body_failed();
        body.body_failed();
        body.complete();
        drop(body);
        let points = sink.requests();
        assert_eq!(points.len(), 1, "recorded exactly once");
        let p = &points[0];
        assert_eq!(
            (p.status_code, p.disconnected, p.response_body_bytes),
            (200, false, 8)
        );
        let errors = sink.errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].error_code, "body_error");
        assert_eq!(monitor.in_flight(), 0);
        // A code the handler attached names the error, as it does for a panic.
        let mut flight = monitor.begin(start(b"GET", "/s", Some("/s"))).unwrap();
        flight.in_scope(|| {
            PointHandle::current().unwrap().error_code("E_UPSTREAM");
        });
        flight.set_status(200);
        flight.body_failed();
        assert_eq!(sink.errors()[1].error_code, "E_UPSTREAM");
    }

    #[test]
    fn a_panic_in_scope_is_a_500_with_error_code_panic() {
        let (monitor, sink) = monitor(|b| b);
        let mut flight = monitor.begin(start(b"GET", "/p", Some("/p"))).unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            flight.in_scope(|| panic!("boom"));
        }));
        assert!(caught.is_err());
        drop(flight); // dropped after the unwinding, as tokio does with a panicked task
        let p = &sink.requests()[0];
        assert_eq!((p.status_code, p.disconnected), (500, false));
        assert_eq!(sink.errors()[0].error_code, "panic");
    }

    #[test]
    fn classification_and_error_codes() {
        let (monitor, sink) = monitor(|b| b);
        let run = |status: u16, code: Option<&str>| {
            let mut flight = monitor.begin(start(b"POST", "/o", Some("/o"))).unwrap();
            flight.in_scope(|| {
                if let Some(code) = code {
                    PointHandle::current().unwrap().error_code(code);
                }
            });
            flight.set_status(status);
            flight.complete();
        };
        run(200, None);
        run(404, None);
        run(503, None);
        run(200, Some("E42"));
        let codes: Vec<String> = sink.errors().into_iter().map(|e| e.error_code).collect();
        assert_eq!(codes, ["503", "E42"]);

        let (monitor, sink) = self::monitor(|b| {
            b.classify_errors(|p: &RequestPoint<'_>, _code: Option<&str>| p.status_code >= 400)
        });
        let mut flight = monitor.begin(start(b"GET", "/x", Some("/x"))).unwrap();
        flight.set_status(404);
        flight.complete();
        assert_eq!(sink.errors()[0].error_code, "404");
    }

    #[test]
    fn handler_tags_and_fields_reach_the_point() {
        let (monitor, sink) = monitor(|b| b);
        let mut flight = monitor.begin(start(b"GET", "/u", Some("/u"))).unwrap();
        let id = flight.request_id();
        flight.in_scope(|| {
            let handle = PointHandle::current().unwrap();
            assert_eq!(handle.request_id(), id);
            handle
                .tag("handler_id", "u")
                .field("rows", 3u32)
                .field("ratio", 0.5);
        });
        flight.set_status(200);
        flight.complete();
        let p = &sink.requests()[0];
        assert_eq!(p.tag("handler_id"), Some("u"));
        assert_eq!(p.field("rows"), Some(&FieldValue::UInt(3)));
        assert_eq!(p.field("ratio"), Some(&FieldValue::Float(0.5)));
    }

    #[test]
    fn bodies_that_http_forbids_complete_at_the_head() {
        let (monitor, _) = monitor(|b| b);
        let mut head = monitor.begin(start(b"HEAD", "/", Some("/"))).unwrap();
        head.set_status(200);
        assert!(!head.response_has_body());
        for (status, has_body) in [
            (200, true),
            (204, false),
            (304, false),
            (101, false),
            (500, true),
        ] {
            let mut flight = monitor.begin(start(b"GET", "/", Some("/"))).unwrap();
            flight.set_status(status);
            assert_eq!(flight.response_has_body(), has_body, "{status}");
            flight.complete();
        }
        head.complete();
    }

    #[test]
    fn builder_refuses_bad_values_with_a_reason() {
        let fails = |b: MonitorBuilder| b.build().unwrap_err();
        let err = fails(Monitor::builder("s").namespace("my-app"));
        assert!(err.to_string().contains("my-app"), "{err}");
        assert_eq!(
            (err.kind(), err.setting()),
            (ConfigErrorKind::InvalidName, "namespace")
        );
        for buckets in [&[1.0, 0.5][..], &[], &[f64::NAN]] {
            let err = fails(Monitor::builder("s").buckets(buckets));
            assert_eq!(err.setting(), "buckets", "{err}");
        }
        assert_eq!(
            fails(Monitor::builder("s").label_tag("__x")).kind(),
            ConfigErrorKind::InvalidName
        );
        let mut b = Monitor::builder("s");
        for i in 0..MAX_LABEL_TAGS {
            b = b.label_tag(format!("t{i}"));
        }
        let err = fails(b.label_tag("one_more"));
        assert!(err.to_string().contains("at most"), "{err}");
        assert_eq!(err.kind(), ConfigErrorKind::OutOfRange);
    }

    #[derive(Debug)]
    struct Panicky {
        started: bool,
        record: bool,
        finished: bool,
    }

    impl Sink for Panicky {
        fn request_started(&self, _: Method) {
            assert!(!self.started, "sink panics in request_started");
        }
        fn record_request(&self, _: &RequestPoint<'_>) {
            assert!(!self.record, "sink panics in record_request");
        }
        fn request_finished(&self, _: Method) {
            assert!(!self.finished, "sink panics in request_finished");
        }
    }

    /// Regression (review item 10): a panicking sink or classifier aborted the process, because
    /// user code runs inside `InFlight::drop`, possibly while a handler's panic unwinds.
    #[test]
    fn panicking_sinks_and_classifiers_are_contained_and_counted() {
        let memory = Arc::new(MemorySink::new(100));
        let monitor = Monitor::builder("svc")
            .sink(Arc::new(Panicky {
                started: true,
                record: true,
                finished: true,
            }))
            .sink(memory.clone())
            .classify_errors(|point: &RequestPoint<'_>, _: Option<&str>| {
                assert!(point.status_code != 503, "classifier panics");
                point.status_code >= 500
            })
            .build()
            .unwrap();
        // A handler that panics: the flight records while the panic unwinds.
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _flight = monitor.begin(start(b"GET", "/p", Some("/p"))).unwrap();
            panic!("handler panics");
        }));
        assert!(unwound.is_err());
        for status in [200, 503] {
            let mut flight = monitor.begin(start(b"GET", "/p", Some("/p"))).unwrap();
            flight.set_status(status);
            flight.complete();
        }
        assert_eq!(monitor.in_flight(), 0);
        // The sink after the panicking one got every point and every call.
        let points = memory.requests();
        assert_eq!(
            points.iter().map(|p| p.status_code).collect::<Vec<_>>(),
            [500, 200, 503]
        );
        assert_eq!(memory.started(), 3);
        // The 503's classifier panicked: not an error point; the panic's 500 is one.
        assert_eq!(memory.errors().len(), 1);
        let metrics = monitor.render_metrics().unwrap();
        assert!(
            metrics.contains(r#"vitalsign_sink_panics_total{sink="Panicky"} 9"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"vitalsign_sink_panics_total{sink="error_classifier"} 1"#),
            "{metrics}"
        );
        assert!(metrics.contains(r#"vitalsign_sink_panics_total{sink="MemorySink"} 0"#));
    }

    /// Regression (review item 8): `draining` and `in_flight` were read and written with
    /// orderings that let both sides see stale values, so `shutdown(deadline)` could wait the
    /// whole deadline. 1 000 shutdowns race a request finishing at that moment.
    #[test]
    fn a_shutdown_racing_the_last_request_never_waits_for_its_deadline() {
        use std::sync::atomic::AtomicUsize;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let deadline = Duration::from_secs(10);
        for round in 0..1000 {
            let builder = Monitor::builder("svc");
            #[cfg(feature = "prometheus")]
            let builder = builder.without_prometheus();
            let monitor = builder.build().unwrap();
            let flight = monitor.begin(start(b"GET", "/", Some("/"))).unwrap();
            let ready = Arc::new(AtomicUsize::new(0));
            let finisher = {
                let ready = Arc::clone(&ready);
                std::thread::spawn(move || {
                    let mut flight = flight;
                    ready.fetch_add(1, Ordering::SeqCst);
                    while ready.load(Ordering::SeqCst) < 2 {
                        std::hint::spin_loop();
                    }
                    // Finish at a different moment of the shutdown each round.
                    for _ in 0..(round % 100) * 50 {
                        std::hint::spin_loop();
                    }
                    flight.complete();
                })
            };
            ready.fetch_add(1, Ordering::SeqCst);
            while ready.load(Ordering::SeqCst) < 2 {
                std::hint::spin_loop();
            }
            let report = runtime.block_on(monitor.shutdown(deadline));
            finisher.join().unwrap();
            assert!(
                report.waited < deadline,
                "round {round}: shutdown missed the last request's wake-up: {report:?}"
            );
            assert_eq!(report.cut, 0);
        }
    }

    /// Regression (review item 4): `global_label("le", …)` was accepted and corrupted every
    /// histogram line; label sources could share a name depending on call order;
    /// `exclude_status(700)` silently excluded 599.
    #[test]
    fn build_validates_the_whole_configuration_in_any_order() {
        let fails = |b: MonitorBuilder| b.build().unwrap_err();
        for reserved in RESERVED_LABEL_NAMES {
            let err = fails(Monitor::builder("s").global_label(*reserved, "x"));
            assert_eq!(
                err.kind(),
                ConfigErrorKind::ReservedName,
                "{reserved}: {err}"
            );
            assert_eq!(err.setting(), "global_label");
            let err = fails(Monitor::builder("s").label_tag(*reserved));
            assert_eq!(
                err.kind(),
                ConfigErrorKind::ReservedName,
                "{reserved}: {err}"
            );
            let err = fails(Monitor::builder("s").path_label(*reserved));
            assert_eq!(
                err.kind(),
                ConfigErrorKind::ReservedName,
                "{reserved}: {err}"
            );
            let err = fails(Monitor::builder("s").label_fn(*reserved, |_| None));
            assert_eq!(
                err.kind(),
                ConfigErrorKind::ReservedName,
                "{reserved}: {err}"
            );
        }
        // Every pair of label sources, in both orders, refuses a shared name.
        type Source = fn(MonitorBuilder) -> MonitorBuilder;
        let sources: [(&str, Source); 5] = [
            ("global_label", |b| b.global_label("tenant", "a")),
            ("label_tag", |b| b.label_tag("tenant")),
            ("path_label", |b| b.path_label("tenant")),
            ("path_label_on", |b| {
                b.path_label_on(&["/t/{tenant}"], "tenant")
            }),
            ("label_fn", |b| b.label_fn("tenant", |_| None)),
        ];
        for (first_name, first) in sources {
            for (second_name, second) in sources {
                let err = fails(second(first(Monitor::builder("s"))));
                assert_eq!(
                    err.kind(),
                    ConfigErrorKind::DuplicateName,
                    "{first_name} then {second_name}: {err}"
                );
                assert!(err.to_string().contains("tenant"), "{err}");
            }
            assert!(first(Monitor::builder("s")).build().is_ok(), "{first_name}");
        }
        for status in [0, 99, 600, 700, u16::MAX] {
            let err = fails(Monitor::builder("s").exclude_status(status));
            assert_eq!(err.kind(), ConfigErrorKind::OutOfRange, "{status}");
            assert!(err.to_string().contains(&status.to_string()), "{err}");
        }
        // 599 is a valid status: excluding it works, and 700 never excluded it.
        let (monitor, sink) = monitor(|b| b.exclude_status(599));
        let mut flight = monitor.begin(start(b"GET", "/", Some("/"))).unwrap();
        flight.set_status(599);
        flight.complete();
        assert!(sink.requests().is_empty());
        let err = fails(Monitor::builder("s").token(""));
        assert_eq!(
            (err.kind(), err.setting()),
            (ConfigErrorKind::InvalidValue, "token")
        );
        let err = fails(
            Monitor::builder("s")
                .task("db", crate::health::Task::new())
                .check(
                    "db",
                    crate::health::Check::new(|| async { Ok::<(), String>(()) }),
                ),
        );
        assert_eq!(
            (err.kind(), err.setting()),
            (ConfigErrorKind::DuplicateName, "check")
        );
        let err = fails(Monitor::builder("s").task("live", crate::health::Task::new()));
        assert_eq!(err.kind(), ConfigErrorKind::InvalidName);
    }
}
