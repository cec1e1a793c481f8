//! The health engine: component states, the published snapshot, and the background thread
//! that runs checks and evaluates rules.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{watch, Notify};

use super::model::{
    Check, ClassifyTaskError, ComponentKind, ComponentSpec, ComponentStatus, Condition,
    HealthSnapshot, Level, Rule, Signal, Task, TaskStatus, UnknownComponent,
};
use super::window::RequestWindow;
use crate::Sink;

/// How often the health thread re-evaluates rules while a rule has requests in its window.
/// With none, it sleeps until a request arrives, a deadline of its own comes (a hold that
/// ends, an `Absent` window that fills, a stats interval that closes) or it is poked.
const TICK: Duration = Duration::from_millis(100);

/// Past this long busy without a pause of the health thread, readers rebuild the snapshot
/// themselves.
const STUCK: Duration = Duration::from_secs(1);

/// What [`Monitor::shutdown`](crate::Monitor::shutdown) reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// How long it waited for in-flight requests.
    pub waited: Duration,
    /// Requests still in flight when the deadline passed (0: all finished).
    pub cut: u64,
    /// Whether every push sink sent its queue before the deadline.
    pub flushed: bool,
}

/// Health configuration gathered by the builder.
#[derive(Debug, Default)]
pub(crate) struct HealthConfig {
    pub(crate) components: Vec<ComponentSpec>,
}

#[derive(Debug)]
struct State {
    level: Level,
    summary: String,
    detail: Option<String>,
    meta: Option<serde_json::Value>,
    /// When the last result arrived (checks, tasks).
    last_report: Option<Instant>,
    failures: u32,
    successes: u32,
    /// Since when a rule's condition has held.
    holding_since: Option<Instant>,
}

#[derive(Debug)]
struct Component {
    spec: ComponentSpec,
    state: Mutex<State>,
    level: watch::Sender<Level>,
}

impl Component {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The health of one monitor.
pub(crate) struct Health {
    components: Vec<Component>,
    snapshot: watch::Sender<Arc<HealthSnapshot>>,
    overall: watch::Sender<Level>,
    /// Serialises publishing, so transitions are logged once and in order.
    publishing: Mutex<()>,
    draining: AtomicBool,
    window: Option<Arc<RequestWindow>>,
    /// The longest rule window, in seconds.
    window_seconds: u64,
    classifier: Box<dyn ClassifyTaskError>,
    started: Instant,
    /// Milliseconds after `started`, plus one, since which the health thread has been busy;
    /// 0 while it waits for work (set by its runtime's park and unpark hooks).
    busy_since_ms: AtomicU64,
    /// The health thread has ended (a panic, or the monitor is being dropped).
    ended: AtomicBool,
    /// Wakes the health thread: a request into an armed window, or a poke.
    wake: Arc<Notify>,
    sinks: OnceLock<Vec<Arc<dyn Sink>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("components", &self.components.len())
            .field("draining", &self.draining)
            .finish_non_exhaustive()
    }
}

