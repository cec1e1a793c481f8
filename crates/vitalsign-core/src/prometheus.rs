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
//!
//! Handles are registered once per label set and kept in a bounded map, so recording a request on
//! a known label set is a hash lookup under a read lock plus one atomic operation per metric, with
//! no allocation. By default the sink owns its recorder (no global state); see
//! [`MonitorBuilder::prometheus_handle`](crate::MonitorBuilder::prometheus_handle) to share the
//! application's.
//!
//! ```
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop").build().unwrap();
//! let text = monitor.render_metrics().unwrap();
//! assert!(text.contains("# HELP http_server_active_requests"));
//! ```

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use hashbrown::{Equivalent, HashMap};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::monitor::{ConfigError, MonitorBuilder, PrometheusSetup, MAX_LABEL_TAGS};
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

/// Base name of the health gauge (0 unavailable, 1 degraded, 2 available).
pub const HEALTH_STATUS: &str = "service_health_status";
/// Name of the thread that folds histogram samples while nothing scrapes (one per monitor).
pub const UPKEEP_THREAD: &str = "vitalsign-upkeep";
/// Label of the one series that takes every label set past the cap.
pub const OVERFLOW_LABEL: (&str, &str) = ("otel_metric_overflow", "true");

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A label value as the exporter expects it. Its sanitiser takes `\\` as an escaped backslash
/// and `\"` as an escaped quote (it assumes half-escaped input), so raw backslashes are doubled
/// first; the rendered value then reads back exactly as given (`tests/properties.rs`).
fn label_value(value: &str) -> String {
    if value.contains('\\') {
        value.replace('\\', "\\\\")
    } else {
        value.to_owned()
    }
}

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
    active: Vec<Gauge>,
    durations: BoundedSeries<Histogram>,
    errors: BoundedSeries<Counter>,
    disconnects: BoundedSeries<Counter>,
    heads: Option<BoundedSeries<Histogram>>,
    sizes: Option<BoundedSeries<Histogram>>,
    request_sizes: Option<BoundedSeries<Histogram>>,
    health_name: KeyName,
    health: std::sync::Mutex<Vec<(String, Gauge)>>,
    collector: OnceLock<Collector>,
    _upkeep: mpsc::Sender<()>,
}

