//! [`PeriodAggregator`]: client-side aggregation in front of a push sink.
//!
//! The request path finds its tag set's cell as the Prometheus sink finds its series: in a
//! write-once lock-free cache keyed by the point's method, status, route, error code and
//! handler tags, and on a miss in a bounded map (read lock first, write lock to add a tag set)
//! that then offers the cell to the cache. A cell collects `count`, `min`, `max` and `sum` in
//! atomics, in one of two slots: the emitter flips the slot at the end of a period and waits
//! for the writers still in the old one (a writer/reader phaser), so that writers never wait
//! and every point lands in exactly one emitted aggregate.

// This file: `PeriodAggregator`, its builder, its emitter thread and its `Sink` impl.
mod cell; // a tag set's figures: two slots of atomics and the writer/emitter phaser
mod tag_sets; // the tag sets seen: the lock-free cache of point shapes, the bounded map
#[cfg(test)]
mod tests;

use std::sync::{mpsc, Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::health::Level;
use crate::{AggregatePoint, ErrorPoint, Method, RequestPoint, Sink, SinkReport};
use tag_sets::TagSets;

/// The tag that marks the one tag set taking every tag set past the cap (OpenTelemetry's
/// overflow attribute, as on `/metrics`).
pub const OVERFLOW_TAG: (&str, &str) = ("otel_metric_overflow", "true");

/// Builds a [`PeriodAggregator`].
#[derive(Debug)]
#[must_use]
pub struct PeriodAggregatorBuilder {
    period: Duration,
    inner: Arc<dyn Sink>,
    max_tag_sets: usize,
}

impl PeriodAggregatorBuilder {
    /// Caps the distinct tag sets the aggregator keeps (series `requests` and `errors`
    /// together): handler tags can carry any value. Past the cap, points of new tag sets are
    /// aggregated under one tag set, `otel_metric_overflow=true` ([`OVERFLOW_TAG`]) and
    /// `service`, and a warning is logged once.
    /// Defaults to [`DEFAULT_MAX_LABEL_SETS`](crate::DEFAULT_MAX_LABEL_SETS).
    pub fn max_tag_sets(mut self, max: usize) -> Self {
        self.max_tag_sets = max.max(1);
        self
    }

    /// Starts the aggregator's emitter thread.
    pub fn build(self) -> Arc<PeriodAggregator> {
        let (stop, stopped) = mpsc::channel::<()>();
        let aggregator = Arc::new(PeriodAggregator {
            period: self.period,
            inner: self.inner,
            tag_sets: TagSets::new(self.max_tag_sets),
            last_emitted: Mutex::new(None),
            _stop: stop,
        });
        let weak = Arc::downgrade(&aggregator);
        let period = self.period;
        let spawned = std::thread::Builder::new()
            .name("vitalsign-aggregate".into())
            .spawn(move || run(weak, stopped, period));
        if let Err(e) = spawned {
            tracing::warn!(
                "vitalsign: no aggregation thread ({e}); periods are emitted on flush only"
            );
        }
        aggregator
    }
}

/// Aggregates points per tag set and period (`count`, `min`, `max`, `sum` of execution time),
/// and hands the inner sink one [`AggregatePoint`] per tag set per period, timestamped with the
/// period's start: a service at 50k req/s pushes a few points a second.
///
/// A request counts in the period in which it is recorded (when it ends), so a request slower
/// than the period counts once, in the period it ended in. Periods are emitted as soon as they
/// end, and all at once on [`Sink::flush`]; a point recorded while its period is being emitted
/// (or after a flush) counts in the next aggregate of its tag set. So there is exactly one
/// aggregate per tag set and timestamp (InfluxDB, which keeps one point per series and
/// timestamp, loses none), and every request is in exactly one. In-flight gauges and health
/// changes pass straight through.
///
/// Recording a point of a known tag set takes no lock and allocates nothing (a few atomic
/// operations); tag sets are capped ([`PeriodAggregatorBuilder::max_tag_sets`]) and kept for
/// the aggregator's life.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use vitalsign_core::sinks::PeriodAggregator;
/// use vitalsign_core::{MemorySink, Monitor};
///
/// let push = Arc::new(MemorySink::new(100)); // in real life: an InfluxSink or StatsdSink
/// let aggregator = PeriodAggregator::builder(Duration::from_secs(10), push)
///     .max_tag_sets(1000)
///     .build();
/// let monitor = Monitor::builder("shop").sink(aggregator).build().unwrap();
/// # let _ = monitor;
/// ```
pub struct PeriodAggregator {
    period: Duration,
    inner: Arc<dyn Sink>,
    tag_sets: TagSets,
    /// Index of the last period emitted; taken by the emitter and by flushes only.
    last_emitted: Mutex<Option<u64>>,
    _stop: mpsc::Sender<()>,
}

impl std::fmt::Debug for PeriodAggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeriodAggregator")
            .field("period", &self.period)
            .field("inner", &self.inner)
            .field("tag_sets", &self.tag_sets.len())
            .finish_non_exhaustive()
    }
}

