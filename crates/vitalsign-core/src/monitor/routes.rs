//! Route interning: route templates become cheap labels, up to the cap of distinct routes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Monitor;

/// Routes kept in the lock-free route cache; further ones are looked up under a lock.
pub(super) const ROUTE_CACHE_ROUTES: usize = 1024;

/// Route value used for route templates beyond the cap of distinct routes.
pub const OVERFLOW_ROUTE: &str = "__overflow__";

impl Monitor {
    pub(super) fn intern(&self, route: &str) -> Route {
        let cache = &self.inner.route_cache;
        let hash = cache.hash(route);
        if let Some((slot, _)) = cache.find(hash, |known| **known == *route) {
            return Route::Slot(slot as u32);
        }
        let interned = self.intern_locked(route);
        match interned {
            Route::Interned(_) => cache
                .insert(hash, route.into())
                .map_or(interned, |slot| Route::Slot(slot as u32)),
            other => other,
        }
    }

    fn intern_locked(&self, route: &str) -> Route {
        if let Some(known) = self
            .inner
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(route)
        {
            return Route::Interned(known.clone());
        }
        let mut routes = self.inner.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = routes.get(route) {
            return Route::Interned(known.clone());
        }
        if routes.len() >= self.inner.max_routes {
            if !self.inner.routes_overflowed.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = self.inner.max_routes,
                    "vitalsign: more distinct routes than the label-set cap; further routes are recorded as {OVERFLOW_ROUTE:?}"
                );
            }
            return Route::OVERFLOW;
        }
        let interned: Arc<str> = route.into();
        routes.insert(interned.clone());
        Route::Interned(interned)
    }
}

/// A request's route label: a slot of the monitor's route cache (or one of two constants), or
/// (past the cache) a shared copy from the route set. Two words, so that an [`InFlight`] stays
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
    use crate::monitor::tests::{monitor, start};
    use crate::point::UNMATCHED_ROUTE;
    use crate::{MemorySink, Method};

    #[test]
    fn routes_and_label_sets_past_the_lock_free_caches_are_recorded_alike() {
        // More routes than the route cache and the series cache hold: the rest go through the
        // locked maps, with the same results.
        let routes = ROUTE_CACHE_ROUTES * 3;
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
                            monitor.begin(start(b"GET", &route, Some(&route))).unwrap();
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
            for i in [0, ROUTE_CACHE_ROUTES + 1, routes - 1] {
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
            let mut flight = monitor.begin(start(method, "/raw/123", route)).unwrap();
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
    fn routes_past_the_cap_are_overflow() {
        let (monitor, sink) = monitor(|b| b.max_label_sets(2));
        for route in ["/a", "/b", "/c", "/a"] {
            let mut flight = monitor.begin(start(b"GET", route, Some(route))).unwrap();
            flight.set_status(200);
            flight.complete();
        }
        let routes: Vec<String> = sink.requests().into_iter().map(|p| p.route).collect();
        assert_eq!(routes, ["/a", "/b", OVERFLOW_ROUTE, "/a"]);
    }
}
