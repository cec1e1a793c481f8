//! vitalsign's own histograms: atomic buckets, families of bounded series, and the lock-free
//! cache of a request's label set in front of the duration family.

use metrics::KeyName;

use super::exemplar::ExemplarSlot;
use super::series::Series;
use super::text::render_labels;
use super::PrometheusSink;
use crate::interner::Probe;
use crate::{Method, RequestPoint, MAX_LABEL_TAGS};

/// The histograms of one label set: the duration, and the optional head time and body sizes.
struct SeriesHistograms {
    duration: std::sync::Arc<AtomicHistogram>,
    head: Option<std::sync::Arc<AtomicHistogram>>,
    size: Option<std::sync::Arc<AtomicHistogram>>,
    request_size: Option<std::sync::Arc<AtomicHistogram>>,
    /// The duration's native histogram (feature `native-histograms`, when on).
    #[cfg(feature = "native-histograms")]
    native: Option<std::sync::Arc<super::native::NativeHistogram>>,
}

impl SeriesHistograms {
    fn record(&self, point: &RequestPoint<'_>) {
        match &point.trace {
            Some(trace) if trace.sampled() => self.duration.record_traced(point, trace),
            _ => self.duration.record(point.execution_time),
        }
        #[cfg(feature = "native-histograms")]
        if let Some(native) = &self.native {
            native.record(point.execution_time);
        }
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
pub(super) struct SeriesCell {
    method: Method,
    status: u16,
    route: Box<str>,
    /// The route's slot in the monitor's route cache, if the point that made the cell had one.
    route_key: Option<u32>,
    histograms: SeriesHistograms,
}

impl PrometheusSink {
    /// Records the point in the histograms of its label set: found in the lock-free cache,
    /// or (on first sight, or when handler tags are labels) under the families' locks.
    pub(super) fn record_histograms(&self, point: &RequestPoint<'_>) {
        // A point from the monitor names its route by its slot in the route cache: integers
        // to hash and compare, not the route's text.
        let probe = match point.route_key {
            Some(key) => self.cached_series(key, point.method, point.status_code),
            None => self.durations.series.probe(
                (point.method, point.status_code, point.route),
                |cell| {
                    cell.method == point.method
                        && cell.status == point.status_code
                        && *cell.route == *point.route
                },
            ),
        };
        let miss = match probe {
            Probe::Hit(_, cell) => return cell.histograms.record(point),
            Probe::Miss(miss) => miss,
        };
        let histograms = self.series_of(point);
        histograms.record(point);
        miss.offer(|| {
            Box::new(SeriesCell {
                method: point.method,
                status: point.status_code,
                route: point.route.into(),
                route_key: point.route_key,
                histograms,
            })
        });
    }

    /// The cached label set of a route named by its slot in the monitor's route cache.
    #[inline]
    fn cached_series(
        &self,
        route_key: u32,
        method: Method,
        status: u16,
    ) -> Probe<'_, Box<SeriesCell>> {
        self.durations
            .series
            .probe((route_key, method, status), |cell| {
                cell.route_key == Some(route_key) && cell.method == method && cell.status == status
            })
    }

    /// Whether a request of the lean shape (no trace, no handler tags, not a disconnect) is
    /// recorded by its duration alone: no label tags, no histogram of the head time or the
    /// sizes, no native histograms (what [`PrometheusSink::record_lean`] leaves out).
    pub(crate) fn is_lean(&self) -> bool {
        #[cfg(feature = "native-histograms")]
        if self.natives.is_some() {
            return false;
        }
        self.label_tags.is_empty()
            && self.heads.is_none()
            && self.sizes.is_none()
            && self.request_sizes.is_none()
    }

    /// The monitor's lean path (see [`PrometheusSink::is_lean`]): records the duration of a
    /// request whose label set is cached, as [`Sink::record_request`](crate::Sink::record_request)
    /// records its point; `false`, with nothing recorded, when the label set is not cached
    /// yet (the monitor then hands over the whole point).
    #[inline]
    pub(crate) fn record_lean(
        &self,
        route_key: u32,
        method: Method,
        status: u16,
        seconds: f64,
    ) -> bool {
        match self.cached_series(route_key, method, status) {
            Probe::Hit(_, cell) => {
                cell.histograms.duration.record(seconds);
                true
            }
            Probe::Miss(_) => false,
        }
    }

    /// Calls `f` with the label values (method, route, status, then label tags; empty for the
    /// overflow series) and the histogram of every series of the duration family (for the
    /// status page's sampler: read once per collection interval, never on the request path).
    #[cfg(feature = "status")]
    pub(crate) fn for_each_duration(
        &self,
        f: impl FnMut(&[Box<str>], &std::sync::Arc<AtomicHistogram>),
    ) {
        self.durations.series.for_each(f);
    }

    /// The bucket bounds of the duration histogram, in seconds.
    #[cfg(feature = "status")]
    pub(crate) fn duration_bounds(&self) -> &[f64] {
        &self.durations.bounds
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
        let duration = self.durations.handle(values);
        SeriesHistograms {
            // The native histogram follows the classic one into the overflow series.
            #[cfg(feature = "native-histograms")]
            native: self.natives.as_ref().map(|family| {
                family.handle(values, duration.labels.starts_with(super::OVERFLOW_LABEL.0))
            }),
            duration,
            head: optional(&self.heads),
            size: optional(&self.sizes),
            request_size: optional(&self.request_sizes),
        }
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
    /// The latest exemplar of each bucket, allocated on the series' first one.
    exemplars: std::sync::OnceLock<Box<[ExemplarSlot]>>,
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
            exemplars: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn record(&self, value: f64) {
        self.record_at(value);
    }

    /// Records `value`; returns its bucket's index.
    #[inline]
    fn record_at(&self, value: f64) -> usize {
        use std::sync::atomic::Ordering::Relaxed;
        // The first bound at or above `value` (as `partition_point` finds it, NaN included),
        // by a scan from the lowest: request durations and sizes mostly fall in the first few
        // buckets, which a scan reaches in fewer steps than a binary search.
        #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN goes to the first bucket, as before
        let index = self
            .bounds
            .iter()
            .position(|bound| !(*bound < value))
            .unwrap_or(self.bounds.len());
        self.buckets[index].fetch_add(1, Relaxed);
        let _ = self.sum_bits.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
        index
    }

    /// Records the duration of a point of a sampled trace, and keeps it as its bucket's
    /// exemplar (stamped with the request's end).
    fn record_traced(&self, point: &RequestPoint<'_>, trace: &crate::TraceContext) {
        let value = point.execution_time;
        let index = self.record_at(value);
        let slots = self.exemplars.get_or_init(|| {
            (0..self.buckets.len())
                .map(|_| ExemplarSlot::default())
                .collect()
        });
        let end_nanos = point.start_unix_nanos + (value * 1e9) as u64;
        slots[index].store(trace, value, end_nanos / 1_000_000);
    }

    /// Reads the bucket counts (not cumulative; the last one is above every bound) into `out`.
    #[cfg(feature = "status")]
    pub(crate) fn read_counts(&self, out: &mut Vec<u64>) {
        use std::sync::atomic::Ordering::Relaxed;
        out.clear();
        out.extend(self.buckets.iter().map(|b| b.load(Relaxed)));
    }

    /// Appends `name_bucket`, `name_sum` and `name_count` lines; `le` holds the rendered
    /// bounds (`le="0.005"`, …, `le="+Inf"`). With `exemplars` (OpenMetrics), a bucket's
    /// line ends with its exemplar, if it has one.
    fn render_into(&self, name: &str, le: &[String], exemplars: bool, out: &mut String) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut number = itoa::Buffer::new();
        let mut cumulative = 0u64;
        let slots = self.exemplars.get().filter(|_| exemplars);
        for (i, (bucket, le)) in self.buckets.iter().zip(le).enumerate() {
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
            if let Some(exemplar) = slots.and_then(|slots| slots[i].load()) {
                exemplar.render_into(out);
            }
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

/// A histogram metric: bounded series of [`AtomicHistogram`]s plus what its text needs. The
/// duration family's series may be fronted by the cache of a request's histograms in every
/// family ([`SeriesCell`]).
pub(super) struct HistogramFamily {
    series: Series<std::sync::Arc<AtomicHistogram>, Box<SeriesCell>>,
    bounds: std::sync::Arc<[f64]>,
    help: &'static str,
    global: Vec<(String, String)>,
}

impl HistogramFamily {
    pub(super) fn new(
        name: KeyName,
        label_names: Vec<String>,
        cap: usize,
        bounds: &[f64],
        help: &'static str,
        global: &[(String, String)],
        cached: bool,
    ) -> Self {
        HistogramFamily {
            series: Series::new(name, label_names, cap, cached),
            bounds: bounds.into(),
            help,
            global: global.to_vec(),
        }
    }

    /// The histogram of this label set, registered on first sight (or the overflow one).
    pub(super) fn handle(&self, values: &[&str]) -> std::sync::Arc<AtomicHistogram> {
        self.series.with(
            values,
            |labels| {
                let global = self.global.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let labels = render_labels(labels.iter().copied().chain(global));
                std::sync::Arc::new(AtomicHistogram::new(self.bounds.clone(), labels))
            },
            std::sync::Arc::clone,
        )
    }

    /// Appends the family's text; `exemplars`: with the buckets' exemplars (OpenMetrics).
    pub(super) fn render_into(&self, exemplars: bool, out: &mut String) {
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
            histogram.render_into(name, &le, exemplars, out);
        }
        out.push('\n');
    }

    pub(super) fn len(&self) -> usize {
        self.series.len()
    }

    /// The metric's name.
    #[cfg(feature = "native-histograms")]
    pub(super) fn series_name(&self) -> KeyName {
        self.series.name.clone()
    }

    /// The metric's label names.
    #[cfg(feature = "native-histograms")]
    pub(super) fn label_names(&self) -> Vec<String> {
        self.series.label_names.clone()
    }
}
