//! [`MonitorBuilder::build`]: validation, then assembly of sinks, threads and shared state.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use super::builder::BoxedTaskClassifier;
use super::clock::WallClock;
use super::exclude::{second_byte, ExcludedTemplate};
use super::labels::{check_name, MAX_LABEL_TAGS, RESERVED_LABEL_NAMES};
use super::routes::routes;
use super::{Inner, Monitor, MonitorBuilder};
use crate::auth::Secret;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::health::{
    ComponentKind, Condition, DefaultTaskClassifier, Health, HealthThread, Signal, Ticker,
};
#[cfg(feature = "prometheus")]
use crate::prometheus::{PrometheusConfig, PrometheusSetup};
use crate::Sink;

impl MonitorBuilder {
    /// Checks every setting, whatever the order they were given in, and builds the monitor.
    ///
    /// The error says which setting is wrong and why: invalid or reserved names
    /// ([`RESERVED_LABEL_NAMES`]), one label name used by two label sources, duplicate health
    /// components, buckets that are not strictly increasing, statuses outside `100..=599`, a
    /// token that cannot travel in a header, or a thread that could not be started.
    pub fn build(mut self) -> Result<Monitor, ConfigError> {
        self.validate()?;
        #[cfg(feature = "slo")]
        let slo = crate::slo::SloSpec {
            service: self.service.clone(),
            namespace: self.namespace.clone(),
            global_labels: self.global_labels.clone(),
            objectives: std::mem::take(&mut self.objectives),
        };
        let endpoint_table = self.endpoints.routes()?.into_boxed_slice();
        if self.exclude_own_endpoints {
            for (path, _) in &endpoint_table {
                self.excluded.insert(path.clone());
            }
        }
        #[cfg_attr(not(feature = "prometheus"), allow(unused_mut))]
        let mut sinks = std::mem::take(&mut self.sinks);
        #[cfg(feature = "prometheus")]
        let prometheus = match std::mem::replace(&mut self.prometheus, PrometheusSetup::Off) {
            PrometheusSetup::Off => None,
            setup => {
                let sink = Arc::new(crate::prometheus::PrometheusSink::new(
                    PrometheusConfig {
                        namespace: self.namespace.as_deref(),
                        global_labels: &self.global_labels,
                        label_tags: &self.label_tags,
                        buckets: &self.buckets,
                        max_label_sets: self.max_label_sets,
                        head_histogram: self.head_histogram,
                        size_histogram: self.size_histogram,
                        request_size_histogram: self.request_size_histogram,
                        upkeep_interval: self.upkeep_interval,
                        #[cfg(feature = "native-histograms")]
                        native_histograms: self.native_histograms,
                    },
                    setup,
                )?);
                sinks.insert(0, sink.clone());
                Some(sink)
            }
        };
        let health = Arc::new(Health::new(
            std::mem::take(&mut self.health),
            std::mem::replace(
                &mut self.task_classifier,
                BoxedTaskClassifier(Box::new(DefaultTaskClassifier), ""),
            )
            .0,
        ));
        if let Some(window) = health.window() {
            sinks.push(window);
        }
        let clock = Arc::new(WallClock::new());
        #[allow(unused_mut)]
        let mut tickers: Vec<Ticker> = Vec::new();
        #[cfg(feature = "stats")]
        let stats = {
            let stats = Arc::new(crate::stats::Stats::new(
                self.collection_interval,
                self.max_label_sets,
                self.probe_interval,
            ));
            sinks.push(stats.requests.clone());
            let ticking = Arc::clone(&stats);
            tickers.push(Box::new(move |now| Some(ticking.tick(now))));
            stats.set_reporters(reporters(&sinks));
            stats
        };
        // The status page's sampler runs right after the stats ticker, which closes the window.
        #[cfg(feature = "status")]
        let status = {
            let sampler = Arc::new(crate::status::Sampler::new(
                Arc::clone(&stats),
                prometheus.clone(),
            ));
            let sampling = Arc::clone(&sampler);
            tickers.push(Box::new(move |_| {
                sampling.tick();
                None
            }));
            sampler
        };
        let panics = Arc::new(crate::sink::Panics::new(&sinks));
        let annotations = Arc::new(crate::annotation::Annotations::new(&self.service));
        annotations.set_sinks(sinks.clone(), Arc::clone(&panics));
        health.set_annotations(Arc::clone(&annotations));
        #[cfg(feature = "prometheus")]
        if let Some(prometheus) = &prometheus {
            let sink_part = crate::prometheus::sink_collector(
                reporters(&sinks),
                Arc::clone(&panics),
                self.namespace.clone(),
            );
            let annotation_part = crate::prometheus::annotation_collector(
                Arc::downgrade(&annotations),
                self.namespace.clone(),
            );
            #[cfg(feature = "stats")]
            let stats_part =
                crate::prometheus::stats_collector(Arc::clone(&stats), self.namespace.clone());
            prometheus.set_collector(Box::new(
                move |exposition: &mut crate::prometheus::Exposition<'_>| {
                    sink_part(exposition);
                    annotation_part(exposition);
                    #[cfg(feature = "stats")]
                    stats_part(exposition);
                },
            ));
        }
        health.set_sinks(sinks.clone());
        let health_thread = HealthThread::spawn(Arc::clone(&health), tickers).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Resource,
                "build",
                format!("cannot start the health thread: {e}"),
            )
            .with_source(e)
        })?;
        annotations.started(&self.version);
        let dispatch = sinks
            .iter()
            .map(|sink| {
                super::dispatch::SinkRef::new(
                    sink,
                    #[cfg(feature = "prometheus")]
                    prometheus.as_ref(),
                    #[cfg(feature = "stats")]
                    &stats.requests,
                )
            })
            .collect::<Box<[_]>>();
        let default_classifier = self.classifier.1 == "DefaultClassifier"
            || self.classifier.1 == std::any::type_name::<crate::DefaultClassifier>();
        #[cfg(feature = "prometheus")]
        let lean_prometheus = prometheus.as_ref().is_none_or(|p| p.is_lean());
        #[cfg(not(feature = "prometheus"))]
        let lean_prometheus = true;
        let lean = (dispatch.iter().all(super::dispatch::SinkRef::is_builtin)
            && default_classifier
            && self.excluded_statuses.is_empty()
            && lean_prometheus)
            .then(|| super::lean::Lean::of(&dispatch));
        let excluded_templates: Vec<ExcludedTemplate> = self
            .excluded
            .iter()
            .filter_map(|e| ExcludedTemplate::new(e))
            .collect();
        let monitor = Monitor {
            inner: Arc::new(Inner {
                needs_request_id: sinks.iter().any(|s| s.needs_request_id()),
                needs_head_time: sinks.iter().any(|s| s.needs_head_time()),
                point_in_extensions: self.point_in_extensions,
                path_labels: self.path_labels,
                path_label_routes: self.path_label_routes,
                label_fns: self.label_fns,
                clock,
                version: self.version,
                token: self.token.map(Secret::new),
                health,
                _health_thread: health_thread,
                drained: tokio::sync::Notify::new(),
                #[cfg(feature = "stats")]
                stats,
                service: self.service,
                excluded_statuses: (!self.excluded_statuses.is_empty()).then(|| {
                    let mut table = vec![false; 600];
                    for status in &self.excluded_statuses {
                        table[usize::from(*status)] = true;
                    }
                    table.into_boxed_slice()
                }),
                excluded_list: self.excluded.iter().cloned().collect(),
                excluded_prefixes: self.excluded_prefixes,
                excluded_template_second_bytes: super::exclude::template_second_bytes(
                    &excluded_templates,
                ),
                excluded_templates,
                excluded_lengths: self
                    .excluded
                    .iter()
                    .fold(0, |mask, e| mask | 1u64 << (e.len() % 64)),
                excluded_second_bytes: self
                    .excluded
                    .iter()
                    .fold(0, |mask, e| mask | 1u64 << (second_byte(e) % 64)),
                excluded: self.excluded,
                endpoint_table,
                routes: routes(self.max_label_sets),
                default_classifier,
                classifier: self.classifier,
                dispatch,
                lean,
                panics,
                sinks,
                in_flight: AtomicI64::new(0),
                annotations,
                #[cfg(feature = "prometheus")]
                prometheus,
                #[cfg(feature = "slo")]
                slo,
                #[cfg(feature = "status")]
                status,
            }),
        };
        // Weakly: the sampler lives on the health thread, which the monitor owns.
        #[cfg(feature = "status")]
        {
            let inner = Arc::downgrade(&monitor.inner);
            monitor.inner.status.set_in_flight(Box::new(move || {
                inner.upgrade().map_or(0, |inner| {
                    u64::try_from(inner.in_flight.load(std::sync::atomic::Ordering::Acquire))
                        .unwrap_or(0)
                })
            }));
        }
        Ok(monitor)
    }
}

