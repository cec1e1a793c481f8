//! The Prometheus sink: records through the `metrics` facade into a
//! `metrics-exporter-prometheus` registry and renders `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_server_request_duration_seconds` | histogram | `http_request_method`, `http_route`, `http_response_status_code` (+ declared tags) |
//! | `http_server_active_requests` | gauge | `http_request_method` |
//! | `http_server_errors_total` | counter | `http_request_method`, `http_route`, `http_response_status_code`, `error_code` |
//! | `http_server_disconnects_total` | counter | `http_request_method`, `http_route` |
//! | `service_health_status` | gauge (0 unavailable, 1 degraded, 2 available) | `component` |
//! | `http_server_upgraded_sessions` | gauge | `http_route` |
//! | `http_server_upgraded_session_duration_seconds` | histogram | `http_route` |
//!
//! Histograms and the in-flight gauge are vitalsign's own atomics. A request's histograms are
//! found in a lock-free cache of label sets, so recording a successful request takes no lock
//! and allocates nothing; a label set seen for the first time (or with handler tags as
//! labels), and the error and disconnect counters, are looked up in bounded maps under a read
//! lock. Nothing is allocated for a known label set. By default the sink owns its recorder (no global state); see
//! [`MonitorBuilder::prometheus_handle`](crate::MonitorBuilder::prometheus_handle) to share the
//! application's. Since the histograms are outside the recorder, a shared handle's `render()`
//! lacks them: an application serving `/metrics` itself answers
//! [`Monitor::render_metrics`](crate::Monitor::render_metrics), which renders everything.
//!
//! `/metrics` answers the classic text format unless the scraper asks for OpenMetrics 1.0
//! ([`ExpositionFormat`]), which also carries the duration histogram's exemplars: per bucket,
//! the latest request with a sampled W3C `traceparent` ([`crate::trace`]).
//!
//! ```
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop").build().unwrap();
//! let text = monitor.render_metrics().unwrap();
//! assert!(text.contains("# HELP http_server_active_requests"));
//! ```

// This file: the public names, `PrometheusSink`, its rendering and its `Sink` impl.
mod active; // the in-flight gauge
mod collectors; // what is gathered before each render: sink queues, `/stats`, process series
mod exemplar; // the duration histogram's exemplars: a sequence lock of atomics per bucket
mod format; // exposition formats, their negotiation, OpenMetrics text from the classic text
mod histogram; // atomic histograms, their families, the lock-free label-set cache
#[cfg(feature = "native-histograms")]
mod native; // native histograms of the request duration (exponential buckets, schema 3)
#[cfg(feature = "native-histograms")]
mod protobuf; // the protobuf exposition format, and `Accept` negotiation for it
#[cfg(feature = "rpc")]
mod rpc; // the `rpc_server_*` families of gRPC calls
mod series; // the series of one metric: an interner of handles per label set, capped
mod setup; // `PrometheusConfig`, `PrometheusSetup`, building the sink, the upkeep thread
mod text; // exposition text: label escaping, collectors' families, merging of families

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, OnceLock};

