//! The soak: write at a steady rate into DynamoDB while the real scansync binary syncs
//! every few seconds; then reconcile every generated record against PostgreSQL.
//!
//! Freshness lag of a record version: from the moment its BatchWriteItem was acknowledged
//! to the `synced_at` of the content row that holds it. Versions overtaken by a newer one
//! before a sync saw them never land on their own; they are counted as superseded.

use crate::bench::run_scansync;
use crate::dynamo;
use loadgen::{Generator, Mix, Shape, Stamps};
use scansync_parse::time::Timestamp;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// Soak settings.
#[derive(Debug, Clone)]
pub struct SoakSpec {
    /// Records per second.
    pub rate: u64,
    /// How long to write.
    pub duration: Duration,
    /// Sync interval.
    pub every: Duration,
    /// DynamoDB table (created).
    pub table: String,
    /// The GSI.
    pub index: String,
    /// PostgreSQL.
    pub database_url: String,
    /// Target schema.
    pub schema: String,
    /// The scansync binary.
    pub scansync: PathBuf,
    /// BatchWriteItem calls in flight.
    pub concurrency: usize,
    /// Seed.
    pub seed: u64,
    /// How the writers stamp `updatedAt`.
    pub stamps: Stamps,
    /// Extra flags for every `scansync sync` (e.g. `--offset-margin 0`).
    pub sync_flags: Vec<String>,
}

/// What the soak found.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// Records written.
    pub written: u64,
    /// Achieved write rate.
    pub write_rate: f64,
    /// Content keys whose newest version landed.
    pub landed: u64,
    /// Content keys whose newest version is not in PostgreSQL although the index returns
    /// it: engine misses (must be 0).
    pub missing: u64,
    /// Content keys whose newest version is in the table but not in the index (a fault of
    /// the DynamoDB server, not of the engine).
    pub source_artefacts: u64,
    /// Records beyond repair (quarantined, not expected in content).
    pub rejects: u64,
    /// Versions overtaken before they could land.
    pub superseded: u64,
    /// Sync runs made.
    pub syncs: u64,
    /// Freshness lag percentiles in seconds: p50, p95, p99, max.
    pub lag: [f64; 4],
    /// Per sync run: wall time (s), items the index returned, records inside the window.
    pub runs: Vec<RunStats>,
    /// Keys `scansync verify` of the soak's days found missing, stale or diverged at the
    /// end (the engine's own reconciler; must be 0).
    pub verify_divergent: u64,
}

/// One sync run of the soak.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunStats {
    /// Wall time of the scansync process, seconds.
    pub seconds: f64,
    /// Items the index returned (before any trim).
    pub index_items: i64,
    /// Records inside the run's window.
    pub in_window: i64,
}

impl SoakReport {
    /// Sync wall times: first, median and last (seconds).
    pub fn durations(&self) -> [f64; 3] {
        let mut d: Vec<f64> = self.runs.iter().map(|r| r.seconds).collect();
        let (first, last) = (d.first().copied().unwrap_or(f64::NAN), d.last().copied().unwrap_or(f64::NAN));
        d.sort_by(|a, b| a.total_cmp(b));
        [first, d.get(d.len() / 2).copied().unwrap_or(f64::NAN), last]
    }

    /// Read amplification of each run (index items ÷ records in the window), sorted.
    pub fn amplifications(&self) -> Vec<f64> {
        let mut a: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| r.in_window > 0)
            .map(|r| r.index_items as f64 / r.in_window as f64)
            .collect();
        a.sort_by(|x, y| x.total_cmp(y));
        a
    }
}

/// One written version: instant as written, scan id, tombstone, write ack (epoch µs).
type Version = (Timestamp, String, bool, i64);

/// The newest version of a key: instant, scan id, tombstone, and the item's index key
/// (datePartition, updatedAt as written) to look it up in the index.
type Newest = (Timestamp, String, bool, String, String);

#[derive(Default)]
struct Ledger {
    /// scan id → (write ack, epoch µs).
    written_at: HashMap<String, i64>,
    /// key → newest version (instant as written, scan id) and whether it is a tombstone.
    newest: HashMap<(String, String), Newest>,
    /// key → every version written (instant, scan id, tombstone, write ack), for diagnosing
    /// a key that does not reconcile.
    history: HashMap<(String, String), Vec<Version>>,
    rejects: u64,
}

fn now_micros() -> i64 {
    Timestamp::now().0
}

