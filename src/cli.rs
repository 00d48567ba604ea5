//! The command line: every flag has an environment variable, and `--help` explains each.

use crate::time::Day;
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
        `scansync sync` (or `scansync serve` runs it on a schedule, with metrics); history is \
        loaded with `scansync backfill`; probes call `scansync health`.\n\n\
        Exit status of sync/backfill/demo: 0 success, 1 failure, 75 another run holds the lock, \
        143/130 stopped by SIGTERM/SIGINT."
)]
pub struct Cli {
    /// PostgreSQL connection URL (the password is never printed). TLS: sslmode=disable,
    /// prefer (default), require, verify-ca or verify-full, and sslrootcert=CA.pem (or
    /// PGSSLMODE, PGSSLROOTCERT); the password may come from PGPASSWORD.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    pub database_url: String,

    /// PostgreSQL schema holding the canonical tables (lowercase letters, digits, _).
    #[arg(long, env = "SCANSYNC_SCHEMA", default_value = "scansync", global = true)]
    pub schema: String,

    /// Log format on stderr: text for people, json for log pipelines. Level: RUST_LOG.
    #[arg(long, env = "SCANSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// A file holding the database URL (e.g. a mounted secret), instead of --database-url:
    /// the password then appears in no process list or environment.
    #[arg(long, env = "DATABASE_URL_FILE", global = true)]
    pub database_url_file: Option<PathBuf>,

    /// An SSM Parameter Store parameter (a SecureString) holding the database URL, read
    /// at start instead of --database-url (e.g. /scansync/database-url; the Lambda entry's
    /// way to keep the password out of its configuration). Needs ssm:GetParameter on it.
    #[arg(
        long,
        env = "SCANSYNC_DATABASE_URL_PARAMETER",
        global = true,
        conflicts_with = "database_url_file"
    )]
    pub database_url_parameter: Option<String>,

    /// After SIGTERM or SIGINT, how long the run may take to let the page being written
    /// finish and to record itself as cancelled before the process exits (1s to 10m). A
    /// second signal exits at once.
    #[arg(long, env = "SCANSYNC_SHUTDOWN_TIMEOUT", default_value = "30s", global = true, value_parser = parse_shutdown_timeout)]
    pub shutdown_timeout: Duration,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Reads the database URL from `--database-url-parameter` when given (an SSM call, so
    /// on the runtime), then registers the password so that nothing can print it.
    pub async fn fetch_database_url(&mut self) -> crate::Result<()> {
        if let Some(name) = &self.database_url_parameter {
            self.database_url = crate::checkpoint::ssm::read_secret(name)
                .await
                .map_err(|e| e.context("reading --database-url-parameter"))?;
            crate::db::register_secrets(&self.database_url);
        }
        Ok(())
    }

    /// Reads the database URL from `--database-url-file` when given, then registers the
    /// password so that no message or log line can print it.
    pub fn resolve_database_url(&mut self) -> Result<(), String> {
        if let Some(path) = &self.database_url_file {
            let url = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read --database-url-file {}: {e}; give a file holding the database URL",
                    path.display()
                )
            })?;
            self.database_url = url.trim().to_string();
        }
        crate::db::register_secrets(&self.database_url);
        Ok(())
    }
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
    /// Re-sync whole day partitions (or a whole export) as a resumable job that many workers
    /// can share, beside the hourly sync (never its lock, never its checkpoint). The same
    /// command resumes the job; `backfill status` shows every job's progress.
    Backfill(BackfillArgs),
    /// Report freshness: exit 0 healthy, 1 stale or never ran, 2 last run failed.
    Health(HealthArgs),
    /// Run the incremental sync on a schedule in one long-running process (a Kubernetes
    /// Deployment, a systemd service), with Prometheus /metrics and /healthz.
    Serve(ServeArgs),
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
    #[command(flatten)]
    /// Prometheus metrics and health over HTTP.
    pub metrics: MetricsArgs,
}

