//! The command line: every flag has an environment variable (docs/flags.md lists the few
//! that do not, and why), `--help` explains each, and every value is checked before
//! anything is done: a mistake exits 2 with what to type instead.
//!
//! This is the top layer: it fills the plain configuration of [`crate::config`] that every
//! layer below takes; nothing below it sees clap.

pub mod args;
pub mod values;

use crate::config::{
    BackfillConfig, BulkMode, Choice, LogFormat, MetricsConfig, ProgressMode, SyncConfig, Target,
    VerifyConfig, VerifyDays,
};
use crate::error::{Error, Result};
use crate::follow::FollowTuning;
use crate::time::Day;
pub use args::{CheckpointArgs, MetricsArgs, SourceArgs, SourceKind, TuningArgs, WindowArgs};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use values::{choice, Span};

/// The default database: the local PostgreSQL with trust auth.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The default `--shutdown-timeout`: 30 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
        Exit status of sync/backfill/demo: 0 success, 1 failure, 2 a flag or setting to \
        correct (nothing was done), 75 another run holds the lock, 143/130 stopped by \
        SIGTERM/SIGINT."
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
    #[arg(long, env = "SCANSYNC_LOG_FORMAT", value_parser = choice::<LogFormat>(), default_value = LogFormat::default().name(), global = true)]
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
    #[arg(long, env = "SCANSYNC_SHUTDOWN_TIMEOUT", default_value_t = Span(DEFAULT_SHUTDOWN_TIMEOUT), global = true, value_parser = values::shutdown_timeout)]
    pub shutdown_timeout: Span,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Reads the database URL from `--database-url-file` when given, then registers the
    /// password so that no message or log line can print it.
    pub fn resolve_database_url(&mut self) -> std::result::Result<(), String> {
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

    /// Reads the database URL from `--database-url-parameter` when given (an SSM call, so
    /// on the runtime), then registers the password so that nothing can print it.
    pub async fn fetch_database_url(&mut self) -> Result<()> {
        if let Some(name) = &self.database_url_parameter {
            self.database_url = crate::checkpoint::ssm::read_secret(name)
                .await
                .map_err(|e| e.context("reading --database-url-parameter"))?;
            crate::db::register_secrets(&self.database_url);
        }
        Ok(())
    }

    /// The store every subcommand works on, its schema name and its TLS settings checked
    /// (a mode that verifies the server needs a root certificate that can be read).
    pub fn target(&self) -> Result<Target> {
        crate::schema::quoted_schema(&self.schema)?;
        let (_, tls) = crate::tls::split(&self.database_url)?;
        crate::tls::connector(&tls)?;
        Ok(Target { url: self.database_url.clone(), schema: self.schema.clone() })
    }
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
    /// Report freshness: exit 0 healthy, 1 stale or never ran, 2 last run failed (or the
    /// last recorded verify left divergent keys).
    Health(HealthArgs),
    /// Run the incremental sync on a schedule in one long-running process (a Kubernetes
    /// Deployment, a systemd service), with Prometheus /metrics, /healthz and /livez.
    Serve(ServeArgs),
    /// Follow the table's DynamoDB stream: every write in the store within seconds, whatever
    /// its writer stamped, removals included (docs/follow.md). One follower per table.
    Follow(FollowArgs),
    /// Compare the store with the source, day by day and key by key: exit 0 when it holds
    /// what the source holds, 1 when keys are missing, stale or diverged (listed); with
    /// --repair, write the source's newest records of those keys (docs/verify.md).
    Verify(VerifyArgs),
    /// Sync a bundled sample of dirty records into a demo schema, twice, then run health;
    /// with --records N, sync N generated dirty records instead, with a progress bar.
    Demo(DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell), generated
    /// from these flags: e.g. `scansync completions bash > /etc/bash_completion.d/scansync`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), generated from these flags: `scansync man | man -l -`.
    Man,
}

/// Flags of `sync`.
#[derive(Debug, Clone, Args)]
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
    /// Print what the run would read (the window, the partitions, the key ranges, and how
    /// many index items or export records they hold) and exit; nothing is written, no lock
    /// is taken. Counting DynamoDB items costs the read capacity of reading them.
    #[arg(long, env = "SCANSYNC_PLAN")]
    pub plan: bool,
}

