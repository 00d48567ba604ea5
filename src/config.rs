//! Configuration as plain data: what the command line (or the Lambda entry's environment)
//! fills and checks, and what every layer below takes. The engine never sees clap.
//!
//! Each default is stated once, here: the CLI shows these values as its defaults, and the
//! run logic starts from them.

use crate::time::Day;
use std::net::SocketAddr;
use std::time::Duration;

/// A value offered as a choice on the command line: its name and what it means.
pub trait Choice: Sized + Copy + Send + Sync + 'static {
    /// Every value, in the order `--help` lists them.
    const ALL: &'static [Self];
    /// The name typed on the command line.
    fn name(self) -> &'static str;
    /// What the value means (one line of `--help`).
    fn help(self) -> &'static str;
}

/// The name of the date-partition GSI when `--index` is not given.
pub const DEFAULT_INDEX: &str = "datePartition-updatedAt-index";

/// Where records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// A DynamoDB table, through its date-partition GSI.
    Dynamodb {
        /// The table.
        table: String,
        /// The GSI keyed on `datePartition` (hash) and `updatedAt` (range).
        index: String,
    },
    /// A DynamoDB export: a directory, or `s3://bucket/prefix/`.
    Export {
        /// Where it is.
        location: String,
    },
}

/// Where the incremental checkpoint lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CheckpointConfig {
    /// The `checkpoints` table of the canonical schema.
    #[default]
    Postgres,
    /// An SSM Parameter Store parameter (an ISO-8601 UTC string).
    Ssm {
        /// The parameter's name.
        parameter: String,
    },
}

/// The window settings of an incremental run (docs/run.md, "The window").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowConfig {
    /// Subtracted from the checkpoint: covers GSI propagation lag and writer clock skew.
    pub lookback: Duration,
    /// Extra day partitions scanned before the lower bound's day.
    pub overlap_days: u32,
    /// How far back the first run (no checkpoint yet) reaches.
    pub first_run_window: Duration,
    /// How far below the lower bound the index is read so that stamps written at a negative
    /// UTC offset are found (they sort below the same instant written in UTC by up to the
    /// offset). 0 when every writer stamps UTC (`Z` or `+00:00`): then a run reads only
    /// what changed.
    pub offset_margin: Duration,
    /// The most `updatedAt` time one run covers: a run further behind reads up to its lower
    /// bound plus this, and moves the checkpoint there (catch-up in bounded steps).
    pub max_window: Option<Duration>,
}

impl WindowConfig {
    /// The defaults: a 15-minute lookback, one overlap day, a 24-hour first run, the 12-hour
    /// offset margin (the largest negative UTC offset in use, −12:00, so a stamp written at
    /// any offset is found), no bound on the window.
    pub const DEFAULT: WindowConfig = WindowConfig {
        lookback: Duration::from_secs(15 * 60),
        overlap_days: 1,
        first_run_window: Duration::from_secs(24 * 3600),
        offset_margin: Duration::from_secs(12 * 3600),
        max_window: None,
    };
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Parallelism, page size and tolerance: the knobs of every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Units (key slices, export files) fetched at once.
    pub fetchers: usize,
    /// Key slices each DynamoDB day partition is cut into (`None`: one per fetcher).
    pub slices: Option<usize>,
    /// Records per page: a DynamoDB query's `Limit`, export lines per page.
    pub page_size: usize,
    /// Page writers, each with its own PostgreSQL connection.
    pub writers: usize,
    /// A page with more unreadable lines than this percentage is a broken input.
    pub max_unreadable_percent: u8,
    /// How long transient failures are retried (per page, per query) before the run fails.
    pub retry_budget: Duration,
    /// What a TTL expiry does to the row that holds the expired record.
    pub ttl_removals: TtlRemovals,
}

impl Tuning {
    /// The defaults: 4 fetchers, 1000-record pages, 2 writers, 50 % unreadable lines at
    /// most, and a retry budget of 180 s, longer than a managed database's failover
    /// (60–120 s).
    pub const DEFAULT: Tuning = Tuning {
        fetchers: 4,
        slices: None,
        page_size: 1000,
        writers: 2,
        max_unreadable_percent: 50,
        retry_budget: Duration::from_secs(180),
        ttl_removals: TtlRemovals::Ignore,
    };

    /// Key slices per partition: as given, else one per fetcher.
    pub fn slices(&self) -> usize {
        self.slices.unwrap_or(self.fetchers).max(1)
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a TTL expiry (a removal by the DynamoDB service, as a stream reports it) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlRemovals {
    /// Nothing: it is counted (an expiry is housekeeping of the table, not a deleted post).
    #[default]
    Ignore,
    /// A removal like any other: it tombstones the row that holds the expired record.
    Tombstone,
}

impl Choice for TtlRemovals {
    const ALL: &'static [Self] = &[TtlRemovals::Ignore, TtlRemovals::Tombstone];
    fn name(self) -> &'static str {
        match self {
            TtlRemovals::Ignore => "ignore",
            TtlRemovals::Tombstone => "tombstone",
        }
    }
    fn help(self) -> &'static str {
        match self {
            TtlRemovals::Ignore => {
                "Count them and change nothing (an expiry is housekeeping, not a deleted post)"
            }
            TtlRemovals::Tombstone => "Like any removal: the row that holds the expired record is tombstoned",
        }
    }
}

