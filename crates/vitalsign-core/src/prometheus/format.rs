//! Exposition formats of `/metrics` and their negotiation: the classic Prometheus text format
//! (the default, unchanged) and OpenMetrics 1.0 text, which carries the duration histogram's
//! exemplars.
//!
//! ```
//! use vitalsign_core::prometheus::ExpositionFormat;
//!
//! // What Prometheus sends when it may use OpenMetrics.
//! let accept = b"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
//! assert_eq!(ExpositionFormat::negotiate(Some(accept)), ExpositionFormat::OpenMetrics);
//! assert_eq!(ExpositionFormat::negotiate(Some(b"text/plain")), ExpositionFormat::Text);
//! assert_eq!(ExpositionFormat::negotiate(None), ExpositionFormat::Text);
//! // q-values are honoured: here the client prefers the classic format.
//! let accept = b"application/openmetrics-text;q=0.2, text/plain;q=0.9";
//! assert_eq!(ExpositionFormat::negotiate(Some(accept)), ExpositionFormat::Text);
//! ```

use std::fmt::Write;

/// `Content-Type` of the OpenMetrics 1.0 text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A format `/metrics` can answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ExpositionFormat {
    /// The classic Prometheus text format (version 0.0.4): what `/metrics` answers unless the
    /// client asks for another. It carries no exemplars.
    #[default]
    Text,
    /// OpenMetrics 1.0 text: counters named without `_total` in their metadata, `# EOF` at the
    /// end, and the duration histogram's exemplars on its bucket lines.
    OpenMetrics,
    /// The Prometheus protobuf exposition format (length-delimited
    /// `io.prometheus.client.MetricFamily` messages), which carries native histograms
    /// ([`MonitorBuilder::native_histograms`](crate::MonitorBuilder::native_histograms)) beside
    /// the classic buckets. With the feature `native-histograms`.
    #[cfg(feature = "native-histograms")]
    Protobuf,
}

impl ExpositionFormat {
    /// The format an `Accept` header value asks for: the media range with the highest
    /// q-value that names a format vitalsign renders (`text/plain` of version 0.0.4 or 1.0.0,
    /// `application/openmetrics-text` of version 1.0.0 or 0.0.1, and with the feature
    /// `native-histograms` `application/vnd.google.protobuf` of
    /// `proto=io.prometheus.client.MetricFamily` and `encoding=delimited`); on a tie, the
    /// format later in this enum (protobuf over OpenMetrics over the classic text). Wildcards (`*/*`, `text/*`) and no
    /// header at all mean the classic text, as does a header that names nothing known; a
    /// media range whose q-value does not parse is ignored.
    pub fn negotiate(accept: Option<&[u8]>) -> ExpositionFormat {
        let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
            return ExpositionFormat::Text;
        };
        let mut best = (ExpositionFormat::Text, 0.0f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let mut q = 1.0f32;
            let mut version = None;
            let mut proto = None;
            let mut encoding = None;
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.parse().map_or(0.0, |q: f32| q.clamp(0.0, 1.0)),
                    "version" => version = Some(value),
                    "proto" => proto = Some(value),
                    "encoding" => encoding = Some(value),
                    _ => {}
                }
            }
            let Some(format) = Self::of_media_range(media, version, proto, encoding) else {
                continue;
            };
            if q > 0.0 && (q > best.1 || (q == best.1 && format.rank() > best.0.rank())) {
                best = (format, q);
            }
        }
        best.0
    }

    /// The format a media range (and its `version`, `proto` and `encoding` parameters) names,
    /// if vitalsign renders it.
    fn of_media_range(
        media: &str,
        version: Option<&str>,
        proto: Option<&str>,
        encoding: Option<&str>,
    ) -> Option<ExpositionFormat> {
        #[cfg(feature = "native-histograms")]
        if media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
            return (proto.is_none_or(|p| p == "io.prometheus.client.MetricFamily")
                && encoding.is_none_or(|e| e == "delimited"))
            .then_some(ExpositionFormat::Protobuf);
        }
        #[cfg(not(feature = "native-histograms"))]
        let _ = (proto, encoding);
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            return matches!(version, None | Some("1.0.0") | Some("0.0.1"))
                .then_some(ExpositionFormat::OpenMetrics);
        }
        let text = media.eq_ignore_ascii_case("text/plain")
            || media.eq_ignore_ascii_case("text/*")
            || media == "*/*";
        // Text 1.0.0 (Prometheus 3) is 0.0.4 with UTF-8 names allowed: vitalsign's text is both.
        (text && matches!(version, None | Some("0.0.4") | Some("1.0.0")))
            .then_some(ExpositionFormat::Text)
    }

    /// Preference on equal q-values: the richer format.
    fn rank(self) -> u8 {
        match self {
            ExpositionFormat::Text => 0,
            ExpositionFormat::OpenMetrics => 1,
            #[cfg(feature = "native-histograms")]
            ExpositionFormat::Protobuf => 2,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExpositionFormat::Text => crate::endpoint::PROMETHEUS_CONTENT_TYPE,
            ExpositionFormat::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            #[cfg(feature = "native-histograms")]
            ExpositionFormat::Protobuf => crate::endpoint::PROTOBUF_CONTENT_TYPE,
        }
    }
}

