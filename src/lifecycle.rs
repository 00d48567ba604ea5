//! One run's life, the same for every kind (sync, demo, backfill worker): the lock where
//! the kind takes one, the store prepared (migrations, a killed bulk load repaired, stale
//! ledger rows marked abandoned), the ledger row opened, the run, and the row completed with
//! the outcome. Every step that talks to PostgreSQL is retried within the run's budget.

use crate::checkpoint::any::AnyCheckpoint;
use crate::config::{CheckpointConfig, SyncConfig, Target, Tuning, WindowConfig};
use crate::error::{Kind, Result};
use crate::ledger::{self, RunKind};
use crate::metrics::Metrics;
use crate::pipeline::Hooks;
use crate::retry::Retry;
use crate::run::{self, Outcome};
use crate::schema::quoted_schema;
use crate::shutdown::Stop;
use crate::source::any::AnySource;
use crate::stats::RunStats;
use crate::time::{Day, Timestamp};
use crate::write::postgres::PgSink;
use crate::{db, lock, schema};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// What a run reads.
pub enum Scope {
    /// Incremental: the window from the checkpoint.
    Incremental {
        /// Window settings.
        window: WindowConfig,
        /// Where the checkpoint lives.
        checkpoint: CheckpointConfig,
    },
    /// Whole day partitions (`None`: everything the source has).
    Days(Option<(Day, Day)>),
}

/// Everything one locked run needs.
pub struct RunRequest<'a> {
    /// The store.
    pub target: &'a Target,
    /// The ledger kind.
    pub kind: RunKind,
    /// What is read.
    pub scope: Scope,
    /// The source.
    pub source: AnySource,
    /// Parallelism.
    pub tuning: Tuning,
    /// Stop, progress, metrics (the lock is the run's own).
    pub hooks: Hooks,
}

/// Runs one incremental sync as configured, counted in `metrics` when given: each page's
/// write time, and the run by its outcome.
pub async fn sync(
    target: &Target,
    cfg: &SyncConfig,
    stop: &Stop,
    metrics: Option<&Metrics>,
) -> Result<Outcome> {
    let run = async {
        let source = AnySource::open(&cfg.source, &cfg.tuning).await?;
        let hooks = Hooks {
            stop: stop.clone(),
            page_seconds: metrics.map(Metrics::page_seconds),
            ..Hooks::default()
        };
        let scope = Scope::Incremental { window: cfg.window, checkpoint: cfg.checkpoint.clone() };
        run(RunRequest { target, kind: RunKind::Sync, scope, source, tuning: cfg.tuning, hooks }).await
    };
    let result = run.await;
    if let Some(m) = metrics {
        match &result {
            Ok(outcome) => m.observe("sync", Some(outcome), None),
            Err(e) => m.observe("sync", None, Some(e.kind())),
        }
    }
    result
}

/// Runs one sync/demo run under the run lock, recorded in the ledger. Returns the outcome;
/// `Err` only for failures before the run could start (lock, connection, schema).
pub async fn run(req: RunRequest<'_>) -> Result<Outcome> {
    let started = Timestamp::now();
    let target = req.target;
    // Lock first: a second run must do no work at all, not even a migration.
    let lock = lock::acquire(&target.url, &target.schema).await?;
    let budget = req.tuning.retry_budget;
    let admin =
        prepare(target, budget, Prepare { holds_run_lock: true, repair_bulk: true, follower_of: None })
            .await?;
    let run_id = open(&admin, target, req.kind, started, budget, None).await?;
    let sink = Arc::new(PgSink::new(&target.url, &target.schema, Some(run_id))?);
    let mut hooks = req.hooks;
    hooks.lock = Some(lock.watch());
    let source = Arc::new(req.source);
    let mut outcome = match &req.scope {
        Scope::Incremental { window, checkpoint } => {
            match AnyCheckpoint::open(checkpoint, admin.clone(), &target.schema).await {
                Ok(store) => run::incremental(source, sink, &store, started, window, req.tuning, hooks).await,
                Err(e) => {
                    Outcome { plan: None, stats: RunStats::default(), result: Err(e), notes: Vec::new() }
                }
            }
        }
        Scope::Days(days) => run::full(source, sink, *days, req.tuning, hooks).await,
    };
    if req.kind == RunKind::Sync && follower_alive(&admin, &target.schema).await {
        outcome.stats.missed_by_follower = Some(outcome.stats.written.content);
    }
    record(target, admin, run_id, &mut outcome, budget).await?;
    Ok(outcome)
}

