//! [`MonitorBuilder`] and its settings (each one infallible; [`MonitorBuilder::build`] checks them).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashSet;

use super::labels::{LabelFn, RequestInfo, DEFAULT_MAX_LABEL_SETS};
#[cfg(doc)]
use super::{Monitor, DEFAULT_EXCLUDED_PATHS, MAX_LABEL_TAGS, RESERVED_LABEL_NAMES};
use crate::classify::{BoxedClassifier, ClassifyError, DefaultClassifier};
use crate::health::{
    Check, ClassifyTaskError, ComponentKind, ComponentSpec, DefaultTaskClassifier, HealthConfig,
    Rule, Task,
};
#[cfg(feature = "prometheus")]
use crate::prometheus::PrometheusSetup;
use crate::Sink;

/// The OpenTelemetry HTTP server duration buckets, in seconds.
pub const DEFAULT_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Builds a [`Monitor`]. Every option has a default; see each method.
#[must_use]
#[derive(Debug)]
pub struct MonitorBuilder {
    pub(super) service: String,
    pub(super) namespace: Option<String>,
    pub(super) global_labels: Vec<(String, String)>,
    pub(super) buckets: Vec<f64>,
    pub(super) excluded: HashSet<Box<str>>,
    pub(super) excluded_prefixes: Vec<Box<str>>,
    pub(super) excluded_statuses: Vec<u16>,
    pub(super) exclude_own_endpoints: bool,
    pub(super) endpoints: crate::endpoint::Endpoints,
    pub(super) max_label_sets: usize,
    pub(super) label_tags: Vec<Cow<'static, str>>,
    pub(super) path_labels: Vec<Cow<'static, str>>,
    pub(super) path_label_routes: Vec<(Cow<'static, str>, Vec<Box<str>>)>,
    pub(super) label_fns: Vec<(Cow<'static, str>, LabelFn)>,
    pub(super) classifier: BoxedClassifier,
    pub(super) sinks: Vec<Arc<dyn Sink>>,
    pub(super) upkeep_interval: Duration,
    pub(super) head_histogram: bool,
    pub(super) size_histogram: bool,
    pub(super) request_size_histogram: bool,
    #[cfg(feature = "native-histograms")]
    pub(super) native_histograms: bool,
    pub(super) point_in_extensions: bool,
    #[cfg(feature = "prometheus")]
    pub(super) prometheus: PrometheusSetup,
    pub(super) version: String,
    #[cfg(feature = "stats")]
    pub(super) collection_interval: Duration,
    #[cfg(feature = "stats")]
    pub(super) probe_interval: Duration,
    pub(super) health: HealthConfig,
    pub(super) task_classifier: BoxedTaskClassifier,
    pub(super) token: Option<String>,
    /// Which setting added each entry of `label_tags`, for error messages.
    pub(super) label_sources: Vec<&'static str>,
    #[cfg(feature = "slo")]
    pub(super) objectives: Vec<(String, crate::slo::Objective)>,
}

/// A task classifier, printed by type name.
pub(super) struct BoxedTaskClassifier(
    pub(super) Box<dyn ClassifyTaskError>,
    pub(super) &'static str,
);

impl fmt::Debug for BoxedTaskClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
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
            #[cfg(feature = "native-histograms")]
            native_histograms: false,
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
            #[cfg(feature = "slo")]
            objectives: Vec::new(),
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

    /// Declares a service-level objective named `name` (1 to 64 of `A-Z a-z 0-9 _ - .`):
    /// [`Monitor::prometheus_rules`] and [`Monitor::grafana_dashboard`] turn the objectives
    /// into recording rules, burn-rate alerts and dashboard panels (see [`crate::slo`]).
    /// `build()` checks the name, the target, and that a latency threshold is a bucket bound.
    ///
    /// ```
    /// use std::time::Duration;
    /// use vitalsign_core::{Monitor, Objective};
    ///
    /// let monitor = Monitor::builder("shop")
    ///     .objective("availability", Objective::availability(0.999))
    ///     .objective("latency", Objective::latency(Duration::from_millis(500), 0.99))
    ///     .build()?;
    /// assert!(monitor.prometheus_rules().contains("vitalsign-slo:shop:latency"));
    /// # Ok::<(), vitalsign_core::ConfigError>(())
    /// ```
    #[cfg(feature = "slo")]
    pub fn objective(mut self, name: impl Into<String>, objective: crate::slo::Objective) -> Self {
        self.objectives.push((name.into(), objective));
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

    /// Also keeps the request duration as a Prometheus **native histogram** (feature
    /// `native-histograms`), beside the classic buckets: exponential buckets of schema 3
    /// (quantiles within 9.05 % of the truth at any latency), a zero bucket up to 2⁻²⁰ s,
    /// at most 256 buckets up to 4096 s (longer durations clamped into the last one), in chunks
    /// of 32 allocated on first use: about 0.7 KiB per series for durations between 3.9 ms and
    /// 1 s, 2.2 KiB at most. See [`prometheus`](crate::prometheus) (`NATIVE_*` constants). `/metrics` serves them in the protobuf exposition format to a scraper that asks
    /// for it (Prometheus with `--enable-feature=native-histograms`); the text format keeps the
    /// classic buckets only. Defaults to `false`.
    ///
    /// ```
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").native_histograms(true).build().unwrap();
    /// assert!(monitor.render_metrics_protobuf().is_some());
    /// ```
    #[cfg(feature = "native-histograms")]
    pub fn native_histograms(mut self, on: bool) -> Self {
        self.native_histograms = on;
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
}
