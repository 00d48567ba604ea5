//! The run ledger (`sync_runs`) and the drift ledger (`schema_drift`).

use crate::error::Result;
use crate::schema::quoted_schema;
use crate::stats::RunStats;
use crate::time::Timestamp;
use crate::window::Plan;
use tokio_postgres::Client;

/// What kind of run a ledger row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// An incremental run.
    Sync,
    /// A backfill over a range of day partitions.
    Backfill,
    /// A run of `scansync demo`.
    Demo,
    /// A stream follower's life (`scansync follow`).
    Follow,
    /// An index-path sync of a gap the follower found.
    Heal,
    /// A verify that recorded itself, or a repair (`scansync verify --record / --repair`).
    Verify,
}

impl RunKind {
    /// Returns the name stored in `sync_runs.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Sync => "sync",
            RunKind::Backfill => "backfill",
            RunKind::Demo => "demo",
            RunKind::Follow => "follow",
            RunKind::Heal => "heal",
            RunKind::Verify => "verify",
        }
    }
}

/// Inserts a `running` row (for `target`, the followed table, where one is concerned) and
/// returns its id.
pub async fn start(
    client: &Client,
    schema: &str,
    kind: RunKind,
    started: Timestamp,
    target: Option<&str>,
) -> Result<i64> {
    let sql = format!(
        "insert into {}.sync_runs (kind, status, started_at, target) values ($1, 'running', $2::text::timestamptz, $3) returning id",
        quoted_schema(schema)?
    );
    let row = client.query_one(&sql, &[&kind.as_str(), &started.to_pg(), &target]).await?;
    Ok(row.get(0))
}

/// Marks the `running` rows of processes that ended without finishing (killed, host lost)
/// as `abandoned`, and returns how many it marked. A backfill worker's row is such when the
/// worker no longer holds its advisory lock; a sync or demo row when `holds_run_lock` (the
/// caller holds the run lock, so no other sync is running); a follower's (and its heals')
/// when no follower of its table holds the lock, or when the caller is the follower of that
/// table (`follower_of`: it holds the lock, so those rows are a dead process's).
pub async fn abandon_stale(
    client: &Client,
    schema: &str,
    holds_run_lock: bool,
    follower_of: Option<&str>,
) -> Result<u64> {
    let q = quoted_schema(schema)?;
    let sql = format!(
        "update {q}.sync_runs r set status = 'abandoned', finished_at = now(),
            error = coalesce(error, 'the process ended without finishing the run (killed, or its host was lost); found by a later run')
         where status = 'running'
           and (($1 and kind in ('sync', 'demo'))
                or (kind = 'backfill' and not exists (
                    select 1 from {q}.backfill_workers w where w.run_id = r.id and {alive}))
                or (kind in ('follow', 'heal') and (r.target = $3 or not {follower}))
                or (kind = 'verify' and not {verifier}))",
        alive = crate::lock::worker_alive_sql("w", "$2"),
        follower = crate::lock::held_sql(&crate::lock::follow_lock_sql("$2", "r.target")),
        verifier = crate::lock::held_sql("'scansync-verify:' || $2::text"),
    );
    Ok(client.execute(&sql, &[&holds_run_lock, &schema, &follower_of]).await?)
}

/// What a verify found, as its ledger row keeps it ([`record_verify`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyCounts {
    /// Keys the store does not hold.
    pub missing: u64,
    /// Keys the store holds an older version of.
    pub stale: u64,
    /// Keys the store holds at the same version with other values.
    pub diverged: u64,
    /// Keys the store holds newer than the range (normal).
    pub ahead: u64,
    /// Divergent keys left when the run ended.
    pub unrepaired: u64,
}

/// Writes a verify's days (`None`: a whole export) and counts into its ledger row `id`.
pub async fn record_verify(
    client: &Client,
    schema: &str,
    id: i64,
    days: Option<(crate::time::Day, crate::time::Day)>,
    c: &VerifyCounts,
) -> Result<()> {
    let sql = format!(
        "update {}.sync_runs set verify_missing = $2, verify_stale = $3, verify_diverged = $4,
            verify_ahead = $5, verify_unrepaired = $6,
            first_partition = $7::text::date, last_partition = $8::text::date where id = $1",
        quoted_schema(schema)?
    );
    let i = |n: u64| n as i64;
    let (first, last) = days.map(|(a, b)| (a.to_string(), b.to_string())).unzip();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
        [&id, &i(c.missing), &i(c.stale), &i(c.diverged), &i(c.ahead), &i(c.unrepaired), &first, &last];
    client.execute(&sql, &params).await?;
    Ok(())
}