/// Runs the soak.
pub async fn run(spec: &SoakSpec) -> Result<SoakReport, String> {
    let client = dynamo::client().await?;
    dynamo::create_table(&client, &spec.table, &spec.index).await?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (pg, conn) = tokio_postgres::connect(&spec.database_url, NoTls).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    pg.batch_execute(&format!("drop schema if exists {} cascade", spec.schema))
        .await
        .map_err(|e| e.to_string())?;

    // Writer: every 100 ms, a tenth of a second's records.
    let writer = {
        let (client, ledger, spec) = (client.clone(), ledger.clone(), spec.clone());
        tokio::spawn(async move {
            let mix = Mix { stamps: spec.stamps, ..Mix::default() };
            let mut g = Generator::new(spec.seed, mix, Shape::default());
            let start = Instant::now();
            let mut written = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while start.elapsed() < spec.duration {
                tick.tick().await;
                let due = (start.elapsed().as_secs_f64() * spec.rate as f64) as u64;
                // At most 0.2 s of records per tick, stamped just before they are sent: a
                // writer that falls behind (a saturated server) reports a lower rate instead
                // of sending minutes of backlog stamped long before it is written, which an
                // incremental window rightly leaves to the lookback.
                let n = due.saturating_sub(written).min(spec.rate / 5 + 1);
                if n == 0 {
                    continue;
                }
                let recs: Vec<_> = (0..n).map(|_| g.next_record(Timestamp::now())).collect();
                let items = recs.iter().map(|r| r.item.clone()).collect();
                dynamo::write_items(&client, &spec.table, items, spec.concurrency).await?;
                let acked = now_micros();
                let mut l = ledger.lock().expect("ledger");
                for r in recs {
                    match r.key {
                        Some(k) => {
                            l.written_at.insert(r.scan_id.clone(), acked);
                            l.history.entry(k.clone()).or_default().push((
                                r.updated_at,
                                r.scan_id.clone(),
                                r.deleted,
                                acked,
                            ));
                            // Newest by the engine's rule: instant as written, then scan id.
                            let text = |name: &str| match r.item.get(name) {
                                Some(scansync_parse::attr::Attr::S(v)) => v.clone(),
                                _ => String::new(),
                            };
                            let newest = (
                                r.updated_at,
                                r.scan_id.clone(),
                                r.deleted,
                                text("datePartition"),
                                text("updatedAt"),
                            );
                            let entry = l.newest.entry(k).or_insert_with(|| newest.clone());
                            if (r.updated_at, &r.scan_id) > (entry.0, &entry.1) {
                                *entry = newest;
                            }
                        }
                        None => l.rejects += 1,
                    }
                }
                written += n;
            }
            Ok::<(u64, f64), String>((written, written as f64 / start.elapsed().as_secs_f64()))
        })
    };

    // Syncer: the real binary every `every`, and the landing times of what it wrote.
    let mut lags: Vec<f64> = Vec::new();
    let mut landed_scans: HashMap<String, ()> = HashMap::new();
    let mut syncs = 0u64;
    let mut last_seen = 0i64;
    let started = Instant::now();
    let table = spec.table.clone();
    let bin = spec.scansync.clone();
    let mut sync_args: Vec<String> = [
        "--schema",
        spec.schema.as_str(),
        "sync",
        "--source",
        "dynamodb",
        "--table",
        table.as_str(),
        "--index",
        spec.index.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sync_args.extend(spec.sync_flags.iter().cloned());
    let mut finished = false;
    let mut writer = Some(writer);
    let mut report = SoakReport::default();
    loop {
        let next = started + spec.every * (syncs as u32 + 1);
        loop {
            // Checked before waiting too: a sync that overran its interval must still see
            // the writer finish, or the soak would sync forever.
            finished |= writer.as_ref().is_some_and(|w| w.is_finished());
            if finished || Instant::now() >= next {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if finished {
            if let Some(w) = writer.take() {
                let (written, rate) = w.await.map_err(|e| e.to_string())??;
                report.written = written;
                report.write_rate = rate;
            }
        }
        let (bin, url) = (bin.clone(), spec.database_url.clone());
        let args = sync_args.clone();
        let (took, _, _) = tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            run_scansync(&bin, &url, &a)
        })
        .await
        .map_err(|e| e.to_string())??;
        syncs += 1;
        let r = pg
            .query_one(
                &format!(
                    "select coalesce(index_items, 0), records_read - records_skipped from {}.sync_runs order by id desc limit 1",
                    spec.schema
                ),
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        report.runs.push(RunStats {
            seconds: took.as_secs_f64(),
            index_items: r.get(0),
            in_window: r.get(1),
        });
        // synced_at is its transaction's start time (now()): a page that committed after
        // the last look may carry an earlier synced_at than rows already seen. Looking a
        // margin behind the newest synced_at seen catches those (first sightings are kept
        // once); without it, a version seen only when its row changed again much later
        // showed a lag of minutes it never had.
        const OBSERVE_MARGIN_MICROS: i64 = 120_000_000;
        let rows = pg
            .query(
                &format!(
                    "select coalesce(source_scan_id, ''), coalesce(deleted_scan_id, ''),
                            (extract(epoch from synced_at) * 1000000)::int8
                     from {}.content where synced_at > to_timestamp($1::float8 / 1000000)",
                    spec.schema
                ),
                &[&((last_seen - OBSERVE_MARGIN_MICROS) as f64)],
            )
            .await
            .map_err(|e| e.to_string())?;
        let l = ledger.lock().expect("ledger");
        for r in rows {
            let synced: i64 = r.get(2);
            last_seen = last_seen.max(synced);
            for scan in [r.get::<_, String>(0), r.get::<_, String>(1)] {
                if let Some(at) = l.written_at.get(&scan) {
                    if landed_scans.insert(scan.clone(), ()).is_none() {
                        lags.push((synced - at) as f64 / 1e6);
                    }
                }
            }
        }
        drop(l);
        let last = report.runs.last().copied().unwrap_or_default();
        eprintln!(
            "loadgen soak: sync {syncs} done at {:.0} s in {:.1} s, {} index items for {} in the window, {} versions landed",
            started.elapsed().as_secs_f64(),
            last.seconds,
            last.index_items,
            last.in_window,
            landed_scans.len()
        );
        if finished {
            break;
        }
    }

    // Reconcile: every key's newest version must be in PostgreSQL.
    let rows = pg
        .query(
            &format!(
                "select platform, external_id, coalesce(source_scan_id, ''), coalesce(deleted_scan_id, ''), deleted_at is not null from {}.content",
                spec.schema
            ),
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut db: HashMap<(String, String), (String, String, bool)> = HashMap::with_capacity(rows.len());
    for r in rows {
        db.insert((r.get(0), r.get(1)), (r.get(2), r.get(3), r.get(4)));
    }
    // The writer is done: take the ledger out of its lock (the reconciler awaits queries).
    let l = std::mem::take(&mut *ledger.lock().expect("ledger"));
    let mut unreconciled = Vec::new();
    for (key, (_, scan, deleted, partition, stamp)) in &l.newest {
        let ok = match db.get(key) {
            Some((live, tomb, is_deleted)) => {
                if *deleted {
                    *is_deleted && tomb == scan
                } else {
                    live == scan && !*is_deleted
                }
            }
            None => false,
        };
        if ok {
            report.landed += 1;
        } else {
            unreconciled.push((key.clone(), scan.clone(), partition.clone(), stamp.clone()));
        }
    }
    // A key that did not reconcile is an engine miss only if the index returns its newest
    // version; an item the table holds but the index lost is the server's fault.
    for (key, scan, partition, stamp) in unreconciled {
        let in_index =
            dynamo::index_has(&client, &spec.table, &spec.index, &partition, &stamp, &scan).await?;
        let label = if in_index {
            report.missing += 1;
            "MISSING (engine)"
        } else {
            report.source_artefacts += 1;
            "not in the index (source artefact)"
        };
        if report.missing + report.source_artefacts <= 10 {
            eprintln!("loadgen soak: {label} {key:?}: in postgres {:?}", db.get(&key));
            for (at, scan, deleted, acked) in l.history.get(&key).into_iter().flatten() {
                eprintln!("    version {scan} at {at} deleted={deleted} acked={}", Timestamp(*acked));
            }
        }
    }
    let today = Timestamp::now().day();
    report.verify_divergent =
        verify(&spec.scansync, &spec.database_url, &spec.schema, &spec.table, &spec.index, today).await?;
    report.rejects = l.rejects;
    report.superseded = (l.written_at.len() as u64).saturating_sub(landed_scans.len() as u64);
    report.syncs = syncs;
    lags.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        if lags.is_empty() {
            f64::NAN
        } else {
            lags[((lags.len() - 1) as f64 * p).round() as usize]
        }
    };
    report.lag = [pct(0.50), pct(0.95), pct(0.99), pct(1.0)];
    Ok(report)
}

/// `scansync verify` of the days around `today` (every stamp form's partition) against
/// `table`: its divergent keys.
pub async fn verify(
    bin: &std::path::Path,
    url: &str,
    schema: &str,
    table: &str,
    index: &str,
    today: scansync_parse::time::Day,
) -> Result<u64, String> {
    let (from, to) = (today.plus(-2).to_string(), today.plus(1).to_string());
    let mut cmd = std::process::Command::new(bin);
    cmd.args([
        "--schema", schema, "verify", "--json", "--table", table, "--index", index, "--from", &from, "--to",
        &to,
    ])
    .env("DATABASE_URL", url)
    .env("RUST_LOG", "error");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(text.trim()).map_err(|_| {
        format!(
            "verify exited {} without a report: {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let divergent = report["divergent"].as_u64().ok_or("verify's report has no divergent count")?;
    if divergent > 0 {
        eprintln!("loadgen soak: verify found {divergent} divergent keys: {}", report["first"]);
    }
    Ok(divergent)
}