impl MonitorBuilder {
    /// Every check of [`MonitorBuilder::build`], independent of the order of the settings.
    fn validate(&self) -> Result<(), ConfigError> {
        use ConfigErrorKind::*;
        if let Some(namespace) = &self.namespace {
            check_name("namespace", "namespace", namespace)?;
        }
        #[cfg(feature = "slo")]
        crate::slo::validate(
            &self.objectives,
            &self.buckets,
            !matches!(self.prometheus, PrometheusSetup::Off),
        )?;
        if self.buckets.is_empty()
            || self.buckets.iter().any(|b| !b.is_finite())
            || self.buckets.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(ConfigError::new(
                InvalidValue,
                "buckets",
                format!(
                    "buckets {:?} must be finite, non-empty and strictly increasing",
                    self.buckets
                ),
            ));
        }
        if let Some(status) = self
            .excluded_statuses
            .iter()
            .find(|s| !(100..=599).contains(*s))
        {
            return Err(ConfigError::new(
                OutOfRange,
                "exclude_status",
                format!("exclude_status({status}) is not an HTTP status: use 100..=599"),
            ));
        }
        if let Some(token) = &self.token {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    InvalidValue,
                    "token",
                    "token must be non-empty visible ASCII (it travels in an Authorization header)",
                ));
            }
        }
        // Every label source in one list: (setting, name).
        let labels = self
            .global_labels
            .iter()
            .map(|(k, _)| ("global_label", k.as_str()))
            .chain(
                self.label_sources
                    .iter()
                    .zip(&self.label_tags)
                    .map(|(setting, k)| (*setting, &**k)),
            );
        let mut seen: Vec<(&'static str, &str)> = Vec::new();
        for (setting, name) in labels {
            check_name(setting, "label", name)?;
            if RESERVED_LABEL_NAMES.contains(&name) {
                return Err(ConfigError::new(
                    ReservedName,
                    setting,
                    format!(
                        "{setting}: label {name:?} is reserved (Prometheus or vitalsign writes it); \
                         choose another name"
                    ),
                ));
            }
            if let Some((first, _)) = seen.iter().find(|(_, n)| *n == name) {
                return Err(ConfigError::new(
                    DuplicateName,
                    setting,
                    format!("{setting}: label {name:?} is already set by {first}"),
                ));
            }
            seen.push((setting, name));
        }
        if self.label_tags.len() > MAX_LABEL_TAGS {
            return Err(ConfigError::new(
                OutOfRange,
                self.label_sources[MAX_LABEL_TAGS],
                format!(
                    "{} label tags, path labels and label functions are declared; at most {MAX_LABEL_TAGS} can be",
                    self.label_tags.len()
                ),
            ));
        }
        let mut names: Vec<&str> = Vec::new();
        for spec in &self.health.components {
            let setting = match spec.kind {
                ComponentKind::Check(_) => "check",
                ComponentKind::Task(_) => "task",
                ComponentKind::Rule(_) => "rule",
            };
            let name = spec.name.as_str();
            check_component_name(setting, name)?;
            if names.contains(&name) {
                return Err(ConfigError::new(
                    DuplicateName,
                    setting,
                    format!("health component {name:?} is registered twice"),
                ));
            }
            names.push(name);
            if let ComponentKind::Rule(rule) = &spec.kind {
                if let Condition::Above(v) | Condition::Below(v) = rule.condition {
                    if !v.is_finite() {
                        return Err(ConfigError::new(
                            InvalidValue,
                            "rule",
                            format!("rule {name:?}: threshold {v} is not finite"),
                        ));
                    }
                }
                if let Signal::LatencyQuantile(q) = rule.signal {
                    if !(0.0..=1.0).contains(&q) {
                        return Err(ConfigError::new(
                            OutOfRange,
                            "rule",
                            format!("rule {name:?}: quantile {q} is not within 0..=1"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks a health component name: 1 to 64 of `A-Z a-z 0-9 _ - .`, not `overall`.
fn check_component_name(setting: &'static str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && name != "overall"
        && !matches!(name, "live" | "ready");
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            ConfigErrorKind::InvalidName,
            setting,
            format!(
                "health component name {name:?} is not valid: use 1 to 64 of A-Z a-z 0-9 _ - ., \
                 and not overall, live or ready (they are taken)"
            ),
        ))
    }
}

/// The sinks that report queue figures (push sinks), for `/metrics` and `/stats`.
#[cfg_attr(not(any(feature = "stats", feature = "prometheus")), allow(dead_code))]
fn reporters(sinks: &[Arc<dyn Sink>]) -> Vec<Arc<dyn Sink>> {
    sinks
        .iter()
        .filter(|s| s.report().is_some())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::tests::{monitor, start};

    #[test]
    fn builder_refuses_bad_values_with_a_reason() {
        let fails = |b: MonitorBuilder| b.build().unwrap_err();
        let err = fails(Monitor::builder("s").namespace("my-app"));
        assert!(err.to_string().contains("my-app"), "{err}");
        assert_eq!(
            (err.kind(), err.setting()),
            (ConfigErrorKind::InvalidName, "namespace")
        );
        for buckets in [&[1.0, 0.5][..], &[], &[f64::NAN]] {
            let err = fails(Monitor::builder("s").buckets(buckets));
            assert_eq!(err.setting(), "buckets", "{err}");
        }
        assert_eq!(
            fails(Monitor::builder("s").label_tag("__x")).kind(),
            ConfigErrorKind::InvalidName
        );
        let mut b = Monitor::builder("s");
        for i in 0..MAX_LABEL_TAGS {
            b = b.label_tag(format!("t{i}"));
        }
        let err = fails(b.label_tag("one_more"));
        assert!(err.to_string().contains("at most"), "{err}");
        assert_eq!(err.kind(), ConfigErrorKind::OutOfRange);
    }

    /// Regression (review item 4): `global_label("le", …)` was accepted and corrupted every
    /// histogram line; label sources could share a name depending on call order;
    /// `exclude_status(700)` silently excluded 599.
    #[test]
    fn build_validates_the_whole_configuration_in_any_order() {
        let fails = |b: MonitorBuilder| b.build().unwrap_err();
        for reserved in RESERVED_LABEL_NAMES {
            let err = fails(Monitor::builder("s").global_label(*reserved, "x"));
            assert_eq!(
                err.kind(),
                ConfigErrorKind::ReservedName,
                "{reserved}: {err}"
            );
            assert_eq!(err.setting(), "global_label");
            let err = fails(Monitor::builder("s").label_tag(*reserved));
            assert_eq!(
                err.kind(),
                ConfigErrorKind::ReservedName,
                "{reserved}: {err}"
            );
            let err = fails(Monitor::builder("s").path_label(*reserved));
            assert_eq!(
                err.kind(),
                ConfigErrorKind::ReservedName,
                "{reserved}: {err}"
            );
            let err = fails(Monitor::builder("s").label_fn(*reserved, |_| None));
            assert_eq!(
                err.kind(),
                ConfigErrorKind::ReservedName,
                "{reserved}: {err}"
            );
        }
        // Every pair of label sources, in both orders, refuses a shared name.
        type Source = fn(MonitorBuilder) -> MonitorBuilder;
        let sources: [(&str, Source); 5] = [
            ("global_label", |b| b.global_label("tenant", "a")),
            ("label_tag", |b| b.label_tag("tenant")),
            ("path_label", |b| b.path_label("tenant")),
            ("path_label_on", |b| {
                b.path_label_on(&["/t/{tenant}"], "tenant")
            }),
            ("label_fn", |b| b.label_fn("tenant", |_| None)),
        ];
        for (first_name, first) in sources {
            for (second_name, second) in sources {
                let err = fails(second(first(Monitor::builder("s"))));
                assert_eq!(
                    err.kind(),
                    ConfigErrorKind::DuplicateName,
                    "{first_name} then {second_name}: {err}"
                );
                assert!(err.to_string().contains("tenant"), "{err}");
            }
            assert!(first(Monitor::builder("s")).build().is_ok(), "{first_name}");
        }
        for status in [0, 99, 600, 700, u16::MAX] {
            let err = fails(Monitor::builder("s").exclude_status(status));
            assert_eq!(err.kind(), ConfigErrorKind::OutOfRange, "{status}");
            assert!(err.to_string().contains(&status.to_string()), "{err}");
        }
        // 599 is a valid status: excluding it works, and 700 never excluded it.
        let (monitor, sink) = monitor(|b| b.exclude_status(599));
        let mut flight = monitor.begin(&start(b"GET", "/", Some("/"))).unwrap();
        flight.set_status(599);
        flight.complete();
        assert!(sink.requests().is_empty());
        let err = fails(Monitor::builder("s").token(""));
        assert_eq!(
            (err.kind(), err.setting()),
            (ConfigErrorKind::InvalidValue, "token")
        );
        let err = fails(
            Monitor::builder("s")
                .task("db", crate::health::Task::new())
                .check(
                    "db",
                    crate::health::Check::new(|| async { Ok::<(), String>(()) }),
                ),
        );
        assert_eq!(
            (err.kind(), err.setting()),
            (ConfigErrorKind::DuplicateName, "check")
        );
        let err = fails(Monitor::builder("s").task("live", crate::health::Task::new()));
        assert_eq!(err.kind(), ConfigErrorKind::InvalidName);
    }
}
