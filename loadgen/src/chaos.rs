//! The fault suite: real `scansync` runs against real servers, one fault injected per trial
//! at a random moment, recovery as an operator would do it (run again), then every
//! canonical table compared with a reference made by one clean run of the same records.
//!
//! Servers: a throwaway PostgreSQL cluster of the harness's own (restarted and stopped at
//! will; never the machine's shared cluster), a TCP proxy in front of it (connection
//! resets), and an HTTP fault proxy in front of dynalite (throttling, 500s, stalls).
//!
//! After each trial it checks, besides the tables: a checkpoint is never ahead of durable
//! data (a run that wrote one left complete tables), no quarantine row twice, the ledger
//! records a failed run with its cause, `health` reports the failure until a run succeeds,
//! and no two successful runs overlapped in time.

use crate::cluster::Cluster;
use crate::dynamo;
use crate::proxy::{HttpFault, HttpFaultProxy, TcpProxy};
use crate::slices::fingerprint;
use loadgen::{Generator, Mix, Shape, Stamps};
use scansync_parse::time::Timestamp;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

/// The faults, one per trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Fault {
    /// `kill -9` of an incremental sync.
    Kill9Sync,
    /// `kill -9` of a backfill.
    Kill9Backfill,
    /// PostgreSQL restarted (fast shutdown) mid-run.
    PgRestart,
    /// PostgreSQL down for longer than the run's retry budget, then back.
    PgDown,
    /// Every PostgreSQL connection reset mid-transaction (a TCP proxy).
    ConnReset,
    /// `pg_terminate_backend` on the run's sessions.
    Terminate,
    /// Deadlocks and serialization failures raised N times by a trigger: the run must
    /// succeed, having retried each injected error once (`page_retries` ≥ N: the writers may
    /// also deadlock for real).
    PgErrors,
    /// DynamoDB answering throttling errors, 500s, or stalling, for a while.
    AwsErrors,
    /// The checkpoint write failing all its attempts.
    CheckpointFail,
    /// `kill -9` of a stream follower (`scansync follow`), restarted as a supervisor would.
    FollowKill9,
    /// PostgreSQL restarted under a follower (it loses its lock and stops; restarted).
    FollowPgRestart,
    /// DynamoDB Streams answering throttling errors, 500s, or stalling, for a while.
    FollowAwsErrors,
    /// A `GetRecords` answered `ExpiredIteratorException`: renewed from the position.
    FollowExpiredIterator,
    /// A shard answered `TrimmedDataAccessException`: a gap, read on from the oldest record
    /// and healed through the index.
    FollowTrimmed,
}

impl Fault {
    /// Whether the fault is one of a follower's.
    pub fn follows(self) -> bool {
        matches!(
            self,
            Fault::FollowKill9
                | Fault::FollowPgRestart
                | Fault::FollowAwsErrors
                | Fault::FollowExpiredIterator
                | Fault::FollowTrimmed
        )
    }
}

/// Settings of the suite.
#[derive(Debug, Clone)]
pub struct ChaosSpec {
    /// Trials in all, spread over `faults` in turn.
    pub trials: u32,
    /// The fault kinds.
    pub faults: Vec<Fault>,
    /// Records in the data set.
    pub records: u64,
    /// Seed of the records and of the fault times.
    pub seed: u64,
    /// The scansync binary.
    pub scansync: PathBuf,
    /// Where the throwaway cluster lives.
    pub work_dir: PathBuf,
    /// The DynamoDB endpoint (dynalite), `http://host:port`.
    pub dynamodb: String,
    /// AWS's DynamoDB Local (streams), for the follower's faults.
    pub ddblocal: Option<String>,
    /// Extra environment for every faulted run (e.g. `SCANSYNC_TEST_BREAK=checkpoint-first`).
    pub faulted_env: Vec<(String, String)>,
}

/// The outcome of one fault kind.
#[derive(Debug, Clone, Default)]
pub struct KindReport {
    /// Trials run.
    pub trials: u32,
    /// Faulted runs that failed (and were recovered by running again).
    pub recoveries: u32,
    /// Rows compared with the reference, over all trials.
    pub rows_compared: u64,
    /// Trials whose tables differed from the reference after recovery.
    pub mismatches: u32,
    /// Keys `scansync verify` found missing, stale or diverged after recovery, over all
    /// trials (the same proof, by the engine's own reconciler, against the source).
    pub divergent: u64,
    /// Broken invariants other than the tables (checkpoint ahead of data, duplicate
    /// quarantine rows, a failure the ledger or health did not report, overlapping runs).
    pub violations: Vec<String>,
}

