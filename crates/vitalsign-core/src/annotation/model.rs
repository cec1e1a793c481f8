//! What an annotation is ([`Annotation`], [`Link`]), what the store keeps
//! ([`AnnotationEvent`]), and the bounds on every field (checked in `check.rs`).

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::time::format_rfc3339;

/// Longest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 256;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Longest source, in bytes.
pub const MAX_SOURCE_BYTES: usize = 64;
/// Most links of one annotation.
pub const MAX_LINKS: usize = 8;
/// Longest link relation (`build`, `docs`), in bytes: 1 to 32 of `A-Z a-z 0-9 _ - .`.
pub const MAX_LINK_REL_BYTES: usize = 32;
/// Longest link URL, in bytes.
pub const MAX_LINK_HREF_BYTES: usize = 2048;
/// Most tags of one annotation.
pub const MAX_TAGS: usize = 8;
/// Longest tag key (1 to 32 of `A-Z a-z 0-9 _`), in bytes.
pub const MAX_TAG_KEY_BYTES: usize = 32;
/// Longest tag value, in bytes.
pub const MAX_TAG_VALUE_BYTES: usize = 128;
/// Longest stream name: 1 to 64 of `A-Z a-z 0-9 _ - .`.
pub const MAX_STREAM_BYTES: usize = 64;

/// Tag keys an annotation cannot use: sinks write them themselves.
pub const RESERVED_TAG_KEYS: &[&str] = &["service", "stream", "source"];

/// A link of an annotation: a relation name and an `http`/`https` URL.
///
/// ```
/// use vitalsign_core::annotation::Link;
///
/// let link = Link::new("build", "https://ci.example.com/builds/812");
/// assert_eq!((link.rel.as_str(), link.href.as_str()), ("build", "https://ci.example.com/builds/812"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Link {
    /// What the link is (`build`, `diff`, `runbook`).
    pub rel: String,
    /// Where it points: an `http` or `https` URL.
    pub href: String,
}

impl Link {
    /// A link; checked when the annotation is recorded.
    pub fn new(rel: impl Into<String>, href: impl Into<String>) -> Self {
        Link {
            rel: rel.into(),
            href: href.into(),
        }
    }
}

/// An event to mark on every graph: a deploy, an incident, a configuration change. Built with
/// [`Annotation::new`] and its setters, recorded with
/// [`Monitor::annotate`](crate::Monitor::annotate), which checks every field.
///
/// The title is required; the rest is optional; `start` defaults to the time it is recorded.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use vitalsign_core::annotation::Annotation;
///
/// let deployed = SystemTime::now();
/// let annotation = Annotation::new("v1.4.2 rolled out")
///     .description("canary at 10 %, then everywhere")
///     .source("ci")
///     .link("build", "https://ci.example.com/builds/812")
///     .tag("region", "eu-west")
///     .start(deployed)
///     .end(deployed + Duration::from_secs(90));
/// assert_eq!(annotation.title, "v1.4.2 rolled out");
/// assert_eq!(annotation.links.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Annotation {
    /// What happened (required; at most [`MAX_TITLE_BYTES`]).
    pub title: String,
    /// More about it (at most [`MAX_DESCRIPTION_BYTES`]; line breaks allowed).
    pub description: Option<String>,
    /// Who or what posted it (`ci`, `deploy.sh`; at most [`MAX_SOURCE_BYTES`]).
    pub source: Option<String>,
    /// Links (at most [`MAX_LINKS`], each an `http`/`https` URL).
    pub links: Vec<Link>,
    /// Tags (at most [`MAX_TAGS`]): InfluxDB tags and DogStatsD event tags; keys are not
    /// [`RESERVED_TAG_KEYS`].
    pub tags: Vec<(String, String)>,
    /// When it began; defaults to the time it is recorded.
    pub start: Option<SystemTime>,
    /// When it ended, for events that last (not before `start`).
    pub end: Option<SystemTime>,
}

impl Annotation {
    /// An annotation titled `title`, starting when it is recorded.
    pub fn new(title: impl Into<String>) -> Self {
        Annotation {
            title: title.into(),
            description: None,
            source: None,
            links: Vec::new(),
            tags: Vec::new(),
            start: None,
            end: None,
        }
    }

    /// Sets the description. Defaults to none.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the source. Defaults to none.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Adds a link (`rel` names it, `href` is an `http`/`https` URL). Defaults to none.
    pub fn link(mut self, rel: impl Into<String>, href: impl Into<String>) -> Self {
        self.links.push(Link::new(rel, href));
        self
    }

    /// Adds a tag. Defaults to none.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// Sets when it began. Defaults to the time it is recorded.
    pub fn start(mut self, start: SystemTime) -> Self {
        self.start = Some(start);
        self
    }

    /// Sets when it ended. Defaults to none.
    pub fn end(mut self, end: SystemTime) -> Self {
        self.end = Some(end);
        self
    }
}

/// An annotation as the store keeps it: checked, with its stream, its start time and an id.
///
/// ```
/// use vitalsign_core::annotation::Annotation;
/// use vitalsign_core::Monitor;
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// let event = monitor.annotate("deploys", Annotation::new("v1.4.2 rolled out")).unwrap();
/// assert_eq!((event.stream.as_str(), event.title.as_str()), ("deploys", "v1.4.2 rolled out"));
/// assert!(event.end.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnnotationEvent {
    /// Its number in this monitor (1, 2, …, in the order they were recorded).
    pub id: u64,
    /// The stream it belongs to (`deploys`, `lifecycle`, `health`).
    pub stream: String,
    /// See [`Annotation::title`].
    pub title: String,
    /// See [`Annotation::description`].
    pub description: Option<String>,
    /// See [`Annotation::source`].
    pub source: Option<String>,
    /// See [`Annotation::links`].
    pub links: Vec<Link>,
    /// See [`Annotation::tags`].
    pub tags: Vec<(String, String)>,
    /// When it began.
    pub start: SystemTime,
    /// When it ended, if given.
    pub end: Option<SystemTime>,
}

impl AnnotationEvent {
    /// The event as JSON, as the endpoints answer it.
    pub(crate) fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("id".into(), self.id.into());
        object.insert("stream".into(), self.stream.clone().into());
        object.insert("title".into(), self.title.clone().into());
        object.insert("description".into(), self.description.clone().into());
        object.insert("source".into(), self.source.clone().into());
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|l| serde_json::json!({ "rel": l.rel, "href": l.href }))
            .collect();
        object.insert("links".into(), links.into());
        let tags: Map<String, Value> = self
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        object.insert("tags".into(), tags.into());
        object.insert("start".into(), format_rfc3339(self.start).into());
        object.insert("end".into(), self.end.map(format_rfc3339).into());
        Value::Object(object)
    }

    /// The heap and inline bytes this event holds in the store (counted against its budget).
    pub(crate) fn footprint(&self) -> usize {
        std::mem::size_of::<Self>()
            // The `Arc`'s counts.
            + 2 * std::mem::size_of::<usize>()
            + self.stream.capacity()
            + self.title.capacity()
            + self.description.as_ref().map_or(0, String::capacity)
            + self.source.as_ref().map_or(0, String::capacity)
            + self.links.capacity() * std::mem::size_of::<Link>()
            + self
                .links
                .iter()
                .map(|l| l.rel.capacity() + l.href.capacity())
                .sum::<usize>()
            + self.tags.capacity() * std::mem::size_of::<(String, String)>()
            + self
                .tags
                .iter()
                .map(|(k, v)| k.capacity() + v.capacity())
                .sum::<usize>()
    }
}
