//! [`PeriodAggregator`]: client-side aggregation in front of a push sink.
//!
//! The request path finds its tag set's [`Cell`] as the Prometheus sink finds its series: in a
//! write-once lock-free cache ([`OnceCache`]) keyed by the point's method, status, route, error
//! code and handler tags, and on a miss in a bounded map (read lock first, write lock to add a
//! tag set) that then offers the cell to the cache. A cell collects `count`, `min`, `max` and
//! `sum` in atomics, in one of two slots: the emitter flips the slot at the end of a period and
//! waits for the writers still in the old one (a writer/reader phaser), so that writers never
//! wait and every point lands in exactly one emitted aggregate.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hashbrown::HashMap;

use crate::cache::OnceCache;
use crate::health::Level;
use crate::{AggregatePoint, ErrorPoint, Method, RequestPoint, Sink, SinkReport, Tag};

/// The tag that marks the one tag set taking every tag set past the cap (OpenTelemetry's
/// overflow attribute, as on `/metrics`).
pub const OVERFLOW_TAG: (&str, &str) = ("otel_metric_overflow", "true");

/// Tag sets kept in the lock-free cache; further ones are looked up under the map's lock.
const CACHED_TAG_SETS: usize = 1024;

/// Handler tags a point may carry for its tag set to be looked up without allocating; a point
/// with more is looked up through an owned copy of its tag set.
const STACK_TAGS: usize = 16;

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

/// What a cell's slot collected.
#[derive(Clone, Copy, Debug)]
struct Agg {
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
}

/// Figures of one tag set in atomics. Execution times are never negative, so `min` and `max`
/// compare their bits as integers (the order of non-negative floats).
#[derive(Debug)]
struct Slot {
    count: AtomicU64,
    min_bits: AtomicU64,
    max_bits: AtomicU64,
    sum_bits: AtomicU64,
}

impl Slot {
    fn new() -> Self {
        Slot {
            count: AtomicU64::new(0),
            min_bits: AtomicU64::new(f64::INFINITY.to_bits()),
            max_bits: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn add(&self, seconds: f64) {
        use Ordering::Relaxed;
        // Also maps NaN and -0.0 to +0.0, whose bits order as the values do.
        let seconds = if seconds > 0.0 { seconds } else { 0.0 };
        self.count.fetch_add(1, Relaxed);
        self.min_bits.fetch_min(seconds.to_bits(), Relaxed);
        self.max_bits.fetch_max(seconds.to_bits(), Relaxed);
        let _ = self.sum_bits.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + seconds).to_bits())
        });
    }

    /// The figures, and the slot reset; only while no writer is in the slot.
    fn take(&self) -> Agg {
        use Ordering::Relaxed;
        Agg {
            count: self.count.swap(0, Relaxed),
            min: f64::from_bits(self.min_bits.swap(f64::INFINITY.to_bits(), Relaxed)),
            max: f64::from_bits(self.max_bits.swap(0, Relaxed)),
            sum: f64::from_bits(self.sum_bits.swap(0f64.to_bits(), Relaxed)),
        }
    }
}

/// Bit of [`Cell::state`] that names the slot writers use.
const SLOT_BIT: u64 = 1 << 63;

/// One tag set of one series: its tags, and two slots that writers and the emitter take turns
/// on. Writers never wait: they announce themselves on `state` (which also tells them the
/// slot), add, and sign out on `left`. The emitter (one at a time) flips `state` to the other
/// slot, learning how many writers entered the old one, and waits until as many have left.
#[derive(Debug)]
struct Cell {
    series: &'static str,
    /// Sorted by key, as [`AggregatePoint::tags`].
    tags: Box<[(String, String)]>,
    /// [`SLOT_BIT`]: the slot in use; the other bits: writers that entered it since the flip.
    state: AtomicU64,
    /// Writers that left each slot since it was last flipped to.
    left: [AtomicU64; 2],
    slots: [Slot; 2],
}

impl Cell {
    fn new(series: &'static str, tags: Vec<(String, String)>) -> Self {
        Cell {
            series,
            tags: tags.into(),
            state: AtomicU64::new(0),
            left: [AtomicU64::new(0), AtomicU64::new(0)],
            slots: [Slot::new(), Slot::new()],
        }
    }

    fn add(&self, seconds: f64) {
        let state = self.state.fetch_add(1, Ordering::Acquire);
        let slot = usize::from(state & SLOT_BIT != 0);
        self.slots[slot].add(seconds);
        self.left[slot].fetch_add(1, Ordering::Release);
    }