/// Whether a backfill takes the bulk path (foreign keys and the index by tag off during the
/// load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BulkMode {
    /// When the store's content is empty, or the export holds at least twice as many records.
    #[default]
    Auto,
    /// Always.
    On,
    /// Never: per-row foreign-key checks throughout.
    Off,
}

impl Choice for BulkMode {
    const ALL: &'static [Self] = &[BulkMode::Auto, BulkMode::On, BulkMode::Off];
    fn name(self) -> &'static str {
        match self {
            BulkMode::Auto => "auto",
            BulkMode::On => "on",
            BulkMode::Off => "off",
        }
    }
    fn help(self) -> &'static str {
        match self {
            BulkMode::Auto => {
                "When the store's content is empty, or the export holds at least twice as many records"
            }
            BulkMode::On => "Always",
            BulkMode::Off => "Never: per-row foreign-key checks throughout",
        }
    }
}

/// How a backfill shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    #[default]
    Auto,
    /// A bar only, never log lines (drawn only where stderr is a terminal).
    Bar,
    /// Log lines every `--progress-every`.
    Log,
    /// Nothing until the end.
    Off,
}

impl Choice for ProgressMode {
    const ALL: &'static [Self] =
        &[ProgressMode::Auto, ProgressMode::Bar, ProgressMode::Log, ProgressMode::Off];
    fn name(self) -> &'static str {
        match self {
            ProgressMode::Auto => "auto",
            ProgressMode::Bar => "bar",
            ProgressMode::Log => "log",
            ProgressMode::Off => "off",
        }
    }
    fn help(self) -> &'static str {
        match self {
            ProgressMode::Auto => "A bar when stderr is a terminal, log lines otherwise",
            ProgressMode::Bar => {
                "A bar only, never log lines (indicatif draws it only where stderr is a terminal)"
            }
            ProgressMode::Log => "Log lines every --progress-every",
            ProgressMode::Off => "Nothing until the end",
        }
    }
}

/// The log format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Choice for LogFormat {
    const ALL: &'static [Self] = &[LogFormat::Text, LogFormat::Json];
    fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
    fn help(self) -> &'static str {
        match self {
            LogFormat::Text => "Human-readable lines",
            LogFormat::Json => "One JSON object per line",
        }
    }
}

/// `/metrics` and `/healthz` over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where to listen (`None`: no endpoint).
    pub addr: Option<SocketAddr>,
    /// `/healthz` says stale when the last successful run is older than this.
    pub max_age: Duration,
    /// ... or a stream follower is further behind than this.
    pub max_lag: Duration,
}

impl MetricsConfig {
    /// The default staleness threshold of `health` and `/healthz`: 3 hours.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3 * 3600);
    /// The default lag beyond which a follower is stale: a minute.
    pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(60);
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { addr: None, max_age: Self::DEFAULT_MAX_AGE, max_lag: Self::DEFAULT_MAX_LAG }
    }
}

/// The PostgreSQL store a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The connection URL (never printed: see `db::redact`).
    pub url: String,
    /// The canonical schema, already checked (`schema::quoted_schema`).
    pub schema: String,
}

/// Everything one incremental sync needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncConfig {
    /// Where records come from.
    pub source: SourceConfig,
    /// Where the checkpoint lives.
    pub checkpoint: CheckpointConfig,
    /// The window.
    pub window: WindowConfig,
    /// Parallelism and page size.
    pub tuning: Tuning,
    /// Metrics over HTTP.
    pub metrics: MetricsConfig,
}

/// Everything one backfill worker needs.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillConfig {
    /// Where records come from.
    pub source: SourceConfig,
    /// The day partitions (inclusive); `None`: everything the source has (exports only).
    pub days: Option<(Day, Day)>,
    /// Start the job afresh.
    pub restart: bool,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// The interval of progress log lines.
    pub progress_every: Duration,
    /// The bulk path.
    pub bulk: BulkMode,
    /// Parallelism and page size.
    pub tuning: Tuning,
    /// Metrics over HTTP.
    pub metrics: MetricsConfig,
}

impl BackfillConfig {
    /// The default interval of progress log lines: 30 s.
    pub const DEFAULT_PROGRESS_EVERY: Duration = Duration::from_secs(30);
}

/// Which days a verify compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyDays {
    /// These day partitions (inclusive).
    Range(Day, Day),
    /// The last N UTC days, today included (a scheduled verify: `serve --verify-days`).
    Last(u32),
    /// Everything the source holds (exports only).
    All,
}

impl VerifyDays {
    /// The day partitions, resolved against today; `None`: all of them.
    pub fn resolve(self, today: Day) -> Option<(Day, Day)> {
        match self {
            Self::Range(from, to) => Some((from, to)),
            Self::Last(n) => Some((Day(today.0 - i64::from(n.max(1)) + 1), today)),
            Self::All => None,
        }
    }
}

/// Everything one verify needs (`scansync verify`, and serve's scheduled verify).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyConfig {
    /// Where records come from.
    pub source: SourceConfig,
    /// The day partitions compared.
    pub days: VerifyDays,
    /// Write the divergent keys' newest records, then compare them again.
    pub repair: bool,
    /// Record the result in the ledger (`sync_runs`, kind `verify`), for `health` and
    /// `/metrics`. A repair always records itself.
    pub record: bool,
    /// How many keys of each divergent kind are listed.
    pub keys: usize,
    /// Parallelism and page size.
    pub tuning: Tuning,
}

impl VerifyConfig {
    /// The default number of keys listed per kind.
    pub const DEFAULT_KEYS: usize = 10;
}
