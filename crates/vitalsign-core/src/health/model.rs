//! Types of the health model.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How well a component (or the whole service) works. Ordered: `Unavailable < Degraded <
/// Available`, so the overall level is the minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Not working.
    Unavailable,
    /// Working, impaired.
    Degraded,
    /// Working.
    Available,
}

impl Level {
    /// `available`, `degraded` or `unavailable`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Available => "available",
            Level::Degraded => "degraded",
            Level::Unavailable => "unavailable",
        }
    }

    /// The value of the `service_health_status` gauge: 2, 1 or 0.
    pub const fn gauge_value(self) -> f64 {
        match self {
            Level::Available => 2.0,
            Level::Degraded => 1.0,
            Level::Unavailable => 0.0,
        }
    }

    /// The IETF health check status: `pass`, `warn` or `fail`.
    pub const fn ietf_status(self) -> &'static str {
        match self {
            Level::Available => "pass",
            Level::Degraded => "warn",
            Level::Unavailable => "fail",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one component.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ComponentStatus {
    /// Its level.
    pub level: Level,
    /// One line saying why.
    pub summary: String,
    /// More text (e.g. failures counted toward a threshold), if any.
    pub detail: Option<String>,
    /// Figures behind the level (rule values, failure counts), if any.
    pub meta: Option<serde_json::Value>,
    /// Whether the component being unavailable makes the service unavailable (503).
    pub critical: bool,
}

/// What probes read: the state of every component, published on each change.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HealthSnapshot {
    /// Worst component level (a non-critical component counts as degraded at worst).
    pub overall: Level,
    /// Names the components that are not available and why.
    pub summary: String,
    /// Components by name.
    pub components: BTreeMap<String, ComponentStatus>,
    /// Ready for traffic: not draining, every critical check has reported, no critical
    /// component unavailable.
    pub ready: bool,
    /// [`Monitor::drain`](crate::Monitor::drain) or [`Monitor::shutdown`](crate::Monitor::shutdown) was called.
    pub draining: bool,
    /// Critical checks that have not reported yet.
    pub pending: Vec<String>,
}

type CheckFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// An async check of a dependency, run in the background every `interval` under `timeout`.
#[derive(Clone)]
pub struct Check {
    pub(crate) run: CheckFn,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) fall: u32,
    pub(crate) rise: u32,
    pub(crate) critical: bool,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("fall", &self.fall)
            .field("rise", &self.rise)
            .field("critical", &self.critical)
            .finish_non_exhaustive()
    }
}

impl Check {
    /// A check made from an async function: `Ok(())` is a success, `Err(e)` a failure whose
    /// text becomes the component's summary. A panic or a timeout is a failure too.
    pub fn new<F, Fut, E>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        Check {
            run: Arc::new(move || {
                let future = check();
                Box::pin(async move { future.await.map_err(|e| e.to_string()) })
            }),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            fall: 1,
            rise: 1,
            critical: true,
        }
    }

    /// Time between two runs. Defaults to 10 s. A check with no result for 3 intervals is
    /// stale, hence unavailable.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Longest a run may take before it counts as failed. Defaults to 1 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Consecutive failures before an available component goes unavailable. Defaults to 1.
    pub fn fall(mut self, n: u32) -> Self {
        self.fall = n.max(1);
        self
    }

    /// Consecutive successes before an unavailable component is available again. Defaults to 1.
    pub fn rise(mut self, n: u32) -> Self {
        self.rise = n.max(1);
        self
    }

    /// Whether this component being unavailable makes the service unavailable (503 on
    /// `/health` and `/health/ready`). Defaults to `true`.
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
}

/// The outcome of one run of a background task (the service kit's task statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskStatus {
    /// The run succeeded.
    Ok,
    /// A failure that will not go away by itself: unavailable at once.
    Fatal,
    /// A connection to a dependency failed.
    ConnectionError,
    /// Another error of the task's own.
    OtherException,
    /// A bug (e.g. an invariant broken).
    Internal,
    /// Unclassified.
    Unknown,
}

impl TaskStatus {
    /// `ok`, `fatal`, `connection_error`, `other_exception`, `internal` or `unknown`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Ok => "ok",
            TaskStatus::Fatal => "fatal",
            TaskStatus::ConnectionError => "connection_error",
            TaskStatus::OtherException => "other_exception",
            TaskStatus::Internal => "internal",
            TaskStatus::Unknown => "unknown",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A component fed by [`Monitor::report_task`](crate::Monitor::report_task): `threshold`
/// consecutive non-OK outcomes make it unavailable (a `Fatal` one at once); fewer make it
/// degraded; an `Ok` makes it available.
#[derive(Clone, Copy, Debug)]
pub struct Task {
    pub(crate) threshold: u32,
    pub(crate) critical: bool,
}

impl Default for Task {
    fn default() -> Self {
        Task::new()
    }
}

impl Task {
    /// A task component with a threshold of 3, not critical.
    pub fn new() -> Self {
        Task {
            threshold: 3,
            critical: false,
        }
    }