    /// What the slot in use collected, if anything; writers move to the other slot. Called by
    /// one emitter at a time (under [`PeriodAggregator::last_emitted`]).
    fn take(&self) -> Option<Agg> {
        if self.state.load(Ordering::Acquire) & !SLOT_BIT == 0 {
            // Nobody entered: a writer entering now counts as if it came after the flip.
            return None;
        }
        let old = self.state.load(Ordering::Relaxed) & SLOT_BIT;
        let new = old ^ SLOT_BIT;
        // Every writer of the other slot left before its last take returned.
        self.left[usize::from(new != 0)].store(0, Ordering::Relaxed);
        let entered = self.state.swap(new, Ordering::AcqRel) & !SLOT_BIT;
        let left = &self.left[usize::from(old != 0)];
        let mut spins = 0u32;
        while left.load(Ordering::Acquire) != entered {
            // A writer between its two announcements: a few instructions, unless preempted.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        Some(self.slots[usize::from(old != 0)].take())
    }
}

/// The tag sets seen: a lock-free cache in front of a bounded map (the authority), as the
/// Prometheus sink keeps its series.
struct TagSets {
    /// Keyed by the point's own shape (handler tags in the order given).
    cache: OnceCache<Box<Shape>>,
    /// Keyed by the series and the sorted tag set, flattened: `[series, k1, v1, k2, v2, …]`.
    map: RwLock<Map>,
    cap: usize,
    overflowed: AtomicBool,
}

#[derive(Default)]
struct Map {
    cells: HashMap<Key, Arc<Cell>>,
    /// Tag sets counted against the cap (the overflow ones are not).
    regular: usize,
}

/// A cached point shape and the cell of its tag set.
struct Shape {
    error_code: Option<Box<str>>,
    method: Method,
    status: u16,
    route: Box<str>,
    service: Box<str>,
    tags: Box<[(Box<str>, Box<str>)]>,
    cell: Arc<Cell>,
}

impl Shape {
    fn matches(&self, point: &RequestPoint<'_>, error_code: Option<&str>) -> bool {
        self.method == point.method
            && self.status == point.status_code
            && *self.route == *point.route
            && self.error_code.as_deref() == error_code
            && *self.service == *point.service
            && self.tags.len() == point.tags.len()
            && self
                .tags
                .iter()
                .zip(point.tags)
                .all(|((k, v), tag)| **k == *tag.key && **v == *tag.value)
    }
}

/// Hashes handler tags as given.
struct RawTags<'a>(&'a [Tag]);

impl Hash for RawTags<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        for tag in self.0 {
            tag.key.hash(state);
            tag.value.hash(state);
        }
    }
}

/// An owned map key: the series, then each tag's key and value, sorted by key.
#[derive(PartialEq, Eq)]
struct Key(Box<[Box<str>]>);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `KeyRef`: each part, no length prefix.
        for part in self.0.iter() {
            part.hash(state);
        }
    }
}

/// A borrowed map key that hashes and compares like the owned [`Key`].
struct KeyRef<'a>(&'a [&'a str]);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for part in self.0 {
            part.hash(state);
        }
    }
}

impl hashbrown::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0.len() == key.0.len() && self.0.iter().zip(key.0.iter()).all(|(a, b)| *a == &**b)
    }
}

impl TagSets {
    fn new(cap: usize) -> Self {
        TagSets {
            cache: OnceCache::new(cap.min(CACHED_TAG_SETS) * 2),
            map: RwLock::new(Map::default()),
            cap,
            overflowed: AtomicBool::new(false),
        }
    }