impl Health {
    pub(crate) fn new(config: HealthConfig, classifier: Box<dyn ClassifyTaskError>) -> Self {
        let now = Instant::now();
        let window_seconds = config
            .components
            .iter()
            .filter_map(|c| match &c.kind {
                ComponentKind::Rule(rule) => Some(rule.window.as_secs()),
                _ => None,
            })
            .max();
        let wake = Arc::new(Notify::new());
        let components = config
            .components
            .into_iter()
            .map(|spec| {
                let (level, summary) = match &spec.kind {
                    ComponentKind::Check(_) => {
                        (Level::Unavailable, "pending: no result yet".to_owned())
                    }
                    ComponentKind::Task(_) => (Level::Available, "no run reported yet".to_owned()),
                    ComponentKind::Rule(_) => {
                        (Level::Available, "no requests evaluated yet".to_owned())
                    }
                };
                Component {
                    spec,
                    state: Mutex::new(State {
                        level,
                        summary,
                        detail: None,
                        meta: None,
                        last_report: None,
                        failures: 0,
                        successes: 0,
                        holding_since: None,
                    }),
                    level: watch::Sender::new(level),
                }
            })
            .collect();
        let health = Health {
            components,
            snapshot: watch::Sender::new(Arc::new(HealthSnapshot {
                overall: Level::Available,
                summary: String::new(),
                components: BTreeMap::new(),
                ready: false,
                draining: false,
                pending: Vec::new(),
            })),
            overall: watch::Sender::new(Level::Available),
            publishing: Mutex::new(()),
            draining: AtomicBool::new(false),
            window: window_seconds.map(|s| Arc::new(RequestWindow::new(s, Arc::clone(&wake)))),
            window_seconds: window_seconds.unwrap_or(0),
            classifier,
            started: now,
            // Busy from the start until its thread first waits.
            busy_since_ms: AtomicU64::new(1),
            ended: AtomicBool::new(false),
            wake,
            sinks: OnceLock::new(),
        };
        let first = health.build_snapshot(now);
        health.overall.send_replace(first.overall);
        health.snapshot.send_replace(Arc::new(first));
        // Rules are judged from the start, so the first snapshot already carries their figures.
        health.tick();
        health
    }

    /// The request window rules read (a sink to add to the monitor), if there are rules.
    pub(crate) fn window(&self) -> Option<Arc<RequestWindow>> {
        self.window.clone()
    }

    /// Sinks told about level changes (the Prometheus gauge); reports the initial levels.
    pub(crate) fn set_sinks(&self, sinks: Vec<Arc<dyn Sink>>) {
        for component in &self.components {
            let level = component.lock().level;
            for sink in &sinks {
                sink.health_changed(&component.spec.name, level);
            }
        }
        let _ = self.sinks.set(sinks);
    }

