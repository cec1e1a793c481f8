//! Prometheus native histograms of the request duration (feature `native-histograms`, opt-in
//! per monitor with [`MonitorBuilder::native_histograms`](crate::MonitorBuilder::native_histograms)),
//! kept beside the classic buckets and served in the protobuf exposition format.
//!
//! # Layout
//!
//! - **Schema 3**: each power of two is split into 2³ = 8 exponential buckets, so a bucket's
//!   upper bound is its lower bound times 2^(1/8) ≈ 1.0905. A quantile that
//!   `histogram_quantile` estimates lies in the same bucket as the true one: its relative
//!   error is at most 2^(1/8) − 1 ≈ 9.05 % ([`NATIVE_MAX_RELATIVE_ERROR`]), about 4.4 % from
//!   the bucket's middle. Schema 4 would halve that and double the memory; schema 2 the
//!   reverse. Schema 3 is what Prometheus' Go client picks for its default bucket factor 1.1.
//! - **Zero bucket**: durations up to [`NATIVE_ZERO_THRESHOLD`] = 2⁻²⁰ s ≈ 0.95 µs (a
//!   bucket boundary of every schema) count in the zero bucket: below a microsecond, a
//!   request's duration is noise of the clock.
//! - **Bounded buckets**: [`NATIVE_MAX_BUCKETS`] = 256 buckets cover every duration from the
//!   zero threshold up to 2¹² s = 4096 s (68 minutes): indices −159 to 96, in 8 chunks of 32
//!   (4 powers of two each: …, 3.9 ms to 62.5 ms, 62.5 ms to 1 s, 1 s to 16 s, …), a chunk
//!   allocated the first time a duration falls into it. A longer duration is **clamped** into
//!   the last bucket, (2^(95/8), 4096] s (its sum stays exact, so `histogram_sum` and
//!   `histogram_count` are right; only its quantile reads 68 minutes at most). The resolution
//!   never changes, so the layout needs no lock.
//!
//! # Cost
//!
//! Recording is two atomic operations beside the classic histogram's (one addition to the
//! bucket, one compare-and-swap loop on the sum), an atomic load for the chunk, a few integer
//! instructions for the index (no logarithm: the float's exponent and a search among eight
//! mantissa bounds), no lock and no allocation once the chunk exists. Memory per series: about
//! 190 bytes (8 chunk slots of 16 bytes, the zero bucket, the sum, the labels' handle) plus
//! 256 bytes per chunk in use: **0.7 KiB** for durations between 3.9 ms and 1 s, **2.2 KiB at
//! most** (every chunk). The classic histogram of the default 14 buckets takes about 120
//! bytes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use metrics::KeyName;

use super::series::Series;
use super::text::render_labels;
use super::OVERFLOW_LABEL;

/// The schema of vitalsign's native histograms: 8 buckets per power of two.
pub const NATIVE_SCHEMA: i32 = 3;

/// The zero bucket's threshold, in seconds: 2⁻²⁰ s ≈ 0.95 µs. Durations up to it count in the
/// zero bucket.
pub const NATIVE_ZERO_THRESHOLD: f64 = 1.0 / (1u64 << 20) as f64;

/// Buckets of a native histogram at most (in chunks of 32, allocated on first use): from just
/// above the zero threshold up to 4096 seconds. Longer durations are clamped into the last
/// bucket.
pub const NATIVE_MAX_BUCKETS: usize = (MAX_INDEX - MIN_INDEX + 1) as usize;

/// The worst relative error of a quantile read from a native histogram: a bucket's width
/// relative to its lower bound, 2^(1/8) − 1.
pub const NATIVE_MAX_RELATIVE_ERROR: f64 = 0.090_507_732_665_257_66;

/// Index of the first bucket above the zero bucket: (2^(-160/8), 2^(-159/8)].
const MIN_INDEX: i32 = -(20 << NATIVE_SCHEMA) + 1;
/// Index of the last bucket: (2^(95/8), 2^(96/8)] = (…, 4096].
const MAX_INDEX: i32 = 12 << NATIVE_SCHEMA;

