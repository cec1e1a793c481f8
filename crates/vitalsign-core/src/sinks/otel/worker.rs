//! The sink's recorder thread: takes finished requests from the bounded queue and records them
//! into the OpenTelemetry instruments, off the request path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use opentelemetry::metrics::Histogram;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::{Method, UNMATCHED_ROUTE};

/// Attribute sets kept ready by the recorder thread; past this many, the attributes of a new
/// set are built for each of its requests (the SDK has its own cardinality limit, 2000 sets
/// per instrument by default).
const MAX_CACHED_SETS: usize = 4096;

/// How long the recorder thread sleeps when the queue is empty. The request path never wakes
/// it (no system call per request): it drains the queue this often, or at once on a flush or
/// when the queue was found full. At 10 000 queued requests per 20 ms, 500 000 requests a
/// second fit before the queue drops any.
pub(super) const DRAIN_PERIOD: Duration = Duration::from_millis(20);

/// One finished request, as the queue carries it.
#[derive(Debug)]
pub(super) struct Record {
    pub(super) method: Method,
    pub(super) route: Arc<str>,
    pub(super) status: u16,
    /// `error.type`: the error code of a request the monitor classified as an error.
    pub(super) error_type: Option<Arc<str>>,
    pub(super) seconds: f64,
}

/// What the queue carries.
#[derive(Debug)]
pub(super) enum Message {
    Record(Record),
    /// Record everything queued before, flush the sink's own provider (if any), then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The attributes every measurement carries (`url.scheme`, `network.protocol.version`).
#[derive(Clone, Debug)]
pub(super) struct Constant(pub(super) Vec<KeyValue>);

/// What the recorder thread owns.
pub(super) struct Recorder {
    pub(super) duration: Histogram<f64>,
    pub(super) constant: Constant,
    /// The sink's own provider (OTLP), flushed on [`Message::Flush`] and shut down (a last
    /// export) when the sink is dropped; `None` for the application's provider.
    pub(super) provider: Option<SdkMeterProvider>,
    /// Requests recorded into the instruments.
    pub(super) recorded: Arc<AtomicU64>,
}

type SetKey = (Method, Arc<str>, u16, Option<Arc<str>>);

impl Recorder {
    fn attributes(&self, key: &SetKey) -> Vec<KeyValue> {
        let (method, route, status, error_type) = key;
        let mut attributes = Vec::with_capacity(4 + self.constant.0.len());
        attributes.push(KeyValue::new("http.request.method", method.as_str()));
        if &**route != UNMATCHED_ROUTE {
            attributes.push(KeyValue::new("http.route", route.to_string()));
        }
        attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(*status),
        ));
        if let Some(error_type) = error_type {
            attributes.push(KeyValue::new("error.type", error_type.to_string()));
        }
        attributes.extend(self.constant.0.iter().cloned());
        attributes
    }

    /// Runs until the sink (the queue's only sender) is dropped, then shuts its own provider
    /// down, which exports what is left.
    pub(super) fn run(self, queue: mpsc::Receiver<Message>) {
        let mut sets: HashMap<SetKey, Vec<KeyValue>> = HashMap::new();
        loop {
            let message = match queue.try_recv() {
                Ok(message) => message,
                Err(mpsc::TryRecvError::Empty) => {
                    std::thread::park_timeout(DRAIN_PERIOD);
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
            };
            match message {
                Message::Record(record) => {
                    let key = (
                        record.method,
                        record.route,
                        record.status,
                        record.error_type,
                    );
                    if let Some(attributes) = sets.get(&key) {
                        self.duration.record(record.seconds, attributes);
                    } else {
                        let attributes = self.attributes(&key);
                        self.duration.record(record.seconds, &attributes);
                        if sets.len() < MAX_CACHED_SETS {
                            sets.insert(key, attributes);
                        }
                    }
                    self.recorded.fetch_add(1, Relaxed);
                }
                Message::Flush(done) => {
                    if let Some(provider) = &self.provider {
                        // A failure is counted and logged by the exporter.
                        let _ = provider.force_flush();
                    }
                    let _ = done.send(());
                }
            }
        }
        if let Some(provider) = &self.provider {
            let _ = provider.shutdown();
        }
    }
}