    /// The published snapshot. Should the health thread be stuck (a check blocking its
    /// thread), the caller republishes, so that staleness still shows.
    pub(crate) fn snapshot(&self) -> Arc<HealthSnapshot> {
        if self.stalled_for() > STUCK {
            self.publish();
        }
        self.snapshot.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<HealthSnapshot>> {
        self.snapshot.subscribe()
    }

    pub(crate) fn subscribe_level(
        &self,
        component: Option<&str>,
    ) -> Option<watch::Receiver<Level>> {
        match component {
            None => Some(self.overall.subscribe()),
            Some(name) => self
                .components
                .iter()
                .find(|c| c.spec.name == name)
                .map(|c| c.level.subscribe()),
        }
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn set_draining(&self) {
        if !self.draining.swap(true, Ordering::SeqCst) {
            tracing::warn!("vitalsign: draining: /health/ready answers 503 from now on");
            self.publish();
        }
    }

    /// How long the health thread has been busy without waiting for work: zero while it
    /// waits. A thread stuck in a check or on a lock keeps counting; one that has ended is
    /// stalled for [`Duration::MAX`].
    pub(crate) fn stalled_for(&self) -> Duration {
        if self.ended.load(Ordering::Relaxed) {
            return Duration::MAX;
        }
        match self.busy_since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => self
                .started
                .elapsed()
                .saturating_sub(Duration::from_millis(since - 1)),
        }
    }

    /// Asks the health thread for a round (rules, snapshot: it takes the monitor's locks), so
    /// that a thread that cannot finish one shows in [`Health::stalled_for`].
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    /// Park and unpark hooks of the health thread's runtime.
    fn resting(&self, resting: bool) {
        let since = if resting {
            0
        } else {
            self.started.elapsed().as_millis() as u64 + 1
        };
        self.busy_since_ms.store(since, Ordering::Relaxed);
    }

    /// When check `index` goes stale if no result arrives.
    fn stale_at(&self, index: usize, check: &Check) -> Instant {
        let since = self.components[index]
            .lock()
            .last_report
            .unwrap_or(self.started);
        since + check.interval * 3 + Duration::from_millis(1)
    }

    // ---- inputs ----

    fn check_result(&self, index: usize, result: Result<(), String>) {
        let component = &self.components[index];
        let ComponentKind::Check(check) = &component.spec.kind else {
            return;
        };
        let mut state = component.lock();
        let first = state.last_report.is_none();
        state.last_report = Some(Instant::now());
        match result {
            Ok(()) => {
                state.failures = 0;
                state.successes = state.successes.saturating_add(1);
                if first || state.level == Level::Available || state.successes >= check.rise {
                    state.level = Level::Available;
                    state.summary = "ok".into();
                    state.detail = None;
                } else {
                    state.detail = Some(format!(
                        "{} of {} successes needed to come back",
                        state.successes, check.rise
                    ));
                }
            }
            Err(error) => {
                state.successes = 0;
                state.failures = state.failures.saturating_add(1);
                if first || state.level != Level::Available || state.failures >= check.fall {
                    state.level = Level::Unavailable;
                    state.summary = error;
                    state.detail = None;
                } else {
                    state.detail = Some(format!(
                        "{} of {} failures before going unavailable: {error}",
                        state.failures, check.fall
                    ));
                }
            }
        }
        state.meta = Some(json!({ "consecutive_failures": state.failures }));
        drop(state);
        self.publish();
    }

    pub(crate) fn report_task(
        &self,
        name: &str,
        status: TaskStatus,
    ) -> Result<(), UnknownComponent> {
        let component = self
            .components
            .iter()
            .find(|c| c.spec.name == name && matches!(c.spec.kind, ComponentKind::Task(_)))
            .ok_or_else(|| UnknownComponent(name.to_owned()))?;
        let ComponentKind::Task(task) = &component.spec.kind else {
            unreachable!("filtered above");
        };
        let mut state = component.lock();
        state.last_report = Some(Instant::now());
        match status {
            TaskStatus::Ok => {
                state.failures = 0;
                state.level = Level::Available;
                state.summary = "last run ok".into();
            }
            status => {
                state.failures = state.failures.saturating_add(1);
                let Task { threshold, .. } = *task;
                if status == TaskStatus::Fatal {
                    state.level = Level::Unavailable;
                    state.summary = "last run failed: fatal".into();
                } else if state.failures >= threshold {
                    state.level = Level::Unavailable;
                    state.summary = format!(
                        "{} consecutive failed runs (threshold {threshold}), last: {status}",
                        state.failures
                    );
                } else {
                    state.level = Level::Degraded;
                    state.summary = format!(
                        "{} of {threshold} consecutive failed runs, last: {status}",
                        state.failures
                    );
                }
            }
        }
        state.meta = Some(json!({
            "last_status": status.as_str(),
            "consecutive_failures": state.failures,
            "threshold": task.threshold,
        }));
        drop(state);
        self.publish();
        Ok(())
    }

    pub(crate) fn classify(&self, error: &(dyn std::error::Error + 'static)) -> TaskStatus {
        self.classifier.classify(error)
    }

    /// Re-evaluates the rules and publishes. Returns when the rules next need it if no
    /// request arrives (`None`: only when one does; the window is then armed to wake the
    /// thread).
    pub(crate) fn tick(&self) -> Option<Instant> {
        let mut next = None;
        if let Some(window) = &self.window {
            let now = Instant::now();
            for component in &self.components {
                if let ComponentKind::Rule(rule) = &component.spec.kind {
                    next = earliest(next, evaluate(rule, window, &mut component.lock(), now));
                }
            }
            // Requests in a window age out second by second, and rates move with the span:
            // evaluate again soon. Without any, nothing moves until the next request.
            if !window.arm(self.window_seconds) {
                next = earliest(next, Some(now + TICK));
            }
        }
        self.publish();
        next
    }

    // ---- output ----

    /// Builds the snapshot from the component states (staleness judged at `now`).
    fn build_snapshot(&self, now: Instant) -> HealthSnapshot {
        let mut components = BTreeMap::new();
        let mut pending = Vec::new();
        for component in &self.components {
            let critical = component.spec.critical();
            let state = component.lock();
            let mut status = ComponentStatus {
                level: state.level,
                summary: state.summary.clone(),
                detail: state.detail.clone(),
                meta: state.meta.clone(),
                critical,
            };
            if let ComponentKind::Check(check) = &component.spec.kind {
                let since = state.last_report.unwrap_or(self.started);
                let silent = now.saturating_duration_since(since);
                if silent > check.interval * 3 {
                    status.level = Level::Unavailable;
                    status.summary = format!(
                        "stale: no result for {} ms (3 intervals of {} ms)",
                        silent.as_millis(),
                        check.interval.as_millis()
                    );
                }
                if state.last_report.is_none() && critical {
                    pending.push(component.spec.name.clone());
                }
            }
            components.insert(component.spec.name.clone(), status);
        }
        let effective = |s: &ComponentStatus| {
            if s.critical {
                s.level
            } else {
                s.level.max(Level::Degraded)
            }
        };
        let overall = components
            .values()
            .map(effective)
            .min()
            .unwrap_or(Level::Available);
        let failing: Vec<String> = components
            .iter()
            .filter(|(_, s)| s.level != Level::Available)
            .map(|(name, s)| format!("{name} is {} ({})", s.level, s.summary))
            .collect();
        let summary = if failing.is_empty() {
            let mut names = components.keys();
            match (names.next(), components.len()) {
                (None, _) => "no health components are registered".to_owned(),
                (Some(only), 1) => format!("{only} is available"),
                (_, n) => format!("all {n} components are available"),
            }
        } else {
            failing.join("; ")
        };
        let draining = self.is_draining();
        let critical_down = components
            .values()
            .any(|s| s.critical && s.level == Level::Unavailable);
        HealthSnapshot {
            overall,
            summary,
            ready: !draining && pending.is_empty() && !critical_down,
            components,
            draining,
            pending,
        }
    }

    /// Publishes a new snapshot if anything changed; logs and reports level transitions.
    pub(crate) fn publish(&self) {
        let _serial = self
            .publishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let next = self.build_snapshot(Instant::now());
        let previous = self.snapshot.borrow().clone();
        if *previous == next {
            return;
        }
        for (name, status) in &next.components {
            let before = previous.components.get(name).map(|s| s.level);
            if before.is_some() && before != Some(status.level) {
                tracing::warn!(
                    component = name.as_str(),
                    from = before.map_or("none", Level::as_str),
                    to = status.level.as_str(),
                    summary = status.summary.as_str(),
                    "vitalsign: health of {name} changed"
                );
            }
            if let Some(component) = self.components.iter().find(|c| &c.spec.name == name) {
                let changed = component.level.send_if_modified(|level| {
                    std::mem::replace(level, status.level) != status.level
                });
                if changed {
                    for sink in self.sinks.get().into_iter().flatten() {
                        sink.health_changed(name, status.level);
                    }
                }
            }
        }
        if previous.overall != next.overall && !previous.summary.is_empty() {
            tracing::warn!(
                from = previous.overall.as_str(),
                to = next.overall.as_str(),
                "vitalsign: overall health changed: {}",
                next.summary
            );
        }
        self.overall
            .send_if_modified(|level| std::mem::replace(level, next.overall) != next.overall);
        self.snapshot.send_replace(Arc::new(next));
    }
}

/// The earlier of two optional instants.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Evaluates one rule into its component's state. Returns when its verdict changes by itself
/// if no request arrives: an `Absent` window that fills, or a hold that ends.
fn evaluate(
    rule: &Rule,
    window: &RequestWindow,
    state: &mut State,
    now: Instant,
) -> Option<Instant> {
    let seconds = rule.window.as_secs();
    let totals = window.totals(seconds);
    let full = Duration::from_secs(seconds);
    let value = match rule.signal {
        Signal::ErrorRatio => {
            (totals.requests > 0).then(|| totals.errors as f64 / totals.requests as f64)
        }
        Signal::ServerErrorRatio => {
            (totals.requests > 0).then(|| totals.server_errors as f64 / totals.requests as f64)
        }
        Signal::LatencyQuantile(q) => totals.quantile(q),
        Signal::RequestRate => Some(totals.rate()),
    };
    let judged = matches!(rule.signal, Signal::RequestRate)
        || matches!(rule.condition, Condition::Absent)
        || totals.requests >= rule.min_requests;
    let (holds, wording) = match (rule.condition, value) {
        // Only once the window has been watched for its whole length.
        (Condition::Absent, _) => (
            totals.requests == 0 && totals.span >= full,
            "no requests".to_owned(),
        ),
        (_, None) => (false, String::new()),
        (Condition::Above(limit), Some(v)) => (judged && v > limit, format!("above {limit}")),
        (Condition::Below(limit), Some(v)) => (judged && v < limit, format!("below {limit}")),
    };
    let since = if holds {
        *state.holding_since.get_or_insert(now)
    } else {
        state.holding_since = None;
        now
    };
    let fires = holds && now.saturating_duration_since(since) >= rule.hold;
    let signal = rule.signal.describe();
    let shown = value.map_or("none".to_owned(), |v| format!("{v:.3}"));
    if fires {
        state.level = rule.level;
        state.summary = match rule.condition {
            Condition::Absent => format!("no requests in the last {seconds} s"),
            _ => format!(
                "{signal} {shown} {wording} over the last {seconds} s ({})",
                requests(totals.requests)
            ),
        };
    } else {
        state.level = Level::Available;
        state.summary = if !judged {
            format!(
                "{} in the last {seconds} s, fewer than {} needed to judge",
                requests(totals.requests),
                rule.min_requests
            )
        } else if holds {
            format!(
                "{signal} {shown}: condition holding, fires after {} ms",
                rule.hold.as_millis()
            )
        } else {
            format!(
                "{signal} {shown} over the last {seconds} s ({})",
                requests(totals.requests)
            )
        };
    }
    state.meta = Some(json!({
        "value": value,
        "requests": totals.requests,
        "window_seconds": seconds,
    }));
    if holds && !fires {
        Some(since + rule.hold)
    } else if matches!(rule.condition, Condition::Absent) && totals.requests == 0 && !holds {
        Some(now + full.saturating_sub(totals.span))
    } else {
        None
    }
}

/// The background thread of a monitor's health: runs checks, ticks rules; ends when dropped.
#[derive(Debug)]
pub(crate) struct HealthThread {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl HealthThread {
    /// Spawns the thread; `tickers` run on every round after the health one.
    pub(crate) fn spawn(health: Arc<Health>, tickers: Vec<Ticker>) -> std::io::Result<Self> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (parked, unparked) = (Arc::clone(&health), Arc::clone(&health));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(move || parked.resting(true))
            .on_thread_unpark(move || unparked.resting(false))
            .build()?;
        std::thread::Builder::new()
            .name(super::HEALTH_THREAD.into())
            .spawn(move || {
                let _ended = Ended(Arc::clone(&health));
                runtime.block_on(run(health, tickers, stopped));
            })?;
        Ok(HealthThread { _stop: stop })
    }
}

/// Marks the health thread ended when it ends, by a panic too.
struct Ended(Arc<Health>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::Relaxed);
    }
}

