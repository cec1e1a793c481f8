//! Building the sink: the settings it takes from the monitor, its registry, its upkeep thread.

use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use metrics::{KeyName, Label};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::active::ActiveGauge;
use super::histogram::HistogramFamily;
use super::series::Series;
use super::text::render_labels;
use super::{
    PrometheusSink, Registrar, ACTIVE_REQUESTS, DISCONNECTS, ERRORS, HEALTH_STATUS,
    REQUEST_BODY_SIZE, REQUEST_DURATION, RESPONSE_BODY_SIZE, RESPONSE_HEAD_DURATION, SIZE_BUCKETS,
    UPGRADED_SESSIONS, UPGRADED_SESSION_DURATION, UPKEEP_THREAD,
};
use crate::{ConfigError, ConfigErrorKind};

/// A label value as the exporter expects it. Its sanitiser takes `\\` as an escaped backslash
/// and `\"` as an escaped quote (it assumes half-escaped input), so raw backslashes are doubled
/// first; the rendered value then reads back exactly as given (`tests/properties.rs`).
pub(super) fn label_value(value: &str) -> String {
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
    /// Whether the duration histogram also keeps native buckets.
    #[cfg(feature = "native-histograms")]
    pub(crate) native_histograms: bool,
    /// Period of the upkeep thread (for a recorder the application can reach).
    pub(crate) upkeep_interval: Duration,
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
            // A request's label set is its method, status and route: cached.
            config.label_tags.is_empty(),
        );
        #[cfg(feature = "native-histograms")]
        let natives = config.native_histograms.then(|| {
            super::native::NativeFamily::new(
                durations.series_name(),
                durations.label_names(),
                config.max_label_sets,
                global,
            )
        });
        let errors = Series::new(
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
            false,
        );
        let disconnects = Series::new(
            name(DISCONNECTS),
            ["http_request_method", "http_route"]
                .map(String::from)
                .to_vec(),
            config.max_label_sets,
            false,
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
                    false,
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
        let sessions_name = name(UPGRADED_SESSIONS);
        let session_durations = HistogramFamily::new(
            name(UPGRADED_SESSION_DURATION),
            vec!["http_route".to_owned()],
            config.max_label_sets,
            crate::SESSION_DURATION_BUCKETS,
            "Length of upgraded sessions (WebSockets), from their 101 response head until the handler dropped their guard.",
            global,
            false,
        );

        #[cfg(feature = "rpc")]
        let rpc = super::rpc::RpcFamilies::new(name, config.buckets, config.max_label_sets, global);
        registrar.with(|r| {
            #[cfg(feature = "rpc")]
            rpc.describe(r);
            r.describe_counter(
                errors.name.clone(),
                None,
                "HTTP server requests classified as errors (status >= 500 or an error code attached by the handler).".into(),
            );
            r.describe_gauge(
                sessions_name.clone(),
                None,
                "Upgraded sessions (WebSockets) open now: started by their 101 response head, ended when the handler drops their guard.".into(),
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
            #[cfg(feature = "native-histograms")]
            natives,
            errors,
            disconnects,
            heads,
            sizes,
            request_sizes,
            health_name,
            health: std::sync::Mutex::new(Vec::new()),
            sessions_name,
            sessions: std::sync::Mutex::new(Vec::new()),
            session_durations,
            #[cfg(feature = "rpc")]
            rpc,
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
}

fn upkeep(handle: PrometheusHandle, stopped: mpsc::Receiver<()>, interval: Duration) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        handle.run_upkeep();
    }
}
