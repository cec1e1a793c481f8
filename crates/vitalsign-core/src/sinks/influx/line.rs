//! Line protocol: request, error and aggregate points as InfluxDB lines (escaping by
//! InfluxData's `influxdb-line-protocol` crate), and the cache of encoded label sets that spares
//! the escaping on the request path.

use influxdb_line_protocol::LineProtocolBuilder;

use crate::point::{Field, FieldValue};
use crate::{AggregatePoint, RequestPoint};

/// Tag keys and values: as [`one_line`], and without trailing backslashes, which no line
/// protocol parser reads back (the backslash would escape the separator after it).
fn tag_text(text: &str) -> std::borrow::Cow<'_, str> {
    match one_line(text) {
        std::borrow::Cow::Borrowed(t) => t.trim_end_matches('\\').into(),
        std::borrow::Cow::Owned(t) => t.trim_end_matches('\\').to_owned().into(),
    }
}

/// Tag values and string fields: control characters (line breaks end a line; tabs separate
/// for some parsers, even inside quoted strings) are replaced by spaces; the crate escapes
/// everything else. Empty tag values are left out by the caller.
fn one_line(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(char::is_control) {
        value
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .into()
    } else {
        value.into()
    }
}

/// What one line holds: `series,tags first,ints,floats,request_id,fields timestamp`.
struct Line<'a> {
    series: &'a str,
    tags: &'a [(String, String)],
    /// The first field (a line has at least one).
    first: (&'a str, f64),
    ints: &'a [(&'a str, i64)],
    floats: &'a [(&'a str, f64)],
    request_id: Option<&'a str>,
    fields: &'a [Field],
    timestamp: u64,
}

impl Line<'_> {
    fn encode(&self) -> Vec<u8> {
        self.fields_of()
            .timestamp(self.timestamp as i64)
            .close_line()
            .build()
    }

    /// The line without a timestamp.
    fn encode_untimed(&self) -> Vec<u8> {
        self.fields_of().close_line().build()
    }

    /// Series, tags and fields.
    fn fields_of(
        &self,
    ) -> LineProtocolBuilder<Vec<u8>, influxdb_line_protocol::builder::AfterField> {
        let mut builder =
            LineProtocolBuilder::new_with(Vec::with_capacity(256)).measurement(self.series);
        for (key, value) in self.tags {
            let value = tag_text(value);
            if !value.is_empty() {
                builder = builder.tag(&tag_text(key), &value);
            }
        }
        let mut line = builder.field(self.first.0, self.first.1);
        for (key, value) in self.ints {
            line = line.field(key, *value);
        }
        for (key, value) in self.floats {
            line = line.field(key, *value);
        }
        if let Some(id) = self.request_id {
            line = line.field("request_id", id);
        }
        for field in self.fields {
            if matches!(&*field.key, "request_id" | "execution_time") {
                continue;
            }
            line = match &field.value {
                FieldValue::Float(v) if v.is_finite() => line.field(&field.key, *v),
                FieldValue::Float(_) => line,
                FieldValue::Int(v) => line.field(&field.key, *v),
                FieldValue::UInt(v) => {
                    line.field(&field.key, i64::try_from(*v).unwrap_or(i64::MAX))
                }
                FieldValue::Bool(v) => line.field(&field.key, *v),
                FieldValue::Str(v) => line.field(&field.key, &*one_line(v)),
            };
        }
        line
    }
}

/// Encodes a request (or, with `error_code`, an error) point.
pub(super) fn encode_point(point: &RequestPoint<'_>, error_code: Option<&str>) -> Vec<u8> {
    let tags = crate::sinks::tag_set(point, error_code);
    Line {
        series: series_of(error_code),
        tags: &tags,
        first: ("execution_time", point.execution_time),
        ints: &[],
        floats: &[],
        request_id: Some(point.request_id.as_str()),
        fields: point.fields,
        timestamp: point.start_unix_nanos,
    }
    .encode()
}

/// Label sets whose encoded `series,tags` prefix is cached.
const CACHED_PREFIXES: usize = 1024;

/// The encoded `series,tags` of the label sets seen (points without handler tags), so that the
/// crate escapes each label set once, not once per point.
pub(super) struct Prefixes(crate::cache::OnceCache<Box<Prefix>>);

/// One cached label set and its encoded prefix.
struct Prefix {
    method: crate::Method,
    status: u16,
    route: Box<str>,
    error_code: Option<Box<str>>,
    /// `series,tag=value,…` as the crate writes it.
    bytes: Box<[u8]>,
}

impl Prefixes {
    pub(super) fn new() -> Self {
        Prefixes(crate::cache::OnceCache::new(CACHED_PREFIXES * 2))
    }