    fn len(&self) -> usize {
        self.read().cells.len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every cell, for the emitter.
    fn cells(&self) -> Vec<Arc<Cell>> {
        self.read().cells.values().cloned().collect()
    }

    /// Calls `f` with the cell of the point's tag set: from the cache, or (first sight of this
    /// shape, or past the cache) from the map, which registers it (or the overflow cell) on
    /// first sight and then offers it to the cache.
    fn with_cell(&self, point: &RequestPoint<'_>, error_code: Option<&str>, f: impl FnOnce(&Cell)) {
        let hash = self.cache.hash((
            point.method,
            point.status_code,
            point.route,
            error_code,
            RawTags(point.tags),
        ));
        if let Some((_, shape)) = self.cache.find(hash, |s| s.matches(point, error_code)) {
            return f(&shape.cell);
        }
        let cell = self.lookup(point, error_code);
        f(&cell);
        let shape = Shape {
            error_code: error_code.map(Into::into),
            method: point.method,
            status: point.status_code,
            route: point.route.into(),
            service: point.service.into(),
            tags: point
                .tags
                .iter()
                .map(|t| (Box::from(&*t.key), Box::from(t.value.as_str())))
                .collect(),
            cell,
        };
        // When every probed slot is taken the shape is not cached; the map stays the authority.
        let _ = self.cache.insert(hash, Box::new(shape));
    }

    /// The cell of the point's tag set from the map. The tag set is laid out on the stack
    /// (points with more than [`STACK_TAGS`] handler tags: in an owned copy).
    fn lookup(&self, point: &RequestPoint<'_>, error_code: Option<&str>) -> Arc<Cell> {
        let series = series_of(error_code);
        if point.tags.len() > STACK_TAGS {
            let tags = super::tag_set(point, error_code);
            let pairs: Vec<(&str, &str)> =
                tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut parts = vec![series];
            parts.extend(pairs.iter().flat_map(|(k, v)| [*k, *v]));
            return self.register(series, &pairs, &parts, point.service);
        }
        let mut status = itoa::Buffer::new();
        let mut pairs = [("", ""); 5 + STACK_TAGS];
        let n = stack_tag_set(
            point,
            error_code,
            status.format(point.status_code),
            &mut pairs,
        );
        let pairs = &pairs[..n];
        let mut parts = [""; 1 + 2 * (5 + STACK_TAGS)];
        parts[0] = series;
        for (i, (k, v)) in pairs.iter().enumerate() {
            parts[1 + 2 * i] = k;
            parts[2 + 2 * i] = v;
        }
        self.register(series, pairs, &parts[..1 + 2 * n], point.service)
    }

    /// The cell filed under `parts` (the series, then `pairs` flattened): found under the read
    /// lock, else added under the write lock, or, past the cap, the series' overflow cell.
    fn register(
        &self,
        series: &'static str,
        pairs: &[(&str, &str)],
        parts: &[&str],
        service: &str,
    ) -> Arc<Cell> {
        let overflow = [series, OVERFLOW_TAG.0, OVERFLOW_TAG.1, "service", service];
        {
            let map = self.read();
            if let Some(cell) = map.cells.get(&KeyRef(parts)) {
                return Arc::clone(cell);
            }
            if map.regular >= self.cap {
                if let Some(cell) = map.cells.get(&KeyRef(&overflow)) {
                    return Arc::clone(cell);
                }
            }
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(cell) = map.cells.get(&KeyRef(parts)) {
            return Arc::clone(cell);
        }
        let (parts, pairs) = if map.regular >= self.cap {
            if let Some(cell) = map.cells.get(&KeyRef(&overflow)) {
                return Arc::clone(cell);
            }
            if !self.overflowed.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = self.cap,
                    "vitalsign: tag-set cap of the period aggregator reached; further tag sets \
                     are aggregated under otel_metric_overflow=\"true\""
                );
            }
            (&overflow[..], &[OVERFLOW_TAG, ("service", service)][..])
        } else {
            map.regular += 1;
            (parts, pairs)
        };
        let tags = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let cell = Arc::new(Cell::new(series, tags));
        let key = Key(parts.iter().map(|p| Box::from(*p)).collect());
        map.cells.insert(key, Arc::clone(&cell));
        cell
    }
}

fn series_of(error_code: Option<&str>) -> &'static str {
    if error_code.is_some() {
        "errors"
    } else {
        "requests"
    }
}

/// The point's tag set as [`super::tag_set`] makes it (sorted by key; handler tags never
/// override another tag), in `out`, for a point with at most [`STACK_TAGS`] handler tags.
/// Returns how many pairs it wrote.
fn stack_tag_set<'a>(
    point: &'a RequestPoint<'_>,
    error_code: Option<&'a str>,
    status: &'a str,
    out: &mut [(&'a str, &'a str); 5 + STACK_TAGS],
) -> usize {
    out[0] = ("service", point.service);
    out[1] = ("route", point.route);
    out[2] = ("method", point.method.as_str());
    out[3] = ("status_code", status);
    let mut n = 4;
    if let Some(code) = error_code {
        out[n] = ("error_code", code);
        n += 1;
    }
    for tag in point.tags.iter().take(STACK_TAGS) {
        if !out[..n].iter().any(|(k, _)| *k == tag.key) {
            out[n] = (&tag.key, &tag.value);
            n += 1;
        }
    }
    out[..n].sort_unstable();
    n
}

