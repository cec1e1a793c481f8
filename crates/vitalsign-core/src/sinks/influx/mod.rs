//! [`InfluxSink`]: monitoring points as InfluxDB line protocol, over HTTP or UDP.

// This file: `InfluxSink`, its constructors and its `Sink` implementation.
mod builder; // `InfluxSinkBuilder`: settings, checks of the target, start of the writer thread
mod line; // line protocol: encoding and escaping, the cache of encoded label sets
mod writer; // the writer thread: batches over HTTP or UDP, retries with backoff

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use super::queue::Queue;
use crate::{AggregatePoint, ErrorPoint, RequestPoint, Sink, SinkReport};

pub use builder::InfluxSinkBuilder;
use builder::Target;
use line::{encode_aggregate, encode_annotation, encode_point, Prefixes};

/// Writes request points (series `requests`), error points (series `errors`) and aggregates as
/// InfluxDB line protocol.
///
/// Tags: `service`, `route`, `method`, `status_code` (+ `error_code`), plus handler tags. Fields:
/// `request_id`, `execution_time` (seconds), plus handler fields (unsigned integers are written
/// as integers, which InfluxDB 1.x accepts). Timestamp: request start, in nanoseconds (use
/// `precision=ns`, the default). Aggregates carry `count`, `min`, `max`, `sum` at the period's
/// start. Escaping is done by InfluxData's `influxdb-line-protocol` crate.
///
/// Annotations ([`Monitor::annotate`](crate::Monitor::annotate)) are points of series
/// `annotations`, the shape Grafana's InfluxDB annotation queries read: tags `service`,
/// `stream`, `source` (plus the event's tags), string fields `title`, `description`, `links`
/// (`rel=href` pairs, space-separated), the integer field `end` (unix milliseconds) when the
/// event has an end; timestamp = its start.
///
/// Lines are queued (bounded, oldest dropped and counted) and written by a background thread
/// every `flush_period` or as soon as `batch_size` lines are queued. Connection errors and 5xx
/// answers are retried with exponential backoff; a 4xx answer (bad data) drops the batch,
/// counted, and is logged once per status.
///
/// ```no_run
/// use std::time::Duration;
/// use vitalsign_core::{sinks::InfluxSink, Monitor};
///
/// let influx = InfluxSink::http("http://127.0.0.1:8086/write?db=metrics")
///     .flush_period(Duration::from_secs(1))
///     .batch_size(500)
///     .build()?;
/// let monitor = Monitor::builder("shop").sink(influx).build()?;
/// # Ok::<(), vitalsign_core::ConfigError>(())
/// ```
pub struct InfluxSink {
    queue: Arc<Queue>,
    flushes: Arc<Mutex<Vec<tokio::sync::oneshot::Sender<()>>>>,
    prefixes: Prefixes,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for InfluxSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxSink")
            .field("report", &self.report())
            .finish_non_exhaustive()
    }
}

impl InfluxSink {
    /// A sink writing to a full write URL: `http://host:8086/write?db=…` (1.x) or
    /// `http://host:8086/api/v2/write?org=…&bucket=…` (2.x, with [`InfluxSinkBuilder::token`]).
    ///
    /// `https://` needs the `influx-tls` feature (part of `influx`): TLS through rustls,
    /// trusting the system's root certificates and those given to
    /// `InfluxSinkBuilder::root_certificate_pem`. A URL the sink cannot use fails at
    /// [`InfluxSinkBuilder::build`].
    pub fn http(url: impl Into<String>) -> InfluxSinkBuilder {
        Self::builder(Target::Http {
            url: url.into(),
            token: None,
        })
    }

    /// A sink sending datagrams (at most 1400 bytes of lines each) to an InfluxDB UDP listener.
    pub fn udp(addr: impl Into<String>) -> InfluxSinkBuilder {
        Self::builder(Target::Udp {
            addr: addr.into(),
            max_datagram: 1400,
        })
    }

    /// The line protocol this sink writes for a point (with `error_code`: its error point).
    ///
    /// ```
    /// use vitalsign_core::{sinks::InfluxSink, Method, RequestId, RequestPoint};
    ///
    /// let id = RequestId::from_header(Some(b"r-1")).unwrap();
    /// let mut point = RequestPoint::new("shop", "/a b", Method::Get, 200, &id);
    /// point.execution_time = 0.5;
    /// point.start_unix_nanos = 1;
    /// assert_eq!(
    ///     InfluxSink::line(&point, None),
    ///     "requests,method=GET,route=/a\\ b,service=shop,status_code=200 execution_time=0.5,request_id=\"r-1\" 1\n"
    /// );
    /// ```
    pub fn line(point: &RequestPoint<'_>, error_code: Option<&str>) -> String {
        String::from_utf8(encode_point(point, error_code)).unwrap_or_default()
    }
}

/// An error with its sources (`reqwest`'s own text hides the cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

impl Sink for InfluxSink {
    fn needs_head_time(&self) -> bool {
        false
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        self.queue.push(self.prefixes.encode(point, None));
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        self.queue
            .push(self.prefixes.encode(point.request, Some(point.error_code)));
    }

    fn record_aggregate(&self, point: &AggregatePoint<'_>) {
        self.queue.push(encode_aggregate(point));
    }

    fn record_annotation(&self, service: &str, event: &crate::annotation::AnnotationEvent) {
        self.queue.push(encode_annotation(service, event));
    }

    fn flush(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.flushes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(done);
        self.queue.batch_ready.notify_one();
        Some(wait)
    }

    fn report(&self) -> Option<SinkReport> {
        Some(SinkReport {
            name: "influx",
            sent: self.queue.sent.load(Relaxed),
            dropped: self.queue.dropped.load(Relaxed),
            queued: self.queue.len() as u64,
        })
    }
}
