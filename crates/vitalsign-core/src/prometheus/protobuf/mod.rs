//! The Prometheus protobuf exposition format (feature `native-histograms`): length-delimited
//! `io.prometheus.client.MetricFamily` messages, encoded by prost from the structs of
//! [`proto`] (a hand-written mirror of Prometheus' `metrics.proto`, no protoc). `/metrics`
//! answers it when the scraper's `Accept` header prefers it
//! ([`ExpositionFormat::negotiate`](super::ExpositionFormat::negotiate)), as
//! Prometheus does when started with `--enable-feature=native-histograms`.
//!
//! It carries everything the text carries: the registry's counters and gauges and the
//! collectors' families are read back from the rendered text (HELP, TYPE, labels and
//! values, so both formats always agree), vitalsign's classic histograms too, and the duration
//! histogram's series get their native buckets beside their classic ones.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

use super::native::{NativeHistogram, NATIVE_SCHEMA, NATIVE_ZERO_THRESHOLD};
use super::text::render_labels;
use super::PrometheusSink;
use crate::Monitor;

pub(crate) mod proto; // the structs of `metrics.proto`, for prost

use proto::{
    Bucket, BucketSpan, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
    Value,
};

impl PrometheusSink {
    /// Renders the whole registry in the protobuf exposition format: length-delimited
    /// `MetricFamily` messages in family name order, the native histograms (when on) in the
    /// duration histogram's series beside their classic buckets.
    pub fn render_protobuf(&self) -> Vec<u8> {
        let text = self.render();
        let mut families = families_of(&text);
        if let Some(natives) = &self.natives {
            let all = natives.all();
            let by_labels: HashMap<&str, &Arc<NativeHistogram>> = all
                .iter()
                .map(|native| (native.labels.as_str(), native))
                .collect();
            if let Some(family) = families
                .iter_mut()
                .find(|f| f.name.as_deref() == Some(natives.name()))
            {
                for metric in &mut family.metric {
                    let labels = render_labels(metric.label.iter().map(|l| {
                        (
                            l.name.as_deref().unwrap_or_default(),
                            l.value.as_deref().unwrap_or_default(),
                        )
                    }));
                    if let (Some(native), Some(histogram)) =
                        (by_labels.get(labels.as_str()), metric.histogram.as_mut())
                    {
                        add_native(histogram, native);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(text.len());
        for family in &families {
            // Writing to a Vec cannot fail (it grows).
            let _ = family.encode_length_delimited(&mut out);
        }
        out
    }
}

/// Puts `native`'s buckets into `histogram`; the count and sum become the native ones, which
/// agree with its buckets (read together, after the classic ones).
fn add_native(histogram: &mut Histogram, native: &NativeHistogram) {
    let read = native.snapshot();
    histogram.sample_count = Some(read.count);
    histogram.sample_sum = Some(read.sum);
    histogram.schema = Some(NATIVE_SCHEMA);
    histogram.zero_threshold = Some(NATIVE_ZERO_THRESHOLD);
    histogram.zero_count = Some(read.zero_count);
    histogram.positive_span = read
        .spans
        .iter()
        .map(|&(offset, length)| BucketSpan {
            offset: Some(offset),
            length: Some(length),
        })
        .collect();
    if histogram.positive_span.is_empty() {
        // A native histogram without observations carries a no-op span, so that it does not
        // read as a classic one.
        histogram.positive_span.push(BucketSpan {
            offset: Some(0),
            length: Some(0),
        });
    }
    histogram.positive_delta = read.deltas;
}

/// The families of rendered exposition text (vitalsign's own text: `# HELP`, `# TYPE`, then
/// samples), in their order. Histogram and summary samples are grouped by label set.
pub(super) fn families_of(text: &str) -> Vec<MetricFamily> {
    let mut families: Vec<MetricFamily> = Vec::new();
    let mut kinds: Vec<MetricType> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let at = family_index(&mut families, &mut kinds, name);
            families[at].help = Some(unescape_help(help));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let at = family_index(&mut families, &mut kinds, name);
            kinds[at] = match kind.trim() {
                "counter" => MetricType::Counter,
                "gauge" => MetricType::Gauge,
                "histogram" => MetricType::Histogram,
                "summary" => MetricType::Summary,
                _ => MetricType::Untyped,
            };
            families[at].r#type = Some(kinds[at] as i32);
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some(sample) = parse_sample(line) else {
            continue;
        };
        // The family: the last one whose samples this name belongs to.
        let owner = (0..families.len()).rev().find(|&i| {
            let family = families[i].name.as_deref().unwrap_or_default();
            sample.name == family
                || (matches!(kinds[i], MetricType::Histogram | MetricType::Summary)
                    && sample
                        .name
                        .strip_prefix(family)
                        .is_some_and(|suffix| matches!(suffix, "_bucket" | "_sum" | "_count")))
        });
        let at = match owner {
            Some(at) => at,
            None => family_index(&mut families, &mut kinds, sample.name),
        };
        let suffix = &sample.name[families[at].name.as_deref().unwrap_or_default().len()..];
        add_sample(&mut families[at], kinds[at], suffix, sample);
    }
    families.retain(|f| !f.metric.is_empty());
    families
}

/// The index of family `name`, added (untyped) when new.
fn family_index(
    families: &mut Vec<MetricFamily>,
    kinds: &mut Vec<MetricType>,
    name: &str,
) -> usize {
    if let Some(at) = families
        .iter()
        .rposition(|f| f.name.as_deref() == Some(name))
    {
        return at;
    }
    families.push(MetricFamily {
        name: Some(name.to_owned()),
        help: None,
        r#type: Some(MetricType::Untyped as i32),
        metric: Vec::new(),
    });
    kinds.push(MetricType::Untyped);
    families.len() - 1
}

/// One sample line: name, labels (unescaped), value, optional timestamp.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        text => text.parse().ok(),
    }
}

fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let mut chars = inside.char_indices().peekable();
        let end = loop {
            // Skip separators.
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' || c == ' ' {
                    chars.next();
                } else {
                    break;
                }
            }
            let &(start, c) = chars.peek()?;
            if c == '}' {
                break start + 1;
            }
            let mut key_end = start;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    key_end = i;
                    break;
                }
            }
            let key = inside[start..key_end].trim().to_owned();
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()? {
                    (_, '"') => break,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            }
            labels.push((key, value));
        };
        rest = &inside[end..];
    }
    let mut words = rest.split_whitespace();
    let value = parse_value(words.next()?)?;
    let timestamp_ms = words.next().and_then(|t| t.parse().ok());
    Some(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

fn unescape_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn label_pairs(labels: &[(String, String)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(k, v)| LabelPair {
            name: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

fn same_labels(metric: &Metric, labels: &[(String, String)]) -> bool {
    metric.label.len() == labels.len()
        && metric.label.iter().zip(labels).all(|(pair, (k, v))| {
            pair.name.as_deref() == Some(k.as_str()) && pair.value.as_deref() == Some(v.as_str())
        })
}

fn add_sample(family: &mut MetricFamily, kind: MetricType, suffix: &str, mut sample: Sample<'_>) {
    let value = Some(sample.value);
    match kind {
        MetricType::Counter | MetricType::Gauge | MetricType::Untyped => {
            let mut metric = Metric {
                label: label_pairs(&sample.labels),
                timestamp_ms: sample.timestamp_ms,
                ..Metric::default()
            };
            match kind {
                MetricType::Counter => metric.counter = Some(Value { value }),
                MetricType::Gauge => metric.gauge = Some(Value { value }),
                _ => metric.untyped = Some(Value { value }),
            }
            family.metric.push(metric);
        }
        MetricType::Histogram | MetricType::Summary => {
            let special = if kind == MetricType::Histogram {
                "le"
            } else {
                "quantile"
            };
            let bound = sample
                .labels
                .iter()
                .position(|(k, _)| k == special)
                .map(|at| sample.labels.remove(at).1);
            let metric = match family
                .metric
                .iter()
                .rposition(|m| same_labels(m, &sample.labels))
            {
                Some(at) => &mut family.metric[at],
                None => {
                    let mut metric = Metric {
                        label: label_pairs(&sample.labels),
                        timestamp_ms: sample.timestamp_ms,
                        ..Metric::default()
                    };
                    if kind == MetricType::Histogram {
                        metric.histogram = Some(Histogram::default());
                    } else {
                        metric.summary = Some(Summary::default());
                    }
                    family.metric.push(metric);
                    family.metric.last_mut().unwrap_or_else(|| unreachable!())
                }
            };
            let count = (sample.value >= 0.0).then_some(sample.value as u64);
            if let Some(histogram) = &mut metric.histogram {
                match suffix {
                    "_sum" => histogram.sample_sum = value,
                    "_count" => histogram.sample_count = count,
                    "_bucket" => {
                        let upper = bound.as_deref().and_then(parse_value);
                        // The +Inf bucket is the count, which the message has already.
                        if let Some(upper) = upper.filter(|u| u.is_finite()) {
                            histogram.bucket.push(Bucket {
                                cumulative_count: count,
                                upper_bound: Some(upper),
                            });
                        }
                    }
                    _ => {}
                }
            } else if let Some(summary) = &mut metric.summary {
                match suffix {
                    "_sum" => summary.sample_sum = value,
                    "_count" => summary.sample_count = count,
                    _ => summary.quantile.push(Quantile {
                        quantile: bound.as_deref().and_then(parse_value),
                        value,
                    }),
                }
            }
        }
    }
}

impl Monitor {
    /// Renders `/metrics` in the Prometheus protobuf exposition format (content type
    /// [`PROTOBUF_CONTENT_TYPE`](crate::endpoint::PROTOBUF_CONTENT_TYPE)): what
    /// [`Monitor::render_metrics`] renders, plus the native histograms when
    /// [`MonitorBuilder::native_histograms`](crate::MonitorBuilder::native_histograms) is on.
    /// `None` without a Prometheus sink. For an application that serves `/metrics` itself and
    /// negotiates the format with its scraper.
    ///
    /// ```
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").native_histograms(true).build().unwrap();
    /// let bytes = monitor.render_metrics_protobuf().unwrap();
    /// // Length-delimited messages: the first byte is the first message's length.
    /// assert!(!bytes.is_empty() && usize::from(bytes[0]) < bytes.len());
    /// ```
    pub fn render_metrics_protobuf(&self) -> Option<Vec<u8>> {
        self.prometheus().map(PrometheusSink::render_protobuf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(mut bytes: &[u8]) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            out.push(MetricFamily::decode_length_delimited(&mut bytes).unwrap());
        }
        out
    }

    #[test]
    fn accept_headers_choose_by_q_value() {
        let yes = [
            // Prometheus 2.42 with --enable-feature=native-histograms.
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
            "text/plain;q=0.5, application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.9",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,*/*;q=0.5",
        ];
        let no = [
            "",
            "text/plain;version=0.0.4",
            "*/*",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            // Preferred elsewhere.
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.4,application/openmetrics-text;q=0.8",
            // Refused, other messages or encodings.
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0",
            "application/vnd.google.protobuf;proto=io.prometheus.write.v2.Request",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=bogus",
        ];
        let wants_protobuf = |accept: Option<&[u8]>| {
            super::super::ExpositionFormat::negotiate(accept)
                == super::super::ExpositionFormat::Protobuf
        };
        for accept in yes {
            assert!(wants_protobuf(Some(accept.as_bytes())), "{accept}");
        }
        for accept in no {
            assert!(!wants_protobuf(Some(accept.as_bytes())), "{accept}");
        }
        assert!(!wants_protobuf(None));
        assert!(!wants_protobuf(Some(b"\xff\xfe")));
    }

    #[test]
    fn text_families_read_back_with_help_types_labels_and_buckets() {
        let text = "# HELP a_total Things \\\\ done\\nhere.\n# TYPE a_total counter\n\
                    a_total{k=\"v \\\"q\\\" \\\\ \\n\",z=\"1\"} 3\na_total 4\n\n\
                    # TYPE g gauge\ng{x=\"y\"} -1.5\n\n\
                    # HELP h Latency.\n# TYPE h histogram\n\
                    h_bucket{r=\"/\",le=\"0.1\"} 1\nh_bucket{r=\"/\",le=\"+Inf\"} 2\n\
                    h_sum{r=\"/\"} 0.35\nh_count{r=\"/\"} 2\n\
                    h_bucket{r=\"/a\",le=\"0.1\"} 0\nh_bucket{r=\"/a\",le=\"+Inf\"} 1\n\
                    h_sum{r=\"/a\"} 7\nh_count{r=\"/a\"} 1\n\n\
                    # TYPE s summary\ns{quantile=\"0.5\"} 2\ns_sum 10\ns_count 4\n\n\
                    bare 1 1700000000000\n";
        let families = families_of(text);
        let names: Vec<_> = families.iter().map(|f| f.name.clone().unwrap()).collect();
        assert_eq!(names, ["a_total", "g", "h", "s", "bare"]);
        let a = &families[0];
        assert_eq!(a.help.as_deref(), Some("Things \\ done\nhere."));
        assert_eq!(a.r#type, Some(MetricType::Counter as i32));
        assert_eq!(a.metric.len(), 2);
        assert_eq!(a.metric[0].label[0].value.as_deref(), Some("v \"q\" \\ \n"));
        assert_eq!(a.metric[0].counter.as_ref().unwrap().value, Some(3.0));
        assert_eq!(
            families[1].metric[0].gauge.as_ref().unwrap().value,
            Some(-1.5)
        );
        let h = &families[2];
        assert_eq!(h.metric.len(), 2);
        let first = h.metric[0].histogram.as_ref().unwrap();
        assert_eq!(
            (first.sample_count, first.sample_sum),
            (Some(2), Some(0.35))
        );
        assert_eq!(
            first.bucket,
            [Bucket {
                cumulative_count: Some(1),
                upper_bound: Some(0.1)
            }]
        );
        assert_eq!(h.metric[1].label[0].value.as_deref(), Some("/a"));
        let s = families[3].metric[0].summary.as_ref().unwrap();
        assert_eq!((s.sample_count, s.sample_sum), (Some(4), Some(10.0)));
        assert_eq!(s.quantile[0].quantile, Some(0.5));
        assert_eq!(families[4].r#type, Some(MetricType::Untyped as i32));
        assert_eq!(families[4].metric[0].timestamp_ms, Some(1_700_000_000_000));
    }

    /// The monitor's protobuf carries every family of its text, and the duration series get
    /// native buckets whose count and sum are the classic ones'.
    #[test]
    fn protobuf_carries_the_text_families_and_native_buckets() {
        use crate::{Method, RequestId, RequestPoint, Sink};
        let id = RequestId::generate();
        let monitor = Monitor::builder("shop")
            .global_label("region", "eu \"west\"")
            .native_histograms(true)
            .build()
            .unwrap();
        let sink = monitor.prometheus().unwrap();
        for seconds in [0.0, 0.003, 0.003, 0.02, 0.25] {
            let mut point = RequestPoint::new("shop", "/users/{id}", Method::Get, 200, &id);
            point.execution_time = seconds;
            sink.record_request(&point);
        }
        let text = sink.render();
        let families = decode(&sink.render_protobuf());
        let names: Vec<&str> = families.iter().filter_map(|f| f.name.as_deref()).collect();
        for name in families_of(&text).iter().filter_map(|f| f.name.as_deref()) {
            assert!(names.contains(&name), "{name} missing in {names:?}");
        }
        let duration = families
            .iter()
            .find(|f| f.name.as_deref() == Some(super::super::REQUEST_DURATION))
            .unwrap();
        let histogram = duration.metric[0].histogram.as_ref().unwrap();
        assert_eq!(histogram.sample_count, Some(5));
        assert!((histogram.sample_sum.unwrap() - 0.276).abs() < 1e-12);
        assert_eq!(histogram.schema, Some(3));
        assert_eq!(histogram.zero_count, Some(1));
        assert!(!histogram.bucket.is_empty(), "classic buckets kept");
        let buckets: i64 = histogram
            .positive_delta
            .iter()
            .scan(0, |count, delta| {
                *count += delta;
                Some(*count)
            })
            .sum();
        assert_eq!(buckets, 4);
        let labels: Vec<(&str, &str)> = duration.metric[0]
            .label
            .iter()
            .map(|l| (l.name.as_deref().unwrap(), l.value.as_deref().unwrap()))
            .collect();
        assert!(labels.contains(&("region", "eu \"west\"")), "{labels:?}");
        assert!(
            labels.contains(&("http_route", "/users/{id}")),
            "{labels:?}"
        );
    }

    /// Past the cap on label sets, the overflow series has its native buckets too: every
    /// duration series carries a native histogram, and their counts add up to every request.
    #[test]
    fn the_overflow_series_has_native_buckets() {
        use crate::{Method, RequestId, RequestPoint, Sink};
        let id = RequestId::generate();
        let monitor = Monitor::builder("shop")
            .max_label_sets(2)
            .native_histograms(true)
            .build()
            .unwrap();
        let sink = monitor.prometheus().unwrap();
        for route in ["/a", "/b", "/c", "/d", "/a"] {
            let mut point = RequestPoint::new("shop", route, Method::Get, 200, &id);
            point.execution_time = 0.01;
            sink.record_request(&point);
        }
        let families = decode(&sink.render_protobuf());
        let duration = families
            .iter()
            .find(|f| f.name.as_deref() == Some(super::super::REQUEST_DURATION))
            .unwrap();
        assert_eq!(duration.metric.len(), 3, "/a, /b and the overflow series");
        let mut total = 0;
        for metric in &duration.metric {
            let histogram = metric.histogram.as_ref().unwrap();
            assert_eq!(histogram.schema, Some(3), "{:?}", metric.label);
            total += histogram.sample_count.unwrap();
        }
        assert_eq!(total, 5);
        let overflow = duration
            .metric
            .iter()
            .find(|m| {
                m.label
                    .iter()
                    .any(|l| l.name.as_deref() == Some("otel_metric_overflow"))
            })
            .unwrap();
        assert_eq!(overflow.histogram.as_ref().unwrap().sample_count, Some(2));
    }

    /// Without the option, the protobuf holds the classic buckets only.
    #[test]
    fn without_the_option_no_native_buckets() {
        use crate::{Method, RequestId, RequestPoint, Sink};
        let id = RequestId::generate();
        let monitor = Monitor::builder("shop").build().unwrap();
        let sink = monitor.prometheus().unwrap();
        let mut point = RequestPoint::new("shop", "/", Method::Get, 200, &id);
        point.execution_time = 0.01;
        sink.record_request(&point);
        let families = decode(&sink.render_protobuf());
        let duration = families
            .iter()
            .find(|f| f.name.as_deref() == Some(super::super::REQUEST_DURATION))
            .unwrap();
        let histogram = duration.metric[0].histogram.as_ref().unwrap();
        assert_eq!((histogram.schema, histogram.sample_count), (None, Some(1)));
        assert!(histogram.positive_span.is_empty());
    }
}
