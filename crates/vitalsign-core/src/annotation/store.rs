//! The bounded in-process store: streams of events, capped in streams, events per stream and
//! bytes; the oldest are evicted and counted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use super::model::AnnotationEvent;

/// Most streams the store keeps; a new stream past it evicts the stream written least
/// recently.
pub const MAX_STREAMS: usize = 64;
/// Most events a stream keeps; past it its oldest event is evicted.
pub const MAX_EVENTS_PER_STREAM: usize = 1000;
/// Most bytes the store's events hold (their fields and bookkeeping); past it the oldest event
/// of the whole store is evicted.
pub const MAX_STORE_BYTES: usize = 8 * 1024 * 1024;

/// What the store knows of one stream, as [`Monitor::annotation_streams`](crate::Monitor::annotation_streams)
/// lists it.
///
/// ```
/// use vitalsign_core::annotation::Annotation;
/// use vitalsign_core::Monitor;
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// monitor.annotate("deploys", Annotation::new("v1")).unwrap();
/// let deploys = monitor
///     .annotation_streams()
///     .into_iter()
///     .find(|s| s.name == "deploys")
///     .unwrap();
/// assert_eq!((deploys.events, deploys.total, deploys.evicted), (1, 1, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnnotationStream {
    /// The stream's name.
    pub name: String,
    /// Events it holds now.
    pub events: usize,
    /// Events recorded into it since it was created (held or evicted).
    pub total: u64,
    /// Events of it evicted to keep the store within its bounds.
    pub evicted: u64,
    /// The latest start of its events (the `vitalsign_annotation_last_timestamp_seconds` gauge).
    pub last: Option<SystemTime>,
}

#[derive(Debug)]
struct Stream {
    name: String,
    events: VecDeque<Arc<AnnotationEvent>>,
    bytes: usize,
    total: u64,
    evicted: u64,
    last: Option<SystemTime>,
    /// Id of the event last written into it (for evicting the stream written least recently).
    last_id: u64,
}

/// Figures of the whole store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StoreFigures {
    pub(crate) bytes: usize,
    pub(crate) events: usize,
    pub(crate) evicted_events: u64,
    pub(crate) evicted_streams: u64,
}

/// The streams. Small (at most [`MAX_STREAMS`]): found by a linear scan.
#[derive(Debug, Default)]
pub(crate) struct Store {
    streams: Vec<Stream>,
    bytes: usize,
    next_id: u64,
    evicted_events: u64,
    evicted_streams: u64,
    limits: Limits,
}

/// The bounds (the constants; smaller in unit tests).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) streams: usize,
    pub(crate) per_stream: usize,
    pub(crate) bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            streams: MAX_STREAMS,
            per_stream: MAX_EVENTS_PER_STREAM,
            bytes: MAX_STORE_BYTES,
        }
    }
}

impl Store {
    #[cfg(test)]
    fn with_limits(limits: Limits) -> Self {
        Store {
            limits,
            ..Store::default()
        }
    }