/// Whether a follower of the schema beat in the last minute (so what a sync still changes
/// is what that follower had not applied). A failed read says no: it only labels a count.
async fn follower_alive(admin: &Client, schema: &str) -> bool {
    let Ok(q) = quoted_schema(schema) else { return false };
    let sql = format!(
        "select exists (select 1 from {q}.streams where heartbeat_at > now() - make_interval(secs => $1))"
    );
    let gone = crate::health::FOLLOWER_GONE.as_secs_f64();
    admin.query_one(&sql, &[&gone]).await.map(|r| r.get::<_, bool>(0)).unwrap_or(false)
}

/// What [`prepare`] does besides the migrations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prepare<'a> {
    /// The caller holds the run lock: every `running` sync or demo row is a dead process's.
    /// (Without it, only backfill rows whose worker is gone are marked abandoned.)
    pub holds_run_lock: bool,
    /// Put back what a bulk load killed midway left off (a bulk worker decides itself).
    pub repair_bulk: bool,
    /// The caller is the follower of this table (it holds that lock): the table's `running`
    /// follow and heal rows are a dead process's.
    pub follower_of: Option<&'a str>,
}

/// Prepares the store for a run, on a connection of its own: the migrations, the repair of
/// a killed bulk load's foreign keys, and stale ledger rows marked abandoned. The server
/// answered once (the lock, or the first connection): from here a lost connection (a reset,
/// a restart) is retried within the budget, as a page's would be. Every step may run again
/// (migrations and the repair are idempotent).
pub async fn prepare(target: &Target, budget: Duration, what: Prepare<'_>) -> Result<Arc<Client>> {
    let step = || async move {
        let mut admin = db::connect(&target.url).await?;
        schema::migrate(&mut admin, &target.schema).await?;
        // A key that does not validate is a defect to report, not a reason to stop syncing.
        if what.repair_bulk {
            if let Err(e) = crate::bulk::repair(&admin, &target.schema).await {
                tracing::error!(error = %e, "the foreign keys could not be restored");
            }
        }
        let abandoned =
            ledger::abandon_stale(&admin, &target.schema, what.holds_run_lock, what.follower_of).await?;
        if abandoned > 0 {
            tracing::warn!(
                runs = abandoned,
                "marked runs whose process ended without finishing as abandoned"
            );
        }
        Ok(Arc::new(admin))
    };
    Retry::within(budget)
        .run(step, |e, attempt, wait| {
            tracing::warn!(error = %e, attempt, wait_ms = wait.as_millis() as u64, "preparing the run failed, retrying");
        })
        .await
}

/// Opens the run's ledger row (`running`), retried within the budget; returns its id. A
/// row left `running` by an attempt that lost its connection is marked abandoned by the
/// next run.
pub async fn open(
    admin: &Arc<Client>,
    target: &Target,
    kind: RunKind,
    started: Timestamp,
    budget: Duration,
    table: Option<&str>,
) -> Result<i64> {
    let mut state = (admin.clone(), target);
    Retry::within(budget)
        .run_with(
            &mut state,
            |(admin, target)| {
                Box::pin(async move {
                    if admin.is_closed() {
                        *admin = Arc::new(db::connect(&target.url).await?);
                    }
                    ledger::start(admin, &target.schema, kind, started, table).await
                })
            },
            |e, attempt, _| tracing::warn!(error = %e, attempt, "opening the run's ledger row failed, retrying"),
        )
        .await
}

/// Completes a run's ledger row with its outcome (and its drift), on a fresh connection if
/// the run's died with the failure it reports, retried for at least [`LEDGER_BUDGET`]; then
/// logs the run's notes.
pub async fn record(
    target: &Target,
    admin: Arc<Client>,
    run_id: i64,
    outcome: &mut Outcome,
    retry_budget: Duration,
) -> Result<()> {
    let error = outcome.result.as_ref().err().map(|e| e.to_string());
    let cancelled = outcome.result.as_ref().is_err_and(|e| e.kind() == Kind::Cancelled);
    // Drift is logged once per attribute and type per run, never per record.
    for ((attribute, observed_type), records) in &outcome.stats.drift {
        tracing::warn!(%attribute, observed_type, records, "schema drift: attribute kept in content.extra or coerced");
    }
    // The bookkeeping waits longer than a page: recording the cause is worth a minute.
    let mut state = (admin, &mut *outcome, target, error.as_deref());
    let recorded = Retry::within(retry_budget.max(LEDGER_BUDGET))
        .run_with(
            &mut state,
            |(admin, outcome, target, error)| {
                Box::pin(async move {
                    // The run's connection may have died with the failure it reports.
                    if admin.is_closed() {
                        *admin = Arc::new(db::connect(&target.url).await?);
                    }
                    let schema = target.schema.as_str();
                    if outcome.notes.is_empty() {
                        outcome.notes = stamp_notes(admin, schema, outcome).await.unwrap_or_default();
                    }
                    ledger::record_drift(admin, schema, &outcome.stats).await?;
                    let (plan, stats) = (outcome.plan.as_ref(), &outcome.stats);
                    ledger::finish(admin, schema, run_id, plan, stats, error.as_deref(), cancelled).await
                })
            },
            |_, _, _| {},
        )
        .await;
    if let Err(e) = recorded {
        return Err(e.context(ledger_unwritten(outcome)));
    }
    for note in &outcome.notes {
        tracing::warn!("{note}");
    }
    Ok(())
}