/// Metrics flags (`sync`, `backfill`, `serve`).
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus /metrics and /healthz (the health verdict: 200, or 503 with the
    /// reason as JSON) on this address, e.g. 0.0.0.0:9187: for serve, always; for sync and
    /// backfill, while the run lasts.
    #[arg(long, env = "SCANSYNC_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// /healthz says stale when the last successful run is older than this.
    #[arg(long, env = "SCANSYNC_MAX_AGE", default_value = "3h", value_parser = parse_max_age)]
    pub max_age: Duration,
}

/// Flags of `backfill`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackfillArgs {
    /// `status`: the jobs' progress instead of running one.
    #[command(subcommand)]
    pub action: Option<BackfillAction>,
    /// First UTC day partition (YYYY-MM-DD), inclusive. Required with --source dynamodb;
    /// with an export, only records of these days are kept (default: all).
    #[arg(long, env = "SCANSYNC_BACKFILL_FROM", value_parser = parse_day, requires = "to")]
    pub from: Option<Day>,
    /// Last UTC day partition (YYYY-MM-DD), inclusive.
    #[arg(long, env = "SCANSYNC_BACKFILL_TO", value_parser = parse_day, requires = "from")]
    pub to: Option<Day>,
    /// Start the job afresh: every unit pending again, the done ones too. Refused while a
    /// worker of the job runs. Without it, the same command resumes the job.
    #[arg(long, env = "SCANSYNC_BACKFILL_RESTART")]
    pub restart: bool,
    /// Progress: a bar on a terminal and log lines otherwise (auto); or only the bar (drawn
    /// only on a terminal), only log lines, or off.
    #[arg(long, env = "SCANSYNC_PROGRESS", value_enum, default_value_t = crate::backfill::progress::Mode::Auto)]
    pub progress: crate::backfill::progress::Mode,
    /// Interval of the progress log lines (1s to 1h).
    #[arg(long, env = "SCANSYNC_PROGRESS_EVERY", default_value = "30s", value_parser = parse_progress_every)]
    pub progress_every: Duration,
    /// Load without per-row foreign-key checks and validate them once at the end, and build
    /// the index of edges by tag once at the end (about twice as fast a first load; see
    /// docs/backfill.md). auto: when the store's content is empty, or the export holds at
    /// least twice as many records as the store.
    #[arg(long, env = "SCANSYNC_BULK", value_enum, default_value_t = BulkMode::Auto)]
    pub bulk: BulkMode,
    #[command(flatten)]
    /// Where records come from.
    pub source: SourceArgs,
    #[command(flatten)]
    /// Parallelism and page size.
    pub tuning: TuningArgs,
    #[command(flatten)]
    /// Prometheus metrics and health over HTTP.
    pub metrics: MetricsArgs,
}

/// Whether a backfill takes the bulk path (foreign keys and the index by tag off during the
/// load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BulkMode {
    /// When the store's content is empty, or the export holds at least twice as many records.
    Auto,
    /// Always.
    On,
    /// Never: per-row foreign-key checks throughout.
    Off,
}

/// What `backfill` does instead of running a job.
#[derive(Debug, Subcommand)]
pub enum BackfillAction {
    /// Print every backfill job's progress, its failed units with their errors, and the
    /// workers holding claims.
    Status(BackfillStatusArgs),
}

/// Flags of `backfill status`.
#[derive(Debug, Args)]
pub struct BackfillStatusArgs {
    /// Print JSON for machines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Start a sync this often (e.g. 1h, 15m; 1s to 1d). A run that overruns its slot is
    /// followed at once by the next; missed ticks collapse into that one run.
    #[arg(long, env = "SCANSYNC_EVERY", default_value = "1h", value_parser = parse_every)]
    pub every: Duration,
    /// Start a sync at the times of this cron expression instead of --every, in UTC: five
    /// fields (minute hour day-of-month month day-of-week, e.g. "5 * * * *" at 5 past each
    /// hour) or six with seconds first. Overruns and missed times behave as with --every.
    #[arg(long, env = "SCANSYNC_CRON", conflicts_with = "every", value_parser = parse_cron)]
    pub cron: Option<Box<croner::Cron>>,
    /// A random delay added to each start, up to this (0s to --every), so many instances do
    /// not start together.
    #[arg(long, env = "SCANSYNC_JITTER", default_value = "0s", value_parser = parse_jitter)]
    pub jitter: Duration,
    #[command(flatten)]
    /// The sync's flags.
    pub sync: SyncArgs,
}

