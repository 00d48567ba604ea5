//! The subcommands: each wraps a run in the lock and the run ledger and reports it.

use crate::checkpoint::postgres::{PgCheckpoint, INCREMENTAL};
use crate::checkpoint::ssm::SsmCheckpoint;
use crate::checkpoint::CheckpointStore;
use crate::cli::{CheckpointArgs, CheckpointKind, SourceArgs, SourceKind, TuningArgs};
use crate::error::{Error, Kind, Result};
use crate::ledger::{self, RunKind};
use crate::pipeline::Summary;
use crate::run::{self, Outcome, Tuning};
use crate::source::dynamodb::DynamoSource;
use crate::source::export::ExportSource;
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

/// A source chosen on the command line.
pub enum AnySource {
    /// DynamoDB.
    Dynamo(DynamoSource),
    /// An export directory.
    Export(ExportSource),
    /// Records made on the fly by the loadgen generator (`demo --records N`).
    Generated(crate::source::generated::GeneratedSource),
}

impl AnySource {
    /// Builds the source the flags describe, or says which flag is missing.
    pub async fn from_args(a: &SourceArgs, page_size: usize) -> Result<Self> {
        match a.source {
            SourceKind::Dynamodb => {
                let table = a.table.as_deref().ok_or_else(|| {
                    Error::config("--source dynamodb needs --table NAME (or SCANSYNC_TABLE)")
                })?;
                Ok(AnySource::Dynamo(DynamoSource::from_env(table, &a.index, page_size).await?))
            }
            SourceKind::Export => {
                let dir = a.export_dir.as_deref().ok_or_else(|| {
                    Error::config("--source export needs --export-dir DIR (or SCANSYNC_EXPORT_DIR)")
                })?;
                Ok(AnySource::Export(ExportSource::open(dir, page_size)?))
            }
        }
    }
}

/// A checkpoint store chosen on the command line.
pub enum AnyCheckpoint {
    /// The PostgreSQL table.
    Pg(PgCheckpoint),
    /// An SSM parameter.
    Ssm(SsmCheckpoint),
}

impl AnyCheckpoint {
    /// Builds the store the flags describe.
    pub async fn from_args(
        a: &CheckpointArgs,
        client: Arc<tokio_postgres::Client>,
        schema: &str,
    ) -> Result<Self> {
        match a.checkpoint {
            CheckpointKind::Postgres => {
                Ok(AnyCheckpoint::Pg(PgCheckpoint::new(client, schema, INCREMENTAL)?))
            }
            CheckpointKind::Ssm => {
                let name = a.ssm_parameter.as_deref().ok_or_else(|| {
                    Error::config("--checkpoint ssm needs --ssm-parameter NAME (or SCANSYNC_SSM_PARAMETER)")
                })?;
                Ok(AnyCheckpoint::Ssm(SsmCheckpoint::from_env(name).await?))
            }
        }
    }
}

impl CheckpointStore for AnyCheckpoint {
    async fn read(&self) -> Result<Option<Timestamp>> {
        match self {
            AnyCheckpoint::Pg(s) => s.read().await,
            AnyCheckpoint::Ssm(s) => s.read().await,
        }
    }

    async fn write(&self, at: Timestamp) -> Result<()> {
        match self {
            AnyCheckpoint::Pg(s) => s.write(at).await,
            AnyCheckpoint::Ssm(s) => s.write(at).await,
        }
    }
}

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
    Tuning { fetchers: usize::from(t.fetchers), writers: usize::from(t.writers), progress: None }
}

