//! One run, step by step (docs/run.md): checkpoint → window → pipeline → checkpoint last.
//!
//! Generic over the source, sink and checkpoint store so the logic is tested with the
//! in-memory twins; the lock and the run ledger wrap it in [`crate::command`].

use crate::checkpoint::CheckpointStore;
use crate::error::{Error, Result};
use crate::lock::LockWatch;
use crate::parse::Filter;
use crate::pipeline::{execute, PipelineConfig, Summary};
use crate::retry::{backoff, CHECKPOINT_ATTEMPTS, DEFAULT_RETRY_BUDGET};
use crate::source::Source;
use crate::time::{Day, Timestamp};
use crate::window::{plan, Plan, WindowConfig};
use crate::write::Sink;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Parallelism and input-tolerance settings of a run.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Units fetched at once.
    pub fetchers: usize,
    /// Page writers.
    pub writers: usize,
    /// Counts raw records of committed pages as they commit (for a progress display).
    pub progress: Option<Arc<AtomicU64>>,
    /// A page with more unreadable lines than this percentage fails the run.
    pub max_unreadable_percent: u8,
    /// How long transient database failures are retried (per page) before the run fails.
    pub retry_budget: Duration,
    /// The run lock, checked before each page and before the checkpoint.
    pub lock: Option<LockWatch>,
    /// Observes each committed page's write time (for `/metrics`).
    pub page_seconds: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            fetchers: 4,
            writers: 2,
            progress: None,
            max_unreadable_percent: DEFAULT_MAX_UNREADABLE_PERCENT,
            retry_budget: DEFAULT_RETRY_BUDGET,
            lock: None,
            page_seconds: None,
        }
    }
}

impl Tuning {
    /// The pipeline's configuration for these settings and what the run reads.
    fn pipeline(
        self,
        units: Vec<String>,
        claims: Option<Arc<crate::backfill::Claims>>,
        bounds: Option<crate::window::KeyBounds>,
        filter: Filter,
    ) -> PipelineConfig {
        PipelineConfig {
            fetchers: self.fetchers,
            writers: self.writers,
            progress: self.progress,
            max_unreadable_percent: self.max_unreadable_percent,
            retry_budget: self.retry_budget,
            lock: self.lock,
            page_seconds: self.page_seconds,
            units,
            claims,
            bounds,
            filter,
        }
    }
}

/// The default of `--max-unreadable-percent`: a page that is mostly not records is a
/// broken file (binary, wrong format), not a dirty one.
pub const DEFAULT_MAX_UNREADABLE_PERCENT: u8 = 50;

/// The outcome of a run: what it planned, what committed, and whether it succeeded.
#[derive(Debug)]
pub struct Outcome {
    /// The window (None for backfills and full reads).
    pub plan: Option<Plan>,
    /// Counts of what committed.
    pub summary: Summary,
    /// Ok when every page committed (and, for incremental runs, the checkpoint moved).
    pub result: Result<()>,
    /// Warnings and advice for the operator (offsets beyond the margin, epoch stamps, a
    /// margin wider than the writers need), printed with the summary.
    pub notes: Vec<String>,
}

/// Runs one incremental sync that started at `started`: reads the checkpoint, plans the
/// window, runs the pipeline, and only if every page committed writes the new checkpoint:
/// `started`, or the window's upper bound when `--max-window` bounded it.
pub async fn incremental<S: Source, K: Sink, C: CheckpointStore>(
    source: Arc<S>,
    sink: Arc<K>,
    store: &C,
    started: Timestamp,
    window: &WindowConfig,
    tuning: Tuning,
) -> Outcome {
    let checkpoint = match read_checkpoint(store).await {
        Ok(c) => c,
        Err(e) => {
            return Outcome { plan: None, summary: Summary::default(), result: Err(e), notes: Vec::new() }
        }
    };
    let plan = plan(checkpoint, started, window);
    info!(
        checkpoint = %checkpoint.map_or("none".into(), |c| c.to_string()),
        after = %plan.after,
        first = %plan.days[0],
        last = %plan.days[plan.days.len() - 1],
        "window planned"
    );
    let units = match source.units(&plan.days, Some(&plan.bounds)).await {
        Ok(u) => u,
        Err(e) => {
            return Outcome {
                plan: Some(plan),
                summary: Summary::default(),
                result: Err(e),
                notes: Vec::new(),
            }
        }
    };
    let filter = Filter { after: Some(plan.after), until: plan.until, days: None };
    let lock = tuning.lock.clone();
    let cfg = tuning.pipeline(units, None, Some(plan.bounds.clone()), filter);
    let next_checkpoint = plan.until.unwrap_or(started);
    if broken_on_purpose() {
        // Deliberately wrong (the checkpoint before the pages): lets the fault suite prove
        // that it detects an engine that loses records. Never set in production.
        warn!("SCANSYNC_TEST_BREAK=checkpoint-first: writing the checkpoint before the pages");
        if let Err(e) = write_checkpoint(store, next_checkpoint).await {
            return Outcome {
                plan: Some(plan),
                summary: Summary::default(),
                result: Err(e),
                notes: Vec::new(),
            };
        }
    }
    let (summary, result) = execute(source, sink.clone(), cfg).await;
    let result = match result {
        // The pages are made durable before the checkpoint passes them (the writers commit
        // without waiting for the flush). The lock is verified last: a run that lost it (a
        // restart, a failover) may overlap another run by now, and must leave the
        // checkpoint to that one.
        Ok(()) => match sink.make_durable().await {
            Ok(()) => match &lock {
                Some(l) => match l.verify().await {
                    Ok(()) => write_checkpoint(store, next_checkpoint).await,
                    Err(e) => Err(e),
                },
                None => write_checkpoint(store, next_checkpoint).await,
            },
            Err(e) => Err(e.context("making the pages durable before the checkpoint")),
        },
        Err(e) => Err(e),
    };
    if result.is_ok() && std::env::var("SCANSYNC_TEST_BREAK").is_ok_and(|v| v == "exit-after-checkpoint") {
        // The worst moment to die (the checkpoint moved, nothing else recorded yet): lets
        // the tests crash PostgreSQL right here. Never set in production.
        std::process::exit(99);
    }
    let mut notes = Vec::new();
    if let (Some(until), true) = (plan.until, result.is_ok()) {
        let behind_h = (started.0 - until.0) as f64 / 3_600_000_000.0;
        notes.push(format!(
            "--max-window bounded this run: synced up to {until} and moved the checkpoint there; {behind_h:.1} h behind: run again to continue (serve-style loops and schedulers do so at once)"
        ));
    }
    Outcome { plan: Some(plan), summary, result, notes }
}

