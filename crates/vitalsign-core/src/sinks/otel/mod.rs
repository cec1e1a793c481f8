//! [`OtelSink`]: requests as OpenTelemetry instruments (HTTP semantic conventions), in the
//! application's `MeterProvider` or exported over OTLP/HTTP.
//!
//! ```
//! use vitalsign_core::sinks::otel::{ACTIVE_REQUESTS, DURATION, DURATION_BUCKETS};
//!
//! assert_eq!(DURATION, "http.server.request.duration");
//! assert_eq!(ACTIVE_REQUESTS, "http.server.active_requests");
//! assert_eq!((DURATION_BUCKETS[0], DURATION_BUCKETS[13]), (0.005, 10.0));
//! ```

// This file: `OtelSink`, its constructors and its `Sink` implementation.
mod builder; // `OtelSinkBuilder`: settings, the OTLP provider, the instruments, the thread
mod export; // the OTLP exporter wrapper counting delivered and lost requests
mod worker; // the recorder thread: queue → instruments

use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};

use opentelemetry::metrics::{MeterProvider, ObservableUpDownCounter};

use crate::cache::OnceCache;
use crate::{ErrorPoint, Method, RequestPoint, Sink, SinkReport};

pub use builder::OtelSinkBuilder;
use export::Delivery;
/// The `opentelemetry` API crate this version records with (its `MeterProvider` trait is what
/// [`OtelSink::meter_provider`] takes).
pub use opentelemetry;
/// The `opentelemetry_sdk` crate of the same release (`SdkMeterProvider`, `Temporality`).
pub use opentelemetry_sdk;
use worker::{Message, Record};

/// Name of the duration histogram (OpenTelemetry HTTP semantic conventions).
pub const DURATION: &str = "http.server.request.duration";
/// Name of the in-flight requests up-down counter (OpenTelemetry HTTP semantic conventions).
pub const ACTIVE_REQUESTS: &str = "http.server.active_requests";
/// The explicit bucket boundaries the semantic conventions advise for
/// `http.server.request.duration`, in seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Records requests into OpenTelemetry instruments named and attributed by the HTTP semantic
/// conventions:
///
/// - `http.server.request.duration` (histogram, seconds, the buckets of [`DURATION_BUCKETS`]),
///   attributes `http.request.method`, `http.route` (left out for a request that matched no
///   route), `http.response.status_code`, `error.type` (the error code of a request the
///   monitor's classifier calls an error: the handler's code, `panic`, `body_error`, or the
///   status code), `url.scheme`, and `network.protocol.version` when set on the builder;
/// - `http.server.active_requests` (asynchronous up-down counter, `{request}`), attributes
///   `http.request.method` and `url.scheme`.
///
/// The instruments come from a meter (scope `vitalsign`) of a `MeterProvider` the application
/// passes in ([`OtelSink::meter_provider`]), or of one the sink builds, which exports OTLP over
/// HTTP/protobuf, configured by the standard `OTEL_EXPORTER_OTLP_*` environment variables
/// unless the builder says otherwise ([`OtelSink::otlp`]).
///
/// The request path only hands each finished request to a bounded queue (when full, the
/// request is dropped and counted); a background thread records it into the instruments,
/// and the provider's periodic reader exports on its own thread. The sink's report
/// (`vitalsign_sink_*_points_total{sink="otel"}`, `/stats`) counts requests: `sent` is what the
/// receiver accepted (with the application's provider: what was recorded into it), `dropped`
/// what the queue dropped plus the requests of failed exports with delta temporality, `queued`
/// the rest. With cumulative temporality (OTLP's default) a failed export loses nothing, the
/// next one carries the same totals: while the receiver is down, those requests stay
/// `queued`.
///
/// The sink reads no request ids, and ignores aggregates: do not put it behind a
/// [`PeriodAggregator`](super::PeriodAggregator) (OpenTelemetry aggregates by itself).
///
/// ```no_run
/// use std::time::Duration;
/// use vitalsign_core::{sinks::OtelSink, Monitor};
///
/// // OTLP/HTTP to a collector; without `.endpoint`, OTEL_EXPORTER_OTLP_ENDPOINT (or
/// // OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) decides, else http://localhost:4318.
/// let otel = OtelSink::otlp()
///     .endpoint("http://127.0.0.1:4318")
///     .export_interval(Duration::from_secs(10))
///     .service_name("shop")
///     .build()?;
/// let monitor = Monitor::builder("shop").sink(otel).build()?;
/// # Ok::<(), vitalsign_core::ConfigError>(())
/// ```
pub struct OtelSink {
    id: u64,
    queue: mpsc::SyncSender<Message>,
    /// The recorder thread, woken on a flush or a full queue.
    recorder: std::thread::Thread,
    /// Routes and error codes as shared strings: queuing a request copies no text.
    strings: OnceCache<Arc<str>>,
    active: Arc<Active>,
    /// Requests put on the queue.
    accepted: AtomicU64,
    /// Requests the full queue refused.
    refused: AtomicU64,
    recorded: Arc<AtomicU64>,
    delivery: Option<Arc<Delivery>>,
    _active_requests: ObservableUpDownCounter<i64>,
}

impl std::fmt::Debug for OtelSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelSink")
            .field("report", &self.report())
            .finish_non_exhaustive()
    }
}