use metrics::{Counter, Gauge, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

use active::ActiveGauge;
#[cfg(feature = "stats")]
pub(crate) use collectors::stats_collector;
pub(crate) use collectors::{annotation_collector, sink_collector};
pub use format::{ExpositionFormat, OPENMETRICS_CONTENT_TYPE};
#[cfg(feature = "status")]
pub(crate) use histogram::AtomicHistogram;
use histogram::HistogramFamily;
#[cfg(feature = "native-histograms")]
pub use native::{
    NATIVE_MAX_BUCKETS, NATIVE_MAX_RELATIVE_ERROR, NATIVE_SCHEMA, NATIVE_ZERO_THRESHOLD,
};
#[cfg(feature = "rpc")]
pub use rpc::{
    MESSAGE_BUCKETS, RPC_ACTIVE_CALLS, RPC_CALL_DURATION, RPC_DISCONNECTS, RPC_ERRORS,
    RPC_REQUESTS_PER_RPC, RPC_RESPONSES_PER_RPC,
};
use series::Series;
use setup::label_value;
pub(crate) use setup::{PrometheusConfig, PrometheusSetup};
use text::RenderedFamily;
pub(crate) use text::{Collector, Exposition};

use crate::{ErrorPoint, Method, RequestPoint, Sink};

/// Base name of the request duration histogram.
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// Base name of the in-flight requests gauge.
pub const ACTIVE_REQUESTS: &str = "http_server_active_requests";
/// Base name of the errors counter.
pub const ERRORS: &str = "http_server_errors_total";
/// Base name of the disconnects counter.
pub const DISCONNECTS: &str = "http_server_disconnects_total";
/// Base name of the optional time-to-response-head histogram.
pub const RESPONSE_HEAD_DURATION: &str = "http_server_response_head_duration_seconds";
/// Base name of the optional request body size histogram.
pub const REQUEST_BODY_SIZE: &str = "http_server_request_body_size_bytes";
/// Base name of the optional response body size histogram.
pub const RESPONSE_BODY_SIZE: &str = "http_server_response_body_size_bytes";
/// Buckets of the response body size histogram, in bytes (64 B to 64 MiB, by 4).
pub const SIZE_BUCKETS: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

/// Base name of the gauge of each annotation stream's latest event start (Unix seconds).
pub const ANNOTATION_LAST_TIMESTAMP: &str = "vitalsign_annotation_last_timestamp_seconds";

/// Base name of the gauge of upgraded sessions (WebSockets) open now, by route.
pub const UPGRADED_SESSIONS: &str = "http_server_upgraded_sessions";
/// Base name of the histogram of upgraded sessions' lengths, by route.
pub const UPGRADED_SESSION_DURATION: &str = "http_server_upgraded_session_duration_seconds";

/// Base name of the health gauge (0 unavailable, 1 degraded, 2 available).
pub const HEALTH_STATUS: &str = "service_health_status";
/// Name of the thread that runs the exporter's upkeep (one per monitor; see
/// [`MonitorBuilder::upkeep_interval`](crate::MonitorBuilder::upkeep_interval)).
pub const UPKEEP_THREAD: &str = "vitalsign-upkeep";
/// Label of the one series that takes every label set past the cap.
pub const OVERFLOW_LABEL: (&str, &str) = ("otel_metric_overflow", "true");

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Where series are registered.
enum Registrar {
    Own(PrometheusRecorder),
    Global,
}

impl Registrar {
    fn with<T>(&self, f: impl FnOnce(&dyn Recorder) -> T) -> T {
        match self {
            Registrar::Own(recorder) => f(recorder),
            Registrar::Global => metrics::with_recorder(f),
        }
    }
}

/// The Prometheus sink of a [`Monitor`](crate::Monitor).
pub struct PrometheusSink {
    registrar: Registrar,
    handle: PrometheusHandle,
    global_labels: Vec<Label>,
    label_tags: Vec<std::borrow::Cow<'static, str>>,
    /// `http_server_active_requests`, one per method: vitalsign's own atomics (one addition
    /// a request each way), rendered with the histograms.
    active: ActiveGauge,
    /// Fronted by the lock-free cache of a request's histograms (keyed by method, status and
    /// route) unless handler tags are labels.
    durations: HistogramFamily,
    /// The duration's native histograms, one per label set of `durations`
    /// ([`MonitorBuilder::native_histograms`](crate::MonitorBuilder::native_histograms)).
    #[cfg(feature = "native-histograms")]
    natives: Option<native::NativeFamily>,
    errors: Series<Counter>,
    disconnects: Series<Counter>,
    heads: Option<HistogramFamily>,
    sizes: Option<HistogramFamily>,
    request_sizes: Option<HistogramFamily>,
    health_name: KeyName,
    health: std::sync::Mutex<Vec<(String, Gauge)>>,
    /// `http_server_upgraded_sessions`, by route (routes are capped by the monitor).
    sessions_name: KeyName,
    sessions: std::sync::Mutex<Vec<(Box<str>, Gauge)>>,
    session_durations: HistogramFamily,
    /// The `rpc_server_*` families of gRPC calls.
    #[cfg(feature = "rpc")]
    rpc: rpc::RpcFamilies,
    collector: OnceLock<Collector>,
    /// The global labels, rendered once for the collectors' own text.
    global_rendered: String,
    _upkeep: mpsc::Sender<()>,
}

impl fmt::Debug for PrometheusSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusSink")
            .field(
                "owns_recorder",
                &matches!(self.registrar, Registrar::Own(_)),
            )
            .field("label_sets", &self.durations.len())
            .finish_non_exhaustive()
    }
}

