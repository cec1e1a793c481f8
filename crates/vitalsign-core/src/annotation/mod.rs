//! Annotations: named streams of events (a deploy, an incident, a health change) that mark
//! every graph, kept in a bounded in-process store, sent to the sinks, served over HTTP.
//!
//! - [`Monitor::annotate`](crate::Monitor::annotate) records an [`Annotation`] into a stream;
//!   [`Monitor::annotations`](crate::Monitor::annotations) reads a stream back (newest first,
//!   optionally since a time), [`Monitor::annotation_streams`](crate::Monitor::annotation_streams)
//!   lists the streams, [`Monitor::delete_annotation_stream`](crate::Monitor::delete_annotation_stream)
//!   drops one.
//! - vitalsign writes some itself: stream `lifecycle` gets the start of the monitor (service,
//!   version), the start of a drain and the end of a shutdown; stream `health` gets every level
//!   change of a health component (tags `component`, `from`, `to`; the summary as description).
//! - Sinks get each event through [`Sink::record_annotation`]:
//!   InfluxDB as a point of series `annotations`, StatsD as a DogStatsD event (with
//!   [`TagStyle::DogStatsd`](crate::sinks::TagStyle) only); `/metrics` shows
//!   `vitalsign_annotations_total{stream}`, `vitalsign_annotation_last_timestamp_seconds{stream}`
//!   and `vitalsign_annotations_evicted_total`.
//! - HTTP (mounted with the other endpoints, [`Endpoint::Annotations`](crate::Endpoint::Annotations)
//!   and [`Endpoint::AnnotationStream`](crate::Endpoint::AnnotationStream)): `GET /annotations`,
//!   `GET /annotations/{stream}?since=…` and `POST /annotations/{stream}`.
//!
//! **Bounds.** Every text field is length-bounded (`MAX_*` below), links are `http`/`https`
//! URLs. The store keeps at most [`MAX_STREAMS`] streams (a new one evicts the stream written
//! least recently), [`MAX_EVENTS_PER_STREAM`] events per stream and [`MAX_STORE_BYTES`] bytes
//! of events (fields and bookkeeping); past a bound the oldest events go, counted per stream
//! and in `vitalsign_annotations_evicted_total`. Its memory is therefore at most
//! `MAX_STORE_BYTES` plus one pointer per held event and the stream names: about 8.6 MiB.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use vitalsign_core::annotation::Annotation;
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop").version("1.4.2").build()?;
//! let before = SystemTime::now() - Duration::from_secs(1);
//! monitor.annotate(
//!     "deploys",
//!     Annotation::new("v1.4.2 rolled out")
//!         .source("ci")
//!         .link("build", "https://ci.example.com/builds/812"),
//! )?;
//! let deploys = monitor.annotations("deploys", Some(before));
//! assert_eq!(deploys[0].title, "v1.4.2 rolled out");
//! // The monitor marked its own start.
//! assert_eq!(monitor.annotations("lifecycle", None)[0].title, "shop 1.4.2 started");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod check; // the checks of every field and stream name, `AnnotationError`
mod http; // the endpoints: list, read (`since`), write (JSON body, token rules)
mod model; // `Annotation`, `Link`, `AnnotationEvent`, the bounds
mod store; // the bounded store
mod time; // RFC 3339 parsing and formatting, unix seconds

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::SystemTime;

pub use check::{AnnotationError, AnnotationErrorKind};
pub use model::{
    Annotation, AnnotationEvent, Link, MAX_DESCRIPTION_BYTES, MAX_LINKS, MAX_LINK_HREF_BYTES,
    MAX_LINK_REL_BYTES, MAX_SOURCE_BYTES, MAX_STREAM_BYTES, MAX_TAGS, MAX_TAG_KEY_BYTES,
    MAX_TAG_VALUE_BYTES, MAX_TITLE_BYTES, RESERVED_TAG_KEYS,
};
pub use store::{AnnotationStream, MAX_EVENTS_PER_STREAM, MAX_STORE_BYTES, MAX_STREAMS};
#[cfg_attr(
    not(any(feature = "prometheus", feature = "statsd", feature = "influx-base")),
    allow(unused_imports)
)]
pub(crate) use time::unix_nanos;

use crate::health::Level;
use crate::sink::Panics;
use crate::{Monitor, Sink};

/// The stream of vitalsign's own start, drain and shutdown events.
pub const LIFECYCLE_STREAM: &str = "lifecycle";
/// The stream of health level changes.
pub const HEALTH_STREAM: &str = "health";
/// The `source` of the events vitalsign writes itself.
pub const VITALSIGN_SOURCE: &str = "vitalsign";

/// The monitor's sinks, in its order, with its panic counts.
type Sinks = (Vec<Arc<dyn Sink>>, Arc<Panics>);

/// A monitor's annotations: the store and the sinks that get each event.
#[derive(Debug)]
pub(crate) struct Annotations {
    store: Mutex<store::Store>,
    service: String,
    sinks: OnceLock<Sinks>,
}

