//! [`StatsdSink`]: requests, errors, execution times and in-flight requests as StatsD metrics,
//! through `cadence`.

use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cadence::{
    BufferedUdpMetricSink, Counted, Gauged, MetricBuilder, MetricSink, QueuingMetricSink,
    StatsdClient, Timed,
};

use crate::{
    AggregatePoint, ConfigError, ConfigErrorKind, ErrorPoint, Method, RequestPoint, Sink,
    SinkReport,
};

/// How tags are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagStyle {
    /// DogStatsD tags (`metric:1|c|#route:/users/{id},method:GET`). The default.
    DogStatsd,
    /// Plain StatsD: route, method and status (and error code) folded into the metric name
    /// (`requests._users__id_.GET.200`), other tags left out.
    InName,
}

/// Builds a [`StatsdSink`].
#[derive(Clone, Debug)]
#[must_use]
pub struct StatsdSinkBuilder {
    addr: String,
    prefix: String,
    style: TagStyle,
    max_datagram: usize,
    queue_capacity: usize,
    flush_period: Duration,
}

impl StatsdSinkBuilder {
    /// Prefix of every metric name (`prefix.requests`). Defaults to none.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How tags are sent. Defaults to [`TagStyle::DogStatsd`].
    pub fn tag_style(mut self, style: TagStyle) -> Self {
        self.style = style;
        self
    }

    /// Largest datagram: metrics are batched, newline-separated, up to this size. Defaults to
    /// 512 bytes (safe on any network).
    pub fn max_datagram(mut self, bytes: usize) -> Self {
        self.max_datagram = bytes.max(64);
        self
    }

    /// Most metrics waiting for the sender thread; past it they are dropped and counted.
    /// Defaults to 10 000.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Longest a metric waits in a partly filled datagram, and how often the `in_flight`
    /// gauge is sent. Defaults to 1 s.
    pub fn flush_period(mut self, period: Duration) -> Self {
        self.flush_period = period.max(Duration::from_millis(1));
        self
    }

    /// Opens the socket and starts the sender and flusher threads.
    pub fn build(self) -> Result<Arc<StatsdSink>, ConfigError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            ConfigError::new(
                ConfigErrorKind::Resource,
                "build",
                format!("statsd sink for {:?}: {what}: {e}", self.addr),
            )
        };
        let socket =
            UdpSocket::bind("0.0.0.0:0").map_err(|e| fail("cannot open a UDP socket", &e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| fail("cannot make the socket non-blocking", &e))?;
        let buffered =
            BufferedUdpMetricSink::with_capacity(self.addr.as_str(), socket, self.max_datagram)
                .map_err(|e| fail("bad address", &e))?;
        let failures = Arc::new(Failures::default());
        let on_error = Arc::clone(&failures);
        let queuing = Arc::new(
            QueuingMetricSink::builder()
                .with_capacity(self.queue_capacity)
                .with_error_handler(move |e| on_error.record(&e))
                .build(buffered),
        );
        let client = StatsdClient::builder(&self.prefix, Shared(Arc::clone(&queuing)))
            .with_error_handler({
                let failures = Arc::clone(&failures);
                move |e| failures.record(&e)
            })
            .build();
        let state = Arc::new(State {
            client,
            queuing,
            in_flight: AtomicI64::new(0),
            submitted: AtomicU64::new(0),
        });
        let (commands, received) = mpsc::channel::<Command>();
        let flushing = Arc::clone(&state);
        let period = self.flush_period;
        std::thread::Builder::new()
            .name("vitalsign-statsd".into())
            .spawn(move || loop {
                match received.recv_timeout(period) {
                    Ok(Command::Flush(done)) => {
                        flushing.flush();
                        let _ = done.send(());
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => flushing.flush(),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return flushing.flush(),
                }
            })
            .map_err(|e| fail("no flusher thread", &e))?;
        Ok(Arc::new(StatsdSink {
            state,
            style: self.style,
            failures,
            commands,
        }))
    }
}