fn parse_cron(s: &str) -> Result<Box<croner::Cron>, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(s)
        .map(Box::new)
        .map_err(|e| format!("{s:?} is not a cron expression ({e}); give five fields, e.g. \"5 * * * *\" (5 past each hour, UTC)"))
}

fn parse_every(s: &str) -> Result<Duration, String> {
    match bounded(s, Duration::from_secs(86_400), "1d", "a schedule longer than a day is a cron job's")? {
        d if d.is_zero() => Err(format!("{s}: the interval must be at least 1s")),
        d => Ok(d),
    }
}

fn parse_jitter(s: &str) -> Result<Duration, String> {
    bounded(s, Duration::from_secs(86_400), "1d", "the jitter must stay below --every")
}

/// Flags of `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// A last successful run older than this is stale (e.g. 90m, 3h, 1d).
    #[arg(long, env = "SCANSYNC_MAX_AGE", default_value = "3h", value_parser = parse_max_age)]
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
    /// The export (required with --source export): a directory, or where AWS wrote it,
    /// s3://bucket/prefix/ (streamed, never copied; every manifest under the prefix is read).
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
#[derive(Debug, Clone, Args)]
pub struct CheckpointArgs {
    /// Checkpoint store.
    #[arg(long, env = "SCANSYNC_CHECKPOINT", value_enum, default_value_t = CheckpointKind::Postgres)]
    pub checkpoint: CheckpointKind,
    /// SSM parameter name (required with --checkpoint ssm), e.g. /scansync/checkpoint.
    #[arg(long, env = "SCANSYNC_SSM_PARAMETER")]
    pub ssm_parameter: Option<String>,
}

impl Default for CheckpointArgs {
    /// The checkpoints table of the canonical schema.
    fn default() -> Self {
        Self { checkpoint: CheckpointKind::Postgres, ssm_parameter: None }
    }
}

/// Window flags.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// Subtracted from the checkpoint: covers index propagation lag and writer clock skew
    /// (at most 7d; history is loaded with backfill).
    #[arg(long, env = "SCANSYNC_LOOKBACK", default_value = "15m", value_parser = parse_lookback)]
    pub lookback: Duration,
    /// Extra UTC day partitions scanned before the window's first day (0 to 31).
    #[arg(long, env = "SCANSYNC_OVERLAP_DAYS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=31))]
    pub overlap_days: u32,
    /// How far back the first run reaches when there is no checkpoint yet (at most 3650d).
    #[arg(long, env = "SCANSYNC_FIRST_RUN_WINDOW", default_value = "24h", value_parser = parse_first_run_window)]
    pub first_run_window: Duration,
    /// How far below the window the index is read so that updatedAt stamps written at a
    /// negative UTC offset (which sort below the same instant in UTC) are found. The
    /// default, 12h, is the largest negative offset in use and never misses a record. Set
    /// 0 when every writer stamps UTC (Z or +00:00): each run then reads only what changed.
    /// Every run reports the offsets it saw and warns when one exceeds the margin.
    #[arg(long, env = "SCANSYNC_OFFSET_MARGIN", default_value = "12h", value_parser = parse_offset_margin)]
    pub offset_margin: Duration,
    /// The most updatedAt time one run covers (e.g. 6h; 1m to 30d). A run further behind
    /// (after a pause, a backlog of days) syncs its lower bound plus this much, moves the
    /// checkpoint there and says how far behind it still is: each run commits durable
    /// progress within a Lambda's or a CronJob's time limit. Default: no bound.
    #[arg(long, env = "SCANSYNC_MAX_WINDOW", value_parser = parse_max_window)]
    pub max_window: Option<Duration>,
}

