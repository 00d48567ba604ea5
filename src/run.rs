//! One run, step by step (DESIGN §1): checkpoint → window → pipeline → checkpoint last.
//!
//! Generic over the source, sink and checkpoint store so the logic is tested with the
//! in-memory twins; the lock and the run ledger wrap it in [`crate::command`].

use crate::checkpoint::CheckpointStore;
use crate::error::{Error, Result};
use crate::parse::Filter;
use crate::pipeline::{execute, PipelineConfig, Summary};
use crate::retry::{backoff, CHECKPOINT_ATTEMPTS};
use crate::source::Source;
use crate::time::{Day, Timestamp};
use crate::window::{plan, Plan, WindowConfig};
use crate::write::Sink;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tracing::{info, warn};

/// Parallelism settings of a run.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    /// Units fetched at once.
    pub fetchers: usize,
    /// Page writers.
    pub writers: usize,
    /// Counts raw records of committed pages as they commit (for a progress display).
    pub progress: Option<Arc<AtomicU64>>,
}

/// The outcome of a run: what it planned, what committed, and whether it succeeded.
#[derive(Debug)]
pub struct Outcome {
    /// The window (None for backfills and full reads).
    pub plan: Option<Plan>,
    /// Counts of what committed.
    pub summary: Summary,
    /// Ok when every page committed (and, for incremental runs, the checkpoint moved).
    pub result: Result<()>,
}

/// Runs one incremental sync that started at `started`: reads the checkpoint, plans the
/// window, runs the pipeline, and only if every page committed writes `started` as the
/// new checkpoint.
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
        Err(e) => return Outcome { plan: None, summary: Summary::default(), result: Err(e) },
    };
    let plan = plan(checkpoint, started, window);
    info!(
        checkpoint = %checkpoint.map_or("none".into(), |c| c.to_string()),
        after = %plan.after,
        first = %plan.days[0],
        last = %plan.days[plan.days.len() - 1],
        "window planned"
    );
    let units = match source.units(&plan.days).await {
        Ok(u) => u,
        Err(e) => return Outcome { plan: Some(plan), summary: Summary::default(), result: Err(e) },
    };
    let cfg = PipelineConfig {
        fetchers: tuning.fetchers,
        writers: tuning.writers,
        progress: tuning.progress,
        units,
        bounds: Some(plan.bounds.clone()),
        filter: Filter { after: Some(plan.after), days: None },
    };
    let (summary, result) = execute(source, sink, cfg).await;
    let result = match result {
        Ok(()) => write_checkpoint(store, started).await,
        Err(e) => Err(e),
    };
    Outcome { plan: Some(plan), summary, result }
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
    let units = match source.units(&day_list).await {
        Ok(u) => u,
        Err(e) => return Outcome { plan: None, summary: Summary::default(), result: Err(e) },
    };
    let cfg = PipelineConfig {
        fetchers: tuning.fetchers,
        writers: tuning.writers,
        progress: tuning.progress,
        units,
        bounds: None,
        filter: Filter { after: None, days },
    };
    let (summary, result) = execute(source, sink, cfg).await;
    Outcome { plan: None, summary, result }
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
