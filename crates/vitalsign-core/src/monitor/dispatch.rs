//! The sinks as the request path calls them: the built-in ones (Prometheus, `/stats`) by their
//! own type, so that each call is a direct call the compiler can inline, and the application's
//! through `dyn Sink`. Same sinks, same order, same calls as [`Inner::sinks`](super::Inner):
//! only the dispatch differs.

use std::sync::Arc;

use crate::point::{ErrorPoint, RequestPoint};
use crate::{Method, Sink};

/// One sink of the monitor, as the request path calls it.
#[derive(Debug)]
pub(super) enum SinkRef {
    #[cfg(feature = "prometheus")]
    Prometheus(Arc<crate::prometheus::PrometheusSink>),
    #[cfg(feature = "stats")]
    Stats(Arc<crate::stats::RequestStats>),
    Dyn(Arc<dyn Sink>),
}

/// Calls `$call` on the sink `$sink` as its own type (`$s` names it in `$call`).
macro_rules! dispatch {
    ($sink:expr, $s:ident => $call:expr) => {
        match $sink {
            #[cfg(feature = "prometheus")]
            SinkRef::Prometheus($s) => $call,
            #[cfg(feature = "stats")]
            SinkRef::Stats($s) => $call,
            SinkRef::Dyn($s) => $call,
        }
    };
}

impl SinkRef {
    /// The request path's view of `sink`: a built-in one (the same `Arc` as `prometheus` or
    /// `stats`) by its type, any other through `dyn Sink`.
    pub(super) fn new(
        sink: &Arc<dyn Sink>,
        #[cfg(feature = "prometheus")] prometheus: Option<&Arc<crate::prometheus::PrometheusSink>>,
        #[cfg(feature = "stats")] stats: &Arc<crate::stats::RequestStats>,
    ) -> Self {
        #[cfg(feature = "prometheus")]
        if let Some(prometheus) =
            prometheus.filter(|p| std::ptr::addr_eq(Arc::as_ptr(sink), Arc::as_ptr(p)))
        {
            return SinkRef::Prometheus(Arc::clone(prometheus));
        }
        #[cfg(feature = "stats")]
        if std::ptr::addr_eq(Arc::as_ptr(sink), Arc::as_ptr(stats)) {
            return SinkRef::Stats(Arc::clone(stats));
        }
        SinkRef::Dyn(Arc::clone(sink))
    }

    /// A built-in sink (called by its type).
    pub(super) fn is_builtin(&self) -> bool {
        !matches!(self, SinkRef::Dyn(_))
    }

    #[inline(always)]
    pub(super) fn request_started(&self, method: Method) {
        dispatch!(self, s => s.request_started(method));
    }

    #[inline(always)]
    pub(super) fn record_request(&self, point: &RequestPoint<'_>) {
        dispatch!(self, s => s.record_request(point));
    }

    #[inline(always)]
    pub(super) fn record_error(&self, point: &ErrorPoint<'_>) {
        dispatch!(self, s => s.record_error(point));
    }

    #[inline(always)]
    pub(super) fn request_finished(&self, method: Method) {
        dispatch!(self, s => s.request_finished(method));
    }

    #[cfg(feature = "rpc")]
    #[inline(always)]
    pub(super) fn rpc_started(&self) {
        dispatch!(self, s => s.rpc_started());
    }

    #[cfg(feature = "rpc")]
    #[inline(always)]
    pub(super) fn rpc_finished(&self) {
        dispatch!(self, s => s.rpc_finished());
    }

    pub(super) fn upgraded_session_started(&self, route: &str) {
        dispatch!(self, s => s.upgraded_session_started(route));
    }

    pub(super) fn upgraded_session_ended(&self, route: &str, duration: std::time::Duration) {
        dispatch!(self, s => s.upgraded_session_ended(route, duration));
    }
}
