//! Exponential backoff with jitter, the one retry schedule of scansync, and the time
//! budget that bounds it.

use crate::error::Error;
use std::time::{Duration, Instant};

/// The default time a page (or a writer's connection) is retried through transient
/// failures: longer than a managed database's failover (60–120 s).
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(180);
/// Attempts for the checkpoint write (docs/run.md, "Checkpoint last").
pub const CHECKPOINT_ATTEMPTS: u32 = 3;

/// Returns how long to wait before retry number `attempt` (1 for the first retry):
/// a random time up to 100 ms × 2^attempt, capped at 10 s.
pub fn backoff(attempt: u32) -> Duration {
    let cap_ms = (100u64 << attempt.min(10)).min(10_000);
    Duration::from_millis(cap_ms / 2 + fastrand::u64(0..=cap_ms / 2))
}

/// Retries of one operation within a time budget: [`RetryBudget::next`] says how long to
/// wait before the next attempt, or that it is time to give up.
#[derive(Debug)]
pub struct RetryBudget {
    started: Instant,
    budget: Duration,
    attempts: u32,
}

impl RetryBudget {
    /// Starts a budget of `budget` from now.
    pub fn new(budget: Duration) -> Self {
        Self { started: Instant::now(), budget, attempts: 0 }
    }

    /// Returns the attempts that failed so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Counts a failed attempt; returns the wait before the next one, or `None` when the
    /// error is not retryable ([`Error::is_retryable`]) or the budget is spent.
    pub fn next(&mut self, e: &Error) -> Option<Duration> {
        self.attempts += 1;
        let left = self.budget.checked_sub(self.started.elapsed())?;
        if !e.is_retryable() || left.is_zero() {
            return None;
        }
        Some(backoff(self.attempts).min(left))
    }

    /// Says, on the final error, how long the retries went on (when they did).
    pub fn give_up(&self, e: Error) -> Error {
        if e.is_retryable() {
            e.context(format!(
                "gave up after {} attempts over {:.0} s (--retry-budget {}s)",
                self.attempts,
                self.started.elapsed().as_secs_f64(),
                self.budget.as_secs()
            ))
        } else {
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_retries_transient_errors_until_it_is_spent_and_never_fatal_ones() {
        let transient = Error::new(crate::Kind::Connection, "x");
        let fatal = Error::new(crate::Kind::Database, "x");
        assert!(RetryBudget::new(Duration::from_secs(60)).next(&transient).is_some());
        assert!(RetryBudget::new(Duration::from_secs(60)).next(&fatal).is_none());
        assert!(RetryBudget::new(Duration::ZERO).next(&transient).is_none());
        let lost = Error::new(crate::Kind::LockLost, "x");
        assert!(RetryBudget::new(Duration::from_secs(60)).next(&lost).is_none());
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(1) <= Duration::from_millis(200));
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(30) <= Duration::from_secs(10));
    }
}
