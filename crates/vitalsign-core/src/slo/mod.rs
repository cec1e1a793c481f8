//! Service-level objectives (feature `slo`): declared on the monitor, turned into a Prometheus
//! rule file (recording rules and multi-window, multi-burn-rate alerts) and a Grafana
//! dashboard, both generated from the same configuration as the metrics they query.
//!
//! ```
//! use std::time::Duration;
//! use vitalsign_core::{Monitor, Objective};
//!
//! let monitor = Monitor::builder("shop")
//!     .objective("api-availability", Objective::availability(0.999))
//!     .objective(
//!         "checkout-latency",
//!         Objective::latency(Duration::from_millis(250), 0.99).routes(["/checkout"]),
//!     )
//!     .build()?;
//! let rules = monitor.prometheus_rules();
//! assert!(rules.contains("record: \"slo:sli_error:ratio_rate5m\""));
//! assert!(rules.contains("alert: \"ErrorBudgetBurn\""));
//! let dashboard: serde_json::Value = serde_json::from_str(&monitor.grafana_dashboard()).unwrap();
//! assert_eq!(dashboard["title"], "shop (vitalsign)");
//! # Ok::<(), vitalsign_core::ConfigError>(())
//! ```
//!
//! # What counts as bad
//!
//! - **Availability**: a request is bad when the monitor's error classifier says so (by
//!   default status 5xx or an error code attached by the handler): the rules divide
//!   `http_server_errors_total` by `http_server_request_duration_seconds_count`.
//! - **Latency**: a request is bad when it took longer than the threshold, which must be a bound
//!   of the duration histogram's buckets: the rules compare the bucket `le="threshold"` with
//!   the count.
//!
//! # The alerts
//!
//! Four alert rules per objective, named `ErrorBudgetBurn` and told apart by their labels
//! `slo`, `severity` and `window` (long/short window), as in the multi-window,
//! multi-burn-rate alerts of Google's SRE workbook: each fires when the error ratio exceeds the
//! burn rate times the error budget (`1 - target`) over **both** its long and its short window.
//!
//! | severity | burn rate | long window | short window | budget spent when it fires (30 days) |
//! |---|---:|---:|---:|---:|
//! | `page` | 14.4 | 1h | 5m | 2% |
//! | `page` | 6 | 6h | 30m | 5% |
//! | `ticket` | 3 | 1d | 2h | 10% |
//! | `ticket` | 1 | 3d | 6h | 10% |
//!
//! **Low-traffic guard**: each alert also needs at least [`Objective::min_bad_requests`] bad
//! requests (default 3) in its long window. A service that sees a handful of requests an hour
//! would otherwise page on a single failure (1 of 5 is a 20% error ratio, far above any burn
//! threshold); a busy service never notices the guard, because its error ratio cannot cross a
//! threshold without many bad requests.

mod dashboard;
mod promql;
mod rules;

use std::time::Duration;

use crate::error::{ConfigError, ConfigErrorKind};
use crate::Method;

/// The default compliance period of an objective: 30 days.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// The default low-traffic guard: bad requests an alert's long window must hold.
pub const DEFAULT_MIN_BAD_REQUESTS: u32 = 3;

/// The windows over which the rules record the error ratio (the alerts' windows).
const RATIO_WINDOWS: [Duration; 7] = [
    Duration::from_secs(300),
    Duration::from_secs(1_800),
    Duration::from_secs(3_600),
    Duration::from_secs(7_200),
    Duration::from_secs(21_600),
    Duration::from_secs(86_400),
    Duration::from_secs(259_200),
];

/// One multi-window burn-rate alert.
#[derive(Clone, Copy, Debug)]
struct BurnAlert {
    severity: &'static str,
    burn: f64,
    long: Duration,
    short: Duration,
}

/// The four alerts of the SRE workbook (chapter "Alerting on SLOs", table 5-8 setting).
const BURN_ALERTS: [BurnAlert; 4] = [
    BurnAlert {
        severity: "page",
        burn: 14.4,
        long: Duration::from_secs(3_600),
        short: Duration::from_secs(300),
    },
    BurnAlert {
        severity: "page",
        burn: 6.0,
        long: Duration::from_secs(21_600),
        short: Duration::from_secs(1_800),
    },
    BurnAlert {
        severity: "ticket",
        burn: 3.0,
        long: Duration::from_secs(86_400),
        short: Duration::from_secs(7_200),
    },
    BurnAlert {
        severity: "ticket",
        burn: 1.0,
        long: Duration::from_secs(259_200),
        short: Duration::from_secs(21_600),
    },
];