    /// Consecutive non-OK outcomes that make it unavailable. Defaults to 3.
    pub fn threshold(mut self, n: u32) -> Self {
        self.threshold = n.max(1);
        self
    }

    /// See [`Check::critical`]. Defaults to `false`.
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
}

/// Maps an error to a [`TaskStatus`] (for [`Monitor::report_task_error`](crate::Monitor::report_task_error)).
pub trait ClassifyTaskError: Send + Sync + 'static {
    /// The status of a run that failed with `error`.
    fn classify(&self, error: &(dyn std::error::Error + 'static)) -> TaskStatus;
}

impl<F> ClassifyTaskError for F
where
    F: Fn(&(dyn std::error::Error + 'static)) -> TaskStatus + Send + Sync + 'static,
{
    fn classify(&self, error: &(dyn std::error::Error + 'static)) -> TaskStatus {
        self(error)
    }
}

/// The default task classifier: an `std::io::Error` anywhere in the source chain whose kind is
/// about a connection (refused, reset, aborted, not connected, timed out, broken pipe, address
/// not available, unexpected end of file) is `ConnectionError`; anything else `OtherException`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultTaskClassifier;

impl ClassifyTaskError for DefaultTaskClassifier {
    fn classify(&self, error: &(dyn std::error::Error + 'static)) -> TaskStatus {
        use std::io::ErrorKind::*;
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = current {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if matches!(
                    io.kind(),
                    ConnectionRefused
                        | ConnectionReset
                        | ConnectionAborted
                        | NotConnected
                        | TimedOut
                        | BrokenPipe
                        | AddrNotAvailable
                        | UnexpectedEof
                ) {
                    return TaskStatus::ConnectionError;
                }
            }
            current = e.source();
        }
        TaskStatus::OtherException
    }
}

/// What a [`Rule`] watches on the request stream, over its window.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Signal {
    /// Share of requests the monitor's classifier called errors (0 to 1).
    ErrorRatio,
    /// Share of requests answered with a 5xx status (0 to 1).
    ServerErrorRatio,
    /// A latency quantile in seconds (e.g. `0.99`), estimated from histogram buckets.
    LatencyQuantile(f64),
    /// Requests per second.
    RequestRate,
}

impl Signal {
    pub(crate) fn describe(&self) -> String {
        match self {
            Signal::ErrorRatio => "error ratio".into(),
            Signal::ServerErrorRatio => "5xx ratio".into(),
            Signal::LatencyQuantile(q) => format!("p{} latency (s)", q * 100.0),
            Signal::RequestRate => "request rate (/s)".into(),
        }
    }
}

/// When a [`Rule`] fires.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// The signal is above the value.
    Above(f64),
    /// The signal is below the value.
    Below(f64),
    /// No request at all in the window.
    Absent,
}

/// An alert-style rule on the request stream: when `signal` meets `condition` over the last
/// `window`, continuously for `hold`, the component takes `level`; otherwise it is available.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub(crate) signal: Signal,
    pub(crate) condition: Condition,
    pub(crate) window: Duration,
    pub(crate) hold: Duration,
    pub(crate) min_requests: u64,
    pub(crate) level: Level,
    pub(crate) critical: bool,
}

impl Rule {
    /// A rule with a 60 s window, no hold, at least 1 request, setting `Degraded`.
    pub fn new(signal: Signal, condition: Condition) -> Self {
        Rule {
            signal,
            condition,
            window: Duration::from_secs(60),
            hold: Duration::ZERO,
            min_requests: 1,
            level: Level::Degraded,
            critical: false,
        }
    }

    /// The sliding window the signal is computed over (whole seconds, 1 s to 1 h). Defaults
    /// to 60 s.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.clamp(Duration::from_secs(1), Duration::from_secs(3600));
        self
    }

    /// How long the condition must hold before the rule fires. Defaults to 0.
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    /// Fewest requests in the window for a ratio or quantile to be judged. Defaults to 1.
    pub fn min_requests(mut self, n: u64) -> Self {
        self.min_requests = n.max(1);
        self
    }

    /// The level the component takes while the rule fires. Defaults to `Degraded`.
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// See [`Check::critical`]. Defaults to `false`.
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
}

/// A task report named a component that is not a registered task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownComponent(pub String);

impl fmt::Display for UnknownComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no task component named {:?} is registered on this monitor",
            self.0
        )
    }
}

impl std::error::Error for UnknownComponent {}

/// A registered component.
#[derive(Clone, Debug)]
pub(crate) struct ComponentSpec {
    pub(crate) name: String,
    pub(crate) kind: ComponentKind,
}

#[derive(Clone, Debug)]
pub(crate) enum ComponentKind {
    Check(Check),
    Task(Task),
    Rule(Rule),
}

impl ComponentSpec {
    pub(crate) fn critical(&self) -> bool {
        match &self.kind {
            ComponentKind::Check(c) => c.critical,
            ComponentKind::Task(t) => t.critical,
            ComponentKind::Rule(r) => r.critical,
        }
    }
}
