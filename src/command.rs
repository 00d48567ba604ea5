//! The subcommands: each wraps a run in the lock and the run ledger and reports it.

pub use crate::checkpoint::any::AnyCheckpoint;
use crate::cli::{CheckpointArgs, SyncArgs, TuningArgs};
use crate::error::Result;
use crate::ledger::{self, RunKind};
use crate::metrics::Metrics;
use crate::pipeline::Summary;
use crate::retry::RetryBudget;
use crate::run::{self, Outcome, Tuning};
pub use crate::source::any::AnySource;
use crate::source::Source;
use crate::time::{Day, Timestamp};
use crate::window::WindowConfig;
use crate::write::postgres::PgSink;
use crate::{db, lock, schema};
use std::path::PathBuf;
use std::sync::Arc;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the run failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: another run holds the lock (EX_TEMPFAIL).
pub const EXIT_LOCKED: u8 = 75;

/// What a run reads.
pub enum Scope<'a> {
    /// Incremental: the window from the checkpoint.
    Incremental {
        /// Window settings.
        window: WindowConfig,
        /// Checkpoint flags.
        checkpoint: &'a CheckpointArgs,
    },
    /// Whole day partitions (`None`: everything the source has).
    Days(Option<(Day, Day)>),
}

/// Everything one run needs.
pub struct RunRequest<'a> {
    /// The database URL.
    pub url: &'a str,
    /// The target schema.
    pub schema: &'a str,
    /// The ledger kind.
    pub kind: RunKind,
    /// What is read.
    pub scope: Scope<'a>,
    /// The source.
    pub source: AnySource,
    /// Parallelism.
    pub tuning: Tuning,
}

/// Converts tuning flags.
pub fn tuning(t: &TuningArgs) -> Tuning {
    Tuning {
        fetchers: usize::from(t.fetchers),
        writers: usize::from(t.writers),
        progress: None,
        max_unreadable_percent: t.max_unreadable_percent,
        retry_budget: t.retry_budget,
        lock: None,
        page_seconds: None,
    }
}

