//! The status page's history: one sample per collection interval in a bounded ring, and the
//! busiest routes of the last minute, taken by vitalsign's health thread right after the
//! `/stats` window closes. Nothing here runs on the request path: the sampler reads the
//! counters the request path already keeps (the `/stats` window totals, the Prometheus
//! duration histograms, the in-flight counter).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::prometheus::{AtomicHistogram, PrometheusSink};
use crate::stats::{Stats, Totals};

/// The span of the charts: 15 minutes.
pub const HISTORY_SPAN: Duration = Duration::from_secs(15 * 60);

/// The most samples the ring holds, whatever the collection interval: 900 (15 minutes at one
/// sample a second; a shorter interval covers less than 15 minutes).
pub const MAX_SAMPLES: usize = 900;

/// The span of the busiest-routes table: the last minute.
pub const ROUTES_SPAN: Duration = Duration::from_secs(60);

/// The busiest routes kept per interval (the table shows the first [`ROUTES_SHOWN`] of their
/// sum over [`ROUTES_SPAN`]).
pub const ROUTES_PER_INTERVAL: usize = 20;

/// Rows of the busiest-routes table.
pub const ROUTES_SHOWN: usize = 10;

/// The most intervals the routes ring holds (one minute at one a second).
const MAX_ROUTE_TICKS: usize = 60;

/// One sample: the figures of one closed collection interval. 40 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sample {
    /// End of the interval, Unix milliseconds.
    time_ms: u64,
    /// Length of the interval, seconds.
    seconds: f32,
    /// Requests recorded in the interval.
    requests: u32,
    /// Of which answered with a 5xx status.
    errors: u32,
    /// Latency percentiles of the requests in the interval, ms (NaN: none, or no histogram).
    p50: f32,
    p90: f32,
    p99: f32,
    /// Requests in flight when the interval closed.
    in_flight: u32,
}

/// One route's figures over one interval.
#[derive(Clone, Debug)]
struct RouteDelta {
    method: Box<str>,
    route: Arc<str>,
    count: u64,
    errors: u64,
    /// Non-cumulative bucket counts of the interval (the last above every bound).
    buckets: Box<[u64]>,
}

#[derive(Debug)]
struct RouteTick {
    seconds: f64,
    routes: Vec<RouteDelta>,
}

#[derive(Debug, Default)]
struct State {
    /// End of the last window sampled.
    last_window: Option<SystemTime>,
    samples: VecDeque<Sample>,
    /// Cumulative bucket counts of each duration series at the last sample, by the series'
    /// address (the `Arc` keeps the address taken).
    previous: HashMap<usize, (Arc<AtomicHistogram>, Box<[u64]>)>,
    routes: VecDeque<RouteTick>,
    /// Process CPU seconds at the last sample, and when they were read.
    cpu: Option<(Instant, f64)>,
    /// CPU time over wall time of the last interval (1.0 = one core busy).
    cpu_ratio: Option<f64>,
}

/// Samples the figures of each closed collection interval into bounded rings.
pub(crate) struct Sampler {
    stats: Arc<Stats>,
    prometheus: Option<Arc<PrometheusSink>>,
    in_flight: OnceLock<Box<dyn Fn() -> u64 + Send + Sync>>,
    capacity: usize,
    route_capacity: usize,
    /// When the monitor was built (the `since` of a component that kept its first level).
    started: SystemTime,
    state: Mutex<State>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("capacity", &self.capacity)
            .field("route_capacity", &self.route_capacity)
            .finish_non_exhaustive()
    }
}

/// Samples needed to cover `span` at one per `interval`, at least 1 and at most `max`.
fn samples_for(span: Duration, interval: Duration, max: usize) -> usize {
    let interval = interval.as_secs_f64().max(1e-3);
    ((span.as_secs_f64() / interval).ceil() as usize).clamp(1, max)
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Requests answered with a 5xx status.
fn server_errors(totals: &Totals) -> u64 {
    totals.status_codes.range(500..600).map(|(_, n)| n).sum()
}

/// The `q` quantile of a histogram's non-cumulative `buckets` (the last above every bound),
/// interpolated linearly within its bucket as Prometheus' `histogram_quantile` does; the
/// highest bound for values above it; `None` without values.
pub(crate) fn quantile(q: f64, bounds: &[f64], buckets: &[u64]) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = bounds.get(i) else {
                return bounds.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
        below += n;
    }
    bounds.last().copied()
}

