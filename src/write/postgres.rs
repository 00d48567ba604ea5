//! The PostgreSQL sink: COPY into staging tables, then set-based merges.
//!
//! A page is a query and two transactions. The query sends only the rows' keys and versions
//! and learns which rows are newer than the store's ([`fresh_rows`]): the rest are never
//! copied, so a re-run that changes a tenth of the rows copies a tenth of them.
//! Then a short transaction inserts the creators, communities and tags that do not exist
//! yet (so writers do not queue behind each other on a first load), then the page's own
//! merges content and tag edges and updates creators and communities.
//! Why this is fast: each page costs a handful of round trips whatever its size (at most
//! five COPYs and about a dozen statements over two commits), every row is folded and
//! encoded on the rayon pool before the transactions open, and stale versions are filtered
//! before the upserts so a replay writes (almost) nothing.

use super::batch::{Batch, Version};
use super::copy::CopyBuf;
use super::sql;
use super::{PageWriter, Sink, WriteStats};
use crate::db;
use crate::error::Result;
use crate::parse::ParsedPage;
use crate::schema::quoted_schema;
use bytes::Bytes;
use futures_util::SinkExt;
use std::collections::{HashMap, HashSet};
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
    creators: Option<KeyedRows>,
    communities: Option<KeyedRows>,
    content: Option<KeyedRows>,
    tags: Vec<String>,
    q_reason: Vec<String>,
    q_scan: Vec<Option<String>>,
    q_partition: Vec<String>,
    q_raw: Vec<String>,
    q_origin: Vec<String>,
}

/// Rows of one staging table: their COPY payload, where each row ends in it, and each
/// row's key and version(s) for the first phase of a page ([`fresh_rows`]).
#[derive(Debug, Default)]
pub struct KeyedRows {
    data: Bytes,
    ends: Vec<usize>,
    platform: Vec<String>,
    external_id: Vec<String>,
    at: Vec<Option<String>>,
    scan: Vec<Option<String>>,
    /// Content only: the tombstone's version (NULL where the row has none).
    tomb_at: Vec<Option<String>>,
    tomb_scan: Vec<Option<String>>,
    /// Creators and communities: each row's version, for the writer's [`Known`] versions.
    versions: Vec<Version>,
}

impl KeyedRows {
    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Tells whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The whole COPY payload.
    pub fn all(&self) -> Option<Bytes> {
        (!self.is_empty()).then(|| self.data.clone())
    }

    /// The COPY payload of the rows at `keep` (ascending indexes), or `None` for none.
    pub fn select(&self, keep: &[usize]) -> Option<Bytes> {
        if keep.len() == self.ends.len() {
            return self.all();
        }
        if keep.is_empty() {
            return None;
        }
        let start = |i: usize| if i == 0 { 0 } else { self.ends[i - 1] };
        let mut out = Vec::with_capacity(keep.iter().map(|&i| self.ends[i] - start(i)).sum());
        for &i in keep {
            out.extend_from_slice(&self.data[start(i)..self.ends[i]]);
        }
        Some(Bytes::from(out))
    }
}

/// Builds [`KeyedRows`]: [`Keyed::key`], then the row's fields on [`Keyed::buf`], then
/// [`Keyed::end_row`].
struct Keyed {
    buf: CopyBuf,
    rows: KeyedRows,
}

impl Keyed {
    fn with_capacity(n: usize) -> Self {
        let rows = KeyedRows {
            data: Bytes::new(),
            ends: Vec::with_capacity(n),
            platform: Vec::with_capacity(n),
            external_id: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            scan: Vec::with_capacity(n),
            tomb_at: Vec::with_capacity(n),
            tomb_scan: Vec::with_capacity(n),
            versions: Vec::new(),
        };
        Self { buf: CopyBuf::new(), rows }
    }

    fn key(
        &mut self,
        platform: &str,
        external_id: &str,
        live: Option<(String, &str)>,
        tomb: Option<(String, &str)>,
    ) {
        let r = &mut self.rows;
        r.platform.push(platform.to_owned());
        r.external_id.push(external_id.to_owned());
        let (at, scan) = live.map(|(a, s)| (a, s.to_owned())).unzip();
        r.at.push(at);
        r.scan.push(scan);
        let (at, scan) = tomb.map(|(a, s)| (a, s.to_owned())).unzip();
        r.tomb_at.push(at);
        r.tomb_scan.push(scan);
    }

