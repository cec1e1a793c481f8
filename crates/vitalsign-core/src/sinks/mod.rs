//! Push sinks: `InfluxSink` (feature `influx`), `StatsdSink` (feature `statsd`), `OtelSink`
//! (feature `otel`, OpenTelemetry instruments exported over OTLP), and the
//! [`PeriodAggregator`] any of them can sit behind.
//!
//! The request path never waits on a push sink: points are encoded and handed to a bounded
//! queue that a background thread drains. When the queue is full the oldest points are dropped
//! and counted; what a sink drops is visible on `/metrics`
//! (`vitalsign_sink_dropped_points_total{sink}`) and in `/stats` (`sinks`).
//!
//! A sink of your own implements [`Sink`](crate::Sink); see `examples/custom_sink.rs`.

mod aggregate;
#[cfg(feature = "influx-base")]
mod influx;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "influx-base")]
mod queue;
#[cfg(feature = "statsd")]
mod statsd;

pub use aggregate::{PeriodAggregator, PeriodAggregatorBuilder, OVERFLOW_TAG};
#[cfg(feature = "influx-base")]
pub use influx::{InfluxSink, InfluxSinkBuilder};
#[cfg(feature = "otel")]
pub use otel::{OtelSink, OtelSinkBuilder};
#[cfg(feature = "statsd")]
pub use statsd::{StatsdSink, StatsdSinkBuilder, TagStyle};

/// The tag set of a request point, sorted by key: `service`, `route`, `method`, `status_code`,
/// `error_code` (errors only) and the handler tags (which cannot override those).
pub(crate) fn tag_set(
    point: &crate::RequestPoint<'_>,
    error_code: Option<&str>,
) -> Vec<(String, String)> {
    let mut tags = vec![
        ("service".to_owned(), point.service.to_owned()),
        ("route".to_owned(), point.route.to_owned()),
        ("method".to_owned(), point.method.as_str().to_owned()),
        ("status_code".to_owned(), point.status_code.to_string()),
    ];
    if let Some(code) = error_code {
        tags.push(("error_code".to_owned(), code.to_owned()));
    }
    for tag in point.tags {
        if !tags.iter().any(|(k, _)| *k == tag.key) {
            tags.push((tag.key.to_string(), tag.value.clone()));
        }
    }
    tags.sort_unstable();
    tags
}