/// Runs one incremental sync from its flags (the window, the source, the checkpoint),
/// counted in `metrics` when given: each page's write time, and the run by its outcome.
pub async fn sync(url: &str, schema: &str, args: &SyncArgs, metrics: Option<&Metrics>) -> Result<Outcome> {
    let run = async {
        let window = args.window.config()?;
        let source = AnySource::from_args(&args.source, &args.tuning).await?;
        let mut tuning = tuning(&args.tuning);
        tuning.page_seconds = metrics.map(Metrics::page_seconds);
        let scope = Scope::Incremental { window, checkpoint: &args.checkpoint };
        run(RunRequest { url, schema, kind: RunKind::Sync, scope, source, tuning }).await
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

/// Runs one sync/backfill/demo run under the lock, recorded in the ledger. Returns the
/// outcome; `Err` only for failures before the run could start (lock, connection, schema).
pub async fn run(req: RunRequest<'_>) -> Result<Outcome> {
    let started = Timestamp::now();
    // Lock first: a second run must do no work at all, not even a migration.
    let lock = lock::acquire(req.url, req.schema).await?;
    // The server answered: from here a lost connection (a reset, a restart) is retried
    // within the run's budget, as a page's would be, so that the run gets its ledger row.
    // (A server that cannot be reached at all still fails the run at once, above.)
    let mut budget = RetryBudget::new(req.tuning.retry_budget);
    let (admin, run_id) = loop {
        match begin(req.url, req.schema, req.kind, started).await {
            Ok(begun) => break begun,
            Err(e) => match budget.next(&e) {
                Some(wait) => {
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "starting the run failed, retrying");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(budget.give_up(e)),
            },
        }
    };
    let sink = Arc::new(PgSink::new(req.url, req.schema, Some(run_id))?);
    let (scope, schema, mut tuning) = (&req.scope, req.schema, req.tuning);
    tuning.lock = Some(lock.watch());
    let retry_budget = tuning.retry_budget;
    let mut outcome = dispatch(Arc::new(req.source), sink, scope, &admin, schema, started, tuning).await;
    record(req.url, admin, schema, run_id, &mut outcome, retry_budget).await?;
    Ok(outcome)
}

/// A run's start on its own connection: migrations, the repair of a killed bulk load's
/// foreign keys, stale ledger rows, then the run's ledger row. Every step may run again
/// (migrations and the repair are idempotent; a row left `running` by an attempt that lost
/// its connection is marked abandoned by the next).
async fn begin(
    url: &str,
    schema: &str,
    kind: RunKind,
    started: Timestamp,
) -> Result<(Arc<tokio_postgres::Client>, i64)> {
    let mut admin = db::connect(url).await?;
    schema::migrate(&mut admin, schema).await?;
    // A bulk load killed midway left its foreign keys off: put them back (unless one runs).
    // A key that does not validate is a defect to report, not a reason to stop syncing.
    if let Err(e) = crate::bulk::repair(&admin, schema).await {
        tracing::error!(error = %e, "the foreign keys could not be restored");
    }
    let admin = Arc::new(admin);
    // We hold the lock, so a row still `running` is a dead process's run.
    let abandoned = ledger::abandon_stale(&admin, schema, true).await?;
    if abandoned > 0 {
        tracing::warn!(runs = abandoned, "marked runs whose process ended without finishing as abandoned");
    }
    let run_id = ledger::start(&admin, schema, kind, started).await?;
    Ok((admin, run_id))
}

/// Completes a run's ledger row with its outcome (and its drift), on a fresh connection if
/// the run's died with the failure it reports, retried for at least [`LEDGER_BUDGET`]; then
/// logs the run's notes.
pub(crate) async fn record(
    url: &str,
    mut admin: Arc<tokio_postgres::Client>,
    schema: &str,
    run_id: i64,
    outcome: &mut Outcome,
    retry_budget: std::time::Duration,
) -> Result<()> {
    let error = outcome.result.as_ref().err().map(|e| e.to_string());
    let cancelled = outcome.result.as_ref().is_err_and(|e| e.kind() == crate::error::Kind::Cancelled);
    // Drift is logged once per attribute and type per run, never per record.
    for ((attribute, observed_type), records) in &outcome.summary.drift {
        tracing::warn!(%attribute, observed_type, records, "schema drift: attribute kept in content.extra or coerced");
    }
    // The run's connection may have died with the failure it reports (a restart): record
    // the outcome on a fresh one, within the same retry budget as the pages.
    // The bookkeeping waits longer than a page: recording the cause is worth a minute.
    let mut budget = RetryBudget::new(retry_budget.max(LEDGER_BUDGET));
    loop {
        if admin.is_closed() {
            match db::connect(url).await {
                Ok(c) => admin = Arc::new(c),
                Err(e) => match budget.next(&e) {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    None => return Err(budget.give_up(e).context(ledger_unwritten(outcome))),
                },
            }
        }
        if outcome.notes.is_empty() {
            outcome.notes = stamp_notes(&admin, schema, outcome).await.unwrap_or_default();
        }
        let recorded = async {
            ledger::record_drift(&admin, schema, &outcome.summary).await?;
            ledger::finish(
                &admin,
                schema,
                run_id,
                outcome.plan.as_ref(),
                &outcome.summary,
                error.as_deref(),
                cancelled,
            )
            .await
        }
        .await;
        match recorded {
            Ok(()) => break,
            Err(e) => match budget.next(&e) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(budget.give_up(e).context(ledger_unwritten(outcome))),
            },
        }
    }
    for note in &outcome.notes {
        tracing::warn!("{note}");
    }
    Ok(())
}

/// The least time the run's ledger row is retried for, whatever --retry-budget says.
const LEDGER_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

fn ledger_unwritten(o: &Outcome) -> String {
    let status = match &o.result {
        Ok(()) => "succeeded".to_string(),
        Err(e) => format!("failed ({e})"),
    };
    format!(
        "the run {status} ({} pages committed), but its sync_runs row could not be completed",
        o.summary.pages
    )
}

/// How many recent runs the offset-margin advice looks back on.
const MARGIN_EVIDENCE_RUNS: i64 = 24;

/// The operator's notes on how `updatedAt` is stamped: offsets beyond the margin (records
/// the index may miss), epoch stamps (never found by the index), and a margin wider than
/// any offset seen lately (what it costs, and what to set instead).
async fn stamp_notes(admin: &tokio_postgres::Client, schema: &str, o: &Outcome) -> Result<Vec<String>> {
    let s = &o.summary;
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

async fn dispatch<S: Source>(
    source: Arc<S>,
    sink: Arc<PgSink>,
    scope: &Scope<'_>,
    admin: &Arc<tokio_postgres::Client>,
    schema: &str,
    started: Timestamp,
    tuning: Tuning,
) -> Outcome {
    match scope {
        Scope::Incremental { window, checkpoint } => {
            let store = match AnyCheckpoint::from_args(checkpoint, admin.clone(), schema).await {
                Ok(s) => s,
                Err(e) => {
                    return Outcome {
                        plan: None,
                        summary: Summary::default(),
                        result: Err(e),
                        notes: Vec::new(),
                    }
                }
            };
            run::incremental(source, sink, &store, started, window, tuning).await
        }
        Scope::Days(days) => run::full(source, sink, *days, tuning).await,
    }
}

/// Returns a fresh temporary directory path under the system temp dir.
pub fn temp_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), fastrand::u64(..)))
}
