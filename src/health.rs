//! `scansync health`: is the store fresh, and did the last run succeed?
//!
//! Exit status for probes and alarms: 0 healthy, 1 stale (last success older than
//! `--max-age`) or never ran, 2 the last finished run failed or was abandoned (its process
//! ended without finishing), or a backfill job has failed units or was interrupted (no
//! worker left) and has not been resumed, or the last recorded verify (`sync_runs` kind
//! `verify`) left divergent keys unrepaired (`diverged`). "Failed" wins over "stale": an
//! operator should see the error first.

use crate::checkpoint::CheckpointStore;
use crate::error::Result;
use crate::schema::quoted_schema;
use crate::time::Timestamp;
use std::time::Duration;
use tokio_postgres::Client;

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A recent successful run, and the last run succeeded.
    Healthy,
    /// No successful run yet.
    NeverRan,
    /// The last success is older than the threshold.
    Stale,
    /// The last finished run failed.
    Failed,
    /// The last verify found keys the store does not hold as the source does, and they
    /// were not repaired.
    Diverged,
}

impl Status {
    /// Returns the exit status for this verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::NeverRan | Status::Stale => 1,
            Status::Failed | Status::Diverged => 2,
        }
    }

    /// Returns the verdict's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::NeverRan => "never_ran",
            Status::Stale => "stale",
            Status::Failed => "failed",
            Status::Diverged => "diverged",
        }
    }
}

/// Everything `health` found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The verdict.
    pub status: Status,
    /// The threshold.
    pub max_age: Duration,
    /// When the last successful run finished.
    pub last_success: Option<Timestamp>,
    /// The last finished run: (status, started, finished, error).
    pub last_run: Option<(String, Timestamp, Timestamp, Option<String>)>,
    /// A run in progress, if any (started at): a `running` row while a process holds the
    /// run lock. A `running` row without the lock is a dead process's, reported as
    /// `abandoned` in `last_run`.
    pub running_since: Option<Timestamp>,
    /// Records of the last 24 h of incremental runs that the index query can miss: stamped
    /// further west of UTC than the run's offset margin.
    pub beyond_margin: i64,
    /// Records of the last 24 h whose `updatedAt` is an epoch number (never found by the
    /// index query; synced only by backfills and exports).
    pub epoch_stamps: i64,
    /// The checkpoint, or the error reading it.
    pub checkpoint: std::result::Result<Option<Timestamp>, String>,
    /// Backfill jobs not done: running, failed (units failed, no worker left) or
    /// interrupted (units left, no worker). A failed or interrupted job makes the verdict
    /// `failed` until it is resumed.
    pub backfills: Vec<crate::backfill::status::JobStatus>,
    /// Stream followers of the schema (`scansync follow`), one per followed table.
    pub followers: Vec<Follower>,
    /// The lag beyond which a follower is stale.
    pub max_lag: Duration,
    /// The newest verify that recorded itself (`sync_runs` kind `verify`).
    pub last_verify: Option<LastVerify>,
    /// When the report was made.
    pub now: Timestamp,
}

/// The newest verify that recorded itself, as its ledger row keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct LastVerify {
    /// `succeeded` (it compared every page, whatever it found), `failed`, `cancelled`...
    pub status: String,
    /// When it finished (or started, while running).
    pub at: Timestamp,
    /// The days compared (`None`: a whole export).
    pub days: Option<(String, String)>,
    /// What it found, and what was left after its repair.
    pub counts: crate::ledger::VerifyCounts,
    /// Its error, if it failed.
    pub error: Option<String>,
}

impl LastVerify {
    /// Whether it found divergent keys it did not repair.
    pub fn diverged(&self) -> bool {
        self.status == "succeeded" && self.counts.unrepaired > 0
    }

    fn to_json(&self, now: Timestamp) -> serde_json::Value {
        let c = &self.counts;
        serde_json::json!({
            "status": self.status, "at": self.at.to_iso(),
            "age_seconds": (now.0 - self.at.0) as f64 / 1e6,
            "from": self.days.as_ref().map(|d| &d.0), "to": self.days.as_ref().map(|d| &d.1),
            "missing": c.missing, "stale": c.stale, "diverged": c.diverged, "ahead": c.ahead,
            "unrepaired": c.unrepaired, "error": self.error,
        })
    }
}