/// The largest [`Objective::time_scale`]: the shortest window (5 minutes) must stay at least
/// one second long.
pub const MAX_TIME_SCALE: u32 = 300;

/// What an objective measures.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Availability,
    Latency(Duration),
}

/// A service-level objective, given to
/// [`MonitorBuilder::objective`](crate::MonitorBuilder::objective): a target fraction of good
/// requests over a compliance period, optionally narrowed to some routes and methods.
///
/// ```
/// use std::time::Duration;
/// use vitalsign_core::{Method, Objective};
///
/// let writes = Objective::availability(0.995)
///     .routes(["/orders", "/orders/{id}"])
///     .methods(&[Method::Post, Method::Put])
///     .period(Duration::from_secs(28 * 86_400));
/// # let _ = writes;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Objective {
    kind: Kind,
    target: f64,
    routes: Vec<String>,
    methods: Vec<Method>,
    period: Duration,
    min_bad_requests: u32,
    time_scale: u32,
}

impl Objective {
    fn new(kind: Kind, target: f64) -> Self {
        Objective {
            kind,
            target,
            routes: Vec::new(),
            methods: Vec::new(),
            period: DEFAULT_PERIOD,
            min_bad_requests: DEFAULT_MIN_BAD_REQUESTS,
            time_scale: 1,
        }
    }

    /// `target` (for example `0.999`) of requests succeed: a request fails when the monitor's
    /// error classifier ([`MonitorBuilder::classify_errors`](crate::MonitorBuilder::classify_errors))
    /// says so. `target` must be strictly between 0 and 1.
    pub fn availability(target: f64) -> Self {
        Objective::new(Kind::Availability, target)
    }

    /// `target` of requests complete within `threshold` (measured to the last body byte).
    /// `threshold` must be a bound of the duration buckets
    /// ([`MonitorBuilder::buckets`](crate::MonitorBuilder::buckets)); `build()` names the
    /// nearest ones otherwise.
    pub fn latency(threshold: Duration, target: f64) -> Self {
        Objective::new(Kind::Latency(threshold), target)
    }

    /// Narrows the objective to these route templates (as in the `http_route` label, e.g.
    /// `/users/{id}`); each call adds to the list. Default: every route.
    pub fn routes<I, S>(mut self, routes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.routes.extend(routes.into_iter().map(Into::into));
        self
    }

    /// Narrows the objective to these methods; each call adds to the list. Default: every
    /// method.
    pub fn methods(mut self, methods: &[Method]) -> Self {
        self.methods.extend_from_slice(methods);
        self
    }

    /// The compliance period: the window of the error budget. Default [`DEFAULT_PERIOD`]
    /// (30 days); at least 3 days (the longest alert window).
    pub fn period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// The low-traffic guard: an alert fires only when its long window holds at least `n`
    /// bad requests (default [`DEFAULT_MIN_BAD_REQUESTS`]; at least 1).
    pub fn min_bad_requests(mut self, n: u32) -> Self {
        self.min_bad_requests = n;
        self
    }

    /// **For tests only**: divides every window and the compliance period by `divisor` (1 to
    /// [`MAX_TIME_SCALE`]), so that with 60 the fast page looks at 1 minute and 5 seconds
    /// instead of 1 hour and 5 minutes. Rule names carry the scaled windows
    /// (`slo:sli_error:ratio_rate5s`). Default 1.
    pub fn time_scale(mut self, divisor: u32) -> Self {
        self.time_scale = divisor;
        self
    }

    /// The target fraction of good requests.
    pub fn target(&self) -> f64 {
        self.target
    }

    fn scaled(&self, window: Duration) -> Duration {
        window / self.time_scale.max(1)
    }

    /// One sentence: what the objective promises.
    fn describe(&self) -> String {
        let scope = match (self.routes.as_slice(), self.methods.as_slice()) {
            ([], []) => "requests".to_owned(),
            (routes, methods) => {
                let mut scope = String::new();
                if !methods.is_empty() {
                    let names: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
                    scope.push_str(&names.join("/"));
                    scope.push(' ');
                }
                scope.push_str("requests");
                if !routes.is_empty() {
                    scope.push_str(" to ");
                    scope.push_str(&routes.join(", "));
                }
                scope
            }
        };
        let what = match self.kind {
            Kind::Availability => "succeed".to_owned(),
            Kind::Latency(threshold) => {
                format!("complete within {}", promql::duration(threshold))
            }
        };
        format!(
            "{} of {scope} {what}, over {}",
            promql::percent(self.target),
            promql::duration(self.scaled(self.period))
        )
    }
}

