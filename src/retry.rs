//! Exponential backoff with jitter, the one retry schedule of scansync, and [`Retry`], the one
//! loop around it: every retried operation (a page, a query, a claim, the run's bookkeeping,
//! the checkpoint) goes through [`Retry::run`].

use crate::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Attempts for the checkpoint write (docs/run.md, "Checkpoint last").
pub const CHECKPOINT_ATTEMPTS: u32 = 3;

/// Returns how long to wait before retry number `attempt` (1 for the first retry):
/// a random time up to 100 ms × 2^attempt, capped at 10 s.
pub fn backoff(attempt: u32) -> Duration {
    let cap_ms = (100u64 << attempt.min(10)).min(10_000);
    Duration::from_millis(cap_ms / 2 + fastrand::u64(0..=cap_ms / 2))
}

/// One attempt of an operation [`Retry::run_with`] retries.
pub type Attempt<'s, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 's>>;

/// When an operation is tried again: within a time budget, errors that
/// [`Error::is_retryable`] says are transient; or a number of attempts, whatever the error.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    budget: Option<Duration>,
    attempts: Option<u32>,
    any_error: bool,
}

impl Retry {
    /// Transient errors, retried for up to `budget` from the first attempt.
    pub fn within(budget: Duration) -> Self {
        Self { budget: Some(budget), attempts: None, any_error: false }
    }

    /// Every error, up to `n` attempts in all (a throttled SSM PutParameter looks like many
    /// things; the checkpoint write retries whatever failed).
    pub fn attempts(n: u32) -> Self {
        Self { budget: None, attempts: Some(n.max(1)), any_error: true }
    }

    /// The same, but only for errors [`Error::is_retryable`] says are transient.
    pub fn transient_only(self) -> Self {
        Self { any_error: false, ..self }
    }

    /// Runs `op` until it succeeds, fails in a way this policy does not retry, or the policy
    /// is spent; before each wait, `on_retry` is told the error, the attempt that failed
    /// (1-based) and the wait. The final error says how long the retries went on.
    pub async fn run<T, F: Future<Output = Result<T, Error>>>(
        self,
        mut op: impl FnMut() -> F,
        mut on_retry: impl FnMut(&Error, u32, Duration),
    ) -> Result<T, Error> {
        let (started, mut attempt) = (Instant::now(), 0);
        loop {
            attempt += 1;
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => self.after(e, attempt, started, &mut on_retry).await?,
            }
        }
    }

    /// [`Retry::run`] for an operation that borrows `state` mutably at each attempt (a
    /// writer, a connection it may replace): `op` gets it, and returns its attempt boxed.
    pub async fn run_with<S: ?Sized, T>(
        self,
        state: &mut S,
        mut op: impl for<'s> FnMut(&'s mut S) -> Attempt<'s, T>,
        mut on_retry: impl FnMut(&Error, u32, Duration),
    ) -> Result<T, Error> {
        let (started, mut attempt) = (Instant::now(), 0);
        loop {
            attempt += 1;
            match op(state).await {
                Ok(v) => return Ok(v),
                Err(e) => self.after(e, attempt, started, &mut on_retry).await?,
            }
        }
    }

    /// After a failed attempt: waits before the next one (telling `on_retry`), or gives up
    /// with the error.
    async fn after(
        &self,
        e: Error,
        attempt: u32,
        started: Instant,
        on_retry: &mut impl FnMut(&Error, u32, Duration),
    ) -> Result<(), Error> {
        match self.wait(&e, attempt, started) {
            Some(wait) => {
                on_retry(&e, attempt, wait);
                tokio::time::sleep(wait).await;
                Ok(())
            }
            None => Err(self.give_up(e, attempt, started)),
        }
    }

    /// The wait before the next attempt, or `None` to give up.
    fn wait(&self, e: &Error, attempt: u32, started: Instant) -> Option<Duration> {
        if !self.any_error && !e.is_retryable() {
            return None;
        }
        if self.attempts.is_some_and(|n| attempt >= n) {
            return None;
        }
        match self.budget {
            Some(budget) => {
                let left = budget.checked_sub(started.elapsed()).filter(|l| !l.is_zero())?;
                Some(backoff(attempt).min(left))
            }
            None => Some(backoff(attempt)),
        }
    }

    fn give_up(&self, e: Error, attempt: u32, started: Instant) -> Error {
        match (self.budget, self.attempts) {
            (Some(budget), _) if e.is_retryable() => e.context(format!(
                "gave up after {attempt} attempts over {:.0} s (--retry-budget {}s)",
                started.elapsed().as_secs_f64(),
                budget.as_secs()
            )),
            _ => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    #[tokio::test]
    async fn a_budget_retries_transient_errors_and_never_fatal_ones() {
        let mut calls = 0;
        let out = Retry::within(Duration::from_secs(60))
            .run_with(
                &mut calls,
                |calls| {
                    Box::pin(async move {
                        *calls += 1;
                        if *calls < 3 {
                            Err(Error::new(Kind::Connection, "x"))
                        } else {
                            Ok(*calls)
                        }
                    })
                },
                |_, _, _| {},
            )
            .await;
        assert_eq!(out.unwrap(), 3);
        let calls = std::cell::Cell::new(0);
        let out: Result<(), _> = Retry::within(Duration::from_secs(60))
            .run(
                || {
                    calls.set(calls.get() + 1);
                    async { Err(Error::new(Kind::Database, "constraint")) }
                },
                |_, _, _| {},
            )
            .await;
        assert_eq!((calls.get(), out.unwrap_err().message()), (1, "constraint"));
        let lost =
            Retry::within(Duration::from_secs(60)).wait(&Error::new(Kind::LockLost, "x"), 1, Instant::now());
        assert!(lost.is_none(), "a lost lock is never retried");
    }

    #[tokio::test]
    async fn a_spent_budget_gives_up_and_says_how_long_it_tried() {
        let out: Result<(), _> = Retry::within(Duration::ZERO)
            .run(|| async { Err(Error::new(Kind::Connection, "refused")) }, |_, _, _| {})
            .await;
        assert!(out.unwrap_err().message().contains("gave up after 1 attempts"));
    }

    #[tokio::test]
    async fn attempts_retry_every_error_that_many_times() {
        let mut seen = Vec::new();
        let calls = std::cell::Cell::new(0);
        let out: Result<(), _> = Retry::attempts(3)
            .run(
                || {
                    calls.set(calls.get() + 1);
                    async { Err(Error::new(Kind::Database, "throttled?")) }
                },
                |_, attempt, _| seen.push(attempt),
            )
            .await;
        assert_eq!((calls.get(), seen), (3, vec![1, 2]));
        assert_eq!(out.unwrap_err().message(), "throttled?");
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(1) <= Duration::from_millis(200));
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(30) <= Duration::from_secs(10));
    }
}
