//! [`FlightTable`] and [`ParkedFlight`]: a flight parked for its response body in a table of a
//! single-threaded worker (actix-web's), so that the body carries two words instead of the
//! flight.
//!
//! A response is moved many times on its way to the socket (through the framework's futures,
//! its body conversions, its dispatcher). A body that carries a flight (two cache lines) makes
//! every one of those moves a call to `memcpy`: measured on actix-web, about 320 instructions a
//! request. A parked flight moves into a slot of the worker's table when the response head
//! arrives, and out of it when the body ends (about 130 instructions), and its body finds it by
//! index in between. The table keeps its slots (and its list of free ones) once grown, so
//! parking allocates nothing after the worker's busiest moment.

use std::cell::RefCell;
use std::rc::Rc;

use super::{Flight, InFlight};

/// The flights of a worker's response bodies (see [`Flight::park`]). Not `Send`: one per
/// worker thread, shared by `Rc`.
///
/// ```
/// use std::rc::Rc;
/// use vitalsign_core::adapter::{self, FlightTable, RequestStart};
/// use vitalsign_core::Monitor;
///
/// let monitor = Monitor::builder("shop").build().unwrap();
/// let table = Rc::new(FlightTable::default());
/// let mut flight = adapter::begin(&monitor, RequestStart::new(b"GET", "/"));
/// flight.set_status(200);
/// flight.body_starts(false);
/// let mut parked = flight.park(&table);
/// assert!(!flight.is_recording());
/// parked.body_bytes(5);
/// parked.complete(); // recorded
/// assert_eq!(table.parked(), 0);
/// ```
#[derive(Default)]
pub struct FlightTable {
    table: RefCell<Table>,
}

#[derive(Default)]
struct Table {
    slots: Vec<Option<InFlight>>,
    free: Vec<u32>,
}

impl FlightTable {
    /// How many flights are parked now.
    pub fn parked(&self) -> usize {
        let table = self.table.borrow();
        table.slots.len() - table.free.len()
    }

    /// Moves the flight into a free slot (by a swap with the empty slot: one pass over its
    /// bytes, where a move into a new `Some` took three).
    #[inline]
    fn park(&self, flight: &mut Option<InFlight>) -> u32 {
        let mut table = self.table.borrow_mut();
        let index = match table.free.pop() {
            Some(index) => index,
            None => {
                table.slots.push(None);
                u32::try_from(table.slots.len() - 1).expect("fewer than 2^32 bodies in flight")
            }
        };
        std::mem::swap(&mut table.slots[index as usize], flight);
        index
    }

    /// Takes the flight out of its slot (the slot is free again). The caller records or drops
    /// it once the table is no longer borrowed: recording calls the sinks.
    #[inline]
    fn take(&self, index: u32) -> Option<InFlight> {
        let mut table = self.table.borrow_mut();
        let flight = table.slots.get_mut(index as usize)?.take();
        if flight.is_some() {
            table.free.push(index);
        }
        flight
    }

    fn with(&self, index: u32, f: impl FnOnce(&mut InFlight)) {
        // Never borrowed while the application's code runs, so this cannot fail; a body dropped
        // by a panic that left a borrow behind loses this update rather than panicking again.
        if let Ok(mut table) = self.table.try_borrow_mut() {
            if let Some(Some(flight)) = table.slots.get_mut(index as usize) {
                f(flight);
            }
        }
    }
}

impl std::fmt::Debug for FlightTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightTable")
            .field("parked", &self.parked())
            .finish()
    }
}

/// A flight parked in a [`FlightTable`] for its response body ([`Flight::park`]): the body
/// phase of [`Flight`], in two words. Records exactly once, as a flight does: at
/// [`ParkedFlight::complete`], at [`ParkedFlight::body_failed`], or, dropped before either, as
/// a disconnect.
#[must_use = "dropping a ParkedFlight before it completes records a disconnect"]
#[derive(Default)]
pub struct ParkedFlight {
    /// `None`: records nothing (excluded, or recorded already).
    table: Option<Rc<FlightTable>>,
    index: u32,
}

impl Flight {
    /// Parks this flight in the worker's `table` for the response body (call it after
    /// [`Flight::set_status`] and [`Flight::body_starts`]): the body carries the returned
    /// handle, two words, instead of the flight, and this flight no longer records. For
    /// single-threaded servers (actix-web); a flight that records nothing (excluded, or
    /// completed at the head) parks nowhere.
    pub fn park(&mut self, table: &Rc<FlightTable>) -> ParkedFlight {
        if self.0.is_none() {
            return ParkedFlight::default();
        }
        ParkedFlight {
            index: table.park(&mut self.0),
            table: Some(Rc::clone(table)),
        }
    }
}