    /// Stores a checked event, giving it its id; evicts what the bounds require.
    pub(crate) fn insert(&mut self, mut event: AnnotationEvent) -> Arc<AnnotationEvent> {
        self.next_id += 1;
        event.id = self.next_id;
        let index = match self.streams.iter().position(|s| s.name == event.stream) {
            Some(index) => index,
            None => {
                if self.streams.len() >= self.limits.streams {
                    self.evict_stream();
                }
                self.streams.push(Stream {
                    name: event.stream.clone(),
                    events: VecDeque::new(),
                    bytes: 0,
                    total: 0,
                    evicted: 0,
                    last: None,
                    last_id: 0,
                });
                self.streams.len() - 1
            }
        };
        let event = Arc::new(event);
        let bytes = event.footprint();
        let stream = &mut self.streams[index];
        stream.events.push_back(Arc::clone(&event));
        stream.bytes += bytes;
        stream.total += 1;
        stream.last = stream.last.max(Some(event.start));
        stream.last_id = event.id;
        self.bytes += bytes;
        if stream.events.len() > self.limits.per_stream {
            self.evict_oldest_of(index);
        }
        while self.bytes > self.limits.bytes {
            let oldest = self
                .streams
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.events.front().map(|e| (e.id, i)))
                .min();
            match oldest {
                Some((_, i)) => self.evict_oldest_of(i),
                None => break,
            }
        }
        event
    }

    fn evict_oldest_of(&mut self, index: usize) {
        let stream = &mut self.streams[index];
        if let Some(old) = stream.events.pop_front() {
            let bytes = old.footprint();
            stream.bytes -= bytes;
            stream.evicted += 1;
            self.bytes -= bytes;
            self.evicted_events += 1;
        }
    }

    /// Drops the stream written least recently, counting its events as evicted.
    fn evict_stream(&mut self) {
        let Some(index) = self
            .streams
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.last_id)
            .map(|(i, _)| i)
        else {
            return;
        };
        let stream = self.streams.swap_remove(index);
        self.bytes -= stream.bytes;
        self.evicted_events += stream.events.len() as u64;
        self.evicted_streams += 1;
    }

    /// Every stream, by name.
    pub(crate) fn streams(&self) -> Vec<AnnotationStream> {
        let mut streams: Vec<AnnotationStream> = self
            .streams
            .iter()
            .map(|s| AnnotationStream {
                name: s.name.clone(),
                events: s.events.len(),
                total: s.total,
                evicted: s.evicted,
                last: s.last,
            })
            .collect();
        streams.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        streams
    }

    /// The events of `stream` that start at or after `since`, or end at or after it (all
    /// without `since`), newest first (by start, then by id).
    pub(crate) fn events(
        &self,
        stream: &str,
        since: Option<SystemTime>,
    ) -> Vec<Arc<AnnotationEvent>> {
        let Some(stream) = self.streams.iter().find(|s| s.name == stream) else {
            return Vec::new();
        };
        let mut events: Vec<Arc<AnnotationEvent>> = stream
            .events
            .iter()
            .filter(|e| since.is_none_or(|since| e.start >= since || e.end >= Some(since)))
            .cloned()
            .collect();
        events.sort_unstable_by_key(|e| std::cmp::Reverse((e.start, e.id)));
        events
    }

    /// Removes `stream`; whether it existed.
    pub(crate) fn delete(&mut self, stream: &str) -> bool {
        match self.streams.iter().position(|s| s.name == stream) {
            Some(index) => {
                let removed = self.streams.swap_remove(index);
                self.bytes -= removed.bytes;
                true
            }
            None => false,
        }
    }

    pub(crate) fn figures(&self) -> StoreFigures {
        StoreFigures {
            bytes: self.bytes,
            events: self.streams.iter().map(|s| s.events.len()).sum(),
            evicted_events: self.evicted_events,
            evicted_streams: self.evicted_streams,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotation::check::check;
    use crate::annotation::Annotation;
    use std::time::{Duration, UNIX_EPOCH};

    fn event(stream: &str, title: &str, start: u64) -> AnnotationEvent {
        let at = UNIX_EPOCH + Duration::from_secs(start);
        check(stream, Annotation::new(title).start(at), at).unwrap()
    }

    #[test]
    fn events_per_stream_are_capped_oldest_evicted_and_counted() {
        let mut store = Store::with_limits(Limits {
            streams: 4,
            per_stream: 3,
            bytes: usize::MAX,
        });
        for i in 0..10 {
            store.insert(event("deploys", &format!("v{i}"), i));
        }
        let titles: Vec<String> = store
            .events("deploys", None)
            .iter()
            .map(|e| e.title.clone())
            .collect();
        assert_eq!(titles, ["v9", "v8", "v7"]);
        let stream = &store.streams()[0];
        assert_eq!((stream.events, stream.total, stream.evicted), (3, 10, 7));
        assert_eq!(stream.last, Some(UNIX_EPOCH + Duration::from_secs(9)));
        assert_eq!(store.figures().evicted_events, 7);
        let held: usize = store
            .events("deploys", None)
            .iter()
            .map(|e| e.footprint())
            .sum();
        assert_eq!(store.figures().bytes, held);
    }

    #[test]
    fn streams_are_capped_and_the_one_written_least_recently_goes() {
        let mut store = Store::with_limits(Limits {
            streams: 2,
            per_stream: 10,
            bytes: usize::MAX,
        });
        store.insert(event("a", "1", 1));
        store.insert(event("b", "1", 2));
        store.insert(event("a", "2", 3));
        store.insert(event("c", "1", 4));
        let names: Vec<String> = store.streams().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "c"]);
        let figures = store.figures();
        assert_eq!((figures.evicted_streams, figures.evicted_events), (1, 1));
        assert_eq!(figures.events, 3);
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest_event_of_the_store() {
        let one = event("a", "x", 0).footprint();
        let mut store = Store::with_limits(Limits {
            streams: 10,
            per_stream: 100,
            bytes: one * 3,
        });
        store.insert(event("a", "x", 0));
        store.insert(event("b", "x", 1));
        store.insert(event("a", "y", 2));
        store.insert(event("b", "y", 3));
        assert!(store.figures().bytes <= one * 3);
        assert_eq!(store.figures().evicted_events, 1);
        assert_eq!(store.events("a", None).len(), 1, "a's first event went");
        assert_eq!(store.events("b", None).len(), 2);
    }

    #[test]
    fn since_keeps_events_that_start_or_end_after_it_newest_first() {
        let mut store = Store::default();
        store.insert(event("s", "late", 300));
        store.insert(event("s", "early", 100));
        let mut long = event("s", "long", 50);
        long.end = Some(UNIX_EPOCH + Duration::from_secs(250));
        store.insert(long);
        let titles = |since: u64| -> Vec<String> {
            store
                .events("s", Some(UNIX_EPOCH + Duration::from_secs(since)))
                .iter()
                .map(|e| e.title.clone())
                .collect()
        };
        assert_eq!(titles(0), ["late", "early", "long"]);
        assert_eq!(titles(200), ["late", "long"]);
        assert_eq!(titles(301), Vec::<String>::new());
        assert!(store.events("unknown", None).is_empty());
        assert!(store.delete("s"));
        assert!(!store.delete("s"));
        assert_eq!(store.figures(), StoreFigures::default());
    }
}
