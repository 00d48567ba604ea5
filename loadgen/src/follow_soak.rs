//! The follow soak: write at a steady rate into a DynamoDB table with a stream (AWS's
//! DynamoDB Local here) while the real `scansync follow` applies it, and measure from the
//! outside, by polling PostgreSQL, when each write becomes visible; kill -9 the follower at
//! random moments and measure how long it takes to catch up; optionally drain a backlog
//! written before it starts; end with `scansync verify` of the soak's days.
//!
//! Latency of a write: from its `BatchWriteItem` acknowledgement to the first poll that sees
//! the content row at that version or a newer one. A write overtaken by a newer version of
//! the same post before it was seen is counted as superseded, not measured.

use crate::dynamo;
use crate::soak::verify;
use loadgen::{Generator, Mix, Shape, Stamps};
use scansync_parse::time::Timestamp;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// Follow-soak settings.
#[derive(Debug, Clone)]
pub struct FollowSoakSpec {
    /// Records per second.
    pub rate: u64,
    /// How long to write.
    pub duration: Duration,
    /// kill -9s of the follower, at random moments of the soak.
    pub kills: u32,
    /// Records written before the follower starts (a backlog to drain).
    pub backlog: u64,
    /// The table (created, with a stream).
    pub table: String,
    /// Its GSI (for the final verify).
    pub index: String,
    /// PostgreSQL.
    pub database_url: String,
    /// Target schema (dropped first).
    pub schema: String,
    /// The scansync binary.
    pub scansync: PathBuf,
    /// BatchWriteItem calls in flight.
    pub concurrency: usize,
    /// Seed.
    pub seed: u64,
}

/// What the follow soak found.
#[derive(Debug, Clone, Default)]
pub struct FollowSoakReport {
    /// Backlog: records, and seconds from the follower's start until all were visible.
    pub backlog: Option<(u64, f64)>,
    /// Records written during the soak, and the achieved rate.
    pub written: u64,
    /// Achieved write rate.
    pub write_rate: f64,
    /// Writes measured (seen at their version).
    pub measured: u64,
    /// Writes overtaken by a newer version of their post before they were seen.
    pub superseded: u64,
    /// Writes never seen within two minutes of the soak's end (must be 0).
    pub missing: u64,
    /// Write-acknowledged → visible, seconds: p50, p99, max.
    pub latency: [f64; 3],
    /// Per kill: seconds from the restart until every write acknowledged before it was seen.
    pub catch_up: Vec<f64>,
    /// The follower's CPU over the soak, in cores (utime + stime ÷ wall time).
    pub cpu_cores: f64,
    /// Its peak RSS over every process, bytes.
    pub peak_rss: u64,
    /// `scansync verify` of the soak's days: divergent keys (must be 0).
    pub verify_divergent: u64,
}

/// A version of a post, as the engine orders them: instant (µs), then scan id.
type Version = (i64, String);

#[derive(Default)]
struct Pending {
    /// key → (version, acknowledged at): the newest write not seen yet.
    keys: HashMap<(String, String), (Version, Instant)>,
    latencies: Vec<f64>,
    superseded: u64,
    written: u64,
}

/// The follower process, measured.
struct Follower {
    child: Child,
    cpu_ticks: u64,
    peak_rss: u64,
}

fn proc_stats(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, in parentheses).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    Some((ticks, rss))
}

