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
