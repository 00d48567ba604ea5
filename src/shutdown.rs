//! Graceful stop: a [`Stop`] handed to everything a run does. SIGTERM or SIGINT (or a
//! deadline) cancels it; the run stops fetching, the page being written commits or rolls
//! back, the checkpoint does not move, the ledger says `cancelled`, and the process exits
//! 143 (SIGTERM) or 130 (SIGINT) within `--shutdown-timeout`. A second signal exits at once.
//!
//! Nothing here is process-wide: a `Stop` is passed in, so two runs can share a process
//! (the Lambda entry gives each invocation a [`Stop::child`] with a deadline of its own) and
//! a test can stop a run without a signal.

use crate::error::{Error, Kind};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A stop request shared by one run's stages (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    /// The exit status of the signal received (0: none), shared with every child.
    signal: Arc<AtomicU8>,
    /// Set when this stop (not a parent) was cancelled by its deadline.
    deadline: Arc<AtomicBool>,
}

impl Stop {
    /// A stop that nothing has requested yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stop that is requested with this one, or on its own ([`Stop::stop_after`],
    /// [`Stop::request`]) without touching this one.
    pub fn child(&self) -> Self {
        Self { token: self.token.child_token(), signal: self.signal.clone(), deadline: Arc::default() }
    }

    /// Tells whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when a stop is requested.
    pub async fn requested_wait(&self) {
        self.token.cancelled().await
    }

    /// Requests the stop (a test, or a caller that gives up).
    pub fn request(&self) {
        self.token.cancel();
    }

    /// The exit status for the signal received: 143 (SIGTERM) or 130 (SIGINT).
    pub fn exit_code(&self) -> Option<u8> {
        match self.signal.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// The error a run ends with when it was stopped.
    pub fn error(&self) -> Error {
        let why = if self.exit_code().is_none() && self.deadline.load(Ordering::Relaxed) {
            "stopped before its deadline"
        } else {
            "stopped by a signal"
        };
        Error::new(
            Kind::Cancelled,
            format!("{why}: the page being written was let finish, the pages not yet written were dropped, and the checkpoint did not move; the next run picks up from the checkpoint"),
        )
    }

    /// Requests this stop (as a signal would, without exiting) after `after`, unless the
    /// returned guard is dropped first.
    pub fn stop_after(&self, after: Duration) -> tokio_util::task::AbortOnDropHandle<()> {
        let stop = self.clone();
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            stop.deadline.store(true, Ordering::Relaxed);
            tracing::warn!("the deadline is near: finishing the page being written, then stopping");
            stop.token.cancel();
        }))
    }

    /// Listens for SIGTERM and SIGINT (on the runtime): the first requests this stop and
    /// gives the run `timeout` to wind down before the process exits; the second exits at
    /// once.
    pub fn on_signals(&self, timeout: Duration) {
        #[cfg(unix)]
        {
            let stop = self.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) =
                    (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
                else {
                    tracing::warn!(
                        "cannot listen for SIGTERM/SIGINT: a signal will stop the process at once"
                    );
                    return;
                };
                let code = tokio::select! {
                    _ = term.recv() => 143,
                    _ = int.recv() => 130,
                };
                stop.signal.store(code, Ordering::Relaxed);
                tracing::warn!(
                    timeout_s = timeout.as_secs(),
                    "stop requested: finishing the page being written, then stopping (a second signal stops at once)"
                );
                stop.token.cancel();
                tokio::select! {
                    _ = term.recv() => eprintln!("scansync: second signal: stopping at once"),
                    _ = int.recv() => eprintln!("scansync: second signal: stopping at once"),
                    _ = tokio::time::sleep(timeout) => eprintln!(
                        "scansync: still running {}s after the stop request (--shutdown-timeout): stopping now; the run stays `running` in the ledger and is marked abandoned by the next one",
                        timeout.as_secs()
                    ),
                }
                std::process::exit(i32::from(code));
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_stops_with_its_parent_but_a_deadline_stops_only_the_child() {
        let parent = Stop::new();
        let child = parent.child();
        let _guard = child.stop_after(Duration::from_millis(1));
        child.requested_wait().await;
        assert!(!parent.requested(), "the child's deadline left the parent running");
        assert!(child.error().message().starts_with("stopped before its deadline"));
        let second = parent.child();
        parent.request();
        assert!(second.requested());
        assert_eq!(parent.exit_code(), None, "no signal came");
    }
}
