//! The PostgreSQL sink: COPY into staging tables, then set-based merges.
//!
//! A page is two transactions: a short one that inserts the creators, communities and tags
//! that do not exist yet (so writers do not queue behind each other on a first load), then
//! the page's own, which merges content and tag edges and updates creators and communities.
//! Why this is fast: each page costs a handful of round trips whatever its size (at most
//! five COPYs and about a dozen statements over two commits), every row is folded and
//! encoded on the rayon pool before the transactions open, and stale versions are filtered
//! before the upserts so a replay writes (almost) nothing.

use super::batch::Batch;
use super::copy::CopyBuf;
use super::sql;
use super::{PageWriter, Sink, WriteStats};
use crate::db;
use crate::error::Result;
use crate::parse::ParsedPage;
use crate::schema::quoted_schema;
use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::Client;

/// Writes pages into the canonical tables of one schema.
#[derive(Clone)]
pub struct PgSink {
    url: String,
    schema: String,
    run_id: Option<i64>,
}

impl std::fmt::Debug for PgSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSink").field("url", &db::redact(&self.url)).field("schema", &self.schema).finish()
    }
}

impl PgSink {
    /// Creates a sink; `run_id` tags quarantine rows with the run that found them.
    pub fn new(url: &str, schema: &str, run_id: Option<i64>) -> Result<Self> {
        quoted_schema(schema)?;
        Ok(Self { url: url.to_owned(), schema: schema.to_owned(), run_id })
    }
}

/// A page encoded for COPY, plus its quarantine rows.
#[derive(Debug, Default)]
pub struct PgPage {
    creators: Option<Bytes>,
    communities: Option<Bytes>,
    content: Option<Bytes>,
    tags: Vec<String>,
    q_reason: Vec<String>,
    q_scan: Vec<Option<String>>,
    q_partition: Vec<String>,
    q_raw: Vec<String>,
    q_origin: Vec<String>,
}

/// Encodes a folded batch as the three COPY payloads.
pub fn encode(batch: &Batch) -> (Option<Bytes>, Option<Bytes>, Option<Bytes>) {
    let mut cr = CopyBuf::new();
    for ((platform, ext), v, c) in &batch.creators {
        cr.text(platform);
        cr.text(ext);
        cr.opt(c.handle.as_deref());
        cr.opt(c.display_name.as_deref());
        cr.opt(c.followers.as_deref());
        cr.text(&v.at.to_pg());
        cr.text(&v.scan_id);
        cr.bool(c.deleted);
        cr.end_row();
    }
    let mut cm = CopyBuf::new();
    for ((platform, ext), v, c) in &batch.communities {
        cm.text(platform);
        cm.text(ext);
        cm.opt(c.name.as_deref());
        cm.text(&v.at.to_pg());
        cm.text(&v.scan_id);
        cm.end_row();
    }
    let mut ct = CopyBuf::new();
    for ((platform, ext), f) in &batch.content {
        ct.text(platform);
        ct.text(ext);
        match &f.live {
            Some(r) => {
                ct.text(&r.updated_at.to_pg());
                ct.text(&r.scan_id);
                ct.opt(r.url.as_deref());
                ct.opt(r.caption.as_deref());
                ct.opt(r.creator.as_ref().map(|c| c.external_id.as_str()));
                ct.opt(r.community.as_ref().map(|c| c.external_id.as_str()));
                for s in &r.stats {
                    ct.opt(s.as_deref());
                }
                ct.opt(r.posted_at.map(|t| t.to_pg()).as_deref());
                ct.opt(r.metadata.as_deref());
                ct.opt(r.extra.as_deref());
                ct.text_array(&r.tags);
            }
            None => (0..14).for_each(|_| ct.null()),
        }
        match &f.tomb {
            Some(v) => {
                ct.text(&v.at.to_pg());
                ct.text(&v.scan_id);
            }
            None => {
                ct.null();
                ct.null();
            }
        }
        ct.end_row();
    }
    let bytes = |b: CopyBuf| (b.rows() > 0).then(|| Bytes::from(b.into_bytes()));
    (bytes(cr), bytes(cm), bytes(ct))
}

impl Sink for PgSink {
    type Prepared = PgPage;
    type Writer = PgWriter;