    /// The line of a request (or, with `error_code`, an error) point, as [`encode_point`]
    /// writes it. Points without handler tags or fields reuse their label set's prefix; the
    /// fields then need no escaping: constant keys, a number, and a request id (its characters
    /// exclude `"` and `\`, the only ones a string field escapes).
    pub(super) fn encode(&self, point: &RequestPoint<'_>, error_code: Option<&str>) -> Vec<u8> {
        if !point.tags.is_empty() || !point.fields.is_empty() {
            return encode_point(point, error_code);
        }
        let hash = self
            .0
            .hash((point.method, point.status_code, point.route, error_code));
        let found = self.0.find(hash, |p| {
            p.method == point.method
                && p.status == point.status_code
                && *p.route == *point.route
                && p.error_code.as_deref() == error_code
        });
        let prefix = match found {
            Some((_, prefix)) => prefix,
            None => {
                let Some(prefix) = Prefix::of(point, error_code) else {
                    return encode_point(point, error_code);
                };
                match self.0.insert(hash, Box::new(prefix)) {
                    Some(slot) => self.0.get(slot).expect("just filled"),
                    None => return encode_point(point, error_code),
                }
            }
        };
        use std::io::Write;
        let id = point.request_id.as_str();
        let mut line = Vec::with_capacity(prefix.bytes.len() + id.len() + 80);
        line.extend_from_slice(&prefix.bytes);
        line.extend_from_slice(b" execution_time=");
        let _ = write!(line, "{}", point.execution_time);
        line.extend_from_slice(b",request_id=\"");
        line.extend_from_slice(id.as_bytes());
        line.extend_from_slice(b"\" ");
        line.extend_from_slice(
            itoa::Buffer::new()
                .format(point.start_unix_nanos as i64)
                .as_bytes(),
        );
        line.push(b'\n');
        line
    }
}

impl Prefix {
    /// Encodes the point's `series,tags` with the crate: the line it writes with
    /// `execution_time=0` as the only field and no timestamp, less that field.
    fn of(point: &RequestPoint<'_>, error_code: Option<&str>) -> Option<Prefix> {
        const SUFFIX: &[u8] = b" execution_time=0\n";
        let tags = crate::sinks::tag_set(point, error_code);
        let line = Line {
            series: series_of(error_code),
            tags: &tags,
            first: ("execution_time", 0.0),
            ints: &[],
            floats: &[],
            request_id: None,
            fields: &[],
            timestamp: 0,
        }
        .encode_untimed();
        let bytes = line.strip_suffix(SUFFIX)?;
        Some(Prefix {
            method: point.method,
            status: point.status_code,
            route: point.route.into(),
            error_code: error_code.map(Into::into),
            bytes: bytes.into(),
        })
    }
}

fn series_of(error_code: Option<&str>) -> &'static str {
    if error_code.is_some() {
        "errors"
    } else {
        "requests"
    }
}

