//! The PostgreSQL sink: new rows COPYed straight in, rows the store holds updated by their
//! id, and what must be merged after all COPYed into staging tables and merged set-based.
//!
//! A page is a query and two transactions. The query sends only the rows' keys and versions
//! and learns which rows are newer than the store's, and which the store does not hold at
//! all ([`fresh_rows`]), with the ids those need: stale rows are never copied, so a re-run
//! that changes a tenth of the rows copies a tenth of them. Then a short transaction writes
//! the creators and communities the page has newer versions of, and the tags that do not
//! exist yet ([`write_entities`]; so writers do not queue behind each other on a first
//! load). Then the page's own: content rows the store does not hold are COPYed straight into
//! `content` and `content_tags` ([`new_rows`]), rows it holds are updated by the id the
//! first phase found ([`update_rows`]), and absent rows another writer holds or inserted
//! meanwhile are merged.
//! Why this is fast: each page costs a handful of round trips whatever its size (at most
//! three COPYs and about ten statements over two commits), every row is folded and its key
//! and versions encoded on the rayon pool before the transactions open (the payload only of
//! the rows the first phase keeps, by the writer), new and held rows skip the upserts, and
//! stale versions are filtered before them so a replay writes (almost) nothing.

//!
//! The writer's files, by concern: [`encode`] (a page encoded for COPY, with its keys and
//! versions), [`known`] (what a writer remembers the store holds), [`in_flight`] (the keys
//! other writers of the process are writing), [`fresh`] (the first phase: which rows may
//! change the store), [`land`] (the entity transaction, new rows, updates, merges,
//! quarantine).

mod compare;
mod encode;
mod fresh;
mod in_flight;
mod known;
mod land;

pub use compare::{compare, demote, prepare_reader, Compared, Verdict};
pub use encode::{encode, Encoded, KeyedRows, PgPage, ShardPosition};
use encode::{encode_keys, encode_staged, Pending};

use super::{PageWriter, Sink, WriteStats};
use crate::db;
use crate::error::Result;
use crate::parse::ParsedPage;
use crate::schema::quoted_schema;
use crate::write::sql;
use encode::Batch;
use fresh::fresh_rows;
use in_flight::InFlight;
use known::Known;
use land::{
    copy_in, copy_new, entity_ids, merge_content, new_rows, quarantine, stage, update_rows, updates,
    write_entities,
};
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
    /// Pages go to the staging tables of this staged job ([`PgSink::staged`]).
    staged: Option<i64>,
    in_flight: std::sync::Arc<InFlight>,
    /// What the writers know the store holds ([`Known`]), shared by them.
    known: std::sync::Arc<std::sync::Mutex<Known>>,
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
            staged: None,
            in_flight: Default::default(),
            known: Default::default(),
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

    /// For a staged first load (docs/backfill.md): every page is appended to the unlogged
    /// staging tables, unmerged; the job folds them into the canonical tables at its end
    /// ([`crate::backfill`]). `job` is the job's id: a page staged after the job was folded
    /// (a unit claimed meanwhile) fails, and its unit is loaded again by the next run.
    pub fn staged(mut self, job: Option<i64>) -> Self {
        self.staged = job;
        self
    }
}

impl Sink for PgSink {
    type Prepared = PgPage;
    type Writer = PgWriter;

    /// As [`Sink::prepare_owned`], on a copy of the page's records (the follower and a
    /// repair keep their pages).
    fn prepare(&self, page: &ParsedPage) -> PgPage {
        self.prepare_records(page, page.records.clone())
    }

    /// Encodes the keys and versions only, and keeps the records: the writer encodes the
    /// payload of the new content rows its first phase finds ([`PgPage::payload`]) and
    /// updates the rows the store holds from their records, and a re-run that changes a
    /// tenth of the rows encodes a tenth of them (measured at 1M records: scansync's user
    /// CPU 13.5 -> 12.7-13.0 s on the re-run, 11.3-11.9 -> 10.8-11.2 s on a replay). A staged
    /// load's pages need every row's payload and none of the keys: theirs is encoded here,
    /// on the rayon pool, without them ([`encode_staged`]).
    fn prepare_owned(&self, mut page: ParsedPage) -> PgPage {
        let records = std::mem::take(&mut page.records);
        self.prepare_records(&page, records)
    }

