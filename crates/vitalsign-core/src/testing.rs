//! Helpers shared by the crate's unit tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Runs `f` with a subscriber counting the `warn` events whose message contains `text` (`f`
/// can read the count so far); returns the count.
pub(crate) fn count_warnings(text: &'static str, f: impl FnOnce(&AtomicUsize)) -> usize {
    let seen = Arc::new(AtomicUsize::new(0));
    let subscriber = CountWarnings {
        text,
        seen: Arc::clone(&seen),
    };
    tracing::subscriber::with_default(subscriber, || f(&seen));
    seen.load(Ordering::SeqCst)
}

/// A subscriber counting the `warn` events whose message contains a text.
struct CountWarnings {
    text: &'static str,
    seen: Arc<AtomicUsize>,
}

impl tracing::Subscriber for CountWarnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0 += &format!("{value:?}");
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if *event.metadata().level() == tracing::Level::WARN && message.0.contains(self.text) {
            self.seen.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