    /// Keys a creator or community row by its one version; returns the version's instant
    /// as text, for the row's own field.
    fn versioned(&mut self, platform: &str, external_id: &str, v: &Version) -> String {
        let at = v.at.to_pg();
        self.key(platform, external_id, Some((at.clone(), &v.scan_id)), None);
        self.rows.versions.push(v.clone());
        at
    }

    fn end_row(&mut self) {
        self.buf.end_row();
        self.rows.ends.push(self.buf.len());
    }

    fn finish(self) -> Option<KeyedRows> {
        (!self.rows.is_empty()).then(|| KeyedRows { data: Bytes::from(self.buf.into_bytes()), ..self.rows })
    }
}

/// A folded batch encoded for COPY.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The creators' rows.
    pub creators: Option<KeyedRows>,
    /// The communities' rows.
    pub communities: Option<KeyedRows>,
    /// The content rows.
    pub content: Option<KeyedRows>,
}

/// Encodes a folded batch as the three COPY payloads, with their keys and versions.
pub fn encode(batch: &Batch) -> Encoded {
    let mut cr = Keyed::with_capacity(batch.creators.len());
    for ((platform, ext), v, c) in &batch.creators {
        let at = cr.versioned(platform, ext, v);
        let b = &mut cr.buf;
        b.text(platform);
        b.text(ext);
        b.opt(c.handle.as_deref());
        b.opt(c.display_name.as_deref());
        b.opt(c.followers.as_deref());
        b.text(&at);
        b.text(&v.scan_id);
        b.bool(c.deleted);
        cr.end_row();
    }
    let mut cm = Keyed::with_capacity(batch.communities.len());
    for ((platform, ext), v, c) in &batch.communities {
        let at = cm.versioned(platform, ext, v);
        let b = &mut cm.buf;
        b.text(platform);
        b.text(ext);
        b.opt(c.name.as_deref());
        b.text(&at);
        b.text(&v.scan_id);
        cm.end_row();
    }
    let mut ct = Keyed::with_capacity(batch.content.len());
    for ((platform, ext), f) in &batch.content {
        let live_at = f.live.as_ref().map(|r| r.updated_at.to_pg());
        let tomb_at = f.tomb.as_ref().map(|v| v.at.to_pg());
        ct.key(
            platform,
            ext,
            live_at.clone().zip(f.live.as_ref().map(|r| r.scan_id.as_str())),
            tomb_at.clone().zip(f.tomb.as_ref().map(|v| v.scan_id.as_str())),
        );
        let b = &mut ct.buf;
        b.text(platform);
        b.text(ext);
        match &f.live {
            Some(r) => {
                b.opt(live_at.as_deref());
                b.text(&r.scan_id);
                b.opt(r.url.as_deref());
                b.opt(r.caption.as_deref());
                b.opt(r.creator.as_ref().map(|c| c.external_id.as_str()));
                b.opt(r.community.as_ref().map(|c| c.external_id.as_str()));
                for s in &r.stats {
                    b.opt(s.as_deref());
                }
                b.opt(r.posted_at.map(|t| t.to_pg()).as_deref());
                b.opt(r.metadata.as_deref());
                b.opt(r.extra.as_deref());
                b.text_array(&r.tags);
            }
            None => (0..14).for_each(|_| b.null()),
        }
        match &f.tomb {
            Some(v) => {
                b.opt(tomb_at.as_deref());
                b.text(&v.scan_id);
            }
            None => {
                b.null();
                b.null();
            }
        }
        ct.end_row();
    }
    Encoded { creators: cr.finish(), communities: cm.finish(), content: ct.finish() }
}

impl Sink for PgSink {
    type Prepared = PgPage;
    type Writer = PgWriter;