    async fn writer(&self) -> Result<PgWriter> {
        let mut w = PgWriter { sink: self.clone(), client: None, content_ids: String::new() };
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

impl PgSink {
    /// [`Sink::prepare_owned`] of `page`'s rejects and `records`.
    fn prepare_records(&self, page: &ParsedPage, records: Vec<crate::parse::Record>) -> PgPage {
        let batch = Batch::fold(&records);
        if self.staged.is_some() {
            let mut p = PgPage::of_encoded(encode_staged(&batch), &batch);
            p.quarantine_rejects(page);
            return p;
        }
        let (encoded, live) = encode_keys(&batch, &records);
        let mut p = PgPage::of_encoded(encoded, &batch);
        drop(batch);
        p.quarantine_rejects(page);
        p.pending = Some(Pending { records, live });
        p
    }
}

impl PgPage {
    /// Adds the page's rejected records, for the quarantine table.
    fn quarantine_rejects(&mut self, page: &ParsedPage) {
        let p = self;
        for r in &page.rejects {
            p.q_reason.push(r.reason.code().to_owned());
            p.q_scan.push(r.scan_id.clone());
            p.q_partition.push(r.partition.clone());
            p.q_origin.push(r.origin.clone());
            // `text` refuses NUL: keep it visible as an escape instead of losing the record.
            p.q_raw.push(r.raw.replace('\0', "\\u0000"));
        }
    }

    /// A folded batch encoded for the writer, without quarantine rows.
    pub fn of_batch(batch: &Batch) -> Self {
        Self::of_encoded(encode(batch), batch)
    }

    /// A page of `batch`'s rows as encoded, with its tags.
    fn of_encoded(encoded: Encoded, batch: &Batch) -> Self {
        let Encoded { creators, communities, content } = encoded;
        let tags = batch.tags.iter().map(|t| t.to_string()).collect();
        PgPage { creators, communities, content, tags, ..PgPage::default() }
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
    /// The sequence of `content.id`, for new rows' ids ([`new_rows`]).
    content_ids: String,
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
            // without). No JIT: a page's statements run for milliseconds, and once a large
            // store's estimates pass `jit_above_cost` every page compiled its first phase
            // again (measured on a 5M-record store: 60-160 ms a page with JIT; the 10 %
            // re-run 152 s with it, 96 s without).
            client
                .batch_execute(&format!(
                    "set search_path = {schema}; set random_page_cost = 1.1; set jit = off; \
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
            // What the store held may not have survived whatever broke the last connection
            // (every writer of the sink forgets it: they share what they know).
            *fresh::lock(&self.sink.known) = Known::default();
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

impl PageWriter for PgWriter {
    type Prepared = PgPage;

    /// The steps of a page, in the one order they run (see the module doc):
    /// [`fresh_rows`], [`write_entities`] in a short transaction, [`new_rows`], then in the
    /// page's transaction [`copy_new`], the staging COPY, [`merge_content`], [`quarantine`],
    /// commit.
    async fn write(&mut self, page: &PgPage) -> Result<WriteStats> {
        self.write_page(page, None).await
    }
}

impl PgWriter {
    /// Writes one page, and in its own transaction moves a stream shard's position to the
    /// page's last change: both commit, or neither.
    pub async fn write_at(&mut self, page: &PgPage, position: &ShardPosition) -> Result<WriteStats> {
        self.write_page(page, Some(position)).await
    }

    async fn write_page(&mut self, page: &PgPage, position: Option<&ShardPosition>) -> Result<WriteStats> {
        let run_id = self.sink.run_id;
        self.ensure_connected().await?;
        let client = self.client.as_mut().expect("connected above");
        let mut stats = WriteStats::default();
        if let Some(job) = self.sink.staged {
            if position.is_some() {
                // A staged page holds no content keys ([`encode_staged`]): it can only be staged.
                return Err(crate::error::Error::internal(
                    "a staged load's page was written with a stream position: staged sinks only stage",
                ));
            }
            stage(client, page, job, run_id, &mut stats).await?;
            return Ok(stats);
        }
        let mut t = Timings::start();
        let in_flight = self.sink.in_flight.clone();
        let keys = page.content.as_ref().map_or(&[][..], |r| &r.new.hashes[..]);
        let (_in_flight, shared) = in_flight.enter(keys);
        let ask = self.sink.ask_entities;
        let known = &self.sink.known;
        let mut fresh = fresh_rows(client, page, known, &self.content_ids, ask, &mut stats).await?;
        t.lap("fresh");
        write_entities(client, page, &mut fresh, &mut stats).await?;
        t.lap("entities");
        // Rows the store holds are updated from their records; only absent rows need their
        // payload (to COPY them in, or to merge them after all).
        let payload = page.payload(&fresh.absent);
        fresh.merge_absent(&payload, |i| shared[i]);
        let ids = entity_ids(client, page, &fresh, known).await?;
        let mut new = new_rows(page, &payload, &fresh, &ids)?;
        let updated = updates(page, &fresh, &ids)?;
        t.lap("ids");
        loop {
            let tx = client.transaction().await?;
            if let Some(rows) = &new {
                match copy_new(&tx, rows).await {
                    Ok(()) => {
                        stats.content = rows.content_rows;
                        stats.content_tags = rows.edge_rows;
                        stats.removals_applied = rows.removals;
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
                        fresh.merge_absent(&payload, |_| true);
                        new = None;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            t.lap("new");
            if let Some(u) = &updated {
                update_rows(&tx, u, &mut stats).await?;
            }
            t.lap("updates");
            // The content rows to merge, into the staging table (emptied at commit).
            copy_in(&tx, sql::COPY_CONTENT, &fresh.content).await?;
            t.lap("copy");
            merge_content(&tx, &fresh, &mut stats).await?;
            t.lap("content");
            quarantine(&tx, page, run_id, &mut stats).await?;
            if let Some(p) = position {
                let moved = tx
                    .execute(
                        sql::ADVANCE_SHARD,
                        &[&p.stream_arn, &p.shard_id, &p.sequence, &p.last_at, &p.records],
                    )
                    .await?;
                if moved != 1 {
                    // Another follower moved it (or nothing knows the shard): this page must not
                    // commit (it is rolled back when `tx` drops).
                    return Err(crate::error::Error::new(
                        crate::error::Kind::LockLost,
                        format!(
                            "shard {} of {} is not at a position before {}: another follower is reading it; this one stops",
                            p.shard_id, p.stream_arn, p.sequence
                        ),
                    ));
                }
            }
            tx.commit().await?;
            t.lap("commit");
            break;
        }
        t.log();
        fresh::lock(known).learn(page);
        Ok(stats)
    }
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
