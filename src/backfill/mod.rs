//! Backfill jobs: a backfill is a job of units (day slices of the table, files of an export)
//! kept in PostgreSQL (`backfill_jobs`, `backfill_units`, `backfill_workers`), so that it
//! resumes after an interruption, many workers share it, and its progress can be read.
//!
//! - **Identity.** A job is found by what it covers (source, table or export, day range):
//!   running the same command again resumes it; `--restart` starts it afresh.
//! - **Workers.** Each invocation is a worker: it registers, takes an advisory lock of its
//!   own, and claims units one at a time (`FOR UPDATE SKIP LOCKED`) until none is left. A
//!   unit `running` under a worker that no longer holds its lock (killed, host lost) is
//!   claimed again by any worker; nobody has to clean up.
//! - **Done means committed.** A unit is marked done only after the source delivered all of
//!   it and every one of its pages committed (the pipeline's tracker). A unit that cannot be
//!   read fails alone, with its error; the next invocation retries it.
//! - **Beside the hourly sync.** A worker never takes the run lock and never touches the
//!   checkpoint: the merges are idempotent and order-independent, so a sync running at the
//!   same time converges to the same tables.

mod claims;
pub mod progress;
pub mod staged;
pub mod status;

pub use claims::Claims;

use crate::config::{BackfillConfig, BulkMode, Target};
use crate::error::{Error, Kind, Result};
use crate::ledger::RunKind;
use crate::lifecycle::{self, Prepare};
use crate::lock::worker_alive_sql;
use crate::metrics::Metrics;
use crate::pipeline::Hooks;
use crate::run::{self, Outcome};
use crate::schema::quoted_schema;
use crate::shutdown::Stop;
use crate::source::any::AnySource;
use crate::source::Source;
use crate::time::{Day, Timestamp};
use crate::write::postgres::PgSink;
use crate::{db, lock};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio_postgres::Client;

/// What a worker did, and where its job stands.
pub struct Report {
    /// The worker's run (None when the job had nothing left to do).
    pub outcome: Option<Outcome>,
    /// The job after the worker ended.
    pub job: status::JobStatus,
}

/// Whether this worker takes the bulk path: `on`, or `auto` when a bulk load was left
/// unfinished (its keys are still off), the store's content is empty, or the job's known
/// size (export manifests) is at least twice the store's (estimated). A re-load of a store's own size gains nothing: the validation at the end
/// costs what the per-row checks of its few changed rows would.
async fn wants_bulk(
    admin: &tokio_postgres::Client,
    schema: &str,
    mode: BulkMode,
    hints: &[Option<i64>],
) -> Result<bool> {
    let q = quoted_schema(schema)?;
    match mode {
        BulkMode::On => Ok(true),
        BulkMode::Off => Ok(false),
        BulkMode::Auto => {
            // Keys left off by an interrupted bulk load: go on with it (putting them back
            // first would validate the whole store only to drop them again).
            if crate::bulk::states(admin, schema).await?.iter().any(|(_, s)| *s != Some(true)) {
                return Ok(true);
            }
            let empty: bool =
                admin.query_one(&format!("select not exists (select 1 from {q}.content)"), &[]).await?.get(0);
            if empty {
                return Ok(true);
            }
            let Some(job) = hints.iter().copied().sum::<Option<i64>>() else { return Ok(false) };
            // The planner's estimate; never analyzed (-1): count, but no further than needed.
            let estimate: f32 = admin
                .query_one(
                    &format!("select reltuples from pg_class where oid = '{q}.content'::regclass"),
                    &[],
                )
                .await?
                .get(0);
            let store = if estimate >= 0.0 {
                estimate as i64
            } else {
                admin
                    .query_one(
                        &format!("select count(*) from (select 1 from {q}.content limit $1) s"),
                        &[&(job + 1)],
                    )
                    .await?
                    .get(0)
            };
            Ok(job >= 2 * store)
        }
    }
}

