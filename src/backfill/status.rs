//! `scansync backfill status`: every job's progress, its failed units with their errors, and
//! the workers holding claims. Also read by `health`.

use crate::error::Result;
use crate::lock::worker_alive_sql;
use crate::schema::quoted_schema;
use serde_json::json;
use tokio_postgres::{Client, Row};

/// Units of a job by state. A unit `running` under a worker that is gone is `abandoned`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitCounts {
    /// Every unit.
    pub total: i64,
    /// Not claimed yet.
    pub pending: i64,
    /// Claimed by a live worker.
    pub running: i64,
    /// Claimed by a worker that is gone (claimed again by the next worker).
    pub abandoned: i64,
    /// Done.
    pub done: i64,
    /// Failed (retried by the next invocation).
    pub failed: i64,
}

impl UnitCounts {
    /// Units a new worker could claim.
    pub fn claimable(&self) -> i64 {
        self.pending + self.abandoned + self.failed
    }
}

/// A worker holding claims.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Its id.
    pub id: i64,
    /// `host:pid`.
    pub name: String,
    /// When it started (ISO 8601).
    pub started_at: String,
    /// The units it is working on.
    pub units: Vec<String>,
}

/// A failed unit.
#[derive(Debug, Clone)]
pub struct FailedUnit {
    /// The unit.
    pub unit: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Its last error.
    pub error: String,
}

/// One job's progress.
#[derive(Debug, Clone)]
pub struct JobStatus {
    /// The job's id.
    pub id: i64,
    /// What it covers (source:target:range).
    pub key: String,
    /// `done`, `running` (a live worker), `failed` (failed units, no live worker),
    /// `interrupted` (units left, no live worker, none failed).
    pub state: &'static str,
    /// Units by state.
    pub units: UnitCounts,
    /// Records of the done units.
    pub records: i64,
    /// Pages of the done units.
    pub pages: i64,
    /// Created (ISO 8601).
    pub created_at: String,
    /// Finished (ISO 8601), when every unit is done.
    pub finished_at: Option<String>,
    /// Live workers.
    pub workers: Vec<Worker>,
    /// Failed units (the first 50), with their errors.
    pub failed: Vec<FailedUnit>,
    /// A staged first load (its rows folded into the tables when every unit is done).
    pub staged: bool,
    /// Its staged rows were folded.
    pub folded: bool,
}

/// The most failed units listed per job.
const FAILED_LISTED: i64 = 50;

/// Reads one job.
pub async fn job(client: &Client, schema: &str, id: i64) -> Result<JobStatus> {
    let mut jobs = read(client, schema, Some(id)).await?;
    jobs.pop().ok_or_else(|| crate::Error::internal(format!("backfill job {id} is gone")))
}

/// Reads every job, newest first (none when the schema has no job table yet).
pub async fn all(client: &Client, schema: &str) -> Result<Vec<JobStatus>> {
    let q = quoted_schema(schema)?;
    let exists: bool = client
        .query_one("select to_regclass($1) is not null", &[&format!("{q}.backfill_jobs")])
        .await?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    read(client, schema, None).await
}

async fn read(client: &Client, schema: &str, id: Option<i64>) -> Result<Vec<JobStatus>> {
    let q = quoted_schema(schema)?;
    let iso = |col: &str| format!("to_char({col} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
    let jobs = client
        .query(
            &format!(
                "with live as (
                     select w.id from {q}.backfill_workers w where w.finished_at is null and {alive}
                 )
                 select j.id, j.job_key, {created}, {finished},
                     count(u.unit),
                     count(*) filter (where u.state = 'pending'),
                     count(*) filter (where u.state = 'running' and u.worker_id in (select id from live)),
                     count(*) filter (where u.state = 'running' and u.worker_id not in (select id from live)),
                     count(*) filter (where u.state = 'done'),
                     count(*) filter (where u.state = 'failed'),
                     coalesce(sum(u.records) filter (where u.state = 'done'), 0)::int8,
                     coalesce(sum(u.pages) filter (where u.state = 'done'), 0)::int8,
                     (select count(*) from live l join {q}.backfill_workers w on w.id = l.id where w.job_id = j.id),
                     j.staged, j.folded_at is not null
                 from {q}.backfill_jobs j left join {q}.backfill_units u on u.job_id = j.id
                 where $2::int8 is null or j.id = $2
                 group by j.id order by j.id desc",
                alive = worker_alive_sql("w", "$1"),
                created = iso("j.created_at"),
                finished = iso("j.finished_at"),
            ),
            &[&schema, &id],
        )
        .await?;
    let mut out = Vec::with_capacity(jobs.len());
    for r in &jobs {
        let mut job = from_row(r);
        let live_workers: i64 = r.get(12);
        if live_workers > 0 {
            job.workers = workers(client, &q, schema, job.id).await?;
        }
        if job.units.failed > 0 {
            job.failed = client
                .query(
                    &format!(
                        "select unit, attempts, coalesce(last_error, '') from {q}.backfill_units
                         where job_id = $1 and state = 'failed' order by ordinal limit {FAILED_LISTED}"
                    ),
                    &[&job.id],
                )
                .await?
                .iter()
                .map(|r| FailedUnit { unit: r.get(0), attempts: r.get(1), error: r.get(2) })
                .collect();
        }
        let unfolded = job.staged && !job.folded;
        job.state = if job.units.done == job.units.total && !unfolded {
            "done"
        } else if live_workers > 0 {
            "running"
        } else if job.units.failed > 0 {
            "failed"
        } else {
            "interrupted"
        };
        out.push(job);
    }
    Ok(out)
}