impl Annotations {
    pub(crate) fn new(service: &str) -> Self {
        Annotations {
            store: Mutex::new(store::Store::default()),
            service: service.to_owned(),
            sinks: OnceLock::new(),
        }
    }

    /// The sinks (the monitor's, in its order, with its panic counts).
    pub(crate) fn set_sinks(&self, sinks: Vec<Arc<dyn Sink>>, panics: Arc<Panics>) {
        let _ = self.sinks.set((sinks, panics));
    }

    fn lock(&self) -> MutexGuard<'_, store::Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks, stores and sends an event to the sinks (a sink that panics is contained and
    /// counted, as on the request path).
    pub(crate) fn record(
        &self,
        stream: &str,
        annotation: Annotation,
    ) -> Result<Arc<AnnotationEvent>, AnnotationError> {
        let event = check::check(stream, annotation, SystemTime::now())?;
        let event = self.lock().insert(event);
        if let Some((sinks, panics)) = self.sinks.get() {
            for (index, sink) in sinks.iter().enumerate() {
                let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sink.record_annotation(&self.service, &event)
                }));
                if sent.is_err() {
                    panics.panicked(index);
                }
            }
        }
        Ok(event)
    }

    /// Records an event vitalsign writes itself (source `vitalsign`); its fields are within
    /// bounds by construction, and a refusal would only be logged.
    pub(crate) fn record_own(&self, stream: &str, annotation: Annotation) {
        if let Err(e) = self.record(stream, annotation.source(VITALSIGN_SOURCE)) {
            tracing::debug!("vitalsign: own annotation refused: {e}");
        }
    }

    /// The start of the monitor, in `lifecycle`.
    pub(crate) fn started(&self, version: &str) {
        self.record_own(
            LIFECYCLE_STREAM,
            Annotation::new(clip(
                &format!("{} {version} started", self.service),
                MAX_TITLE_BYTES,
            ))
            .description(clip(
                &format!("service {}, version {version}", self.service),
                MAX_DESCRIPTION_BYTES,
            ))
            .tag("event", "start")
            .tag("version", clip(version, MAX_TAG_VALUE_BYTES)),
        );
    }

    /// A drain or a shutdown (`event`), in `lifecycle`: "{service} {what}".
    pub(crate) fn lifecycle(&self, event: &'static str, what: &str, description: &str) {
        self.record_own(
            LIFECYCLE_STREAM,
            Annotation::new(clip(&format!("{} {what}", self.service), MAX_TITLE_BYTES))
                .description(description)
                .tag("event", event),
        );
    }

    /// A level change of a health component, in `health`.
    pub(crate) fn health_changed(&self, component: &str, from: Level, to: Level, summary: &str) {
        self.record_own(
            HEALTH_STREAM,
            Annotation::new(format!("{component}: {from} -> {to}"))
                .description(clip(&one_line(summary), MAX_DESCRIPTION_BYTES))
                .tag("component", component)
                .tag("from", from.as_str())
                .tag("to", to.as_str()),
        );
    }

    pub(crate) fn streams(&self) -> Vec<AnnotationStream> {
        self.lock().streams()
    }

    pub(crate) fn events(
        &self,
        stream: &str,
        since: Option<SystemTime>,
    ) -> Vec<Arc<AnnotationEvent>> {
        self.lock().events(stream, since)
    }

    pub(crate) fn figures(&self) -> store::StoreFigures {
        self.lock().figures()
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Control characters other than line breaks and tabs replaced by spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\n' | '\t' | '\r') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

impl Monitor {
    /// Records an annotation into `stream` (1 to 64 of `A-Z a-z 0-9 _ - .`): checks every
    /// field (see [`Annotation`]; an error names the field), stores it (evicting the oldest
    /// events past the store's bounds) and sends it to every sink. Returns the stored event.
    ///
    /// ```
    /// use vitalsign_core::annotation::Annotation;
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// let event = monitor
    ///     .annotate("deploys", Annotation::new("v1.4.2 rolled out").source("ci"))
    ///     .unwrap();
    /// assert_eq!(event.source.as_deref(), Some("ci"));
    /// let err = monitor.annotate("deploys", Annotation::new("")).unwrap_err();
    /// assert_eq!(err.field(), "title");
    /// ```
    pub fn annotate(
        &self,
        stream: &str,
        annotation: Annotation,
    ) -> Result<Arc<AnnotationEvent>, AnnotationError> {
        self.annotation_hub().record(stream, annotation)
    }

    /// The streams, by name, with their counts.
    ///
    /// ```
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// let names: Vec<String> = monitor.annotation_streams().into_iter().map(|s| s.name).collect();
    /// assert_eq!(names, ["lifecycle"]); // the monitor's own start
    /// ```
    pub fn annotation_streams(&self) -> Vec<AnnotationStream> {
        self.annotation_hub().streams()
    }

    /// The events of `stream`, newest first (by start time); with `since`, only those that
    /// start at or after it, or end at or after it. Empty for an unknown stream.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use vitalsign_core::annotation::Annotation;
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    /// monitor.annotate("deploys", Annotation::new("old").start(hour_ago)).unwrap();
    /// monitor.annotate("deploys", Annotation::new("new")).unwrap();
    /// let recent = monitor.annotations("deploys", Some(hour_ago + Duration::from_secs(60)));
    /// assert_eq!(recent.len(), 1);
    /// assert_eq!(monitor.annotations("deploys", None)[0].title, "new");
    /// ```
    pub fn annotations(
        &self,
        stream: &str,
        since: Option<SystemTime>,
    ) -> Vec<Arc<AnnotationEvent>> {
        self.annotation_hub().events(stream, since)
    }

    /// Drops `stream` and its events; whether it existed.
    ///
    /// ```
    /// use vitalsign_core::annotation::Annotation;
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// monitor.annotate("tests", Annotation::new("x")).unwrap();
    /// assert!(monitor.delete_annotation_stream("tests"));
    /// assert!(monitor.annotations("tests", None).is_empty());
    /// assert!(!monitor.delete_annotation_stream("tests"));
    /// ```
    pub fn delete_annotation_stream(&self, stream: &str) -> bool {
        self.annotation_hub().lock().delete(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemorySink;

    /// A sink that keeps the annotations it gets.
    #[derive(Debug, Default)]
    struct Keep(Mutex<Vec<(String, AnnotationEvent)>>);

    impl Sink for Keep {
        fn record_request(&self, _point: &crate::RequestPoint<'_>) {}
        fn record_annotation(&self, service: &str, event: &AnnotationEvent) {
            self.0
                .lock()
                .unwrap()
                .push((service.to_owned(), event.clone()));
        }
    }

    #[derive(Debug)]
    struct Panicking;

    impl Sink for Panicking {
        fn record_request(&self, _point: &crate::RequestPoint<'_>) {}
        fn record_annotation(&self, _service: &str, _event: &AnnotationEvent) {
            panic!("annotation sink panics");
        }
    }

    #[test]
    fn annotations_reach_every_sink_and_a_panicking_one_is_contained() {
        let keep = Arc::new(Keep::default());
        let monitor = Monitor::builder("svc")
            .version("2.0")
            .sink(Arc::new(Panicking))
            .sink(keep.clone())
            .sink(Arc::new(MemorySink::new(10)))
            .build()
            .unwrap();
        monitor
            .annotate("deploys", Annotation::new("v2").source("ci"))
            .unwrap();
        let got = keep.0.lock().unwrap().clone();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "svc");
        assert_eq!(got[0].1.stream, "lifecycle");
        assert_eq!(got[0].1.title, "svc 2.0 started");
        assert_eq!(got[0].1.source.as_deref(), Some("vitalsign"));
        assert_eq!((got[1].1.stream.as_str(), got[1].1.id), ("deploys", 2));
        #[cfg(feature = "prometheus")]
        {
            let text = monitor.render_metrics().unwrap();
            assert!(
                text.contains("vitalsign_sink_panics_total{sink=\"Panicking\"} 2"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_refused_annotation_stores_and_sends_nothing() {
        let keep = Arc::new(Keep::default());
        let monitor = Monitor::builder("svc").sink(keep.clone()).build().unwrap();
        let err = monitor
            .annotate(
                "deploys",
                Annotation::new("v").link("x", "javascript:alert(1)"),
            )
            .unwrap_err();
        assert_eq!(err.kind(), AnnotationErrorKind::NotHttpUrl);
        assert!(monitor.annotations("deploys", None).is_empty());
        assert_eq!(keep.0.lock().unwrap().len(), 1, "only the start event");
        assert_eq!(monitor.annotation_streams().len(), 1);
    }

    #[test]
    fn drain_and_shutdown_are_marked_in_lifecycle() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let monitor = Monitor::builder("svc").build().unwrap();
        runtime.block_on(monitor.shutdown(std::time::Duration::from_secs(1)));
        monitor.drain(); // a second drain is no new event
        let titles: Vec<String> = monitor
            .annotations(LIFECYCLE_STREAM, None)
            .iter()
            .map(|e| e.title.clone())
            .collect();
        assert_eq!(titles.len(), 3, "{titles:?}");
        let mut sorted = titles.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["svc draining", "svc shut down", "svc unknown started"]
        );
    }

    #[test]
    fn health_changes_are_marked_with_from_and_to() {
        let monitor = Monitor::builder("svc")
            .task("ingest", crate::health::Task::new().threshold(1))
            .build()
            .unwrap();
        monitor
            .report_task("ingest", crate::health::TaskStatus::ConnectionError)
            .unwrap();
        let events = monitor.annotations(HEALTH_STREAM, None);
        assert_eq!(events.len(), 1, "{events:?}");
        let tag = |k: &str| {
            events[0]
                .tags
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(tag("component").as_deref(), Some("ingest"));
        assert_eq!(tag("from").as_deref(), Some("available"));
        assert_eq!(tag("to").as_deref(), Some("unavailable"));
        assert_eq!(events[0].title, "ingest: available -> unavailable");
        assert!(events[0].description.is_some());
    }
}
