//! `loadgen`: realistic, dirty scan records into DynamoDB or an export, the soak test and
//! the side-by-side throughput benchmark of scansync.

mod bench;
mod chaos;
mod cluster;
mod dynamo;
mod export;
mod follow_soak;
mod proxy;
mod slices;
mod soak;

use clap::{Parser, Subcommand, ValueEnum};
use loadgen::{Generator, Mix, Shape};
use scansync_parse::time::Timestamp;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Generates scan records and measures scansync.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Generate realistic, dirty scan records; soak-test and benchmark scansync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How the soak's writers stamp `updatedAt` (see [`loadgen::Stamps`]).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StampsArg {
    /// Four UTC forms and -05:00.
    Default,
    /// Every writer in UTC.
    Utc,
    /// UTC, space-separated and four offsets down to -12:00.
    Mixed,
}

impl From<StampsArg> for loadgen::Stamps {
    fn from(s: StampsArg) -> Self {
        match s {
            StampsArg::Default => loadgen::Stamps::Default,
            StampsArg::Utc => loadgen::Stamps::Utc,
            StampsArg::Mixed => loadgen::Stamps::Mixed,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a DynamoDB export (manifest-files.json + gzip JSON lines) of N records.
    Export {
        /// Output directory.
        #[arg(long, env = "LOADGEN_DIR")]
        dir: PathBuf,
        /// Records.
        #[arg(long, env = "LOADGEN_RECORDS", default_value_t = 100_000)]
        records: u64,
        /// Records per UTC day (the export spans records / per-day days).
        #[arg(long, env = "LOADGEN_PER_DAY", default_value_t = 100_000)]
        per_day: u64,
        /// First updatedAt (ISO 8601).
        #[arg(long, env = "LOADGEN_START", default_value = "2026-01-01T00:00:00Z")]
        start: String,
        /// Data files.
        #[arg(long, env = "LOADGEN_FILES", default_value_t = 4)]
        files: u64,
        /// Seed (same seed, same records).
        #[arg(long, env = "LOADGEN_SEED", default_value_t = 1)]
        seed: u64,
        /// Make every k-th record a newer version of itself (an hour later): with the same
        /// seed, the input of `bench`'s re-run (k = 10).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        bump_every: Option<u64>,
    },
    /// Write records into a DynamoDB table at a steady rate (AWS SDK standard settings,
    /// e.g. AWS_ENDPOINT_URL_DYNAMODB for dynalite).
    Dynamodb {
        /// Table.
        #[arg(long, env = "LOADGEN_TABLE")]
        table: String,
        /// GSI on (datePartition, updatedAt).
        #[arg(long, env = "LOADGEN_INDEX", default_value = "datePartition-updatedAt-index")]
        index: String,
        /// Create the table and its GSI if missing.
        #[arg(long)]
        create_table: bool,
        /// Records.
        #[arg(long, env = "LOADGEN_RECORDS", default_value_t = 10_000)]
        records: u64,
        /// Records per second.
        #[arg(long, env = "LOADGEN_RATE", default_value_t = 1000)]
        rate: u64,
        /// BatchWriteItem calls in flight.
        #[arg(long, env = "LOADGEN_CONCURRENCY", default_value_t = 4)]
        concurrency: usize,
        /// Seed.
        #[arg(long, env = "LOADGEN_SEED", default_value_t = 1)]
        seed: u64,
    },
    /// Write at --rate for --duration into DynamoDB while scansync syncs every --every;
    /// then reconcile every record against PostgreSQL and report freshness.
    Soak {
        /// Table (created).
        #[arg(long, env = "LOADGEN_TABLE", default_value = "soak_scans")]
        table: String,
        /// GSI.
        #[arg(long, env = "LOADGEN_INDEX", default_value = "datePartition-updatedAt-index")]
        index: String,
        /// Records per second.
        #[arg(long, env = "LOADGEN_RATE", default_value_t = 1000)]
        rate: u64,
        /// How long to write, in seconds.
        #[arg(long, env = "LOADGEN_DURATION", default_value_t = 600)]
        duration: u64,
        /// Sync interval, in seconds.
        #[arg(long, env = "LOADGEN_EVERY", default_value_t = 60)]
        every: u64,
        /// PostgreSQL.
        #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
        /// Target schema (dropped first).
        #[arg(long, env = "LOADGEN_SCHEMA", default_value = "soak")]
        schema: String,
        /// The scansync binary (default: next to this one).
        #[arg(long, env = "LOADGEN_SCANSYNC")]
        scansync: Option<PathBuf>,
        /// BatchWriteItem calls in flight.
        #[arg(long, env = "LOADGEN_CONCURRENCY", default_value_t = 4)]
        concurrency: usize,
        /// Seed.
        #[arg(long, env = "LOADGEN_SEED", default_value_t = 1)]
        seed: u64,
        /// How the writers stamp updatedAt: default (four UTC forms and -05:00), utc (every
        /// writer in UTC: run with --offset-margin 0), mixed (UTC, space-separated, -05:00,
        /// -08:00, -12:00, +05:30).
        #[arg(long, env = "LOADGEN_STAMPS", value_enum, default_value_t = StampsArg::Default)]
        stamps: StampsArg,
        /// Extra flags for every scansync sync, after `--` (e.g. -- --offset-margin 0).
        #[arg(last = true)]
        sync_flags: Vec<String>,
    },
    /// Write at --rate for --duration into a DynamoDB table with a stream (AWS's DynamoDB
    /// Local: AWS_ENDPOINT_URL_DYNAMODB) while `scansync follow` applies it; measure from the
    /// outside when each write becomes visible in PostgreSQL, kill -9 the follower --kills
    /// times and measure its catch-up, drain a --backlog written before it starts, then
    /// `scansync verify` the soak's days.
    FollowSoak {
        /// Table (created, with a stream).
        #[arg(long, env = "LOADGEN_TABLE", default_value = "follow_soak_scans")]
        table: String,
        /// GSI.
        #[arg(long, env = "LOADGEN_INDEX", default_value = "datePartition-updatedAt-index")]
        index: String,
        /// Records per second.
        #[arg(long, env = "LOADGEN_RATE", default_value_t = 500)]
        rate: u64,
        /// How long to write, in seconds.
        #[arg(long, env = "LOADGEN_DURATION", default_value_t = 600)]
        duration: u64,
        /// kill -9s of the follower at random moments.
        #[arg(long, default_value_t = 0)]
        kills: u32,
        /// Records written before the follower starts.
        #[arg(long, default_value_t = 0)]
        backlog: u64,
        /// PostgreSQL.
        #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
        /// Target schema (dropped first).
        #[arg(long, env = "LOADGEN_SCHEMA", default_value = "follow_soak")]
        schema: String,
        /// The scansync binary (default: next to this one).
        #[arg(long, env = "LOADGEN_SCANSYNC")]
        scansync: Option<PathBuf>,
        /// BatchWriteItem calls in flight.
        #[arg(long, env = "LOADGEN_CONCURRENCY", default_value_t = 4)]
        concurrency: usize,
        /// Seed.
        #[arg(long, env = "LOADGEN_SEED", default_value_t = 1)]
        seed: u64,
    },
    /// The fault suite: --trials real scansync runs against a throwaway PostgreSQL cluster
    /// and dynalite, one fault per trial at a random moment (kill -9, PostgreSQL restarted or
    /// down, connections reset or terminated, deadlocks, DynamoDB throttling / 500s / stalls,
    /// the checkpoint write failing), recovery by running again, and every canonical table
    /// compared with one clean run of the same records. Exits 1 on any mismatch or broken
    /// invariant (with --expect-failure: exits 1 unless one is found).
    Chaos {
        /// Trials in all, spread over the fault kinds in turn.
        #[arg(long, default_value_t = 100)]
        trials: u32,
        /// Fault kinds (comma-separated; default: every kind).
        #[arg(long, value_delimiter = ',', value_enum)]
        faults: Vec<chaos::Fault>,
        /// Records in the data set.
        #[arg(long, default_value_t = 3000)]
        records: u64,
        /// Seed of the records and of the fault moments.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The scansync binary (default: next to this one).
        #[arg(long, env = "LOADGEN_SCANSYNC")]
        scansync: Option<PathBuf>,
        /// Where the throwaway PostgreSQL cluster lives.
        #[arg(long, default_value_os_t = std::env::temp_dir().join("scansync-chaos"))]
        work_dir: PathBuf,
        /// Run the faulted runs with a deliberately broken engine (the checkpoint written
        /// before the pages): the suite must then report mismatches.
        #[arg(long)]
        broken_engine: bool,
        /// Exit 0 only if a mismatch or broken invariant was found (with --broken-engine).
        #[arg(long)]
        expect_failure: bool,
        /// AWS's DynamoDB Local (streams), for the follower's faults (default:
        /// SCANSYNC_TEST_DDBLOCAL_URL, which scripts/with-servers sets).
        #[arg(long)]
        ddblocal: Option<String>,
    },
    /// Latency-bound reading: --items changed items in one partition, read by scansync
    /// through a proxy adding --latency-ms to every DynamoDB request, once per --slices
    /// value; prints each wall time, the speed-up over the first, and whether the tables of
    /// every run are identical.
    Slices {
        /// Changed items (all in the last hour, UTC stamps).
        #[arg(long, default_value_t = 200_000)]
        items: u64,
        /// Latency added to each request, in milliseconds.
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        /// Slice counts to compare, comma-separated (the first is the baseline).
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        slices: Vec<u16>,
        /// scansync --page-size (the DynamoDB query Limit).
        #[arg(long, default_value_t = 1000)]
        page_size: u32,
        /// Table (created).
        #[arg(long, env = "LOADGEN_TABLE", default_value = "slices_scans")]
        table: String,
        /// GSI.
        #[arg(long, env = "LOADGEN_INDEX", default_value = "datePartition-updatedAt-index")]
        index: String,
        /// PostgreSQL.
        #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
        /// The scansync binary (default: next to this one).
        #[arg(long, env = "LOADGEN_SCANSYNC")]
        scansync: Option<PathBuf>,
    },
    /// The side-by-side benchmark: raw COPY (ceiling), row-by-row writer (floor), scansync
    /// first load and re-run with 10 % updated, as rows/s and ratios to raw COPY.
    Bench {
        /// Records in the export.
        #[arg(long, env = "LOADGEN_RECORDS", default_value_t = 1_000_000)]
        records: u64,
        /// Records for the row-by-row writer (slow; its rate does not depend on size).
        #[arg(long, default_value_t = 20_000)]
        row_by_row_records: u64,
        /// PostgreSQL, without TLS: every path runs on the ceiling's plaintext transport
        /// (`sslmode=disable` is added; a URL asking for TLS is refused).
        #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres",
              value_parser = bench::plaintext)]
        database_url: String,
        /// The scansync binary (default: next to this one).
        #[arg(long, env = "LOADGEN_SCANSYNC")]
        scansync: Option<PathBuf>,
        /// Work directory for the exports.
        #[arg(long, default_value_os_t = std::env::temp_dir().join("scansync-bench"))]
        work_dir: PathBuf,
        /// scansync --writers.
        #[arg(long, default_value_t = 2)]
        writers: u32,
        /// scansync --page-size.
        #[arg(long, default_value_t = 2000)]
        page_size: u32,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Fail (exit 1) when scansync's first-load or re-run ratio to raw COPY is below the
        /// minimums in this file (lines `first_load_min_ratio = 0.05`, `rerun_min_ratio = …`).
        #[arg(long)]
        thresholds: Option<PathBuf>,
        /// Run the whole benchmark this many times and judge the median ratios (each run's
        /// ratios are to its own raw COPY).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
        repeat: u32,
        /// Also run the peers on the same export, side by side: dlt 1.31.0 and sling 1.4.11,
        /// each merging on the post's key, installed from PyPI into a virtualenv kept under
        /// --peers-venv.
        #[arg(long)]
        peers: bool,
        /// Where the peers' virtualenv is made (and reused).
        #[arg(long, default_value_os_t = std::env::temp_dir().join("scansync-bench-peers"))]
        peers_venv: PathBuf,
    },
}

