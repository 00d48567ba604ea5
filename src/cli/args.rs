//! The flag groups shared by several subcommands, each turned into its plain configuration
//! ([`crate::config`]) and checked there: a mistake is an [`Error::config`] (exit 2) before
//! anything is done.

use super::values::{self, Span};
use crate::config::{
    CheckpointConfig, Choice, MetricsConfig, SourceConfig, TtlRemovals, Tuning, WindowConfig, DEFAULT_INDEX,
};
use crate::error::{Error, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Which source to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// A DynamoDB table, through its date-partition GSI.
    Dynamodb,
    /// A DynamoDB export on disk (manifest-files.json + gzip JSON lines), or in S3.
    Export,
}

/// Source flags.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Where records come from. DynamoDB uses the AWS SDK's standard configuration
    /// (AWS_REGION, credentials, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_DYNAMODB).
    #[arg(long, env = "SCANSYNC_SOURCE", value_enum, default_value_t = SourceKind::Dynamodb)]
    pub source: SourceKind,
    /// DynamoDB table name (required with --source dynamodb).
    #[arg(long, env = "SCANSYNC_TABLE")]
    pub table: Option<String>,
    /// The GSI keyed on datePartition (hash) and updatedAt (range).
    #[arg(long, env = "SCANSYNC_INDEX", default_value = DEFAULT_INDEX)]
    pub index: String,
    /// The export (required with --source export): a directory, or where AWS wrote it,
    /// s3://bucket/prefix/ (streamed, never copied; every manifest under the prefix is read).
    #[arg(long, env = "SCANSYNC_EXPORT_DIR")]
    pub export_dir: Option<PathBuf>,
}

impl SourceArgs {
    /// The source these flags name, or which flag is missing.
    pub fn config(&self) -> Result<SourceConfig> {
        match self.source {
            SourceKind::Dynamodb => {
                let table = self.table.clone().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                    Error::config("--source dynamodb needs --table NAME (or SCANSYNC_TABLE)")
                })?;
                Ok(SourceConfig::Dynamodb { table, index: self.index.clone() })
            }
            SourceKind::Export => {
                let dir = self.export_dir.as_ref().ok_or_else(|| {
                    Error::config("--source export needs --export-dir DIR or s3://bucket/prefix/ (or SCANSYNC_EXPORT_DIR)")
                })?;
                Ok(SourceConfig::Export { location: dir.to_string_lossy().into_owned() })
            }
        }
    }
}

/// Where the checkpoint is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckpointKind {
    /// The checkpoints table of the canonical schema.
    Postgres,
    /// An AWS SSM Parameter Store parameter (ISO-8601 UTC string).
    Ssm,
}

/// Checkpoint flags.
#[derive(Debug, Clone, Args)]
pub struct CheckpointArgs {
    /// Checkpoint store.
    #[arg(long, env = "SCANSYNC_CHECKPOINT", value_enum, default_value_t = CheckpointKind::Postgres)]
    pub checkpoint: CheckpointKind,
    /// SSM parameter name (required with --checkpoint ssm), e.g. /scansync/checkpoint.
    #[arg(long, env = "SCANSYNC_SSM_PARAMETER")]
    pub ssm_parameter: Option<String>,
}

impl CheckpointArgs {
    /// The checkpoint store these flags name, or which flag is missing.
    pub fn config(&self) -> Result<CheckpointConfig> {
        match self.checkpoint {
            CheckpointKind::Postgres => Ok(CheckpointConfig::Postgres),
            CheckpointKind::Ssm => {
                let parameter =
                    self.ssm_parameter.clone().filter(|p| !p.trim().is_empty()).ok_or_else(|| {
                        Error::config(
                            "--checkpoint ssm needs --ssm-parameter NAME (or SCANSYNC_SSM_PARAMETER)",
                        )
                    })?;
                Ok(CheckpointConfig::Ssm { parameter })
            }
        }
    }
}

const W: WindowConfig = WindowConfig::DEFAULT;

/// Window flags.
#[derive(Debug, Clone, Args)]
pub struct WindowArgs {
    /// Subtracted from the checkpoint: covers index propagation lag and writer clock skew
    /// (at most 7d; history is loaded with backfill).
    #[arg(long, env = "SCANSYNC_LOOKBACK", default_value_t = Span(W.lookback), value_parser = values::lookback)]
    pub lookback: Span,
    /// Extra UTC day partitions scanned before the window's first day (0 to 31).
    #[arg(long, env = "SCANSYNC_OVERLAP_DAYS", default_value_t = W.overlap_days, value_parser = clap::value_parser!(u32).range(0..=31))]
    pub overlap_days: u32,
    /// How far back the first run reaches when there is no checkpoint yet (at most 3650d).
    #[arg(long, env = "SCANSYNC_FIRST_RUN_WINDOW", default_value_t = Span(W.first_run_window), value_parser = values::first_run_window)]
    pub first_run_window: Span,
    /// How far below the window the index is read so that updatedAt stamps written at a
    /// negative UTC offset (which sort below the same instant in UTC) are found. The
    /// default, 12h, is the largest negative offset in use and never misses a record. Set
    /// 0 when every writer stamps UTC (Z or +00:00): each run then reads only what changed.
    /// Every run reports the offsets it saw and warns when one exceeds the margin.
    #[arg(long, env = "SCANSYNC_OFFSET_MARGIN", default_value_t = Span(W.offset_margin), value_parser = values::offset_margin)]
    pub offset_margin: Span,
    /// The most updatedAt time one run covers (e.g. 6h; 1m to 30d). A run further behind
    /// (after a pause, a backlog of days) syncs its lower bound plus this much, moves the
    /// checkpoint there and says how far behind it still is: each run commits durable
    /// progress within a Lambda's or a CronJob's time limit. Default: no bound.
    #[arg(long, env = "SCANSYNC_MAX_WINDOW", value_parser = values::max_window)]
    pub max_window: Option<Span>,
}

