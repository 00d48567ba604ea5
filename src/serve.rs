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
//! - A failed run is retried at the next tick, and so is a run that finds the lock held (by
//!   another process): it does not wait for the lock.
//! - A configuration mistake is refused at start (exit 2), and a run that fails because of
//!   one (a table that does not exist, say) ends serve with exit 2 instead of failing the
//!   same way at every tick.
//! - SIGTERM/SIGINT: the run in progress stops gracefully, and serve exits 143/130.

use crate::config::{SyncConfig, Target};
use crate::error::{Kind, Result, EXIT_OK};
use crate::shutdown::Stop;
use crate::{lifecycle, metrics, summary};
use std::time::{Duration, Instant};

/// The default of `--every`: an hour.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(3600);

/// When runs start: an interval, or the times of a cron expression (UTC).
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every so often, from the start.
    Every(Duration),
    /// At the times of a cron expression, in UTC.
    Cron(Box<croner::Cron>),
}

/// What `serve` runs, and when.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// When.
    pub schedule: Schedule,
    /// A random delay added to each start, up to this.
    pub jitter: Duration,
    /// The sync.
    pub sync: SyncConfig,
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

/// Runs the sync on its schedule until `stop` is requested; returns the exit status.
pub async fn serve(target: &Target, cfg: &ServeConfig, stop: &Stop) -> Result<u8> {
    let metrics = metrics::start(&cfg.sync.metrics, target, &cfg.sync.checkpoint)?;
    let mut next = cfg.schedule.first();
    loop {
        let jitter = Duration::from_millis(fastrand::u64(0..=cfg.jitter.as_millis() as u64));
        tokio::select! {
            _ = tokio::time::sleep_until((next + jitter).into()) => {}
            _ = stop.requested_wait() => break,
        }
        let started = Instant::now();
        let mut again_now = false;
        match lifecycle::sync(target, &cfg.sync, stop, metrics.as_deref()).await {
            Ok(outcome) => {
                summary::print("sync", &outcome);
                again_now =
                    outcome.result.is_ok() && outcome.plan.as_ref().is_some_and(|p| p.until.is_some());
            }
            Err(e) if e.kind() == Kind::Config => {
                return Err(e.context(
                    "the sync cannot run as configured; serve stops (correct the setting and start it again)",
                ))
            }
            Err(e) => tracing::error!(error = %e, "the run could not start; trying again at the next tick"),
        }
        if stop.requested() {
            break;
        }
        // A bounded run that did not reach now: the next window at once.
        next = if again_now { Instant::now() } else { cfg.schedule.next(started) };
    }
    Ok(stop.exit_code().unwrap_or(EXIT_OK))
}
