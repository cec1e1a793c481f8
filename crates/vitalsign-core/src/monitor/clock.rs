//! The request clock: monotonic readings, turned into wall-clock time cheaply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time from a monotonic reading: one clock read per request instead of two. The
/// offset is re-measured when a request is stamped more than [`RESYNC_NANOS`] after the last
/// measurement, so clock adjustments show within a second, and nothing runs while idle.
#[derive(Debug)]
pub(super) struct WallClock {
    /// The request clock: the TSC where it is reliable (calibrated once per process).
    clock: quanta::Clock,
    anchor: quanta::Instant,
    /// Unix time of `anchor`, in nanoseconds, as last measured.
    anchor_unix_nanos: AtomicU64,
    /// Nanoseconds after `anchor` of that measurement.
    synced_at: AtomicU64,
}

/// Longest time the wall-clock offset is used without being measured again.
const RESYNC_NANOS: u64 = 1_000_000_000;

impl WallClock {
    pub(super) fn new() -> Self {
        let source = quanta::Clock::new();
        let clock = WallClock {
            anchor: source.now(),
            clock: source,
            anchor_unix_nanos: AtomicU64::new(0),
            synced_at: AtomicU64::new(0),
        };
        clock.resync();
        clock
    }

    #[cold]
    fn resync(&self) {
        let now = self.now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let since_anchor = now.saturating_duration_since(self.anchor).as_nanos() as u64;
        self.anchor_unix_nanos
            .store(unix.saturating_sub(since_anchor), Ordering::Relaxed);
        self.synced_at.store(since_anchor, Ordering::Relaxed);
    }

    pub(super) fn now(&self) -> quanta::Instant {
        self.clock.now()
    }

    /// Time since `start`.
    pub(super) fn since(&self, start: quanta::Instant) -> Duration {
        self.now().saturating_duration_since(start)
    }

    pub(super) fn unix_nanos(&self, at: quanta::Instant) -> u64 {
        let since_anchor = at.saturating_duration_since(self.anchor).as_nanos() as u64;
        if since_anchor.saturating_sub(self.synced_at.load(Ordering::Relaxed)) > RESYNC_NANOS {
            self.resync();
        }
        self.anchor_unix_nanos.load(Ordering::Relaxed) + since_anchor
    }
}
