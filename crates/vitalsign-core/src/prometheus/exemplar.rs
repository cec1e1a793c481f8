//! Exemplars of the duration histogram: per bucket, the latest sampled request's trace id, span
//! id, value and time, kept in a few atomics (a sequence lock of six words; no lock, no
//! allocation per request: a series' slots are allocated once, on its first exemplar).

use std::sync::atomic::{fence, AtomicU64, Ordering};

use crate::TraceContext;

/// The latest exemplar of one bucket. `seq` is odd while a writer fills the other words, and
/// grows by two with each exemplar; zero means none yet.
#[derive(Debug, Default)]
pub(super) struct ExemplarSlot {
    seq: AtomicU64,
    trace_hi: AtomicU64,
    trace_lo: AtomicU64,
    span: AtomicU64,
    value_bits: AtomicU64,
    unix_millis: AtomicU64,
}

/// An exemplar as read for rendering.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Exemplar {
    pub(super) trace: TraceContext,
    pub(super) value: f64,
    pub(super) unix_millis: u64,
}

impl ExemplarSlot {
    /// Stores an exemplar. A writer that finds another one at work gives way (the other's is
    /// as recent): a request never waits.
    pub(super) fn store(&self, trace: &TraceContext, value: f64, unix_millis: u64) {
        let seq = self.seq.load(Ordering::Relaxed);
        if seq & 1 == 1
            || self
                .seq
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // The odd sequence is visible before any of the words below.
        fence(Ordering::Release);
        let trace_id = u128::from_be_bytes(trace.trace_id());
        self.trace_hi
            .store((trace_id >> 64) as u64, Ordering::Relaxed);
        self.trace_lo.store(trace_id as u64, Ordering::Relaxed);
        self.span
            .store(u64::from_be_bytes(trace.span_id()), Ordering::Relaxed);
        self.value_bits.store(value.to_bits(), Ordering::Relaxed);
        self.unix_millis.store(unix_millis, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }

    /// The latest exemplar, if any (a read racing writers retries a few times, then gives up:
    /// the next scrape shows it).
    pub(super) fn load(&self) -> Option<Exemplar> {
        for _ in 0..8 {
            let before = self.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let trace_hi = self.trace_hi.load(Ordering::Relaxed);
            let trace_lo = self.trace_lo.load(Ordering::Relaxed);
            let span = self.span.load(Ordering::Relaxed);
            let value = f64::from_bits(self.value_bits.load(Ordering::Relaxed));
            let unix_millis = self.unix_millis.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                let trace_id = (u128::from(trace_hi) << 64) | u128::from(trace_lo);
                let trace = TraceContext::new(trace_id.to_be_bytes(), span.to_be_bytes(), 1)?;
                return Some(Exemplar {
                    trace,
                    value,
                    unix_millis,
                });
            }
        }
        None
    }
}

impl Exemplar {
    /// Appends ` # {trace_id="…",span_id="…"} value timestamp` (OpenMetrics; the label set is
    /// 63 characters, within the 128 allowed).
    pub(super) fn render_into(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {}.{:03}",
            self.trace.trace_id_hex(),
            self.trace.span_id_hex(),
            self.value,
            self.unix_millis / 1000,
            self.unix_millis % 1000
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(n: u8) -> TraceContext {
        TraceContext::new([n; 16], [n.wrapping_add(1).max(1); 8], 1).unwrap()
    }

    #[test]
    fn the_latest_exemplar_is_kept() {
        let slot = ExemplarSlot::default();
        assert_eq!(slot.load(), None);
        slot.store(&trace(1), 0.5, 1_700_000_000_123);
        slot.store(&trace(2), 0.25, 1_700_000_001_456);
        let exemplar = slot.load().unwrap();
        assert_eq!(exemplar.trace.trace_id(), [2; 16]);
        assert_eq!(exemplar.trace.span_id(), [3; 8]);
        assert_eq!(exemplar.value, 0.25);
        let mut text = String::new();
        exemplar.render_into(&mut text);
        assert_eq!(
            text,
            " # {trace_id=\"02020202020202020202020202020202\",span_id=\"0303030303030303\"} 0.25 1700000001.456"
        );
    }

    /// Writers racing a reader: whatever the reader sees is one whole exemplar, never words
    /// of two.
    #[test]
    fn a_racing_reader_sees_whole_exemplars() {
        let slot = std::sync::Arc::new(ExemplarSlot::default());
        let writers: Vec<_> = (1..=4u8)
            .map(|n| {
                let slot = slot.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        slot.store(&trace(n), f64::from(n), i);
                    }
                })
            })
            .collect();
        let mut seen = 0;
        loop {
            let running = writers.iter().any(|w| !w.is_finished());
            if let Some(exemplar) = slot.load() {
                let n = exemplar.value as u8;
                assert_eq!(exemplar.trace, trace(n), "{exemplar:?}");
                seen += 1;
            }
            if !running {
                break;
            }
        }
        for writer in writers {
            writer.join().unwrap();
        }
        assert!(slot.load().is_some());
        assert!(seen > 0);
    }
}
