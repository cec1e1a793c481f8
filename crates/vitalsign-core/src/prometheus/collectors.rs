//! Collectors: what is gathered just before each render (sink queues and panics, `/stats`
//! figures, the process series).

use super::text::Collector;
#[cfg(feature = "stats")]
use super::text::Exposition;
use crate::Sink;

/// The collector of the annotation store: `vitalsign_annotations_total{stream}`,
/// `vitalsign_annotation_last_timestamp_seconds{stream}` and
/// `vitalsign_annotations_evicted_total`, read from the store at each render (a deleted
/// stream's series go with it). It holds the store weakly: the store holds the sinks, this
/// sink among them, and a strong reference would keep both alive (with the upkeep thread)
/// after the monitor is dropped.
pub(crate) fn annotation_collector(
    annotations: std::sync::Weak<crate::annotation::Annotations>,
    namespace: Option<String>,
) -> Collector {
    let name = |base: &str| match &namespace {
        Some(ns) => format!("{ns}_{base}"),
        None => base.to_owned(),
    };
    let [total, last, evicted] = [
        "vitalsign_annotations_total",
        super::ANNOTATION_LAST_TIMESTAMP,
        "vitalsign_annotations_evicted_total",
    ]
    .map(name);
    Box::new(move |exposition| {
        let Some(annotations) = annotations.upgrade() else {
            return;
        };
        let streams = annotations.streams();
        exposition.family(
            &total,
            "counter",
            "Annotations recorded into a stream since it was created, evicted ones included.",
            streams
                .iter()
                .map(|s| (Some(("stream", s.name.as_str())), s.total as f64)),
        );
        exposition.family(
            &last,
            "gauge",
            "Start of the latest annotation of a stream, in seconds since the Unix epoch.",
            streams.iter().filter_map(|s| {
                let nanos = crate::annotation::unix_nanos(s.last?);
                let seconds = (nanos / 1_000_000) as f64 / 1000.0;
                Some((Some(("stream", s.name.as_str())), seconds))
            }),
        );
        exposition.family(
            &evicted,
            "counter",
            "Annotations evicted from the bounded in-process store to keep it within its bounds.",
            std::iter::once((None, annotations.figures().evicted_events as f64)),
        );
    })
}

/// The collector of push-sink queue figures: `vitalsign_sink_{sent,dropped}_points_total{sink}`
/// and `vitalsign_sink_queued_points{sink}`.
pub(crate) fn sink_collector(
    sinks: Vec<std::sync::Arc<dyn Sink>>,
    panics: std::sync::Arc<crate::sink::Panics>,
    namespace: Option<String>,
) -> Collector {
    let name = |base: &str| match &namespace {
        Some(ns) => format!("{ns}_{base}"),
        None => base.to_owned(),
    };
    let [sent, dropped, queued, panicked] = [
        "vitalsign_sink_sent_points_total",
        "vitalsign_sink_dropped_points_total",
        "vitalsign_sink_queued_points",
        "vitalsign_sink_panics_total",
    ]
    .map(name);
    Box::new(move |_| {
        metrics::describe_counter!(
            panicked.clone(),
            "Panics of a sink (or of the error classifier) contained while recording a request."
        );
        for (sink, count) in panics.counts() {
            metrics::counter!(panicked.clone(), "sink" => sink).absolute(count);
        }
        if sinks.is_empty() {
            return;
        }
        metrics::describe_counter!(sent.clone(), "Points a push sink delivered.");
        metrics::describe_counter!(
            dropped.clone(),
            "Points a push sink dropped: queue full, rejected by the server (4xx), or undeliverable."
        );
        metrics::describe_gauge!(queued.clone(), "Points waiting in a push sink's queue.");
        for report in sinks.iter().filter_map(|s| s.report()) {
            metrics::counter!(sent.clone(), "sink" => report.name).absolute(report.sent);
            metrics::counter!(dropped.clone(), "sink" => report.name).absolute(report.dropped);
            metrics::gauge!(queued.clone(), "sink" => report.name).set(report.queued as f64);
        }
    })
}

