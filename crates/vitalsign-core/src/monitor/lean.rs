//! The lean path of a finished request: with the built-in sinks only and a request of the
//! common shape, the monitor hands each sink the few figures it records instead of building a
//! [`RequestPoint`](crate::RequestPoint) and passing it through every stage. Same figures, same
//! series as the full path ([`Monitor::record`]); a request of any other shape, or whose
//! Prometheus label set is not cached yet, takes the full path.

use super::dispatch::SinkRef;
use super::routes::Route;
use super::{InFlight, Monitor};

/// The built-in sinks and their places in the monitor's sinks (for panic counts), when the
/// configuration allows the lean path: no sink but the built-in ones, the default error
/// classifier, no excluded status, and a Prometheus sink that records a request by its
/// duration alone ([`PrometheusSink::is_lean`](crate::prometheus::PrometheusSink::is_lean)).
#[derive(Debug)]
pub(super) struct Lean {
    #[cfg(feature = "prometheus")]
    pub(super) prometheus: Option<(usize, std::sync::Arc<crate::prometheus::PrometheusSink>)>,
    #[cfg(feature = "stats")]
    pub(super) stats: Option<(usize, std::sync::Arc<crate::stats::RequestStats>)>,
}

impl Lean {
    /// The built-in sinks of `dispatch` (the monitor's sinks, all built-in) and their places.
    #[cfg_attr(
        not(any(feature = "prometheus", feature = "stats")),
        allow(unused_mut, unused_variables)
    )]
    pub(super) fn of(dispatch: &[SinkRef]) -> Lean {
        let mut lean = Lean {
            #[cfg(feature = "prometheus")]
            prometheus: None,
            #[cfg(feature = "stats")]
            stats: None,
        };
        for (index, sink) in dispatch.iter().enumerate() {
            match sink {
                #[cfg(feature = "prometheus")]
                SinkRef::Prometheus(prometheus) => {
                    lean.prometheus = Some((index, std::sync::Arc::clone(prometheus)));
                }
                #[cfg(feature = "stats")]
                SinkRef::Stats(stats) => lean.stats = Some((index, std::sync::Arc::clone(stats))),
                SinkRef::Dyn(_) => {}
            }
        }
        lean
    }

    /// A request began: [`Sink::request_started`](crate::Sink::request_started) of each
    /// built-in sink, called directly.
    #[inline]
    pub(super) fn request_started(&self, method: crate::Method) {
        #[cfg(feature = "prometheus")]
        if let Some((_, prometheus)) = &self.prometheus {
            crate::Sink::request_started(&**prometheus, method);
        }
        #[cfg(feature = "stats")]
        if let Some((_, stats)) = &self.stats {
            crate::Sink::request_started(&**stats, method);
        }
        let _ = method;
    }
}

impl Monitor {
    /// Records `flight` on the lean path, if its shape allows: a response with a status
    /// below 500 but 101 (no error point to make, no upgraded session), no error code attached
    /// by the handler (its tags and fields are nothing to the built-in sinks without label
    /// tags), no gRPC call, no trace (no exemplar), no panic, no failed body, no disconnect, a
    /// label set already cached. `false`, with nothing recorded, otherwise.
    #[inline]
    pub(super) fn record_lean(&self, flight: &InFlight, disconnected: bool) -> bool {
        let Some(lean) = &self.inner.lean else {
            return false;
        };
        let (Route::Slot(slot), Some(status)) = (&flight.route, flight.status) else {
            return false;
        };
        if disconnected
            || status >= 500
            || status == 101
            || flight.scope.panicked
            || flight.scope.ids.is_traced()
            || flight.body_failed
            || flight.route_excluded
        {
            return false;
        }
        if let Some(shared) = &flight.scope.shared {
            #[cfg(feature = "rpc")]
            if shared.rpc.is_some() {
                return false;
            }
            if shared.lock().error_code.is_some() {
                return false;
            }
        }
        let seconds = self.inner.clock.since(flight.start).as_secs_f64();
        let method = flight.method;
        // The sink being called, for the panic count (none of these panics: atomics on
        // fixed arrays and a lock-free cache).
        let mut at = 0;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            #[cfg(feature = "prometheus")]
            if let Some((index, prometheus)) = &lean.prometheus {
                at = *index;
                if !prometheus.record_lean(*slot, method, status, seconds) {
                    return false;
                }
                crate::Sink::request_finished(&**prometheus, method);
            }
            #[cfg(feature = "stats")]
            if let Some((index, stats)) = &lean.stats {
                at = *index;
                stats.record_parts(seconds, false, status);
                crate::Sink::request_finished(&**stats, method);
            }
            // (Without either built-in sink, nothing to record.)
            let _ = (lean, &mut at, slot, status, seconds, method);
            true
        }));
        match run {
            Ok(false) => return false,
            Ok(true) => {}
            Err(_) => self.inner.panics.panicked(at),
        }
        self.request_done();
        true
    }
}

