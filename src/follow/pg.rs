//! [`FollowStore`] on PostgreSQL: the `streams`, `stream_shards` and `stream_gaps` tables,
//! and the canonical tables written by the same writer as every other source, each page
//! committed with its shard's position in one transaction
//! ([`crate::write::postgres::ShardPosition`]).

use super::{FollowStore, Followed, Gap, Position, StoredShard};
use crate::db;
use crate::error::Result;
use crate::parse::ParsedPage;
use crate::retry::Retry;
use crate::schema::quoted_schema;
use crate::stats::WriteStats;
use crate::stream::shards::{Known, ShardState};
use crate::stream::{Shard, StreamInfo};
use crate::time::Timestamp;
use crate::write::postgres::{PgPage, PgSink, PgWriter, ShardPosition};
use crate::write::Sink;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tokio_postgres::Client;

/// The follower's state and pages in one schema, for one table.
pub struct PgFollowStore {
    url: String,
    q: String,
    table: String,
    sink: PgSink,
    writers: Mutex<Vec<PgWriter>>,
    slots: Semaphore,
    client: Mutex<Option<Client>>,
    budget: Duration,
}

impl PgFollowStore {
    /// The store of `table`'s follower in `schema`; pages are written by up to `writers`
    /// connections (quarantine rows tagged with `run_id`).
    pub fn new(
        url: &str,
        schema: &str,
        table: &str,
        run_id: Option<i64>,
        writers: usize,
        budget: Duration,
    ) -> Result<Self> {
        Ok(Self {
            url: url.to_string(),
            q: quoted_schema(schema)?,
            table: table.to_string(),
            sink: PgSink::new(url, schema, run_id)?,
            writers: Mutex::new(Vec::new()),
            slots: Semaphore::new(writers.max(1)),
            client: Mutex::new(None),
            budget,
        })
    }

    /// Runs `sql` on the state connection (opened again if it closed), retried within the
    /// budget.
    async fn execute(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<u64> {
        Retry::within(self.budget)
            .run(
                || async move {
                    let mut guard = self.client.lock().await;
                    if guard.as_ref().is_none_or(|c| c.is_closed()) {
                        *guard = Some(db::connect(&self.url).await?);
                    }
                    Ok(guard.as_ref().expect("connected above").execute(sql, params).await?)
                },
                |e, attempt, _| tracing::warn!(error = %e, attempt, "recording the follower's state failed, retrying"),
            )
            .await
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        Retry::within(self.budget)
            .run(
                || async move {
                    let mut guard = self.client.lock().await;
                    if guard.as_ref().is_none_or(|c| c.is_closed()) {
                        *guard = Some(db::connect(&self.url).await?);
                    }
                    Ok(guard.as_ref().expect("connected above").query(sql, params).await?)
                },
                |e, attempt, _| tracing::warn!(error = %e, attempt, "reading the follower's state failed, retrying"),
            )
            .await
    }

    /// Notes that the follower is alive and where it stands (for `health` and `/healthz`):
    /// the most behind open shard's lag, in seconds, and how many shards are open.
    pub async fn heartbeat(&self, lag: f64, open_shards: usize) -> Result<()> {
        let sql = format!(
            "update {q}.streams set heartbeat_at = now(), lag_seconds = $2, open_shards = $3,
             records = (select coalesce(sum(records), 0) from {q}.stream_shards s where s.stream_arn = streams.stream_arn)
             where table_name = $1",
            q = self.q
        );
        self.execute(&sql, &[&self.table, &lag, &(open_shards as i32)]).await?;
        Ok(())
    }

    /// The gaps not healed yet, but for those whose heal failed less than a minute ago: (id,
    /// reason, from, to).
    pub async fn open_gaps(&self) -> Result<Vec<(i64, String, Option<Timestamp>, Option<Timestamp>)>> {
        let micros = |c: &str| format!("(extract(epoch from {c}) * 1000000)::int8");
        let sql = format!(
            "select id, reason, {}, {} from {}.stream_gaps where table_name = $1 and healed_at is null
             and (attempted_at is null or attempted_at < now() - interval '1 minute') order by id",
            micros("from_at"),
            micros("to_at"),
            self.q
        );
        let rows = self.query(&sql, &[&self.table]).await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get::<_, Option<i64>>(2).map(Timestamp),
                    r.get::<_, Option<i64>>(3).map(Timestamp),
                )
            })
            .collect())
    }

    /// Records how a gap's heal ended.
    pub async fn healed(&self, id: i64, run_id: Option<i64>, error: Option<&str>) -> Result<()> {
        let sql = format!(
            "update {}.stream_gaps set healed_at = case when $3::text is null then now() end, attempted_at = now(),
             heal_run_id = $2, heal_error = $3 where id = $1",
            self.q
        );
        self.execute(&sql, &[&id, &run_id, &error]).await?;
        Ok(())
    }

    /// When the stream covers the table from (`None`: not known yet).
    pub async fn coverage(&self) -> Result<Option<Timestamp>> {
        let sql = format!(
            "select (extract(epoch from covers_from) * 1000000)::int8 from {}.streams where table_name = $1",
            self.q
        );
        Ok(self
            .query(&sql, &[&self.table])
            .await?
            .first()
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .map(Timestamp))
    }
}