    fn prepare(&self, page: &ParsedPage) -> PgPage {
        let batch = Batch::fold(&page.records);
        let Encoded { creators, communities, content } = encode(&batch);
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
        let mut w =
            PgWriter { sink: self.clone(), client: None, known: Known::default(), skip_content_check: 0 };
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
    known: Known,
    /// Pages left whose content rows are copied without asking first ([`CheckContent`]).
    skip_content_check: u32,
}

/// When the first phase asks about content rows. On a first load every row is new, and
/// asking cost a fifth of a page for nothing (measured: 49 ms of 235). So after a page
/// whose content rows were nearly all new or newer ([`CheckContent::MOSTLY_FRESH`]), the
/// next [`CheckContent::SKIP`] pages copy theirs without asking, and the one after asks
/// again: a re-run or a replay is noticed within that many pages. Copying without asking
/// is what the merges always allowed; only the saving is lost.
struct CheckContent;

impl CheckContent {
    /// Pages copied without asking after a page that was mostly fresh.
    const SKIP: u32 = 8;
    /// Mostly fresh: at least this share of the content rows were kept.
    const MOSTLY_FRESH: f64 = 0.9;
}

/// What this writer knows the store holds, learned from its own committed pages: per
/// creator and community key a version the store holds or has passed, and tags that
/// exist. Such rows are stale without asking ([`fresh_rows`] does not even send them): the
/// top creators of a skewed load are in every page, and were probed on every page.
///
/// It holds only while the store keeps what it committed, and a PostgreSQL crash can lose
/// the last pages committed with `synchronous_commit = off`. Such a crash breaks the
/// connection, and a new connection starts with nothing known ([`PgWriter::ensure_connected`]);
/// so does a writer whose knowledge grew past [`Known::MAX`] entries (memory stays flat).
#[derive(Debug, Default)]
struct Known {
    creators: HashMap<(String, String), Version>,
    communities: HashMap<(String, String), Version>,
    tags: HashSet<String>,
}

impl Known {
    /// Entries kept at most: about 150 bytes each, so at most ~15 MB per writer.
    const MAX: usize = 100_000;

    /// Tells whether row `i` of `rows` is known to be stale in `map`.
    fn stale(map: &HashMap<(String, String), Version>, rows: &KeyedRows, i: usize) -> bool {
        // Looked up by a borrowed pair would need a key type of its own; the lookup clones
        // two short strings, far cheaper than the probe it saves.
        map.get(&(rows.platform[i].clone(), rows.external_id[i].clone()))
            .is_some_and(|v| *v >= rows.versions[i])
    }

