//! [`OtelSinkBuilder`]: where the instruments live (the application's provider or an OTLP one
//! of the sink's own), the constant attributes, the queue, and the start of the recorder
//! thread.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;

use super::export::{CountingExporter, Delivery};
use super::worker::{Constant, Recorder};
use super::{Active, OtelSink, ACTIVE_REQUESTS, DURATION, DURATION_BUCKETS};
use crate::cache::OnceCache;
use crate::{ConfigError, ConfigErrorKind, Method};

/// Slots of the sink's cache of routes and error codes (the routes a monitor sees are bounded
/// by its label-set cap; past what the cache holds, a route is copied for each request).
const STRING_SLOTS: usize = 2048;

/// The instrumentation scope of the sink's meter: `vitalsign` and its version.
pub(super) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("vitalsign")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// Where the instruments live.
#[derive(Clone, Debug)]
enum Target {
    /// A meter of the application's provider.
    Meter(Meter),
    /// A provider of the sink's own, exporting OTLP/HTTP.
    Otlp(OtlpSettings),
}

/// The OTLP provider's settings; `None`: the environment (or the SDK's default) decides.
#[derive(Clone, Debug, Default)]
struct OtlpSettings {
    endpoint: Option<String>,
    interval: Option<Duration>,
    temporality: Option<Temporality>,
    service_name: Option<String>,
}

/// Builds an [`OtelSink`]: [`OtelSink::otlp`] or [`OtelSink::meter_provider`].
#[derive(Clone, Debug)]
#[must_use]
pub struct OtelSinkBuilder {
    target: Target,
    /// Setters of `Target::Otlp` called on a `Target::Meter` builder (an error at `build`).
    misplaced: Vec<&'static str>,
    url_scheme: Cow<'static, str>,
    protocol_version: Option<String>,
    queue_capacity: usize,
}

impl OtelSinkBuilder {
    pub(super) fn with_meter(meter: Meter) -> Self {
        Self::new(Target::Meter(meter))
    }

    pub(super) fn otlp() -> Self {
        Self::new(Target::Otlp(OtlpSettings::default()))
    }

    fn new(target: Target) -> Self {
        OtelSinkBuilder {
            target,
            misplaced: Vec::new(),
            url_scheme: Cow::Borrowed("http"),
            protocol_version: None,
            queue_capacity: 10_000,
        }
    }

    fn otlp_setting(mut self, name: &'static str, set: impl FnOnce(&mut OtlpSettings)) -> Self {
        match &mut self.target {
            Target::Otlp(settings) => set(settings),
            Target::Meter(_) => self.misplaced.push(name),
        }
        self
    }

    /// The OTLP/HTTP endpoint's base, such as `http://127.0.0.1:4318`: metrics go to
    /// `{base}/v1/metrics`. Only for [`OtelSink::otlp`]. Defaults to what
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (a full URL) or `OTEL_EXPORTER_OTLP_ENDPOINT` (a
    /// base) say, else `http://localhost:4318`.
    pub fn endpoint(self, base: impl Into<String>) -> Self {
        let base = base.into();
        self.otlp_setting("endpoint", |s| s.endpoint = Some(base))
    }

    /// How often the provider exports. Only for [`OtelSink::otlp`]. Defaults to
    /// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds), else 60 s.
    pub fn export_interval(self, interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(1));
        self.otlp_setting("export_interval", |s| s.interval = Some(interval))
    }

    /// Cumulative or delta sums and histograms. Only for [`OtelSink::otlp`]. Defaults to
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else cumulative.
    pub fn temporality(self, temporality: Temporality) -> Self {
        self.otlp_setting("temporality", |s| s.temporality = Some(temporality))
    }

