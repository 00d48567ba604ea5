//! The PostgreSQL sink: new rows COPYed straight in, the rest COPYed into staging tables
//! and merged set-based.
//!
//! A page is a query and two transactions. The query sends only the rows' keys and versions
//! and learns which rows are newer than the store's, and which the store does not hold at
//! all ([`fresh_rows`]), with the ids those need: stale rows are never copied, so a re-run
//! that changes a tenth of the rows copies a tenth of them. Then a short transaction writes
//! the creators and communities the page has newer versions of, and the tags that do not
//! exist yet ([`write_entities`]; so writers do not queue behind each other on a first
//! load). Then the page's own: content rows the store does not hold are COPYed straight into
//! `content` and `content_tags` ([`new_rows`]), the others are merged.
//! Why this is fast: each page costs a handful of round trips whatever its size (at most
//! three COPYs and about ten statements over two commits), every row is folded and encoded
//! on the rayon pool before the transactions open, new rows skip the upserts, and stale
//! versions are filtered before them so a replay writes (almost) nothing.

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
/// The writer's maps, hashed with foldhash (SipHash showed in profiles).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// Writes pages into the canonical tables of one schema.
#[derive(Clone)]
pub struct PgSink {
    url: String,
    schema: String,
    run_id: Option<i64>,
    /// Whether the first phase asks about creators and communities ([`PgSink::bulk`]).
    ask_entities: bool,
    in_flight: std::sync::Arc<InFlight>,
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
        Ok(Self {
            url: url.to_owned(),
            schema: schema.to_owned(),
            run_id,
            ask_entities: true,
            in_flight: Default::default(),
        })
    }

    /// For a bulk load: creators and communities go straight to their upserts, without the
    /// first phase asking which of them are newer than the store's.
    ///
    /// Asking pays where most of them are not (a re-run: the upsert of a stale row still
    /// locks it and writes WAL). In a bulk load, a first load or a job at least twice the
    /// store's size, most are new or newer, so the question costs an index probe per row
    /// for nothing: on a 200k first load, 90 % of the creators and communities the first
    /// phase asked about were then written. The upserts' version guards decide as before,
    /// so the store ends the same; a stale row costs its lock. The ids of rows the upserts
    /// leave alone come from what the writer remembers or from one more query
    /// ([`ENTITY_IDS`](sql::ENTITY_IDS)), as for rows another session inserted.
    pub fn bulk(mut self, bulk: bool) -> Self {
        self.ask_entities = !bulk;
        self
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

/// The rows of one table: each row's key and version(s) for the first phase of a page
/// ([`fresh_rows`]); for content, their COPY payload and where each row ends in it; for
/// creators and communities, their own columns, which the upserts take as arrays.
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
    /// Creators: handle, display name, follower count; communities: name (and two empty).
    own: [Vec<Option<String>>; 3],
    /// Creators: whether the account is deleted.
    deleted: Vec<bool>,
    /// Content only: what a row needs to be COPYed straight into `content` ([`NewRows`]).
    new: NewParts,
}

/// Per content row, what [`COPY_NEW_CONTENT`](sql::COPY_NEW_CONTENT) needs beyond the row's
/// staging payload, whose first columns it shares (up to `extra`, ending at `mids[i]`).
#[derive(Debug, Default)]
struct NewParts {
    /// Each row's key, hashed ([`InFlight`]).
    hashes: Vec<u64>,
    mids: Vec<usize>,
    /// Indexes into the page's creators and communities (sorted by key, as folded).
    creator: Vec<Option<u32>>,
    community: Vec<Option<u32>>,
    /// Indexes into the page's tags (sorted, as folded).
    tags: Vec<Vec<u32>>,
    /// Whether the row's tombstone is newer than its live version (or it has none): the
    /// row is inserted deleted, as the two merges would leave it.
    tomb_applies: Vec<bool>,
}