    fn prepare(&self, page: &ParsedPage) -> PgPage {
        let batch = Batch::fold(&page.records);
        let (creators, communities, content) = encode(&batch);
        let mut p = PgPage { creators, communities, content, tags: batch.tags, ..PgPage::default() };
        for r in &page.rejects {
            p.q_reason.push(r.reason.code().to_owned());
            p.q_scan.push(r.scan_id.clone());
            p.q_partition.push(r.partition.clone());
            p.q_origin.push(r.origin.clone());
            // `text` refuses NUL: keep it visible as an escape instead of losing the record.
            p.q_raw.push(r.raw.replace('\0', "\\u0000"));
        }
        p
    }

    async fn writer(&self) -> Result<PgWriter> {
        let mut w = PgWriter { sink: self.clone(), client: None };
        w.ensure_connected().await?;
        Ok(w)
    }

    /// Page transactions commit with `synchronous_commit = off` (see [`PgWriter`]): their
    /// commit records are in the WAL, in commit order, but may not be flushed yet. A
    /// transaction committed afterwards with `synchronous_commit = on` flushes the WAL up
    /// to its own commit record (and waits for a synchronous standby), which lies after
    /// every page's commit record: so once it returns, every page committed before it
    /// survives a PostgreSQL crash. PostgreSQL commits a transaction that wrote no WAL
    /// without a flush, whatever the setting (an xid alone is not enough), so it rewrites
    /// the run's own ledger row, unchanged. (A sink without a run commits synchronously.)
    async fn make_durable(&self) -> Result<()> {
        let Some(run_id) = self.run_id else { return Ok(()) };
        let client = db::connect(&self.url).await?;
        let schema = quoted_schema(&self.schema)?;
        client.batch_execute("set synchronous_commit = on").await?;
        client
            .execute(&format!("update {schema}.sync_runs set pages = pages where id = $1"), &[&run_id])
            .await?;
        Ok(())
    }
}

/// One writer connection with its staging tables.
///
/// Its transactions commit with `synchronous_commit = off`: a commit returns once its
/// record is in the WAL buffers, without waiting for the flush to disk (PostgreSQL's
/// WAL writer flushes within `wal_writer_delay`). A PostgreSQL crash can lose the last
/// pages committed this way, never a part of one, and never out of order. That is safe
/// because nothing durable depends on them before [`PgSink::make_durable`] ran: the run
/// calls it before it writes the checkpoint, and a backfill marks a unit done on another
/// connection, synchronously, after the unit's pages committed (its commit flushes the WAL
/// past theirs). A lost page is read again by the next run, as after any failure.
pub struct PgWriter {
    sink: PgSink,
    client: Option<Client>,
}

