//! The `rpc_server_*` families of gRPC calls (feature `rpc`), after the OpenTelemetry RPC
//! semantic conventions (see [`crate::rpc`]).

use std::sync::atomic::{AtomicI64, Ordering};

use metrics::{Counter, Key, KeyName, Label};

use super::histogram::{AtomicHistogram, HistogramFamily};
use super::series::Series;
use super::setup::label_value;
use super::text::render_labels;
use super::{PrometheusSink, METADATA};
use crate::cache::OnceCache;
use crate::rpc::{GrpcCode, RpcCall, GRPC_SYSTEM};
use crate::RequestPoint;

/// Base name of the gRPC call duration histogram.
pub const RPC_CALL_DURATION: &str = "rpc_server_call_duration_seconds";
/// Base name of the histogram of messages received per gRPC call.
pub const RPC_REQUESTS_PER_RPC: &str = "rpc_server_requests_per_rpc";
/// Base name of the histogram of messages sent per gRPC call.
pub const RPC_RESPONSES_PER_RPC: &str = "rpc_server_responses_per_rpc";
/// Base name of the gRPC errors counter.
pub const RPC_ERRORS: &str = "rpc_server_errors_total";
/// Base name of the counter of gRPC calls whose client went away (status `CANCELLED`).
pub const RPC_DISCONNECTS: &str = "rpc_server_disconnects_total";
/// Base name of the gauge of gRPC calls in flight.
pub const RPC_ACTIVE_CALLS: &str = "rpc_server_active_calls";
/// Buckets of the messages-per-call histograms (1 for a unary call).
pub const MESSAGE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Cells of the lock-free cache in front of the three histograms' maps.
const CACHED_CELLS: usize = 1024;

/// The three histograms of one label set of a call.
struct RpcHistograms {
    durations: std::sync::Arc<AtomicHistogram>,
    requests: std::sync::Arc<AtomicHistogram>,
    responses: std::sync::Arc<AtomicHistogram>,
}

impl RpcHistograms {
    fn record(&self, point: &RequestPoint<'_>, call: &RpcCall<'_>) {
        self.durations.record(point.execution_time);
        self.requests.record(f64::from(call.requests));
        self.responses.record(f64::from(call.responses));
    }
}

/// A cached label set: the histograms of one (method, status), found by the method's slot in
/// the monitor's route cache, so that a known call takes no lock and hashes no text.
struct RpcCell {
    route_key: u32,
    status: GrpcCode,
    histograms: RpcHistograms,
}

/// The four labels of a call: system, service, method, status code.
const CALL_LABELS: [&str; 4] = [
    "rpc_system",
    "rpc_service",
    "rpc_method",
    "rpc_grpc_status_code",
];

/// The gRPC families of the Prometheus sink.
pub(super) struct RpcFamilies {
    durations: HistogramFamily,
    requests: HistogramFamily,
    responses: HistogramFamily,
    errors: Series<Counter>,
    disconnects: Series<Counter>,
    active_name: KeyName,
    active_labels: String,
    active: AtomicI64,
    /// A call has started: the families are rendered from then on (a monitor without gRPC
    /// has no `rpc_server_*` series).
    seen: std::sync::atomic::AtomicBool,
    /// The lock-free cache of label sets in front of the histograms' maps.
    cells: OnceCache<Box<RpcCell>>,
}