impl Sampler {
    pub(crate) fn new(stats: Arc<Stats>, prometheus: Option<Arc<PrometheusSink>>) -> Self {
        let interval = stats.interval();
        Sampler {
            capacity: samples_for(HISTORY_SPAN, interval, MAX_SAMPLES),
            route_capacity: samples_for(ROUTES_SPAN, interval, MAX_ROUTE_TICKS),
            stats,
            prometheus,
            in_flight: OnceLock::new(),
            started: SystemTime::now(),
            state: Mutex::default(),
        }
    }

    /// When the monitor was built.
    pub(crate) fn started(&self) -> SystemTime {
        self.started
    }

    /// How the sampler reads the requests in flight (set once the monitor exists).
    pub(crate) fn set_in_flight(&self, read: Box<dyn Fn() -> u64 + Send + Sync>) {
        let _ = self.in_flight.set(read);
    }

    /// The most bytes the rings hold: the samples, and the routes of the last minute (not
    /// counting the routes' names, shared with the histograms, and the one copy of the
    /// duration histogram's counts kept to take differences).
    pub(crate) fn memory_bound(&self) -> usize {
        let buckets = self
            .prometheus
            .as_ref()
            .map_or(0, |p| p.duration_bounds().len() + 1);
        let route = std::mem::size_of::<RouteDelta>() + buckets * 8;
        self.capacity * std::mem::size_of::<Sample>()
            + self.route_capacity * ROUTES_PER_INTERVAL * route
    }

