//! The series of one metric: one handle per label set in a bounded interner, up to the cap,
//! then one overflow series labelled `otel_metric_overflow="true"`.

use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;
use metrics::KeyName;

use super::OVERFLOW_LABEL;
use crate::interner::{Cap, Interner, Kind, Probe};

/// A label set's values, in the order of the metric's label names.
type LabelValues = Box<[Box<str>]>;

/// Handles of one metric, one per label set, at most `cap` of them plus the overflow series;
/// with a cache of entries `E` in front when built `cached`.
pub(super) struct Series<H, E = ()> {
    pub(super) name: KeyName,
    pub(super) label_names: Vec<String>,
    handles: Interner<LabelValues, H, E>,
}

/// Borrowed label values that hash and compare like the owned key.
struct LabelsRef<'a>(&'a [&'a str]);

impl Hash for LabelsRef<'_> {
    fn hash<S: Hasher>(&self, state: &mut S) {
        // `[&str]` and `[Box<str>]` hash identically (length, then each `str`).
        self.0.hash(state);
    }
}

impl Equivalent<LabelValues> for LabelsRef<'_> {
    fn equivalent(&self, key: &LabelValues) -> bool {
        self.0.len() == key.len() && self.0.iter().zip(key.iter()).all(|(a, b)| *a == &**b)
    }
}

impl<H, E> Series<H, E> {
    pub(super) fn new(name: KeyName, label_names: Vec<String>, cap: usize, cached: bool) -> Self {
        let (label, value) = OVERFLOW_LABEL;
        let cap = Cap::new(
            cap,
            format!("label sets of {}", name.as_str()),
            format!("the series {label}=\"{value}\""),
        );
        Series {
            name,
            label_names,
            handles: Interner::new(cap, cached),
        }
    }

    /// Distinct label sets (the overflow series not included).
    pub(super) fn len(&self) -> usize {
        self.handles.len()
    }

    /// Every handle, the overflow series last.
    pub(super) fn all(&self) -> Vec<H>
    where
        H: Clone,
    {
        self.handles.values()
    }

    /// Calls `f` with every label set's values (empty for the overflow series) and handle.
    #[cfg(feature = "status")]
    pub(super) fn for_each(&self, mut f: impl FnMut(&[Box<str>], &H)) {
        self.handles.for_each(|values, handle| f(values, handle));
    }

    /// Looks a request's shape up in the cache in front (see [`Interner::probe`]).
    #[inline]
    pub(super) fn probe(&self, shape: impl Hash, matches: impl FnMut(&E) -> bool) -> Probe<'_, E> {
        self.handles.probe(shape, matches)
    }

    /// Calls `f` with the handle of the label set `values`: registered on first sight by
    /// `register` with its labels (the label names paired with `values`, or, past the cap, the
    /// overflow label).
    pub(super) fn with<R>(
        &self,
        values: &[&str],
        register: impl FnOnce(&[(&str, &str)]) -> H,
        f: impl FnOnce(&H) -> R,
    ) -> R {
        let make = |kind| match kind {
            Kind::Regular => {
                let names = self.label_names.iter().map(String::as_str);
                let labels: Vec<(&str, &str)> = names.zip(values.iter().copied()).collect();
                (
                    values.iter().map(|v| Box::from(*v)).collect(),
                    register(&labels),
                )
            }
            Kind::Overflow => (LabelValues::default(), register(&[OVERFLOW_LABEL])),
        };
        // The overflow series is filed under no values, which no label set has.
        self.handles
            .with(&LabelsRef(values), &LabelsRef(&[]), make, |h, _| f(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn borrowed_and_owned_keys_hash_alike() {
        let state = hashbrown::DefaultHashBuilder::default();
        let owned: Box<[Box<str>]> = vec!["GET".into(), "/users/{id}".into(), "200".into()].into();
        let borrowed = ["GET", "/users/{id}", "200"];
        assert_eq!(state.hash_one(&owned), state.hash_one(LabelsRef(&borrowed)));
        assert!(LabelsRef(&borrowed).equivalent(&owned));
        assert!(!LabelsRef(&borrowed[..2]).equivalent(&owned));
    }

    #[test]
    fn bounded_series_overflows_into_one_handle() {
        let series: Series<u32> = Series::new("m".into(), vec!["l".into()], 2, false);
        let mut next = 0;
        let mut seen = Vec::new();
        let mut labels = Vec::new();
        for v in ["a", "b", "c", "d", "a"] {
            series.with(
                &[v],
                |pairs| {
                    labels.push(format!("{pairs:?}"));
                    next += 1;
                    if pairs == [OVERFLOW_LABEL] {
                        99
                    } else {
                        next
                    }
                },
                |h| seen.push(*h),
            );
        }
        assert_eq!(seen, vec![1, 2, 99, 99, 1]);
        assert_eq!(series.len(), 2);
        assert_eq!(
            labels,
            [
                r#"[("l", "a")]"#,
                r#"[("l", "b")]"#,
                r#"[("otel_metric_overflow", "true")]"#
            ]
        );
        assert_eq!(series.all().last(), Some(&99));
    }
}