/// Work done just before each render (process and runtime figures, custom stats).
pub(crate) type Collector = Box<dyn Fn() + Send + Sync>;

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
    pub(crate) fn new(
        config: &MonitorBuilder,
        setup: PrometheusSetup,
    ) -> Result<Self, ConfigError> {
        let name = |base: &str| -> KeyName {
            match &config.namespace {
                Some(ns) => format!("{ns}_{base}").into(),
                None => base.to_owned().into(),
            }
        };
        let duration_name = name(REQUEST_DURATION);
        let (registrar, handle) = match setup {
            PrometheusSetup::Own => {
                // Global labels also go to the builder, so that series vitalsign does not
                // register itself (process_*) carry them too.
                let builder = config
                    .global_labels
                    .iter()
                    .fold(PrometheusBuilder::new(), |b, (k, v)| {
                        b.add_global_label(k, label_value(v))
                    });
                let recorder = builder
                    .set_buckets(&config.buckets)
                    .and_then(|b| {
                        [RESPONSE_BODY_SIZE, REQUEST_BODY_SIZE]
                            .into_iter()
                            .try_fold(b, |b, metric| {
                                b.set_buckets_for_metric(
                                    metrics_exporter_prometheus::Matcher::Full(
                                        name(metric).as_str().to_owned(),
                                    ),
                                    SIZE_BUCKETS,
                                )
                            })
                    })
                    .map_err(|e| ConfigError(format!("buckets: {e}")))?
                    .build_recorder();
                let handle = recorder.handle();
                (Registrar::Own(recorder), handle)
            }
            PrometheusSetup::Recorder(recorder) => {
                let handle = recorder.handle();
                (Registrar::Own(recorder), handle)
            }
            PrometheusSetup::Installed(handle) => (Registrar::Global, handle),
            PrometheusSetup::Off => unreachable!("no sink is built when Prometheus is off"),
        };
        let global_labels: Vec<Label> = config
            .global_labels
            .iter()
            .map(|(k, v)| Label::new(k.clone(), label_value(v)))
            .collect();

        let mut duration_labels = vec![
            "http_request_method",
            "http_route",
            "http_response_status_code",
        ];
        let tag_names: Vec<String> = config.label_tags.iter().map(|t| t.to_string()).collect();
        let durations = BoundedSeries::new(
            duration_name,
            duration_labels
                .drain(..)
                .map(String::from)
                .chain(tag_names)
                .collect(),
            config.max_label_sets,
        );
        let errors = BoundedSeries::new(
            name(ERRORS),
            [
                "http_request_method",
                "http_route",
                "http_response_status_code",
                "error_code",
            ]
            .map(String::from)
            .to_vec(),
            config.max_label_sets,
        );
        let disconnects = BoundedSeries::new(
            name(DISCONNECTS),
            ["http_request_method", "http_route"]
                .map(String::from)
                .to_vec(),
            config.max_label_sets,
        );
        let three = || {
            [
                "http_request_method",
                "http_route",
                "http_response_status_code",
            ]
            .map(String::from)
            .to_vec()
        };
        let heads = config.head_histogram.then(|| {
            BoundedSeries::new(name(RESPONSE_HEAD_DURATION), three(), config.max_label_sets)
        });
        let sizes = config
            .size_histogram
            .then(|| BoundedSeries::new(name(RESPONSE_BODY_SIZE), three(), config.max_label_sets));
        let request_sizes = config
            .request_size_histogram
            .then(|| BoundedSeries::new(name(REQUEST_BODY_SIZE), three(), config.max_label_sets));
        let active_name = name(ACTIVE_REQUESTS);
        let health_name = name(HEALTH_STATUS);

        registrar.with(|r| {
            r.describe_histogram(
                durations.name.clone(),
                Some(Unit::Seconds),
                "Duration of HTTP server requests, from arrival until the response body ended or was dropped.".into(),
            );
            r.describe_gauge(
                active_name.clone(),
                None,
                "Number of HTTP server requests in flight (response body not yet ended).".into(),
            );
            r.describe_counter(
                errors.name.clone(),
                None,
                "HTTP server requests classified as errors (status >= 500 or an error code attached by the handler).".into(),
            );
            if let Some(heads) = &heads {
                r.describe_histogram(
                    heads.name.clone(),
                    Some(Unit::Seconds),
                    "Time from a request's arrival until its response head was ready.".into(),
                );
            }
            if let Some(request_sizes) = &request_sizes {
                r.describe_histogram(
                    request_sizes.name.clone(),
                    Some(Unit::Bytes),
                    "Request body bytes actually read.".into(),
                );
            }
            if let Some(sizes) = &sizes {
                r.describe_histogram(
                    sizes.name.clone(),
                    Some(Unit::Bytes),
                    "Response body bytes actually produced.".into(),
                );
            }
            r.describe_gauge(
                health_name.clone(),
                None,
                "Health level of each component: 0 unavailable, 1 degraded, 2 available.".into(),
            );
            r.describe_counter(
                disconnects.name.clone(),
                None,
                "HTTP server requests whose client hung up before the response body ended.".into(),
            );
        });
        let active = registrar.with(|r| {
            Method::ALL
                .iter()
                .map(|m| {
                    let mut labels = vec![Label::new("http_request_method", m.as_str())];
                    labels.extend(global_labels.iter().cloned());
                    r.register_gauge(&Key::from_parts(active_name.clone(), labels), &METADATA)
                })
                .collect()
        });

        let (stop, stopped) = mpsc::channel::<()>();
        let upkeep_handle = handle.clone();
        let interval = config.upkeep_interval;
        std::thread::Builder::new()
            .name(UPKEEP_THREAD.into())
            .spawn(move || upkeep(upkeep_handle, stopped, interval))
            .map_err(|e| ConfigError(format!("cannot start the histogram upkeep thread: {e}")))?;

        Ok(PrometheusSink {
            registrar,
            handle,
            global_labels,
            label_tags: config.label_tags.clone(),
            active,
            durations,
            errors,
            disconnects,
            heads,
            sizes,
            request_sizes,
            health_name,
            health: std::sync::Mutex::new(Vec::new()),
            collector: OnceLock::new(),
            _upkeep: stop,
        })
    }

    /// Renders the exposition text of the whole registry (the application's own metrics too
    /// when it shares its recorder), after collecting process and runtime figures.
    pub fn render(&self) -> String {
        if let Some(collect) = self.collector.get() {
            match &self.registrar {
                Registrar::Own(recorder) => metrics::with_local_recorder(recorder, collect),
                Registrar::Global => collect(),
            }
        }
        self.handle.render()
    }

    pub(crate) fn set_collector(&self, collector: Collector) {
        let _ = self.collector.set(collector);
    }

    /// The handle of the registry.
    pub fn handle(&self) -> &PrometheusHandle {
        &self.handle
    }

    /// Distinct label sets of the duration histogram (the overflow series not included).
    pub fn label_sets(&self) -> usize {
        self.durations.len()
    }

    fn register<H>(&self, series: &BoundedSeries<H>, values: &[&str], kind: Kind) -> H
    where
        H: From<Registered>,
    {
        let mut labels: Vec<Label> = series
            .label_names
            .iter()
            .zip(values)
            .map(|(k, v)| Label::new(k.clone(), label_value(v)))
            .collect();
        labels.extend(self.global_labels.iter().cloned());
        self.register_key(&Key::from_parts(series.name.clone(), labels), kind)
            .into()
    }

    fn register_overflow<H: From<Registered>>(&self, series: &BoundedSeries<H>, kind: Kind) -> H {
        if !series.overflowed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                metric = series.name.as_str(),
                max = series.cap,
                "vitalsign: label-set cap reached; further label sets are recorded in the series labelled otel_metric_overflow=\"true\""
            );
        }
        let mut labels = vec![Label::new(OVERFLOW_LABEL.0, OVERFLOW_LABEL.1)];
        labels.extend(self.global_labels.iter().cloned());
        self.register_key(&Key::from_parts(series.name.clone(), labels), kind)
            .into()
    }

    fn register_key(&self, key: &Key, kind: Kind) -> Registered {
        self.registrar.with(|r| match kind {
            Kind::Histogram => Registered::Histogram(r.register_histogram(key, &METADATA)),
            Kind::Counter => Registered::Counter(r.register_counter(key, &METADATA)),
        })
    }

    fn with_series<H: Clone + From<Registered>>(
        &self,
        series: &BoundedSeries<H>,
        values: &[&str],
        kind: Kind,
        f: impl FnOnce(&H),
    ) {
        series.with(
            values,
            || self.register(series, values, kind),
            || self.register_overflow(series, kind),
            f,
        )
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Histogram,
    Counter,
}