/// The least time the run's ledger row is retried for, whatever --retry-budget says.
const LEDGER_BUDGET: Duration = Duration::from_secs(60);

fn ledger_unwritten(o: &Outcome) -> String {
    let status = match &o.result {
        Ok(()) => "succeeded".to_string(),
        Err(e) => format!("failed ({e})"),
    };
    format!(
        "the run {status} ({} pages committed), but its sync_runs row could not be completed",
        o.stats.pages
    )
}

/// How many recent runs the offset-margin advice looks back on.
const MARGIN_EVIDENCE_RUNS: i64 = 24;

/// The operator's notes on how `updatedAt` is stamped: offsets beyond the margin (records
/// the index may miss), epoch stamps (never found by the index), and a margin wider than
/// any offset seen lately (what it costs, and what to set instead).
async fn stamp_notes(admin: &tokio_postgres::Client, schema: &str, o: &Outcome) -> Result<Vec<String>> {
    let s = &o.stats;
    let mut notes = Vec::new();
    let epoch = s.epoch_stamps();
    if epoch > 0 {
        notes.push(format!(
            "{epoch} records have an updatedAt written as an epoch number: a range query on the index can never find such a record, so the hourly sync misses them; they were synced here only because this run reads whole partitions or files. Fix the writer (ISO 8601, UTC), or re-sync them with backfill"
        ));
    }
    let Some(plan) = &o.plan else { return Ok(notes) };
    let margin_minutes = (plan.bounds.margin / 60_000_000) as u32;
    let (beyond, west) = s.beyond_margin(margin_minutes);
    if beyond > 0 {
        notes.push(format!(
            "WARNING: {beyond} records are stamped up to {} west of UTC, more than --offset-margin {}: records written that way can be missed by the index query. Raise --offset-margin to at least {}",
            hhmm(west),
            hhmm(margin_minutes),
            hhmm(west)
        ));
    }
    if margin_minutes > 0 && o.result.is_ok() {
        let (recent, runs) = ledger::recent_west_offset(admin, schema, MARGIN_EVIDENCE_RUNS).await?;
        let seen = recent.max(s.stamps.keys().map(|f| f.west_minutes()).max().unwrap_or(0));
        if seen < margin_minutes {
            let cost = match s.read_amplification() {
                Some(a) => format!(
                    "this run read {} index items for {} changed records ({a:.1}x)",
                    s.index_items.unwrap_or(0),
                    s.in_window()
                ),
                None => "it re-reads that much of the index on every run".into(),
            };
            let setting = if seen == 0 {
                "--offset-margin 0 (every writer stamps UTC)".to_string()
            } else {
                format!("--offset-margin {}", hhmm(seen))
            };
            notes.push(format!(
                "the offset margin ({}) is wider than any offset west of UTC seen in this run and the last {runs} successful ones (largest: {}): {cost}; {setting} would read only what changed",
                hhmm(margin_minutes),
                if seen == 0 { "none".to_string() } else { format!("-{}", hhmm(seen)) }
            ));
        }
    }
    Ok(notes)
}

fn hhmm(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (h, 0) => format!("{h}h"),
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every margin the advice can print is a value `--offset-margin` accepts, meaning the
    /// same number of minutes.
    #[test]
    fn every_margin_the_advice_prints_parses_back_to_itself() {
        for minutes in (0..=24 * 60).step_by(15) {
            let shown = hhmm(minutes);
            let parsed = crate::cli::values::offset_margin(&shown).unwrap_or_else(|e| panic!("{shown}: {e}"));
            assert_eq!(parsed.0.as_secs(), u64::from(minutes) * 60, "{shown}");
        }
    }
}
