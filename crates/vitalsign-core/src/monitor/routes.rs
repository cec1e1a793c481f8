//! Route interning: route templates become cheap labels, up to the cap of distinct routes.

use std::sync::Arc;

use super::Monitor;
use crate::interner::{Cap, Interner, Kind, Probe};

/// Route value used for route templates beyond the cap of distinct routes.
pub const OVERFLOW_ROUTE: &str = "__overflow__";

/// The routes seen, up to the cap of distinct routes, each label shared; the lock-free cache
/// in front names a route by its slot ([`Route::Slot`]).
pub(super) type Routes = Interner<Arc<str>, Arc<str>, Arc<str>>;

/// The route interner of a monitor whose cap of label sets is `max`.
pub(super) fn routes(max: usize) -> Routes {
    let cap = Cap::new(
        max,
        "distinct routes",
        format!("the route {OVERFLOW_ROUTE:?}"),
    );
    Interner::new(cap, true)
}

impl Monitor {
    pub(super) fn intern(&self, route: &str) -> Route {
        let routes = &self.inner.routes;
        let miss = match routes.probe_hashed(route_hash(route), |known| same_text(known, route)) {
            Probe::Hit(slot, _) => return Route::Slot(slot),
            Probe::Miss(miss) => miss,
        };
        let (interned, kind) = routes.get(route, OVERFLOW_ROUTE, |kind| {
            let label: Arc<str> = match kind {
                Kind::Regular => route.into(),
                Kind::Overflow => OVERFLOW_ROUTE.into(),
            };
            (Arc::clone(&label), label)
        });
        if kind == Kind::Overflow {
            return Route::OVERFLOW;
        }
        match miss.offer(|| Arc::clone(&interned)) {
            Some((slot, _)) => Route::Slot(slot),
            None => Route::Interned(interned),
        }
    }
}

/// A route template's hash in the route cache: its length and its bytes eight at a time,
/// folded into one word (a few instructions for a typical template, where a general-purpose
/// hasher of the text takes several times that). Templates are the application's, not a
/// client's, so the hash needs no secret seed.
#[inline]
fn route_hash(route: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes = route.as_bytes();
    let n = bytes.len();
    let folded = if n >= 8 {
        // The first word, the words in between, then the last word (overlapping the one
        // before it), turned so that a byte in an overlap lands on other bits.
        let mut folded = (n as u64 ^ word(bytes)).wrapping_mul(K).rotate_left(31);
        let mut at = 8;
        while at + 8 < n {
            folded = (folded ^ word(&bytes[at..]))
                .wrapping_mul(K)
                .rotate_left(31);
            at += 8;
        }
        (folded ^ word(&bytes[n - 8..]).rotate_left(17)).wrapping_mul(K)
    } else {
        bytes
            .iter()
            .fold(n as u64, |w, b| w << 8 | u64::from(*b))
            .wrapping_mul(K)
    };
    // A product's low bits depend on the factors' low bits only: mix the high ones down (the
    // cache takes its slot from the low bits).
    let mixed = (folded ^ folded >> 33).wrapping_mul(0xff51_afd7_ed55_8ccd);
    mixed ^ mixed >> 33
}

/// Eight bytes as a word.
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// Whether a cached route is `route`: for a template of 8 to 16 bytes (most), two word
/// compares, overlapping in the middle, instead of a call to `memcmp`.
#[inline(always)]
fn same_text(known: &str, route: &str) -> bool {
    let (a, b) = (known.as_bytes(), route.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n) {
        word(a) == word(b) && word(&a[n - 8..]) == word(&b[n - 8..])
    } else {
        a == b
    }
}

/// A request's route label: a slot of the monitor's route cache (or one of two constants), or
/// (past the cache) a shared copy from the route set. Two words, so that an [`InFlight`](super::InFlight) stays
/// small enough to be moved without a call to `memcpy`.
#[derive(Debug)]
pub(super) enum Route {
    Slot(u32),
    Interned(Arc<str>),
}

