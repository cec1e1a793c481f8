//! The aggregator's tests: exactly one aggregate per tag set and period, concurrent writers
//! against the emitter, the cap of tag sets, tag sets whatever the order of handler tags.

use super::tag_sets::STACK_TAGS;
use super::*;
use crate::RequestId;
use crate::Tag;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
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
        trace: None,
        execution_time,
        start_unix_nanos,
        disconnected: false,
        head_time: None,
        response_body_bytes: 0,
        request_body_bytes: 0,
        tags,
        fields: &[],
        #[cfg(feature = "rpc")]
        rpc: None,
        route_key: None,
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
            assert!(aggregator.tag_sets.overflowed());
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
