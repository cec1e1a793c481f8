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
}

impl ExpositionFormat {
    /// The format an `Accept` header value asks for: the media range with the highest
    /// q-value that names a format vitalsign renders (`text/plain`,
    /// `application/openmetrics-text` of version 1.0.0 or 0.0.1); on a tie, the format later
    /// in this enum (OpenMetrics over the classic text). Wildcards (`*/*`, `text/*`) and no
    /// header at all mean the classic text, as does a header that names nothing known.
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
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.parse().map_or(0.0, |q: f32| q.clamp(0.0, 1.0)),
                    "version" => version = Some(value),
                    _ => {}
                }
            }
            let Some(format) = Self::of_media_range(media, version) else {
                continue;
            };
            if q > 0.0 && (q > best.1 || (q == best.1 && format.rank() > best.0.rank())) {
                best = (format, q);
            }
        }
        best.0
    }

    /// The format a media range (and its `version` parameter) names, if vitalsign renders it.
    fn of_media_range(media: &str, version: Option<&str>) -> Option<ExpositionFormat> {
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            return matches!(version, None | Some("1.0.0") | Some("0.0.1"))
                .then_some(ExpositionFormat::OpenMetrics);
        }
        let text = media.eq_ignore_ascii_case("text/plain")
            || media.eq_ignore_ascii_case("text/*")
            || media == "*/*";
        (text && matches!(version, None | Some("0.0.4"))).then_some(ExpositionFormat::Text)
    }

    /// Preference on equal q-values: the richer format.
    fn rank(self) -> u8 {
        match self {
            ExpositionFormat::Text => 0,
            ExpositionFormat::OpenMetrics => 1,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExpositionFormat::Text => crate::endpoint::PROMETHEUS_CONTENT_TYPE,
            ExpositionFormat::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Rewrites classic exposition text (families separated by blank lines, as the sink renders
/// them, histogram bucket lines possibly ending with an exemplar) as OpenMetrics text.
pub(super) fn to_openmetrics(classic: &str) -> String {
    let mut out = String::with_capacity(classic.len() + classic.len() / 8 + 8);
    for block in classic.split("\n\n") {
        let typed = block.lines().find_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split(' ');
            Some((words.next()?, words.next()?))
        });
        let (name, kind) = typed.unwrap_or(("", "untyped"));
        // OpenMetrics names a counter family without `_total`; its samples carry it.
        let (family, kind) = match kind {
            "counter" => (name.strip_suffix("_total").unwrap_or(name), "counter"),
            "untyped" => (name, "unknown"),
            kind => (name, kind),
        };
        let canonical_label = match kind {
            "histogram" => Some("le"),
            "summary" => Some("quantile"),
            _ => None,
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
            } else if line.starts_with('#') {
                // Other comments have no place in OpenMetrics.
            } else {
                sample_line(line, name, kind, canonical_label, &mut out);
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// One sample line in OpenMetrics: a counter sample gains `_total` if it lacks it, and the
/// `le` or `quantile` label values become canonical numbers (`1` is `1.0`).
fn sample_line(
    line: &str,
    family_name: &str,
    kind: &str,
    canonical_label: Option<&str>,
    out: &mut String,
) {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let (name, rest) = line.split_at(name_end);
    out.push_str(name);
    if kind == "counter" && name == family_name && !name.ends_with("_total") {
        out.push_str("_total");
    }
    let Some(canonical_label) = canonical_label else {
        out.push_str(rest);
        out.push('\n');
        return;
    };
    let Some(labels) = rest.strip_prefix('{') else {
        out.push_str(rest);
        out.push('\n');
        return;
    };
    // Copy the label set, rewriting the one label's value.
    out.push('{');
    let mut rest = labels;
    loop {
        let Some((label, after)) = rest.split_once("=\"") else {
            out.push_str(rest);
            out.push('\n');
            return;
        };
        let label_name = label.trim_start_matches(',');
        let value_end = quoted_end(after);
        let value = &after[..value_end];
        out.push_str(label);
        out.push_str("=\"");
        out.push_str(value);
        if label_name == canonical_label
            && !value.is_empty()
            && value.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        {
            out.push_str(".0");
        }
        out.push('"');
        rest = &after[(value_end + 1).min(after.len())..];
        if !rest.starts_with(',') {
            out.push_str(rest);
            out.push('\n');
            return;
        }
    }
}

/// The index of the quote that ends a label value (`text` starts just after its opening quote).
fn quoted_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
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
            ("text/plain;q=0.7, application/openmetrics-text;q=0.8", OpenMetrics),
            // q=0 refuses; a tie goes to OpenMetrics; a broken q-value is no preference.
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
             # TYPE b counter\nb_total 4\n\
             # HELP h Latency.\n# TYPE h histogram\nh_bucket{k=\"le=\\\"1\\\"\",le=\"1.0\"} 1 # {trace_id=\"ab\",span_id=\"cd\"} 0.5 1.000\nh_bucket{le=\"2.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n\
             # TYPE s summary\ns{quantile=\"0.0\"} 1\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n\
             # TYPE u unknown\nu 1\n# EOF\n"
        );
        assert_eq!(to_openmetrics(""), "# EOF\n");
    }
}
