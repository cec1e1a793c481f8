//! Health, stats, drain and shutdown, and `/metrics` rendering of a running [`Monitor`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Monitor;
#[cfg(doc)]
use super::MonitorBuilder;
use crate::health::{HealthSnapshot, Level, ShutdownReport, TaskStatus, UnknownComponent};

impl Monitor {
    /// The last published health snapshot (one read; never waits on a check).
    pub fn health(&self) -> Arc<HealthSnapshot> {
        self.inner.health.snapshot()
    }

    /// A receiver of every published health snapshot.
    pub fn health_watch(&self) -> tokio::sync::watch::Receiver<Arc<HealthSnapshot>> {
        self.inner.health.subscribe()
    }

    /// A receiver of the overall level (`None`) or of one component's level, changed only on
    /// transitions; `None` for an unknown component.
    pub fn watch_level(
        &self,
        component: Option<&str>,
    ) -> Option<tokio::sync::watch::Receiver<Level>> {
        self.inner.health.subscribe_level(component)
    }

    /// Reports the outcome of one run of the background task `name` (registered with
    /// [`MonitorBuilder::task`]).
    pub fn report_task(&self, name: &str, status: TaskStatus) -> Result<(), UnknownComponent> {
        self.inner.health.report_task(name, status)
    }

    /// Reports a failed run of task `name`, classified by the task classifier; returns the
    /// status it was given.
    pub fn report_task_error(
        &self,
        name: &str,
        error: &(dyn std::error::Error + 'static),
    ) -> Result<TaskStatus, UnknownComponent> {
        let status = self.inner.health.classify(error);
        self.inner.health.report_task(name, status).map(|()| status)
    }

    /// Reports a run of task `name` from its result: `Ok` is [`TaskStatus::Ok`], an error is
    /// classified.
    pub fn report_task_result<T, E>(
        &self,
        name: &str,
        result: &Result<T, E>,
    ) -> Result<TaskStatus, UnknownComponent>
    where
        E: std::error::Error + 'static,
    {
        match result {
            Ok(_) => self
                .report_task(name, TaskStatus::Ok)
                .map(|()| TaskStatus::Ok),
            Err(error) => self.report_task_error(name, error),
        }
    }

    /// The application's custom stats (under `custom` in `/stats`, and on `/metrics`).
    #[cfg(feature = "stats")]
    pub fn custom_stats(&self) -> crate::stats::CustomStats {
        self.inner.stats.custom.clone()
    }

    /// The `/stats` document (see [`crate::stats`] for every field).
    #[cfg(feature = "stats")]
    pub fn stats_json(&self) -> serde_json::Value {
        self.inner.stats.json(self.in_flight())
    }

    /// Starts an event-loop delay probe on the Tokio runtime of the calling thread (once per
    /// thread, while that runtime runs). The actix adapter calls it on every worker; nothing
    /// happens outside a runtime.
    pub(crate) fn probe_runtime(&self) {
        #[cfg(feature = "stats")]
        self.inner.stats.probes.attach();
    }

    /// [`Monitor::probe_runtime`] on the first call, a relaxed atomic load afterwards (the
    /// Tower layer calls it on every request: a multi-thread runtime needs one probe); again
    /// once the probed runtime has shut down.
    pub(crate) fn probe_runtime_once(&self) {
        #[cfg(feature = "stats")]
        self.inner.stats.probes.attach_once();
    }

    /// Whether the service is ready for traffic (what `/health/ready` answers).
    pub fn is_ready(&self) -> bool {
        self.inner.health.snapshot().ready
    }

    /// Starts draining: readiness answers 503 from now on. Requests are still served.
    /// The first call marks the drain in the annotation stream `lifecycle`.
    pub fn drain(&self) {
        if self.inner.health.set_draining() {
            self.inner.annotations.lifecycle(
                "drain",
                "draining",
                "readiness answers 503; in-flight requests are finishing",
            );
        }
    }

    /// Graceful drain: flips readiness to 503 first, then waits until every in-flight request
    /// has finished, or `deadline` passes (reporting how many were cut); then push sinks send
    /// what they have queued, within what is left of the deadline. The drain and the end of the
    /// wait are marked in the annotation stream `lifecycle`. Call it from axum's
    /// `with_graceful_shutdown` future or before stopping an actix server.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.drain();
        let started = Instant::now();
        let wait = async {
            loop {
                let drained = self.inner.drained.notified();
                // SeqCst: see `record`.
                if self.inner.in_flight.load(Ordering::SeqCst) <= 0 {
                    return;
                }
                drained.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        let waited = started.elapsed();
        let cut = self.in_flight();
        // Marked before the flush, so that push sinks send it with the rest.
        self.inner.annotations.lifecycle(
            "shutdown",
            "shut down",
            &format!("drained in {} ms, {cut} request(s) cut", waited.as_millis()),
        );
        // Then push sinks send what they queued, within what is left of the deadline.
        let flushes: Vec<_> = self.inner.sinks.iter().filter_map(|s| s.flush()).collect();
        let all_flushed = async {
            for flush in flushes {
                let _ = flush.await;
            }
        };
        let flushed = tokio::time::timeout(deadline.saturating_sub(started.elapsed()), all_flushed)
            .await
            .is_ok();
        let report = ShutdownReport {
            waited,
            cut,
            flushed,
        };
        if report.cut > 0 {
            tracing::warn!(
                cut = report.cut,
                "vitalsign: drain deadline passed with requests in flight"
            );
        }
        report
    }

    /// The Prometheus sink, if the monitor has one.
    #[cfg(feature = "prometheus")]
    pub fn prometheus(&self) -> Option<&crate::prometheus::PrometheusSink> {
        self.inner.prometheus.as_deref()
    }

    /// Renders the Prometheus exposition text (`/metrics`); `None` without a Prometheus sink
    /// (built without the `prometheus` feature, or with `MonitorBuilder::without_prometheus`).
    /// Offered whatever the features, so that adapters need no feature of their own to serve
    /// `/metrics`.
    ///
    /// The one call that renders everything: vitalsign's histograms and gauges, the
    /// recorder's series (the application's own too with `MonitorBuilder::prometheus_handle`),
    /// the process and runtime series. An application that serves `/metrics` with a handler of
    /// its own answers this text (with
    /// [`PROMETHEUS_CONTENT_TYPE`](crate::endpoint::PROMETHEUS_CONTENT_TYPE)); a shared
    /// handle's own `render()` lacks vitalsign's histograms. This is the classic text format;
    /// [`Monitor::render_metrics_as`] renders the format a scraper negotiates (OpenMetrics,
    /// with exemplars).
    pub fn render_metrics(&self) -> Option<String> {
        #[cfg(feature = "prometheus")]
        return self.prometheus().map(|p| p.render());
        #[cfg(not(feature = "prometheus"))]
        return None;
    }

    /// [`Monitor::render_metrics`] in the format the request's `Accept` header asks for:
    /// `(body, content type)`. An application that serves `/metrics` itself answers this to
    /// offer OpenMetrics (with the duration histogram's exemplars) to a scraper that asks for
    /// it, and the classic text otherwise (see
    /// [`ExpositionFormat::negotiate`](crate::prometheus::ExpositionFormat::negotiate)).
    ///
    /// ```
    /// use vitalsign_core::prometheus::ExpositionFormat;
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build()?;
    /// let accept = Some(&b"application/openmetrics-text; version=1.0.0"[..]);
    /// let format = ExpositionFormat::negotiate(accept);
    /// let body = monitor.render_metrics_as(format).unwrap();
    /// assert!(body.ends_with(b"# EOF\n"));
    /// assert_eq!(
    ///     format.content_type(),
    ///     "application/openmetrics-text; version=1.0.0; charset=utf-8"
    /// );
    /// # Ok::<(), vitalsign_core::ConfigError>(())
    /// ```
    #[cfg(feature = "prometheus")]
    pub fn render_metrics_as(
        &self,
        format: crate::prometheus::ExpositionFormat,
    ) -> Option<Vec<u8>> {
        self.prometheus().map(|p| p.render_as(format))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::tests::start;

    /// Regression (review item 8): `draining` and `in_flight` were read and written with
    /// orderings that let both sides see stale values, so `shutdown(deadline)` could wait the
    /// whole deadline. 1 000 shutdowns race a request finishing at that moment.
    #[test]
    fn a_shutdown_racing_the_last_request_never_waits_for_its_deadline() {
        use std::sync::atomic::AtomicUsize;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let deadline = Duration::from_secs(10);
        for round in 0..1000 {
            let builder = Monitor::builder("svc");
            #[cfg(feature = "prometheus")]
            let builder = builder.without_prometheus();
            let monitor = builder.build().unwrap();
            let flight = monitor.begin(&start(b"GET", "/", Some("/"))).unwrap();
            let ready = Arc::new(AtomicUsize::new(0));
            let finisher = {
                let ready = Arc::clone(&ready);
                std::thread::spawn(move || {
                    let mut flight = flight;
                    ready.fetch_add(1, Ordering::SeqCst);
                    while ready.load(Ordering::SeqCst) < 2 {
                        std::hint::spin_loop();
                    }
                    // Finish at a different moment of the shutdown each round.
                    for _ in 0..(round % 100) * 50 {
                        std::hint::spin_loop();
                    }
                    flight.complete();
                })
            };
            ready.fetch_add(1, Ordering::SeqCst);
            while ready.load(Ordering::SeqCst) < 2 {
                std::hint::spin_loop();
            }
            let report = runtime.block_on(monitor.shutdown(deadline));
            finisher.join().unwrap();
            assert!(
                report.waited < deadline,
                "round {round}: shutdown missed the last request's wake-up: {report:?}"
            );
            assert_eq!(report.cut, 0);
        }
    }
}