fn from_row(r: &Row) -> JobStatus {
    JobStatus {
        id: r.get(0),
        key: r.get(1),
        state: "",
        created_at: r.get(2),
        finished_at: r.get(3),
        units: UnitCounts {
            total: r.get(4),
            pending: r.get(5),
            running: r.get(6),
            abandoned: r.get(7),
            done: r.get(8),
            failed: r.get(9),
        },
        records: r.get(10),
        pages: r.get(11),
        workers: Vec::new(),
        failed: Vec::new(),
        staged: r.get(13),
        folded: r.get(14),
    }
}

async fn workers(client: &Client, q: &str, schema: &str, job: i64) -> Result<Vec<Worker>> {
    let rows = client
        .query(
            &format!(
                "select w.id, w.name, to_char(w.started_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                     coalesce(array_agg(u.unit order by u.ordinal) filter (where u.unit is not null), '{{}}')
                 from {q}.backfill_workers w
                 left join {q}.backfill_units u on u.job_id = w.job_id and u.worker_id = w.id and u.state = 'running'
                 where w.job_id = $2 and w.finished_at is null and {alive}
                 group by w.id order by w.id",
                alive = worker_alive_sql("w", "$1"),
            ),
            &[&schema, &job],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Worker { id: r.get(0), name: r.get(1), started_at: r.get(2), units: r.get(3) })
        .collect())
}

impl JobStatus {
    /// Renders the job as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let u = &self.units;
        json!({
            "id": self.id,
            "job": self.key,
            "state": self.state,
            "units": {
                "total": u.total, "done": u.done, "running": u.running, "pending": u.pending,
                "abandoned": u.abandoned, "failed": u.failed,
            },
            "records": self.records,
            "pages": self.pages,
            "staged": self.staged,
            "folded": self.folded,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "workers": self.workers.iter().map(|w| json!({
                "id": w.id, "name": w.name, "started_at": w.started_at, "units": w.units,
            })).collect::<Vec<_>>(),
            "failed_units": self.failed.iter().map(|f| json!({
                "unit": f.unit, "attempts": f.attempts, "error": f.error,
            })).collect::<Vec<_>>(),
        })
    }

    /// Renders the job for people: one line, then its workers and failed units.
    pub fn to_text(&self) -> String {
        let u = &self.units;
        let mut out = format!(
            "job {} {}: {} units done of {} ({} running, {} pending, {} abandoned, {} failed), {} records — {}",
            self.id, self.key, u.done, u.total, u.running, u.pending, u.abandoned, u.failed, self.records, self.state
        );
        if self.staged && !self.folded {
            out.push_str(
                " (a staged first load: its rows are folded into the tables when every unit is done)",
            );
        }
        for w in &self.workers {
            out.push_str(&format!(
                "\n  worker {} {} since {}: {}",
                w.id,
                w.name,
                w.started_at,
                w.units.join(", ")
            ));
        }
        for f in &self.failed {
            out.push_str(&format!("\n  failed {} (attempts {}): {}", f.unit, f.attempts, f.error));
        }
        if u.failed > self.failed.len() as i64 {
            out.push_str(&format!("\n  … and {} more failed units", u.failed - self.failed.len() as i64));
        }
        match self.state {
            "failed" | "interrupted" => out.push_str(
                "\n  resume: run the same backfill command again (it retries failed and abandoned units)",
            ),
            _ => {}
        }
        out
    }
}