/// Runs the pipeline over whole day partitions (`days`: inclusive range; `None`: every
/// record the source has), without the `updatedAt` filter and without touching any
/// checkpoint.
pub async fn full<S: Source, K: Sink>(
    source: Arc<S>,
    sink: Arc<K>,
    days: Option<(Day, Day)>,
    tuning: Tuning,
) -> Outcome {
    let day_list: Vec<Day> = match days {
        Some((from, to)) => (from.0..=to.0).map(Day).collect(),
        None => Vec::new(),
    };
    let units = match source.units(&day_list, None).await {
        Ok(u) => u,
        Err(e) => {
            return Outcome { plan: None, summary: Summary::default(), result: Err(e), notes: Vec::new() }
        }
    };
    let cfg = tuning.pipeline(units, None, None, Filter { after: None, until: None, days });
    let (summary, result) = execute(source, sink, cfg).await;
    Outcome { plan: None, summary, result, notes: Vec::new() }
}

/// Runs the pipeline as one worker of a backfill job: units are claimed from the job until
/// none is left (each read whole, filtered to `days`), without touching any checkpoint.
/// A unit that cannot be read fails alone (recorded on it); `result` is an error only for
/// what stops the worker (the database, a lost worker lock).
pub async fn job<S: Source, K: Sink>(
    source: Arc<S>,
    sink: Arc<K>,
    claims: Arc<crate::backfill::Claims>,
    days: Option<(Day, Day)>,
    tuning: Tuning,
) -> Outcome {
    let cfg = tuning.pipeline(Vec::new(), Some(claims), None, Filter { after: None, until: None, days });
    let (summary, result) = execute(source, sink, cfg).await;
    Outcome { plan: None, summary, result, notes: Vec::new() }
}

/// The test-only switch `SCANSYNC_TEST_BREAK=checkpoint-first`: the fault suite runs a
/// deliberately broken engine with it and must report mismatches.
fn broken_on_purpose() -> bool {
    std::env::var("SCANSYNC_TEST_BREAK").is_ok_and(|v| v == "checkpoint-first")
}

async fn read_checkpoint<C: CheckpointStore>(store: &C) -> Result<Option<Timestamp>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.read().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < CHECKPOINT_ATTEMPTS => {
                tokio::time::sleep(backoff(attempt)).await
            }
            Err(e) => return Err(e.context("reading the checkpoint")),
        }
    }
}

/// Writes the checkpoint with exponential backoff, [`CHECKPOINT_ATTEMPTS`] attempts.
/// Every error is retried here (a throttled PutParameter looks like many things); a final
/// failure leaves the data as it is, and the next run re-processes the window.
pub async fn write_checkpoint<C: CheckpointStore>(store: &C, at: Timestamp) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.write(at).await {
            Ok(()) => {
                info!(checkpoint = %at, "checkpoint written");
                return Ok(());
            }
            Err(e) if attempt < CHECKPOINT_ATTEMPTS => {
                let wait = backoff(attempt);
                warn!(attempt, error = %e, wait_ms = wait.as_millis() as u64, "checkpoint write failed, retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "every page committed, but the checkpoint write failed {attempt} times ({}); the next run will re-process this window",
                        e.message()
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