impl SyncArgs {
    /// The sync these flags describe, checked.
    pub fn config(&self) -> Result<SyncConfig> {
        Ok(SyncConfig {
            source: self.source.config()?,
            checkpoint: self.checkpoint.config()?,
            window: self.window.config()?,
            tuning: self.tuning.config(),
            metrics: self.metrics.config(),
        })
    }
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
    #[arg(long, env = "SCANSYNC_BACKFILL_FROM", value_parser = values::day, requires = "to")]
    pub from: Option<Day>,
    /// Last UTC day partition (YYYY-MM-DD), inclusive.
    #[arg(long, env = "SCANSYNC_BACKFILL_TO", value_parser = values::day, requires = "from")]
    pub to: Option<Day>,
    /// Start the job afresh: every unit pending again, the done ones too. Refused while a
    /// worker of the job runs. Without it, the same command resumes the job.
    #[arg(long, env = "SCANSYNC_BACKFILL_RESTART")]
    pub restart: bool,
    /// Progress: a bar on a terminal and log lines otherwise (auto); or only the bar (drawn
    /// only on a terminal), only log lines, or off.
    #[arg(long, env = "SCANSYNC_PROGRESS", value_parser = choice::<ProgressMode>(), default_value = ProgressMode::default().name())]
    pub progress: ProgressMode,
    /// Interval of the progress log lines (1s to 1h).
    #[arg(long, env = "SCANSYNC_PROGRESS_EVERY", default_value_t = Span(BackfillConfig::DEFAULT_PROGRESS_EVERY), value_parser = values::progress_every)]
    pub progress_every: Span,
    /// Load without per-row foreign-key checks and validate them once at the end, and build
    /// the index of edges by tag once at the end (about twice as fast a first load; see
    /// docs/backfill.md). auto: when the store's content is empty, or the export holds at
    /// least twice as many records as the store.
    #[arg(long, env = "SCANSYNC_BULK", value_parser = choice::<BulkMode>(), default_value = BulkMode::default().name())]
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

impl BackfillArgs {
    /// The backfill these flags describe, checked.
    pub fn config(&self) -> Result<BackfillConfig> {
        let source = self.source.config()?;
        let days = match (self.from, self.to) {
            (Some(from), Some(to)) if from > to => {
                return Err(Error::config(format!("--from {from} is after --to {to}: swap them")))
            }
            (Some(from), Some(to)) => Some((from, to)),
            _ => None,
        };
        if matches!(source, crate::config::SourceConfig::Dynamodb { .. }) && days.is_none() {
            return Err(Error::config(
                "backfill --source dynamodb needs --from and --to (YYYY-MM-DD): the day partitions to read",
            ));
        }
        Ok(BackfillConfig {
            source,
            days,
            restart: self.restart,
            progress: self.progress,
            progress_every: self.progress_every.0,
            bulk: self.bulk,
            tuning: self.tuning.config(),
            metrics: self.metrics.config(),
        })
    }
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
    #[arg(long, env = "SCANSYNC_BACKFILL_STATUS_JSON")]
    pub json: bool,
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Start a sync this often (e.g. 1h, 15m; 1s to 1d). A run that overruns its slot is
    /// followed at once by the next; missed ticks collapse into that one run.
    #[arg(long, env = "SCANSYNC_EVERY", default_value_t = Span(crate::serve::DEFAULT_EVERY), value_parser = values::every)]
    pub every: Span,
    /// Start a sync at the times of this cron expression instead of --every, in UTC: five
    /// fields (minute hour day-of-month month day-of-week, e.g. "5 * * * *" at 5 past each
    /// hour) or six with seconds first. Overruns and missed times behave as with --every.
    #[arg(long, env = "SCANSYNC_CRON", conflicts_with = "every", value_parser = values::cron)]
    pub cron: Option<Box<croner::Cron>>,
    /// A random delay added to each start, up to this (0s to --every), so many instances do
    /// not start together.
    #[arg(long, env = "SCANSYNC_JITTER", default_value_t = Span(std::time::Duration::ZERO), value_parser = values::jitter)]
    pub jitter: Span,
    /// Also verify the last --verify-days days this often (e.g. 24h; 1m to 30d), beside
    /// the syncs, counted from the last recorded verify; each is recorded in sync_runs, so
    /// health and /metrics report what it found (docs/verify.md). Default: no verify.
    #[arg(long, env = "SCANSYNC_VERIFY_EVERY", value_parser = values::verify_every)]
    pub verify_every: Option<Span>,
    /// The days each scheduled verify compares: the last N UTC days, today included.
    #[arg(long, env = "SCANSYNC_VERIFY_DAYS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=3650), requires = "verify_every")]
    pub verify_days: u32,
    /// Repair what a scheduled verify finds (verify --repair).
    #[arg(long, env = "SCANSYNC_VERIFY_REPAIR", requires = "verify_every")]
    pub verify_repair: bool,
    #[command(flatten)]
    /// The sync's flags.
    pub sync: SyncArgs,
}

impl ServeArgs {
    /// The schedule and the sync these flags describe, checked.
    pub fn config(&self) -> Result<crate::serve::ServeConfig> {
        if self.jitter >= self.every && self.cron.is_none() {
            return Err(Error::config(format!(
                "--jitter {} must be shorter than --every {}",
                self.jitter, self.every
            )));
        }
        if self.sync.plan {
            return Err(Error::config("--plan is for one sync: run `scansync sync --plan`"));
        }
        let schedule = match &self.cron {
            Some(c) => crate::serve::Schedule::Cron(c.clone()),
            None => crate::serve::Schedule::Every(self.every.0),
        };
        let sync = self.sync.config()?;
        let verify = self.verify_every.map(|every| crate::serve::ScheduledVerify {
            every: every.0,
            verify: VerifyConfig {
                source: sync.source.clone(),
                days: VerifyDays::Last(self.verify_days),
                repair: self.verify_repair,
                record: true,
                keys: VerifyConfig::DEFAULT_KEYS,
                tuning: sync.tuning,
            },
        });
        Ok(crate::serve::ServeConfig { schedule, jitter: self.jitter.0, sync, verify })
    }
}

/// Flags of `follow`.
#[derive(Debug, Args)]
pub struct FollowArgs {
    /// The DynamoDB table whose stream is followed (its view type NEW_AND_OLD_IMAGES, or
    /// NEW_IMAGE, whose removals cannot be applied).
    #[arg(long, env = "SCANSYNC_TABLE")]
    pub table: Option<String>,
    /// The table's date-partition GSI: gaps the stream cannot give (a trimmed shard, a
    /// follower down for more than 24 h, the hand-off from the index path) are healed by an
    /// index-path sync of exactly their range.
    #[arg(long, env = "SCANSYNC_INDEX", default_value = crate::config::DEFAULT_INDEX)]
    pub index: String,
    /// The wait after a read that found nothing new, doubled while reads stay empty up to
    /// --max-poll (10ms to 10s).
    #[arg(long, env = "SCANSYNC_POLL", default_value_t = Span(FollowTuning::default().poll), value_parser = values::poll)]
    pub poll: Span,
    /// The longest wait between two reads of an idle shard (10ms to 1m).
    #[arg(long, env = "SCANSYNC_MAX_POLL", default_value_t = Span(FollowTuning::default().max_poll), value_parser = values::max_poll)]
    pub max_poll: Span,
    /// How often the stream's shards are listed (new shards, closed ones; 1s to 10m).
    #[arg(long, env = "SCANSYNC_DISCOVER_EVERY", default_value_t = Span(FollowTuning::default().discover_every), value_parser = values::discover_every)]
    pub discover_every: Span,
    /// Subtracted from a gap's start when it is healed through the index (at most 7d).
    #[arg(long, env = "SCANSYNC_LOOKBACK", default_value_t = Span(crate::config::WindowConfig::DEFAULT.lookback), value_parser = values::lookback)]
    pub lookback: Span,
    /// How far below a gap's range the index is read (see `sync --offset-margin`).
    #[arg(long, env = "SCANSYNC_OFFSET_MARGIN", default_value_t = Span(crate::config::WindowConfig::DEFAULT.offset_margin), value_parser = values::offset_margin)]
    pub offset_margin: Span,
    #[command(flatten)]
    /// Where the index path's checkpoint lives (for the hand-off gap).
    pub checkpoint: CheckpointArgs,
    #[command(flatten)]
    /// Writers, retries, TTL expiries (--page-size is GetRecords' Limit, at most 1000).
    pub tuning: TuningArgs,
    #[command(flatten)]
    /// Prometheus metrics and health over HTTP.
    pub metrics: MetricsArgs,
}

impl FollowArgs {
    /// The follower these flags describe, checked.
    pub fn config(&self) -> Result<crate::follow::FollowConfig> {
        let table = self.table.clone().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            Error::config("follow needs --table NAME (or SCANSYNC_TABLE): the table whose stream is followed")
        })?;
        if self.max_poll < self.poll {
            return Err(Error::config(format!(
                "--max-poll {} is shorter than --poll {}: make it at least as long",
                self.max_poll, self.poll
            )));
        }
        let tuning = self.tuning.config();
        let follow = FollowTuning {
            poll: self.poll.0,
            max_poll: self.max_poll.0,
            limit: tuning.page_size.min(1000) as i32,
            discover_every: self.discover_every.0,
            retry_budget: tuning.retry_budget,
            ttl_removals: tuning.ttl_removals == crate::config::TtlRemovals::Tombstone,
        };
        let window = crate::config::WindowConfig {
            lookback: self.lookback.0,
            offset_margin: self.offset_margin.0,
            ..crate::config::WindowConfig::DEFAULT
        };
        Ok(crate::follow::FollowConfig {
            table,
            index: self.index.clone(),
            window,
            checkpoint: self.checkpoint.config()?,
            tuning,
            follow,
            metrics: self.metrics.config(),
        })
    }
}

