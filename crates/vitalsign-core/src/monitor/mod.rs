//! [`Monitor`]: the shared, cheaply cloned heart of vitalsign, and its [`MonitorBuilder`].
//!
//! ```
//! use vitalsign_core::Monitor;
//!
//! let monitor = Monitor::builder("shop")
//!     .namespace("shop")
//!     .global_label("region", "eu-west")
//!     .exclude_path("/internal/ping")
//!     .max_label_sets(2_000)
//!     .label_tag("tenant")
//!     .build()?;
//! assert_eq!(monitor.service(), "shop");
//! # Ok::<(), vitalsign_core::ConfigError>(())
//! ```

// This file: `Monitor`, its shared state (`Inner`) and its accessors.
mod build; // `MonitorBuilder::build`: validation, then assembly of sinks, threads and state
mod builder; // `MonitorBuilder` and its (infallible) settings
mod clock; // the request clock (monotonic readings to wall-clock time)
mod dispatch; // the sinks as the request path calls them (built-in ones directly)
mod exclude; // exclusion policy: paths, prefixes, route templates
mod flight; // `InFlight` and `Flight`: the guard carried through a request
mod labels; // label policy: names, reserved names, label functions
mod lean; // the lean path of a finished request of the common shape
mod lifecycle; // health, stats, drain, shutdown, `/metrics` rendering
mod parked; // flights parked for their bodies in a single-threaded worker's table
mod record; // the recording pipeline: `begin`, `record`, hand-off to the sinks
mod routes; // route interning and its cap
#[cfg(feature = "rpc")]
mod rpc; // gRPC calls: how one begins, what its flight carries
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use hashbrown::HashSet;

use crate::auth::Secret;
use crate::classify::BoxedClassifier;
use crate::health::{Health, HealthThread};
use crate::Sink;

pub use builder::{MonitorBuilder, DEFAULT_DURATION_BUCKETS};
use clock::WallClock;
use exclude::ExcludedTemplate;
pub use exclude::DEFAULT_EXCLUDED_PATHS;
pub(crate) use flight::InFlight;
pub use flight::{CallScope, Flight};
use labels::LabelFn;
pub use labels::{RequestInfo, DEFAULT_MAX_LABEL_SETS, MAX_LABEL_TAGS, RESERVED_LABEL_NAMES};
pub use parked::{FlightTable, ParkedFlight};
pub use record::{HeaderLookup, RequestStart};
pub use routes::OVERFLOW_ROUTE;
#[cfg(feature = "rpc")]
pub use rpc::RpcStart;

pub use crate::error::{ConfigError, ConfigErrorKind};

/// The monitor: configuration, sinks and live state shared by every adapter.
///
/// Cheap to clone (one `Arc`). Independent monitors never share state: two in one process
/// (two servers, parallel tests) do not conflict, and none touches a global recorder unless
/// told to with [`MonitorBuilder::prometheus_handle`].
#[derive(Clone, Debug)]
pub struct Monitor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Path parameters kept as labels.
    path_labels: Vec<Cow<'static, str>>,
    /// Route allowlists of some of them.
    path_label_routes: Vec<(Cow<'static, str>, Vec<Box<str>>)>,
    /// Labels computed from the request.
    label_fns: Vec<(Cow<'static, str>, LabelFn)>,
    clock: Arc<WallClock>,
    /// Some sink reads request ids (else ids are made only when a handler asks).
    needs_request_id: bool,
    /// Some sink reads the time to the response head (see [`Sink::needs_head_time`]).
    needs_head_time: bool,
    /// Adapters put each request's handle into its extensions.
    point_in_extensions: bool,
    version: String,
    token: Option<Secret>,
    health: Arc<Health>,
    _health_thread: HealthThread,
    /// Woken when the last in-flight request ends (for `shutdown`).
    drained: tokio::sync::Notify,
    #[cfg(feature = "stats")]
    stats: Arc<crate::stats::Stats>,
    /// The status page's history (sampled by the health thread).
    #[cfg(feature = "status")]
    status: Arc<crate::status::Sampler>,
    service: String,
    excluded: HashSet<Box<str>>,
    /// The mounted endpoints and their paths.
    endpoint_table: Box<[(Box<str>, crate::endpoint::Endpoint)]>,
    /// The same, for a linear scan when there are few.
    excluded_list: Vec<Box<str>>,
    /// Path prefixes not recorded (`exclude_path("/x/*")`).
    excluded_prefixes: Vec<Box<str>>,
    /// The excluded paths that are route templates (with a `{parameter}`).
    excluded_templates: Vec<ExcludedTemplate>,
    /// Second bytes of their literal parts ([`exclude::template_second_bytes`]).
    excluded_template_second_bytes: u64,
    /// Statuses not recorded (indexed by status, 0..600), if any.
    excluded_statuses: Option<Box<[bool]>>,
    /// Bit `len % 64` set for the length of each excluded path.
    excluded_lengths: u64,
    /// Bit `byte % 64` set for the second byte of each excluded path (the one after the
    /// leading `/`; 0 for a shorter path).
    excluded_second_bytes: u64,
    /// The routes seen, capped; a request names a cached one by its slot.
    routes: routes::Routes,
    classifier: BoxedClassifier,
    /// The classifier is [`DefaultClassifier`](crate::DefaultClassifier) (called directly).
    default_classifier: bool,
    sinks: Vec<Arc<dyn Sink>>,
    /// The same sinks, as the request path calls them.
    dispatch: Box<[dispatch::SinkRef]>,
    /// The built-in sinks, when the configuration allows the lean path ([`lean`]).
    lean: Option<lean::Lean>,
    /// Panics of each sink, then of the error classifier.
    panics: Arc<crate::sink::Panics>,
    in_flight: AtomicI64,
    /// Annotation streams (not on the request path).
    annotations: Arc<crate::annotation::Annotations>,
    #[cfg(feature = "prometheus")]
    prometheus: Option<Arc<crate::prometheus::PrometheusSink>>,
    /// What the rule and dashboard generators read.
    #[cfg(feature = "slo")]
    slo: crate::slo::SloSpec,
}

impl Monitor {
    /// Starts a [`MonitorBuilder`].
    pub fn builder(service: impl Into<String>) -> MonitorBuilder {
        MonitorBuilder::new(service)
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Requests started and not yet recorded.
    pub fn in_flight(&self) -> u64 {
        // The counter goes up before it goes down; a negative reading cannot happen, and would
        // read as none.
        u64::try_from(self.inner.in_flight.load(Ordering::Acquire)).unwrap_or(0)
    }

    /// Whether adapters put each request's handle into the request's extensions
    /// ([`MonitorBuilder::point_in_extensions`]; see [`Flight::carry`]).
    pub(crate) fn point_in_extensions(&self) -> bool {
        self.inner.point_in_extensions
    }

    /// The service version shown by `/health`.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    pub(crate) fn token(&self) -> Option<&Secret> {
        self.inner.token.as_ref()
    }

    pub(crate) fn health_engine(&self) -> &Health {
        &self.inner.health
    }

    #[cfg(feature = "slo")]
    pub(crate) fn slo_spec(&self) -> &crate::slo::SloSpec {
        &self.inner.slo
    }

    pub(crate) fn annotation_hub(&self) -> &crate::annotation::Annotations {
        &self.inner.annotations
    }

    #[cfg(feature = "status")]
    pub(crate) fn status_sampler(&self) -> &crate::status::Sampler {
        &self.inner.status
    }

    pub(crate) fn endpoint_table(&self) -> &[(Box<str>, crate::endpoint::Endpoint)] {
        &self.inner.endpoint_table
    }
}
