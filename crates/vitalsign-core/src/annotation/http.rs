//! The annotation endpoints: `GET /annotations` (the streams), `GET /annotations/{stream}`
//! (its events, newest first, `?since=` RFC 3339 or unix seconds) and
//! `POST /annotations/{stream}` (a JSON body; always behind the token).

use serde_json::{json, Map, Value};

use super::check::{AnnotationError, AnnotationErrorKind};
use super::model::{Annotation, Link};
use super::store::{MAX_EVENTS_PER_STREAM, MAX_STORE_BYTES, MAX_STREAMS};
use super::time::{format_rfc3339, parse_time, unix_seconds};
use crate::endpoint::{EndpointBody, EndpointRequest, EndpointResponse, MAX_BODY_BYTES};
use crate::Monitor;

/// The fields a `POST` body may have.
const BODY_FIELDS: &[&str] = &[
    "title",
    "description",
    "source",
    "links",
    "tags",
    "start",
    "end",
];

fn error_response(status: u16, error: &AnnotationError) -> EndpointResponse {
    EndpointResponse::json_no_store(
        status,
        &json!({ "error": error.to_string(), "field": error.field() }),
    )
}

/// The value of `name` in a query string, percent-decoded (`+` stays a plus: RFC 3339 offsets
/// are written with one).
fn query_value(query: &str, name: &str) -> Option<Result<String, ()>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(())?;
            let hex = std::str::from_utf8(hex).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Parses `since` (RFC 3339 or unix seconds) from a query string.
pub(crate) fn parse_since(
    query: Option<&str>,
) -> Result<Option<std::time::SystemTime>, AnnotationError> {
    let Some(value) = query.and_then(|q| query_value(q, "since")) else {
        return Ok(None);
    };
    value
        .ok()
        .and_then(|v| parse_time(&v))
        .map(Some)
        .ok_or_else(|| {
            AnnotationError::new(
                AnnotationErrorKind::InvalidValue,
                "since",
                "since: not an RFC 3339 time (2026-05-01T12:00:00Z) or unix seconds (1777636800)",
            )
        })
}

fn invalid(field: impl Into<std::borrow::Cow<'static, str>>, message: String) -> AnnotationError {
    AnnotationError::new(AnnotationErrorKind::InvalidValue, field, message)
}

/// An optional string field of the body (`null` is absent).
fn text_field(
    body: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, AnnotationError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(field, format!("{field}: must be a string"))),
    }
}

/// A time field: RFC 3339 text or unix seconds (a number).
fn time_field(
    body: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<std::time::SystemTime>, AnnotationError> {
    let time = match body.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => parse_time(text),
        Some(Value::Number(n)) => n.as_f64().and_then(unix_seconds),
        Some(_) => None,
    };
    time.map(Some).ok_or_else(|| {
        invalid(
            field,
            format!("{field}: not an RFC 3339 time (\"2026-05-01T12:00:00Z\") or unix seconds"),
        )
    })
}

/// The annotation a `POST` body describes:
/// `{"title": "…", "description": "…", "source": "…", "links": [{"rel": "…", "href": "…"}],
/// "tags": {"k": "v"}, "start": "RFC 3339" | unix seconds, "end": …}`.
pub(crate) fn parse_body(body: &[u8]) -> Result<Annotation, AnnotationError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        AnnotationError::new(
            AnnotationErrorKind::InvalidJson,
            "body",
            format!("body: not JSON: {e}"),
        )
    })?;
    let Value::Object(body) = value else {
        return Err(AnnotationError::new(
            AnnotationErrorKind::InvalidJson,
            "body",
            "body: must be a JSON object with at least a title",
        ));
    };
    if let Some(unknown) = body.keys().find(|k| !BODY_FIELDS.contains(&k.as_str())) {
        return Err(invalid(
            unknown.clone(),
            format!(
                "{unknown}: not a field of an annotation (fields: {})",
                BODY_FIELDS.join(", ")
            ),
        ));
    }
    let Some(title) = text_field(&body, "title")? else {
        return Err(AnnotationError::new(
            AnnotationErrorKind::Missing,
            "title",
            "title: an annotation needs a title",
        ));
    };
    let mut annotation = Annotation::new(title);
    annotation.description = text_field(&body, "description")?;
    annotation.source = text_field(&body, "source")?;
    match body.get("links") {
        None | Some(Value::Null) => {}
        Some(Value::Array(links)) => {
            if links.len() > super::MAX_LINKS {
                return Err(AnnotationError::new(
                    AnnotationErrorKind::TooMany,
                    "links",
                    format!("links: {} links, at most {}", links.len(), super::MAX_LINKS),
                ));
            }
            for link in links {
                let rel = link.get("rel").and_then(Value::as_str);
                let href = link.get("href").and_then(Value::as_str);
                let (Some(rel), Some(href), Some(2)) = (rel, href, link.as_object().map(Map::len))
                else {
                    return Err(invalid(
                        "links",
                        "links: each link is {\"rel\": \"…\", \"href\": \"https://…\"}".to_owned(),
                    ));
                };
                annotation.links.push(Link::new(rel, href));
            }
        }
        Some(_) => {
            return Err(invalid(
                "links",
                "links: must be an array of {\"rel\", \"href\"} objects".to_owned(),
            ))
        }
    }
    match body.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Object(tags)) => {
            if tags.len() > super::MAX_TAGS {
                return Err(AnnotationError::new(
                    AnnotationErrorKind::TooMany,
                    "tags",
                    format!("tags: {} tags, at most {}", tags.len(), super::MAX_TAGS),
                ));
            }
            for (key, value) in tags {
                let Some(value) = value.as_str() else {
                    return Err(invalid("tags", format!("tags: {key:?} must be a string")));
                };
                annotation.tags.push((key.clone(), value.to_owned()));
            }
        }
        Some(_) => {
            return Err(invalid(
                "tags",
                "tags: must be an object of strings".to_owned(),
            ))
        }
    }
    annotation.start = time_field(&body, "start")?;
    annotation.end = time_field(&body, "end")?;
    Ok(annotation)
}