impl RpcFamilies {
    pub(super) fn new(
        name: impl Fn(&str) -> KeyName,
        buckets: &[f64],
        cap: usize,
        global: &[(String, String)],
    ) -> Self {
        let labels = || CALL_LABELS.map(String::from).to_vec();
        let family = |base: &str, bounds: &[f64], help: &'static str| {
            HistogramFamily::new(name(base), labels(), cap, bounds, help, global, false)
        };
        let globals = global.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        RpcFamilies {
            durations: family(
                RPC_CALL_DURATION,
                buckets,
                "Duration of gRPC server calls, from arrival until the last message and the trailers were sent (or the client went away).",
            ),
            requests: family(
                RPC_REQUESTS_PER_RPC,
                MESSAGE_BUCKETS,
                "Messages received per gRPC server call (read from their 5-byte prefixes).",
            ),
            responses: family(
                RPC_RESPONSES_PER_RPC,
                MESSAGE_BUCKETS,
                "Messages sent per gRPC server call (read from their 5-byte prefixes).",
            ),
            errors: Series::new(name(RPC_ERRORS), labels(), cap, false),
            disconnects: Series::new(
                name(RPC_DISCONNECTS),
                CALL_LABELS[..3].iter().map(|l| (*l).to_owned()).collect(),
                cap,
                false,
            ),
            active_name: name(RPC_ACTIVE_CALLS),
            active_labels: render_labels(std::iter::once(("rpc_system", GRPC_SYSTEM)).chain(globals)),
            active: AtomicI64::new(0),
            seen: std::sync::atomic::AtomicBool::new(false),
            cells: OnceCache::new(CACHED_CELLS.min(cap.saturating_mul(2).max(1))),
        }
    }

    /// Describes the counters to the registry (their HELP text).
    pub(super) fn describe(&self, r: &dyn metrics::Recorder) {
        r.describe_counter(
            self.errors.name.clone(),
            None,
            "gRPC server calls whose status counts as an error (by default UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS).".into(),
        );
        r.describe_counter(
            self.disconnects.name.clone(),
            None,
            "gRPC server calls whose client went away before the trailers (recorded as CANCELLED)."
                .into(),
        );
    }

    pub(super) fn started(&self) {
        if !self.seen.load(Ordering::Relaxed) {
            self.seen.store(true, Ordering::Relaxed);
        }
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn finished(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// The in-flight gauge and the histograms.
    pub(super) fn render_into(&self, out: &mut String) {
        if !self.seen.load(Ordering::Relaxed) {
            return;
        }
        use std::fmt::Write;
        let name = self.active_name.as_str();
        let _ = write!(
            out,
            "# HELP {name} Number of gRPC server calls in flight (trailers not yet sent).\n\
             # TYPE {name} gauge\n{name}{{{}}} {}\n\n",
            self.active_labels,
            self.active.load(Ordering::Relaxed)
        );
        for family in [&self.durations, &self.requests, &self.responses] {
            family.render_into(false, out);
        }
    }
}

impl PrometheusSink {
    /// Records a gRPC call (in place of the `http_server_*` families).
    pub(super) fn record_rpc(&self, point: &RequestPoint<'_>, call: &RpcCall<'_>) {
        let values = [call.system, call.service, call.method, call.status.as_str()];
        let rpc = &self.rpc;
        // Looked up in the maps (under their locks) on a cache miss only.
        let histograms = || RpcHistograms {
            durations: rpc.durations.handle(&values),
            requests: rpc.requests.handle(&values),
            responses: rpc.responses.handle(&values),
        };
        match point.route_key {
            Some(key) => {
                let hash = rpc.cells.hash((key, call.status));
                match rpc.cells.find(hash, |cell| {
                    cell.route_key == key && cell.status == call.status
                }) {
                    Some((_, cell)) => cell.histograms.record(point, call),
                    None => {
                        let cell = Box::new(RpcCell {
                            route_key: key,
                            status: call.status,
                            histograms: histograms(),
                        });
                        cell.histograms.record(point, call);
                        rpc.cells.insert(hash, cell);
                    }
                }
            }
            None => histograms().record(point, call),
        }
        if call.is_error {
            self.count_rpc(&rpc.errors, &values);
        }
        if point.disconnected {
            self.count_rpc(&rpc.disconnects, &values[..3]);
        }
    }

    fn count_rpc(&self, series: &Series<Counter>, values: &[&str]) {
        series.with(
            values,
            |labels| {
                let labels: Vec<Label> = labels
                    .iter()
                    .map(|(k, v)| Label::new((*k).to_owned(), label_value(v)))
                    .chain(self.global_labels.iter().cloned())
                    .collect();
                let key = Key::from_parts(series.name.clone(), labels);
                self.registrar.with(|r| r.register_counter(&key, &METADATA))
            },
            |c| c.increment(1),
        )
    }
}
