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
//! - With `--verify-every`, a verify of the last `--verify-days` days runs on its own
//!   schedule beside the syncs (its own lock; recorded in the ledger, so `health` and
//!   `/metrics` see what it found), `--verify-every` after the last recorded one.
//! - SIGTERM/SIGINT: the run in progress stops gracefully, and serve exits 143/130.

use crate::config::{SyncConfig, Target, VerifyConfig};
use crate::error::{Kind, Result, EXIT_OK};
use crate::metrics::Metrics;
use crate::shutdown::Stop;
use crate::{db, lifecycle, metrics, summary, verify};
use std::sync::Arc;
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
    /// The scheduled verify, if any.
    pub verify: Option<ScheduledVerify>,
}

/// A verify on a schedule of its own (`--verify-every`).
#[derive(Debug, Clone)]
pub struct ScheduledVerify {
    /// How often: the next one starts this long after the last recorded one finished.
    pub every: Duration,
    /// What it compares (the last N days, recorded; repaired with `--verify-repair`).
    pub verify: VerifyConfig,
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
    // The verifies start once the first sync has run: a store not synced yet is not wrong.
    let (synced_tx, synced) = tokio::sync::watch::channel(false);
    let verifier = cfg.verify.clone().map(|v| {
        let (target, stop, metrics, mut synced) = (target.clone(), stop.clone(), metrics.clone(), synced);
        tokio::spawn(async move {
            if synced.wait_for(|done| *done).await.is_ok() {
                verify_loop(&target, &v, &stop, metrics).await;
            }
        })
    });
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
        if !again_now {
            let _ = synced_tx.send(true);
        }
        if stop.requested() {
            break;
        }
        // A bounded run that did not reach now: the next window at once.
        next = if again_now { Instant::now() } else { cfg.schedule.next(started) };
    }
    drop(synced_tx);
    if let Some(v) = verifier {
        let _ = v.await;
    }
    Ok(stop.exit_code().unwrap_or(EXIT_OK))
}

/// Runs the verify every `v.every` (counted from the last recorded one, so a restart does
/// not reset the schedule) until `stop`.
async fn verify_loop(target: &Target, v: &ScheduledVerify, stop: &Stop, metrics: Option<Arc<Metrics>>) {
    loop {
        let wait = match since_last_verify(target).await {
            Some(age) => v.every.saturating_sub(age),
            None => Duration::ZERO,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.requested_wait() => return,
        }
        match verify::verify(target, &v.verify, stop).await {
            Ok(report) => {
                let n = report.unrepaired();
                if n > 0 {
                    tracing::error!(divergent = n, report = %report.to_json(), "verify: the store differs from the source");
                } else {
                    tracing::info!(keys = report.found.all().keys(), "verify: 0 divergent");
                }
            }
            Err(e) if e.kind() == Kind::Cancelled => return,
            Err(e) => {
                tracing::error!(error = %e, "the scheduled verify failed; trying again after --verify-every")
            }
        }
        if let Some(m) = &metrics {
            m.changed();
        }
        if stop.requested() {
            return;
        }
        // A failed verify records no success, so the ledger says one is due at once: try
        // again a minute later, not in a loop.
        tokio::select! {
            _ = tokio::time::sleep(v.every.min(Duration::from_secs(60))) => {}
            _ = stop.requested_wait() => return,
        }
    }
}

/// How long ago the last recorded verify finished, from the ledger (`None`: never, or the
/// ledger cannot be read yet).
async fn since_last_verify(target: &Target) -> Option<Duration> {
    let client = db::connect(&target.url).await.ok()?;
    let q = crate::schema::quoted_schema(&target.schema).ok()?;
    let sql = format!(
        "select extract(epoch from now() - max(finished_at))::float8 from {q}.sync_runs where kind = 'verify' and status = 'succeeded'"
    );
    let secs: Option<f64> = client.query_one(&sql, &[]).await.ok()?.get(0);
    secs.map(|s| Duration::from_secs_f64(s.max(0.0)))
}
