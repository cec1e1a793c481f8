//! The health thread: one per monitor, on a current-thread Tokio runtime of its own; runs each
//! check on its interval under its timeout, ticks the rules and the other tickers, and tells
//! how long it has been busy (a stuck or ended thread shows on `/health/live`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{earliest, Health};
use crate::health::model::{Check, ComponentKind};

impl Health {
    /// How long the health thread has been busy without waiting for work: zero while it
    /// waits. A thread stuck in a check or on a lock keeps counting; one that has ended is
    /// stalled for [`Duration::MAX`].
    pub(crate) fn stalled_for(&self) -> Duration {
        if self.ended.load(Ordering::Relaxed) {
            return Duration::MAX;
        }
        match self.busy_since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => self
                .started
                .elapsed()
                .saturating_sub(Duration::from_millis(since - 1)),
        }
    }

    /// Asks the health thread for a round (rules, snapshot: it takes the monitor's locks), so
    /// that a thread that cannot finish one shows in [`Health::stalled_for`].
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    /// Park and unpark hooks of the health thread's runtime.
    fn resting(&self, resting: bool) {
        let since = if resting {
            0
        } else {
            self.started.elapsed().as_millis() as u64 + 1
        };
        self.busy_since_ms.store(since, Ordering::Relaxed);
    }

    /// When check `index` goes stale if no result arrives.
    fn stale_at(&self, index: usize, check: &Check) -> Instant {
        let since = self.components[index]
            .lock()
            .last_report
            .unwrap_or(self.started);
        since + check.interval * 3 + Duration::from_millis(1)
    }
}

/// The background thread of a monitor's health: runs checks, ticks rules; ends when dropped.
#[derive(Debug)]
pub(crate) struct HealthThread {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl HealthThread {
    /// Spawns the thread; `tickers` run on every round after the health one.
    pub(crate) fn spawn(health: Arc<Health>, tickers: Vec<Ticker>) -> std::io::Result<Self> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (parked, unparked) = (Arc::clone(&health), Arc::clone(&health));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(move || parked.resting(true))
            .on_thread_unpark(move || unparked.resting(false))
            .build()?;
        std::thread::Builder::new()
            .name(crate::health::HEALTH_THREAD.into())
            .spawn(move || {
                let _ended = Ended(Arc::clone(&health));
                runtime.block_on(run(health, tickers, stopped));
            })?;
        Ok(HealthThread { _stop: stop })
    }
}

/// Marks the health thread ended when it ends, by a panic too.
struct Ended(Arc<Health>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::Relaxed);
    }
}

/// Work done on each round of the health thread; returns when it next needs a round
/// (`None`: it has no deadline of its own).
pub(crate) type Ticker = Box<dyn Fn(Instant) -> Option<Instant> + Send + Sync>;

async fn run(
    health: Arc<Health>,
    tickers: Vec<Ticker>,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    for (index, component) in health.components.iter().enumerate() {
        if let ComponentKind::Check(check) = &component.spec.kind {
            tokio::spawn(run_check(Arc::clone(&health), index, check.clone()));
        }
    }
    let ticker = {
        let health = Arc::clone(&health);
        async move {
            loop {
                let mut next = health.tick();
                let now = Instant::now();
                for ticker in &tickers {
                    next = earliest(next, ticker(now));
                }
                // Sleeps until the earliest deadline, a request into an armed window, or a
                // poke (a permit left while the round ran counts).
                let woken = health.wake.notified();
                match next {
                    Some(at) => {
                        let _ = tokio::time::timeout_at(at.into(), woken).await;
                    }
                    None => woken.await,
                }
            }
        }
    };
    tokio::select! {
        _ = stopped => {}
        _ = ticker => {}
    }
}

async fn run_check(health: Arc<Health>, index: usize, check: Check) {
    let mut interval = tokio::time::interval(check.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let run = (check.run)();
        // Spawned, so that a panic in the check is caught here as a JoinError.
        let mut run = tokio::spawn(tokio::time::timeout(check.timeout, run));
        // A run outlasting three intervals (its timeout allows it) makes the check stale:
        // republish when that happens, then keep waiting for the run.
        let stale_at = health.stale_at(index, &check);
        let outcome = tokio::select! {
            outcome = &mut run => outcome,
            () = tokio::time::sleep_until(stale_at.into()) => {
                health.publish();
                run.await
            }
        };
        let result = match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(format!("timed out after {} ms", check.timeout.as_millis())),
            Err(join) => Err(match join.try_into_panic() {
                Ok(panic) => format!("check panicked: {}", panic_message(&*panic)),
                Err(_) => "check was cancelled".to_owned(),
            }),
        };
        health.check_result(index, result);
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthConfig;

    fn health() -> Arc<Health> {
        Arc::new(Health::new(
            HealthConfig::default(),
            Box::new(crate::health::DefaultTaskClassifier),
        ))
    }

    fn wait(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A health thread that waits for work is not stalled; one that has ended (here by a
    /// panic in its round) is, at once, so that `/health/live` need not wait 5 s to say so.
    #[test]
    fn the_stall_is_zero_while_waiting_and_endless_once_the_thread_ended() {
        let resting = health();
        let _thread = HealthThread::spawn(Arc::clone(&resting), Vec::new()).unwrap();
        wait("the thread waits for work", || {
            resting.stalled_for() == Duration::ZERO
        });

        let dying = health();
        let _thread = HealthThread::spawn(
            Arc::clone(&dying),
            vec![Box::new(|_| panic!("a round that panics"))],
        )
        .unwrap();
        wait("the thread ended", || dying.stalled_for() == Duration::MAX);
    }
}