/// Lower bounds of the 8 buckets within one power of two, as mantissas in `[0.5, 1)`:
/// 2^(k/8 − 1) for k = 0..8 (the table of Prometheus' Go client for schema 3).
const MANTISSA_BOUNDS: [f64; 8] = [
    0.5,
    0.545_253_866_332_628_8,
    0.594_603_557_501_360_5,
    0.648_419_777_325_504_8,
    std::f64::consts::FRAC_1_SQRT_2,
    0.771_105_412_703_970_4,
    0.840_896_415_253_714_6,
    0.917_004_043_204_671_1,
];

/// The native bucket index of `value` (bucket `i` holds values in (2^((i−1)/8), 2^(i/8)]),
/// clamped to the last bucket; `None` for the zero bucket (values up to the zero threshold,
/// negative values and NaN).
#[inline]
pub(crate) fn bucket_index(value: f64) -> Option<i32> {
    // Written so that NaN goes to the zero bucket.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(value > NATIVE_ZERO_THRESHOLD) {
        return None;
    }
    if value >= f64::MAX {
        return Some(MAX_INDEX);
    }
    // value = mantissa × 2^exponent with the mantissa in [0.5, 1) (C's frexp); `value` is
    // normal here (above 2⁻²⁰).
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let mantissa = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1022u64 << 52));
    // The first bound at or above the mantissa: a value on a bound belongs to the bucket it
    // closes.
    let within = MANTISSA_BOUNDS.partition_point(|bound| *bound < mantissa) as i32;
    let index = within + ((exponent - 1) << NATIVE_SCHEMA);
    Some(index.min(MAX_INDEX))
}

/// The upper bound of native bucket `index`, in seconds.
#[cfg(test)]
fn upper_bound(index: i32) -> f64 {
    (f64::from(index) / f64::from(1 << NATIVE_SCHEMA)).exp2()
}

/// Buckets per chunk: 4 powers of two (e.g. 3.9 ms to 62.5 ms, 62.5 ms to 1 s).
const CHUNK: usize = 32;
/// Chunks of a histogram: 8, so 256 buckets at most.
const CHUNKS: usize = NATIVE_MAX_BUCKETS / CHUNK;

/// One chunk of buckets, allocated the first time a value falls into it.
type Chunk = OnceLock<Box<[AtomicU64; CHUNK]>>;

/// A native histogram of one series: atomic buckets in chunks of 32, recorded without lock or
/// allocation (but the first value of each chunk, at most 8 times in a series' life).
#[derive(Debug)]
pub(crate) struct NativeHistogram {
    /// Chunk `c`, bucket `b`: the count of bucket index `MIN_INDEX + c × 32 + b` (not
    /// cumulative).
    chunks: [Chunk; CHUNKS],
    zero: AtomicU64,
    sum_bits: AtomicU64,
    /// The series' labels rendered as the classic histogram's (`k="v",…`): the key that joins
    /// the two in the protobuf exposition.
    pub(super) labels: String,
}

/// What one read of a [`NativeHistogram`] gives, in the protobuf's shape.
#[derive(Debug, Default, PartialEq)]
pub(super) struct NativeSnapshot {
    /// Observations: the zero bucket's plus every bucket's, so always consistent with them.
    pub(super) count: u64,
    pub(super) sum: f64,
    pub(super) zero_count: u64,
    /// (offset, length): the first offset is the first bucket's index, the others the gap
    /// from the previous span's end.
    pub(super) spans: Vec<(i32, u32)>,
    /// Each populated bucket's count minus the previous one's (the first minus zero).
    pub(super) deltas: Vec<i64>,
}

impl NativeHistogram {
    pub(super) fn new(labels: String) -> Self {
        NativeHistogram {
            chunks: std::array::from_fn(|_| OnceLock::new()),
            zero: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
            labels,
        }
    }

    /// Records `value` (seconds).
    #[inline]
    pub(super) fn record(&self, value: f64) {
        match bucket_index(value) {
            None => self.zero.fetch_add(1, Relaxed),
            Some(index) => {
                let at = (index - MIN_INDEX) as usize;
                let chunk = self.chunks[at / CHUNK]
                    .get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
                chunk[at % CHUNK].fetch_add(1, Relaxed)
            }
        };
        let _ = self.sum_bits.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }

