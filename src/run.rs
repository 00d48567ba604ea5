//! One run, step by step (docs/run.md): checkpoint → window → pipeline → checkpoint last.
//!
//! Generic over the source, sink and checkpoint store so the logic is tested with the
//! in-memory twins; the lock and the run ledger wrap it in [`crate::lifecycle`].

use crate::checkpoint::CheckpointStore;
use crate::config::{TtlRemovals, Tuning, WindowConfig};
use crate::error::{Error, Result};
use crate::parse::Filter;
use crate::pipeline::{execute, Hooks, JobUnits, PipelineConfig};
use crate::retry::{Retry, CHECKPOINT_ATTEMPTS};
use crate::source::Source;
use crate::stats::RunStats;
use crate::time::{Day, Timestamp};
use crate::window::{plan, Plan};
use crate::write::Sink;
use std::sync::Arc;
use tracing::{info, warn};

/// The outcome of a run: what it planned, what committed, and whether it succeeded.
#[derive(Debug)]
pub struct Outcome {
    /// The window (None for backfills and full reads).
    pub plan: Option<Plan>,
    /// Counts of what committed.
    pub stats: RunStats,
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
    hooks: Hooks,
) -> Outcome {
    let checkpoint = match read_checkpoint(store).await {
        Ok(c) => c,
        Err(e) => {
            return Outcome { plan: None, stats: RunStats::default(), result: Err(e), notes: Vec::new() }
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
                stats: RunStats::default(),
                result: Err(e),
                notes: Vec::new(),
            }
        }
    };
    let ttl_removals = tuning.ttl_removals == TtlRemovals::Tombstone;
    let filter = Filter { after: Some(plan.after), until: plan.until, days: None, ttl_removals };
    let lock = hooks.lock.clone();
    let cfg = PipelineConfig { tuning, units, job: None, bounds: Some(plan.bounds.clone()), filter, hooks };
    let next_checkpoint = plan.until.unwrap_or(started);
    #[cfg(feature = "fault-injection")]
    if fault::is("checkpoint-first") {
        // Deliberately wrong (the checkpoint before the pages): lets the fault suite prove
        // that it detects an engine that loses records. Built only with the feature.
        warn!("{}=checkpoint-first: writing the checkpoint before the pages", fault::VAR);
        if let Err(e) = write_checkpoint(store, next_checkpoint).await {
            return Outcome {
                plan: Some(plan),
                stats: RunStats::default(),
                result: Err(e),
                notes: Vec::new(),
            };
        }
    }
    let (stats, result) = execute(source, sink.clone(), cfg).await;
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
    #[cfg(feature = "fault-injection")]
    if result.is_ok() && fault::is("exit-after-checkpoint") {
        // The worst moment to die (the checkpoint moved, nothing else recorded yet): lets
        // the tests crash PostgreSQL right here. Built only with the feature.
        std::process::exit(99);
    }
    let mut notes = Vec::new();
    if let (Some(until), true) = (plan.until, result.is_ok()) {
        let behind_h = (started.0 - until.0) as f64 / 3_600_000_000.0;
        notes.push(format!(
            "--max-window bounded this run: synced up to {until} and moved the checkpoint there; {behind_h:.1} h behind: run again to continue (serve-style loops and schedulers do so at once)"
        ));
    }
    Outcome { plan: Some(plan), stats, result, notes }
}

/// Runs the pipeline over an explicit range (`plan`, from [`crate::window::range`]): the
/// records with `updatedAt` in `(plan.after, plan.until]`, read through the index as an
/// incremental run reads, without touching any checkpoint.
pub async fn range<S: Source, K: Sink>(
    source: Arc<S>,
    sink: Arc<K>,
    plan: Plan,
    tuning: Tuning,
    hooks: Hooks,
) -> Outcome {
    let units = match source.units(&plan.days, Some(&plan.bounds)).await {
        Ok(u) => u,
        Err(e) => {
            return Outcome {
                plan: Some(plan),
                stats: RunStats::default(),
                result: Err(e),
                notes: Vec::new(),
            }
        }
    };
    let ttl_removals = tuning.ttl_removals == TtlRemovals::Tombstone;
    let filter = Filter { after: Some(plan.after), until: plan.until, days: None, ttl_removals };
    let cfg = PipelineConfig { tuning, units, job: None, bounds: Some(plan.bounds.clone()), filter, hooks };
    let (stats, result) = execute(source, sink.clone(), cfg).await;
    let result = match result {
        Ok(()) => sink.make_durable().await,
        Err(e) => Err(e),
    };
    Outcome { plan: Some(plan), stats, result, notes: Vec::new() }
}