enum Registered {
    Histogram(Histogram),
    Counter(Counter),
}

impl From<Registered> for Histogram {
    fn from(r: Registered) -> Self {
        match r {
            Registered::Histogram(h) => h,
            Registered::Counter(_) => Histogram::noop(),
        }
    }
}

impl From<Registered> for Counter {
    fn from(r: Registered) -> Self {
        match r {
            Registered::Counter(c) => c,
            Registered::Histogram(_) => Counter::noop(),
        }
    }
}

impl Sink for PrometheusSink {
    fn needs_request_id(&self) -> bool {
        false
    }

    fn request_started(&self, method: Method) {
        self.active[method.index()].increment(1.0);
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        let mut status = itoa::Buffer::new();
        let mut values = [""; 3 + MAX_LABEL_TAGS];
        values[0] = point.method.as_str();
        values[1] = point.route;
        values[2] = status.format(point.status_code);
        for (slot, key) in values[3..].iter_mut().zip(&self.label_tags) {
            *slot = point.tag(key).unwrap_or("");
        }
        let values = &values[..3 + self.label_tags.len()];
        self.with_series(&self.durations, values, Kind::Histogram, |h| {
            h.record(point.execution_time)
        });
        if point.disconnected {
            self.with_series(&self.disconnects, &values[..2], Kind::Counter, |c| {
                c.increment(1)
            });
        }
        if let (Some(heads), Some(head)) = (&self.heads, point.head_time) {
            self.with_series(heads, &values[..3], Kind::Histogram, |h| h.record(head));
        }
        if let Some(sizes) = &self.sizes {
            let bytes = point.response_body_bytes as f64;
            self.with_series(sizes, &values[..3], Kind::Histogram, |h| h.record(bytes));
        }
        if let Some(sizes) = &self.request_sizes {
            let bytes = point.request_body_bytes as f64;
            self.with_series(sizes, &values[..3], Kind::Histogram, |h| h.record(bytes));
        }
    }