/// A stream follower as its heartbeat left it (`streams`, `stream_gaps`).
#[derive(Debug, Clone, PartialEq)]
pub struct Follower {
    /// The followed table.
    pub table: String,
    /// Seconds since its last heartbeat (`None`: it never beat).
    pub heartbeat_age: Option<f64>,
    /// The most behind open shard's lag, in seconds, at that heartbeat.
    pub lag: Option<f64>,
    /// Open shards being read.
    pub open_shards: i32,
    /// Gaps not healed yet.
    pub gaps_open: i64,
    /// Of those, the ones whose heal failed, with the last error.
    pub heal_error: Option<String>,
}

/// A follower whose heartbeat is older than this is not running.
pub const FOLLOWER_GONE: Duration = Duration::from_secs(60);

impl Follower {
    /// Alive (a recent heartbeat) and no further behind than `max_lag`.
    pub fn is_fresh(&self, max_lag: Duration) -> bool {
        self.heartbeat_age.is_some_and(|a| a <= FOLLOWER_GONE.as_secs_f64())
            && self.lag.unwrap_or(0.0) <= max_lag.as_secs_f64()
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "table": self.table, "heartbeat_age_seconds": self.heartbeat_age, "lag_seconds": self.lag,
            "open_shards": self.open_shards, "gaps_open": self.gaps_open, "heal_error": self.heal_error,
        })
    }
}

impl Report {
    /// Returns the minutes since the last success.
    pub fn minutes_since_success(&self) -> Option<f64> {
        self.last_success.map(|t| (self.now.0 - t.0) as f64 / 60e6)
    }

    /// Renders the report as JSON.
    pub fn to_json(&self) -> String {
        use serde_json::json;
        let iso = |t: Option<Timestamp>| t.map(|t| t.to_iso());
        let last_run = self.last_run.as_ref().map(|(s, a, b, e)| {
            json!({"status": s, "started_at": a.to_iso(), "finished_at": b.to_iso(), "error": e})
        });
        let (cp, cp_err) = match &self.checkpoint {
            Ok(c) => (iso(*c), None),
            Err(e) => (None, Some(e.clone())),
        };
        json!({
            "status": self.status.as_str(),
            "exit_code": self.status.exit_code(),
            "max_age_minutes": self.max_age.as_secs_f64() / 60.0,
            "minutes_since_last_success": self.minutes_since_success(),
            "last_success_at": iso(self.last_success),
            "last_run": last_run,
            "running_since": iso(self.running_since),
            "checkpoint": cp,
            "checkpoint_error": cp_err,
            "stamp_warnings": {
                "beyond_offset_margin_24h": self.beyond_margin,
                "epoch_stamps_24h": self.epoch_stamps,
            },
            "backfill_jobs": self.backfills.iter().map(|j| j.to_json()).collect::<Vec<_>>(),
            "followers": self.followers.iter().map(Follower::to_json).collect::<Vec<_>>(),
            "max_lag_seconds": self.max_lag.as_secs_f64(),
            "last_verify": self.last_verify.as_ref().map(|v| v.to_json(self.now)),
        })
        .to_string()
    }

