//! The checks on every field of an annotation and a stream name, and the errors that name the
//! field ([`AnnotationError`]).

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use super::model::{
    Annotation, AnnotationEvent, Link, MAX_DESCRIPTION_BYTES, MAX_LINKS, MAX_LINK_HREF_BYTES,
    MAX_LINK_REL_BYTES, MAX_SOURCE_BYTES, MAX_STREAM_BYTES, MAX_TAGS, MAX_TAG_KEY_BYTES,
    MAX_TAG_VALUE_BYTES, MAX_TITLE_BYTES, RESERVED_TAG_KEYS,
};

/// What is wrong with an annotation, a stream name or a request to the annotation endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnnotationErrorKind {
    /// A required field is missing or empty (`title`).
    Missing,
    /// A text is longer than its bound.
    TooLong,
    /// More links or tags than allowed.
    TooMany,
    /// A link that is not an `http` or `https` URL.
    NotHttpUrl,
    /// A value that cannot be used: characters outside the allowed set, a reserved tag key,
    /// an end before the start, a time that is not RFC 3339 or unix seconds, a field of the
    /// wrong JSON type, an unknown field.
    InvalidValue,
    /// The request body is not a JSON object.
    InvalidJson,
}

/// An annotation (or a request to the annotation endpoints) was refused: which field, what
/// kind of mistake, and why. The HTTP endpoints answer it as a 400 whose JSON body names the
/// field: `{"error": "…", "field": "title"}`.
///
/// ```
/// use vitalsign_core::annotation::{Annotation, AnnotationErrorKind};
/// use vitalsign_core::Monitor;
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// let err = monitor
///     .annotate("deploys", Annotation::new("v2").link("build", "javascript:alert(1)"))
///     .unwrap_err();
/// assert_eq!((err.kind(), err.field()), (AnnotationErrorKind::NotHttpUrl, "links"));
/// assert!(monitor.annotations("deploys", None).is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationError {
    kind: AnnotationErrorKind,
    field: Cow<'static, str>,
    message: String,
}

