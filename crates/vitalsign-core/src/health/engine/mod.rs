//! The health engine: component states, the published snapshot, and the background thread
//! that runs checks and evaluates rules.

// This file: `Health` (the component states and their published snapshot), its construction
// and its accessors.
mod inputs; // results into component states: a check's (fall, rise), a task's (threshold)
mod rules; // rules on the request window: evaluation, verdicts, the next deadline
mod snapshot; // the snapshot: overall level, summary, readiness; publishing level changes
mod thread; // the health thread: checks on their interval under their timeout, rule ticks, liveness

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::model::{ClassifyTaskError, ComponentKind, ComponentSpec, HealthSnapshot, Level};
use super::window::RequestWindow;
use crate::Sink;

pub(crate) use thread::{HealthThread, Ticker};

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
    /// Told about level changes (stream `health`).
    annotations: OnceLock<Arc<crate::annotation::Annotations>>,
    /// When each component last changed level (none yet: since the start).
    changed: Mutex<BTreeMap<String, std::time::SystemTime>>,
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
            annotations: OnceLock::new(),
            changed: Mutex::new(BTreeMap::new()),
        };
        let first = health.build_snapshot(now);
        health.overall.send_replace(first.overall);
        health.snapshot.send_replace(Arc::new(first));
        // Rules are judged from the start, so the first snapshot already carries their figures.
        health.tick();
        health
    }

    /// When `component` last changed level; `None` if it kept its first level.
    #[cfg_attr(not(feature = "status"), allow(dead_code))]
    pub(crate) fn changed_at(&self, component: &str) -> Option<std::time::SystemTime> {
        let changed = self.changed.lock().unwrap_or_else(PoisonError::into_inner);
        changed.get(component).copied()
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

    /// Starts draining; whether this call started it.
    pub(crate) fn set_draining(&self) -> bool {
        if !self.draining.swap(true, Ordering::SeqCst) {
            tracing::warn!("vitalsign: draining: /health/ready answers 503 from now on");
            self.publish();
            return true;
        }
        false
    }

    /// Where level changes are annotated (stream `health`).
    pub(crate) fn set_annotations(&self, annotations: Arc<crate::annotation::Annotations>) {
        let _ = self.annotations.set(annotations);
    }
}

/// The earlier of two optional instants.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
