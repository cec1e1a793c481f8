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
use metrics::{Counter, Gauge, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::{ConfigError, ConfigErrorKind, MAX_LABEL_TAGS};
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
/// Name of the thread that runs the exporter's upkeep (one per monitor; see
/// [`MonitorBuilder::upkeep_interval`](crate::MonitorBuilder::upkeep_interval)).
pub const UPKEEP_THREAD: &str = "vitalsign-upkeep";
/// Label of the one series that takes every label set past the cap.
pub const OVERFLOW_LABEL: (&str, &str) = ("otel_metric_overflow", "true");

/// Label sets kept in the lock-free series cache; further ones are looked up under a lock.
const SERIES_CACHE_SETS: usize = 1024;

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

/// How the Prometheus sink gets its registry.
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

/// What the Prometheus sink takes from the monitor's settings (given by
/// [`MonitorBuilder::build`](crate::MonitorBuilder::build), which validated them).
#[derive(Debug)]
pub(crate) struct PrometheusConfig<'a> {
    /// Prefix of every metric name.
    pub(crate) namespace: Option<&'a str>,
    /// Labels on every series.
    pub(crate) global_labels: &'a [(String, String)],
    /// Handler tags (and path labels, label functions) kept as labels of the duration histogram.
    pub(crate) label_tags: &'a [std::borrow::Cow<'static, str>],
    /// Bounds of the duration histograms, in seconds.
    pub(crate) buckets: &'a [f64],
    /// Cap on distinct label sets per metric.
    pub(crate) max_label_sets: usize,
    /// Whether the time-to-response-head histogram is on.
    pub(crate) head_histogram: bool,
    /// Whether the response body size histogram is on.
    pub(crate) size_histogram: bool,
    /// Whether the request body size histogram is on.
    pub(crate) request_size_histogram: bool,
    /// Period of the upkeep thread (for a recorder the application can reach).
    pub(crate) upkeep_interval: Duration,
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
    /// `http_server_active_requests`, one per method: vitalsign's own atomics (one addition
    /// a request each way), rendered with the histograms.
    active: ActiveGauge,
    durations: HistogramFamily,
    /// Lock-free front of the histogram families, keyed by method, status and route; `None`
    /// when handler tags are labels.
    cells: Option<crate::cache::OnceCache<Box<SeriesCell>>>,
    errors: BoundedSeries<Counter>,
    disconnects: BoundedSeries<Counter>,
    heads: Option<HistogramFamily>,
    sizes: Option<HistogramFamily>,
    request_sizes: Option<HistogramFamily>,
    health_name: KeyName,
    health: std::sync::Mutex<Vec<(String, Gauge)>>,
    collector: OnceLock<Collector>,
    /// The global labels, rendered once for the collectors' own text.
    global_rendered: String,
    _upkeep: mpsc::Sender<()>,
}