/// Flags of `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// A last successful run older than this is stale (e.g. 90m, 3h, 1d).
    #[arg(long, env = "SCANSYNC_MAX_AGE", default_value_t = Span(MetricsConfig::DEFAULT_MAX_AGE), value_parser = values::max_age)]
    pub max_age: Span,
    /// A stream follower further behind than this (or whose heartbeat is older than a
    /// minute) is stale; one that is alive and caught up keeps the store fresh whatever the
    /// syncs do.
    #[arg(long, env = "SCANSYNC_MAX_LAG", default_value_t = Span(MetricsConfig::DEFAULT_MAX_LAG), value_parser = values::max_age)]
    pub max_lag: Span,
    /// Print JSON for machines instead of text.
    #[arg(long, env = "SCANSYNC_HEALTH_JSON")]
    pub json: bool,
    #[command(flatten)]
    /// Where the checkpoint lives.
    pub checkpoint: CheckpointArgs,
}

/// Flags of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// First UTC day partition compared (YYYY-MM-DD), inclusive. Required with --source
    /// dynamodb (or --days); with an export, only records of these days are compared
    /// (default: all).
    #[arg(long, env = "SCANSYNC_VERIFY_FROM", value_parser = values::day, requires = "to", conflicts_with = "days")]
    pub from: Option<Day>,
    /// Last UTC day partition compared (YYYY-MM-DD), inclusive.
    #[arg(long, env = "SCANSYNC_VERIFY_TO", value_parser = values::day, requires = "from")]
    pub to: Option<Day>,
    /// Compare the last N UTC days, today included, instead of --from/--to (1 to 3650).
    #[arg(long, env = "SCANSYNC_VERIFY_DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: Option<u32>,
    /// Write the newest records of the missing, stale and diverged keys through the normal
    /// writer (same merge rules: never a version older than the store's), then compare them
    /// again: exit 0 when every one was repaired. Recorded in sync_runs as kind verify.
    #[arg(long, env = "SCANSYNC_VERIFY_REPAIR")]
    pub repair: bool,
    /// Record the result in sync_runs (kind verify), so that health and /metrics see it.
    /// Without it (and without --repair) verify writes nothing at all.
    #[arg(long, env = "SCANSYNC_VERIFY_RECORD")]
    pub record: bool,
    /// How many keys of each divergent kind are listed (0 to 10000).
    #[arg(long, env = "SCANSYNC_VERIFY_KEYS", default_value_t = VerifyConfig::DEFAULT_KEYS as u32, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub keys: u32,
    /// Print JSON for machines instead of text.
    #[arg(long, env = "SCANSYNC_VERIFY_JSON")]
    pub json: bool,
    #[command(flatten)]
    /// Where records come from.
    pub source: SourceArgs,
    #[command(flatten)]
    /// Parallelism and page size.
    pub tuning: TuningArgs,
}

impl VerifyArgs {
    /// The verify these flags describe, checked.
    pub fn config(&self) -> Result<VerifyConfig> {
        let source = self.source.config()?;
        let days = match (self.from, self.to, self.days) {
            (Some(from), Some(to), _) if from > to => {
                return Err(Error::config(format!("--from {from} is after --to {to}: swap them")))
            }
            (Some(from), Some(to), _) => VerifyDays::Range(from, to),
            (_, _, Some(n)) => VerifyDays::Last(n),
            _ => VerifyDays::All,
        };
        if matches!(source, crate::config::SourceConfig::Dynamodb { .. }) && days == VerifyDays::All {
            return Err(Error::config(
                "verify --source dynamodb needs --from and --to (YYYY-MM-DD), or --days N: the day partitions to compare",
            ));
        }
        Ok(VerifyConfig {
            source,
            days,
            repair: self.repair,
            record: self.record,
            keys: self.keys as usize,
            tuning: self.tuning.config(),
        })
    }
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

/// Flags of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests;