    /// Learns a committed page: the store now holds each row's version or a newer one.
    fn learn(&mut self, page: &PgPage) {
        if self.creators.len() + self.communities.len() + self.tags.len() > Self::MAX {
            *self = Known::default();
        }
        for (map, rows) in [(&mut self.creators, &page.creators), (&mut self.communities, &page.communities)]
        {
            let Some(rows) = rows else { continue };
            for i in 0..rows.len() {
                let key = (rows.platform[i].clone(), rows.external_id[i].clone());
                let v = &rows.versions[i];
                match map.get_mut(&key) {
                    Some(known) if *known >= *v => {}
                    Some(known) => *known = v.clone(),
                    None => {
                        map.insert(key, v.clone());
                    }
                }
            }
        }
        self.tags.extend(page.tags.iter().cloned());
    }
}

impl PgWriter {
    async fn ensure_connected(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let client = db::connect(&self.sink.url).await?;
            let schema = quoted_schema(&self.sink.schema)?;
            // random_page_cost: autovacuum never analyzes TEMP staging tables, and with the
            // default of 4 the planner hash-joins whole tables on every page. No parallel
            // workers: a page's statements are index probes of a few thousand rows, and
            // launching workers costs more than they save while the other writers keep the
            // cores busy (measured: the first phase of a page 36 ms with two workers, 20 ms
            // without).
            client
                .batch_execute(&format!(
                    "set search_path = {schema}; set random_page_cost = 1.1; \
                     set max_parallel_workers_per_gather = 0; set synchronous_commit = {}; {}",
                    if self.sink.run_id.is_some() { "off" } else { "on" },
                    sql::CREATE_STAGING
                ))
                .await?;
            self.client = Some(client);
            // What the store held may not have survived whatever broke the last connection.
            self.known = Known::default();
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
    /// [`fresh_rows`], [`insert_new_entities`] in a short transaction, then in the page's
    /// transaction [`copy_staging`], [`merge_content`], [`update_entities`], [`quarantine`],
    /// commit.
    async fn write(&mut self, page: &PgPage) -> Result<WriteStats> {
        let run_id = self.sink.run_id;
        self.ensure_connected().await?;
        let client = self.client.as_mut().expect("connected above");
        let mut stats = WriteStats::default();
        let mut t = Timings::start();
        let check_content = self.skip_content_check == 0;
        self.skip_content_check = self.skip_content_check.saturating_sub(1);
        let fresh = fresh_rows(client, page, &self.known, check_content, &mut stats).await?;
        let rows = page.content.as_ref().map_or(0, KeyedRows::len) as f64;
        if check_content && rows > 0.0 && rows - stats.unchanged as f64 >= CheckContent::MOSTLY_FRESH * rows {
            self.skip_content_check = CheckContent::SKIP;
        }
        t.lap("fresh");
        insert_new_entities(client, &fresh, &mut stats).await?;
        t.lap("entities");
        let tx = client.transaction().await?;
        copy_staging(&tx, &fresh).await?;
        t.lap("copy");
        merge_content(&tx, &fresh, &mut stats).await?;
        t.lap("content");
        update_entities(&tx, &fresh, &mut stats).await?;
        t.lap("updates");
        quarantine(&tx, page, run_id, &mut stats).await?;
        tx.commit().await?;
        t.lap("commit");
        t.log();
        self.known.learn(page);
        Ok(stats)
    }
}

/// What of a page may change the store: COPY payloads of the rows newer than the store's
/// (or not in it), and the tags it lacks.
#[derive(Debug, Default)]
struct Fresh {
    creators: Option<Bytes>,
    communities: Option<Bytes>,
    content: Option<Bytes>,
    tags: Vec<String>,
}

/// The first phase of a page: which of its rows may change the store. Only keys and
/// versions travel (as arrays, in one round trip), and only the rows it returns are copied
/// and merged: a re-run that changes a tenth of the rows copies a tenth of them, and a
/// page whose creators, communities and tags all exist skips their transaction.
///
/// It runs outside the page's transactions, and that is safe because staleness is stable:
/// a row is dropped only if the store already holds a version at least as new (for
/// content: a live version at least as new as the row's, and a tombstone at least as new
/// as its tombstone or a live version newer than it), and the merges only ever move
/// versions forward; a tag, once in the dictionary, stays. A row found stale stays stale
/// whatever commits meanwhile; a row kept is checked again by the merges as before.
async fn fresh_rows(
    client: &Client,
    page: &PgPage,
    known: &Known,
    check_content: bool,
    stats: &mut WriteStats,
) -> Result<Fresh> {
    let none = KeyedRows::default();
    let [cr, cm, all_content] =
        [&page.creators, &page.communities, &page.content].map(|r| r.as_ref().unwrap_or(&none));
    // Content not asked about is kept whole (see [`CheckContent`]).
    let ct = if check_content { all_content } else { &none };
    // The rows to ask about: every content row (unless skipped); creators, communities and
    // tags not known.
    let ask_cr: Vec<usize> = (0..cr.len()).filter(|&i| !Known::stale(&known.creators, cr, i)).collect();
    let ask_cm: Vec<usize> = (0..cm.len()).filter(|&i| !Known::stale(&known.communities, cm, i)).collect();
    let ask_tags: Vec<usize> =
        (0..page.tags.len()).filter(|&i| !known.tags.contains(&page.tags[i])).collect();
    if ct.is_empty() && ask_cr.is_empty() && ask_cm.is_empty() && ask_tags.is_empty() {
        return Ok(Fresh { content: all_content.all(), ..Fresh::default() });
    }
    let pick = |v: &[String], at: &[usize]| -> Vec<String> { at.iter().map(|&i| v[i].clone()).collect() };
    let pick_opt = |v: &[Option<String>], at: &[usize]| -> Vec<Option<String>> {
        at.iter().map(|&i| v[i].clone()).collect()
    };
    let found = client
        .query(
            sql::FRESH_ROWS,
            &[
                &ct.platform,
                &ct.external_id,
                &ct.at,
                &ct.scan,
                &ct.tomb_at,
                &ct.tomb_scan,
                &pick(&cr.platform, &ask_cr),
                &pick(&cr.external_id, &ask_cr),
                &pick_opt(&cr.at, &ask_cr),
                &pick_opt(&cr.scan, &ask_cr),
                &pick(&cm.platform, &ask_cm),
                &pick(&cm.external_id, &ask_cm),
                &pick_opt(&cm.at, &ask_cm),
                &pick_opt(&cm.scan, &ask_cm),
                &pick(&page.tags, &ask_tags),
            ],
        )
        .await?;
    // Indexes into what was asked, mapped back to the page's rows.
    let mut keep: [Vec<usize>; 4] = Default::default();
    for row in &found {
        let (table, i) = (row.get::<_, i32>(0) as usize, row.get::<_, i64>(1) as usize);
        keep[table].push(match table {
            1 => ask_cr[i],
            2 => ask_cm[i],
            3 => ask_tags[i],
            _ => i,
        });
    }
    keep.iter_mut().for_each(|k| k.sort_unstable());
    stats.unchanged = (ct.len() - keep[0].len()) as u64;
    Ok(Fresh {
        content: if check_content { ct.select(&keep[0]) } else { all_content.all() },
        creators: cr.select(&keep[1]),
        communities: cm.select(&keep[2]),
        tags: keep[3].iter().map(|&i| page.tags[i].clone()).collect(),
    })
}

/// Creators and communities that do not exist yet, and new tags, in a short transaction of
/// their own. In the page transaction, an insert of a key another writer has just inserted
/// waits for that writer's whole page to commit, and on a first load every page brings new
/// creators its neighbours also bring: the writers queued behind each other (measured: 365
/// ms of a page with three writers). This is safe under the merge rules: the rows carry the
/// newest version the page has, newest-wins keeps them monotonic, and if the page then
/// fails they are facts a retry writes again while the checkpoint does not move.
async fn insert_new_entities(client: &mut Client, page: &Fresh, stats: &mut WriteStats) -> Result<()> {
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

/// COPYs what [`fresh_rows`] kept into the staging tables (emptied at commit).
async fn copy_staging(tx: &tokio_postgres::Transaction<'_>, page: &Fresh) -> Result<()> {
    copy_in(tx, sql::COPY_CREATORS, &page.creators).await?;
    copy_in(tx, sql::COPY_COMMUNITIES, &page.communities).await?;
    copy_in(tx, sql::COPY_CONTENT, &page.content).await
}

/// Live values, then the tag edges of the rows that changed, then tombstones.
async fn merge_content(
    tx: &tokio_postgres::Transaction<'_>,
    page: &Fresh,
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
    page: &Fresh,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn version(at: i64, scan: &str) -> Version {
        Version { at: Timestamp(at), scan_id: scan.to_owned() }
    }

    /// A page with one creator per (id, version), and the given tags.
    fn page(creators: &[(&str, Version)], tags: &[&str]) -> PgPage {
        let mut k = Keyed::with_capacity(creators.len());
        for (id, v) in creators {
            k.versioned("x", id, v);
            k.buf.text(id);
            k.end_row();
        }
        PgPage {
            creators: k.finish(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..PgPage::default()
        }
    }

    #[test]
    fn a_known_version_covers_itself_and_older_ones_never_newer() {
        let mut known = Known::default();
        known.learn(&page(&[("c1", version(10, "b"))], &["t"]));
        let later =
            page(&[("c1", version(10, "a")), ("c1", version(10, "b")), ("c1", version(10, "c"))], &[]);
        let rows = later.creators.as_ref().unwrap();
        let stale: Vec<bool> = (0..3).map(|i| Known::stale(&known.creators, rows, i)).collect();
        assert_eq!(stale, [true, true, false], "older and equal are stale; a newer scan id is asked about");
        let other = page(&[("c2", version(1, "a"))], &[]);
        assert!(
            !Known::stale(&known.creators, other.creators.as_ref().unwrap(), 0),
            "unknown keys are asked about"
        );
        assert!(known.tags.contains("t"));
    }

    #[test]
    fn learning_an_older_version_keeps_the_newer_one() {
        let mut known = Known::default();
        known.learn(&page(&[("c1", version(20, "a"))], &[]));
        known.learn(&page(&[("c1", version(10, "z"))], &[]));
        assert_eq!(known.creators[&("x".to_string(), "c1".to_string())], version(20, "a"));
    }

    #[test]
    fn knowledge_past_the_cap_is_forgotten() {
        let mut known = Known::default();
        let names: Vec<String> = (0..=Known::MAX).map(|i| format!("t{i}")).collect();
        known.learn(&page(&[], &names.iter().map(String::as_str).collect::<Vec<_>>()));
        assert_eq!(known.tags.len(), Known::MAX + 1);
        known.learn(&page(&[("c1", version(1, "a"))], &[]));
        assert_eq!((known.tags.len(), known.creators.len()), (0, 1), "cleared before learning the next page");
    }

    #[test]
    fn selected_rows_are_the_kept_rows_bytes_in_order() {
        let p = page(&[("a", version(1, "s")), ("bb", version(1, "s")), ("ccc", version(1, "s"))], &[]);
        let rows = p.creators.as_ref().unwrap();
        assert_eq!(rows.select(&[0, 2]).as_deref(), Some(&b"a\nccc\n"[..]));
        assert_eq!(rows.select(&[]), None);
        assert_eq!(rows.select(&[0, 1, 2]).as_deref(), Some(&b"a\nbb\nccc\n"[..]));
    }
}
