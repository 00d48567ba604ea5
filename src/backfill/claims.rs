//! A worker's claims on the units of a job: claimed with `FOR UPDATE SKIP LOCKED`, tied to
//! the worker's advisory lock, marked done or failed only while still the worker's own.

use crate::db;
use crate::error::Result;
use crate::lock::worker_alive_sql;
use crate::pipeline::JobUnits;
use crate::retry::Retry;
use crate::schema::quoted_schema;
use futures_util::future::BoxFuture;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::Client;

/// One worker's handle on its job's units.
pub struct Claims {
    url: String,
    schema: String,
    job_id: i64,
    worker_id: i64,
    worker_name: String,
    client: Mutex<Option<Client>>,
    page_size: usize,
    retry_budget: Duration,
    claim_sql: String,
    batch_sql: String,
    done_sql: String,
    fail_sql: String,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims").field("job_id", &self.job_id).field("worker_id", &self.worker_id).finish()
    }
}

impl Claims {
    /// Opens the claims of worker `worker_id` (registered, holding its lock) on `job_id`;
    /// recording a unit's state is retried within `retry_budget`.
    pub async fn open(
        url: &str,
        schema: &str,
        job_id: i64,
        worker_id: i64,
        worker_name: &str,
        page_size: usize,
        retry_budget: Duration,
    ) -> Result<Self> {
        let q = quoted_schema(schema)?;
        // Claimable: pending; failed before this worker started (a failure is retried by
        // the next invocation, not over and over by the same one); or running under a
        // worker that is gone (its lock released: killed, host lost).
        let claim_sql = format!(
            "with live as (
                 select w.id from {q}.backfill_workers w
                 where w.job_id = $1 and w.finished_at is null and {alive}
             ), c as (
                 select u.unit from {q}.backfill_units u
                 where u.job_id = $1
                   and (u.state = 'pending'
                        or (u.state = 'failed'
                            and u.finished_at < (select started_at from {q}.backfill_workers where id = $2))
                        or (u.state = 'running' and u.worker_id <> $2
                            and u.worker_id not in (select id from live)))
                 order by u.ordinal
                 limit 1
                 for update skip locked
             )
             update {q}.backfill_units u
             set state = 'running', worker_id = $2, worker = $3, attempts = u.attempts + 1,
                 started_at = now(), finished_at = null
             from c where u.job_id = $1 and u.unit = c.unit
             returning u.unit, u.attempts",
            alive = worker_alive_sql("w", "$4"),
        );
        // Small pending units (known to hold at most half a page) are claimed together and
        // read into shared pages: many small files then take few transactions.
        let batch_sql = format!(
            "select unit, size_hint from {q}.backfill_units
             where job_id = $1 and state = 'pending' and size_hint <= $2
             order by ordinal limit $3 for update skip locked"
        );
        let done_sql = format!(
            "update {q}.backfill_units
             set state = 'done', completions = completions + 1, records = $4, pages = $5,
                 finished_at = now(), last_error = null
             where job_id = $1 and unit = $2 and worker_id = $3 and state = 'running'"
        );
        let fail_sql = format!(
            "update {q}.backfill_units set state = 'failed', last_error = $4, finished_at = now()
             where job_id = $1 and unit = $2 and worker_id = $3 and state = 'running'"
        );
        let client = db::connect(url).await?;
        Ok(Self {
            url: url.to_string(),
            schema: schema.to_string(),
            job_id,
            worker_id,
            worker_name: worker_name.to_string(),
            client: Mutex::new(Some(client)),
            page_size: page_size.max(1),
            retry_budget,
            claim_sql,
            batch_sql,
            done_sql,
            fail_sql,
        })
    }

    /// The claims' connection, opened again if it closed.
    async fn connected<'a>(&self, slot: &'a mut Option<Client>) -> Result<&'a mut Client> {
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(db::connect(&self.url).await?);
        }
        Ok(slot.as_mut().expect("just set"))
    }

    /// Claims the next units: a batch of small pending ones that fill about one page, or
    /// else one unit. Empty when no unit is left to claim.
    pub async fn claim(&self) -> Result<Vec<String>> {
        let mut guard = self.client.lock().await;
        let client = self.connected(&mut guard).await?;
        let batch = self.claim_batch(client).await?;
        if !batch.is_empty() {
            return Ok(batch);
        }
        let row = client
            .query_opt(&self.claim_sql, &[&self.job_id, &self.worker_id, &self.worker_name, &self.schema])
            .await?;
        Ok(row
            .map(|r| {
                let (unit, attempts): (String, i32) = (r.get(0), r.get(1));
                if attempts > 1 {
                    tracing::info!(%unit, attempts, "claimed a unit again (failed or abandoned before)");
                }
                unit
            })
            .into_iter()
            .collect())
    }

    async fn claim_batch(&self, client: &mut Client) -> Result<Vec<String>> {
        let page = self.page_size as i64;
        let tx = client.transaction().await?;
        let rows = tx.query(&self.batch_sql, &[&self.job_id, &(page / 2), &page.min(1000)]).await?;
        let mut units = Vec::new();
        let mut records = 0i64;
        for r in &rows {
            let hint: i64 = r.get(1);
            if !units.is_empty() && records + hint > page {
                break;
            }
            records += hint;
            units.push(r.get::<_, String>(0));
        }
        if units.len() > 1 {
            let q = quoted_schema(&self.schema)?;
            tx.execute(
                &format!(
                    "update {q}.backfill_units set state = 'running', worker_id = $2, worker = $3,
                     attempts = attempts + 1, started_at = now(), finished_at = null
                     where job_id = $1 and unit = any($4)"
                ),
                &[&self.job_id, &self.worker_id, &self.worker_name, &units],
            )
            .await?;
            tx.commit().await?;
            return Ok(units);
        }
        // One small unit (or none): the ordinary claim takes it, in claim order.
        tx.rollback().await?;
        Ok(Vec::new())
    }

    /// Marks `unit` done (every page of it committed), retried within the budget; a unit
    /// no longer this worker's (another worker took it over) is left to that worker.
    async fn mark_done(&self, unit: &str, records: u64, pages: u64) -> Result<()> {
        let (r, p) = (records as i64, pages as i64);
        let n = self.execute(&self.done_sql, &[&self.job_id, &unit, &self.worker_id, &r, &p]).await?;
        if n == 0 {
            tracing::warn!(%unit, "unit finished, but another worker had taken it over: left to that worker");
        }
        Ok(())
    }

    async fn execute(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<u64> {
        let run = || async move {
            let mut guard = self.client.lock().await;
            Ok(self.connected(&mut guard).await?.execute(sql, params).await?)
        };
        Retry::within(self.retry_budget)
            .run(run, |_, _, _| {})
            .await
            .map_err(|e| e.context("recording a backfill unit's state"))
    }
}

impl JobUnits for Claims {
    fn claim(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(Claims::claim(self))
    }

    fn done<'a>(&'a self, unit: &'a str, records: u64, pages: u64) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.mark_done(unit, records, pages))
    }

    /// Marks `unit` failed with its error (retried by the next invocation of the job).
    fn fail<'a>(&'a self, unit: &'a str, error: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.execute(&self.fail_sql, &[&self.job_id, &unit, &self.worker_id, &error]).await?;
            Ok(())
        })
    }

    fn page_size(&self) -> usize {
        self.page_size
    }
}