impl Monitor {
    /// `GET /annotations`: the streams with their counts and the store's figures; 401 without
    /// the token when one is configured (the rules of `/stats`).
    ///
    /// ```
    /// use vitalsign_core::endpoint::EndpointRequest;
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// let page = monitor.annotations_endpoint(&EndpointRequest::default());
    /// assert_eq!(page.status, 200);
    /// assert!(page.text().unwrap().contains(r#""name":"lifecycle""#));
    /// ```
    pub fn annotations_endpoint(&self, request: &EndpointRequest<'_>) -> EndpointResponse {
        if !self.authorized(request) {
            return EndpointResponse::unauthorized(request);
        }
        let hub = self.annotation_hub();
        let streams: Vec<Value> = hub
            .streams()
            .into_iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "events": s.events,
                    "total": s.total,
                    "evicted": s.evicted,
                    "last": s.last.map(format_rfc3339),
                })
            })
            .collect();
        let figures = hub.figures();
        EndpointResponse::json_no_store(
            200,
            &json!({
                "streams": streams,
                "events": figures.events,
                "bytes": figures.bytes,
                "evicted_events": figures.evicted_events,
                "evicted_streams": figures.evicted_streams,
                "limits": {
                    "streams": MAX_STREAMS,
                    "events_per_stream": MAX_EVENTS_PER_STREAM,
                    "bytes": MAX_STORE_BYTES,
                },
            }),
        )
    }

    /// `GET /annotations/{stream}?since=…`: the stream's events, newest first; `since` is an
    /// RFC 3339 time or unix seconds (400 naming `since` otherwise). 401 without the token when
    /// one is configured.
    ///
    /// ```
    /// use vitalsign_core::endpoint::EndpointRequest;
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// let page = monitor.annotation_stream_endpoint(&EndpointRequest::default(), "lifecycle", Some("since=0"));
    /// assert_eq!(page.status, 200);
    /// assert!(page.text().unwrap().contains("shop unknown started"));
    /// let page = monitor.annotation_stream_endpoint(&EndpointRequest::default(), "lifecycle", Some("since=soon"));
    /// assert_eq!(page.status, 400);
    /// assert!(page.text().unwrap().contains(r#""field":"since""#));
    /// ```
    pub fn annotation_stream_endpoint(
        &self,
        request: &EndpointRequest<'_>,
        stream: &str,
        query: Option<&str>,
    ) -> EndpointResponse {
        if !self.authorized(request) {
            return EndpointResponse::unauthorized(request);
        }
        if let Err(e) = super::check::check_stream(stream) {
            return error_response(400, &e);
        }
        let since = match parse_since(query) {
            Ok(since) => since,
            Err(e) => return error_response(400, &e),
        };
        let events: Vec<Value> = self
            .annotations(stream, since)
            .iter()
            .map(|e| e.to_json())
            .collect();
        EndpointResponse::json_no_store(200, &json!({ "stream": stream, "events": events }))
    }

    /// `POST /annotations/{stream}` with a JSON body
    /// (`{"title": "…", "description", "source", "links": [{"rel", "href"}], "tags": {…},
    /// "start", "end"}`; times as RFC 3339 or unix seconds): 201 with the stored event.
    /// Writing always needs the token: 403 (saying how to enable it) when the monitor has none,
    /// 401 without it; 413 for a body over [`MAX_BODY_BYTES`]; 400 naming the field for a bad
    /// body. A refused write stores nothing.
    ///
    /// ```
    /// use vitalsign_core::endpoint::{EndpointBody, EndpointRequest};
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").token("s3cret").build().unwrap();
    /// let mut body = EndpointBody::new();
    /// body.push(br#"{"title": "v1.4.2 rolled out", "source": "ci"}"#);
    /// let request = EndpointRequest { authorization: Some(b"Bearer s3cret"), accept: None };
    /// let page = monitor.post_annotation_endpoint(&request, "deploys", &body);
    /// assert_eq!(page.status, 201, "{}", page.text().unwrap());
    /// assert_eq!(monitor.annotations("deploys", None)[0].title, "v1.4.2 rolled out");
    ///
    /// let open = Monitor::builder("shop").build().unwrap();
    /// assert_eq!(open.post_annotation_endpoint(&EndpointRequest::default(), "deploys", &body).status, 403);
    /// ```
    pub fn post_annotation_endpoint(
        &self,
        request: &EndpointRequest<'_>,
        stream: &str,
        body: &EndpointBody,
    ) -> EndpointResponse {
        if self.token().is_none() {
            return EndpointResponse::json_no_store(
                403,
                &json!({
                    "error": "writing annotations needs a token, and this monitor has none: build \
                              it with MonitorBuilder::token(…) (the demo: --token TOKEN), then \
                              send Authorization: Bearer <token>",
                }),
            );
        }
        if !self.authorized(request) {
            return EndpointResponse::unauthorized(request);
        }
        if body.is_too_large() {
            return EndpointResponse::json_no_store(
                413,
                &json!({
                    "error": format!("body: larger than {MAX_BODY_BYTES} bytes"),
                    "field": "body",
                }),
            );
        }
        let annotation = match parse_body(body.bytes()) {
            Ok(annotation) => annotation,
            Err(e) => return error_response(400, &e),
        };
        match self.annotate(stream, annotation) {
            Ok(event) => EndpointResponse::json_no_store(201, &event.to_json()),
            Err(e) => error_response(400, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn field_of(body: &str) -> String {
        parse_body(body.as_bytes()).unwrap_err().field().to_owned()
    }

    #[test]
    fn bodies_parse_and_bad_ones_name_the_field() {
        let a = parse_body(
            br#"{"title":"v1","description":"d","source":"ci",
                 "links":[{"rel":"build","href":"https://ci/1"}],"tags":{"region":"eu"},
                 "start":"2026-01-01T00:00:00Z","end":1767225660}"#,
        )
        .unwrap();
        assert_eq!(a.title, "v1");
        assert_eq!(a.links, [Link::new("build", "https://ci/1")]);
        assert_eq!(a.tags, [("region".to_owned(), "eu".to_owned())]);
        assert_eq!(
            a.start,
            Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        );
        assert_eq!(a.end, Some(UNIX_EPOCH + Duration::from_secs(1_767_225_660)));
        assert_eq!(field_of("{}"), "title");
        assert_eq!(field_of(r#"{"title":null}"#), "title");
        assert_eq!(field_of(r#"{"title":3}"#), "title");
        assert_eq!(field_of(r#"{"title":"t","titel":"x"}"#), "titel");
        assert_eq!(field_of(r#"{"title":"t","links":"x"}"#), "links");
        assert_eq!(field_of(r#"{"title":"t","links":[{"rel":"a"}]}"#), "links");
        assert_eq!(field_of(r#"{"title":"t","tags":{"a":1}}"#), "tags");
        assert_eq!(field_of(r#"{"title":"t","start":"tomorrow"}"#), "start");
        assert_eq!(field_of(r#"{"title":"t","end":-5}"#), "end");
        assert_eq!(field_of("[1]"), "body");
        assert_eq!(field_of("{"), "body");
    }

    #[test]
    fn since_is_rfc3339_or_unix_seconds() {
        let t = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        assert_eq!(parse_since(None), Ok(None));
        assert_eq!(parse_since(Some("x=1")), Ok(None));
        assert_eq!(parse_since(Some("since=1767225600")), Ok(Some(t)));
        assert_eq!(
            parse_since(Some("a=b&since=2026-01-01T00:00:00Z")),
            Ok(Some(t))
        );
        assert_eq!(
            parse_since(Some("since=2026-01-01T01%3A00%3A00%2B01%3A00")),
            Ok(Some(t))
        );
        assert_eq!(
            parse_since(Some("since=2026-01-01T01:00:00+01:00")),
            Ok(Some(t))
        );
        for bad in [
            "since=",
            "since=yesterday",
            "since=%zz",
            "since=-1",
            "since=2026-01-01",
        ] {
            let err = parse_since(Some(bad)).unwrap_err();
            assert_eq!(err.field(), "since", "{bad}");
        }
    }
}