    /// Reads the histogram: populated buckets only, as spans and deltas.
    pub(super) fn snapshot(&self) -> NativeSnapshot {
        let mut out = NativeSnapshot {
            zero_count: self.zero.load(Relaxed),
            sum: f64::from_bits(self.sum_bits.load(Relaxed)),
            ..NativeSnapshot::default()
        };
        out.count = out.zero_count;
        let mut previous_count = 0i64;
        // Index just past the previous span's last bucket.
        let mut span_end: Option<i32> = None;
        let buckets = self
            .chunks
            .iter()
            .enumerate()
            .filter_map(|(c, chunk)| Some((c * CHUNK, chunk.get()?)))
            .flat_map(|(first, chunk)| (first..).zip(chunk.iter()));
        for (i, bucket) in buckets {
            let count = bucket.load(Relaxed);
            if count == 0 {
                continue;
            }
            let index = MIN_INDEX + i as i32;
            out.count += count;
            match (span_end, out.spans.last_mut()) {
                (Some(end), Some(span)) if end == index => span.1 += 1,
                (Some(end), _) => out.spans.push((index - end, 1)),
                (None, _) => out.spans.push((index, 1)),
            }
            span_end = Some(index + 1);
            let count = count as i64;
            out.deltas.push(count - previous_count);
            previous_count = count;
        }
        out
    }
}

/// The native histograms of the duration metric, one per label set of the classic family
/// (same label values, same cap).
pub(super) struct NativeFamily {
    series: Series<Arc<NativeHistogram>>,
    global: Vec<(String, String)>,
}

impl NativeFamily {
    pub(super) fn new(
        name: KeyName,
        label_names: Vec<String>,
        cap: usize,
        global: &[(String, String)],
    ) -> Self {
        NativeFamily {
            series: Series::new(name, label_names, cap, false),
            global: global.to_vec(),
        }
    }

    /// The native histogram of this label set, registered on first sight, or the overflow one
    /// when the classic histogram of this label set is the overflow one (`overflow`): the two
    /// families keep the same series whatever the order of concurrent first sights. So this
    /// family never holds more label sets than the classic one, and its own cap is never the
    /// one that overflows.
    pub(super) fn handle(&self, values: &[&str], overflow: bool) -> Arc<NativeHistogram> {
        // The overflow series is filed under no values (see `Series::with`).
        let values = if overflow { &[][..] } else { values };
        self.series.with(
            values,
            |labels| {
                let labels = if labels.is_empty() {
                    &[OVERFLOW_LABEL][..]
                } else {
                    labels
                };
                let global = self.global.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                Arc::new(NativeHistogram::new(render_labels(
                    labels.iter().copied().chain(global),
                )))
            },
            Arc::clone,
        )
    }

    /// The metric's name.
    pub(super) fn name(&self) -> &str {
        self.series.name.as_str()
    }