/// What the sink asks of its flusher thread.
enum Command {
    /// Flush now, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// What the sink and its flusher thread share.
struct State {
    client: StatsdClient,
    queuing: Arc<QueuingMetricSink>,
    /// Requests in flight: one addition each way on the request path, sent by the flusher.
    in_flight: AtomicI64,
    /// Metrics handed to cadence.
    submitted: AtomicU64,
}

impl State {
    /// Sends the `in_flight` gauge, waits (at most a second) until cadence's sender thread has
    /// taken it from its queue, and sends the partly filled datagram. The gauge is read here,
    /// on one thread, once a period: it cannot arrive out of order with itself, and a daemon
    /// that lost one has the right figure a period later.
    fn flush(&self) {
        let in_flight = self.in_flight.load(Relaxed).max(0);
        self.submitted.fetch_add(1, Relaxed);
        self.client
            .gauge_with_tags("in_flight", in_flight as f64)
            .send();
        let taken = self.queuing.submitted();
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.queuing.drained() < taken && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = self.client.flush();
    }
}

/// Send failures: counted, logged at most once per 10 s.
#[derive(Debug, Default)]
struct Failures {
    count: AtomicU64,
    last_log: Mutex<Option<Instant>>,
}

impl Failures {
    fn record(&self, error: &dyn std::fmt::Display) {
        let n = self.count.fetch_add(1, Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!("vitalsign: StatsD send failed ({error}); {n} failures so far");
        }
    }
}

/// Lets the client and the sink report share the queuing sink.
struct Shared(Arc<QueuingMetricSink>);

impl MetricSink for Shared {
    fn emit(&self, metric: &str) -> io::Result<usize> {
        self.0.emit(metric)
    }

    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Sends, per request: the counter `requests`, the timer `execution_time` (ms), and the counter
/// `errors` (with `error_code`) for failures; and on every flush (every `flush_period`, and on
/// [`Sink::flush`]) the gauge `in_flight`, the requests in flight then, as an absolute value.
/// Aggregates from a [`PeriodAggregator`](super::PeriodAggregator) go as the counter
/// `requests` (or `errors`) by `count` and the gauges `execution_time_min`, `_max`, `_sum`
/// (seconds).
///
/// Metrics are queued for a sender thread (bounded; full: dropped and counted) that batches
/// them into datagrams; send errors never reach the application: they are counted and logged
/// at most once per 10 s.
///
/// ```no_run
/// use vitalsign_core::{sinks::StatsdSink, Monitor};
///
/// let statsd = StatsdSink::udp("127.0.0.1:8125").prefix("shop").build()?;
/// let monitor = Monitor::builder("shop").sink(statsd).build()?;
/// # Ok::<(), vitalsign_core::ConfigError>(())
/// ```
pub struct StatsdSink {
    state: Arc<State>,
    style: TagStyle,
    failures: Arc<Failures>,
    /// To the flusher thread; dropping it stops the thread (after a last flush).
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for StatsdSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdSink")
            .field("style", &self.style)
            .field("report", &self.report())
            .finish_non_exhaustive()
    }
}

/// A metric name part made safe for plain StatsD names.
fn name_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl StatsdSink {
    /// A sink sending to a StatsD server at `host:port` over UDP.
    pub fn udp(addr: impl Into<String>) -> StatsdSinkBuilder {
        StatsdSinkBuilder {
            addr: addr.into(),
            prefix: String::new(),
            style: TagStyle::DogStatsd,
            max_datagram: 512,
            queue_capacity: 10_000,
            flush_period: Duration::from_secs(1),
        }
    }

    /// The metric name for `base` (with tags folded in, for [`TagStyle::InName`]).
    fn name<'b>(&self, base: &'b str, tags: &[(String, String)]) -> std::borrow::Cow<'b, str> {
        match self.style {
            TagStyle::DogStatsd => base.into(),
            TagStyle::InName => {
                let mut name = base.to_owned();
                for key in ["route", "method", "status_code", "error_code"] {
                    if let Some((_, value)) = tags.iter().find(|(k, _)| k == key) {
                        name.push('.');
                        name.push_str(&name_part(value));
                    }
                }
                name.into()
            }
        }
    }

    fn send<'m, T: cadence::Metric + From<String>>(
        &self,
        mut metric: MetricBuilder<'m, 'm, T>,
        tags: &'m [(String, String)],
    ) {
        if self.style == TagStyle::DogStatsd {
            for (key, value) in tags {
                metric = metric.with_tag(key, value);
            }
        }
        self.state.submitted.fetch_add(1, Relaxed);
        metric.send();
    }
}

/// Longest text of a DogStatsD event (the agent refuses datagrams over 8 KiB).
const MAX_EVENT_TEXT: usize = 4096;

/// `text` cut to at most `max` bytes at a character boundary.
fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// DogStatsD text: line breaks as `\\n`, other control characters as spaces.
fn event_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A DogStatsD tag part: no `,`, `|` or `#` (they delimit tags and fields).
fn tag_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if matches!(c, ',' | '|' | '#') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The DogStatsD event of an annotation:
/// `_e{<title bytes>,<text bytes>}:<title>|<text>|d:<unix seconds>|#service:…,stream:…,source:…,<tags>`.
/// The text is the description, then the links (`rel: href`, one a line).
pub(crate) fn dogstatsd_event(service: &str, event: &crate::annotation::AnnotationEvent) -> String {
    let title = event_text(&event.title);
    let mut text = event.description.clone().unwrap_or_default();
    for link in &event.links {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{}: {}", link.rel, link.href));
    }
    let text = event_text(clip(&text, MAX_EVENT_TEXT));
    let seconds = crate::annotation::unix_nanos(event.start) / 1_000_000_000;
    let mut tags = vec![
        format!("service:{}", tag_part(service)),
        format!("stream:{}", tag_part(&event.stream)),
    ];
    if let Some(source) = &event.source {
        tags.push(format!("source:{}", tag_part(source)));
    }
    for (key, value) in &event.tags {
        tags.push(format!("{key}:{}", tag_part(value)));
    }
    format!(
        "_e{{{},{}}}:{title}|{text}|d:{seconds}|#{}",
        title.len(),
        text.len(),
        tags.join(",")
    )
}