impl KeyedRows {
    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.platform.len()
    }

    /// Tells whether there are none.
    pub fn is_empty(&self) -> bool {
        self.platform.is_empty()
    }

    /// The index of the row keyed (`platform`, `external_id`), for rows sorted by key
    /// (creators and communities, as folded).
    fn position(&self, platform: &str, external_id: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match (self.platform[mid].as_str(), self.external_id[mid].as_str()).cmp(&(platform, external_id))
            {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
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
            own: Default::default(),
            deleted: Vec::new(),
            new: NewParts::default(),
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

    /// A creator or community row: its key, its one version, its own columns.
    fn entity(
        &mut self,
        platform: &str,
        external_id: &str,
        v: &Version,
        own: [Option<&str>; 3],
        deleted: bool,
    ) {
        self.key(platform, external_id, Some((v.at.to_pg(), &v.scan_id)), None);
        self.rows.versions.push(v.clone());
        for (col, x) in self.rows.own.iter_mut().zip(own) {
            col.push(x.map(str::to_owned));
        }
        self.rows.deleted.push(deleted);
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
        let own = [c.handle.as_deref(), c.display_name.as_deref(), c.followers.as_deref()];
        cr.entity(platform, ext, v, own, c.deleted);
    }
    let mut cm = Keyed::with_capacity(batch.communities.len());
    for ((platform, ext), v, c) in &batch.communities {
        cm.entity(platform, ext, v, [c.name.as_deref(), None, None], false);
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
        // The columns shared with a new row's COPY, then those only staging has.
        match &f.live {
            Some(r) => {
                b.opt(live_at.as_deref());
                b.text(&r.scan_id);
                b.opt(r.url.as_deref());
                b.opt(r.caption.as_deref());
                for s in &r.stats {
                    b.opt(s.as_deref());
                }
                b.opt(r.posted_at.map(|t| t.to_pg()).as_deref());
                b.opt(r.metadata.as_deref());
                b.opt(r.extra.as_deref());
            }
            None => (0..11).for_each(|_| b.null()),
        }
        let new = &mut ct.rows.new;
        new.mids.push(b.len());
        // One fixed seed: every writer of the process must hash a key alike.
        new.hashes
            .push(std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), (platform, ext)));
        let by_key = |k: &(&str, &str), ext: &str| (k.0, k.1).cmp(&(*platform, ext));
        let creator_ix = |ext: &str| batch.creators.binary_search_by(|(k, ..)| by_key(k, ext)).ok();
        let community_ix = |ext: &str| batch.communities.binary_search_by(|(k, ..)| by_key(k, ext)).ok();
        match &f.live {
            Some(r) => {
                b.opt(r.creator.as_ref().map(|c| c.external_id.as_str()));
                b.opt(r.community.as_ref().map(|c| c.external_id.as_str()));
                b.text_array(&r.tags);
                new.creator
                    .push(r.creator.as_ref().and_then(|c| creator_ix(&c.external_id)).map(|i| i as u32));
                new.community
                    .push(r.community.as_ref().and_then(|c| community_ix(&c.external_id)).map(|i| i as u32));
                new.tags.push(
                    r.tags
                        .iter()
                        .filter_map(|t| batch.tags.binary_search(&t.as_str()).ok().map(|i| i as u32))
                        .collect(),
                );
            }
            None => {
                (0..3).for_each(|_| b.null());
                new.creator.push(None);
                new.community.push(None);
                new.tags.push(Vec::new());
            }
        }
        new.tomb_applies.push(match (&f.tomb, &f.live) {
            (Some(t), Some(l)) => *t > Version::of(l),
            (tomb, _) => tomb.is_some(),
        });
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
        let tags = batch.tags.iter().map(|t| t.to_string()).collect();
        let mut p = PgPage { creators, communities, content, tags, ..PgPage::default() };
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
        let mut w = PgWriter {
            sink: self.clone(),
            client: None,
            known: Known::default(),
            content_ids: String::new(),
        };
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
    /// The sequence of `content.id`, for new rows' ids ([`new_rows`]).
    content_ids: String,
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
    /// Ids of creators, communities and tags, for new content rows ([`new_rows`]). An id
    /// never changes while its row exists, and these rows are never deleted; but a crash
    /// can lose a row committed without a flush, and its id be given to another.
    creator_ids: HashMap<(String, String), i64>,
    community_ids: HashMap<(String, String), i64>,
    tag_ids: HashMap<String, i64>,
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

    /// Entries held.
    fn len(&self) -> usize {
        self.creators.len()
            + self.communities.len()
            + self.tags.len()
            + self.creator_ids.len()
            + self.community_ids.len()
            + self.tag_ids.len()
    }

    /// Learns a committed page: the store now holds each row's version or a newer one.
    fn learn(&mut self, page: &PgPage) {
        if self.len() > Self::MAX {
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
            self.content_ids = client
                .query_one("select pg_get_serial_sequence('content', 'id')", &[])
                .await?
                .get::<_, Option<String>>(0)
                .ok_or_else(|| {
                    crate::error::Error::internal("content.id has no sequence: the schema is not scansync's")
                })?;
            self.client = Some(client);
            // What the store held may not have survived whatever broke the last connection.
            self.known = Known::default();
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

/// The values of `v` at the indexes `at`, as one query parameter.
fn pick<T: Clone>(v: &[T], at: &[usize]) -> Vec<T> {
    at.iter().map(|&i| v[i].clone()).collect()
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
    /// [`fresh_rows`], [`write_entities`] in a short transaction, [`new_rows`], then in the
    /// page's transaction [`copy_new`], the staging COPY, [`merge_content`], [`quarantine`],
    /// commit.
    async fn write(&mut self, page: &PgPage) -> Result<WriteStats> {
        let run_id = self.sink.run_id;
        self.ensure_connected().await?;
        let client = self.client.as_mut().expect("connected above");
        let mut stats = WriteStats::default();
        let mut t = Timings::start();
        let in_flight = self.sink.in_flight.clone();
        let keys = page.content.as_ref().map_or(&[][..], |r| &r.new.hashes[..]);
        let (_in_flight, shared) = in_flight.enter(keys);
        let ask = self.sink.ask_entities;
        let mut fresh = fresh_rows(client, page, &self.known, &self.content_ids, ask, &mut stats).await?;
        t.lap("fresh");
        write_entities(client, page, &mut fresh, &mut stats).await?;
        t.lap("entities");
        fresh.merge_absent(page, |i| shared[i]);
        let mut new = new_rows(client, page, &fresh, &mut self.known).await?;
        t.lap("ids");
        loop {
            let tx = client.transaction().await?;
            if let Some(rows) = &new {
                match copy_new(&tx, rows).await {
                    Ok(()) => {
                        stats.content = rows.content_rows;
                        stats.content_tags = rows.edge_rows;
                    }
                    // Another session inserted one of these keys since the first phase:
                    // merge them instead, in a new transaction (this one is aborted).
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        let detail = e
                            .as_db_error()
                            .map(|d| format!("{} ({})", d.message(), d.detail().unwrap_or_default()));
                        tracing::debug!(
                            error = detail.unwrap_or_default(),
                            "a new content row was inserted meanwhile: merging the page"
                        );
                        drop(tx);
                        fresh.merge_absent(page, |_| true);
                        new = None;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            t.lap("new");
            // The content rows to merge, into the staging table (emptied at commit).
            copy_in(&tx, sql::COPY_CONTENT, &fresh.content).await?;
            t.lap("copy");
            merge_content(&tx, &fresh, &mut stats).await?;
            t.lap("content");
            quarantine(&tx, page, run_id, &mut stats).await?;
            tx.commit().await?;
            t.lap("commit");
            break;
        }
        t.log();
        self.known.learn(page);
        Ok(stats)
    }
}

/// Content rows absent from the store, encoded for COPY straight into `content`, and their
/// tag edges.
#[derive(Debug)]
struct NewRows {
    content: Bytes,
    edges: Option<Bytes>,
    /// Rows written as the merges count them: a live row, plus its tombstone if applied.
    content_rows: u64,
    edge_rows: u64,
}

/// Encodes the absent rows with the ids they reference: each row is what the merges would
/// make of it in a store without it (its live values, deleted if its tombstone is newer,
/// an edge to every tag). The ids come from the first phase and the entity inserts (see
/// [`Fresh`]), else from what this writer remembers, else from one more query
/// ([`ENTITY_IDS`](sql::ENTITY_IDS)), which a page needs only when another session inserted
/// an entity meanwhile. A creator, community or tag not found is NULL or no edge, as in the
/// merges' joins (none is missing: the page's own were inserted before this runs).
async fn new_rows(
    client: &Client,
    page: &PgPage,
    fresh: &Fresh,
    known: &mut Known,
) -> Result<Option<NewRows>> {
    let absent = &fresh.absent;
    let (Some(rows), false) = (&page.content, absent.is_empty()) else { return Ok(None) };
    let parts = &rows.new;
    let none = KeyedRows::default();
    let [cr, cm] = [&page.creators, &page.communities].map(|r| r.as_ref().unwrap_or(&none));
    let key = |r: &KeyedRows, i: usize| (r.platform[i].clone(), r.external_id[i].clone());
    let PageIds { creators: mut creator_ids, communities: mut community_ids, tags: mut tag_ids } =
        fresh.ids.clone();
    // What the absent rows reference and is still unknown is asked for.
    let mut ask_cr: Vec<usize> =
        absent.iter().filter_map(|&i| parts.creator[i]).map(|i| i as usize).collect();
    let mut ask_cm: Vec<usize> =
        absent.iter().filter_map(|&i| parts.community[i]).map(|i| i as usize).collect();
    let mut ask_tags: Vec<usize> = absent.iter().flat_map(|&i| &parts.tags[i]).map(|&i| i as usize).collect();
    for v in [&mut ask_cr, &mut ask_cm, &mut ask_tags] {
        v.sort_unstable();
        v.dedup();
    }
    ask_cr.retain(|&i| {
        creator_ids[i] = creator_ids[i].or_else(|| known.creator_ids.get(&key(cr, i)).copied());
        creator_ids[i].is_none()
    });
    ask_cm.retain(|&i| {
        community_ids[i] = community_ids[i].or_else(|| known.community_ids.get(&key(cm, i)).copied());
        community_ids[i].is_none()
    });
    ask_tags.retain(|&i| {
        tag_ids[i] = tag_ids[i].or_else(|| known.tag_ids.get(&page.tags[i]).copied());
        tag_ids[i].is_none()
    });
    if !(ask_cr.is_empty() && ask_cm.is_empty() && ask_tags.is_empty()) {
        let found = client
            .query(
                sql::ENTITY_IDS,
                &[
                    &pick(&cr.platform, &ask_cr),
                    &pick(&cr.external_id, &ask_cr),
                    &pick(&cm.platform, &ask_cm),
                    &pick(&cm.external_id, &ask_cm),
                    &pick(&page.tags, &ask_tags),
                ],
            )
            .await?;
        for row in &found {
            let (table, i, id) =
                (row.get::<_, i32>(0), row.get::<_, i64>(1) as usize, row.get::<_, Option<i64>>(2));
            match table {
                0 => creator_ids[ask_cr[i]] = id,
                1 => community_ids[ask_cm[i]] = id,
                _ => tag_ids[ask_tags[i]] = id,
            }
        }
    }
    // Every id the page now knows is remembered, once: the next pages' rows reference the
    // same creators, and a creator this writer knows is current is not asked about again.
    for (i, id) in creator_ids.iter().enumerate() {
        if let Some(id) = id {
            known.creator_ids.insert(key(cr, i), *id);
        }
    }
    for (i, id) in community_ids.iter().enumerate() {
        if let Some(id) = id {
            known.community_ids.insert(key(cm, i), *id);
        }
    }
    for (i, id) in tag_ids.iter().enumerate() {
        if let Some(id) = id {
            known.tag_ids.insert(page.tags[i].clone(), *id);
        }
    }
    let mut content = CopyBuf::new();
    let mut edges = CopyBuf::new();
    let mut content_rows = 0;
    for &i in absent {
        let Some(id) = fresh.content_ids[i] else {
            return Err(crate::error::Error::internal(format!(
                "the first phase took no content id for new row {i}"
            )));
        };
        let b = &mut content;
        b.int(Some(id));
        b.int(parts.creator[i].and_then(|c| creator_ids[c as usize]));
        b.int(parts.community[i].and_then(|c| community_ids[c as usize]));
        if parts.tomb_applies[i] {
            b.opt(rows.tomb_at[i].as_deref());
            b.opt(rows.tomb_scan[i].as_deref());
        } else {
            b.null();
            b.null();
        }
        let start = if i == 0 { 0 } else { rows.ends[i - 1] };
        b.encoded(&rows.data[start..parts.mids[i]]);
        b.end_row();
        content_rows += 1 + u64::from(parts.tomb_applies[i] && rows.at[i].is_some());
        for &t in &parts.tags[i] {
            if let Some(tag) = tag_ids[t as usize] {
                edges.int(Some(id));
                edges.int(Some(tag));
                edges.end_row();
            }
        }
    }
    let edge_rows = edges.rows() as u64;
    Ok(Some(NewRows {
        content: Bytes::from(content.into_bytes()),
        edges: (edge_rows > 0).then(|| Bytes::from(edges.into_bytes())),
        content_rows,
        edge_rows,
    }))
}

/// COPYs the new rows and their edges; the driver's own error, so a unique violation can be
/// told from the rest.
async fn copy_new(tx: &tokio_postgres::Transaction<'_>, new: &NewRows) -> Result<(), tokio_postgres::Error> {
    for (stmt, data) in
        [(sql::COPY_NEW_CONTENT, Some(&new.content)), (sql::COPY_NEW_EDGES, new.edges.as_ref())]
    {
        let Some(data) = data else { continue };
        let sink = tx.copy_in::<_, Bytes>(stmt).await?;
        futures_util::pin_mut!(sink);
        sink.send(data.clone()).await?;
        sink.finish().await?;
    }
    Ok(())
}

/// What of a page may change the store: COPY payloads of the rows newer than the store's
/// (or not in it), and the tags it lacks; and the ids its new content rows need.
///
/// Content rows the store does not hold at all (`absent`) can skip staging and the upsert
/// ([`new_rows`]); `content` holds the payload of the others, built by
/// [`Fresh::merge_absent`] once the page knows which absent rows it must merge after all.
#[derive(Debug, Default)]
struct Fresh {
    /// Indexes of the creators and communities newer than the store's (ascending).
    creators: Vec<usize>,
    communities: Vec<usize>,
    content: Option<Bytes>,
    tags: Vec<String>,
    /// Indexes of the content rows absent from the store (ascending).
    absent: Vec<usize>,
    /// Indexes of every content row kept, absent or not (ascending).
    kept: Vec<usize>,
    /// The ids of the page's creators, communities and tags that the first phase found and
    /// [`write_entities`] inserted or updated.
    ids: PageIds,
    /// A fresh id for each absent content row (by the page's index; `None` elsewhere),
    /// taken by the first phase. A row merged after all leaves its id unused.
    content_ids: Vec<Option<i64>>,
}

/// Ids of a page's creators, communities and tags, by their index in the page; `None`
/// where not known yet.
#[derive(Debug, Default, Clone)]
struct PageIds {
    creators: Vec<Option<i64>>,
    communities: Vec<Option<i64>>,
    tags: Vec<Option<i64>>,
}

impl Fresh {
    /// Sends the absent content rows for which `merge` holds through the merges instead,
    /// and builds the staging payload of every row to merge.
    fn merge_absent(&mut self, page: &PgPage, merge: impl Fn(usize) -> bool) {
        let Some(rows) = &page.content else { return };
        self.absent.retain(|&i| !merge(i));
        let merged: Vec<usize> =
            self.kept.iter().copied().filter(|i| self.absent.binary_search(i).is_err()).collect();
        self.content = rows.select(&merged);
    }
}

/// The content keys (hashed) of the pages this sink's writers are writing. Two writers'
/// pages often share a key: an update follows its post within a few pages. A new row's
/// COPY into `content` meeting a key another writer's page has just inserted would wait for
/// that page and then fail, and the whole page would be merged again; so an absent row
/// whose key is in another page being written is merged from the start. A hash collision
/// only merges a row that could have been copied. Keys of writers in other processes are
/// not here: their rare collisions take the fallback ([`PgWriter::write`]).
#[derive(Debug, Default)]
struct InFlight(std::sync::Mutex<HashMap<u64, u32>>);

impl InFlight {
    /// Registers a page's keys until the returned guard drops (after its commit, or its
    /// failure), and tells which of them another page being written holds *now*. That must
    /// be decided before the first phase asks the store: a page that leaves later committed
    /// before the question, and the store answers for it; a page that enters later sees
    /// this one's keys.
    fn enter<'a>(&'a self, keys: &'a [u64]) -> (InFlightPage<'a>, Vec<bool>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let shared = keys
            .iter()
            .map(|k| {
                let n = map.entry(*k).or_default();
                *n += 1;
                *n > 1
            })
            .collect();
        (InFlightPage { set: self, keys }, shared)
    }
}

/// A page's keys in [`InFlight`], removed on drop.
struct InFlightPage<'a> {
    set: &'a InFlight,
    keys: &'a [u64],
}

impl Drop for InFlightPage<'_> {
    fn drop(&mut self) {
        let mut map = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        for k in self.keys {
            if let Some(n) = map.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    map.remove(k);
                }
            }
        }
    }
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
    sequence: &str,
    ask_entities: bool,
    stats: &mut WriteStats,
) -> Result<Fresh> {
    let none = KeyedRows::default();
    let [cr, cm, ct] =
        [&page.creators, &page.communities, &page.content].map(|r| r.as_ref().unwrap_or(&none));
    // Creators and communities this writer does not know to be stale: asked about, or kept
    // without asking (`ask_entities` false: [`PgSink::bulk`]). Every content row is asked
    // about, and tags not known.
    let unknown_cr: Vec<usize> = (0..cr.len()).filter(|&i| !Known::stale(&known.creators, cr, i)).collect();
    let unknown_cm: Vec<usize> =
        (0..cm.len()).filter(|&i| !Known::stale(&known.communities, cm, i)).collect();
    let ((ask_cr, kept_cr), (ask_cm, kept_cm)) = if ask_entities {
        ((unknown_cr, Vec::new()), (unknown_cm, Vec::new()))
    } else {
        ((Vec::new(), unknown_cr), (Vec::new(), unknown_cm))
    };
    let ask_tags: Vec<usize> =
        (0..page.tags.len()).filter(|&i| !known.tags.contains(&page.tags[i])).collect();
    // Ids by the page's index, as the first phase and the entity inserts learn them.
    let mut ids = PageIds {
        creators: vec![None; cr.len()],
        communities: vec![None; cm.len()],
        tags: vec![None; page.tags.len()],
    };
    if ct.is_empty() && ask_cr.is_empty() && ask_cm.is_empty() && ask_tags.is_empty() {
        return Ok(Fresh { creators: kept_cr, communities: kept_cm, ids, ..Fresh::default() });
    }
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
                &pick(&cr.at, &ask_cr),
                &pick(&cr.scan, &ask_cr),
                &pick(&cm.platform, &ask_cm),
                &pick(&cm.external_id, &ask_cm),
                &pick(&cm.at, &ask_cm),
                &pick(&cm.scan, &ask_cm),
                &pick(&page.tags, &ask_tags),
                &sequence,
            ],
        )
        .await?;
    // Indexes into what was asked, mapped back to the page's rows; table 4 is content
    // absent from the store (and so kept too).
    let mut keep: [Vec<usize>; 5] = Default::default();
    let mut content_ids = vec![None; ct.len()];
    for row in &found {
        let (table, i) = (row.get::<_, i32>(0) as usize, row.get::<_, i64>(1) as usize);
        let (id, changes) = (row.get::<_, Option<i64>>(2), row.get::<_, bool>(3));
        let i = match table {
            1 => ask_cr[i],
            2 => ask_cm[i],
            3 => ask_tags[i],
            _ => i,
        };
        match table {
            1 => ids.creators[i] = id,
            2 => ids.communities[i] = id,
            3 => ids.tags[i] = id,
            4 => content_ids[i] = id,
            _ => {}
        }
        if changes {
            keep[table].push(i);
        }
    }
    keep[1].extend(kept_cr);
    keep[2].extend(kept_cm);
    keep.iter_mut().for_each(|k| k.sort_unstable());
    let [present, creators, communities, tags, absent] = keep;
    stats.unchanged = (ct.len() - present.len() - absent.len()) as u64;
    let mut kept: Vec<usize> = present.iter().chain(&absent).copied().collect();
    kept.sort_unstable();
    Ok(Fresh {
        content: None,
        creators,
        communities,
        tags: tags.iter().map(|&i| page.tags[i].clone()).collect(),
        absent,
        kept,
        ids,
        content_ids,
    })
}