    /// Takes a sample if the `/stats` window closed since the last one (run by the health
    /// thread after the stats ticker on every round; cheap when nothing closed).
    pub(crate) fn tick(&self) {
        let Some((from, to, totals)) = self.stats.closed_window() else {
            return;
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.last_window == Some(to) {
            return;
        }
        state.last_window = Some(to);
        let seconds = to
            .duration_since(from)
            .unwrap_or_default()
            .as_secs_f64()
            .max(1e-3);
        let mut percentiles = [f32::NAN; 3];
        if let Some(prometheus) = &self.prometheus {
            let bounds = prometheus.duration_bounds();
            let (overall, routes) = self.histogram_deltas(prometheus, &mut state);
            for (slot, q) in percentiles.iter_mut().zip([0.5, 0.9, 0.99]) {
                if let Some(v) = quantile(q, bounds, &overall) {
                    *slot = (v * 1000.0) as f32;
                }
            }
            if state.routes.len() == self.route_capacity {
                state.routes.pop_front();
            }
            state.routes.push_back(RouteTick { seconds, routes });
        }
        let now = Instant::now();
        if let Some(cpu) = self.stats.cpu_seconds_total() {
            if let Some((then, before)) = state.cpu {
                let wall = now.saturating_duration_since(then).as_secs_f64();
                if wall > 0.0 {
                    state.cpu_ratio = Some(((cpu - before) / wall).max(0.0));
                }
            }
            state.cpu = Some((now, cpu));
        }
        let in_flight = self.in_flight.get().map_or(0, |read| read());
        let sample = Sample {
            time_ms: unix_ms(to),
            seconds: seconds as f32,
            requests: u32::try_from(totals.total).unwrap_or(u32::MAX),
            errors: u32::try_from(server_errors(&totals)).unwrap_or(u32::MAX),
            p50: percentiles[0],
            p90: percentiles[1],
            p99: percentiles[2],
            in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
        };
        if state.samples.len() == self.capacity {
            state.samples.pop_front();
        }
        state.samples.push_back(sample);
    }

    /// The duration histograms' counts since the last sample: summed over every series, and
    /// per (method, route) for the busiest [`ROUTES_PER_INTERVAL`].
    fn histogram_deltas(
        &self,
        prometheus: &PrometheusSink,
        state: &mut State,
    ) -> (Vec<u64>, Vec<RouteDelta>) {
        let width = prometheus.duration_bounds().len() + 1;
        let mut overall = vec![0u64; width];
        let mut counts = Vec::with_capacity(width);
        let mut delta = vec![0u64; width];
        let previous = &mut state.previous;
        // One entry per series that moved, then merged per (method, route).
        let mut moved: Vec<RouteDelta> = Vec::new();
        prometheus.for_each_duration(|values, histogram| {
            histogram.read_counts(&mut counts);
            let key = Arc::as_ptr(histogram) as usize;
            let entry = previous
                .entry(key)
                .or_insert_with(|| (Arc::clone(histogram), vec![0; width].into()));
            let mut count = 0;
            for ((d, now), before) in delta.iter_mut().zip(&counts).zip(entry.1.iter()) {
                *d = now.saturating_sub(*before);
                count += *d;
            }
            entry.1.copy_from_slice(&counts);
            if count == 0 {
                return;
            }
            for (sum, d) in overall.iter_mut().zip(&delta) {
                *sum += d;
            }
            let (method, route, status) = match values {
                [method, route, status, ..] => (&**method, &**route, &**status),
                _ => ("", crate::OVERFLOW_ROUTE, ""),
            };
            let server_error = status.len() == 3 && status.starts_with('5');
            moved.push(RouteDelta {
                method: method.into(),
                route: route.into(),
                count,
                errors: if server_error { count } else { 0 },
                buckets: delta.as_slice().into(),
            });
        });
        moved.sort_unstable_by(|a, b| (&a.route, &a.method).cmp(&(&b.route, &b.method)));
        let mut routes: Vec<RouteDelta> = Vec::new();
        for series in moved {
            match routes.last_mut() {
                Some(last) if last.route == series.route && last.method == series.method => {
                    last.count += series.count;
                    last.errors += series.errors;
                    for (sum, d) in last.buckets.iter_mut().zip(series.buckets.iter()) {
                        *sum += d;
                    }
                }
                _ => routes.push(series),
            }
        }
        routes.sort_unstable_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.route.cmp(&b.route))
                .then_with(|| a.method.cmp(&b.method))
        });
        routes.truncate(ROUTES_PER_INTERVAL);
        (overall, routes)
    }

    /// CPU time over wall time of the last interval (1.0 is one core busy).
    pub(crate) fn cpu_ratio(&self) -> Option<f64> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cpu_ratio
    }

    /// The `history` block: one array per series, oldest first.
    pub(crate) fn history_json(&self) -> Value {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let number = |v: f32| {
            if v.is_finite() {
                json!((f64::from(v) * 1000.0).round() / 1000.0)
            } else {
                Value::Null
            }
        };
        let samples = &state.samples;
        let rate = |n: u32, s: &Sample| f64::from(n) / f64::from(s.seconds).max(1e-3);
        json!({
            "interval_in_millis": self.stats.interval().as_millis() as u64,
            "capacity": self.capacity,
            "time": samples.iter().map(|s| s.time_ms).collect::<Vec<_>>(),
            "requests": samples.iter().map(|s| s.requests).collect::<Vec<_>>(),
            "errors": samples.iter().map(|s| s.errors).collect::<Vec<_>>(),
            "requests_per_second": samples.iter().map(|s| number(rate(s.requests, s) as f32)).collect::<Vec<_>>(),
            "errors_per_second": samples.iter().map(|s| number(rate(s.errors, s) as f32)).collect::<Vec<_>>(),
            "p50_in_millis": samples.iter().map(|s| number(s.p50)).collect::<Vec<_>>(),
            "p90_in_millis": samples.iter().map(|s| number(s.p90)).collect::<Vec<_>>(),
            "p99_in_millis": samples.iter().map(|s| number(s.p99)).collect::<Vec<_>>(),
            "in_flight": samples.iter().map(|s| s.in_flight).collect::<Vec<_>>(),
        })
    }

    /// The figures of the last sample: `(requests per second, 5xx ratio)` (zeros before the
    /// first).
    pub(crate) fn latest_rates(&self) -> (f64, f64) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.samples.back().map_or((0.0, 0.0), |s| {
            let rate = f64::from(s.requests) / f64::from(s.seconds).max(1e-3);
            let ratio = if s.requests == 0 {
                0.0
            } else {
                f64::from(s.errors) / f64::from(s.requests)
            };
            (rate, ratio)
        })
    }

    /// The `routes` block: the busiest routes of the last minute.
    pub(crate) fn routes_json(&self) -> Value {
        let Some(prometheus) = &self.prometheus else {
            return json!({
                "span_in_millis": 0,
                "available": false,
                "reason": "the monitor has no Prometheus sink, whose histograms the table reads",
                "top": [],
            });
        };
        let bounds = prometheus.duration_bounds();
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let seconds: f64 = state.routes.iter().map(|t| t.seconds).sum();
        let mut merged: Vec<RouteDelta> = Vec::new();
        for tick in &state.routes {
            for route in &tick.routes {
                match merged
                    .iter_mut()
                    .find(|m| m.route == route.route && m.method == route.method)
                {
                    Some(m) => {
                        m.count += route.count;
                        m.errors += route.errors;
                        for (sum, d) in m.buckets.iter_mut().zip(route.buckets.iter()) {
                            *sum += d;
                        }
                    }
                    None => merged.push(route.clone()),
                }
            }
        }
        drop(state);
        merged.sort_unstable_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.route.cmp(&b.route))
                .then_with(|| a.method.cmp(&b.method))
        });
        let top: Vec<Value> = merged
            .iter()
            .take(ROUTES_SHOWN)
            .map(|r| {
                let p99 = quantile(0.99, bounds, &r.buckets).map(|v| (v * 1e6).round() / 1e3);
                json!({
                    "method": &*r.method,
                    "route": &*r.route,
                    "requests": r.count,
                    "requests_per_second": r.count as f64 / seconds.max(1e-3),
                    "error_ratio": r.errors as f64 / r.count.max(1) as f64,
                    "p99_in_millis": p99,
                })
            })
            .collect();
        json!({
            "span_in_millis": (seconds * 1000.0).round() as u64,
            "available": true,
            "top": top,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_their_bucket_like_prometheus() {
        let bounds = [0.1, 0.2, 0.4];
        // 10 values in (0, 0.1], 10 in (0.1, 0.2], none in (0.2, 0.4], 0 above.
        let buckets = [10, 10, 0, 0];
        assert_eq!(quantile(0.5, &bounds, &buckets), Some(0.1));
        let p90 = quantile(0.9, &bounds, &buckets).unwrap();
        assert!((p90 - 0.18).abs() < 1e-9, "{p90}");
        assert_eq!(quantile(0.5, &bounds, &[0, 0, 0, 0]), None);
        // Above every bound: the highest bound, as histogram_quantile answers.
        assert_eq!(quantile(0.99, &bounds, &[0, 0, 0, 5]), Some(0.4));
    }

    #[test]
    fn the_rings_cover_fifteen_minutes_and_one_minute_within_their_caps() {
        let five = Duration::from_secs(5);
        assert_eq!(samples_for(HISTORY_SPAN, five, MAX_SAMPLES), 180);
        assert_eq!(samples_for(ROUTES_SPAN, five, MAX_ROUTE_TICKS), 12);
        let fast = Duration::from_millis(100);
        assert_eq!(samples_for(HISTORY_SPAN, fast, MAX_SAMPLES), MAX_SAMPLES);
        assert_eq!(samples_for(ROUTES_SPAN, fast, MAX_ROUTE_TICKS), 60);
        assert_eq!(std::mem::size_of::<Sample>(), 40);
    }
}
