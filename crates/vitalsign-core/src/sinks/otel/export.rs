//! The exporter of the sink's own meter provider: OTLP/HTTP, counting the requests each export
//! delivers or loses (for the sink's report).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;

use super::DURATION;

/// What the exports of the sink's own provider did, in requests.
#[derive(Debug, Default)]
pub(super) struct Delivery {
    /// Requests the receiver accepted: with cumulative temporality, the count of the last
    /// successful export (it holds every earlier one); with delta, the sum of the successful
    /// exports' counts.
    pub(super) delivered: AtomicU64,
    /// Requests of failed delta exports: lost for good. A failed cumulative export loses
    /// nothing (the next one carries the same requests), so it counts nothing here.
    pub(super) lost: AtomicU64,
    /// Failed exports.
    pub(super) failures: AtomicU64,
    last_log: Mutex<Option<Instant>>,
}

impl Delivery {
    fn failed(&self, error: &dyn std::fmt::Display) {
        let n = self.failures.fetch_add(1, Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!("vitalsign: OTLP metrics export failed ({error}); {n} failures so far");
        }
    }
}

/// Wraps the OTLP exporter: every export is passed on, and the requests it carried
/// (`http.server.request.duration`'s count) are counted as delivered or lost.
#[derive(Debug)]
pub(super) struct CountingExporter<E> {
    pub(super) inner: E,
    pub(super) delivery: Arc<Delivery>,
}

/// The requests in an export, and whether its duration histogram is delta (`None` when it has
/// no duration histogram: nothing recorded yet).
fn requests_in(metrics: &ResourceMetrics) -> Option<(u64, bool)> {
    let mut found = None;
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics().filter(|m| m.name() == DURATION) {
            if let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data() {
                let count: u64 = histogram.data_points().map(|p| p.count()).sum();
                let delta = histogram.temporality() == Temporality::Delta;
                let (total, _) = found.get_or_insert((0, delta));
                *total += count;
            }
        }
    }
    found
}

impl<E: PushMetricExporter> PushMetricExporter for CountingExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let carried = requests_in(metrics);
        let result = self.inner.export(metrics).await;
        match (&result, carried) {
            (Ok(()), Some((n, true))) => {
                self.delivery.delivered.fetch_add(n, Relaxed);
            }
            (Ok(()), Some((n, false))) => {
                self.delivery.delivered.fetch_max(n, Relaxed);
            }
            (Ok(()), None) => {}
            (Err(e), carried) => {
                if let Some((n, true)) = carried {
                    self.delivery.lost.fetch_add(n, Relaxed);
                }
                self.delivery.failed(e);
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