/// Work done on each round of the health thread; returns when it next needs a round
/// (`None`: it has no deadline of its own).
pub(crate) type Ticker = Box<dyn Fn(Instant) -> Option<Instant> + Send + Sync>;

async fn run(
    health: Arc<Health>,
    tickers: Vec<Ticker>,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    for (index, component) in health.components.iter().enumerate() {
        if let ComponentKind::Check(check) = &component.spec.kind {
            tokio::spawn(run_check(Arc::clone(&health), index, check.clone()));
        }
    }
    let ticker = {
        let health = Arc::clone(&health);
        async move {
            loop {
                let mut next = health.tick();
                let now = Instant::now();
                for ticker in &tickers {
                    next = earliest(next, ticker(now));
                }
                // Sleeps until the earliest deadline, a request into an armed window, or a
                // poke (a permit left while the round ran counts).
                let woken = health.wake.notified();
                match next {
                    Some(at) => {
                        let _ = tokio::time::timeout_at(at.into(), woken).await;
                    }
                    None => woken.await,
                }
            }
        }
    };
    tokio::select! {
        _ = stopped => {}
        _ = ticker => {}
    }
}

async fn run_check(health: Arc<Health>, index: usize, check: Check) {
    let mut interval = tokio::time::interval(check.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let run = (check.run)();
        // Spawned, so that a panic in the check is caught here as a JoinError.
        let mut run = tokio::spawn(tokio::time::timeout(check.timeout, run));
        // A run outlasting three intervals (its timeout allows it) makes the check stale:
        // republish when that happens, then keep waiting for the run.
        let stale_at = health.stale_at(index, &check);
        let outcome = tokio::select! {
            outcome = &mut run => outcome,
            () = tokio::time::sleep_until(stale_at.into()) => {
                health.publish();
                run.await
            }
        };
        let result = match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(format!("timed out after {} ms", check.timeout.as_millis())),
            Err(join) => Err(match join.try_into_panic() {
                Ok(panic) => format!("check panicked: {}", panic_message(&*panic)),
                Err(_) => "check was cancelled".to_owned(),
            }),
        };
        health.check_result(index, result);
    }
}