impl PeriodAggregator {
    /// An aggregator of `period` (at least 1 ms) in front of `inner`, with the default cap of
    /// tag sets.
    pub fn new(period: Duration, inner: Arc<dyn Sink>) -> Arc<Self> {
        Self::builder(period, inner).build()
    }

    /// A builder of an aggregator of `period` (at least 1 ms) in front of `inner`.
    pub fn builder(period: Duration, inner: Arc<dyn Sink>) -> PeriodAggregatorBuilder {
        PeriodAggregatorBuilder {
            period: period.max(Duration::from_millis(1)),
            inner,
            max_tag_sets: crate::DEFAULT_MAX_LABEL_SETS,
        }
    }

    fn period_nanos(&self) -> u64 {
        self.period.as_nanos().clamp(1, u128::from(u64::MAX)) as u64
    }

    fn add(&self, point: &RequestPoint<'_>, error_code: Option<&str>) {
        let seconds = point.execution_time;
        self.tag_sets
            .with_cell(point, error_code, |cell| cell.add(seconds));
    }

    /// Emits what every tag set collected since the last emission. `at_end` (the emitter
    /// thread, at a period's end): as the period that just ended, unless that one was already
    /// emitted (by a flush), in which case the points wait for the next period's end. Otherwise
    /// (a flush): at once, as the current period (or the one after the last emitted).
    fn emit(&self, at_end: bool) {
        let mut last = self
            .last_emitted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = unix_nanos() / self.period_nanos();
        let index = if at_end {
            let ended = current.saturating_sub(1);
            if last.is_some_and(|l| ended <= l) {
                return;
            }
            ended
        } else {
            last.map_or(current, |l| current.max(l + 1))
        };
        *last = Some(index);
        for cell in self.tag_sets.cells() {
            if let Some(agg) = cell.take() {
                self.inner.record_aggregate(&AggregatePoint {
                    series: cell.series,
                    tags: &cell.tags,
                    period_start_unix_nanos: index.saturating_mul(self.period_nanos()),
                    period: self.period,
                    count: agg.count,
                    min: agg.min,
                    max: agg.max,
                    sum: agg.sum,
                });
            }
        }
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The emitter thread: emits each period just after it ends.
fn run(aggregator: Weak<PeriodAggregator>, stopped: mpsc::Receiver<()>, period: Duration) {
    let period_nanos = period.as_nanos().clamp(1, u128::from(u64::MAX)) as u64;
    loop {
        let until_end = period_nanos - unix_nanos() % period_nanos;
        let wait = Duration::from_nanos(until_end) + Duration::from_micros(200);
        if !matches!(
            stopped.recv_timeout(wait),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            return;
        }
        let Some(aggregator) = aggregator.upgrade() else {
            return;
        };
        aggregator.emit(true);
    }
}

impl Sink for PeriodAggregator {
    fn needs_request_id(&self) -> bool {
        false
    }

    fn needs_head_time(&self) -> bool {
        false
    }

    fn request_started(&self, method: Method) {
        self.inner.request_started(method);
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        self.add(point, None);
    }

    fn request_finished(&self, method: Method) {
        self.inner.request_finished(method);
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        self.add(point.request, Some(point.error_code));
    }

    fn record_aggregate(&self, point: &AggregatePoint<'_>) {
        self.inner.record_aggregate(point);
    }

    fn flush(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.emit(false);
        self.inner.flush()
    }

    fn report(&self) -> Option<SinkReport> {
        self.inner.report()
    }

    fn health_changed(&self, component: &str, level: Level) {
        self.inner.health_changed(component, level);
    }

    /// Annotations are not aggregated: each goes to the inner sink as it is.
    fn record_annotation(&self, service: &str, event: &crate::annotation::AnnotationEvent) {
        self.inner.record_annotation(service, event);
    }
}