impl Follower {
    fn start(spec: &FollowSoakSpec) -> Result<Self, String> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
        let streams = std::env::var("AWS_ENDPOINT_URL_DYNAMODB_STREAMS").unwrap_or(endpoint);
        let child = Command::new(&spec.scansync)
            .args(["--schema", &spec.schema, "follow", "--table", &spec.table, "--index", &spec.index])
            .env("DATABASE_URL", &spec.database_url)
            .env("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", streams)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", spec.scansync.display()))?;
        Ok(Follower { child, cpu_ticks: 0, peak_rss: 0 })
    }

    fn sample(&mut self) {
        if let Some((ticks, rss)) = proc_stats(self.child.id()) {
            self.cpu_ticks = ticks;
            self.peak_rss = self.peak_rss.max(rss);
        }
    }

    /// Ends it (`kill -9`, or SIGTERM), returning its CPU ticks and peak RSS.
    fn end(mut self, signal: &str) -> (u64, u64) {
        self.sample();
        let _ = Command::new("kill").args([signal, &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        (self.cpu_ticks, self.peak_rss)
    }
}

fn version_of(g: &loadgen::Generated) -> Version {
    (g.updated_at.0, g.scan_id.clone())
}

/// Notes written records as pending (a newer version of a pending post supersedes it).
fn note(pending: &Mutex<Pending>, recs: &[loadgen::Generated], acked: Instant) {
    let mut p = pending.lock().expect("pending");
    for r in recs {
        p.written += 1;
        let Some(key) = &r.key else { continue };
        let v = version_of(r);
        match p.keys.get(key) {
            Some((old, _)) if *old >= v => p.superseded += 1,
            Some(_) => {
                p.superseded += 1;
                p.keys.insert(key.clone(), (v, acked));
            }
            None => {
                p.keys.insert(key.clone(), (v, acked));
            }
        }
    }
}

/// One poll: the pending posts whose rows now hold their version (or a newer one) are seen.
async fn poll(pg: &tokio_postgres::Client, schema: &str, pending: &Mutex<Pending>) -> Result<(), String> {
    let keys: Vec<(String, String)> = pending.lock().expect("pending").keys.keys().cloned().collect();
    for chunk in keys.chunks(5000) {
        let (platforms, ids): (Vec<&str>, Vec<&str>) =
            chunk.iter().map(|(p, e)| (p.as_str(), e.as_str())).unzip();
        let rows = pg
            .query(
                &format!(
                    "select c.platform, c.external_id,
                            (extract(epoch from greatest(c.source_updated_at, c.deleted_at)) * 1000000)::int8,
                            case when c.deleted_at is not null and (c.source_updated_at is null
                                      or (c.deleted_at, c.deleted_scan_id) > (c.source_updated_at, c.source_scan_id))
                                 then c.deleted_scan_id else c.source_scan_id end
                     from unnest($1::text[], $2::text[]) k(platform, external_id)
                     join {schema}.content c on c.platform = k.platform and c.external_id = k.external_id"
                ),
                &[&platforms, &ids],
            )
            .await;
        // Before the follower created the schema, there is nothing to see yet.
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => return Ok(()),
            Err(e) => return Err(e.as_db_error().map_or(e.to_string(), |d| d.message().to_string())),
        };
        let now = Instant::now();
        let mut p = pending.lock().expect("pending");
        for r in rows {
            let key: (String, String) = (r.get(0), r.get(1));
            let at: Option<i64> = r.get(2);
            let scan: Option<String> = r.get(3);
            let (Some(at), Some(scan)) = (at, scan) else { continue };
            if let Some((want, acked)) = p.keys.get(&key).cloned() {
                if (at, scan) >= want {
                    p.keys.remove(&key);
                    p.latencies.push((now - acked).as_secs_f64());
                }
            }
        }
    }
    Ok(())
}

/// The oldest acknowledgement among the writes not seen yet.
fn oldest_pending(pending: &Mutex<Pending>) -> Option<Instant> {
    pending.lock().expect("pending").keys.values().map(|(_, a)| *a).min()
}

