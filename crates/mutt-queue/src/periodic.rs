//! Background loops of the consumers (heartbeat, janitor, delayed-retry mover): one way to run
//! a step every interval until stopped, logging a failed run and carrying on.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// When the first run happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstRun {
    /// At once, then every interval.
    Now,
    /// After one interval (the caller already ran the step when it started).
    AfterInterval,
}

/// Spawns a task that runs `step` every `interval` until `stop` is cancelled. A failed run is
/// logged as "`<name>` failed" and the loop goes on; a run in progress when `stop` is
/// cancelled is dropped at its next await point. Runs never overlap: a slow run delays the next.
pub fn spawn_every<F, Fut, E>(
    name: &'static str,
    interval: Duration,
    first: FirstRun,
    stop: CancellationToken,
    mut step: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Display,
{
    tokio::spawn(async move {
        let start = match first {
            FirstRun::Now => tokio::time::Instant::now(),
            FirstRun::AfterInterval => tokio::time::Instant::now() + interval,
        };
        let mut tick = tokio::time::interval_at(start, interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                result = step() => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, task = name, "{name} failed");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn runs_every_interval_survives_failures_and_stops() {
        let runs = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let counter = runs.clone();
        let task = spawn_every("test step", Duration::from_millis(10), FirstRun::Now, stop.clone(), move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            // Every other run fails: the loop must go on.
            async move { if n.is_multiple_of(2) { Err("boom") } else { Ok(()) } }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
        task.await.unwrap();
        let seen = runs.load(Ordering::SeqCst);
        assert!(seen >= 3, "ran {seen} times");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), seen, "no run after stop");
    }

    #[tokio::test]
    async fn after_interval_waits_for_the_first_run() {
        let runs = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let counter = runs.clone();
        let _task =
            spawn_every("late step", Duration::from_millis(300), FirstRun::AfterInterval, stop.clone(), move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, String>(()) }
            });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        stop.cancel();
    }
}
