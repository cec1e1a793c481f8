//! Rules on the request stream: each rule's signal over its window judged against its
//! condition (`above`, `below`, `absent`), held for its duration, into its component's state.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{earliest, Health, State};
use crate::health::model::{ComponentKind, Condition, Level, Rule, Signal};
use crate::health::window::RequestWindow;

/// How often the health thread re-evaluates rules while a rule has requests in its window.
/// With none, it sleeps until a request arrives, a deadline of its own comes (a hold that
/// ends, an `Absent` window that fills, a stats interval that closes) or it is poked.
const TICK: Duration = Duration::from_millis(100);

impl Health {
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

/// "1 request", "2 requests".
fn requests(n: u64) -> String {
    if n == 1 {
        "1 request".to_owned()
    } else {
        format!("{n} requests")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Monitor;

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
}