/// "1 request", "2 requests".
fn requests(n: u64) -> String {
    if n == 1 {
        "1 request".to_owned()
    } else {
        format!("{n} requests")
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Task, TaskStatus};
    use crate::Monitor;

    /// Regression (review item 20): one component gave "all 1 components are available".
    #[test]
    fn the_summary_counts_components_in_good_english() {
        let summary = |tasks: &[&str]| {
            let mut builder = Monitor::builder("svc");
            for name in tasks {
                builder = builder.task(*name, Task::new());
            }
            let monitor = builder.build().unwrap();
            for name in tasks {
                monitor.report_task(name, TaskStatus::Ok).unwrap();
            }
            monitor.health().summary.clone()
        };
        assert_eq!(summary(&[]), "no health components are registered");
        assert_eq!(summary(&["ingest"]), "ingest is available");
        assert_eq!(
            summary(&["ingest", "mailer"]),
            "all 2 components are available"
        );
    }

    /// A rule's summary read "1 requests in the last 10 s" (seen in the demo's `/health`).
    #[test]
    fn a_rule_summary_counts_requests_in_good_english() {
        use crate::adapter::{begin, RequestStart};
        use crate::health::{Condition, Rule, Signal};
        let monitor = Monitor::builder("svc")
            .rule(
                "http",
                Rule::new(Signal::ServerErrorRatio, Condition::Above(0.5)).min_requests(10),
            )
            .build()
            .unwrap();
        let mut flight = begin(
            &monitor,
            RequestStart::new(b"GET", "/").with_route(Some("/")),
        );
        flight.set_status(200);
        flight.complete();
        let deadline = Instant::now() + Duration::from_secs(10);
        let summary = loop {
            let summary = monitor.health().components["http"].summary.clone();
            if summary.starts_with('1') {
                break summary;
            }
            assert!(Instant::now() < deadline, "no request seen: {summary}");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(summary.starts_with("1 request in the last"), "{summary}");
    }

    fn health() -> Arc<Health> {
        Arc::new(Health::new(
            HealthConfig::default(),
            Box::new(super::super::DefaultTaskClassifier),
        ))
    }

    fn wait(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A health thread that waits for work is not stalled; one that has ended (here by a
    /// panic in its round) is, at once, so that `/health/live` need not wait 5 s to say so.
    #[test]
    fn the_stall_is_zero_while_waiting_and_endless_once_the_thread_ended() {
        let resting = health();
        let _thread = HealthThread::spawn(Arc::clone(&resting), Vec::new()).unwrap();
        wait("the thread waits for work", || {
            resting.stalled_for() == Duration::ZERO
        });

        let dying = health();
        let _thread = HealthThread::spawn(
            Arc::clone(&dying),
            vec![Box::new(|_| panic!("a round that panics"))],
        )
        .unwrap();
        wait("the thread ended", || dying.stalled_for() == Duration::MAX);
    }
}