/// Requests in flight per method, read by the `http.server.active_requests` callback.
#[derive(Debug, Default)]
struct Active {
    counts: [AtomicI64; Method::ALL.len()],
    /// Bit `i`: method `i` was seen (its series is reported from then on, zero included).
    seen: AtomicU32,
}

thread_local! {
    /// The request each `OtelSink` (by id) is recording on this thread: set by
    /// `record_request`, given its `error.type` by `record_error`, queued by
    /// `request_finished` (the monitor calls the three in that order, on one thread).
    static PENDING: RefCell<Vec<(u64, Record)>> = const { RefCell::new(Vec::new()) };
}

impl OtelSink {
    /// A sink recording into a meter of `provider` (the application's, which exports it as it
    /// was configured to).
    ///
    /// ```
    /// use vitalsign_core::sinks::otel::opentelemetry_sdk::metrics::SdkMeterProvider;
    /// use vitalsign_core::{sinks::OtelSink, Monitor};
    ///
    /// let provider = SdkMeterProvider::builder().build();
    /// let otel = OtelSink::meter_provider(&provider).build()?;
    /// let monitor = Monitor::builder("shop").sink(otel).build()?;
    /// # Ok::<(), vitalsign_core::ConfigError>(())
    /// ```
    pub fn meter_provider(provider: &impl MeterProvider) -> OtelSinkBuilder {
        OtelSinkBuilder::with_meter(provider.meter_with_scope(builder::scope()))
    }

    /// A sink with a meter provider of its own that exports OTLP over HTTP/protobuf (no TLS:
    /// `http://` endpoints), configured by the standard environment variables
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `..._HEADERS`,
    /// `..._TIMEOUT`, `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`,
    /// `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) where
    /// the builder sets nothing.
    pub fn otlp() -> OtelSinkBuilder {
        OtelSinkBuilder::otlp()
    }

    fn with_pending<T>(&self, f: impl FnOnce(&mut Vec<(u64, Record)>) -> T) -> Option<T> {
        PENDING
            .try_with(|pending| f(&mut pending.borrow_mut()))
            .ok()
    }

    fn take_pending(&self, pending: &mut Vec<(u64, Record)>) -> Option<Record> {
        let at = pending.iter().position(|(id, _)| *id == self.id)?;
        Some(pending.swap_remove(at).1)
    }

    fn enqueue(&self, record: Record) {
        match self.queue.try_send(Message::Record(record)) {
            Ok(()) => {
                self.accepted.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.refused.fetch_add(1, Relaxed);
                self.recorder.unpark();
            }
        }
    }

    /// `text` as a shared string: from the cache (no allocation) once it is there.
    fn shared(&self, text: &str) -> Arc<str> {
        let hash = self.strings.hash(text);
        if let Some((_, shared)) = self.strings.find(hash, |s| **s == *text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        // When the probed slots are taken, this text is copied for each request instead.
        let _ = self.strings.insert(hash, Arc::clone(&shared));
        shared
    }
}

impl Sink for OtelSink {
    fn request_started(&self, method: Method) {
        let i = method.index();
        self.active.counts[i].fetch_add(1, Relaxed);
        if self.active.seen.load(Relaxed) & (1 << i) == 0 {
            self.active.seen.fetch_or(1 << i, Relaxed);
        }
    }

    fn needs_request_id(&self) -> bool {
        false
    }

    fn needs_head_time(&self) -> bool {
        false
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        let record = Record {
            method: point.method,
            route: self.shared(point.route),
            status: point.status_code,
            error_type: None,
            seconds: point.execution_time,
        };
        // A request whose `request_finished` never came (a caller outside a monitor) is
        // queued now rather than lost.
        let stale = self.with_pending(|pending| {
            let stale = self.take_pending(pending);
            pending.push((self.id, record));
            stale
        });
        if let Some(Some(stale)) = stale {
            self.enqueue(stale);
        }
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        self.with_pending(|pending| {
            if let Some((_, record)) = pending.iter_mut().find(|(id, _)| *id == self.id) {
                record.error_type = Some(self.shared(point.error_code));
            }
        });
    }

    fn request_finished(&self, method: Method) {
        self.active.counts[method.index()].fetch_sub(1, Relaxed);
        if let Some(Some(record)) = self.with_pending(|pending| self.take_pending(pending)) {
            self.enqueue(record);
        }
    }

    fn flush(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let (done, wait) = tokio::sync::oneshot::channel();
        // Waits for room, which the recorder thread makes within its drain period.
        self.recorder.unpark();
        self.queue.send(Message::Flush(done)).ok()?;
        self.recorder.unpark();
        Some(wait)
    }

    fn report(&self) -> Option<SinkReport> {
        let recorded = self.recorded.load(Relaxed);
        let (sent, lost) = match &self.delivery {
            Some(delivery) => (
                delivery.delivered.load(Relaxed),
                delivery.lost.load(Relaxed),
            ),
            None => (recorded, 0),
        };
        let mut report = SinkReport::new("otel");
        report.sent = sent;
        report.dropped = self.refused.load(Relaxed) + lost;
        report.queued = self
            .accepted
            .load(Relaxed)
            .saturating_sub(sent.saturating_add(lost));
        Some(report)
    }
}

#[cfg(test)]
mod tests;