/// Runs one sync/backfill/demo run under the lock, recorded in the ledger. Returns the
/// outcome; `Err` only for failures before the run could start (lock, connection, schema).
pub async fn run(req: RunRequest<'_>) -> Result<Outcome> {
    let started = Timestamp::now();
    // Lock first: a second run must do no work at all, not even a migration.
    let _lock = lock::acquire(req.url, req.schema).await?;
    let mut admin = db::connect(req.url).await?;
    schema::migrate(&mut admin, req.schema).await?;
    let admin = Arc::new(admin);
    let run_id = ledger::start(&admin, req.schema, req.kind, started).await?;
    let sink = Arc::new(PgSink::new(req.url, req.schema, Some(run_id))?);
    let (scope, schema, tuning) = (&req.scope, req.schema, req.tuning);
    let outcome = match req.source {
        AnySource::Dynamo(s) => dispatch(Arc::new(s), sink, scope, &admin, schema, started, tuning).await,
        AnySource::Export(s) => dispatch(Arc::new(s), sink, scope, &admin, schema, started, tuning).await,
        AnySource::Generated(s) => dispatch(Arc::new(s), sink, scope, &admin, schema, started, tuning).await,
    };
    let error = outcome.result.as_ref().err().map(|e| e.to_string());
    // Drift is logged once per attribute and type per run, never per record.
    for ((attribute, observed_type), records) in &outcome.summary.drift {
        tracing::warn!(%attribute, observed_type, records, "schema drift: attribute kept in content.extra or coerced");
    }
    ledger::record_drift(&admin, req.schema, &outcome.summary).await?;
    ledger::finish(&admin, req.schema, run_id, outcome.plan.as_ref(), &outcome.summary, error.as_deref())
        .await?;
    Ok(outcome)
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
                Err(e) => return Outcome { plan: None, summary: Summary::default(), result: Err(e) },
            };
            run::incremental(source, sink, &store, started, window, tuning).await
        }
        Scope::Days(days) => run::full(source, sink, *days, tuning).await,
    }
}

/// Prints a run's summary for people.
pub fn print_summary(label: &str, o: &Outcome) {
    let s = &o.summary;
    let status = if o.result.is_ok() { "succeeded" } else { "FAILED" };
    println!(
        "{label} {status} in {:.2} s: {} records read ({:.0} records/s), {} pages, {} outside the window",
        s.elapsed.as_secs_f64(),
        s.read,
        s.records_per_sec(),
        s.pages,
        s.skipped
    );
    if let Some(p) = &o.plan {
        println!(
            "  window: updatedAt after {}, partitions {} .. {}",
            p.after,
            p.days[0],
            p.days[p.days.len() - 1]
        );
    }
    let w = &s.written;
    println!(
        "  rows changed: creators {}, communities {}, tags {}, content {}, content_tags {}",
        w.creators, w.communities, w.tags, w.content, w.content_tags
    );
    let rejects: Vec<String> = s.rejects.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "  quarantined: {} new ({} rejected{}{})",
        w.quarantined,
        s.rejected(),
        if rejects.is_empty() { "" } else { ": " },
        rejects.join(", ")
    );
    let repairs: Vec<String> = s.repairs.fired().map(|(r, n)| format!("{} {n}", r.name())).collect();
    if !repairs.is_empty() {
        println!("  repaired: {}", repairs.join(", "));
    }
    if !s.drift.is_empty() {
        let d: Vec<String> = s.drift.iter().map(|((a, t), n)| format!("{a}:{t} {n}")).collect();
        println!("  schema drift: {}", d.join(", "));
    }
    if s.retries > 0 {
        println!("  page retries: {}", s.retries);
    }
    if let Err(e) = &o.result {
        println!("  error: {e}");
    }
}

/// Maps a run result to its exit status, printing the error.
pub fn exit_status(r: &Result<Outcome>) -> u8 {
    match r {
        Ok(o) if o.result.is_ok() => EXIT_OK,
        Ok(o) => {
            if let Err(e) = &o.result {
                eprintln!("scansync: run failed: {e}");
            }
            EXIT_FAILED
        }
        Err(e) if e.kind() == Kind::Locked => {
            eprintln!("scansync: {e}");
            EXIT_LOCKED
        }
        Err(e) => {
            eprintln!("scansync: {e}");
            EXIT_FAILED
        }
    }
}

/// Returns a fresh temporary directory path under the system temp dir.
pub fn temp_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), fastrand::u64(..)))
}