impl Sink for StatsdSink {
    fn needs_request_id(&self) -> bool {
        false
    }

    fn needs_head_time(&self) -> bool {
        false
    }

    fn request_started(&self, _method: Method) {
        self.state.in_flight.fetch_add(1, Relaxed);
    }

    fn record_request(&self, point: &RequestPoint<'_>) {
        let tags = super::tag_set(point, None);
        let requests = self.name("requests", &tags);
        self.send(self.state.client.count_with_tags(&requests, 1), &tags);
        let time = self.name("execution_time", &tags);
        let duration = Duration::from_secs_f64(point.execution_time.max(0.0));
        self.send(self.state.client.time_with_tags(&time, duration), &tags);
    }

    fn record_error(&self, point: &ErrorPoint<'_>) {
        let tags = super::tag_set(point.request, Some(point.error_code));
        let errors = self.name("errors", &tags);
        self.send(self.state.client.count_with_tags(&errors, 1), &tags);
    }

    fn request_finished(&self, _method: Method) {
        self.state.in_flight.fetch_sub(1, Relaxed);
    }

    fn record_aggregate(&self, point: &AggregatePoint<'_>) {
        let tags = point.tags;
        let count = self.name(point.series, tags);
        self.send(
            self.state
                .client
                .count_with_tags(&count, point.count as i64),
            tags,
        );
        for (base, value) in [
            ("execution_time_min", point.min),
            ("execution_time_max", point.max),
            ("execution_time_sum", point.sum),
        ] {
            let name = self.name(base, tags);
            self.send(self.state.client.gauge_with_tags(&name, value), tags);
        }
    }

    /// A DogStatsD event with [`TagStyle::DogStatsd`]; nothing with [`TagStyle::InName`]
    /// (plain StatsD has no events).
    fn record_annotation(&self, service: &str, event: &crate::annotation::AnnotationEvent) {
        if self.style != TagStyle::DogStatsd {
            return;
        }
        self.state.submitted.fetch_add(1, Relaxed);
        if let Err(e) = self.state.queuing.emit(&dogstatsd_event(service, event)) {
            self.failures.record(&e);
        }
    }

    fn flush(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let (done, wait) = tokio::sync::oneshot::channel();
        if let Err(mpsc::SendError(Command::Flush(done))) = self.commands.send(Command::Flush(done))
        {
            // No flusher thread (it panicked): flush here.
            self.state.flush();
            let _ = done.send(());
        }
        Some(wait)
    }

    fn report(&self) -> Option<SinkReport> {
        let dropped = self.failures.count.load(Relaxed);
        let queued = self.state.queuing.queued();
        Some(SinkReport {
            name: "statsd",
            sent: self
                .state
                .submitted
                .load(Relaxed)
                .saturating_sub(dropped)
                .saturating_sub(queued),
            dropped,
            queued,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::name_part;

    #[test]
    fn annotations_are_dogstatsd_events() {
        use crate::annotation::Annotation;
        use std::time::{Duration, UNIX_EPOCH};
        let monitor = crate::Monitor::builder("shop").build().unwrap();
        let event = monitor
            .annotate(
                "deploys",
                Annotation::new("v1.4.2 | rolled out")
                    .description("canary ok\nall regions")
                    .source("ci")
                    .link("build", "https://ci/b/1")
                    .tag("region", "eu,west")
                    .start(UNIX_EPOCH + Duration::from_millis(1_767_225_600_900)),
            )
            .unwrap();
        let text = "canary ok\\nall regions\\nbuild: https://ci/b/1";
        assert_eq!(
            super::dogstatsd_event("shop", &event),
            format!(
                "_e{{19,{}}}:v1.4.2 | rolled out|{text}|d:1767225600|\
                 #service:shop,stream:deploys,source:ci,region:eu_west",
                text.len()
            )
        );
    }

    #[test]
    fn name_parts_are_safe() {
        assert_eq!(name_part("/users/{id}"), "_users__id_");
        assert_eq!(name_part("GET"), "GET");
        assert_eq!(name_part("a.b:c|d@e#f"), "a_b_c_d_e_f");
    }
}