    /// Every series' histogram.
    pub(super) fn all(&self) -> Vec<Arc<NativeHistogram>> {
        self.series.all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mantissa_bounds_are_the_powers_of_two_to_the_eighth() {
        for (k, bound) in MANTISSA_BOUNDS.iter().enumerate() {
            let exact = (k as f64 / 8.0 - 1.0).exp2();
            assert!(
                (bound - exact).abs() <= f64::EPSILON,
                "{k}: {bound} {exact}"
            );
        }
        assert!((NATIVE_MAX_RELATIVE_ERROR - (0.125f64.exp2() - 1.0)).abs() < 1e-15);
        assert_eq!(NATIVE_ZERO_THRESHOLD, (-20f64).exp2());
        assert_eq!((MIN_INDEX, MAX_INDEX, NATIVE_MAX_BUCKETS), (-159, 96, 256));
    }

    /// A value on a bucket's upper bound belongs to that bucket; the next float above it to
    /// the next bucket.
    #[test]
    fn bucket_edges_are_upper_inclusive() {
        assert_eq!(bucket_index(1.0), Some(0));
        assert_eq!(bucket_index(2.0), Some(8));
        assert_eq!(bucket_index(0.5), Some(-8));
        assert_eq!(bucket_index(1.0f64.next_up()), Some(1));
        assert_eq!(bucket_index(1.0f64.next_down()), Some(0));
        assert_eq!(bucket_index(1.5), Some(5)); // (2^(4/8), 2^(5/8)] = (1.414, 1.542]
        for index in MIN_INDEX..=MAX_INDEX {
            let upper =
                MANTISSA_BOUNDS[index.rem_euclid(8) as usize] * 2f64.powi(index.div_euclid(8) + 1);
            assert!((upper - upper_bound(index)).abs() <= upper * 1e-15);
            assert_eq!(bucket_index(upper), Some(index), "upper bound of {index}");
            if index < MAX_INDEX {
                assert_eq!(bucket_index(upper.next_up()), Some(index + 1), "{index}");
            }
            let middle = upper / 2f64.powf(1.0 / 16.0);
            assert_eq!(bucket_index(middle), Some(index), "middle of {index}");
        }
    }

    #[test]
    fn zero_bucket_takes_sub_microsecond_negative_and_nan() {
        for value in [
            0.0,
            -0.0,
            -1.0,
            1e-9,
            5e-7,
            NATIVE_ZERO_THRESHOLD,
            f64::NAN,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(bucket_index(value), None, "{value}");
        }
        assert_eq!(
            bucket_index(NATIVE_ZERO_THRESHOLD.next_up()),
            Some(MIN_INDEX)
        );
        assert_eq!(bucket_index(1e-6), Some(MIN_INDEX)); // 1 µs: first bucket
    }

    #[test]
    fn durations_past_the_last_bucket_are_clamped() {
        assert_eq!(bucket_index(4096.0), Some(MAX_INDEX));
        for value in [4096.0f64.next_up(), 5000.0, 1e12, f64::MAX, f64::INFINITY] {
            assert_eq!(bucket_index(value), Some(MAX_INDEX), "{value}");
        }
        let histogram = NativeHistogram::new(String::new());
        histogram.record(1e6);
        assert_eq!(
            histogram
                .chunks
                .iter()
                .filter(|c| c.get().is_some())
                .count(),
            1
        );
        let read = histogram.snapshot();
        assert_eq!((read.count, read.sum), (1, 1e6));
        assert_eq!((read.spans, read.deltas), (vec![(MAX_INDEX, 1)], vec![1]));
    }

    #[test]
    fn snapshot_is_spans_and_deltas_of_populated_buckets() {
        let histogram = NativeHistogram::new(String::new());
        assert_eq!(histogram.snapshot(), NativeSnapshot::default());
        // Bucket 0 twice, 1 once, 3 three times, one zero.
        for value in [1.0, 0.95, 1.05, 1.25, 1.2, 1.2, 0.0] {
            histogram.record(value);
        }
        let read = histogram.snapshot();
        assert_eq!(read.zero_count, 1);
        assert_eq!(read.count, 7);
        assert!((read.sum - 6.65).abs() < 1e-12);
        assert_eq!(read.spans, vec![(0, 2), (1, 1)]);
        assert_eq!(read.deltas, vec![2, -1, 2]);
    }

    /// The memory figures of the module's docs: about 190 bytes a series (with its `Arc`'s
    /// two counters, labels aside), 256 more per chunk in use.
    #[test]
    fn memory_per_series() {
        let base = std::mem::size_of::<NativeHistogram>() + 16;
        assert!(base <= 192, "{base}");
        assert_eq!(std::mem::size_of::<[AtomicU64; CHUNK]>(), 256);
        // 3.9 ms to 1 s: two chunks.
        let at = |value: f64| (bucket_index(value).unwrap() - MIN_INDEX) as usize / CHUNK;
        assert_eq!(
            (at(0.0039063), at(0.0625), at(0.0625f64.next_up()), at(1.0)),
            (3, 3, 4, 4)
        );
        assert!(base + 2 * 256 <= 720, "{}", base + 2 * 256);
    }

    /// Buckets 0 and 1 are the last of one chunk and the first of the next; 1000 s is two
    /// chunks further, past one never allocated.
    #[test]
    fn spans_run_across_chunks_and_skip_unallocated_ones() {
        let histogram = NativeHistogram::new(String::new());
        for value in [1.0, 1.05, 1000.0] {
            histogram.record(value);
        }
        let at = |index: i32| (index - MIN_INDEX) as usize / CHUNK;
        assert_eq!((at(0), at(1), at(80)), (4, 5, 7));
        let allocated: Vec<bool> = histogram.chunks.iter().map(|c| c.get().is_some()).collect();
        assert_eq!(
            allocated,
            [false, false, false, false, true, true, false, true]
        );
        let read = histogram.snapshot();
        assert_eq!(read.spans, vec![(0, 2), (78, 1)]);
        assert_eq!(read.deltas, vec![1, 0, 0]);
        assert_eq!(read.count, 3);
    }
}
