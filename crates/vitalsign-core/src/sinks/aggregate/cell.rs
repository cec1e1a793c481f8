//! A tag set's figures: `count`, `min`, `max` and `sum` in two slots of atomics, which writers
//! and the emitter take turns on (a writer/reader phaser).

use std::sync::atomic::{AtomicU64, Ordering};

/// What a cell's slot collected.
#[derive(Clone, Copy, Debug)]
pub(super) struct Agg {
    pub(super) count: u64,
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) sum: f64,
}

/// Figures of one tag set in atomics. Execution times are never negative, so `min` and `max`
/// compare their bits as integers (the order of non-negative floats).
#[derive(Debug)]
struct Slot {
    count: AtomicU64,
    min_bits: AtomicU64,
    max_bits: AtomicU64,
    sum_bits: AtomicU64,
}

impl Slot {
    fn new() -> Self {
        Slot {
            count: AtomicU64::new(0),
            min_bits: AtomicU64::new(f64::INFINITY.to_bits()),
            max_bits: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn add(&self, seconds: f64) {
        use Ordering::Relaxed;
        // Also maps NaN and -0.0 to +0.0, whose bits order as the values do.
        let seconds = if seconds > 0.0 { seconds } else { 0.0 };
        self.count.fetch_add(1, Relaxed);
        self.min_bits.fetch_min(seconds.to_bits(), Relaxed);
        self.max_bits.fetch_max(seconds.to_bits(), Relaxed);
        let _ = self.sum_bits.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + seconds).to_bits())
        });
    }

    /// The figures, and the slot reset; only while no writer is in the slot.
    fn take(&self) -> Agg {
        use Ordering::Relaxed;
        Agg {
            count: self.count.swap(0, Relaxed),
            min: f64::from_bits(self.min_bits.swap(f64::INFINITY.to_bits(), Relaxed)),
            max: f64::from_bits(self.max_bits.swap(0, Relaxed)),
            sum: f64::from_bits(self.sum_bits.swap(0f64.to_bits(), Relaxed)),
        }
    }
}

/// Bit of [`Cell::state`] that names the slot writers use.
const SLOT_BIT: u64 = 1 << 63;

/// One tag set of one series: its tags, and two slots that writers and the emitter take turns
/// on. Writers never wait: they announce themselves on `state` (which also tells them the
/// slot), add, and sign out on `left`. The emitter (one at a time) flips `state` to the other
/// slot, learning how many writers entered the old one, and waits until as many have left.
#[derive(Debug)]
pub(super) struct Cell {
    pub(super) series: &'static str,
    /// Sorted by key, as [`AggregatePoint::tags`](crate::AggregatePoint::tags).
    pub(super) tags: Box<[(String, String)]>,
    /// [`SLOT_BIT`]: the slot in use; the other bits: writers that entered it since the flip.
    state: AtomicU64,
    /// Writers that left each slot since it was last flipped to.
    left: [AtomicU64; 2],
    slots: [Slot; 2],
}

impl Cell {
    pub(super) fn new(series: &'static str, tags: Vec<(String, String)>) -> Self {
        Cell {
            series,
            tags: tags.into(),
            state: AtomicU64::new(0),
            left: [AtomicU64::new(0), AtomicU64::new(0)],
            slots: [Slot::new(), Slot::new()],
        }
    }

    pub(super) fn add(&self, seconds: f64) {
        let state = self.state.fetch_add(1, Ordering::Acquire);
        let slot = usize::from(state & SLOT_BIT != 0);
        self.slots[slot].add(seconds);
        self.left[slot].fetch_add(1, Ordering::Release);
    }

    /// What the slot in use collected, if anything; writers move to the other slot. Called by
    /// one emitter at a time (under `PeriodAggregator::last_emitted`).
    pub(super) fn take(&self) -> Option<Agg> {
        if self.state.load(Ordering::Acquire) & !SLOT_BIT == 0 {
            // Nobody entered: a writer entering now counts as if it came after the flip.
            return None;
        }
        let old = self.state.load(Ordering::Relaxed) & SLOT_BIT;
        let new = old ^ SLOT_BIT;
        // Every writer of the other slot left before its last take returned.
        self.left[usize::from(new != 0)].store(0, Ordering::Relaxed);
        let entered = self.state.swap(new, Ordering::AcqRel) & !SLOT_BIT;
        let left = &self.left[usize::from(old != 0)];
        let mut spins = 0u32;
        while left.load(Ordering::Acquire) != entered {
            // A writer between its two announcements: a few instructions, unless preempted.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        Some(self.slots[usize::from(old != 0)].take())
    }
}