impl Sink for PeriodAggregator {
    fn needs_request_id(&self) -> bool {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestId;
    use std::collections::{BTreeMap, HashSet};
    use std::time::Instant;

    /// One kept aggregate: series, tags, period start, count, min, max, sum.
    type Kept = (String, Vec<(String, String)>, u64, u64, f64, f64, f64);

    #[derive(Debug, Default)]
    struct Keep(Mutex<Vec<Kept>>);

    impl Sink for Keep {
        fn record_request(&self, _point: &RequestPoint<'_>) {}

        fn record_aggregate(&self, p: &AggregatePoint<'_>) {
            self.0.lock().unwrap().push((
                p.series.to_owned(),
                p.tags.to_vec(),
                p.period_start_unix_nanos,
                p.count,
                p.min,
                p.max,
                p.sum,
            ));
        }
    }

    impl Keep {
        fn all(&self) -> Vec<Kept> {
            self.0.lock().unwrap().clone()
        }

        /// Asserts one aggregate per series, tag set and timestamp; returns the counts summed
        /// per series and tag set.
        fn counts(&self) -> BTreeMap<(String, Vec<(String, String)>), u64> {
            let all = self.all();
            let mut seen = HashSet::new();
            let mut counts = BTreeMap::new();
            for (series, tags, start, count, ..) in all {
                assert!(
                    seen.insert((series.clone(), tags.clone(), start)),
                    "two aggregates of {series} {tags:?} at {start}"
                );
                *counts.entry((series, tags)).or_default() += count;
            }
            counts
        }
    }

    fn point<'a>(
        id: &'a RequestId,
        route: &'a str,
        tags: &'a [Tag],
        start_unix_nanos: u64,
        execution_time: f64,
    ) -> RequestPoint<'a> {
        RequestPoint {
            service: "svc",
            route,
            method: Method::Get,
            status_code: 200,
            request_id: id,
            execution_time,
            start_unix_nanos,
            disconnected: false,
            head_time: None,
            response_body_bytes: 0,
            request_body_bytes: 0,
            tags,
            fields: &[],
        }
    }