/// The identity of a job: source, what it reads, and the day range.
pub fn job_key(source: &str, target: &str, days: Option<(Day, Day)>) -> String {
    match days {
        Some((a, b)) => format!("{source}:{target}:{a}..{b}"),
        None => format!("{source}:{target}:all"),
    }
}

/// Runs one worker of the backfill job `cfg` describes (creating the job if it is new).
/// Returns `Err` only for failures before the worker could start.
pub async fn run(
    target: &Target,
    cfg: &BackfillConfig,
    stop: &Stop,
    metrics: Option<&Metrics>,
) -> Result<Report> {
    let started = Timestamp::now();
    let (url, schema) = (target.url.as_str(), target.schema.as_str());
    let q = quoted_schema(schema)?;
    let budget = cfg.tuning.retry_budget;
    // A bulk worker decides about the keys itself, below.
    let admin = lifecycle::prepare(target, budget, Prepare::default()).await?;

    let mut tuning = cfg.tuning;
    let mut source = AnySource::open(&cfg.source, &tuning).await?;
    let (kind, target_name, slices) = identity(&source);
    let key = job_key(kind, &target_name, cfg.days);
    // A job keeps the slicing it was created with, so its units mean the same on resume.
    let existing: Option<Option<i32>> = admin
        .query_opt(&format!("select slices from {q}.backfill_jobs where job_key = $1"), &[&key])
        .await?
        .map(|r| r.get(0));
    if let (Some(Some(job_slices)), Some(now)) = (existing, slices) {
        if job_slices as usize != now {
            tracing::warn!(
                job_slices,
                flag = now,
                "this job was created with --slices {job_slices}: resuming with it"
            );
            tuning.slices = Some(job_slices as usize);
            source = AnySource::open(&cfg.source, &tuning).await?;
        }
    }
    let day_list: Vec<Day> = cfg.days.map(|(a, b)| (a.0..=b.0).map(Day).collect()).unwrap_or_default();
    let units = source.units(&day_list, None).await?;
    let hints: Vec<Option<i64>> =
        source.size_hints(&units).into_iter().map(|h| h.map(|n| n as i64)).collect();
    let spec = JobSpec {
        key: &key,
        source: kind,
        target: &target_name,
        days: cfg.days,
        slices,
        units: &units,
        hints: &hints,
    };
    let mut client = db::connect(url).await?;
    let job_id = open_job(&mut client, schema, &spec, cfg.restart).await?;
    if cfg.restart {
        staged::restart(&client, schema, job_id).await?;
    }
    let before = status::job(&admin, schema, job_id).await?;
    // A staged job whose units are all done but whose rows were not folded yet (its last
    // worker was stopped before the fold) still has work: the fold.
    let unfolded = before.staged && !before.folded;
    if before.units.claimable() == 0 && before.units.running == 0 && !unfolded {
        crate::bulk::repair(&admin, schema).await?;
        return Ok(Report { outcome: None, job: before });
    }

    let bulk = if unfolded || wants_bulk(&admin, schema, cfg.bulk, &hints).await? {
        Some(crate::bulk::BulkLoad::begin(url, schema).await?)
    } else {
        crate::bulk::repair(&admin, schema).await?;
        None
    };
    let staged = staged::decide(&mut client, schema, job_id, bulk.is_some()).await?;
    if staged {
        staged::survived(&mut client, schema, job_id).await?;
    }
    drop(client);
    let run_id = lifecycle::open(&admin, target, RunKind::Backfill, started, budget, None).await?;
    let worker_name = format!("{}:{}", hostname(), std::process::id());
    let worker_id: i64 = admin
        .query_one(
            &format!(
                "insert into {q}.backfill_workers (job_id, name, run_id) values ($1, $2, $3) returning id"
            ),
            &[&job_id, &worker_name, &run_id],
        )
        .await?
        .get(0);
    let worker_lock = lock::acquire_worker(url, schema, worker_id).await?;
    tracing::info!(job = job_id, worker = worker_id, name = %worker_name, units = before.units.total, done = before.units.done, "backfill worker started");
    let claims =
        Arc::new(Claims::open(url, schema, job_id, worker_id, &worker_name, tuning.page_size, budget).await?);
    let sink = Arc::new(
        PgSink::new(url, schema, Some(run_id))?.bulk(bulk.is_some()).staged(staged.then_some(job_id)),
    );
    let records = Arc::new(AtomicU64::new(0));
    let hooks = Hooks {
        stop: stop.clone(),
        lock: Some(worker_lock.watch()),
        progress: Some(records.clone()),
        page_seconds: metrics.map(Metrics::page_seconds),
    };
    let shown = progress::spawn(cfg.progress, cfg.progress_every, admin.clone(), schema, job_id, records);

    let mut outcome = run::job(Arc::new(source), sink, claims, cfg.days, tuning, hooks).await;
    shown.finish().await;

    // The worker's own failed units make its exit status 1: the next invocation retries them.
    let failed = worker_failures(&admin, schema, job_id, worker_id).await.unwrap_or_default();
    if outcome.result.is_ok() && !failed.is_empty() {
        let (unit, error) = &failed[0];
        outcome.result = Err(Error::new(
            Kind::Io,
            format!(
                "{} units of backfill job {job_id} failed (first: {unit}: {error}); the other units are done; run the same command again to retry them (`scansync backfill status` lists them)",
                failed.len()
            ),
        ));
    }
    #[cfg(feature = "fault-injection")]
    if staged && crate::run::fault::is("exit-before-fold") {
        // Every unit staged, nothing folded: lets the tests resume a load at its fold.
        std::process::exit(99);
    }
    // The fold and the keys' restore are the run's too: a staged first load spends more than
    // half its time there, and a summary of the pages alone overstated its rate 2.5-fold.
    let after_pages = std::time::Instant::now();
    if staged && !stop.requested() {
        // The worker that finds no unit left to run folds the staged rows into the tables
        // (with failed units too: they are retried by the next run, merged as any write).
        match staged::fold(url, schema, job_id).await {
            Ok(Some(f)) => {
                outcome.stats.written.content += f.content;
                outcome.stats.written.content_tags += f.edges;
            }
            Ok(None) => {}
            Err(e) if outcome.result.is_ok() => {
                outcome.result = Err(e.context("folding the staged rows into the tables"))
            }
            Err(e) => tracing::error!(error = %e, "folding the staged rows into the tables failed"),
        }
    }
    let bulk_ran = bulk.is_some();
    if let Some(bulk) = bulk {
        // The last bulk worker to leave validates the keys: a violation fails this run.
        if let Err(e) = bulk.end(&admin).await {
            if outcome.result.is_ok() {
                outcome.result = Err(e);
            } else {
                tracing::error!(error = %e, "restoring the foreign keys after the bulk load failed");
            }
        }
    }
    if staged || bulk_ran {
        outcome.stats.add_after_pages(after_pages.elapsed());
    }
    let finished = async {
        admin
            .execute(
                &format!("update {q}.backfill_workers set finished_at = now() where id = $1"),
                &[&worker_id],
            )
            .await?;
        admin
            .execute(
                &format!(
                    "update {q}.backfill_jobs set finished_at = now() where id = $1 and finished_at is null
                     and (not staged or folded_at is not null)
                     and not exists (select 1 from {q}.backfill_units where job_id = $1 and state <> 'done')"
                ),
                &[&job_id],
            )
            .await?;
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = finished {
        // The worker's lock ends with the process: its row reads as gone either way.
        tracing::warn!(error = %e, "could not mark the worker finished");
    }
    lifecycle::record(target, admin.clone(), run_id, &mut outcome, budget).await?;
    if let Some(m) = metrics {
        m.observe("backfill", Some(&outcome), None);
    }
    drop(worker_lock);
    let job = match db::connect(url).await {
        Ok(c) => status::job(&c, schema, job_id).await?,
        Err(e) => return Err(e.context("reading the job's state after the worker ended")),
    };
    Ok(Report { outcome: Some(outcome), job })
}

/// The source kind, what it reads, and its slicing (DynamoDB).
fn identity(s: &AnySource) -> (&'static str, String, Option<usize>) {
    match s {
        AnySource::Dynamo(d) => ("dynamodb", d.target(), Some(d.slices())),
        AnySource::Export(e) => ("export", e.location(), None),
        AnySource::Generated(_) => ("generated", "loadgen".to_string(), None),
    }
}

/// What a job covers and the units it is made of.
struct JobSpec<'a> {
    key: &'a str,
    source: &'a str,
    target: &'a str,
    days: Option<(Day, Day)>,
    slices: Option<usize>,
    units: &'a [String],
    hints: &'a [Option<i64>],
}

