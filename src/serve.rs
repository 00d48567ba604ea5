//! `scansync serve`: the incremental sync on a schedule in one long-running process (a
//! Kubernetes Deployment, a systemd service), with Prometheus `/metrics` and `/healthz`.
//!
//! - Never two runs at once: runs follow one another in this process, and the run lock keeps
//!   out any other process.
//! - The schedule is an interval (`--every`) or a cron expression in UTC (`--cron`).
//! - A run that overruns its slot is followed at once by the next; missed ticks collapse into
//!   that one run, which covers the whole gap from the checkpoint.
//! - A run bounded by `--max-window` (a backlog) is followed at once by the next window,
//!   until the sync reaches now.
//! - A failed run is retried at the next tick; a run that finds the lock held waits for it.
//! - SIGTERM/SIGINT: the run in progress stops gracefully, and serve exits 143/130.

use crate::cli::ServeArgs;
use crate::command;
use crate::error::Result;
use crate::{metrics, summary};
use std::time::{Duration, Instant};

/// When runs start: an interval, or the times of a cron expression (UTC).
enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// The next start after a run that started at `started`: the next slot, or now when
    /// the run overran it (the missed slots collapse into that one run).
    fn next(&self, started: Instant) -> Instant {
        let now = Instant::now();
        match self {
            Schedule::Every(every) => (started + *every).max(now),
            Schedule::Cron(cron) => {
                let wall = chrono::Utc::now();
                let began = wall - chrono::TimeDelta::from_std(now - started).unwrap_or_default();
                match cron.find_next_occurrence(&began, false) {
                    Ok(at) => now + (at - wall).to_std().unwrap_or_default(),
                    // No time left in the calendar (an expression for a past year): wait a day
                    // and say so, rather than spin.
                    Err(e) => {
                        tracing::error!(error = %e, "the cron expression has no next time");
                        now + Duration::from_secs(86_400)
                    }
                }
            }
        }
    }

    /// The first start: now for an interval, the next matching time for a cron expression.
    fn first(&self) -> Instant {
        match self {
            Schedule::Every(_) => Instant::now(),
            Schedule::Cron(_) => self.next(Instant::now()),
        }
    }
}

/// Runs the sync on its schedule until a signal stops it; returns the exit status.
pub async fn serve(url: &str, schema: &str, args: &ServeArgs) -> Result<u8> {
    let metrics = metrics::start(&args.sync.metrics, url, schema, &args.sync.checkpoint)?;
    // A bad window setting is a configuration error: say so now, not at every tick.
    args.sync.window.config()?;
    let schedule = match &args.cron {
        Some(cron) => Schedule::Cron(cron.clone()),
        None => Schedule::Every(args.every),
    };
    let token = crate::shutdown::token();
    let mut next = schedule.first();
    loop {
        let jitter = Duration::from_millis(fastrand::u64(0..=args.jitter.as_millis() as u64));
        tokio::select! {
            _ = tokio::time::sleep_until((next + jitter).into()) => {}
            _ = token.cancelled() => break,
        }
        let started = Instant::now();
        let mut again_now = false;
        match command::sync(url, schema, &args.sync, metrics.as_deref()).await {
            Ok(outcome) => {
                summary::print("sync", &outcome);
                again_now =
                    outcome.result.is_ok() && outcome.plan.as_ref().is_some_and(|p| p.until.is_some());
            }
            Err(e) => tracing::error!(error = %e, "the run could not start; trying again at the next tick"),
        }
        if token.is_cancelled() {
            break;
        }
        // A bounded run that did not reach now: the next window at once.
        next = if again_now { Instant::now() } else { schedule.next(started) };
    }
    Ok(crate::shutdown::exit_code().unwrap_or(command::EXIT_OK))
}