impl WindowArgs {
    /// The window settings; a bounded window must be longer than the lookback, or a run
    /// makes no progress.
    pub fn config(&self) -> crate::Result<crate::window::WindowConfig> {
        if let Some(m) = self.max_window.filter(|m| *m <= self.lookback) {
            return Err(crate::Error::config(format!(
                "--max-window {}s is not longer than --lookback {}s: a run would make no progress; make the window longer than the lookback",
                m.as_secs(),
                self.lookback.as_secs()
            )));
        }
        Ok(crate::window::WindowConfig {
            lookback: self.lookback,
            overlap_days: self.overlap_days,
            first_run_window: self.first_run_window,
            offset_margin: self.offset_margin,
            max_window: self.max_window,
        })
    }
}

/// Tuning flags.
#[derive(Debug, Clone, Args)]
pub struct TuningArgs {
    /// Key slices (DynamoDB queries) or export files fetched in parallel.
    #[arg(long, env = "SCANSYNC_FETCHERS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub fetchers: u16,
    /// Contiguous updatedAt slices each DynamoDB day partition is cut into and read
    /// concurrently (default: --fetchers), so an hourly window in one partition keeps every
    /// fetcher busy. Coverage is exact: no key is read by two slices or by none.
    #[arg(long, env = "SCANSYNC_SLICES", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub slices: Option<u16>,
    /// Records per page (DynamoDB query Limit; export lines per page). One page is one
    /// transaction.
    #[arg(long, env = "SCANSYNC_PAGE_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub page_size: u32,
    /// Page writers, each with its own PostgreSQL connection.
    #[arg(long, env = "SCANSYNC_WRITERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: u16,
    /// A page (of an export file) in which more than this percentage of the lines are not
    /// DynamoDB JSON items is a broken input: the run fails and says which file, instead of
    /// quarantining it line by line. 100 turns the check off.
    #[arg(long, env = "SCANSYNC_MAX_UNREADABLE_PERCENT", default_value_t = crate::run::DEFAULT_MAX_UNREADABLE_PERCENT, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub max_unreadable_percent: u8,
    /// How long a page (and the run's bookkeeping) is retried through transient failures
    /// before the run fails: of PostgreSQL (connection lost, restart, failover, deadlock,
    /// serialization) and of DynamoDB queries (throttling, 5xx, timeouts, connection
    /// failures, beyond the SDK's own 5 attempts). The default covers a managed database's
    /// failover (60-120 s).
    #[arg(long, env = "SCANSYNC_RETRY_BUDGET", default_value = "180s", value_parser = parse_retry_budget)]
    pub retry_budget: Duration,
}

fn parse_max_window(s: &str) -> Result<Duration, String> {
    match bounded(
        s,
        Duration::from_secs(30 * 86_400),
        "30d",
        "history beyond that is loaded with `scansync backfill`",
    )? {
        d if d < Duration::from_secs(60) => Err(format!("{s}: the window must be at least 1m")),
        d => Ok(d),
    }
}

fn parse_shutdown_timeout(s: &str) -> Result<Duration, String> {
    match bounded(s, Duration::from_secs(600), "10m", "a stop must be bounded; use 1s to 10m")? {
        d if d.is_zero() => Err(format!("{s}: the timeout must be at least 1s")),
        d => Ok(d),
    }
}

fn parse_progress_every(s: &str) -> Result<Duration, String> {
    match bounded(s, Duration::from_secs(3600), "1h", "progress lines are for people; use 1s to 1h")? {
        d if d.is_zero() => Err(format!("{s}: the interval must be at least 1s")),
        d => Ok(d),
    }
}