/// New and newer creators and communities, and new tags, in a short transaction of their
/// own, before the page's; the ids of the rows it writes go into `fresh.ids`.
///
/// In the page transaction, an insert of a key another writer has just inserted waits for
/// that writer's whole page to commit, and on a first load every page brings new creators
/// its neighbours also bring: the writers queued behind each other (measured: 365 ms of a
/// page with three writers). Here the row locks on hot creators are held only until this
/// short commit, and the page's transaction writes content alone. This is safe under the
/// merge rules: the rows carry the newest version the page has, newest-wins keeps them
/// monotonic, and if the page then fails they are facts a retry writes again while the
/// checkpoint does not move. Both writers take the rows in key order, so they cannot
/// deadlock on them.
async fn write_entities(
    client: &mut Client,
    page: &PgPage,
    fresh: &mut Fresh,
    stats: &mut WriteStats,
) -> Result<()> {
    if fresh.creators.is_empty() && fresh.communities.is_empty() && fresh.tags.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await?;
    for (stmt, kept, rows, ids, count) in [
        (sql::UPSERT_CREATORS, &fresh.creators, &page.creators, &mut fresh.ids.creators, &mut stats.creators),
        (
            sql::UPSERT_COMMUNITIES,
            &fresh.communities,
            &page.communities,
            &mut fresh.ids.communities,
            &mut stats.communities,
        ),
    ] {
        let Some(rows) = rows.as_ref().filter(|_| !kept.is_empty()) else { continue };
        let written = tx
            .query(
                stmt,
                &[
                    &pick(&rows.platform, kept),
                    &pick(&rows.external_id, kept),
                    &pick(&rows.at, kept),
                    &pick(&rows.scan, kept),
                    &pick(&rows.own[0], kept),
                    &pick(&rows.own[1], kept),
                    &pick(&rows.own[2], kept),
                    &pick(&rows.deleted, kept),
                ],
            )
            .await?;
        *count = written.len() as u64;
        for row in &written {
            if let Some(i) = rows.position(row.get(0), row.get(1)) {
                ids[i] = Some(row.get(2));
            }
        }
    }
    if !fresh.tags.is_empty() {
        let written = tx.query(sql::MERGE_TAGS, &[&fresh.tags]).await?;
        stats.tags = written.len() as u64;
        for row in &written {
            if let Ok(i) = page.tags.binary_search_by(|t| t.as_str().cmp(row.get::<_, &str>(0))) {
                fresh.ids.tags[i] = Some(row.get(1));
            }
        }
    }
    tx.commit().await?;
    Ok(())
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
        stats.content_tags += removed + added;
    }
    let tombs = tx.execute(sql::MERGE_CONTENT_TOMBSTONES, &[]).await?;
    stats.content += live + tombs;
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
            k.entity("x", id, v, [None, None, None], false);
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
        let mut k = Keyed::with_capacity(3);
        for id in ["a", "bb", "ccc"] {
            k.key("x", id, None, None);
            k.buf.text(id);
            k.end_row();
        }
        let rows = &k.finish().unwrap();
        assert_eq!(rows.select(&[0, 2]).as_deref(), Some(&b"a\nccc\n"[..]));
        assert_eq!(rows.select(&[]), None);
        assert_eq!(rows.select(&[0, 1, 2]).as_deref(), Some(&b"a\nbb\nccc\n"[..]));
    }
}