impl WindowArgs {
    /// The window settings; a bounded window must be longer than the lookback, or a run
    /// makes no progress.
    pub fn config(&self) -> Result<WindowConfig> {
        if let Some(m) = self.max_window.filter(|m| *m <= self.lookback) {
            return Err(Error::config(format!(
                "--max-window {m} is not longer than --lookback {}: a run would make no progress; make the window longer than the lookback",
                self.lookback
            )));
        }
        Ok(WindowConfig {
            lookback: self.lookback.0,
            overlap_days: self.overlap_days,
            first_run_window: self.first_run_window.0,
            offset_margin: self.offset_margin.0,
            max_window: self.max_window.map(|m| m.0),
        })
    }
}

const T: Tuning = Tuning::DEFAULT;

/// Tuning flags.
#[derive(Debug, Clone, Args)]
pub struct TuningArgs {
    /// Key slices (DynamoDB queries) or export files fetched in parallel.
    #[arg(long, env = "SCANSYNC_FETCHERS", default_value_t = T.fetchers as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub fetchers: u16,
    /// Contiguous updatedAt slices each DynamoDB day partition is cut into and read
    /// concurrently (default: --fetchers), so an hourly window in one partition keeps every
    /// fetcher busy. Coverage is exact: no key is read by two slices or by none.
    #[arg(long, env = "SCANSYNC_SLICES", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub slices: Option<u16>,
    /// Records per page (DynamoDB query Limit; export lines per page). One page is one
    /// transaction.
    #[arg(long, env = "SCANSYNC_PAGE_SIZE", default_value_t = T.page_size as u32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub page_size: u32,
    /// Page writers, each with its own PostgreSQL connection.
    #[arg(long, env = "SCANSYNC_WRITERS", default_value_t = T.writers as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: u16,
    /// A page (of an export file) in which more than this percentage of the lines are not
    /// DynamoDB JSON items is a broken input: the run fails and says which file, instead of
    /// quarantining it line by line. 100 turns the check off.
    #[arg(long, env = "SCANSYNC_MAX_UNREADABLE_PERCENT", default_value_t = T.max_unreadable_percent, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub max_unreadable_percent: u8,
    /// How long a page (and the run's bookkeeping) is retried through transient failures
    /// before the run fails: of PostgreSQL (connection lost, restart, failover, deadlock,
    /// serialization) and of DynamoDB queries (throttling, 5xx, timeouts, connection
    /// failures, beyond the SDK's own 5 attempts). The default covers a managed database's
    /// failover (60-120 s).
    #[arg(long, env = "SCANSYNC_RETRY_BUDGET", default_value_t = Span(T.retry_budget), value_parser = values::retry_budget)]
    pub retry_budget: Span,
    /// What a TTL expiry does (a removal by the DynamoDB service, which a stream names in its
    /// userIdentity): ignore (counted, nothing changes) or tombstone (as any removal: the
    /// row holding the expired record gets deleted_at). Incremental exports do not say who
    /// removed an item: their removals are never TTL expiries.
    #[arg(long, env = "SCANSYNC_TTL_REMOVALS", value_parser = values::choice::<TtlRemovals>(), default_value = T.ttl_removals.name())]
    pub ttl_removals: TtlRemovals,
}

impl TuningArgs {
    /// The tuning these flags set.
    pub fn config(&self) -> Tuning {
        Tuning {
            fetchers: usize::from(self.fetchers),
            slices: self.slices.map(usize::from),
            page_size: self.page_size as usize,
            writers: usize::from(self.writers),
            max_unreadable_percent: self.max_unreadable_percent,
            retry_budget: self.retry_budget.0,
            ttl_removals: self.ttl_removals,
        }
    }
}

/// Metrics flags (`sync`, `backfill`, `serve`, `follow`).
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus /metrics, /healthz (the health verdict: 200, or 503 with the
    /// reason as JSON) and /livez (the process answers) on this address, e.g.
    /// 0.0.0.0:9187: for serve and follow, always; for sync and backfill, while the run
    /// lasts.
    #[arg(long, env = "SCANSYNC_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// /healthz says stale when the last successful run is older than this.
    #[arg(long, env = "SCANSYNC_MAX_AGE", default_value_t = Span(MetricsConfig::DEFAULT_MAX_AGE), value_parser = values::max_age)]
    pub max_age: Span,
    /// /healthz says stale when a stream follower (`scansync follow`) is further behind
    /// than this (now minus its last applied record's time), or its heartbeat is older than
    /// a minute.
    #[arg(long, env = "SCANSYNC_MAX_LAG", default_value_t = Span(MetricsConfig::DEFAULT_MAX_LAG), value_parser = values::max_age)]
    pub max_lag: Span,
}

impl MetricsArgs {
    /// The endpoint these flags ask for.
    pub fn config(&self) -> MetricsConfig {
        MetricsConfig { addr: self.metrics_addr, max_age: self.max_age.0, max_lag: self.max_lag.0 }
    }
}