    fn request_finished(&self, method: Method) {
        self.active[method.index()].decrement(1.0);
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        let mut status = itoa::Buffer::new();
        let values = [
            point.request.method.as_str(),
            point.request.route,
            status.format(point.request.status_code),
            point.error_code,
        ];
        self.with_series(&self.errors, &values, Kind::Counter, |c| c.increment(1));
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

/// The collector of push-sink queue figures: `vitalsign_sink_{sent,dropped}_points_total{sink}`
/// and `vitalsign_sink_queued_points{sink}`.
pub(crate) fn sink_collector(
    sinks: Vec<std::sync::Arc<dyn Sink>>,
    namespace: Option<String>,
) -> Collector {
    let name = |base: &str| match &namespace {
        Some(ns) => format!("{ns}_{base}"),
        None => base.to_owned(),
    };
    let [sent, dropped, queued] = [
        "vitalsign_sink_sent_points_total",
        "vitalsign_sink_dropped_points_total",
        "vitalsign_sink_queued_points",
    ]
    .map(name);
    Box::new(move || {
        if sinks.is_empty() {
            return;
        }
        metrics::describe_counter!(sent.clone(), "Points a push sink delivered.");
        metrics::describe_counter!(
            dropped.clone(),
            "Points a push sink dropped: queue full, rejected by the server (4xx), or undeliverable."
        );
        metrics::describe_gauge!(queued.clone(), "Points waiting in a push sink's queue.");
        for report in sinks.iter().filter_map(|s| s.report()) {
            metrics::counter!(sent.clone(), "sink" => report.name).absolute(report.sent);
            metrics::counter!(dropped.clone(), "sink" => report.name).absolute(report.dropped);
            metrics::gauge!(queued.clone(), "sink" => report.name).set(report.queued as f64);
        }
    })
}

/// The collector of `/stats` figures for `/metrics`: the standard `process_*` series
/// (`metrics-process`), Tokio runtime gauges, the event-loop delay, and custom stats.
#[cfg(feature = "stats")]
pub(crate) fn stats_collector(
    stats: std::sync::Arc<crate::stats::Stats>,
    namespace: Option<String>,
) -> Collector {
    let process = metrics_process::Collector::default();
    let name = |base: &str| match &namespace {
        Some(ns) => format!("{ns}_{base}"),
        None => base.to_owned(),
    };
    let [workers, tasks, queue, delay, custom_total, custom] = [
        "tokio_workers",
        "tokio_alive_tasks",
        "tokio_global_queue_depth",
        "tokio_event_loop_delay_seconds",
        "vitalsign_custom_total",
        "vitalsign_custom",
    ]
    .map(name);
    Box::new(move || {
        process.describe();
        process.collect();
        let (w, t, q) = stats.probes.runtime_figures();
        metrics::describe_gauge!(
            workers.clone(),
            "Worker threads of the probed Tokio runtimes."
        );
        metrics::gauge!(workers.clone()).set(w as f64);
        metrics::describe_gauge!(tasks.clone(), "Alive tasks on the probed Tokio runtimes.");
        metrics::gauge!(tasks.clone()).set(t as f64);
        metrics::describe_gauge!(
            queue.clone(),
            "Tasks in the global queue of the probed Tokio runtimes."
        );
        metrics::gauge!(queue.clone()).set(q as f64);
        metrics::describe_gauge!(
            delay.clone(),
            Unit::Seconds,
            "Mean scheduling delay of a probe task on the Tokio runtime (event-loop delay), last collection interval."
        );
        metrics::gauge!(delay.clone()).set(stats.event_loop_delay_ms() / 1000.0);
        let entries = stats.custom.numeric();
        if !entries.is_empty() {
            metrics::describe_counter!(
                custom_total.clone(),
                "Application counters (custom stats `inc`)."
            );
            metrics::describe_gauge!(
                custom.clone(),
                "Application gauges (custom stats `set`, list lengths)."
            );
        }
        for (section, key, is_counter, value) in entries {
            if is_counter {
                metrics::counter!(custom_total.clone(), "section" => section, "key" => key)
                    .absolute(value as u64);
            } else {
                metrics::gauge!(custom.clone(), "section" => section, "key" => key).set(value);
            }
        }
    })
}

fn upkeep(handle: PrometheusHandle, stopped: mpsc::Receiver<()>, interval: Duration) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        handle.run_upkeep();
    }
}

