//! Results into component states: a check's result (consecutive failures before it goes
//! unavailable, successes before it comes back) and a task's reported status (the threshold of
//! consecutive failed runs, the error classifier).

use std::time::Instant;

use serde_json::json;

use super::Health;
use crate::health::model::{ComponentKind, Level, Task, TaskStatus, UnknownComponent};

impl Health {
    pub(super) fn check_result(&self, index: usize, result: Result<(), String>) {
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
}