/// Encodes an annotation as a point of series `annotations`: tags `service`, `stream`,
/// `source` (when given) and the event's own tags; string fields `title`, `description` and
/// `links` (`rel=href` pairs separated by spaces; both empty when there are none), the integer
/// field `end` (unix milliseconds) when given; timestamp = start (ns).
pub(super) fn encode_annotation(
    service: &str,
    event: &crate::annotation::AnnotationEvent,
) -> Vec<u8> {
    let mut tags: Vec<(&str, &str)> = vec![("service", service), ("stream", &event.stream)];
    if let Some(source) = &event.source {
        tags.push(("source", source));
    }
    tags.extend(event.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    tags.sort_unstable();
    let mut builder =
        LineProtocolBuilder::new_with(Vec::with_capacity(256)).measurement("annotations");
    for (key, value) in tags {
        let value = tag_text(value);
        if !value.is_empty() {
            builder = builder.tag(&tag_text(key), &value);
        }
    }
    let links = event
        .links
        .iter()
        .map(|l| format!("{}={}", l.rel, l.href))
        .collect::<Vec<_>>()
        .join(" ");
    let mut line = builder
        .field("title", &*one_line(&event.title))
        .field(
            "description",
            &*one_line(event.description.as_deref().unwrap_or_default()),
        )
        .field("links", links.as_str());
    if let Some(end) = event.end {
        let millis = crate::annotation::unix_nanos(end) / 1_000_000;
        line = line.field("end", i64::try_from(millis).unwrap_or(i64::MAX));
    }
    let start = crate::annotation::unix_nanos(event.start);
    line.timestamp(i64::try_from(start).unwrap_or(i64::MAX))
        .close_line()
        .build()
}

/// Encodes an aggregate point: fields `sum`, `count`, `min`, `max`.
pub(super) fn encode_aggregate(point: &AggregatePoint<'_>) -> Vec<u8> {
    Line {
        series: point.series,
        tags: point.tags,
        first: ("sum", point.sum),
        ints: &[("count", point.count as i64)],
        floats: &[("min", point.min), ("max", point.max)],
        request_id: None,
        fields: &[],
        timestamp: point.period_start_unix_nanos,
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, RequestId, Tag};

    #[test]
    fn cached_prefixes_write_the_lines_the_crate_writes() {
        let prefixes = Prefixes::new();
        let ids = [
            RequestId::EMPTY,
            RequestId::generate(),
            RequestId::from_header(Some(b"a-Z_0.9:+=/@")).unwrap(),
        ];
        let routes = [
            "/users/{id}",
            "/a b,c=d",
            "/quote\"and\\slash\\",
            "/line\nbreak\ttab",
            "/ünïcödé/日本",
            "",
        ];
        for (i, route) in routes.iter().enumerate() {
            for (method, status, code) in [
                (Method::Get, 200, None),
                (Method::Other, 503, Some("db down, \"really\"")),
                (Method::Post, 499, None),
            ] {
                for id in &ids {
                    let point = RequestPoint {
                        execution_time: 0.000_123 * (i + 1) as f64,
                        start_unix_nanos: 1_700_000_000_123_456_789 + i as u64,
                        ..RequestPoint::new("svc one", route, method, status, id)
                    };
                    // First sight fills the cache, the second reads it.
                    for _ in 0..2 {
                        assert_eq!(
                            String::from_utf8(prefixes.encode(&point, code)).unwrap(),
                            String::from_utf8(encode_point(&point, code)).unwrap(),
                        );
                    }
                }
            }
        }
        let cached = (0..CACHED_PREFIXES * 2)
            .filter(|i| prefixes.0.get(*i).is_some())
            .count();
        assert_eq!(cached, routes.len() * 3, "one prefix per label set");
    }

    #[test]
    fn annotations_encode_as_points_of_series_annotations() {
        use crate::annotation::Annotation;
        use std::time::{Duration, UNIX_EPOCH};
        let monitor = crate::Monitor::builder("shop").build().unwrap();
        let start = UNIX_EPOCH + Duration::from_millis(1_767_225_600_250);
        let event = monitor
            .annotate(
                "deploys",
                Annotation::new("v1.4.2 \"rolled\" out")
                    .description("line 1\nline 2")
                    .source("ci bot")
                    .link("build", "https://ci/b/1?a=b")
                    .link("diff", "https://git/c/abc")
                    .tag("region", "eu,west")
                    .start(start)
                    .end(start + Duration::from_secs(90)),
            )
            .unwrap();
        let line = String::from_utf8(encode_annotation("shop", &event)).unwrap();
        assert_eq!(
            line,
            "annotations,region=eu\\,west,service=shop,source=ci\\ bot,stream=deploys \
             title=\"v1.4.2 \\\"rolled\\\" out\",description=\"line 1 line 2\",\
             links=\"build=https://ci/b/1?a=b diff=https://git/c/abc\",end=1767225690250i \
             1767225600250000000\n"
        );
        let bare = monitor
            .annotate("deploys", Annotation::new("x").start(start))
            .unwrap();
        assert_eq!(
            String::from_utf8(encode_annotation("shop", &bare)).unwrap(),
            "annotations,service=shop,stream=deploys title=\"x\",description=\"\",links=\"\" \
             1767225600250000000\n"
        );
    }

    #[test]
    fn points_encode_with_escaping() {
        let id = RequestId::from_header(Some(b"req-1")).unwrap();
        let tags = [Tag {
            key: "tenant".into(),
            value: "a b,c=d\"e\\".into(),
        }];
        let fields = [
            Field {
                key: "note".into(),
                value: FieldValue::Str("say \"hi\" \\o/".into()),
            },
            Field {
                key: "rows".into(),
                value: FieldValue::UInt(3),
            },
        ];
        let point = RequestPoint {
            service: "shop",
            route: "/users/{id}",
            method: Method::Get,
            status_code: 200,
            request_id: &id,
            trace: None,
            execution_time: 0.25,
            start_unix_nanos: 1_700_000_000_000_000_000,
            disconnected: false,
            head_time: None,
            response_body_bytes: 0,
            request_body_bytes: 0,
            tags: &tags,
            fields: &fields,
            #[cfg(feature = "rpc")]
            rpc: None,
            route_key: None,
        };
        let line = String::from_utf8(encode_point(&point, None)).unwrap();
        let want = concat!(
            // The trailing backslash of the tag value is dropped: no parser reads it back.
            r#"requests,method=GET,route=/users/{id},service=shop,status_code=200,tenant=a\ b\,c\=d"e "#,
            r#"execution_time=0.25,request_id="req-1",note="say \"hi\" \\o/",rows=3i 1700000000000000000"#,
            "\n"
        );
        assert_eq!(line, want);
        let error = String::from_utf8(encode_point(&point, Some("E1"))).unwrap();
        assert!(
            error.starts_with("errors,error_code=E1,method=GET"),
            "{error}"
        );
    }
}
