//! Tests of the handle as adapters use it, through a [`Flight`]: requests excluded from
//! recording (a handle that records nothing), handles carried in a request's extensions to
//! other threads, and requests that never passed the middleware (one warning).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::PointHandle;
use crate::adapter::{Flight, RequestStart};
use crate::testing::count_warnings;
use crate::{MemorySink, Monitor, RequestId};

fn monitor() -> (Monitor, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new(10));
    let monitor = Monitor::builder("svc")
        .exclude_path("/excluded")
        .sink(sink.clone())
        .build()
        .unwrap();
    (monitor, sink)
}

fn begin(monitor: &Monitor, path: &str) -> Flight {
    crate::adapter::begin(
        monitor,
        RequestStart::new(b"GET", path).with_route(Some(path)),
    )
}

/// Regression (review item 15): an excluded request ran its handler outside any scope, so
/// that a handler asking for its point failed. It now gets a handle that records nothing.
#[test]
fn an_excluded_request_gets_a_handle_that_records_nothing() {
    let (monitor, sink) = monitor();
    let mut flight = begin(&monitor, "/excluded");
    let handle = flight.in_scope(|| PointHandle::current().expect("a handle"));
    assert!(!handle.is_recording());
    handle.tag("t", "v").field("f", 1u32).error_code("E");
    handle.count_request_body(10);
    assert!(handle.time("s").stop() >= 0.0);
    assert_eq!(handle.request_id(), RequestId::EMPTY);
    assert!(PointHandle::current().is_none(), "scope left");
    let mut response = flight.response(200);
    response.complete();
    assert!(sink.requests().is_empty());
    assert_eq!(sink.started(), 0);
}

#[test]
fn inside_an_outer_monitor_an_excluded_request_keeps_the_outer_point() {
    let (outer_monitor, outer_sink) = monitor();
    let (inner_monitor, _) = monitor();
    let mut outer = begin(&outer_monitor, "/kept");
    let mut inner = begin(&inner_monitor, "/excluded");
    outer.in_scope(|| {
        inner.in_scope(|| {
            PointHandle::current().unwrap().tag("from", "inner handler");
        });
        assert!(PointHandle::current().unwrap().is_recording());
    });
    assert!(PointHandle::current().is_none());
    outer.response(200).complete();
    assert_eq!(outer_sink.requests()[0].tag("from"), Some("inner handler"));
}

#[test]
fn an_unwinding_excluded_request_leaves_no_scope_behind() {
    let (monitor, _) = monitor();
    let mut flight = begin(&monitor, "/excluded");
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        flight.in_scope(|| panic!("handler panicked"))
    }));
    assert!(unwound.is_err());
    assert!(PointHandle::current().is_none());
}

/// Review item 7: off the thread of the request's scope, the handle carried in
/// the request (the extensions) is the same point: what is added there is recorded.
#[test]
fn the_carried_handle_reaches_the_point_from_another_thread() {
    let (monitor, sink) = monitor();
    let mut flight = begin(&monitor, "/kept");
    let carried = flight
        .carry(None)
        .expect("a recorded request carries its handle");
    assert!(carried.is_recording());
    std::thread::spawn(move || {
        let handle = PointHandle::of_request(|| Some(carried));
        handle.tag("where", "other thread");
    })
    .join()
    .unwrap();
    // On the request's own thread, the thread-local gives the same point.
    flight.in_scope(|| {
        PointHandle::current().unwrap().field("here", true);
    });
    flight.response(200).complete();
    let point = &sink.requests()[0];
    assert_eq!(point.tag("where"), Some("other thread"));
    assert_eq!(point.field("here"), Some(&crate::FieldValue::Bool(true)));
}

#[test]
fn the_thread_local_comes_before_the_carried_handle() {
    let (monitor, _) = monitor();
    let mut flight = begin(&monitor, "/kept");
    let mut other = begin(&monitor, "/kept");
    let others = other.carry(None).unwrap();
    let id = flight.in_scope(|| {
        PointHandle::of_request(|| panic!("not read: the thread-local answers")).request_id()
    });
    assert_ne!(id, others.request_id());
    let _ = (flight.response(200), other.response(200));
}

#[test]
fn excluded_requests_carry_a_noop_handle_unless_an_outer_one_is_there() {
    let (monitor, _) = monitor();
    let mut excluded = begin(&monitor, "/excluded");
    let noop = excluded.carry(None).expect("a handle that records nothing");
    assert!(!noop.is_recording());
    let mut outer = begin(&monitor, "/kept");
    let outer_handle = outer.carry(None).unwrap();
    assert!(excluded.carry(Some(&outer_handle)).is_none());
    let _ = outer.response(200);
}

/// Regression (review item 15): a request that never passed the middleware (a route added
/// after the layer) got a 500 from the extractor; it now gets a handle that records nothing,
/// and the wiring mistake is logged once, at `warn`.
#[test]
fn a_request_that_never_passed_the_middleware_gets_a_noop_handle_and_one_warning() {
    let seen = count_warnings("did not pass vitalsign's middleware", |seen| {
        // An excluded request passed the middleware: no warning.
        let (monitor, _) = monitor();
        let mut flight = begin(&monitor, "/excluded");
        flight.in_scope(|| assert!(!PointHandle::of_request(|| None).is_recording()));
        assert_eq!(
            seen.load(Ordering::SeqCst),
            0,
            "an excluded request is no mistake"
        );
        for _ in 0..3 {
            let handle = PointHandle::of_request(|| None);
            assert!(!handle.is_recording());
            handle.tag("t", "v");
        }
    });
    assert_eq!(seen, 1, "logged once");
}