impl Route {
    pub(super) const UNMATCHED_SLOT: u32 = u32::MAX;
    pub(super) const OVERFLOW_SLOT: u32 = u32::MAX - 1;
    pub(super) const UNMATCHED: Route = Route::Slot(Self::UNMATCHED_SLOT);
    pub(super) const OVERFLOW: Route = Route::Slot(Self::OVERFLOW_SLOT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interner::CACHED_ENTRIES;
    use crate::monitor::tests::{monitor, start};
    use crate::point::UNMATCHED_ROUTE;
    use crate::{MemorySink, Method};

    #[test]
    fn routes_and_label_sets_past_the_lock_free_caches_are_recorded_alike() {
        // More routes than the route cache and the series cache hold: the rest go through the
        // locked maps, with the same results.
        let routes = CACHED_ENTRIES * 3;
        let sink = Arc::new(MemorySink::new(2 * routes));
        let monitor = Monitor::builder("svc")
            .max_label_sets(routes + 10)
            .sink(sink.clone())
            .build()
            .unwrap();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let monitor = monitor.clone();
                std::thread::spawn(move || {
                    for i in 0..routes {
                        let route = format!("/r/{i}");
                        let mut flight =
                            monitor.begin(&start(b"GET", &route, Some(&route))).unwrap();
                        assert_eq!(flight.route(), route);
                        flight.set_status(200 + (i % 2) as u16);
                        flight.complete();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let points = sink.requests();
        assert_eq!(points.len(), 2 * routes);
        for point in &points {
            let i: usize = point.route["/r/".len()..].parse().unwrap();
            assert_eq!(point.status_code, 200 + (i % 2) as u16);
        }
        #[cfg(feature = "prometheus")]
        {
            let text = monitor.render_metrics().unwrap();
            for i in [0, CACHED_ENTRIES + 1, routes - 1] {
                let line = format!(
                    "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"/r/{i}\",http_response_status_code=\"{}\"}} 2",
                    200 + i % 2
                );
                assert!(text.contains(&line), "{line}");
            }
            assert_eq!(monitor.prometheus().unwrap().label_sets(), routes);
        }
    }

    #[test]
    fn route_and_method_policy() {
        let (monitor, sink) = monitor(|b| b);
        for (method, route) in [(&b"GET"[..], None), (b"BREW", Some("/a"))] {
            let mut flight = monitor.begin(&start(method, "/raw/123", route)).unwrap();
            flight.set_status(404);
            flight.complete();
        }
        let points = sink.requests();
        assert_eq!(
            (points[0].route.as_str(), points[0].method),
            (UNMATCHED_ROUTE, Method::Get)
        );
        assert_eq!(
            (points[1].route.as_str(), points[1].method.as_str()),
            ("/a", "_OTHER")
        );
    }

    #[test]
    fn route_texts_compare_and_hash_by_every_byte() {
        let hash = route_hash;
        let texts: Vec<String> = (0..40)
            .flat_map(|len| {
                (0..len.max(1)).map(move |at| {
                    let mut text = vec![b'a'; len];
                    if len > 0 {
                        text[at] = b'b';
                    }
                    String::from_utf8(text).unwrap()
                })
            })
            .collect();
        let (mut pairs, mut slot_collisions) = (0, 0);
        for a in &texts {
            assert_eq!(hash(a), hash(&a.clone()));
            for b in &texts {
                assert_eq!(same_text(a, b), a == b, "{a:?} {b:?}");
                if a != b && a.len() == b.len() {
                    // One byte apart, anywhere: a different hash (not a guarantee of any
                    // hash, but what this fold gives).
                    assert_ne!(hash(a), hash(b), "{a:?} {b:?}");
                    pairs += 1;
                    slot_collisions += usize::from(hash(a) & 0xffff == hash(b) & 0xffff);
                }
            }
        }
        // The cache takes a slot from the low bits: they differ as a random hash's would.
        assert!(
            slot_collisions * 1000 < pairs,
            "{slot_collisions} of {pairs}"
        );
    }

    #[test]
    fn routes_past_the_cap_are_overflow() {
        let (monitor, sink) = monitor(|b| b.max_label_sets(2));
        for route in ["/a", "/b", "/c", "/a"] {
            let mut flight = monitor.begin(&start(b"GET", route, Some(route))).unwrap();
            flight.set_status(200);
            flight.complete();
        }
        let routes: Vec<String> = sink.requests().into_iter().map(|p| p.route).collect();
        assert_eq!(routes, ["/a", "/b", OVERFLOW_ROUTE, "/a"]);
    }
}