    fn tag(key: &'static str, value: &str) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn key(series: &str, tags: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        (
            series.to_owned(),
            tags.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// Regression (review item 2): points were filed under the period their request started
    /// in, so a request slower than the period, recorded after that period had been emitted,
    /// opened a second aggregate with the same timestamp (InfluxDB kept only the last).
    #[test]
    fn a_request_that_outlives_its_period_is_counted_once_in_another_aggregate() {
        let keep = Arc::new(Keep::default());
        let aggregator = PeriodAggregator::new(Duration::from_millis(20), keep.clone());
        let id = RequestId::EMPTY;
        let started = unix_nanos();
        aggregator.record_request(&point(&id, "/slow", &[], started, 0.001));
        wait_until("the first period is emitted", || !keep.all().is_empty());
        // Started in the period just emitted, ended three periods later.
        aggregator.record_request(&point(&id, "/slow", &[], started, 0.060));
        drop(aggregator.flush());
        let counts = keep.counts();
        let tags = [
            ("method", "GET"),
            ("route", "/slow"),
            ("service", "svc"),
            ("status_code", "200"),
        ];
        assert_eq!(counts.get(&key("requests", &tags)), Some(&2), "{counts:?}");
        assert_eq!(keep.all().len(), 2);
    }

    /// Regression (review item 2): writers on several threads while the emitter flips every
    /// millisecond: every point is in exactly one aggregate, min, max and sum are exact, and no
    /// tag set has two aggregates at one timestamp.
    #[test]
    fn concurrent_writers_and_emissions_count_every_point_once() {
        const THREADS: usize = 4;
        const EMISSIONS: usize = 40;
        let keep = Arc::new(Keep::default());
        let aggregator = PeriodAggregator::new(Duration::from_millis(1), keep.clone());
        let (sent, failed) = (AtomicU64::new(0), AtomicU64::new(0));
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (aggregator, keep, sent, failed) = (&aggregator, &keep, &sent, &failed);
                scope.spawn(move || {
                    let id = RequestId::EMPTY;
                    let tags = [tag("worker", if t % 2 == 0 { "even" } else { "odd" })];
                    let deadline = Instant::now() + Duration::from_secs(20);
                    // Until the emitter has flipped every cell many times.
                    for i in 0.. {
                        if i % 512 == 0 && keep.0.lock().unwrap().len() >= EMISSIONS * 8 {
                            break;
                        }
                        assert!(Instant::now() < deadline, "the emitter did not emit");
                        let route = ["/a", "/b"][i % 2];
                        let seconds = if i % 1000 == 7 { 0.5 } else { 0.25 };
                        let p = point(&id, route, &tags, unix_nanos(), seconds);
                        aggregator.record_request(&p);
                        sent.fetch_add(1, Ordering::Relaxed);
                        if i % 3 == 0 {
                            aggregator.record_error(&ErrorPoint {
                                request: &p,
                                error_code: "E",
                            });
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        drop(aggregator.flush());
        let counts = keep.counts();
        let total = |series: &str| -> u64 {
            counts
                .iter()
                .filter(|((s, _), _)| s == series)
                .map(|(_, c)| c)
                .sum()
        };
        assert_eq!(total("requests"), sent.load(Ordering::Relaxed));
        assert_eq!(total("errors"), failed.load(Ordering::Relaxed));
        assert_eq!(
            counts.len(),
            2 * 2 * 2,
            "series x route x worker: {counts:#?}"
        );
        for (_, _, _, count, min, max, sum) in keep.all() {
            assert!(min == 0.25 || min == 0.5, "{min}");
            assert!(max == 0.25 || max == 0.5, "{max}");
            assert!(min <= max);
            // Quarters and halves add up exactly.
            let halves = (sum - 0.25 * count as f64) / 0.25;
            assert_eq!(halves.fract(), 0.0, "sum {sum} of {count}");
            assert!(halves <= count as f64);
        }
    }

    /// Regression (review item 2): the aggregate map was unbounded, and handler tag values are
    /// arbitrary. Past the cap, new tag sets share one overflow tag set, counted in full.
    #[test]
    fn tag_sets_past_the_cap_share_one_overflow_tag_set() {
        let keep = Arc::new(Keep::default());
        let aggregator = PeriodAggregator::builder(Duration::from_secs(3600), keep.clone())
            .max_tag_sets(2)
            .build();
        let id = RequestId::EMPTY;
        for round in 0..3 {
            for user in ["u1", "u2", "u3", "u4", "u5"] {
                let tags = [tag("user", user)];
                aggregator.record_request(&point(&id, "/u", &tags, unix_nanos(), 0.1));
            }
            if round == 0 {
                assert!(aggregator.tag_sets.overflowed.load(Ordering::Relaxed));
            }
        }
        drop(aggregator.flush());
        let counts = keep.counts();
        let user = |u| {
            key(
                "requests",
                &[
                    ("method", "GET"),
                    ("route", "/u"),
                    ("service", "svc"),
                    ("status_code", "200"),
                    ("user", u),
                ],
            )
        };
        let overflow = key("requests", &[OVERFLOW_TAG, ("service", "svc")]);
        let want: BTreeMap<_, _> = [(user("u1"), 3), (user("u2"), 3), (overflow, 9)]
            .into_iter()
            .collect();
        assert_eq!(counts, want);
        assert_eq!(
            aggregator.tag_sets.len(),
            3,
            "two tag sets and the overflow one"
        );
    }

    /// Handler tags in another order, repeated, or naming a standard tag give the tag set
    /// `tag_set` gives, and one aggregate; so do points with more handler tags than fit on the
    /// stack.
    #[test]
    fn tag_sets_are_those_of_the_line_protocol_whatever_the_order() {
        let keep = Arc::new(Keep::default());
        let aggregator = PeriodAggregator::new(Duration::from_secs(3600), keep.clone());
        let id = RequestId::EMPTY;
        let shapes = [
            vec![tag("b", "2"), tag("a", "1")],
            vec![tag("a", "1"), tag("b", "2")],
            vec![
                tag("a", "1"),
                tag("route", "/x"),
                tag("b", "2"),
                tag("a", "9"),
            ],
        ];
        let many: Vec<Tag> = (0..STACK_TAGS + 3)
            .map(|i| Tag {
                key: format!("k{i:02}").into(),
                value: i.to_string(),
            })
            .collect();
        let mut many_reversed = many.clone();
        many_reversed.reverse();
        for _ in 0..2 {
            for tags in shapes.iter().chain([&many, &many_reversed]) {
                let p = point(&id, "/t", tags, unix_nanos(), 0.1);
                aggregator.record_request(&p);
                aggregator.record_error(&ErrorPoint {
                    request: &p,
                    error_code: "E1",
                });
            }
        }
        drop(aggregator.flush());
        let counts = keep.counts();
        let p = point(&id, "/t", &shapes[0], 0, 0.0);
        let few = super::super::tag_set(&p, None);
        let few_errors = super::super::tag_set(&p, Some("E1"));
        let p = point(&id, "/t", &many, 0, 0.0);
        let lots = super::super::tag_set(&p, None);
        let lots_errors = super::super::tag_set(&p, Some("E1"));
        let want: BTreeMap<_, _> = [
            (("requests".to_owned(), few), 6),
            (("errors".to_owned(), few_errors), 6),
            (("requests".to_owned(), lots), 4),
            (("errors".to_owned(), lots_errors), 4),
        ]
        .into_iter()
        .collect();
        assert_eq!(counts, want);
    }
}