/// Rewrites classic exposition text (families separated by blank lines, as the sink renders
/// them, histogram bucket lines possibly ending with an exemplar) as OpenMetrics text.
pub(super) fn to_openmetrics(classic: &str) -> String {
    let mut out = String::with_capacity(classic.len() + classic.len() / 8 + 8);
    for block in super::text::blocks(classic) {
        let typed = block.lines().find_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split(' ');
            Some((words.next()?, words.next()?))
        });
        let (name, kind) = typed.unwrap_or(("", "untyped"));
        // OpenMetrics names a counter family without the `_total` its samples carry; a counter
        // whose samples lack it is `unknown` (renaming its samples would make new series).
        let (family, kind) = match kind {
            "counter" => match name.strip_suffix("_total") {
                Some(family) => (family, "counter"),
                None => (name, "unknown"),
            },
            "untyped" => (name, "unknown"),
            kind => (name, kind),
        };
        for line in block.lines().filter(|line| !line.is_empty()) {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let text = help.split_once(' ').map_or("", |(_, text)| text);
                let _ = write!(out, "# HELP {family} ");
                // The classic format escapes `\` and newlines; OpenMetrics quotes too.
                for c in text.chars() {
                    if c == '"' {
                        out.push_str("\\\"");
                    } else {
                        out.push(c);
                    }
                }
                out.push('\n');
            } else if line.starts_with("# TYPE ") {
                let _ = writeln!(out, "# TYPE {family} {kind}");
            } else if !line.starts_with('#') {
                // Samples as they are (other comments have no place in OpenMetrics): names,
                // label sets and values read the same in both formats, `le` and `quantile`
                // values included (as in the classic text, so that a Prometheus that
                // switches formats keeps the same series).
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_honours_q_values() {
        let negotiate = |accept: &str| ExpositionFormat::negotiate(Some(accept.as_bytes()));
        use ExpositionFormat::{OpenMetrics, Text};
        for (accept, expected) in [
            ("application/openmetrics-text", OpenMetrics),
            ("Application/OpenMetrics-Text; version=1.0.0; charset=utf-8", OpenMetrics),
            ("application/openmetrics-text;version=0.0.1", OpenMetrics),
            // A version vitalsign does not render is not chosen.
            ("application/openmetrics-text;version=2.0.0", Text),
            ("text/plain;version=0.0.4", Text),
            ("*/*", Text),
            ("", Text),
            ("application/json", Text),
            // Prometheus 2.x and 3.x scrape headers.
            (
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                OpenMetrics,
            ),
            (
                "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.6,*/*;q=0.1",
                OpenMetrics,
            ),
            ("application/openmetrics-text;q=0.3,text/plain;q=0.7", Text),
            // Prometheus 3 preferring its text format 1.0.0 (escaping parameters ignored).
            (
                "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5",
                Text,
            ),
            (
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=1.0.0;q=0.5",
                OpenMetrics,
            ),
            ("text/plain;q=0.7, application/openmetrics-text;q=0.8", OpenMetrics),
            // q=0 refuses; a tie goes to OpenMetrics; a range with a broken q-value is ignored.
            ("application/openmetrics-text;q=0", Text),
            ("text/plain, application/openmetrics-text", OpenMetrics),
            ("application/openmetrics-text;q=x", Text),
            ("application/openmetrics-text;q=0.1,*/*;q=0.9", Text),
        ] {
            assert_eq!(negotiate(accept), expected, "{accept}");
        }
        assert_eq!(ExpositionFormat::negotiate(Some(&[0xff, 0xfe])), Text);
    }

    #[test]
    fn classic_text_becomes_openmetrics() {
        let classic = "# HELP a_total Things \"done\" \\\\ here.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\n\
            # TYPE b counter\nb 4\n\n\
            # HELP h Latency.\n# TYPE h histogram\nh_bucket{k=\"le=\\\"1\\\"\",le=\"1\"} 1 # {trace_id=\"ab\",span_id=\"cd\"} 0.5 1.000\nh_bucket{le=\"2.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n\n\
            # TYPE s summary\ns{quantile=\"0\"} 1\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n\n\
            # TYPE u untyped\nu 1\n\n";
        assert_eq!(
            to_openmetrics(classic),
            "# HELP a Things \\\"done\\\" \\\\ here.\n# TYPE a counter\na_total{x=\"1\"} 3\n\
             # TYPE b unknown\nb 4\n\
             # HELP h Latency.\n# TYPE h histogram\nh_bucket{k=\"le=\\\"1\\\"\",le=\"1\"} 1 # {trace_id=\"ab\",span_id=\"cd\"} 0.5 1.000\nh_bucket{le=\"2.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n\
             # TYPE s summary\ns{quantile=\"0\"} 1\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n\
             # TYPE u unknown\nu 1\n# EOF\n"
        );
        assert_eq!(to_openmetrics(""), "# EOF\n");
    }
}
