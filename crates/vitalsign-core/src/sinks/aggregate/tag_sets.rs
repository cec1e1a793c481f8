//! The tag sets an aggregator has seen: an interner of cells keyed by sorted tag sets, capped,
//! fronted by a write-once lock-free cache of point shapes (handler tags in the order given).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::cell::Cell;
use super::OVERFLOW_TAG;
use crate::interner::{Cap, Interner, Kind, Probe};
use crate::{Method, RequestPoint, Tag};

/// Handler tags a point may carry for its tag set to be looked up without allocating; a point
/// with more is looked up through an owned copy of its tag set.
pub(super) const STACK_TAGS: usize = 16;

/// The tag sets seen: a lock-free cache in front of a bounded map (the authority), as the
/// Prometheus sink keeps its series.
pub(super) struct TagSets {
    /// Keyed by the series and the sorted tag set, flattened: `[series, k1, v1, k2, v2, …]`;
    /// past the cap, one overflow cell per series; cached by the point's own shape.
    sets: Interner<Key, Arc<Cell>, Box<Shape>>,
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
    pub(super) fn new(cap: usize) -> Self {
        let (tag, value) = OVERFLOW_TAG;
        let cap = Cap::new(
            cap,
            "tag sets of the period aggregator",
            format!("the tag set {tag}=\"{value}\""),
        );
        TagSets {
            sets: Interner::new(cap, true),
        }
    }

    /// Tag sets, the overflow ones included.
    pub(super) fn len(&self) -> usize {
        self.sets.total_len()
    }

    /// Whether a tag set went to the overflow tag set.
    #[cfg(test)]
    pub(super) fn overflowed(&self) -> bool {
        self.sets.overflowed()
    }

    /// Every cell, for the emitter.
    pub(super) fn cells(&self) -> Vec<Arc<Cell>> {
        self.sets.values()
    }

    /// Calls `f` with the cell of the point's tag set: from the cache, or (first sight of this
    /// shape, or past the cache) from the map, which registers it (or the overflow cell) on
    /// first sight and then offers it to the cache.
    pub(super) fn with_cell(
        &self,
        point: &RequestPoint<'_>,
        error_code: Option<&str>,
        f: impl FnOnce(&Cell),
    ) {
        let shape = (
            point.method,
            point.status_code,
            point.route,
            error_code,
            RawTags(point.tags),
        );
        let miss = match self.sets.probe(shape, |s| s.matches(point, error_code)) {
            Probe::Hit(_, shape) => return f(&shape.cell),
            Probe::Miss(miss) => miss,
        };
        let cell = self.lookup(point, error_code);
        f(&cell);
        // When every probed slot is taken the shape is not cached; the map stays the authority.
        miss.offer(|| {
            Box::new(Shape {
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
            })
        });
    }

    /// The cell of the point's tag set from the map. The tag set is laid out on the stack
    /// (points with more than [`STACK_TAGS`] handler tags: in an owned copy).
    fn lookup(&self, point: &RequestPoint<'_>, error_code: Option<&str>) -> Arc<Cell> {
        let series = series_of(error_code);
        if point.tags.len() > STACK_TAGS {
            let tags = crate::sinks::tag_set(point, error_code);
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
        let make = |kind| {
            let (parts, pairs) = match kind {
                Kind::Regular => (parts, pairs),
                Kind::Overflow => (&overflow[..], &[OVERFLOW_TAG, ("service", service)][..]),
            };
            let tags = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let key = Key(parts.iter().map(|p| Box::from(*p)).collect());
            (key, Arc::new(Cell::new(series, tags)))
        };
        self.sets.get(&KeyRef(parts), &KeyRef(&overflow), make).0
    }
}

fn series_of(error_code: Option<&str>) -> &'static str {
    if error_code.is_some() {
        "errors"
    } else {
        "requests"
    }
}

/// The point's tag set as [`crate::sinks::tag_set`] makes it (sorted by key; handler tags never
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