/// Runs the pipeline over whole day partitions (`days`: inclusive range; `None`: every
/// record the source has), without the `updatedAt` filter and without touching any
/// checkpoint.
pub async fn full<S: Source, K: Sink>(
    source: Arc<S>,
    sink: Arc<K>,
    days: Option<(Day, Day)>,
    tuning: Tuning,
    hooks: Hooks,
) -> Outcome {
    let day_list: Vec<Day> = match days {
        Some((from, to)) => (from.0..=to.0).map(Day).collect(),
        None => Vec::new(),
    };
    let units = match source.units(&day_list, None).await {
        Ok(u) => u,
        Err(e) => {
            return Outcome { plan: None, stats: RunStats::default(), result: Err(e), notes: Vec::new() }
        }
    };
    let cfg = PipelineConfig {
        tuning,
        units,
        job: None,
        bounds: None,
        filter: Filter {
            days,
            ttl_removals: tuning.ttl_removals == TtlRemovals::Tombstone,
            ..Filter::default()
        },
        hooks,
    };
    let (stats, result) = execute(source, sink, cfg).await;
    Outcome { plan: None, stats, result, notes: Vec::new() }
}

/// Runs the pipeline as one worker of a backfill job: units are claimed from the job until
/// none is left (each read whole, filtered to `days`), without touching any checkpoint.
/// A unit that cannot be read fails alone (recorded on it); `result` is an error only for
/// what stops the worker (the database, a lost worker lock).
pub async fn job<S: Source, K: Sink>(
    source: Arc<S>,
    sink: Arc<K>,
    units: Arc<dyn JobUnits>,
    days: Option<(Day, Day)>,
    tuning: Tuning,
    hooks: Hooks,
) -> Outcome {
    let filter =
        Filter { days, ttl_removals: tuning.ttl_removals == TtlRemovals::Tombstone, ..Filter::default() };
    let cfg = PipelineConfig { tuning, units: Vec::new(), job: Some(units), bounds: None, filter, hooks };
    let (stats, result) = execute(source, sink, cfg).await;
    Outcome { plan: None, stats, result, notes: Vec::new() }
}

/// Deliberately broken behaviour, for the fault suite and the durability test only: it is
/// compiled in only with the `fault-injection` feature (never in a release build).
#[cfg(feature = "fault-injection")]
pub mod fault {
    /// The environment variable that names the fault: `checkpoint-first` (the checkpoint
    /// written before the pages: the fault suite must then report mismatches),
    /// `exit-after-checkpoint` (the process dies right after the checkpoint moved) or
    /// `exit-before-fold` (a staged backfill worker dies with its units staged, unfolded) or
    /// `exit-after-fold-edges` (it dies in its fold, the edges committed and the content not).
    pub const VAR: &str = "SCANSYNC_TEST_BREAK";

    /// Tells whether the fault `name` is asked for.
    pub fn is(name: &str) -> bool {
        std::env::var(VAR).is_ok_and(|v| v == name)
    }
}

async fn read_checkpoint<C: CheckpointStore>(store: &C) -> Result<Option<Timestamp>> {
    // Only transient failures are worth another attempt of a read.
    let read = Retry::attempts(CHECKPOINT_ATTEMPTS).transient_only().run(|| store.read(), |_, _, _| {});
    read.await.map_err(|e| e.context("reading the checkpoint"))
}

/// Writes the checkpoint with exponential backoff, [`CHECKPOINT_ATTEMPTS`] attempts.
/// Every error is retried here (a throttled PutParameter looks like many things); a final
/// failure leaves the data as it is, and the next run re-processes the window.
pub async fn write_checkpoint<C: CheckpointStore>(store: &C, at: Timestamp) -> Result<()> {
    let mut attempts = 1;
    let written = Retry::attempts(CHECKPOINT_ATTEMPTS)
        .run(
            || store.write(at),
            |e, attempt, wait| {
                attempts = attempt + 1;
                warn!(attempt, error = %e, wait_ms = wait.as_millis() as u64, "checkpoint write failed, retrying");
            },
        )
        .await;
    match written {
        Ok(()) => {
            info!(checkpoint = %at, "checkpoint written");
            Ok(())
        }
        Err(e) => Err(Error::new(
            e.kind(),
            format!(
                "every page committed, but the checkpoint write failed {attempts} times ({}); the next run will re-process this window",
                e.message()
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