const TABLES: [&str; 6] = ["creators", "communities", "tags", "content", "content_tags", "quarantine"];

async fn pg(url: &str) -> Result<Client, String> {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.map_err(|e| format!("connect {url}: {e}"))?;
    tokio::spawn(conn);
    Ok(c)
}

/// The one value of a query that returns one row of one column.
async fn scalar<T: for<'a> tokio_postgres::types::FromSql<'a>>(c: &Client, sql: &str) -> Result<T, String> {
    c.query_one(sql, &[]).await.map(|r| r.get(0)).map_err(|e| format!("{sql}: {e}"))
}

/// Rows of every canonical table (for the report).
async fn rows(c: &Client) -> Result<u64, String> {
    let mut n = 0;
    for t in TABLES {
        n += scalar::<i64>(c, &format!("select count(*) from scansync.{t}")).await? as u64;
    }
    Ok(n)
}

/// The fingerprint of the canonical tables plus the quarantine (reasons and raw records).
async fn state(c: &Client) -> Result<String, String> {
    let tables = fingerprint(c, "scansync").await?;
    let q: Option<String> = scalar(
        c,
        "select md5(string_agg(reason || raw, '|' order by reason || raw)) from scansync.quarantine",
    )
    .await?;
    Ok(format!("{tables}/{}", q.unwrap_or_default()))
}

struct Env {
    cluster: Cluster,
    pg_proxy: TcpProxy,
    aws_proxy: HttpFaultProxy,
    table: String,
    spec: ChaosSpec,
    days: (String, String),
    /// The same records in a streamed table on DynamoDB Local, its proxy, and the follower's
    /// reference (the state of a clean follow) with the time it took.
    follow: Option<FollowEnv>,
}

struct FollowEnv {
    endpoint: String,
    proxy: HttpFaultProxy,
    reference: String,
    secs: f64,
}