fn sibling_scansync() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("scansync")))
        .unwrap_or_else(|| PathBuf::from("scansync"))
}

fn read_threshold(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .and_then(|(_, v)| v.trim().parse().ok())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Export { dir, records, per_day, start, files, seed, bump_every } => {
            let start = Timestamp::parse(&start)
                .ok_or_else(|| format!("--start {start:?} is not an ISO 8601 timestamp"))?;
            let t = Instant::now();
            let spec =
                export::ExportSpec { records, seed, start, per_day, files, mix: Mix::default(), bump_every };
            let s =
                export::write_export(&dir, &spec).map_err(|e| format!("writing {}: {e}", dir.display()))?;
            println!(
                "wrote {} records ({:.0} MB uncompressed) to {} in {:.1} s; updatedAt {} .. {}",
                s.records,
                s.bytes as f64 / 1e6,
                dir.display(),
                t.elapsed().as_secs_f64(),
                s.first,
                s.last
            );
        }
        Command::Dynamodb { table, index, create_table, records, rate, concurrency, seed } => {
            let client = dynamo::client().await?;
            if create_table {
                dynamo::create_table(&client, &table, &index).await?;
            }
            let mut g = Generator::new(seed, Mix::default(), Shape::default());
            let start = Instant::now();
            let mut written = 0u64;
            let mut retries = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while written < records {
                tick.tick().await;
                let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(records);
                let n = due.saturating_sub(written);
                if n == 0 {
                    continue;
                }
                let items = (0..n).map(|_| g.next_record(Timestamp::now()).item).collect();
                retries += dynamo::write_items(&client, &table, items, concurrency).await?;
                written += n;
            }
            let secs = start.elapsed().as_secs_f64();
            println!("wrote {written} records to {table} in {secs:.1} s: {:.0} records/s achieved (target {rate}), {retries} batches retried", written as f64 / secs);
        }
        Command::FollowSoak {
            table,
            index,
            rate,
            duration,
            kills,
            backlog,
            database_url,
            schema,
            scansync,
            concurrency,
            seed,
        } => {
            let spec = follow_soak::FollowSoakSpec {
                rate,
                duration: Duration::from_secs(duration),
                kills,
                backlog,
                table,
                index,
                database_url,
                schema,
                scansync: scansync.unwrap_or_else(sibling_scansync),
                concurrency,
                seed,
            };
            let r = follow_soak::run(&spec).await?;
            println!("follow soak: {duration} s at {rate}/s target, {kills} kill -9s");
            if let Some((n, secs)) = r.backlog {
                println!("  backlog: {n} records drained in {secs:.1} s ({:.0} records/s)", n as f64 / secs);
            }
            println!(
                "  written {} ({:.0}/s achieved); measured {}, superseded {}, missing {}",
                r.written, r.write_rate, r.measured, r.superseded, r.missing
            );
            println!(
                "  write acknowledged → visible in PostgreSQL (polled from outside): p50 {:.2} s, p99 {:.2} s, max {:.2} s",
                r.latency[0], r.latency[1], r.latency[2]
            );
            if !r.catch_up.is_empty() {
                let mut c = r.catch_up.clone();
                c.sort_by(f64::total_cmp);
                println!(
                    "  restart → caught up, {} kills: median {:.2} s, max {:.2} s",
                    c.len(),
                    c[c.len() / 2],
                    c[c.len() - 1]
                );
            }
            println!(
                "  follower: {:.2} cores of CPU on average, peak RSS {} MB",
                r.cpu_cores,
                r.peak_rss >> 20
            );
            println!("  verify: {} divergent", r.verify_divergent);
            if r.missing > 0 || r.verify_divergent > 0 || (r.catch_up.len() as u32) < kills {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Soak {
            table,
            index,
            rate,
            duration,
            every,
            database_url,
            schema,
            scansync,
            concurrency,
            seed,
            stamps,
            sync_flags,
        } => {
            let spec = soak::SoakSpec {
                stamps: stamps.into(),
                sync_flags,
                rate,
                duration: Duration::from_secs(duration),
                every: Duration::from_secs(every),
                table,
                index,
                database_url,
                schema,
                scansync: scansync.unwrap_or_else(sibling_scansync),
                concurrency,
                seed,
            };
            let r = soak::run(&spec).await?;
            println!("soak: {} s at {rate}/s target, sync every {every} s", duration);
            println!(
                "  written {} ({:.0}/s achieved), rejects {} (quarantined by design)",
                r.written, r.write_rate, r.rejects
            );
            println!(
                "  content keys landed {}, missing {} (engine), not in the index {} (source artefact), superseded versions {}, syncs {}",
                r.landed, r.missing, r.source_artefacts, r.superseded, r.syncs
            );
            println!(
                "  freshness lag: p50 {:.1} s, p95 {:.1} s, p99 {:.1} s, max {:.1} s",
                r.lag[0], r.lag[1], r.lag[2], r.lag[3]
            );
            println!("  verify: {} divergent", r.verify_divergent);
            let [first, median, last] = r.durations();
            println!(
                "  sync wall time: first {first:.1} s, median {median:.1} s, last {last:.1} s (last/median {:.2})",
                last / median
            );
            let items: Vec<i64> = r.runs.iter().map(|x| x.index_items).collect();
            let amp = r.amplifications();
            if !amp.is_empty() {
                println!(
                    "  index items per run: median {}, max {}; read amplification: median {:.2}, max {:.2}",
                    {
                        let mut i = items.clone();
                        i.sort_unstable();
                        i[i.len() / 2]
                    },
                    items.iter().max().copied().unwrap_or(0),
                    amp[amp.len() / 2],
                    amp[amp.len() - 1]
                );
            }
            if r.missing > 0 || r.verify_divergent > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Chaos {
            trials,
            faults,
            records,
            seed,
            scansync,
            work_dir,
            broken_engine,
            expect_failure,
            ddblocal,
        } => {
            let dynamodb = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").map_err(|_| {
                "set AWS_ENDPOINT_URL_DYNAMODB to the DynamoDB endpoint (dynalite)".to_string()
            })?;
            let faults = if faults.is_empty() {
                <chaos::Fault as clap::ValueEnum>::value_variants().to_vec()
            } else {
                faults
            };
            let spec = chaos::ChaosSpec {
                trials,
                faults,
                records,
                seed,
                scansync: scansync.unwrap_or_else(sibling_scansync),
                work_dir,
                dynamodb,
                ddblocal: ddblocal.or_else(|| std::env::var("SCANSYNC_TEST_DDBLOCAL_URL").ok()),
                faulted_env: if broken_engine {
                    vec![("SCANSYNC_TEST_BREAK".into(), "checkpoint-first".into())]
                } else {
                    Vec::new()
                },
            };
            let report = chaos::run(&spec).await?;
            println!(
                "chaos: {trials} trials, {records} records, seed {seed}{}",
                if broken_engine { ", BROKEN ENGINE" } else { "" }
            );
            println!(
                "  {:<21} {:>6} {:>10} {:>13} {:>10} {:>9} {:>10}",
                "fault", "trials", "recoveries", "rows compared", "mismatches", "divergent", "violations"
            );
            let (mut bad, mut total) = (0u64, 0u64);
            for (fault, r) in &report {
                let name = format!("{fault:?}");
                println!(
                    "  {name:<21} {:>6} {:>10} {:>13} {:>10} {:>9} {:>10}",
                    r.trials,
                    r.recoveries,
                    r.rows_compared,
                    r.mismatches,
                    r.divergent,
                    r.violations.len()
                );
                bad += u64::from(r.mismatches) + r.violations.len() as u64;
                total += u64::from(r.trials);
                for v in r.violations.iter().take(5) {
                    println!("    violation: {v}");
                }
            }
            let divergent: u64 = report.values().map(|r| r.divergent).sum();
            println!("  all: {total} trials, {bad} mismatches or violations; verify: {divergent} divergent");
            if (bad > 0) != expect_failure {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Slices { items, latency_ms, slices, page_size, table, index, database_url, scansync } => {
            let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").map_err(|_| {
                "set AWS_ENDPOINT_URL_DYNAMODB to the DynamoDB endpoint (dynalite)".to_string()
            })?;
            let spec = slices::SlicesSpec {
                items,
                delay: Duration::from_millis(latency_ms),
                slices,
                page_size,
                table,
                index,
                database_url,
                scansync: scansync.unwrap_or_else(sibling_scansync),
                upstream,
            };
            let runs = slices::run(&spec).await?;
            println!("slices: {items} changed items in one partition, {latency_ms} ms added per request, pages of {page_size}");
            let (base, replay_base) = (runs[0].seconds, runs[0].replay_seconds);
            for r in &runs {
                println!(
                    "  {} slices: first load {:.1} s ({:.0} records/s, {:.2}x the first count); replay {:.1} s ({:.0} records/s, {:.2}x)",
                    r.slices,
                    r.seconds,
                    r.read as f64 / r.seconds,
                    base / r.seconds,
                    r.replay_seconds,
                    r.read as f64 / r.replay_seconds,
                    replay_base / r.replay_seconds
                );
            }
            let same = runs.windows(2).all(|w| w[0].fingerprint == w[1].fingerprint);
            println!("  tables identical across runs: {same}");
            if !same {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Bench {
            records,
            row_by_row_records,
            database_url,
            scansync,
            work_dir,
            writers,
            page_size,
            seed,
            thresholds,
            repeat,
            peers,
            peers_venv,
        } => {
            let spec = bench::BenchSpec {
                records,
                row_by_row_records,
                database_url,
                scansync: scansync.unwrap_or_else(sibling_scansync),
                work_dir,
                seed,
                writers,
                page_size,
                peers: peers.then_some(peers_venv),
            };
            let mut runs = Vec::new();
            for i in 0..repeat {
                use bench::names::*;
                let figures = bench::run(&spec).await?;
                let get = |name: &str| bench::get(&figures, name);
                let ceiling = get(COPY).rate();
                if repeat > 1 {
                    println!("run {} of {repeat}:", i + 1);
                }
                println!("{:<62} {:>12} {:>10} {:>10}", "path", "rows/s", "vs COPY", "peak RSS");
                for f in &figures {
                    let rss = f.peak_rss.map(|b| format!("{} MB", b >> 20)).unwrap_or_default();
                    match &f.error {
                        None => println!(
                            "{:<62} {:>12.0} {:>9.3}x {:>10}",
                            f.name,
                            f.rate(),
                            f.rate() / ceiling,
                            rss
                        ),
                        Some(e) => println!("{:<62} FAILED: {e}", f.name),
                    }
                }
                let (first, rerun) = (get(FIRST), get(RERUN));
                println!("scansync first load vs row-by-row: {:.1}x", first.rate() / get(ROWS).rate());
                // The honest measure of the merge engine: its rate against landing the same
                // final rows with COPY into the same schema.
                for (f, label) in [(first, "first load"), (rerun, "re-run")] {
                    println!(
                        "scansync {label} vs model ceiling: {:.2}x with FKs, {:.2}x without, {:.2}x the empty-store limit",
                        f.rate() / get(MODEL).rate(),
                        f.rate() / get(MODEL_NO_FK).rate(),
                        f.rate() / get(EMPTY).rate()
                    );
                }
                let (replay, verify) = (get(REPLAY), get(VERIFY));
                println!(
                    "scansync verify: {:.2}x the replay's records/s, {:.2}x the first load's, {:.2}x the re-run's; peak RSS {} MB (replay {} MB)",
                    verify.rate() / replay.rate(),
                    verify.rate() / first.rate(),
                    verify.rate() / rerun.rate(),
                    verify.peak_rss.unwrap_or(0) >> 20,
                    replay.peak_rss.unwrap_or(0) >> 20
                );
                for peer in [DLT, SLING] {
                    if let Some(f) = figures.iter().find(|f| f.name == peer && f.error.is_none()) {
                        println!(
                            "scansync first load vs {}: {:.2}x as fast ({:.1} s against {:.1} s)",
                            peer.split(' ').next().unwrap_or(peer),
                            first.rate() / f.rate(),
                            first.secs,
                            f.secs
                        );
                    }
                }
                runs.push([first.rate() / ceiling, rerun.rate() / ceiling]);
            }
            let median = |i: usize| {
                let mut v: Vec<f64> = runs.iter().map(|r| r[i]).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            if repeat > 1 {
                println!(
                    "medians of {repeat} runs: first load {:.3}x, re-run {:.3}x raw COPY",
                    median(0),
                    median(1)
                );
            }
            if let Some(path) = thresholds {
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let mut ok = true;
                for (name, i) in [("first_load_min_ratio", 0), ("rerun_min_ratio", 1)] {
                    let min = read_threshold(&text, name)
                        .ok_or_else(|| format!("{} has no {name}", path.display()))?;
                    let got = median(i);
                    let verdict = if got >= min { "ok" } else { "REGRESSION" };
                    println!("{name}: {got:.3} (minimum {min}) {verdict}");
                    ok &= got >= min;
                }
                if !ok {
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