/// Handles of one metric, one per label set, at most `cap` of them plus one overflow series.
struct BoundedSeries<H> {
    name: KeyName,
    label_names: Vec<String>,
    cap: usize,
    map: RwLock<HashMap<Box<[Box<str>]>, H>>,
    overflow: OnceLock<H>,
    overflowed: AtomicBool,
}

/// Borrowed label values that hash and compare like the owned key.
struct LabelsRef<'a>(&'a [&'a str]);

impl Hash for LabelsRef<'_> {
    fn hash<S: Hasher>(&self, state: &mut S) {
        // `[&str]` and `[Box<str>]` hash identically (length, then each `str`).
        self.0.hash(state);
    }
}

impl Equivalent<Box<[Box<str>]>> for LabelsRef<'_> {
    fn equivalent(&self, key: &Box<[Box<str>]>) -> bool {
        self.0.len() == key.len() && self.0.iter().zip(key.iter()).all(|(a, b)| *a == &**b)
    }
}

impl<H: Clone> BoundedSeries<H> {
    fn new(name: KeyName, label_names: Vec<String>, cap: usize) -> Self {
        BoundedSeries {
            name,
            label_names,
            cap,
            map: RwLock::new(HashMap::new()),
            overflow: OnceLock::new(),
            overflowed: AtomicBool::new(false),
        }
    }

    fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn with(
        &self,
        values: &[&str],
        register: impl FnOnce() -> H,
        register_overflow: impl FnOnce() -> H,
        f: impl FnOnce(&H),
    ) {
        if let Some(handle) = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&LabelsRef(values))
        {
            return f(handle);
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = map.get(&LabelsRef(values)) {
            return f(handle);
        }
        if map.len() >= self.cap {
            drop(map);
            return f(self.overflow.get_or_init(register_overflow));
        }
        let handle = register();
        f(&handle);
        map.insert(
            values.iter().map(|v| Box::<str>::from(*v)).collect(),
            handle,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn borrowed_and_owned_keys_hash_alike() {
        let state = hashbrown::DefaultHashBuilder::default();
        let owned: Box<[Box<str>]> = vec!["GET".into(), "/users/{id}".into(), "200".into()].into();
        let borrowed = ["GET", "/users/{id}", "200"];
        assert_eq!(state.hash_one(&owned), state.hash_one(LabelsRef(&borrowed)));
        assert!(LabelsRef(&borrowed).equivalent(&owned));
        assert!(!LabelsRef(&borrowed[..2]).equivalent(&owned));
    }

    #[test]
    fn bounded_series_overflows_into_one_handle() {
        let series: BoundedSeries<u32> = BoundedSeries::new("m".into(), vec!["l".into()], 2);
        let mut next = 0;
        let mut seen = Vec::new();
        for v in ["a", "b", "c", "d", "a"] {
            series.with(
                &[v],
                || {
                    next += 1;
                    next
                },
                || 99,
                |h| seen.push(*h),
            );
        }
        assert_eq!(seen, vec![1, 2, 99, 99, 1]);
        assert_eq!(series.len(), 2);
    }
}