impl Env {
    fn command(&self, db: &str, via_proxy: bool, backfill: bool, extra: &[&str]) -> Command {
        let port = if via_proxy { self.pg_proxy.addr.port() } else { self.cluster.port };
        let mut cmd = Command::new(&self.spec.scansync);
        let mut args: Vec<String> = if backfill {
            vec!["backfill".into(), "--from".into(), self.days.0.clone(), "--to".into(), self.days.1.clone()]
        } else {
            vec!["sync".into(), "--first-run-window".into(), "48h".into()]
        };
        args.extend(
            ["--table", &self.table, "--page-size", "50", "--writers", "2", "--fetchers", "2"]
                .iter()
                .map(|s| s.to_string()),
        );
        args.extend(extra.iter().map(|s| s.to_string()));
        cmd.args(&args)
            .env("DATABASE_URL", self.cluster.url(port, db))
            .env("AWS_ENDPOINT_URL_DYNAMODB", format!("http://{}", self.aws_proxy.addr))
            // Page retries are logged (warn), so injected errors can be told from genuine ones.
            .env("RUST_LOG", "error,scansync::pipeline=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

impl Env {
    /// `scansync follow` of the streamed table into `db`: DynamoDB Streams through the fault
    /// proxy, the index (for heals) direct.
    fn follower(&self, db: &str) -> Result<Child, String> {
        let f = self.follow.as_ref().ok_or("no DynamoDB Local for the follower")?;
        Command::new(&self.spec.scansync)
            .args([
                "follow",
                "--table",
                &self.table,
                "--poll",
                "50ms",
                "--max-poll",
                "500ms",
                "--discover-every",
                "1s",
            ])
            .env("DATABASE_URL", self.cluster.url(self.cluster.port, db))
            .env("AWS_ENDPOINT_URL_DYNAMODB", &f.endpoint)
            .env("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", format!("http://{}", f.proxy.addr))
            .env("RUST_LOG", "error,scansync::follow=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())
    }

    /// Runs `scansync verify` of the records' days on `db` against the table, directly (no
    /// proxy, no fault): its divergent keys, or why it could not tell.
    fn verify(&self, db: &str) -> Result<u64, String> {
        let endpoint =
            if db.starts_with("follow") { self.follow.as_ref().map(|f| f.endpoint.as_str()) } else { None };
        let child = Command::new(&self.spec.scansync)
            .args(["verify", "--json", "--table", &self.table, "--from", &self.days.0, "--to", &self.days.1])
            .env("DATABASE_URL", self.cluster.url(self.cluster.port, db))
            .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint.unwrap_or(&self.spec.dynamodb))
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let (code, text) = tokio::task::block_in_place(|| wait(child, Duration::from_secs(300)))?;
        let report: serde_json::Value = text
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| format!("verify of {db} exited {code} without a report: {text}"))?;
        report["divergent"].as_u64().ok_or_else(|| format!("verify of {db}: no divergent count in {report}"))
    }

    /// Runs `scansync <subcommand>` against `db` directly (no proxy, no fault) to its end.
    fn plain(&self, db: &str, subcommand: &str) -> Result<(i32, String), String> {
        let child = Command::new(&self.spec.scansync)
            .arg(subcommand)
            .env("DATABASE_URL", self.cluster.url(self.cluster.port, db))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        tokio::task::block_in_place(|| wait(child, Duration::from_secs(60)))
    }
}

fn wait(child: Child, limit: Duration) -> Result<(i32, String), String> {
    let started = Instant::now();
    let mut child = child;
    loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            let text =
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            return Ok((st.code().unwrap_or(-9), text));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            return Err(format!("a run did not end within {} s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the suite; returns the report per fault kind.
pub async fn run(spec: &ChaosSpec) -> Result<BTreeMap<Fault, KindReport>, String> {
    std::fs::create_dir_all(&spec.work_dir).map_err(|e| e.to_string())?;
    let cluster = Cluster::start(&spec.work_dir)?;
    let pg_proxy =
        TcpProxy::start(format!("127.0.0.1:{}", cluster.port).parse().expect("addr"), Duration::ZERO).await?;
    let upstream = spec.dynamodb.trim_start_matches("http://").trim_end_matches('/');
    let aws_proxy =
        HttpFaultProxy::start(upstream.parse().map_err(|e| format!("--dynamodb {}: {e}", spec.dynamodb))?)
            .await?;

    // The records: every stamp form, updates and tombstones, over the last 20 hours.
    let client = dynamo::client().await?;
    let table = format!("chaos_{}_{}", spec.seed, fastrand::u32(..));
    dynamo::create_table(&client, &table, "datePartition-updatedAt-index").await?;
    let now = Timestamp::now();
    let first = now.add_micros(-20 * 3_600_000_000);
    let step = 20 * 3_600_000_000 / spec.records.max(1) as i64;
    let mut g = Generator::new(spec.seed, Mix { stamps: Stamps::Mixed, ..Mix::default() }, Shape::default());
    let items: Vec<_> =
        (0..spec.records).map(|i| g.next_record(first.add_micros(i as i64 * step)).item).collect();
    dynamo::write_items(&client, &table, items.clone(), 4).await?;
    let days = (first.day().plus(-1).to_string(), now.day().plus(1).to_string());
    // The same records in a table with a stream, for the follower's faults.
    let follow = match (spec.faults.iter().any(|f| f.follows()), &spec.ddblocal) {
        (false, _) => None,
        (true, None) => return Err("the follower's faults need DynamoDB Local: --ddblocal URL".into()),
        (true, Some(url)) => {
            let ddb = dynamo::client_at(url).await?;
            dynamo::create_streamed_table(&ddb, &table, "datePartition-updatedAt-index").await?;
            dynamo::write_items(&ddb, &table, items.clone(), 4).await?;
            let upstream = url.trim_start_matches("http://").trim_end_matches('/');
            let proxy =
                HttpFaultProxy::start(upstream.parse().map_err(|e| format!("--ddblocal {url}: {e}"))?)
                    .await?;
            Some(FollowEnv { endpoint: url.clone(), proxy, reference: String::new(), secs: 0.0 })
        }
    };
    let mut env = Env { cluster, pg_proxy, aws_proxy, table, spec: spec.clone(), days, follow };
    let admin = pg(&env.cluster.url(env.cluster.port, "postgres")).await?;
    if env.follow.is_some() {
        // The follower's reference: a clean follow, until its tables stop changing.
        admin.batch_execute("create database follow_reference").await.map_err(|e| e.to_string())?;
        let t = Instant::now();
        let child = env.follower("follow_reference")?;
        let c = pg(&env.cluster.url(env.cluster.port, "follow_reference")).await?;
        // Quiet tables alone do not prove the follow complete: on a slow machine the follower
        // paused longer than settle's quiet time between its migration and its first page
        // (seen: settled on the empty store, 2207 divergent keys). So it is complete once
        // verify, run while it follows, finds the store equal to the table.
        let limit = Duration::from_secs(180);
        let at = loop {
            let (_, at) = settle(&c, limit.saturating_sub(t.elapsed())).await?;
            let divergent = env.verify("follow_reference")?;
            if divergent == 0 {
                break at;
            }
            if t.elapsed() > limit {
                stop_follower(child, "-TERM")?;
                return Err(format!(
                    "the clean follow's store differs from the table: {divergent} divergent keys after {} s",
                    limit.as_secs()
                ));
            }
        };
        let secs = (at - t).as_secs_f64();
        stop_follower(child, "-TERM")?;
        let reference = state(&c).await?;
        eprintln!("loadgen chaos: a clean follow took {secs:.1} s; verify: 0 divergent");
        if let Some(f) = env.follow.as_mut() {
            (f.reference, f.secs) = (reference, secs);
        }
    }
    let env = env;

    // The reference: one clean run.
    admin.batch_execute("create database reference").await.map_err(|e| e.to_string())?;
    let t = Instant::now();
    let (code, text) = wait(
        env.command("reference", false, false, &[]).spawn().map_err(|e| e.to_string())?,
        Duration::from_secs(300),
    )?;
    if code != 0 {
        return Err(format!("the reference run failed: {text}"));
    }
    let reference_secs = t.elapsed().as_secs_f64();
    let reference = state(&pg(&env.cluster.url(env.cluster.port, "reference")).await?).await?;
    let divergent = env.verify("reference")?;
    if divergent != 0 {
        return Err(format!(
            "the reference run's store differs from the table: verify found {divergent} divergent keys"
        ));
    }
    eprintln!(
        "loadgen chaos: {} records; the reference run took {reference_secs:.1} s; verify: 0 divergent",
        spec.records
    );

    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let mut report: BTreeMap<Fault, KindReport> = BTreeMap::new();
    for trial in 0..spec.trials {
        let fault = spec.faults[trial as usize % spec.faults.len()];
        let db = format!("trial_{trial}");
        // A fresh connection each trial: the last one may have been cut by its fault.
        let admin = pg(&env.cluster.url(env.cluster.port, "postgres")).await?;
        admin.batch_execute(&format!("create database {db}")).await.map_err(|e| e.to_string())?;
        let r = report.entry(fault).or_default();
        r.trials += 1;
        let outcome = if fault.follows() {
            let f = env.follow.as_ref().expect("set up for follow faults");
            let at = Duration::from_secs_f64(0.05 + rng.f64() * f.secs * 0.9);
            follow_trial(&env, fault, &db, at, &mut rng, r).await
        } else {
            let at = Duration::from_secs_f64(0.05 + rng.f64() * reference_secs * 0.9);
            trial_once(&env, &admin, fault, &db, at, &mut rng, &reference, r).await
        };
        if let Err(e) = outcome {
            r.violations.push(format!("trial {trial}: {e}"));
        }
        env.aws_proxy.set(HttpFault::Pass);
        if let Some(f) = &env.follow {
            f.proxy.set(HttpFault::Pass);
        }
        let admin = pg(&env.cluster.url(env.cluster.port, "postgres")).await?;
        let _ = admin.batch_execute(&format!("drop database if exists {db} with (force)")).await;
        eprintln!(
            "loadgen chaos: trial {trial} ({fault:?}) done: mismatches {}, verify divergent {}, violations {}",
            r.mismatches,
            r.divergent,
            r.violations.len()
        );
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn trial_once(
    env: &Env,
    admin: &Client,
    fault: Fault,
    db: &str,
    at: Duration,
    rng: &mut fastrand::Rng,
    reference: &str,
    r: &mut KindReport,
) -> Result<(), String> {
    let direct = env.cluster.url(env.cluster.port, db);
    let mut extra: Vec<&str> = Vec::new();
    let mut expected_retries = None;
    match fault {
        Fault::PgErrors | Fault::CheckpointFail => {
            let (code, text) = env.plain(db, "migrate")?;
            if code != 0 {
                return Err(format!("migrate: {text}"));
            }
            let c = pg(&direct).await?;
            if fault == Fault::PgErrors {
                let n = rng.i64(1..=4);
                expected_retries = Some(n);
                c.batch_execute(&format!(
                    "create sequence scansync.injected;
                     create function scansync.flaky() returns trigger language plpgsql as $$
                     declare k int8 := nextval('scansync.injected');
                     begin
                       if k <= {n} then
                         if k % 2 = 1 then raise exception 'injected deadlock' using errcode = '40P01';
                         else raise exception 'injected serialization failure' using errcode = '40001'; end if;
                       end if;
                       return new;
                     end $$;
                     create trigger flaky before insert on scansync.content for each row execute function scansync.flaky();"
                ))
                .await
                .map_err(|e| e.to_string())?;
            } else {
                c.batch_execute(
                    "create function scansync.no_checkpoint() returns trigger language plpgsql as $$
                     begin raise exception 'checkpoint refused (injected)'; end $$;
                     create trigger no_checkpoint before insert or update on scansync.checkpoints
                     for each row execute function scansync.no_checkpoint();",
                )
                .await
                .map_err(|e| e.to_string())?;
            }
        }
        Fault::PgDown => extra.extend(["--retry-budget", "2s"]),
        _ => {}
    }
    let backfill = fault == Fault::Kill9Backfill;
    let mut cmd = env.command(db, fault == Fault::ConnReset, backfill, &extra);
    for (k, v) in &env.spec.faulted_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut killed = false;
    // The fault, at its moment (unless the run ended first).
    if !matches!(fault, Fault::PgErrors | Fault::CheckpointFail) {
        while started.elapsed() < at {
            if child.try_wait().map_err(|e| e.to_string())?.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let running = child.try_wait().map_err(|e| e.to_string())?.is_none();
        if running {
            match fault {
                Fault::Kill9Sync | Fault::Kill9Backfill => {
                    child.kill().map_err(|e| e.to_string())?;
                    killed = true;
                }
                Fault::PgRestart => env.cluster.restart()?,
                Fault::PgDown => {
                    env.cluster.stop()?;
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    env.cluster.resume()?;
                }
                Fault::ConnReset => env.pg_proxy.reset_all(),
                Fault::Terminate => {
                    admin
                        .execute(
                            "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
                            &[&db],
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Fault::AwsErrors => {
                    let kind =
                        [HttpFault::Throttle, HttpFault::ServerError, HttpFault::Stall][rng.usize(..3)];
                    env.aws_proxy.set(kind);
                    tokio::time::sleep(Duration::from_secs_f64(0.5 + rng.f64() * 2.5)).await;
                    env.aws_proxy.set(HttpFault::Pass);
                }
                Fault::PgErrors | Fault::CheckpointFail => unreachable!("no timed fault"),
                f => unreachable!("{f:?} is a follower's fault: follow_trial"),
            }
        }
    }
    let (code, text) = tokio::task::block_in_place(|| wait(child, Duration::from_secs(300)))?;
    let c = pg(&direct).await?;
    let has_schema: bool =
        scalar(&c, "select exists (select 1 from pg_namespace where nspname = 'scansync')").await?;
    if has_schema {
        // A checkpoint is never ahead of durable data.
        let checkpoint: i64 = scalar(&c, "select count(*) from scansync.checkpoints").await?;
        if checkpoint > 0 && state(&c).await? != reference {
            r.violations.push(format!("{db}: a checkpoint was written but the tables are not complete"));
        }
    }
    if let Some(n) = expected_retries {
        let got: i64 =
            scalar(&c, "select page_retries from scansync.sync_runs order by id desc limit 1").await?;
        // Every injected error is retried once; the two writers may also deadlock for real
        // now and then (retried too, and counted, but not injected).
        let injected =
            text.lines().filter(|l| l.contains("page failed, retrying") && l.contains("injected")).count()
                as i64;
        if code != 0 || injected != n || got < n {
            r.violations
                .push(format!("{db}: {n} injected errors gave exit {code}, {injected} retries of them and page_retries {got}: {text}"));
        }
    }
    if code != 0 {
        r.recoveries += 1;
        if !killed && has_schema && code == 1 {
            // The ledger records the failure and its cause.
            let row = c
                .query_opt(
                    "select status, coalesce(error, '') from scansync.sync_runs order by id desc limit 1",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            match row {
                Some(row) if row.get::<_, String>(0) == "failed" && !row.get::<_, String>(1).is_empty() => {}
                other => r.violations.push(format!(
                    "{db}: exit {code} but the ledger says {:?}: {text}",
                    other.map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                )),
            }
        }
        // A kill can land after the run has recorded its success, while the process exits:
        // then the run did not fail (and must have left the tables complete), and health is
        // right to say so.
        let last_status: Option<String> = if has_schema {
            c.query_opt("select status from scansync.sync_runs order by id desc limit 1", &[])
                .await
                .map_err(|e| e.to_string())?
                .map(|row| row.get(0))
        } else {
            None
        };
        let succeeded_before_the_kill = killed && last_status.as_deref() == Some("succeeded");
        if succeeded_before_the_kill && state(&c).await? != reference {
            r.violations.push(format!("{db}: a run recorded success but the tables are not complete"));
        }
        if has_schema && !backfill && !succeeded_before_the_kill {
            // Health reports it until a run succeeds.
            let (h, htext) = env.plain(db, "health")?;
            if h != 2 {
                r.violations.push(format!("{db}: after a failed run health exits {h}: {htext}"));
            }
        }
    }
    if fault == Fault::CheckpointFail && has_schema {
        c.batch_execute("drop trigger no_checkpoint on scansync.checkpoints")
            .await
            .map_err(|e| e.to_string())?;
    }
    // Recovery: run again, as an operator would, until it succeeds.
    let mut recovered = code == 0;
    for _ in 0..3 {
        if recovered {
            break;
        }
        let (code, _) = tokio::task::block_in_place(|| {
            wait(
                env.command(db, false, backfill, &[]).spawn().map_err(|e| e.to_string())?,
                Duration::from_secs(300),
            )
        })?;
        recovered = code == 0;
    }
    if !recovered {
        r.violations.push(format!("{db}: three runs after the fault did not succeed"));
    }
    let c = pg(&direct).await?;
    r.rows_compared += rows(&c).await?;
    let divergent = env.verify(db)?;
    r.divergent += divergent;
    if state(&c).await? != reference || divergent != 0 {
        r.mismatches += 1;
    }
    let dup: i64 =
        scalar(&c, "select count(*) - count(distinct (reason, md5(raw))) from scansync.quarantine").await?;
    if dup != 0 {
        r.violations.push(format!("{db}: {dup} duplicate quarantine rows"));
    }
    let overlap: i64 = scalar(
        &c,
        "select count(*) from scansync.sync_runs a join scansync.sync_runs b on a.id < b.id
             where a.status = 'succeeded' and b.status = 'succeeded'
               and a.started_at < b.finished_at and b.started_at < a.finished_at",
    )
    .await?;
    if overlap != 0 {
        r.violations.push(format!("{db}: two successful runs overlapped"));
    }
    let running: i64 = scalar(&c, "select count(*) from scansync.sync_runs where status = 'running'").await?;
    if running != 0 {
        r.violations.push(format!("{db}: {running} runs left 'running' after the recovery run"));
    }
    Ok(())
}

/// Waits until the tables of `c` stop changing for 3 s (a follower caught up, or paused:
/// the clean follow checks with verify); returns their state and when it was first reached.
async fn settle(c: &Client, limit: Duration) -> Result<(String, Instant), String> {
    let started = Instant::now();
    let mut last: Option<(String, Instant)> = None;
    loop {
        let has: bool =
            scalar(c, "select exists (select 1 from pg_namespace where nspname = 'scansync')").await?;
        if has && scalar::<bool>(c, "select to_regclass('scansync.content') is not null").await? {
            let s = state(c).await?;
            match &last {
                Some((prev, since)) if *prev == s => {
                    if since.elapsed() > Duration::from_secs(3) {
                        return Ok((s, *since));
                    }
                }
                _ => last = Some((s, Instant::now())),
            }
        }
        if started.elapsed() > limit {
            return Err(format!("the follower's tables did not settle within {} s", limit.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops a follower with `signal`; returns its exit status and its log.
fn stop_follower(child: Child, signal: &str) -> Result<(i32, String), String> {
    let _ = Command::new("kill").args([signal, &child.id().to_string()]).status();
    tokio::task::block_in_place(|| wait(child, Duration::from_secs(60)))
}

/// One trial of a follower's fault: a follower from nothing, the fault at `at`, restarts as
/// a supervisor would (when it exited), until its tables equal the clean follow's.
async fn follow_trial(
    env: &Env,
    fault: Fault,
    db: &str,
    at: Duration,
    rng: &mut fastrand::Rng,
    r: &mut KindReport,
) -> Result<(), String> {
    let f = env.follow.as_ref().expect("set up for follow faults");
    let mut child = env.follower(db)?;
    tokio::time::sleep(at).await;
    match fault {
        Fault::FollowKill9 => {
            let (_, _) = stop_follower(child, "-KILL")?;
            r.recoveries += 1;
            child = env.follower(db)?;
        }
        Fault::FollowPgRestart => env.cluster.restart()?,
        Fault::FollowAwsErrors => {
            let kind = [HttpFault::Throttle, HttpFault::ServerError, HttpFault::Stall][rng.usize(..3)];
            f.proxy.set(kind);
            tokio::time::sleep(Duration::from_secs_f64(0.5 + rng.f64() * 2.5)).await;
            f.proxy.set(HttpFault::Pass);
        }
        Fault::FollowExpiredIterator => f.proxy.set(HttpFault::ExpiredIterator),
        Fault::FollowTrimmed => f.proxy.set(HttpFault::Trimmed),
        _ => unreachable!("not a follower's fault"),
    }
    // Until the tables equal the clean follow's; a follower that stopped is started again.
    let c_url = env.cluster.url(env.cluster.port, db);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut log = String::new();
    let mut same = false;
    while Instant::now() < deadline {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            let (code, text) = tokio::task::block_in_place(|| wait(child, Duration::from_secs(5)))?;
            log.push_str(&text);
            if fault != Fault::FollowPgRestart {
                r.violations.push(format!("{db}: the follower exited {code} under {fault:?}: {text}"));
            }
            r.recoveries += 1;
            child = env.follower(db)?;
        }
        if let Ok(c) = pg(&c_url).await {
            let gaps_open: i64 =
                scalar(&c, "select count(*) from scansync.stream_gaps where healed_at is null")
                    .await
                    .unwrap_or(1);
            // An injected answer must have been given (and a trim's gap recorded) first: the
            // tables of a follower that was never faulted prove nothing.
            let injected = *f.proxy.injected.lock().expect("counts");
            let fired = match fault {
                Fault::FollowExpiredIterator => injected[HttpFault::ExpiredIterator as usize] > 0,
                Fault::FollowTrimmed => injected[HttpFault::Trimmed as usize] > 0,
                _ => true,
            };
            let gaps: i64 = if fault == Fault::FollowTrimmed {
                scalar(&c, "select count(*) from scansync.stream_gaps").await.unwrap_or(0)
            } else {
                1
            };
            if fired
                && gaps > 0
                && gaps_open == 0
                && state(&c).await.ok().as_deref() == Some(f.reference.as_str())
            {
                same = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, text) = stop_follower(child, "-TERM")?;
    log.push_str(&text);
    let c = pg(&c_url).await?;
    r.rows_compared += rows(&c).await?;
    let divergent = env.verify(db)?;
    r.divergent += divergent;
    if !same || divergent != 0 {
        r.mismatches += 1;
    }
    if code != 143 {
        r.violations.push(format!("{db}: SIGTERM ended the follower with {code}, not 143: {log}"));
    }
    let gaps: i64 = scalar(&c, "select count(*) from scansync.stream_gaps").await?;
    match (fault, gaps) {
        (Fault::FollowTrimmed, 0) => r.violations.push(format!("{db}: a trimmed shard recorded no gap")),
        (Fault::FollowTrimmed, _) => {
            let healed: i64 =
                scalar(&c, "select count(*) from scansync.stream_gaps where healed_at is not null").await?;
            if healed != gaps {
                r.violations.push(format!("{db}: {} of {gaps} gaps not healed", gaps - healed));
            }
        }
        (_, 0) => {}
        (_, n) => r
            .violations
            .push(format!("{db}: {n} gaps recorded under {fault:?}, where the stream lost nothing")),
    }
    let running: i64 =
        scalar(&c, "select count(*) from scansync.sync_runs where kind = 'follow' and status = 'running'")
            .await?;
    if running != 0 {
        r.violations.push(format!("{db}: a follow run left 'running' after SIGTERM"));
    }
    Ok(())
}