/// Work done just before each render (process and runtime figures, custom stats): records
/// through the `metrics` facade, and writes what the facade cannot express.
pub(crate) type Collector = Box<dyn Fn(&mut Exposition<'_>) + Send + Sync>;

/// Metric families a collector writes itself, rendered after the recorder's series.
#[cfg_attr(not(feature = "stats"), allow(dead_code))]
pub(crate) struct Exposition<'a> {
    /// Family name and text.
    families: Vec<(&'static str, String)>,
    /// The global labels, rendered.
    global_labels: &'a str,
}

impl Exposition<'_> {
    /// A counter with a fractional value (the facade's counters hold whole numbers).
    #[cfg_attr(not(feature = "stats"), allow(dead_code))]
    pub(crate) fn fractional_counter(&mut self, name: &'static str, help: &str, value: f64) {
        let labels = if self.global_labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", self.global_labels)
        };
        let text =
            format!("# HELP {name} {help}\n# TYPE {name} counter\n{name}{labels} {value}\n\n");
        self.families.push((name, text));
    }

    /// Appends the families that `rendered` (the recorder's text) does not have already: an
    /// application sharing its recorder may register the same family itself.
    fn append_to(self, rendered: &mut String) {
        for (name, text) in self.families {
            if !rendered.contains(&format!("# TYPE {name} ")) {
                rendered.push_str(&text);
            }
        }
    }
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
    pub(crate) fn new(
        config: PrometheusConfig<'_>,
        setup: PrometheusSetup,
    ) -> Result<Self, ConfigError> {
        let name = |base: &str| -> KeyName {
            match config.namespace {
                Some(ns) => format!("{ns}_{base}").into(),
                None => base.to_owned().into(),
            }
        };
        let duration_name = name(REQUEST_DURATION);
        // Only a recorder the application can reach (one it built, or the global one) may
        // hold histograms whose samples need folding; vitalsign's own recorder holds counters
        // and gauges only, so it needs no upkeep thread (nothing wakes an idle service).
        let needs_upkeep = !matches!(setup, PrometheusSetup::Own);
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
                // vitalsign's histograms are its own (`HistogramFamily`): the recorder holds
                // only counters and gauges, so it needs no bucket settings.
                let recorder = builder.build_recorder();
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
        let global = config.global_labels;
        let durations = HistogramFamily::new(
            duration_name,
            duration_labels
                .drain(..)
                .map(String::from)
                .chain(tag_names)
                .collect(),
            config.max_label_sets,
            config.buckets,
            "Duration of HTTP server requests, from arrival until the response body ended or was dropped.",
            global,
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
        let family = |on: bool, base: &str, bounds: &[f64], help: &'static str| {
            on.then(|| {
                HistogramFamily::new(
                    name(base),
                    three(),
                    config.max_label_sets,
                    bounds,
                    help,
                    global,
                )
            })
        };
        let heads = family(
            config.head_histogram,
            RESPONSE_HEAD_DURATION,
            config.buckets,
            "Time from a request's arrival until its response head was ready.",
        );
        let sizes = family(
            config.size_histogram,
            RESPONSE_BODY_SIZE,
            SIZE_BUCKETS,
            "Response body bytes actually produced.",
        );
        let request_sizes = family(
            config.request_size_histogram,
            REQUEST_BODY_SIZE,
            SIZE_BUCKETS,
            "Request body bytes actually read.",
        );
        let active_name = name(ACTIVE_REQUESTS);
        let health_name = name(HEALTH_STATUS);

        registrar.with(|r| {
            r.describe_counter(
                errors.name.clone(),
                None,
                "HTTP server requests classified as errors (status >= 500 or an error code attached by the handler).".into(),
            );
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
        let active = ActiveGauge::new(active_name, global);

        let (stop, stopped) = mpsc::channel::<()>();
        if needs_upkeep {
            let upkeep_handle = handle.clone();
            let interval = config.upkeep_interval;
            std::thread::Builder::new()
                .name(UPKEEP_THREAD.into())
                .spawn(move || upkeep(upkeep_handle, stopped, interval))
                .map_err(|e| {
                    ConfigError::new(
                        ConfigErrorKind::Resource,
                        "upkeep_interval",
                        format!("cannot start the upkeep thread: {e}"),
                    )
                    .with_source(e)
                })?;
        }

        Ok(PrometheusSink {
            registrar,
            handle,
            global_labels,
            label_tags: config.label_tags.to_vec(),
            active,
            durations,
            cells: config.label_tags.is_empty().then(|| {
                crate::cache::OnceCache::new(config.max_label_sets.min(SERIES_CACHE_SETS) * 2)
            }),
            errors,
            disconnects,
            heads,
            sizes,
            request_sizes,
            health_name,
            health: std::sync::Mutex::new(Vec::new()),
            collector: OnceLock::new(),
            global_rendered: render_labels(
                config
                    .global_labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            ),
            _upkeep: stop,
        })
    }

    /// Renders the exposition text of the whole registry (the application's own metrics too
    /// when it shares its recorder), after collecting process and runtime figures.
    pub fn render(&self) -> String {
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
        self.durations.render_into(&mut own);
        for family in [&self.heads, &self.sizes, &self.request_sizes]
            .into_iter()
            .flatten()
        {
            family.render_into(&mut own);
        }
        // Both merged in family name order, series sorted: two scrapes diff line by line.
        let mut families: Vec<RenderedFamily<'_>> = RenderedFamily::split(&shared, true)
            .chain(RenderedFamily::split(&own, false))
            .collect();
        families.sort_by_key(|family| family.name);
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

    /// Registers the counter of one label set with the exporter.
    fn register(&self, series: &BoundedSeries<Counter>, values: &[&str]) -> Counter {
        let mut labels: Vec<Label> = series
            .label_names
            .iter()
            .zip(values)
            .map(|(k, v)| Label::new(k.clone(), label_value(v)))
            .collect();
        labels.extend(self.global_labels.iter().cloned());
        self.register_key(&Key::from_parts(series.name.clone(), labels))
    }

    fn register_overflow(&self, series: &BoundedSeries<Counter>) -> Counter {
        warn_overflow(series);
        let mut labels = vec![Label::new(OVERFLOW_LABEL.0, OVERFLOW_LABEL.1)];
        labels.extend(self.global_labels.iter().cloned());
        self.register_key(&Key::from_parts(series.name.clone(), labels))
    }

    fn register_key(&self, key: &Key) -> Counter {
        self.registrar.with(|r| r.register_counter(key, &METADATA))
    }

    fn count(&self, series: &BoundedSeries<Counter>, values: &[&str]) {
        series.with(
            values,
            || self.register(series, values),
            || self.register_overflow(series),
            |c| c.increment(1),
        )
    }
}

/// One metric family of rendered exposition text (its block between blank lines).
struct RenderedFamily<'a> {
    /// The name its `# TYPE` line gives (or its first line's, without one).
    name: &'a str,
    block: &'a str,
    /// Whether its sample lines are to be sorted: the registry renders counters and gauges in
    /// hash order. Histogram and summary lines stay as they are (a series' lines go together,
    /// buckets in `le` order); the registry keeps those series in insertion order.
    sort_samples: bool,
}

impl<'a> RenderedFamily<'a> {
    /// The families of `text`; `from_registry` sorts counter and gauge samples.
    fn split(text: &'a str, from_registry: bool) -> impl Iterator<Item = RenderedFamily<'a>> {
        text.split("\n\n")
            .map(|block| block.trim_matches('\n'))
            .filter(|block| !block.is_empty())
            .map(move |block| {
                let typed = block.lines().find_map(|line| {
                    let mut words = line.strip_prefix("# TYPE ")?.split(' ');
                    Some((words.next()?, words.next()?))
                });
                let name = typed.map_or_else(
                    || {
                        let first = block.lines().next().unwrap_or_default();
                        let first = first.strip_prefix("# HELP ").unwrap_or(first);
                        first.split([' ', '{']).next().unwrap_or_default()
                    },
                    |(name, _)| name,
                );
                let kind = typed.map_or("untyped", |(_, kind)| kind);
                RenderedFamily {
                    name,
                    block,
                    sort_samples: from_registry && matches!(kind, "counter" | "gauge" | "untyped"),
                }
            })
    }

    /// Appends the family and the blank line that ends it.
    fn write_into(&self, out: &mut String) {
        if self.sort_samples {
            let (comments, mut samples): (Vec<&str>, Vec<&str>) =
                self.block.lines().partition(|line| line.starts_with('#'));
            samples.sort_unstable();
            for line in comments.into_iter().chain(samples) {
                out.push_str(line);
                out.push('\n');
            }
        } else {
            out.push_str(self.block);
            out.push('\n');
        }
        out.push('\n');
    }
}

/// The in-flight gauge: a count per method.
struct ActiveGauge {
    name: KeyName,
    counts: [std::sync::atomic::AtomicI64; Method::ALL.len()],
    /// Each method's labels, rendered once.
    labels: Vec<String>,
}

impl ActiveGauge {
    fn new(name: KeyName, global: &[(String, String)]) -> Self {
        let labels = Method::ALL
            .iter()
            .map(|method| {
                let own = std::iter::once(("http_request_method", method.as_str()));
                render_labels(own.chain(global.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
            })
            .collect();
        ActiveGauge {
            name,
            counts: Default::default(),
            labels,
        }
    }

    fn render_into(&self, out: &mut String) {
        let name = self.name.as_str();
        out.push_str("# HELP ");
        out.push_str(name);
        out.push_str(
            " Number of HTTP server requests in flight (response body not yet ended).\n# TYPE ",
        );
        out.push_str(name);
        out.push_str(" gauge\n");
        let mut number = itoa::Buffer::new();
        for (count, labels) in self.counts.iter().zip(&self.labels) {
            out.push_str(name);
            out.push('{');
            out.push_str(labels);
            out.push_str("} ");
            out.push_str(number.format(count.load(Ordering::Relaxed)));
            out.push('\n');
        }
        out.push('\n');
    }
}

/// The histograms of one label set: the duration, and the optional head time and body sizes.
struct SeriesHistograms {
    duration: std::sync::Arc<AtomicHistogram>,
    head: Option<std::sync::Arc<AtomicHistogram>>,
    size: Option<std::sync::Arc<AtomicHistogram>>,
    request_size: Option<std::sync::Arc<AtomicHistogram>>,
}

impl SeriesHistograms {
    fn record(&self, point: &RequestPoint<'_>) {
        self.duration.record(point.execution_time);
        if let (Some(heads), Some(head)) = (&self.head, point.head_time) {
            heads.record(head);
        }
        if let Some(sizes) = &self.size {
            sizes.record(point.response_body_bytes as f64);
        }
        if let Some(sizes) = &self.request_size {
            sizes.record(point.request_body_bytes as f64);
        }
    }
}

/// A cached label set without handler-tag labels: method, status and route.
struct SeriesCell {
    method: Method,
    status: u16,
    route: Box<str>,
    histograms: SeriesHistograms,
}

impl PrometheusSink {
    /// Records the point in the histograms of its label set: found in the lock-free cache,
    /// or (on first sight, or when handler tags are labels) under the families' locks.
    fn record_histograms(&self, point: &RequestPoint<'_>) {
        let Some(cells) = &self.cells else {
            return self.series_of(point).record(point);
        };
        let hash = cells.hash((point.method, point.status_code, point.route));
        let found = cells.find(hash, |cell| {
            cell.method == point.method
                && cell.status == point.status_code
                && *cell.route == *point.route
        });
        if let Some((_, cell)) = found {
            return cell.histograms.record(point);
        }
        let histograms = self.series_of(point);
        histograms.record(point);
        cells.insert(
            hash,
            Box::new(SeriesCell {
                method: point.method,
                status: point.status_code,
                route: point.route.into(),
                histograms,
            }),
        );
    }

    /// The histograms of `point`'s label set, registered on first sight (or the overflow ones).
    fn series_of(&self, point: &RequestPoint<'_>) -> SeriesHistograms {
        let mut status = itoa::Buffer::new();
        let mut values = [""; 3 + MAX_LABEL_TAGS];
        values[0] = point.method.as_str();
        values[1] = point.route;
        values[2] = status.format(point.status_code);
        for (slot, key) in values[3..].iter_mut().zip(&self.label_tags) {
            *slot = point.tag(key).unwrap_or("");
        }
        let values = &values[..3 + self.label_tags.len()];
        let optional = |family: &Option<HistogramFamily>| {
            family.as_ref().map(|family| family.handle(&values[..3]))
        };
        SeriesHistograms {
            duration: self.durations.handle(values),
            head: optional(&self.heads),
            size: optional(&self.sizes),
            request_size: optional(&self.request_sizes),
        }
    }
}

impl Sink for PrometheusSink {
    fn needs_request_id(&self) -> bool {
        false
    }

    fn request_started(&self, method: Method) {
        self.active.counts[method.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        self.record_histograms(point);
        if point.disconnected {
            let values = [point.method.as_str(), point.route];
            self.count(&self.disconnects, &values);
        }
    }

    fn request_finished(&self, method: Method) {
        self.active.counts[method.index()].fetch_sub(1, Ordering::Relaxed);
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        let mut status = itoa::Buffer::new();
        let values = [
            point.request.method.as_str(),
            point.request.route,
            status.format(point.request.status_code),
            point.error_code,
        ];
        self.count(&self.errors, &values);
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
    panics: std::sync::Arc<crate::sink::Panics>,
    namespace: Option<String>,
) -> Collector {
    let name = |base: &str| match &namespace {
        Some(ns) => format!("{ns}_{base}"),
        None => base.to_owned(),
    };
    let [sent, dropped, queued, panicked] = [
        "vitalsign_sink_sent_points_total",
        "vitalsign_sink_dropped_points_total",
        "vitalsign_sink_queued_points",
        "vitalsign_sink_panics_total",
    ]
    .map(name);
    Box::new(move |_| {
        metrics::describe_counter!(
            panicked.clone(),
            "Panics of a sink (or of the error classifier) contained while recording a request."
        );
        for (sink, count) in panics.counts() {
            metrics::counter!(panicked.clone(), "sink" => sink).absolute(count);
        }
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
/// (read by `metrics-process`), Tokio runtime gauges, the event-loop delay, and custom stats.
#[cfg(feature = "stats")]
pub(crate) fn stats_collector(
    stats: std::sync::Arc<crate::stats::Stats>,
    namespace: Option<String>,
) -> Collector {
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
    Box::new(move |exposition| {
        process_series(exposition);
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
            metrics::Unit::Seconds,
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

/// The standard process series (the Prometheus client libraries' names). The CPU counter is
/// written as text: the facade's counters hold whole numbers, and whole seconds make
/// `rate(process_cpu_seconds_total[1m])` useless on a lightly loaded service.
#[cfg(feature = "stats")]
fn process_series(exposition: &mut Exposition<'_>) {
    let process = metrics_process::collector::collect();
    if let Some(cpu) = process.cpu_seconds_total {
        exposition.fractional_counter(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            cpu,
        );
    }
    let gauges = [
        (
            "process_open_fds",
            "Number of open file descriptors.",
            process.open_fds,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            process.max_fds,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            process.virtual_memory_bytes,
        ),
        (
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            process.virtual_memory_max_bytes,
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            process.resident_memory_bytes,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            process.start_time_seconds,
        ),
        (
            "process_threads",
            "Number of OS threads in the process.",
            process.threads,
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(value) = value {
            metrics::describe_gauge!(name, help);
            metrics::gauge!(name).set(value as f64);
        }
    }
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

    /// Every handle, the overflow series last.
    fn all(&self) -> Vec<H> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<H> = map.values().cloned().collect();
        all.extend(self.overflow.get().cloned());
        all
    }

    fn with<R>(
        &self,
        values: &[&str],
        register: impl FnOnce() -> H,
        register_overflow: impl FnOnce() -> H,
        f: impl FnOnce(&H) -> R,
    ) -> R {
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
        let result = f(&handle);
        map.insert(
            values.iter().map(|v| Box::<str>::from(*v)).collect(),
            handle,
        );
        result
    }
}

/// A histogram of fixed buckets kept in atomics: recording is a few atomic additions, nothing
/// is buffered (so nothing can be lost to a concurrent drain, and memory does not grow), and
/// rendering reads the counters.
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    bounds: std::sync::Arc<[f64]>,
    /// Non-cumulative counts: `buckets[i]` counts values in `(bounds[i-1], bounds[i]]`; the last
    /// one counts values above every bound.
    buckets: Box<[std::sync::atomic::AtomicU64]>,
    sum_bits: std::sync::atomic::AtomicU64,
    /// The series' labels, rendered once: `k="v",k2="v2"` (escaped).
    labels: String,
}

impl AtomicHistogram {
    fn new(bounds: std::sync::Arc<[f64]>, labels: String) -> Self {
        let buckets = (0..=bounds.len())
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        AtomicHistogram {
            bounds,
            buckets,
            sum_bits: std::sync::atomic::AtomicU64::new(0f64.to_bits()),
            labels,
        }
    }

    pub(crate) fn record(&self, value: f64) {
        use std::sync::atomic::Ordering::Relaxed;
        let index = self.bounds.partition_point(|bound| *bound < value);
        self.buckets[index].fetch_add(1, Relaxed);
        let _ = self.sum_bits.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }

    /// Appends `name_bucket`, `name_sum` and `name_count` lines; `le` holds the rendered
    /// bounds (`le="0.005"`, …, `le="+Inf"`).
    fn render_into(&self, name: &str, le: &[String], out: &mut String) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut number = itoa::Buffer::new();
        let mut cumulative = 0u64;
        for (bucket, le) in self.buckets.iter().zip(le) {
            cumulative += bucket.load(Relaxed);
            out.push_str(name);
            out.push_str("_bucket{");
            if !self.labels.is_empty() {
                out.push_str(&self.labels);
                out.push(',');
            }
            out.push_str(le);
            out.push_str("} ");
            out.push_str(number.format(cumulative));
            out.push('\n');
        }
        let sum = f64::from_bits(self.sum_bits.load(Relaxed));
        for (suffix, value) in [("_sum", None), ("_count", Some(cumulative))] {
            out.push_str(name);
            out.push_str(suffix);
            if !self.labels.is_empty() {
                out.push('{');
                out.push_str(&self.labels);
                out.push('}');
            }
            out.push(' ');
            match value {
                Some(count) => out.push_str(number.format(count)),
                // f64's Display is the shortest text that reads back exactly.
                None => {
                    use std::fmt::Write;
                    let _ = write!(out, "{sum}");
                }
            }
            out.push('\n');
        }
    }
}

/// Escapes a label value for the text format.
fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `k="v",…` for these label names and values, then the global labels.
fn render_labels<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        escape_label(value, &mut out);
        out.push('"');
    }
    out
}

/// A histogram metric: bounded series of [`AtomicHistogram`]s plus what its text needs.
struct HistogramFamily {
    series: BoundedSeries<std::sync::Arc<AtomicHistogram>>,
    bounds: std::sync::Arc<[f64]>,
    help: &'static str,
    global: Vec<(String, String)>,
}

impl HistogramFamily {
    fn new(
        name: KeyName,
        label_names: Vec<String>,
        cap: usize,
        bounds: &[f64],
        help: &'static str,
        global: &[(String, String)],
    ) -> Self {
        HistogramFamily {
            series: BoundedSeries::new(name, label_names, cap),
            bounds: bounds.into(),
            help,
            global: global.to_vec(),
        }
    }

    /// The histogram of this label set, registered on first sight (or the overflow one).
    fn handle(&self, values: &[&str]) -> std::sync::Arc<AtomicHistogram> {
        let series = &self.series;
        let global = self.global.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        series.with(
            values,
            || {
                let names = series.label_names.iter().map(String::as_str);
                let labels = render_labels(names.zip(values.iter().copied()).chain(global.clone()));
                std::sync::Arc::new(AtomicHistogram::new(self.bounds.clone(), labels))
            },
            || {
                warn_overflow(series);
                let labels = render_labels(std::iter::once(OVERFLOW_LABEL).chain(global.clone()));
                std::sync::Arc::new(AtomicHistogram::new(self.bounds.clone(), labels))
            },
            std::sync::Arc::clone,
        )
    }

    fn render_into(&self, out: &mut String) {
        use std::fmt::Write;
        let name = self.series.name.as_str();
        let mut all = self.series.all();
        if all.is_empty() {
            return;
        }
        // Series in the order of their labels (sorted here, out of the map's lock).
        all.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        let _ = writeln!(out, "# HELP {name} {}", self.help);
        let _ = writeln!(out, "# TYPE {name} histogram");
        let le: Vec<String> = self
            .bounds
            .iter()
            .map(|b| format!("le=\"{b}\""))
            .chain(std::iter::once("le=\"+Inf\"".to_owned()))
            .collect();
        out.reserve(all.len() * (self.bounds.len() + 3) * 96);
        for histogram in all {
            histogram.render_into(name, &le, out);
        }
        out.push('\n');
    }

    fn len(&self) -> usize {
        self.series.len()
    }
}

fn warn_overflow<H>(series: &BoundedSeries<H>) {
    if !series.overflowed.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            metric = series.name.as_str(),
            max = series.cap,
            "vitalsign: label-set cap reached; further label sets are recorded in the series labelled otel_metric_overflow=\"true\""
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// The process CPU counter has fractional seconds and one family, also when the
    /// application's shared recorder registered its own (e.g. through `metrics-process`).
    #[cfg(all(feature = "stats", target_os = "linux"))]
    #[test]
    fn the_process_cpu_counter_is_written_once() {
        let family = |text: &str| text.matches("# TYPE process_cpu_seconds_total ").count();
        let own = crate::Monitor::builder("s").build().unwrap();
        let text = own.render_metrics().unwrap();
        assert_eq!(family(&text), 1, "{text}");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));

        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("process_cpu_seconds_total").absolute(7);
        });
        let shared = crate::Monitor::builder("s")
            .prometheus_recorder(recorder)
            .build()
            .unwrap();
        let text = shared.render_metrics().unwrap();
        assert_eq!(family(&text), 1, "{text}");
        assert!(text.contains("process_cpu_seconds_total 7\n"), "{text}");
    }

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