impl FollowStore for PgFollowStore {
    type Page = PgPage;

    fn prepare(&self, page: &ParsedPage) -> PgPage {
        self.sink.prepare(page)
    }

    async fn load(&self) -> Result<Followed> {
        let q = &self.q;
        let arn: Option<String> = self
            .query(&format!("select stream_arn from {q}.streams where table_name = $1"), &[&self.table])
            .await?
            .first()
            .map(|r| r.get(0));
        let Some(arn) = arn else { return Ok(Followed::default()) };
        let rows = self
            .query(
                &format!(
                    "select shard_id, parent_shard_id, state, position, (extract(epoch from last_record_at) * 1000000)::int8
                     from {q}.stream_shards where stream_arn = $1"
                ),
                &[&arn],
            )
            .await?;
        let mut f = Followed { arn: Some(arn), ..Followed::default() };
        for r in &rows {
            let state = ShardState::parse(r.get(2)).unwrap_or(ShardState::Open);
            let last_at = r.get::<_, Option<i64>>(4).map(Timestamp);
            f.last_at = f.last_at.max(last_at);
            let known = Known { parent: r.get(1), state };
            f.shards.insert(r.get(0), StoredShard { known, position: r.get(3), last_at });
        }
        Ok(f)
    }

    async fn begin_stream(&self, stream: &StreamInfo) -> Result<()> {
        // A stream younger than its records' 24 hours covers the table from its creation;
        // an older one from the oldest record it still has (set at the first read).
        let day = 24 * 3_600_000_000;
        let covers = stream.created.filter(|c| Timestamp::now().0 - c.0 < day).map(|c| c.to_pg());
        let sql = format!(
            "insert into {}.streams as s (table_name, stream_arn, view_type, covers_from)
             values ($1, $2, $3, $4::text::timestamptz)
             on conflict (table_name) do update set stream_arn = excluded.stream_arn, view_type = excluded.view_type,
                 started_at = now(), covers_from = excluded.covers_from, lag_seconds = null, open_shards = 0",
            self.q
        );
        self.execute(&sql, &[&self.table, &stream.arn, &stream.view.as_str(), &covers]).await?;
        Ok(())
    }

    async fn register(&self, arn: &str, shards: &[Shard]) -> Result<()> {
        let ids: Vec<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        let parents: Vec<Option<&str>> = shards.iter().map(|s| s.parent.as_deref()).collect();
        let sql = format!(
            "insert into {}.stream_shards (stream_arn, shard_id, parent_shard_id)
             select $1, u.id, u.parent from unnest($2::text[], $3::text[]) as u(id, parent)
             on conflict do nothing",
            self.q
        );
        self.execute(&sql, &[&arn, &ids, &parents]).await?;
        Ok(())
    }

    async fn set_state(&self, arn: &str, shard: &str, state: ShardState) -> Result<()> {
        let sql = format!(
            "update {}.stream_shards set state = $3, updated_at = now() where stream_arn = $1 and shard_id = $2",
            self.q
        );
        self.execute(&sql, &[&arn, &shard, &state.as_str()]).await?;
        Ok(())
    }

    async fn apply(&self, arn: &str, shard: &str, page: &PgPage, to: &Position) -> Result<WriteStats> {
        let _slot =
            self.slots.acquire().await.map_err(|_| crate::Error::internal("the writer pool closed"))?;
        let writer = self.writers.lock().await.pop();
        let mut writer = match writer {
            Some(w) => w,
            None => self.sink.writer().await?,
        };
        let position = ShardPosition {
            stream_arn: arn.to_string(),
            shard_id: shard.to_string(),
            sequence: to.seq.clone(),
            last_at: to.last_at.map(|t| t.to_pg()),
            records: to.records as i64,
        };
        let result = writer.write_at(page, &position).await;
        self.writers.lock().await.push(writer);
        result
    }

    async fn record_gap(&self, arn: &str, gap: &Gap) -> Result<()> {
        let sql = format!(
            "insert into {}.stream_gaps (table_name, stream_arn, reason, from_at, to_at)
             values ($1, $2, $3, $4::text::timestamptz, $5::text::timestamptz) on conflict do nothing",
            self.q
        );
        let (from, to) = (gap.from.map(|t| t.to_pg()), gap.to.map(|t| t.to_pg()));
        self.execute(&sql, &[&self.table, &arn, &gap.reason, &from, &to]).await?;
        Ok(())
    }

    async fn covers_from(&self, arn: &str, from: Timestamp) -> Result<()> {
        let sql = format!(
            "update {}.streams set covers_from = coalesce(covers_from, $3::text::timestamptz)
             where table_name = $1 and stream_arn = $2",
            self.q
        );
        self.execute(&sql, &[&self.table, &arn, &from.to_pg()]).await?;
        Ok(())
    }
}