    /// The resource's `service.name`. Only for [`OtelSink::otlp`]. Defaults to
    /// `OTEL_SERVICE_NAME`, else the SDK's `unknown_service`.
    pub fn service_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.otlp_setting("service_name", |s| s.service_name = Some(name))
    }

    /// The `url.scheme` attribute: how clients reach the service. Defaults to `http`.
    pub fn url_scheme(mut self, scheme: impl Into<Cow<'static, str>>) -> Self {
        self.url_scheme = scheme.into();
        self
    }

    /// The `network.protocol.version` attribute (`1.1`, `2`), for a server that speaks one
    /// HTTP version (points do not carry it). Defaults to none: the attribute is left out.
    pub fn network_protocol_version(mut self, version: impl Into<String>) -> Self {
        self.protocol_version = Some(version.into());
        self
    }

    /// Most finished requests waiting for the recorder thread; past it they are dropped and
    /// counted. Defaults to 10 000.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Builds the provider (for [`OtelSink::otlp`]) and the instruments, and starts the
    /// recorder thread. Fails on an OTLP-only setting given with
    /// [`OtelSink::meter_provider`], on an endpoint that is not an `http://` URL, on an OTLP
    /// configuration the exporter refuses, or when no thread can be started.
    pub fn build(self) -> Result<Arc<OtelSink>, ConfigError> {
        if let Some(&setting) = self.misplaced.first() {
            return Err(ConfigError::new(
                ConfigErrorKind::InvalidValue,
                setting,
                format!(
                    "{setting} is an OTLP setting: only for OtelSink::otlp(), not with the \
                     application's meter provider (configure its exporter instead)"
                ),
            ));
        }
        let (meter, provider, delivery) = match self.target {
            Target::Meter(meter) => (meter, None, None),
            Target::Otlp(settings) => {
                let delivery = Arc::new(Delivery::default());
                let provider = otlp_provider(settings, Arc::clone(&delivery))?;
                (
                    provider.meter_with_scope(scope()),
                    Some(provider),
                    Some(delivery),
                )
            }
        };
        let mut constant = vec![KeyValue::new("url.scheme", self.url_scheme.clone())];
        if let Some(version) = self.protocol_version {
            constant.push(KeyValue::new("network.protocol.version", version));
        }
        let constant = Constant(constant);
        let duration = meter
            .f64_histogram(DURATION)
            .with_unit("s")
            .with_description("Duration of HTTP server requests.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let active = Arc::new(Active::default());
        let scheme = KeyValue::new("url.scheme", self.url_scheme);
        let observed = Arc::clone(&active);
        let active_requests = meter
            .i64_observable_up_down_counter(ACTIVE_REQUESTS)
            .with_unit("{request}")
            .with_description("Number of active HTTP server requests.")
            .with_callback(move |observer| {
                let seen = observed.seen.load(Relaxed);
                for method in Method::ALL {
                    let i = method.index();
                    if seen & (1 << i) != 0 {
                        observer.observe(
                            observed.counts[i].load(Relaxed).max(0),
                            &[
                                KeyValue::new("http.request.method", method.as_str()),
                                scheme.clone(),
                            ],
                        );
                    }
                }
            })
            .build();
        let recorded = Arc::new(AtomicU64::new(0));
        let recorder = Recorder {
            duration,
            constant,
            provider,
            recorded: Arc::clone(&recorded),
        };
        let (queue, received) = mpsc::sync_channel(self.queue_capacity);
        let thread = std::thread::Builder::new()
            .name("vitalsign-otel".into())
            .spawn(move || recorder.run(received))
            .map_err(|e| {
                ConfigError::new(
                    ConfigErrorKind::Resource,
                    "build",
                    format!("otel sink: no recorder thread: {e}"),
                )
            })?;
        static IDS: AtomicU64 = AtomicU64::new(0);
        Ok(Arc::new(OtelSink {
            id: IDS.fetch_add(1, Relaxed),
            queue,
            recorder: thread.thread().clone(),
            strings: OnceCache::new(STRING_SLOTS),
            active,
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            recorded,
            delivery,
            _active_requests: active_requests,
        }))
    }
}

/// The sink's own provider: a periodic reader on its own thread exporting OTLP/HTTP
/// (protobuf) through the counting wrapper.
fn otlp_provider(
    settings: OtlpSettings,
    delivery: Arc<Delivery>,
) -> Result<SdkMeterProvider, ConfigError> {
    let mut exporter = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(base) = &settings.endpoint {
        if !base.starts_with("http://") {
            return Err(ConfigError::new(
                ConfigErrorKind::InvalidValue,
                "endpoint",
                format!("{base:?} is not an http:// URL (the OTLP exporter has no TLS)"),
            ));
        }
        exporter = exporter.with_endpoint(format!("{}/v1/metrics", base.trim_end_matches('/')));
    }
    if let Some(temporality) = settings.temporality {
        exporter = exporter.with_temporality(temporality);
    }
    let exporter = exporter.build().map_err(|e| {
        ConfigError::new(
            ConfigErrorKind::InvalidValue,
            "otlp",
            format!("the OTLP metrics exporter: {e}"),
        )
        .with_source(e)
    })?;
    let mut reader = PeriodicReader::builder(CountingExporter {
        inner: exporter,
        delivery,
    });
    if let Some(interval) = settings.interval {
        reader = reader.with_interval(interval);
    }
    let mut resource = Resource::builder();
    if let Some(name) = settings.service_name {
        resource = resource.with_service_name(name);
    }
    Ok(SdkMeterProvider::builder()
        .with_reader(reader.build())
        .with_resource(resource.build())
        .build())
}