/// The collector of `/stats` figures for `/metrics`: the standard `process_*` series
/// (read through `sysinfo` and `/proc`), Tokio runtime gauges, the event-loop delay, and custom stats.
#[cfg(feature = "stats")]
pub(crate) fn stats_collector(
    stats: std::sync::Arc<crate::stats::Stats>,
    namespace: Option<String>,
) -> Collector {
    let name = |base: &str| match &namespace {
        Some(ns) => format!("{ns}_{base}"),
        None => base.to_owned(),
    };
    let [workers, tasks, queue, delay, custom_total, custom] = [
        "tokio_workers",
        "tokio_alive_tasks",
        "tokio_global_queue_depth",
        "tokio_event_loop_delay_seconds",
        "vitalsign_custom_total",
        "vitalsign_custom",
    ]
    .map(name);
    Box::new(move |exposition| {
        process_series(exposition, &stats.process_figures());
        let (w, t, q) = stats.probes.runtime_figures();
        metrics::describe_gauge!(
            workers.clone(),
            "Worker threads of the probed Tokio runtimes."
        );
        metrics::gauge!(workers.clone()).set(w as f64);
        metrics::describe_gauge!(tasks.clone(), "Alive tasks on the probed Tokio runtimes.");
        metrics::gauge!(tasks.clone()).set(t as f64);
        metrics::describe_gauge!(
            queue.clone(),
            "Tasks in the global queue of the probed Tokio runtimes."
        );
        metrics::gauge!(queue.clone()).set(q as f64);
        metrics::describe_gauge!(
            delay.clone(),
            metrics::Unit::Seconds,
            "Mean scheduling delay of a probe task on the Tokio runtime (event-loop delay), last collection interval."
        );
        metrics::gauge!(delay.clone()).set(stats.event_loop_delay_ms() / 1000.0);
        let entries = stats.custom.numeric();
        if !entries.is_empty() {
            metrics::describe_counter!(
                custom_total.clone(),
                "Application counters (custom stats `inc`)."
            );
            metrics::describe_gauge!(
                custom.clone(),
                "Application gauges (custom stats `set`, list lengths)."
            );
        }
        for (section, key, is_counter, value) in entries {
            if is_counter {
                metrics::counter!(custom_total.clone(), "section" => section, "key" => key)
                    .absolute(value as u64);
            } else {
                metrics::gauge!(custom.clone(), "section" => section, "key" => key).set(value);
            }
        }
    })
}

/// The standard process series (the Prometheus client libraries' names). The CPU counter is
/// written as text: the facade's counters hold whole numbers, and whole seconds make
/// `rate(process_cpu_seconds_total[1m])` useless on a lightly loaded service.
#[cfg(feature = "stats")]
fn process_series(exposition: &mut Exposition<'_>, process: &crate::stats::ProcessFigures) {
    if let Some(cpu) = process.cpu_seconds_total {
        exposition.fractional_counter(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            cpu,
        );
    }
    let gauges = [
        (
            "process_open_fds",
            "Number of open file descriptors.",
            process.open_fds,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            process.max_fds,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            process.virtual_memory_bytes,
        ),
        (
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            process.virtual_memory_max_bytes,
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            process.resident_memory_bytes,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            process.start_time_seconds,
        ),
        (
            "process_threads",
            "Number of OS threads in the process.",
            process.threads,
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(value) = value {
            metrics::describe_gauge!(name, help);
            metrics::gauge!(name).set(value as f64);
        }
    }
}

#[cfg(all(test, feature = "stats", target_os = "linux"))]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    /// The process CPU counter has fractional seconds and one family, also when the
    /// application's shared recorder registered its own (e.g. through `metrics-process`).
    #[cfg(all(feature = "stats", target_os = "linux"))]
    #[test]
    fn the_process_cpu_counter_is_written_once() {
        let family = |text: &str| text.matches("# TYPE process_cpu_seconds_total ").count();
        let own = crate::Monitor::builder("s").build().unwrap();
        let text = own.render_metrics().unwrap();
        assert_eq!(family(&text), 1, "{text}");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));

        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("process_cpu_seconds_total").absolute(7);
        });
        let shared = crate::Monitor::builder("s")
            .prometheus_recorder(recorder)
            .build()
            .unwrap();
        let text = shared.render_metrics().unwrap();
        assert_eq!(family(&text), 1, "{text}");
        assert!(text.contains("process_cpu_seconds_total 7\n"), "{text}");
    }
}