impl PgWriter {
    async fn ensure_connected(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let client = db::connect(&self.sink.url).await?;
            let schema = quoted_schema(&self.sink.schema)?;
            // random_page_cost: autovacuum never analyzes TEMP staging tables, and with the
            // default of 4 the planner hash-joins whole tables on every page.
            client
                .batch_execute(&format!(
                    "set search_path = {schema}; set random_page_cost = 1.1; set synchronous_commit = {}; {}",
                    if self.sink.run_id.is_some() { "off" } else { "on" },
                    sql::CREATE_STAGING
                ))
                .await?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

async fn copy_in(tx: &tokio_postgres::Transaction<'_>, stmt: &str, data: &Option<Bytes>) -> Result<()> {
    if let Some(data) = data {
        let sink = tx.copy_in::<_, Bytes>(stmt).await?;
        futures_util::pin_mut!(sink);
        sink.send(data.clone()).await?;
        sink.finish().await?;
    }
    Ok(())
}

impl PageWriter for PgWriter {
    type Prepared = PgPage;

    /// The steps of a page, in the one order they run (see the module doc):
    /// [`insert_new_entities`] in a short transaction, then in the page's transaction
    /// [`copy_staging`], [`merge_content`], [`update_entities`], [`quarantine`], commit.
    async fn write(&mut self, page: &PgPage) -> Result<WriteStats> {
        let run_id = self.sink.run_id;
        let client = self.ensure_connected().await?;
        let mut stats = WriteStats::default();
        let mut t = Timings::start();
        insert_new_entities(client, page, &mut stats).await?;
        t.lap("entities");
        let tx = client.transaction().await?;
        copy_staging(&tx, page).await?;
        t.lap("copy");
        merge_content(&tx, page, &mut stats).await?;
        t.lap("content");
        update_entities(&tx, page, &mut stats).await?;
        t.lap("updates");
        quarantine(&tx, page, run_id, &mut stats).await?;
        tx.commit().await?;
        t.lap("commit");
        t.log();
        Ok(stats)
    }
}

/// Creators and communities that do not exist yet, and new tags, in a short transaction of
/// their own. In the page transaction, an insert of a key another writer has just inserted
/// waits for that writer's whole page to commit, and on a first load every page brings new
/// creators its neighbours also bring: the writers queued behind each other (measured: 365
/// ms of a page with three writers). This is safe under the merge rules: the rows carry the
/// newest version the page has, newest-wins keeps them monotonic, and if the page then
/// fails they are facts a retry writes again while the checkpoint does not move.
async fn insert_new_entities(client: &mut Client, page: &PgPage, stats: &mut WriteStats) -> Result<()> {
    if page.creators.is_none() && page.communities.is_none() && page.tags.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await?;
    copy_in(&tx, sql::COPY_CREATORS, &page.creators).await?;
    copy_in(&tx, sql::COPY_COMMUNITIES, &page.communities).await?;
    if page.creators.is_some() {
        stats.creators = tx.execute(sql::INSERT_NEW_CREATORS, &[]).await?;
    }
    if page.communities.is_some() {
        stats.communities = tx.execute(sql::INSERT_NEW_COMMUNITIES, &[]).await?;
    }
    if !page.tags.is_empty() {
        stats.tags = tx.execute(sql::MERGE_TAGS, &[&page.tags]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// COPYs the page into the staging tables (emptied at commit).
async fn copy_staging(tx: &tokio_postgres::Transaction<'_>, page: &PgPage) -> Result<()> {
    copy_in(tx, sql::COPY_CREATORS, &page.creators).await?;
    copy_in(tx, sql::COPY_COMMUNITIES, &page.communities).await?;
    copy_in(tx, sql::COPY_CONTENT, &page.content).await
}

/// Live values, then the tag edges of the rows that changed, then tombstones.
async fn merge_content(
    tx: &tokio_postgres::Transaction<'_>,
    page: &PgPage,
    stats: &mut WriteStats,
) -> Result<()> {
    if page.content.is_none() {
        return Ok(());
    }
    let live = tx.execute(sql::MERGE_CONTENT_LIVE, &[]).await?;
    if live > 0 {
        tx.execute(sql::STAGE_EDGES, &[]).await?;
        let removed = tx.execute(sql::DELETE_STALE_EDGES, &[]).await?;
        let added = tx.execute(sql::INSERT_EDGES, &[]).await?;
        stats.content_tags = removed + added;
    }
    let tombs = tx.execute(sql::MERGE_CONTENT_TOMBSTONES, &[]).await?;
    stats.content = live + tombs;
    Ok(())
}

/// Newer versions of existing creators and communities. Last in the page transaction: the
/// row locks on hot creators and communities are held only until the commit.
async fn update_entities(
    tx: &tokio_postgres::Transaction<'_>,
    page: &PgPage,
    stats: &mut WriteStats,
) -> Result<()> {
    if page.creators.is_some() {
        stats.creators += tx.execute(sql::UPDATE_CREATORS, &[]).await?;
    }
    if page.communities.is_some() {
        stats.communities += tx.execute(sql::UPDATE_COMMUNITIES, &[]).await?;
    }
    Ok(())
}

/// The page's records beyond repair (each (reason, raw record) once).
async fn quarantine(
    tx: &tokio_postgres::Transaction<'_>,
    page: &PgPage,
    run_id: Option<i64>,
    stats: &mut WriteStats,
) -> Result<()> {
    if page.q_raw.is_empty() {
        return Ok(());
    }
    let runs: Vec<Option<i64>> = vec![run_id; page.q_raw.len()];
    stats.quarantined = tx
        .execute(
            sql::INSERT_QUARANTINE,
            &[&page.q_reason, &page.q_scan, &page.q_partition, &page.q_raw, &runs, &page.q_origin],
        )
        .await?;
    Ok(())
}

/// Per-step timings of a page, logged once per page at debug level: where a page's time goes.
struct Timings {
    at: std::time::Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Timings {
    fn start() -> Self {
        Self { at: std::time::Instant::now(), laps: Vec::with_capacity(5) }
    }

    fn lap(&mut self, step: &'static str) {
        self.laps.push((step, self.at.elapsed().as_secs_f64() * 1e3));
        self.at = std::time::Instant::now();
    }

    fn log(&self) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let steps: Vec<String> = self.laps.iter().map(|(s, ms)| format!("{s}={ms:.1}ms")).collect();
            tracing::debug!(steps = %steps.join(" "), "page timings");
        }
    }
}