    /// Renders the report for people.
    pub fn to_text(&self) -> String {
        let mut out = self.status.as_str().to_string();
        match self.minutes_since_success() {
            Some(m) => out.push_str(&format!(
                ": last successful run {m:.1} min ago (threshold {:.0} min)",
                self.max_age.as_secs_f64() / 60.0
            )),
            None => out.push_str(": no successful run recorded"),
        }
        if let Some((s, started, _, e)) = &self.last_run {
            out.push_str(&format!("\n  last run: {s}, started {started}"));
            if let Some(e) = e {
                out.push_str(&format!("\n  error: {e}"));
            }
        }
        if let Some(r) = self.running_since {
            out.push_str(&format!("\n  a run is in progress since {r}"));
        }
        if self.beyond_margin > 0 {
            out.push_str(&format!(
                "\n  WARNING: {} records in the last 24 h were stamped further west of UTC than --offset-margin: the index query can miss such records; raise the margin",
                self.beyond_margin
            ));
        }
        if self.epoch_stamps > 0 {
            out.push_str(&format!(
                "\n  WARNING: {} records in the last 24 h have an updatedAt written as an epoch number: the index query never finds them",
                self.epoch_stamps
            ));
        }
        for j in &self.backfills {
            out.push_str(&format!("\n  backfill {}", j.to_text().replace('\n', "\n  ")));
        }
        for f in &self.followers {
            let beat = f.heartbeat_age.map_or("never".to_string(), |a| format!("{a:.0} s ago"));
            let lag = f.lag.map_or("unknown".to_string(), |l| format!("{l:.1} s"));
            let state = if f.is_fresh(self.max_lag) { "following" } else { "STALE" };
            out.push_str(&format!(
                "\n  follower of {}: {state}, heartbeat {beat}, lag {lag} (threshold {:.0} s), {} open shards, {} gaps to heal",
                f.table,
                self.max_lag.as_secs_f64(),
                f.open_shards,
                f.gaps_open
            ));
            if let Some(e) = &f.heal_error {
                out.push_str(&format!("\n    a gap could not be healed: {e}"));
            }
        }
        if let Some(v) = &self.last_verify {
            let c = &v.counts;
            let days =
                v.days.as_ref().map_or("a whole export".to_string(), |(a, b)| format!("days {a} .. {b}"));
            let found = if v.status == "succeeded" {
                format!(
                    "{} missing, {} stale, {} diverged, {} left unrepaired",
                    c.missing, c.stale, c.diverged, c.unrepaired
                )
            } else {
                format!("{} ({})", v.status, v.error.as_deref().unwrap_or("no error recorded"))
            };
            let flag = if v.diverged() { "DIVERGED: " } else { "" };
            out.push_str(&format!("\n  last verify ({days}, {}): {flag}{found}", v.at));
        }
        match &self.checkpoint {
            Ok(Some(c)) => out.push_str(&format!("\n  checkpoint: {c}")),
            Ok(None) => out.push_str("\n  checkpoint: none yet"),
            Err(e) => out.push_str(&format!("\n  checkpoint: unreadable ({e})")),
        }
        out
    }
}

/// Builds the report from the run ledger and the checkpoint store.
pub async fn check<C: CheckpointStore>(
    client: &Client,
    schema: &str,
    store: Option<&C>,
    max_age: Duration,
    max_lag: Duration,
) -> Result<Report> {
    let q = quoted_schema(schema)?;
    let now = Timestamp::now();
    let exists: bool =
        client.query_one("select to_regclass($1) is not null", &[&format!("{q}.sync_runs")]).await?.get(0);
    let mut report = Report {
        status: Status::NeverRan,
        max_age,
        last_success: None,
        last_run: None,
        running_since: None,
        beyond_margin: 0,
        epoch_stamps: 0,
        checkpoint: Ok(None),
        backfills: Vec::new(),
        followers: Vec::new(),
        max_lag,
        last_verify: None,
        now,
    };
    if !exists {
        return Ok(report);
    }
    let micros = |col: &str| format!("(extract(epoch from {col}) * 1000000)::int8");
    let kinds = "kind in ('sync', 'demo')";
    // Without the lock, no process is running: a `running` row is a dead run's.
    let held = crate::lock::is_held(client, schema).await?;
    let status =
        if held { "status" } else { "case when status = 'running' then 'abandoned' else status end" };
    let error = if held {
        "error"
    } else {
        "case when status = 'running' then 'the process ended without finishing the run (killed, or its host was lost)' else error end"
    };
    let last = client
        .query_opt(
            &format!(
                "select {status}, {}, {}, {error} from {q}.sync_runs
                 where {kinds} and ({held} or status <> 'running') order by started_at desc, id desc limit 1",
                micros("started_at"),
                micros("coalesce(finished_at, started_at)"),
                held = if held { "false" } else { "true" },
            ),
            &[],
        )
        .await?;
    report.last_run = last.map(|r| (r.get(0), Timestamp(r.get(1)), Timestamp(r.get(2)), r.get(3)));
    report.last_success = client
        .query_one(
            &format!(
                "select {} from {q}.sync_runs where {kinds} and status = 'succeeded'",
                micros("max(finished_at)")
            ),
            &[],
        )
        .await?
        .get::<_, Option<i64>>(0)
        .map(Timestamp);
    if held {
        report.running_since = client
            .query_one(
                &format!(
                    "select {} from {q}.sync_runs where {kinds} and status = 'running'",
                    micros("max(started_at)")
                ),
                &[],
            )
            .await?
            .get::<_, Option<i64>>(0)
            .map(Timestamp);
    }
    let warnings = client
        .query_one(
            &format!(
                "select coalesce(sum(beyond_margin), 0)::int8, coalesce(sum(epoch_stamps), 0)::int8
                 from {q}.sync_runs where started_at > now() - interval '24 hours'"
            ),
            &[],
        )
        .await?;
    report.beyond_margin = warnings.get(0);
    report.epoch_stamps = warnings.get(1);
    if let Some(store) = store {
        report.checkpoint = store.read().await.map_err(|e| e.to_string());
    }
    report.backfills = crate::backfill::status::all(client, schema)
        .await?
        .into_iter()
        .filter(|j| j.state != "done")
        .collect();
    report.followers = followers(client, &q).await?;
    report.last_verify = last_verify(client, &q).await?;
    let backfill_failed = report.backfills.iter().any(|j| j.state == "failed" || j.state == "interrupted");
    let heal_failed = report.followers.iter().any(|f| f.heal_error.is_some());
    let follower_stale = report.followers.iter().any(|f| !f.is_fresh(max_lag));
    let following = !report.followers.is_empty() && !follower_stale;
    let max_age_micros = max_age.as_micros().min(i64::MAX as u128) as i64;
    report.status = match (&report.last_run, report.last_success) {
        (Some((s, ..)), _) if s == "failed" || s == "abandoned" => Status::Failed,
        _ if backfill_failed || heal_failed => Status::Failed,
        _ if report.last_verify.as_ref().is_some_and(LastVerify::diverged) => Status::Diverged,
        _ if follower_stale => Status::Stale,
        // A follower that is alive and caught up keeps the store fresh whatever the syncs do.
        _ if following => Status::Healthy,
        (_, None) => Status::NeverRan,
        (_, Some(t)) if now.0 - t.0 > max_age_micros => Status::Stale,
        _ => Status::Healthy,
    };
    Ok(report)
}

