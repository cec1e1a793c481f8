//! [`UpgradedSession`]: the life of an upgraded connection (a WebSocket), held by a guard the
//! handler keeps for as long as the session lasts.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::Monitor;

/// Where a session is: its request not yet recorded, running, or over.
#[derive(Debug)]
enum State {
    /// The guard exists; the request's 101 has not been recorded yet.
    Pending,
    /// The 101 was recorded: the session counts from then.
    Started {
        monitor: Monitor,
        route: Arc<str>,
        at: Instant,
    },
    /// The guard was dropped (or the request was not upgraded).
    Ended,
}

/// Shared by the guard and the request's point (which starts it when it records the 101).
#[derive(Debug)]
pub(crate) struct SessionSlot(Mutex<State>);

impl SessionSlot {
    /// The request that holds this slot was recorded with status 101 on `route`: the session
    /// begins, unless the guard is already gone.
    pub(crate) fn start(&self, monitor: &Monitor, route: &str) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, State::Pending) {
            monitor.upgraded_session_started(route);
            *state = State::Started {
                monitor: monitor.clone(),
                route: route.into(),
                at: Instant::now(),
            };
        }
    }

    fn end(&self) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let State::Started { monitor, route, at } = std::mem::replace(&mut *state, State::Ended)
        {
            monitor.upgraded_session_ended(&route, at.elapsed());
        }
    }
}

/// The guard of an upgraded session (a WebSocket), from
/// [`PointHandle::upgraded_session`](crate::PointHandle::upgraded_session): while it lives the
/// session counts in `http_server_upgraded_sessions{http_route}`, and when it is dropped (the
/// session's task ends, returns early or panics) its length goes to
/// `http_server_upgraded_session_duration_seconds{http_route}`.
///
/// The session starts when the request is recorded with status `101 Switching Protocols`
/// (its response head); a request that is not upgraded (a refused handshake) starts none.
#[derive(Debug)]
#[must_use = "the session ends when this guard is dropped: move it into the session's task"]
pub struct UpgradedSession {
    slot: Option<Arc<SessionSlot>>,
}

impl UpgradedSession {
    pub(super) fn new(slot: Option<Arc<SessionSlot>>) -> Self {
        UpgradedSession { slot }
    }

    /// Whether this guard counts a session (false for the handle of a request that records
    /// nothing).
    pub fn is_recording(&self) -> bool {
        self.slot.is_some()
    }
}

impl Drop for UpgradedSession {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.end();
        }
    }
}

impl SessionSlot {
    pub(super) fn new() -> Self {
        SessionSlot(Mutex::new(State::Pending))
    }
}

/// Buckets of `http_server_upgraded_session_duration_seconds`, in seconds: 100 ms to a day.
pub const SESSION_DURATION_BUCKETS: &[f64] = &[
    0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];

#[cfg(all(test, feature = "prometheus"))]
mod tests {
    use crate::adapter::{self, RequestStart};
    use crate::{Monitor, PointHandle};

    fn sessions(monitor: &Monitor) -> (Option<f64>, Option<f64>) {
        let text = monitor.render_metrics().unwrap();
        let value = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(|v| v.trim().parse::<f64>().unwrap())
        };
        (
            value(r#"http_server_upgraded_sessions{http_route="/ws"}"#),
            value(r#"http_server_upgraded_session_duration_seconds_count{http_route="/ws"}"#),
        )
    }

    fn request(monitor: &Monitor) -> adapter::Flight {
        adapter::begin(
            monitor,
            RequestStart::new(b"GET", "/ws").with_route(Some("/ws")),
        )
    }

    #[test]
    fn a_session_counts_from_its_101_until_its_guard_is_dropped() {
        let monitor = Monitor::builder("chat").build().unwrap();
        let mut flight = request(&monitor);
        let guard = flight.in_scope(|| PointHandle::current().unwrap().upgraded_session());
        assert!(guard.is_recording());
        assert_eq!(sessions(&monitor), (None, None), "not before the 101");
        flight.response(101).complete();
        assert_eq!(sessions(&monitor), (Some(1.0), None));
        drop(guard);
        assert_eq!(sessions(&monitor), (Some(0.0), Some(1.0)));
    }

    #[test]
    fn no_101_no_session_and_a_guard_gone_before_the_101_starts_none() {
        let monitor = Monitor::builder("chat").build().unwrap();
        // The handshake was refused: the guard existed, the answer was a 400.
        let mut flight = request(&monitor);
        let guard = flight.in_scope(|| PointHandle::current().unwrap().upgraded_session());
        flight.response(400).complete();
        drop(guard);
        assert_eq!(sessions(&monitor), (None, None));
        // The guard dropped (the handler's task ended) before the 101 was recorded.
        let mut flight = request(&monitor);
        drop(flight.in_scope(|| PointHandle::current().unwrap().upgraded_session()));
        flight.response(101).complete();
        assert_eq!(sessions(&monitor), (None, None));
    }

    #[test]
    fn a_panic_in_the_session_releases_it() {
        let monitor = Monitor::builder("chat").build().unwrap();
        let mut flight = request(&monitor);
        let guard = flight.in_scope(|| PointHandle::current().unwrap().upgraded_session());
        flight.response(101).complete();
        let task = std::thread::spawn(move || {
            let _session = guard;
            panic!("the session's task panics");
        });
        assert!(task.join().is_err());
        assert_eq!(sessions(&monitor), (Some(0.0), Some(1.0)));
    }

    #[test]
    fn the_handle_of_an_unrecorded_request_gives_a_guard_that_counts_nothing() {
        assert!(!PointHandle::noop().upgraded_session().is_recording());
    }
}