impl AnnotationError {
    /// An error of `kind` about `field`, explained by `message`.
    pub(crate) fn new(
        kind: AnnotationErrorKind,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        AnnotationError {
            kind,
            field: field.into(),
            message: message.into(),
        }
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> AnnotationErrorKind {
        self.kind
    }

    /// The field it concerns: `stream`, `title`, `description`, `source`, `links`, `tags`,
    /// `start`, `end`, `since`, or `body` (a request body that is not a JSON object), or the
    /// name of an unknown field of the body.
    pub fn field(&self) -> &str {
        &self.field
    }
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AnnotationError {}

use AnnotationErrorKind::*;

/// Checks a stream name: 1 to [`MAX_STREAM_BYTES`] of `A-Z a-z 0-9 _ - .`.
pub(crate) fn check_stream(stream: &str) -> Result<(), AnnotationError> {
    if stream.is_empty() {
        return Err(AnnotationError::new(
            Missing,
            "stream",
            "stream: the stream name is empty",
        ));
    }
    if stream.len() > MAX_STREAM_BYTES {
        return Err(AnnotationError::new(
            TooLong,
            "stream",
            format!("stream: the name is longer than {MAX_STREAM_BYTES} bytes"),
        ));
    }
    if !stream.bytes().all(is_name_byte) {
        return Err(AnnotationError::new(
            InvalidValue,
            "stream",
            format!("stream: {stream:?} is not a stream name: use A-Z a-z 0-9 _ - ."),
        ));
    }
    Ok(())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Checks a text field: at most `max` bytes, no control characters (but line breaks and tabs
/// where `multiline`).
fn check_text(
    field: &'static str,
    text: &str,
    max: usize,
    multiline: bool,
) -> Result<(), AnnotationError> {
    if text.len() > max {
        return Err(AnnotationError::new(
            TooLong,
            field,
            format!("{field}: longer than {max} bytes ({} bytes)", text.len()),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t' | '\r')))
    {
        return Err(AnnotationError::new(
            InvalidValue,
            field,
            format!("{field}: control characters are not allowed"),
        ));
    }
    Ok(())
}

/// Whether `href` is an absolute `http` or `https` URL with a host, of visible ASCII.
fn is_http_url(href: &str) -> bool {
    let lower = href.get(..8).unwrap_or(href).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &href[8..]
    } else if lower.starts_with("http://") {
        &href[7..]
    } else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    !host.is_empty() && !host.starts_with(':') && href.bytes().all(|b| b.is_ascii_graphic())
}

/// Trims a string's spare capacity, so the store counts what it holds.
fn exact(mut text: String) -> String {
    text.shrink_to_fit();
    text
}

/// Checks every field of `annotation` for `stream` and makes the event (without its id);
/// `now` is the default start.
pub(crate) fn check(
    stream: &str,
    annotation: Annotation,
    now: SystemTime,
) -> Result<AnnotationEvent, AnnotationError> {
    check_stream(stream)?;
    let Annotation {
        title,
        description,
        source,
        links,
        tags,
        start,
        end,
    } = annotation;
    if title.trim().is_empty() {
        return Err(AnnotationError::new(
            Missing,
            "title",
            "title: an annotation needs a non-empty title",
        ));
    }
    check_text("title", &title, MAX_TITLE_BYTES, false)?;
    if let Some(description) = &description {
        check_text("description", description, MAX_DESCRIPTION_BYTES, true)?;
    }
    if let Some(source) = &source {
        check_text("source", source, MAX_SOURCE_BYTES, false)?;
    }
    if links.len() > MAX_LINKS {
        return Err(AnnotationError::new(
            TooMany,
            "links",
            format!("links: {} links, at most {MAX_LINKS}", links.len()),
        ));
    }
    for link in &links {
        if link.rel.is_empty()
            || link.rel.len() > MAX_LINK_REL_BYTES
            || !link.rel.bytes().all(is_name_byte)
        {
            return Err(AnnotationError::new(
                InvalidValue,
                "links",
                format!(
                    "links: rel {:?} is not 1 to {MAX_LINK_REL_BYTES} of A-Z a-z 0-9 _ - .",
                    link.rel
                ),
            ));
        }
        if link.href.len() > MAX_LINK_HREF_BYTES {
            return Err(AnnotationError::new(
                TooLong,
                "links",
                format!(
                    "links: href of {:?} is longer than {MAX_LINK_HREF_BYTES} bytes",
                    link.rel
                ),
            ));
        }
        if !is_http_url(&link.href) {
            return Err(AnnotationError::new(
                NotHttpUrl,
                "links",
                format!(
                    "links: href of {:?} is not an http or https URL with a host (visible ASCII, \
                     no spaces)",
                    link.rel
                ),
            ));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(AnnotationError::new(
            TooMany,
            "tags",
            format!("tags: {} tags, at most {MAX_TAGS}", tags.len()),
        ));
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty()
            || key.len() > MAX_TAG_KEY_BYTES
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(AnnotationError::new(
                InvalidValue,
                "tags",
                format!("tags: key {key:?} is not 1 to {MAX_TAG_KEY_BYTES} of A-Z a-z 0-9 _"),
            ));
        }
        if RESERVED_TAG_KEYS.contains(&key.as_str()) || tags[..i].iter().any(|(k, _)| k == key) {
            return Err(AnnotationError::new(
                InvalidValue,
                "tags",
                format!("tags: key {key:?} is reserved or given twice"),
            ));
        }
        check_text("tags", value, MAX_TAG_VALUE_BYTES, false)?;
    }
    let start = start.unwrap_or(now);
    if let Some(end) = end {
        if end < start {
            return Err(AnnotationError::new(
                InvalidValue,
                "end",
                "end: an annotation cannot end before it starts",
            ));
        }
    }
    let mut links: Vec<Link> = links
        .into_iter()
        .map(|l| Link::new(exact(l.rel), exact(l.href)))
        .collect();
    links.shrink_to_fit();
    let mut tags: Vec<(String, String)> = tags
        .into_iter()
        .map(|(k, v)| (exact(k), exact(v)))
        .collect();
    tags.shrink_to_fit();
    Ok(AnnotationEvent {
        id: 0,
        stream: stream.to_owned(),
        title: exact(title),
        description: description.map(exact),
        source: source.map(exact),
        links,
        tags,
        start,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::time::{Duration, UNIX_EPOCH};

    fn refused(stream: &str, annotation: Annotation) -> (AnnotationErrorKind, String) {
        let err = check(stream, annotation, UNIX_EPOCH).unwrap_err();
        (err.kind(), err.field().to_owned())
    }

    #[test]
    fn every_field_is_bounded_and_errors_name_it() {
        let ok = Annotation::new("t");
        assert_eq!(refused("", ok.clone()), (Missing, "stream".into()));
        assert_eq!(refused("a b", ok.clone()), (InvalidValue, "stream".into()));
        assert_eq!(
            refused(&"s".repeat(65), ok.clone()),
            (TooLong, "stream".into())
        );
        assert_eq!(refused("s", Annotation::new("")), (Missing, "title".into()));
        assert_eq!(
            refused("s", Annotation::new("  ")),
            (Missing, "title".into())
        );
        assert_eq!(
            refused("s", Annotation::new("x".repeat(257))),
            (TooLong, "title".into())
        );
        assert_eq!(
            refused("s", Annotation::new("a\nb")),
            (InvalidValue, "title".into())
        );
        assert_eq!(
            refused("s", ok.clone().description("d".repeat(4097))),
            (TooLong, "description".into())
        );
        assert_eq!(
            refused("s", ok.clone().description("a\u{7}")),
            (InvalidValue, "description".into())
        );
        assert_eq!(
            refused("s", ok.clone().source("s".repeat(65))),
            (TooLong, "source".into())
        );
        let mut many = ok.clone();
        for i in 0..9 {
            many = many.link(format!("l{i}"), "https://x");
        }
        assert_eq!(refused("s", many), (TooMany, "links".into()));
        for href in [
            "javascript:alert(1)",
            "JavaScript://x",
            "data:text/html,x",
            "ftp://host/x",
            "//host/x",
            "https://",
            "https:///path",
            "http://:80/",
            "https://host/a b",
            "https://hôst/",
            "/relative",
        ] {
            assert_eq!(
                refused("s", ok.clone().link("x", href)),
                (NotHttpUrl, "links".into()),
                "{href}"
            );
        }
        assert_eq!(
            refused(
                "s",
                ok.clone()
                    .link("x", format!("https://h/{}", "p".repeat(2048)))
            ),
            (TooLong, "links".into())
        );
        assert_eq!(
            refused("s", ok.clone().link("a b", "https://h")),
            (InvalidValue, "links".into())
        );
        assert_eq!(
            refused("s", ok.clone().tag("service", "x")),
            (InvalidValue, "tags".into())
        );
        assert_eq!(
            refused("s", ok.clone().tag("k", "1").tag("k", "2")),
            (InvalidValue, "tags".into())
        );
        assert_eq!(
            refused("s", ok.clone().tag("k-1", "1")),
            (InvalidValue, "tags".into())
        );
        assert_eq!(
            refused("s", ok.clone().tag("k", "v".repeat(129))),
            (TooLong, "tags".into())
        );
        let t = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(
            refused("s", ok.clone().start(t).end(t - Duration::from_secs(1))),
            (InvalidValue, "end".into())
        );
    }

    #[test]
    fn a_valid_annotation_keeps_every_field_and_defaults_its_start() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let event = check(
            "deploys",
            Annotation::new("v1")
                .description("line 1\nline 2")
                .source("ci")
                .link("build", "HTTPS://ci.example.com/b/1?x=1#y")
                .link("docs", "http://user@docs:8080")
                .tag("region", "eu"),
            now,
        )
        .unwrap();
        assert_eq!(event.start, now);
        assert_eq!(event.links[0].href, "HTTPS://ci.example.com/b/1?x=1#y");
        assert_eq!(event.tags, [("region".to_owned(), "eu".to_owned())]);
        let json = event.to_json();
        assert_eq!(json["start"], "1970-01-01T00:16:40.000Z");
        assert_eq!(json["end"], Value::Null);
        assert_eq!(json["links"][1]["rel"], "docs");
        assert_eq!(json["tags"]["region"], "eu");
        assert!(event.footprint() > std::mem::size_of::<AnnotationEvent>() + 40);
    }
}