#[cfg(all(test, feature = "prometheus", feature = "stats"))]
mod tests {
    use std::sync::Arc;

    use crate::adapter::RequestStart;
    use crate::{Monitor, RequestPoint, Sink};

    /// A sink of the application's that records nothing: its presence makes the monitor take
    /// the full path for every request.
    #[derive(Debug)]
    struct Nothing;

    impl Sink for Nothing {
        fn record_request(&self, _: &RequestPoint<'_>) {}
    }

    /// What the handler does with its point.
    #[derive(Clone, Copy)]
    enum Handler {
        Nothing,
        Tags,
        ErrorCode,
    }

    /// A test request: method, route, (traced, what the handler does), how it ends.
    type Request = (&'static [u8], Option<&'static str>, (bool, Handler), End);

    /// How a test request ends.
    #[derive(Clone, Copy)]
    enum End {
        Complete(u16),
        BodyFails(u16),
        DropMidBody(u16),
        DropBeforeHead,
    }

    fn serve(
        monitor: &Monitor,
        method: &[u8],
        route: Option<&str>,
        (traced, handler): (bool, Handler),
        end: End,
    ) {
        let path = route.unwrap_or("/nowhere");
        let mut start = RequestStart::new(method, path).with_route(route);
        if traced {
            start = start.with_traceparent(Some(
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ));
        }
        let mut flight = crate::adapter::begin(monitor, start);
        flight.in_scope(|| {
            let point = crate::PointHandle::current();
            match (handler, point) {
                (Handler::Tags, Some(point)) => {
                    point.tag("tenant", "acme").field("items", 3u32);
                }
                (Handler::ErrorCode, Some(point)) => {
                    point.error_code("out_of_stock");
                }
                _ => {}
            }
        });
        match end {
            End::Complete(status) => flight.response(status).complete(),
            End::BodyFails(status) => flight.response(status).body_failed(),
            End::DropMidBody(status) => drop(flight.response(status)),
            End::DropBeforeHead => drop(flight),
        }
    }

    /// What a scrape and `/stats` show of the requests: every `http_server_` line but the
    /// histograms' sums (durations differ from run to run; in a test they all fall in the
    /// first bucket), and `/stats`' request counts.
    fn shown(monitor: &Monitor) -> (Vec<String>, serde_json::Value) {
        let text = monitor.render_metrics().unwrap();
        let lines = text
            .lines()
            .filter(|l| l.starts_with("http_server_") && !l.contains("_sum"))
            .map(str::to_owned)
            .collect();
        (lines, monitor.stats_json()["requests"].clone())
    }

    /// The lean path records what the full path records: the same series and counts on
    /// `/metrics` and `/stats`, for requests of the lean shape (repeated: the first of a label
    /// set goes the full path) and of every other shape, one after another.
    #[test]
    fn the_lean_path_records_what_the_full_path_records() {
        let lean = Monitor::builder("svc").build().unwrap();
        let full = Monitor::builder("svc")
            .sink(Arc::new(Nothing))
            .build()
            .unwrap();
        assert!(lean.inner.lean.is_some() && full.inner.lean.is_none());
        let requests: &[Request] = &[
            (
                b"GET",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(200),
            ),
            (
                b"POST",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(201),
            ),
            (
                b"POST",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(201),
            ),
            (
                b"GET",
                Some("/b/{id}"),
                (false, Handler::Nothing),
                End::Complete(404),
            ),
            (
                b"GET",
                Some("/b/{id}"),
                (false, Handler::Nothing),
                End::Complete(404),
            ),
            (b"GET", None, (false, Handler::Nothing), End::Complete(404)),
            (b"GET", None, (false, Handler::Nothing), End::Complete(404)),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(500),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(503),
            ),
            (
                b"HEAD",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(101),
            ),
            (
                b"GET",
                Some("/a"),
                (true, Handler::Nothing),
                End::Complete(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Nothing),
                End::BodyFails(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Nothing),
                End::DropMidBody(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Nothing),
                End::DropBeforeHead,
            ),
            (
                b"BREW",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(200),
            ),
            (
                b"GET",
                Some("/metrics"),
                (false, Handler::Nothing),
                End::Complete(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Nothing),
                End::Complete(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Tags),
                End::Complete(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::Tags),
                End::Complete(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::ErrorCode),
                End::Complete(200),
            ),
            (
                b"GET",
                Some("/a"),
                (false, Handler::ErrorCode),
                End::Complete(404),
            ),
        ];
        for &(method, route, how, end) in requests {
            serve(&lean, method, route, how, end);
            serve(&full, method, route, how, end);
            assert_eq!(shown(&lean), shown(&full));
        }
        let (lines, requests) = shown(&lean);
        assert!(lines.iter().any(|l| l.starts_with(
            "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/a\",http_response_status_code=\"200\"} 10"
        )), "{lines:#?}");
        assert_eq!(requests["total"], 23);
        assert_eq!(lean.in_flight(), 0);
    }
}