/// Creates the job (or finds it), adds units it does not have yet (an export that gained
/// files), and with `restart` makes every unit pending again. One transaction, the job row
/// locked: workers starting at once agree on one job.
async fn open_job(client: &mut Client, schema: &str, spec: &JobSpec<'_>, restart: bool) -> Result<i64> {
    let q = quoted_schema(schema)?;
    let tx = client.transaction().await?;
    let (from, to) = (spec.days.map(|d| d.0.to_string()), spec.days.map(|d| d.1.to_string()));
    let slices = spec.slices.map(|s| s as i32);
    tx.execute(
        &format!(
            "insert into {q}.backfill_jobs (job_key, source, target, from_day, to_day, slices)
                 values ($1, $2, $3, $4::text::date, $5::text::date, $6) on conflict (job_key) do nothing"
        ),
        &[&spec.key, &spec.source, &spec.target, &from, &to, &slices],
    )
    .await?;
    let id: i64 = tx
        .query_one(&format!("select id from {q}.backfill_jobs where job_key = $1 for update"), &[&spec.key])
        .await?
        .get(0);
    if restart {
        let live: i64 = tx
            .query_one(
                &format!(
                    "select count(*) from {q}.backfill_workers w where job_id = $1 and finished_at is null and {}",
                    worker_alive_sql("w", "$2")
                ),
                &[&id, &schema],
            )
            .await?
            .get(0);
        if live > 0 {
            return Err(Error::config(format!(
                "--restart refused: {live} workers are running backfill job {id}; stop them first (or resume without --restart)"
            )));
        }
        tx.execute(
            &format!(
                "update {q}.backfill_units set state = 'pending', worker_id = null, worker = null,
                     attempts = 0, completions = 0, records = 0, pages = 0, started_at = null,
                     finished_at = null, last_error = null where job_id = $1"
            ),
            &[&id],
        )
        .await?;
        tx.execute(
            &format!("update {q}.backfill_jobs set restarted_at = now(), finished_at = null where id = $1"),
            &[&id],
        )
        .await?;
    }
    let added = tx
        .execute(
            &format!(
                "insert into {q}.backfill_units (job_id, unit, ordinal, size_hint)
                 select $1, u, o::int, h from unnest($2::text[], $3::int8[]) with ordinality as x(u, h, o)
                 on conflict do nothing"
            ),
            &[&id, &spec.units, &spec.hints],
        )
        .await?;
    if added > 0 {
        tx.execute(&format!("update {q}.backfill_jobs set finished_at = null where id = $1"), &[&id]).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// The units this worker failed, with their errors.
async fn worker_failures(
    client: &Client,
    schema: &str,
    job: i64,
    worker: i64,
) -> Result<Vec<(String, String)>> {
    let q = quoted_schema(schema)?;
    let rows = client
        .query(
            &format!(
                "select unit, coalesce(last_error, '') from {q}.backfill_units
                 where job_id = $1 and worker_id = $2 and state = 'failed' order by ordinal"
            ),
            &[&job, &worker],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The host's name, for the worker's label (`host:pid`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}