/// What the generators need of the monitor's configuration.
#[derive(Debug)]
pub(crate) struct SloSpec {
    pub(crate) service: String,
    pub(crate) namespace: Option<String>,
    pub(crate) global_labels: Vec<(String, String)>,
    pub(crate) objectives: Vec<(String, Objective)>,
}

impl SloSpec {
    /// `base` with the monitor's namespace.
    fn metric(&self, base: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}_{base}"),
            None => base.to_owned(),
        }
    }

    /// A recording rule's name: `slo:…` with the namespace in front of its level.
    fn record(&self, rest: &str) -> String {
        self.metric(&format!("slo:{rest}"))
    }

    /// The matchers every query carries: the global labels.
    fn global_matchers(&self) -> promql::Matchers {
        self.global_labels
            .iter()
            .fold(promql::Matchers::default(), |m, (k, v)| m.equal(k, v))
    }

    /// The labels the rules aggregate by: `job` (one service per scrape job) and the global
    /// labels.
    fn grouping(&self) -> String {
        std::iter::once("job")
            .chain(self.global_labels.iter().map(|(k, _)| k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Checks the objectives against the rest of the configuration (part of `build()`).
pub(crate) fn validate(
    objectives: &[(String, Objective)],
    buckets: &[f64],
    prometheus: bool,
) -> Result<(), ConfigError> {
    use ConfigErrorKind::*;
    const SETTING: &str = "objective";
    let mut names: Vec<&str> = Vec::new();
    for (name, objective) in objectives {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid_name {
            return Err(ConfigError::new(
                InvalidName,
                SETTING,
                format!("objective name {name:?} is not valid: use 1 to 64 of A-Z a-z 0-9 _ - ."),
            ));
        }
        if names.contains(&name.as_str()) {
            return Err(ConfigError::new(
                DuplicateName,
                SETTING,
                format!("objective {name:?} is declared twice"),
            ));
        }
        names.push(name);
        if !prometheus {
            return Err(ConfigError::new(
                InvalidValue,
                SETTING,
                format!(
                    "objective {name:?}: objectives are computed by Prometheus from the \
                     monitor's Prometheus series, and this monitor has no Prometheus sink \
                     (without_prometheus)"
                ),
            ));
        }
        let target = objective.target;
        if !(target > 0.0 && target < 1.0) {
            return Err(ConfigError::new(
                OutOfRange,
                SETTING,
                format!(
                    "objective {name:?}: target {target} is not strictly between 0 and 1 \
                     (99.9% is 0.999)"
                ),
            ));
        }
        if let Kind::Latency(threshold) = objective.kind {
            let seconds = threshold.as_secs_f64();
            if !buckets.contains(&seconds) {
                let below = buckets.iter().rev().find(|b| **b < seconds);
                let above = buckets.iter().find(|b| **b > seconds);
                let nearest = match (below, above) {
                    (Some(b), Some(a)) => format!("the nearest are {b} and {a}"),
                    (Some(b), None) => format!("the largest is {b}"),
                    (None, Some(a)) => format!("the smallest is {a}"),
                    (None, None) => "there are none".to_owned(),
                };
                return Err(ConfigError::new(
                    InvalidValue,
                    SETTING,
                    format!(
                        "objective {name:?}: latency threshold {seconds} s is not a bucket \
                         bound of the duration histogram ({nearest}); pick one of them, or add \
                         {seconds} to MonitorBuilder::buckets"
                    ),
                ));
            }
        }
        if objective.routes.iter().any(String::is_empty) {
            return Err(ConfigError::new(
                InvalidValue,
                SETTING,
                format!("objective {name:?}: a route is empty"),
            ));
        }
        if objective.period < BURN_ALERTS[3].long {
            return Err(ConfigError::new(
                OutOfRange,
                SETTING,
                format!(
                    "objective {name:?}: compliance period {} is shorter than 3 days, the \
                     longest alert window",
                    promql::duration(objective.period)
                ),
            ));
        }
        if objective.min_bad_requests == 0 {
            return Err(ConfigError::new(
                OutOfRange,
                SETTING,
                format!("objective {name:?}: min_bad_requests must be at least 1"),
            ));
        }
        if !(1..=MAX_TIME_SCALE).contains(&objective.time_scale) {
            return Err(ConfigError::new(
                OutOfRange,
                SETTING,
                format!(
                    "objective {name:?}: time_scale {} is not within 1..={MAX_TIME_SCALE}",
                    objective.time_scale
                ),
            ));
        }
    }
    Ok(())
}

impl crate::Monitor {
    /// A Prometheus rule file (YAML) for the monitor's objectives: one group per objective,
    /// with recording rules for the error ratio over every alert window and over the compliance
    /// period, the remaining error budget, and four burn-rate alerts (see [the module
    /// docs](crate::slo)). Prometheus loads it as it is (`rule_files:`); `promtool check rules`
    /// passes on it. Metric names follow the monitor's namespace, and every query selects the
    /// monitor's global labels.
    ///
    /// A monitor without objectives gives a valid file with no groups.
    pub fn prometheus_rules(&self) -> String {
        rules::render(self.slo_spec())
    }

    /// A Grafana dashboard (JSON, the schema Grafana 10 and 11 import) for this monitor:
    /// request rate, error ratio, latency p50/p90/p99 per route, in-flight requests,
    /// disconnects, health per component, and for each objective its remaining error budget
    /// and burn rates (those two read the series of [`Monitor::prometheus_rules`](crate::Monitor::prometheus_rules), which
    /// Prometheus must load). Variables: the Prometheus data source and the route.
    pub fn grafana_dashboard(&self) -> String {
        dashboard::render(self.slo_spec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConfigErrorKind, Monitor};

    #[test]
    fn a_latency_threshold_off_the_buckets_names_the_nearest_ones() {
        let err = Monitor::builder("s")
            .objective("slow", Objective::latency(Duration::from_millis(300), 0.99))
            .build()
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.setting()),
            (ConfigErrorKind::InvalidValue, "objective")
        );
        assert!(
            err.to_string().contains("the nearest are 0.25 and 0.5"),
            "{err}"
        );
        // The same threshold passes once it is a bucket bound, whatever the order of the calls.
        Monitor::builder("s")
            .objective("slow", Objective::latency(Duration::from_millis(300), 0.99))
            .buckets(&[0.1, 0.3, 1.0])
            .build()
            .unwrap();
    }

    #[test]
    fn objectives_are_validated_at_build() {
        let cases = [
            (
                Objective::availability(1.0),
                ConfigErrorKind::OutOfRange,
                "target 1",
            ),
            (
                Objective::availability(0.0),
                ConfigErrorKind::OutOfRange,
                "target 0",
            ),
            (
                Objective::availability(f64::NAN),
                ConfigErrorKind::OutOfRange,
                "target NaN",
            ),
            (
                Objective::availability(0.9).period(Duration::from_secs(86_400)),
                ConfigErrorKind::OutOfRange,
                "shorter than 3 days",
            ),
            (
                Objective::availability(0.9).min_bad_requests(0),
                ConfigErrorKind::OutOfRange,
                "min_bad_requests",
            ),
            (
                Objective::availability(0.9).time_scale(301),
                ConfigErrorKind::OutOfRange,
                "time_scale 301",
            ),
            (
                Objective::availability(0.9).routes([""]),
                ConfigErrorKind::InvalidValue,
                "route is empty",
            ),
        ];
        for (objective, kind, text) in cases {
            let err = Monitor::builder("s")
                .objective("o", objective)
                .build()
                .unwrap_err();
            assert_eq!((err.kind(), err.setting()), (kind, "objective"), "{err}");
            assert!(err.to_string().contains(text), "{err}");
        }
        for name in ["", "a b", "x\"y", &"n".repeat(65)] {
            let err = Monitor::builder("s")
                .objective(name, Objective::availability(0.9))
                .build()
                .unwrap_err();
            assert_eq!(err.kind(), ConfigErrorKind::InvalidName, "{name:?}");
        }
        let err = Monitor::builder("s")
            .objective("a", Objective::availability(0.9))
            .objective("a", Objective::availability(0.99))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ConfigErrorKind::DuplicateName);
        let err = Monitor::builder("s")
            .without_prometheus()
            .objective("a", Objective::availability(0.9))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ConfigErrorKind::InvalidValue);
        assert!(err.to_string().contains("no Prometheus sink"), "{err}");
    }

    #[test]
    fn an_objective_describes_itself() {
        let o = Objective::latency(Duration::from_millis(250), 0.99)
            .routes(["/users/{id}"])
            .methods(&[Method::Get]);
        assert_eq!(
            o.describe(),
            "99% of GET requests to /users/{id} complete within 250ms, over 30d"
        );
        assert_eq!(
            Objective::availability(0.999).time_scale(60).describe(),
            "99.9% of requests succeed, over 12h"
        );
    }
}