impl PrometheusSink {
    /// Renders the exposition text of the whole registry (the application's own metrics too
    /// when it shares its recorder), after collecting process and runtime figures, in the
    /// classic text format.
    pub fn render(&self) -> String {
        self.render_text(false)
    }

    /// The whole registry in `format` (see [`ExpositionFormat::negotiate`]): the classic text
    /// as [`PrometheusSink::render`]; OpenMetrics text with the duration histogram's
    /// exemplars; with the feature `native-histograms`, the protobuf exposition format with
    /// the native histograms.
    pub fn render_as(&self, format: ExpositionFormat) -> Vec<u8> {
        match format {
            ExpositionFormat::Text => self.render_text(false).into_bytes(),
            ExpositionFormat::OpenMetrics => {
                format::to_openmetrics(&self.render_text(true)).into_bytes()
            }
            #[cfg(feature = "native-histograms")]
            ExpositionFormat::Protobuf => self.render_protobuf(),
        }
    }

    /// The classic text, with exemplars on the duration histogram's bucket lines if asked
    /// (for the OpenMetrics rewrite only: the classic format has none).
    fn render_text(&self, exemplars: bool) -> String {
        let mut exposition = Exposition {
            families: Vec::new(),
            global_labels: &self.global_rendered,
        };
        if let Some(collect) = self.collector.get() {
            match &self.registrar {
                Registrar::Own(recorder) => {
                    metrics::with_local_recorder(recorder, || collect(&mut exposition))
                }
                Registrar::Global => collect(&mut exposition),
            }
        }
        // The registry's families (the application's too when it shares the recorder) come
        // out of hash maps, in a new order on each render; collectors' own families join them
        // unless the registry has them already.
        let mut shared = self.handle.render();
        if !shared.is_empty() && !shared.ends_with("\n\n") {
            shared.push('\n');
        }
        exposition.append_to(&mut shared);
        // vitalsign's histograms live in its own atomic buckets (exact, never buffered).
        let mut own = String::new();
        self.active.render_into(&mut own);
        self.durations.render_into(exemplars, &mut own);
        for family in [&self.heads, &self.sizes, &self.request_sizes]
            .into_iter()
            .flatten()
        {
            family.render_into(false, &mut own);
        }
        self.session_durations.render_into(false, &mut own);
        #[cfg(feature = "rpc")]
        self.rpc.render_into(&mut own);
        // Both merged in family name order, series sorted: two scrapes diff line by line. (A
        // name in both comes from the registry first; an unstable sort on the pair compiles to
        // less code than a stable one.)
        let mut families: Vec<RenderedFamily<'_>> = RenderedFamily::split(&shared, true)
            .chain(RenderedFamily::split(&own, false))
            .collect();
        families.sort_unstable_by_key(|family| (family.name, !family.sort_samples));
        let mut text = String::with_capacity(shared.len() + own.len() + families.len());
        for family in families {
            family.write_into(&mut text);
        }
        text
    }

    pub(crate) fn set_collector(&self, collector: Collector) {
        let _ = self.collector.set(collector);
    }