/// Parses a duration flag: a number with a unit `s`, `m`, `h` or `d` (`15m`, `24h`, `90s`),
/// at most 100 years; never panics, whatever the input.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write a number and a unit, e.g. 15m, 3h, 1d"))?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m, h or d (e.g. 15m)")),
    };
    match n.checked_mul(per) {
        Some(secs) if secs <= 36_500 * 86_400 => Ok(Duration::from_secs(secs)),
        _ => Err(format!("{s:?} {TOO_LONG}")),
    }
}

fn bounded(s: &str, max: Duration, max_text: &str, why: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d <= max => Ok(d),
        Ok(_) => Err(format!("{s} is more than {max_text}: {why}")),
        Err(e) if e.ends_with(TOO_LONG) => Err(format!("{s} is more than {max_text}: {why}")),
        Err(e) => Err(e),
    }
}

const TOO_LONG: &str = "is too long: at most 36500d";

fn parse_lookback(s: &str) -> Result<Duration, String> {
    bounded(s, Duration::from_secs(7 * 86_400), "7d", "load older history with `scansync backfill`")
}

fn parse_first_run_window(s: &str) -> Result<Duration, String> {
    bounded(s, Duration::from_secs(3650 * 86_400), "3650d", "load older history with `scansync backfill`")
}

fn parse_offset_margin(s: &str) -> Result<Duration, String> {
    bounded(
        s,
        Duration::from_secs(24 * 3600),
        "24h",
        "no UTC offset is more than 12h west (use 12h to be safe)",
    )
}

fn parse_retry_budget(s: &str) -> Result<Duration, String> {
    bounded(
        s,
        Duration::from_secs(86_400),
        "1d",
        "a run that cannot reach its database for a day should fail and alert",
    )
}

fn parse_max_age(s: &str) -> Result<Duration, String> {
    bounded(s, Duration::from_secs(365 * 86_400), "365d", "a freshness threshold is hours, rarely days")
}

fn parse_day(s: &str) -> Result<Day, String> {
    Day::parse(s).ok_or_else(|| format!("{s:?} is not a date: write YYYY-MM-DD (a UTC day), e.g. 2026-01-31"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_parse_with_units_and_refuse_garbage() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("99999999999999999d").unwrap_err().contains("too long"));
    }

    #[test]
    fn out_of_range_windows_are_refused_with_what_to_do() {
        assert!(parse_lookback("1000000000d").unwrap_err().contains("backfill"));
        assert!(parse_offset_margin("25h").is_err());
        assert_eq!(parse_offset_margin("0s"), Ok(Duration::ZERO));
        for args in [
            vec!["scansync", "health", "--max-age", "99999999999999999d"],
            vec!["scansync", "sync", "--overlap-days", "4000000000"],
            vec!["scansync", "sync", "--lookback", "1000000000d"],
            vec!["scansync", "sync", "--slices", "0"],
        ] {
            let e = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{args:?}: {e}");
        }
    }

    const DURATION_FLAGS: &[(&str, &str)] = &[
        ("health", "--max-age"),
        ("sync", "--lookback"),
        ("sync", "--first-run-window"),
        ("sync", "--offset-margin"),
        ("sync", "--overlap-days"),
        ("sync", "--fetchers"),
        ("sync", "--slices"),
        ("sync", "--page-size"),
        ("sync", "--writers"),
        ("sync", "--max-unreadable-percent"),
        ("sync", "--retry-budget"),
        ("backfill", "--from"),
    ];

    proptest! {
        #[test]
        fn no_flag_value_panics(value in "\\PC{0,30}|[0-9]{1,40}[smhd]?", flag in 0..DURATION_FLAGS.len()) {
            let (cmd, name) = DURATION_FLAGS[flag];
            let _ = Cli::try_parse_from(["scansync", cmd, name, value.as_str()]);
            let _ = parse_duration(&value);
        }
    }
}
