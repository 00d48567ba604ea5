//! Graceful stop on SIGTERM or SIGINT: the run stops fetching, the page being written
//! commits or rolls back, the checkpoint does not move, the ledger says `cancelled`, and the
//! process exits 143 (SIGTERM) or 130 (SIGINT) within `--shutdown-timeout`. A second signal
//! exits at once.
//!
//! The same stop serves a deadline (the Lambda entry stops its run before the invocation's
//! time runs out): [`stop_at`] cancels the current token, and [`rearm`] gives the next run
//! of a warm process a fresh one. A signal is never re-armed.

use crate::error::{Error, Kind};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The exit status of the signal received (0: none yet).
static SIGNALLED: AtomicU8 = AtomicU8::new(0);
/// Set when the current token was cancelled by a deadline, not a signal.
static DEADLINE: AtomicU8 = AtomicU8::new(0);
static TOKEN: Mutex<Option<CancellationToken>> = Mutex::new(None);

/// The token of the current run, cancelled on the first signal (or its deadline).
pub fn token() -> CancellationToken {
    TOKEN.lock().expect("shutdown token poisoned").get_or_insert_with(CancellationToken::new).clone()
}

/// Tells whether a stop was asked for.
pub fn requested() -> bool {
    token().is_cancelled()
}

/// The exit status for the signal received: 143 (SIGTERM) or 130 (SIGINT).
pub fn exit_code() -> Option<u8> {
    match SIGNALLED.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// The error a run ends with when it was stopped.
pub fn cancelled() -> Error {
    let why = if exit_code().is_none() && DEADLINE.load(Ordering::Relaxed) == 1 {
        "stopped before its deadline"
    } else {
        "stopped by a signal"
    };
    Error::new(
        Kind::Cancelled,
        format!("{why}: the page being written was let finish, the pages not yet written were dropped, and the checkpoint did not move; the next run picks up from the checkpoint"),
    )
}

/// Stops the current run (as a signal would, without exiting) after `after`, unless the
/// returned guard is dropped first.
pub fn stop_at(after: Duration) -> tokio_util::task::AbortOnDropHandle<()> {
    let token = token();
    tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        tokio::time::sleep(after).await;
        DEADLINE.store(1, Ordering::Relaxed);
        tracing::warn!("the deadline is near: finishing the page being written, then stopping");
        token.cancel();
    }))
}

/// Gives the next run a fresh token after a deadline stop; a signal stays in force.
pub fn rearm() {
    if exit_code().is_some() {
        return;
    }
    DEADLINE.store(0, Ordering::Relaxed);
    *TOKEN.lock().expect("shutdown token poisoned") = Some(CancellationToken::new());
}

/// Listens for SIGTERM and SIGINT (on the runtime): the first cancels [`token`] and gives
/// the run `timeout` to wind down before the process exits; the second exits at once.
pub fn install(timeout: Duration) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            tracing::warn!("cannot listen for SIGTERM/SIGINT: a signal will stop the process at once");
            return;
        };
        let code = tokio::select! {
            _ = term.recv() => 143,
            _ = int.recv() => 130,
        };
        SIGNALLED.store(code, Ordering::Relaxed);
        tracing::warn!(
            timeout_s = timeout.as_secs(),
            "stop requested: finishing the page being written, then stopping (a second signal stops at once)"
        );
        token().cancel();
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
