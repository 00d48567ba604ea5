//! The command line: every flag has an environment variable, and `--help` explains each.

use crate::time::Day;
use crate::window::parse_duration;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// The default database: the local PostgreSQL with trust auth.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// scansync keeps a canonical PostgreSQL store in sync with a DynamoDB store of scan records.
#[derive(Debug, Parser)]
#[command(
    name = "scansync",
    version,
    about = "Keep a canonical PostgreSQL store in sync with DynamoDB scan records",
    long_about = "Keep a canonical PostgreSQL store in sync with DynamoDB scan records.\n\n\
        Start with `scansync demo` (needs only the local PostgreSQL). An hourly job runs \
        `scansync sync`; history is loaded with `scansync backfill`; probes call `scansync health`.\n\n\
        Exit status of sync/backfill/demo: 0 success, 1 failure, 75 another run holds the lock."
)]
pub struct Cli {
    /// PostgreSQL connection URL (the password is never printed).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    pub database_url: String,

    /// PostgreSQL schema holding the canonical tables (lowercase letters, digits, _).
    #[arg(long, env = "SCANSYNC_SCHEMA", default_value = "scansync", global = true)]
    pub schema: String,

    /// Log format on stderr: text for people, json for log pipelines. Level: RUST_LOG.
    #[arg(long, env = "SCANSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the canonical schema (idempotent; sync, backfill and demo also do it).
    Migrate,
    /// Run one incremental sync: the records changed since the last successful run.
    Sync(SyncArgs),
    /// Re-sync whole day partitions, without the updatedAt filter and without touching the
    /// incremental checkpoint.
    Backfill(BackfillArgs),
    /// Report freshness: exit 0 healthy, 1 stale or never ran, 2 last run failed.
    Health(HealthArgs),
    /// Sync a bundled sample of dirty records into a demo schema, twice, then run health;
    /// with --records N, sync N generated dirty records instead, with a progress bar.
    Demo(DemoArgs),
}

/// Flags of `sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    /// Where records come from.
    pub source: SourceArgs,
    #[command(flatten)]
    /// Where the checkpoint lives.
    pub checkpoint: CheckpointArgs,
    #[command(flatten)]
    /// The window.
    pub window: WindowArgs,
    #[command(flatten)]
    /// Parallelism and page size.
    pub tuning: TuningArgs,
}

/// Flags of `backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// First UTC day partition (YYYY-MM-DD), inclusive.
    #[arg(long, env = "SCANSYNC_BACKFILL_FROM", value_parser = parse_day)]
    pub from: Day,
    /// Last UTC day partition (YYYY-MM-DD), inclusive.
    #[arg(long, env = "SCANSYNC_BACKFILL_TO", value_parser = parse_day)]
    pub to: Day,
    #[command(flatten)]
    /// Where records come from.
    pub source: SourceArgs,
    #[command(flatten)]
    /// Parallelism and page size.
    pub tuning: TuningArgs,
}

/// Flags of `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// A last successful run older than this is stale (e.g. 90m, 3h, 1d).
    #[arg(long, env = "SCANSYNC_MAX_AGE", default_value = "3h", value_parser = parse_duration)]
    pub max_age: Duration,
    /// Print JSON for machines instead of text.
    #[arg(long, env = "SCANSYNC_HEALTH_JSON")]
    pub json: bool,
    #[command(flatten)]
    /// Where the checkpoint lives.
    pub checkpoint: CheckpointArgs,
}

/// Flags of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Generate this many realistic dirty records (loadgen's generator) and sync them,
    /// instead of the bundled sample.
    #[arg(long, env = "SCANSYNC_DEMO_RECORDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub records: Option<u64>,
    /// Seed of the generated records.
    #[arg(long, env = "SCANSYNC_DEMO_SEED", default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    /// Parallelism and page size (generated records only).
    pub tuning: TuningArgs,
}

/// Which source to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// A DynamoDB table, through its date-partition GSI.
    Dynamodb,
    /// A DynamoDB export on disk (manifest-files.json + gzip JSON lines).
    Export,
}

/// Source flags.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Where records come from. DynamoDB uses the AWS SDK's standard configuration
    /// (AWS_REGION, credentials, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_DYNAMODB).
    #[arg(long, env = "SCANSYNC_SOURCE", value_enum, default_value_t = SourceKind::Dynamodb)]
    pub source: SourceKind,
    /// DynamoDB table name (required with --source dynamodb).
    #[arg(long, env = "SCANSYNC_TABLE")]
    pub table: Option<String>,
    /// The GSI keyed on datePartition (hash) and updatedAt (range).
    #[arg(long, env = "SCANSYNC_INDEX", default_value = "datePartition-updatedAt-index")]
    pub index: String,
    /// Export directory (required with --source export).
    #[arg(long, env = "SCANSYNC_EXPORT_DIR")]
    pub export_dir: Option<PathBuf>,
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
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Checkpoint store.
    #[arg(long, env = "SCANSYNC_CHECKPOINT", value_enum, default_value_t = CheckpointKind::Postgres)]
    pub checkpoint: CheckpointKind,
    /// SSM parameter name (required with --checkpoint ssm), e.g. /scansync/checkpoint.
    #[arg(long, env = "SCANSYNC_SSM_PARAMETER")]
    pub ssm_parameter: Option<String>,
}

/// Window flags.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// Subtracted from the checkpoint: covers index propagation lag and writer clock skew.
    #[arg(long, env = "SCANSYNC_LOOKBACK", default_value = "15m", value_parser = parse_duration)]
    pub lookback: Duration,
    /// Extra UTC day partitions scanned before the window's first day.
    #[arg(long, env = "SCANSYNC_OVERLAP_DAYS", default_value_t = 1)]
    pub overlap_days: u32,
    /// How far back the first run reaches when there is no checkpoint yet.
    #[arg(long, env = "SCANSYNC_FIRST_RUN_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub first_run_window: Duration,
}

/// Tuning flags.
#[derive(Debug, Args)]
pub struct TuningArgs {
    /// Day partitions (or export files) fetched in parallel.
    #[arg(long, env = "SCANSYNC_FETCHERS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub fetchers: u16,
    /// Records per page (DynamoDB query Limit; export lines per page). One page is one
    /// transaction.
    #[arg(long, env = "SCANSYNC_PAGE_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub page_size: u32,
    /// Page writers, each with its own PostgreSQL connection.
    #[arg(long, env = "SCANSYNC_WRITERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: u16,
}

fn parse_day(s: &str) -> Result<Day, String> {
    Day::parse(s).ok_or_else(|| format!("{s:?} is not a date: write YYYY-MM-DD (a UTC day), e.g. 2026-01-31"))
}