impl ParkedFlight {
    /// Whether this flight still has a request to record.
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.table.is_some()
    }

    /// [`Flight::in_body`]: runs `f` (a poll of the response body), noting a panic unwinding
    /// out of it.
    #[inline]
    pub fn in_body<R>(&mut self, f: impl FnOnce() -> R) -> R {
        struct Watch<'a>(&'a ParkedFlight);
        impl Drop for Watch<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    if let Some(table) = &self.0.table {
                        table.with(self.0.index, |flight| flight.scope.panicked = true);
                    }
                }
            }
        }
        let _watch = Watch(self);
        f()
    }

    /// [`Flight::body_bytes`]: the body produced `n` bytes.
    #[inline]
    pub fn body_bytes(&mut self, n: u64) {
        if let Some(table) = &self.table {
            table.with(self.index, |flight| flight.add_body_bytes(n));
        }
    }

    /// The body's last chunk, of `n` bytes, was produced: [`ParkedFlight::body_bytes`] and
    /// [`ParkedFlight::complete`] at once (the flight is taken from the table once).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use vitalsign_core::adapter::{self, FlightTable, RequestStart};
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").build().unwrap();
    /// let table = Rc::new(FlightTable::default());
    /// let mut flight = adapter::begin(&monitor, RequestStart::new(b"GET", "/"));
    /// flight.set_status(200);
    /// flight.body_starts(false);
    /// let mut parked = flight.park(&table);
    /// parked.last_bytes(5); // recorded, with its 5 bytes
    /// assert!(!parked.is_recording());
    /// assert_eq!(table.parked(), 0);
    /// ```
    #[inline]
    pub fn last_bytes(&mut self, n: u64) {
        if let Some(mut flight) = self.unpark() {
            flight.add_body_bytes(n);
            flight.complete();
        }
    }

    /// [`Flight::complete`]: the response ended normally; the request is recorded now.
    #[inline]
    pub fn complete(&mut self) {
        if let Some(mut flight) = self.unpark() {
            flight.complete();
        }
    }

    /// [`Flight::body_failed`]: the body yielded an error; the request is recorded now, as an
    /// error with error code `body_error` (unless the handler attached a code).
    pub fn body_failed(&mut self) {
        if let Some(mut flight) = self.unpark() {
            flight.body_failed();
        }
    }

    #[inline]
    fn unpark(&mut self) -> Option<InFlight> {
        self.table.take()?.take(self.index)
    }
}

impl Drop for ParkedFlight {
    fn drop(&mut self) {
        // Dropped before the body ended: the flight's drop records a disconnect.
        drop(self.unpark());
    }
}

impl std::fmt::Debug for ParkedFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParkedFlight")
            .field("recording", &self.is_recording())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapter::{self, RequestStart};
    use crate::{MemorySink, Monitor};

    fn monitor() -> (Monitor, Arc<MemorySink>) {
        let sink = Arc::new(MemorySink::new(16));
        let monitor = Monitor::builder("parked")
            .sink(sink.clone())
            .build()
            .unwrap();
        (monitor, sink)
    }

    fn parked(monitor: &Monitor, table: &Rc<FlightTable>, route: &str) -> ParkedFlight {
        let mut flight = adapter::begin(
            monitor,
            RequestStart::new(b"GET", route).with_route(Some(route)),
        );
        flight.set_status(200);
        flight.body_starts(false);
        flight.park(table)
    }

    #[test]
    fn a_parked_flight_records_once_and_frees_its_slot() {
        let (monitor, sink) = monitor();
        let table = Rc::new(FlightTable::default());
        let mut first = parked(&monitor, &table, "/a");
        let mut second = parked(&monitor, &table, "/b");
        assert_eq!(table.parked(), 2);
        first.body_bytes(3);
        first.body_bytes(4);
        first.complete();
        first.complete(); // nothing more
        assert_eq!(table.parked(), 1);
        // The freed slot is reused.
        let third = parked(&monitor, &table, "/c");
        assert_eq!(table.table.borrow().slots.len(), 2);
        second.body_failed();
        drop(third); // a disconnect
        assert_eq!(table.parked(), 0);
        let points = sink.requests();
        let routes: Vec<_> = points.iter().map(|p| p.route.as_str()).collect();
        assert_eq!(routes, ["/a", "/b", "/c"]);
        assert_eq!(points[0].response_body_bytes, 7);
        assert!(!points[0].disconnected && !points[1].disconnected);
        assert!(points[2].disconnected);
        let errors = sink.errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].route.as_str(), errors[0].error_code.as_str()),
            ("/b", "body_error")
        );
    }

    #[test]
    fn a_panic_in_the_body_is_noted() {
        let (monitor, sink) = monitor();
        let table = Rc::new(FlightTable::default());
        let mut body = parked(&monitor, &table, "/p");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            body.in_body(|| panic!("in the body"));
        }));
        assert!(caught.is_err());
        drop(body);
        assert_eq!(sink.requests().len(), 1);
        let errors = sink.errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].error_code, "panic");
    }

    #[test]
    fn an_excluded_or_finished_flight_parks_nowhere() {
        let (monitor, sink) = monitor();
        let table = Rc::new(FlightTable::default());
        let mut flight = adapter::begin(&monitor, RequestStart::new(b"GET", "/metrics"));
        flight.set_status(200);
        assert!(!flight.park(&table).is_recording());
        let mut flight = adapter::begin(&monitor, RequestStart::new(b"HEAD", "/h"));
        flight.set_status(200);
        flight.body_starts(false); // HEAD: complete at the head
        assert!(!flight.park(&table).is_recording());
        assert_eq!(table.parked(), 0);
        assert_eq!(sink.requests().len(), 1);
    }
}