/// Runs the follow soak.
pub async fn run(spec: &FollowSoakSpec) -> Result<FollowSoakReport, String> {
    let client = dynamo::client().await?;
    dynamo::create_streamed_table(&client, &spec.table, &spec.index).await?;
    let (pg, conn) = tokio_postgres::connect(&spec.database_url, NoTls).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    pg.batch_execute(&format!("drop schema if exists {} cascade", spec.schema))
        .await
        .map_err(|e| e.to_string())?;
    let mix = Mix { stamps: Stamps::Utc, ..Mix::default() };
    let mut g = Generator::new(spec.seed, mix, Shape::default());
    let pending = Arc::new(Mutex::new(Pending::default()));
    let mut report = FollowSoakReport::default();
    let (mut ticks, mut rss) = (0u64, 0u64);

    // The backlog, written before the follower starts.
    if spec.backlog > 0 {
        let recs: Vec<_> = (0..spec.backlog).map(|_| g.next_record(Timestamp::now())).collect();
        let t = Instant::now();
        for chunk in recs.chunks(5000) {
            let items = chunk.iter().map(|r| r.item.clone()).collect();
            dynamo::write_items(&client, &spec.table, items, spec.concurrency.max(8)).await?;
        }
        note(&pending, &recs, Instant::now());
        eprintln!(
            "loadgen follow-soak: backlog of {} records written in {:.1} s",
            spec.backlog,
            t.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let mut follower = Follower::start(spec)?;
    if spec.backlog > 0 {
        loop {
            poll(&pg, &spec.schema, &pending).await.ok();
            if pending.lock().expect("pending").keys.is_empty() {
                break;
            }
            if started.elapsed() > Duration::from_secs(3600) {
                return Err("the backlog was not drained within an hour".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!("loadgen follow-soak: backlog drained in {secs:.1} s");
        report.backlog = Some((spec.backlog, secs));
        let mut p = pending.lock().expect("pending");
        p.latencies.clear();
        p.written = 0;
        p.superseded = 0;
    }
    let soak_started = Instant::now();

    // The writer: every 100 ms, a tenth of a second's records, stamped just before they are sent.
    let writer = {
        let (client, pending, spec) = (client.clone(), pending.clone(), spec.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let mut written = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while start.elapsed() < spec.duration {
                tick.tick().await;
                let due = (start.elapsed().as_secs_f64() * spec.rate as f64) as u64;
                let n = due.saturating_sub(written).min(spec.rate / 5 + 1);
                if n == 0 {
                    continue;
                }
                let recs: Vec<_> = (0..n).map(|_| g.next_record(Timestamp::now())).collect();
                let items = recs.iter().map(|r| r.item.clone()).collect();
                dynamo::write_items(&client, &spec.table, items, spec.concurrency).await?;
                note(&pending, &recs, Instant::now());
                written += n;
            }
            Ok::<(u64, f64), String>((written, written as f64 / start.elapsed().as_secs_f64()))
        })
    };

    // Kills at random moments; the poller meanwhile.
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let mut kill_at: Vec<Duration> =
        (0..spec.kills).map(|_| spec.duration.mul_f64(0.05 + 0.9 * rng.f64())).collect();
    kill_at.sort();
    let mut restarts: Vec<Instant> = Vec::new();
    let mut last_sample = Instant::now();
    while !writer.is_finished() {
        poll(&pg, &spec.schema, &pending).await?;
        if last_sample.elapsed() > Duration::from_secs(1) {
            follower.sample();
            last_sample = Instant::now();
        }
        if kill_at.first().is_some_and(|at| soak_started.elapsed() >= *at) {
            kill_at.remove(0);
            let (t, r) = follower.end("-KILL");
            ticks += t;
            rss = rss.max(r);
            follower = Follower::start(spec)?;
            restarts.push(Instant::now());
        }
        // Catch-up after each restart: every write acknowledged before it is seen.
        while report.catch_up.len() < restarts.len() {
            let r = restarts[report.catch_up.len()];
            match oldest_pending(&pending) {
                Some(oldest) if oldest < r => break,
                _ => report.catch_up.push(r.elapsed().as_secs_f64()),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (written, rate) = writer.await.map_err(|e| e.to_string())??;
    let end = Instant::now();
    while !pending.lock().expect("pending").keys.is_empty() && end.elapsed() < Duration::from_secs(120) {
        poll(&pg, &spec.schema, &pending).await?;
        while report.catch_up.len() < restarts.len() {
            let r = restarts[report.catch_up.len()];
            match oldest_pending(&pending) {
                Some(oldest) if oldest < r => break,
                _ => report.catch_up.push(r.elapsed().as_secs_f64()),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (t, r) = follower.end("-TERM");
    ticks += t;
    rss = rss.max(r);
    let wall = soak_started.elapsed().as_secs_f64();
    let hz = 100.0; // USER_HZ on Linux
    report.cpu_cores = ticks as f64 / hz / wall;
    report.peak_rss = rss;
    let mut p = std::mem::take(&mut *pending.lock().expect("pending"));
    report.written = written;
    report.write_rate = rate;
    report.missing = p.keys.len() as u64;
    report.superseded = p.superseded;
    report.measured = p.latencies.len() as u64;
    p.latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        p.latencies
            .get(((p.latencies.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    report.latency = [pct(0.5), pct(0.99), pct(1.0)];
    report.verify_divergent = verify(
        &spec.scansync,
        &spec.database_url,
        &spec.schema,
        &spec.table,
        &spec.index,
        Timestamp::now().day(),
    )
    .await?;
    Ok(report)
}
