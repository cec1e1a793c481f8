//! The health model: components with a [`Level`], from async [`Check`]s, reported [`Task`]
//! statuses and [`Rule`]s on the request stream; the overall level is the worst of them.
//!
//! ```
//! use std::time::Duration;
//! use vitalsign_core::health::{Check, Condition, Level, Rule, Signal, Task, TaskStatus};
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop")
//!     .check(
//!         "db",
//!         Check::new(|| async { Ok::<(), String>(()) }) // e.g. `SELECT 1`
//!             .interval(Duration::from_secs(5))
//!             .timeout(Duration::from_millis(500)),
//!     )
//!     .task("ingest", Task::new().threshold(3))
//!     .rule(
//!         "http",
//!         Rule::new(Signal::ServerErrorRatio, Condition::Above(0.5))
//!             .window(Duration::from_secs(10))
//!             .min_requests(10),
//!     )
//!     .build()?;
//! monitor.report_task("ingest", TaskStatus::Ok).unwrap();
//! assert_eq!(monitor.health().components["ingest"].level, Level::Available);
//! # Ok::<(), vitalsign_core::ConfigError>(())
//! ```
//!
//! Checks run on vitalsign's own thread (a current-thread Tokio runtime), each under its
//! timeout, so a slow dependency never delays a probe and a stalled application runtime never
//! stops the checks; a probe reads the last published [`HealthSnapshot`].

/// Name of the thread that runs a monitor's checks and rules (one per monitor).
pub const HEALTH_THREAD: &str = "vitalsign-health";

mod engine;
mod model;
mod window;

pub use engine::ShutdownReport;
pub(crate) use engine::{Health, HealthConfig, HealthThread, Ticker};
pub use model::{
    Check, ClassifyTaskError, ComponentStatus, Condition, DefaultTaskClassifier, HealthSnapshot,
    Level, Rule, Signal, Task, TaskStatus, UnknownComponent,
};
pub(crate) use model::{ComponentKind, ComponentSpec};