/// The newest verify that recorded itself (none before migration 5).
async fn last_verify(client: &Client, q: &str) -> Result<Option<LastVerify>> {
    let has: bool = client
        .query_one(
            "select exists (select 1 from information_schema.columns
                            where table_schema = $1 and table_name = 'sync_runs' and column_name = 'verify_unrepaired')",
            &[&q.trim_matches('"')],
        )
        .await?
        .get(0);
    if !has {
        return Ok(None);
    }
    let row = client
        .query_opt(
            &format!(
                "select status, (extract(epoch from coalesce(finished_at, started_at)) * 1000000)::int8,
                        first_partition::text, last_partition::text,
                        coalesce(verify_missing, 0), coalesce(verify_stale, 0), coalesce(verify_diverged, 0),
                        coalesce(verify_ahead, 0), coalesce(verify_unrepaired, 0), error
                 from {q}.sync_runs where kind = 'verify' and status <> 'running' order by id desc limit 1"
            ),
            &[],
        )
        .await?;
    Ok(row.map(|r| {
        let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
        LastVerify {
            status: r.get(0),
            at: Timestamp(r.get(1)),
            days: r.get::<_, Option<String>>(2).zip(r.get::<_, Option<String>>(3)),
            counts: crate::ledger::VerifyCounts {
                missing: n(4),
                stale: n(5),
                diverged: n(6),
                ahead: n(7),
                unrepaired: n(8),
            },
            error: r.get(9),
        }
    }))
}

/// The followers of the schema, from their heartbeats and gaps (none before migration 4).
async fn followers(client: &Client, q: &str) -> Result<Vec<Follower>> {
    let exists: bool =
        client.query_one("select to_regclass($1) is not null", &[&format!("{q}.streams")]).await?.get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            &format!(
                "select s.table_name, extract(epoch from now() - s.heartbeat_at)::float8, s.lag_seconds, s.open_shards,
                        (select count(*) from {q}.stream_gaps g where g.table_name = s.table_name and g.healed_at is null),
                        (select g.heal_error from {q}.stream_gaps g where g.table_name = s.table_name
                           and g.healed_at is null and g.heal_error is not null order by g.id desc limit 1)
                 from {q}.streams s order by 1"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Follower {
            table: r.get(0),
            heartbeat_age: r.get(1),
            lag: r.get(2),
            open_shards: r.get(3),
            gaps_open: r.get(4),
            heal_error: r.get(5),
        })
        .collect())
}
