//! The published snapshot: each component's status (a silent check goes stale), the overall
//! level and its summary, readiness; publishing logs and reports level changes.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::Health;
use crate::health::model::{ComponentKind, ComponentStatus, HealthSnapshot, Level};

impl Health {
    /// Builds the snapshot from the component states (staleness judged at `now`).
    pub(super) fn build_snapshot(&self, now: Instant) -> HealthSnapshot {
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
                self.changed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(name.clone(), std::time::SystemTime::now());
                tracing::warn!(
                    component = name.as_str(),
                    from = before.map_or("none", Level::as_str),
                    to = status.level.as_str(),
                    summary = status.summary.as_str(),
                    "vitalsign: health of {name} changed"
                );
                if let (Some(annotations), Some(from)) = (self.annotations.get(), before) {
                    annotations.health_changed(name, from, status.level, &status.summary);
                }
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

#[cfg(test)]
mod tests {
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
}
