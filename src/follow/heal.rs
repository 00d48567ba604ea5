//! Healing a gap: an index-path sync of exactly its time range, with the existing engine,
//! recorded in the ledger as a run of kind `heal` (never the run lock, never the checkpoint:
//! merges are idempotent and order-independent, so it may run beside the follower and the
//! hourly sync).

use crate::config::{Target, Tuning, WindowConfig};
use crate::error::Result;
use crate::ledger::RunKind;
use crate::lifecycle::{self, Prepare};
use crate::pipeline::Hooks;
use crate::run::{self, Outcome};
use crate::shutdown::Stop;
use crate::source::dynamodb::DynamoSource;
use crate::time::Timestamp;
use crate::window;
use crate::write::postgres::PgSink;
use std::sync::Arc;

/// The time added on both sides of a gap: `ApproximateCreationDateTime` is coarse (whole
/// minutes on some servers), and a gap's ends are the times of the records around it.
pub const PAD_MICROS: i64 = 2 * 60_000_000;

/// What a heal reads.
#[derive(Debug, Clone)]
pub struct HealSpec<'a> {
    /// The table and its date-partition GSI.
    pub table: &'a str,
    /// The GSI.
    pub index: &'a str,
    /// The lookback and margins the index is read with.
    pub window: WindowConfig,
    /// Parallelism.
    pub tuning: Tuning,
}

/// Syncs the records of `(from, to]` (widened by the lookback and [`PAD_MICROS`]) through
/// the table's index; returns the run's outcome and its ledger id.
pub async fn heal(
    target: &Target,
    spec: &HealSpec<'_>,
    from: Timestamp,
    to: Timestamp,
    stop: &Stop,
) -> Result<(Outcome, i64)> {
    let started = Timestamp::now();
    let budget = spec.tuning.retry_budget;
    let admin =
        lifecycle::prepare(target, budget, Prepare { follower_of: None, ..Prepare::default() }).await?;
    let run_id = lifecycle::open(&admin, target, RunKind::Heal, started, budget, Some(spec.table)).await?;
    let lookback = spec.window.lookback.as_micros() as i64;
    let plan =
        window::range(from.add_micros(-lookback - PAD_MICROS), to.add_micros(PAD_MICROS), &spec.window);
    tracing::info!(after = %plan.after, until = ?plan.until, "healing a gap through the index");
    let mut outcome =
        match DynamoSource::from_env(spec.table, spec.index, spec.tuning.page_size, spec.tuning.slices())
            .await
        {
            Ok(source) => {
                let source = Arc::new(source.with_retry_budget(budget));
                let sink = Arc::new(PgSink::new(&target.url, &target.schema, Some(run_id))?);
                let hooks = Hooks { stop: stop.clone(), ..Hooks::default() };
                run::range(source, sink, plan, spec.tuning, hooks).await
            }
            Err(e) => {
                Outcome { plan: Some(plan), stats: Default::default(), result: Err(e), notes: Vec::new() }
            }
        };
    lifecycle::record(target, admin, run_id, &mut outcome, budget).await?;
    Ok((outcome, run_id))
}
