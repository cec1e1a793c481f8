//! [`PeriodAggregator`]: client-side aggregation in front of a push sink.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::health::Level;
use crate::{AggregatePoint, ErrorPoint, Method, RequestPoint, Sink, SinkReport};

type Key = (u64, &'static str, Vec<(String, String)>);

#[derive(Clone, Copy, Debug)]
struct Agg {
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
}

/// Aggregates points per tag set and period (`count`, `min`, `max`, `sum` of execution time),
/// and hands the inner sink one [`AggregatePoint`] per tag set per period, timestamped with the
/// period's start: a service at 50k req/s pushes a few points a second.
///
/// Periods are emitted once they have ended (checked four times a period), and all at once on
/// [`Sink::flush`]. In-flight gauges and health changes pass straight through.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use vitalsign_core::sinks::PeriodAggregator;
/// use vitalsign_core::{MemorySink, Monitor};
///
/// let push = Arc::new(MemorySink::new(100)); // in real life: an InfluxSink or StatsdSink
/// let aggregator = PeriodAggregator::new(Duration::from_secs(10), push);
/// let monitor = Monitor::builder("shop").sink(aggregator).build().unwrap();
/// # let _ = monitor;
/// ```
pub struct PeriodAggregator {
    period: Duration,
    inner: Arc<dyn Sink>,
    open: Mutex<HashMap<Key, Agg>>,
    _stop: mpsc::Sender<()>,
}

impl std::fmt::Debug for PeriodAggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeriodAggregator")
            .field("period", &self.period)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl PeriodAggregator {
    /// An aggregator of `period` (at least 1 ms) in front of `inner`.
    pub fn new(period: Duration, inner: Arc<dyn Sink>) -> Arc<Self> {
        let period = period.max(Duration::from_millis(1));
        let (stop, stopped) = mpsc::channel::<()>();
        let aggregator = Arc::new(PeriodAggregator {
            period,
            inner,
            open: Mutex::new(HashMap::new()),
            _stop: stop,
        });
        let weak = Arc::downgrade(&aggregator);
        let spawned = std::thread::Builder::new()
            .name("vitalsign-aggregate".into())
            .spawn(move || run(weak, stopped, period / 4));
        if let Err(e) = spawned {
            tracing::warn!(
                "vitalsign: no aggregation thread ({e}); periods are emitted on flush only"
            );
        }
        aggregator
    }

    fn period_nanos(&self) -> u64 {
        self.period.as_nanos().max(1) as u64
    }

    fn add(&self, series: &'static str, point: &RequestPoint<'_>, error_code: Option<&str>) {
        let index = point.start_unix_nanos / self.period_nanos();
        let key = (index, series, super::tag_set(point, error_code));
        let seconds = point.execution_time;
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.entry(key)
            .and_modify(|a| {
                a.count += 1;
                a.min = a.min.min(seconds);
                a.max = a.max.max(seconds);
                a.sum += seconds;
            })
            .or_insert(Agg {
                count: 1,
                min: seconds,
                max: seconds,
                sum: seconds,
            });
    }

    /// Emits the periods before `until` (all of them with `None`).
    fn emit(&self, until: Option<u64>) {
        let ready: Vec<(Key, Agg)> = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let keys: Vec<Key> = open
                .keys()
                .filter(|(index, _, _)| until.is_none_or(|u| *index < u))
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| open.remove(&k).map(|a| (k, a)))
                .collect()
        };
        for ((index, series, tags), agg) in ready {
            self.inner.record_aggregate(&AggregatePoint {
                series,
                tags: &tags,
                period_start_unix_nanos: index * self.period_nanos(),
                period: self.period,
                count: agg.count,
                min: agg.min,
                max: agg.max,
                sum: agg.sum,
            });
        }
    }

    fn current_index(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        now / self.period_nanos()
    }
}

fn run(aggregator: Weak<PeriodAggregator>, stopped: mpsc::Receiver<()>, tick: Duration) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
        let Some(aggregator) = aggregator.upgrade() else {
            return;
        };
        let current = aggregator.current_index();
        aggregator.emit(Some(current));
    }
}

impl Sink for PeriodAggregator {
    fn needs_request_id(&self) -> bool {
        false
    }

    fn request_started(&self, method: Method) {
        self.inner.request_started(method);
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        self.add("requests", point, None);
    }

    fn request_finished(&self, method: Method) {
        self.inner.request_finished(method);
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        self.add("errors", point.request, Some(point.error_code));
    }

    fn record_aggregate(&self, point: &AggregatePoint<'_>) {
        self.inner.record_aggregate(point);
    }

    fn flush(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.emit(None);
        self.inner.flush()
    }

    fn report(&self) -> Option<SinkReport> {
        self.inner.report()
    }

    fn health_changed(&self, component: &str, level: Level) {
        self.inner.health_changed(component, level);
    }
}
