//! Time, injected. [`SystemClock`] is the only place in Lethe that reads the system time;
//! [`ManualClock`] lets tests move time and wakes anything sleeping on it.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now() >= deadline`; `ManualClock::advance` wakes pending sleepers.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        Box::pin(async move {
            // Re-check after waking: the system clock may have been stepped meanwhile.
            loop {
                let remaining = deadline - Utc::now();
                match remaining.to_std() {
                    Ok(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
                    _ => return,
                }
            }
        })
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    pub fn set(&self, to: DateTime<Utc>) {
        self.now.send_replace(to);
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.now.send_modify(|now| *now += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // wait_for only errs when the sender is gone, i.e. the clock was dropped:
            // then time can never reach the deadline and we stay asleep.
            if rx.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_advanced_past_their_deadline() {
        let start = DateTime::<Utc>::UNIX_EPOCH;
        let clock = ManualClock::new(start);
        let sleeper = tokio::spawn(clock.sleep_until(start + Duration::hours(1)));
        clock.advance(Duration::minutes(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::minutes(1));
        sleeper.await.expect("sleeper woke");
        assert_eq!(clock.now(), start + Duration::hours(1));
    }
}