/// The largest offset west of UTC (in minutes) seen by the last `runs` incremental runs, and
/// how many runs that covers: the evidence for setting `--offset-margin`.
pub async fn recent_west_offset(client: &Client, schema: &str, runs: i64) -> Result<(u32, i64)> {
    let sql = format!(
        "select stamp_forms::text from {}.sync_runs where kind = 'sync' and status = 'succeeded'
         order by id desc limit $1",
        quoted_schema(schema)?
    );
    let rows = client.query(&sql, &[&runs]).await?;
    let mut west = 0;
    for r in &rows {
        let forms: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&r.get::<_, String>(0)).unwrap_or_default();
        for label in forms.keys() {
            west = west.max(west_minutes_of_label(label));
        }
    }
    Ok((west, rows.len() as i64))
}

/// Reads the offset of a stamp-form label (`-05:00`, `space -03:30`) back, in minutes west.
pub fn west_minutes_of_label(label: &str) -> u32 {
    let l = label.trim_start_matches("space ");
    match l.strip_prefix('-').and_then(|t| t.split_once(':')) {
        Some((h, m)) => h.parse::<u32>().unwrap_or(0) * 60 + m.parse::<u32>().unwrap_or(0),
        None => 0,
    }
}

/// Completes a run's row with its outcome and counts.
pub async fn finish(
    client: &Client,
    schema: &str,
    id: i64,
    plan: Option<&Plan>,
    summary: &RunStats,
    error: Option<&str>,
    cancelled: bool,
) -> Result<()> {
    let sql = format!(
        "update {}.sync_runs set
            status = $2, finished_at = now(),
            window_after = $3::text::timestamptz,
            first_partition = $4::text::date, last_partition = $5::text::date,
            pages = $6, records_read = $7, records_skipped = $8,
            rows_creators = $9, rows_communities = $10, rows_tags = $11, rows_content = $12,
            rows_content_tags = $13, quarantined = $14, rejects = $15::text::jsonb,
            repairs = $16::text::jsonb, drift = $17, page_retries = $18, error = $19,
            index_items = $20, offset_margin_seconds = $21, stamp_forms = $22::text::jsonb,
            beyond_margin = $23, epoch_stamps = $24, window_until = $25::text::timestamptz,
            removals = $26, ttl_removals_ignored = $27, removals_applied = $28,
            missed_by_follower = $29
         where id = $1",
        quoted_schema(schema)?
    );
    let status = match (error, cancelled) {
        (Some(_), true) => "cancelled",
        (Some(_), false) => "failed",
        (None, _) => "succeeded",
    };
    let w = &summary.written;
    let i = |n: u64| n as i64;
    let after = plan.map(|p| p.after.to_pg());
    let first = plan.and_then(|p| p.days.first()).map(|d| d.to_string());
    let last = plan.and_then(|p| p.days.last()).map(|d| d.to_string());
    let margin_minutes = plan.map(|p| (p.bounds.margin / 60_000_000) as u32);
    let margin_seconds = plan.map(|p| (p.bounds.margin / 1_000_000) as i32);
    let beyond = margin_minutes.map_or(0, |m| summary.beyond_margin(m).0);
    client
        .execute(
            &sql,
            &[
                &id,
                &status,
                &after,
                &first,
                &last,
                &i(summary.pages),
                &i(summary.read),
                &i(summary.skipped),
                &i(w.creators),
                &i(w.communities),
                &i(w.tags),
                &i(w.content),
                &i(w.content_tags),
                &i(w.quarantined),
                &summary.rejects_json(),
                &summary.repairs_json(),
                &i(summary.drift.len() as u64),
                &i(summary.retries),
                &error,
                &summary.index_items.map(i),
                &margin_seconds,
                &summary.stamps_json(),
                &i(beyond),
                &i(summary.epoch_stamps()),
                &plan.and_then(|p| p.until).map(|u| u.to_pg()),
                &i(summary.removals),
                &i(summary.ttl_removals_ignored),
                &i(w.removals_applied),
                &summary.missed_by_follower.map(i),
            ],
        )
        .await?;
    Ok(())
}

/// Adds a run's drift observations to `schema_drift` (one statement per run: drift is
/// recorded once per attribute per run, never per record).
pub async fn record_drift(client: &Client, schema: &str, summary: &RunStats) -> Result<()> {
    if summary.drift.is_empty() {
        return Ok(());
    }
    let (mut attrs, mut types, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for ((a, t), n) in &summary.drift {
        attrs.push(a.clone());
        types.push(t.to_string());
        counts.push(*n as i64);
    }
    let sql = format!(
        "insert into {}.schema_drift as d (attribute, observed_type, first_seen, last_seen, count)
         select a, t, now(), now(), n from unnest($1::text[], $2::text[], $3::int8[]) as x(a, t, n)
         on conflict (attribute, observed_type) do update
         set last_seen = now(), count = d.count + excluded.count",
        quoted_schema(schema)?
    );
    client.execute(&sql, &[&attrs, &types, &counts]).await?;
    Ok(())
}