    /// The handle of the registry. Its `render()` has the registry's series only, not
    /// vitalsign's histograms and in-flight gauge (they are vitalsign's own atomics): to serve
    /// `/metrics`, use [`PrometheusSink::render`] or
    /// [`Monitor::render_metrics`](crate::Monitor::render_metrics).
    pub fn handle(&self) -> &PrometheusHandle {
        &self.handle
    }

    /// Distinct label sets of the duration histogram (the overflow series not included).
    pub fn label_sets(&self) -> usize {
        self.durations.len()
    }

    /// Registers the counter of one label set (`labels`) with the exporter.
    fn register(&self, series: &Series<Counter>, labels: &[(&str, &str)]) -> Counter {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new((*k).to_owned(), label_value(v)))
            .chain(self.global_labels.iter().cloned())
            .collect();
        let key = Key::from_parts(series.name.clone(), labels);
        self.registrar.with(|r| r.register_counter(&key, &METADATA))
    }

    fn count(&self, series: &Series<Counter>, values: &[&str]) {
        series.with(
            values,
            |labels| self.register(series, labels),
            |c| c.increment(1),
        )
    }
}

impl PrometheusSink {
    /// The upgraded-sessions gauge of `route` (sessions are rare: a short list under a lock).
    fn session_gauge(&self, route: &str) -> Gauge {
        let mut gauges = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, gauge)) = gauges.iter().find(|(r, _)| **r == *route) {
            return gauge.clone();
        }
        let mut labels = vec![Label::new("http_route", label_value(route))];
        labels.extend(self.global_labels.iter().cloned());
        let key = Key::from_parts(self.sessions_name.clone(), labels);
        let gauge = self.registrar.with(|r| r.register_gauge(&key, &METADATA));
        gauges.push((route.into(), gauge.clone()));
        gauge
    }
}

impl Sink for PrometheusSink {
    fn needs_request_id(&self) -> bool {
        false
    }

    /// Only for the optional time-to-response-head histogram.
    fn needs_head_time(&self) -> bool {
        self.heads.is_some()
    }

    fn request_started(&self, method: Method) {
        self.active.counts[method.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        #[cfg(feature = "rpc")]
        if let Some(call) = &point.rpc {
            return self.record_rpc(point, call);
        }
        self.record_histograms(point);
        if point.disconnected {
            let values = [point.method.as_str(), point.route];
            self.count(&self.disconnects, &values);
        }
    }

    fn request_finished(&self, method: Method) {
        self.active.counts[method.index()].fetch_sub(1, Ordering::Relaxed);
    }

    #[cfg(feature = "rpc")]
    fn rpc_started(&self) {
        self.rpc.started();
    }

    #[cfg(feature = "rpc")]
    fn rpc_finished(&self) {
        self.rpc.finished();
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        #[cfg(feature = "rpc")]
        if point.request.rpc.is_some() {
            return; // counted in `rpc_server_errors_total` by `record_rpc`
        }
        let mut status = itoa::Buffer::new();
        let values = [
            point.request.method.as_str(),
            point.request.route,
            status.format(point.request.status_code),
            point.error_code,
        ];
        self.count(&self.errors, &values);
    }

    fn upgraded_session_started(&self, route: &str) {
        self.session_gauge(route).increment(1.0);
    }

    fn upgraded_session_ended(&self, route: &str, duration: std::time::Duration) {
        self.session_gauge(route).decrement(1.0);
        self.session_durations
            .handle(&[route])
            .record(duration.as_secs_f64());
    }

    fn health_changed(&self, component: &str, level: crate::health::Level) {
        let mut gauges = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, gauge)) = gauges.iter().find(|(name, _)| name == component) {
            return gauge.set(level.gauge_value());
        }
        let mut labels = vec![Label::new("component", component.to_owned())];
        labels.extend(self.global_labels.iter().cloned());
        let key = Key::from_parts(self.health_name.clone(), labels);
        let gauge = self.registrar.with(|r| r.register_gauge(&key, &METADATA));
        gauge.set(level.gauge_value());
        gauges.push((component.to_owned(), gauge));
    }
}

#[cfg(test)]
mod golden;
