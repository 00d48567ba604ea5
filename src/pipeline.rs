//! The pipeline: fetch → parse → write, wired back to front with bounded queues.
//!
//! ```text
//! fetchers (one per unit, ≤ --fetchers at once)
//!    └─ raw pages ─[bounded]─▶ parse dispatcher ─▶ rayon: decode, parse, fold, encode
//!                                                     └─ prepared ─[bounded]─▶ writers (--writers)
//! ```
//! A slow stage pushes back on the one before it, so memory is bounded by the queue sizes,
//! not by the window. The first fatal error closes the queues: fetchers and parsers stop at
//! their next send, and [`execute`] returns the error with the counts of what committed.

use crate::backfill::Claims;
use crate::error::{Error, Kind, Result};
use crate::lock::LockWatch;
use crate::parse::{parse_page, Drift, Filter, Repairs, StampCounts};
use crate::retry::RetryBudget;
use crate::source::{KeyBounds, Payload, RawPage, Source};
use crate::time::StampForm;
use crate::write::{PageWriter, Sink, WriteStats};
use prometheus_client::metrics::histogram::Histogram;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn, Instrument};

/// How one run is executed.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Units fetched in parallel.
    pub fetchers: usize,
    /// Page writers (each its own connection and transaction).
    pub writers: usize,
    /// The units to fetch (day partitions, export files), when they are known up front.
    pub units: Vec<String>,
    /// A backfill job's claims: when set, fetchers claim their units from the job instead
    /// of taking them from `units`, a unit that cannot be read fails alone (recorded on the
    /// unit) instead of failing the run, and each unit is marked done once every page of it
    /// committed.
    pub claims: Option<Arc<Claims>>,
    /// The `updatedAt` key bounds handed to the source.
    pub bounds: Option<KeyBounds>,
    /// The exact filter applied after parsing.
    pub filter: Filter,
    /// Counts raw records of committed pages (for a progress display).
    pub progress: Option<Arc<AtomicU64>>,
    /// A page in which more than this percentage of the lines are unreadable (not JSON, not
    /// an item) is a broken input: the run fails instead of quarantining it line by line.
    /// 100 turns the check off.
    pub max_unreadable_percent: u8,
    /// How long a page (or a writer's first connection) is retried after transient
    /// failures before the run fails: long enough to ride out a managed database failover.
    pub retry_budget: Duration,
    /// The run lock: writers stop before their next page once it is lost.
    pub lock: Option<LockWatch>,
    /// Observes each committed page's write time, retries included (for `/metrics`).
    pub page_seconds: Option<Histogram>,
}

/// What a run did. Counts cover committed pages only.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Pages committed.
    pub pages: u64,
    /// Raw records read in committed pages.
    pub read: u64,
    /// Records outside the window.
    pub skipped: u64,
    /// Rejected records by reason code.
    pub rejects: BTreeMap<&'static str, u64>,
    /// Repairs by rule.
    pub repairs: Repairs,
    /// Drift observed: (attribute, type) → records.
    pub drift: BTreeMap<(String, &'static str), u64>,
    /// Rows written per table.
    pub written: WriteStats,
    /// Page transactions retried.
    pub retries: u64,
    /// Records read per `updatedAt` form (committed pages).
    pub stamps: StampCounts,
    /// Items the source's index returned, before any trim (None: the source has no index).
    pub index_items: Option<u64>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Summary {
    /// Returns the reject counts as a JSON object text.
    pub fn rejects_json(&self) -> String {
        let m: serde_json::Map<String, serde_json::Value> =
            self.rejects.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
        serde_json::Value::Object(m).to_string()
    }

    /// Returns the repair counts as a JSON object text.
    pub fn repairs_json(&self) -> String {
        let m: serde_json::Map<String, serde_json::Value> =
            self.repairs.fired().map(|(r, n)| (r.name().to_string(), n.into())).collect();
        serde_json::Value::Object(m).to_string()
    }

    /// Returns the number of records rejected.
    pub fn rejected(&self) -> u64 {
        self.rejects.values().sum()
    }

    /// Returns the records inside the window: what the run was for.
    pub fn in_window(&self) -> u64 {
        self.read.saturating_sub(self.skipped)
    }

    /// Returns the read amplification: items the index returned ÷ records inside the window
    /// (1.0 reads only what changed). None when the source has no index or nothing changed.
    pub fn read_amplification(&self) -> Option<f64> {
        let items = self.index_items?;
        (self.in_window() > 0).then(|| items as f64 / self.in_window() as f64)
    }

    /// Returns the stamp counts as a JSON object text (form label → records).
    pub fn stamps_json(&self) -> String {
        let m: serde_json::Map<String, serde_json::Value> =
            self.stamps.iter().map(|(k, v)| (k.label(), (*v).into())).collect();
        serde_json::Value::Object(m).to_string()
    }

    /// Returns the records stamped further west of UTC than `margin_minutes`, and the
    /// largest such offset in minutes: records that the index query may miss.
    pub fn beyond_margin(&self, margin_minutes: u32) -> (u64, u32) {
        self.stamps
            .iter()
            .filter(|(f, _)| f.west_minutes() > margin_minutes)
            .fold((0, 0), |(n, w), (f, c)| (n + c, w.max(f.west_minutes())))
    }

    /// Returns the records whose `updatedAt` is an epoch number (never found by the index).
    pub fn epoch_stamps(&self) -> u64 {
        self.stamps.get(&StampForm::Epoch).copied().unwrap_or(0)
    }

    /// Returns records read per second of wall time.
    pub fn records_per_sec(&self) -> f64 {
        self.read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The counts a page carries from the parse stage to its commit.
struct PageInfo {
    unit: String,
    /// The tracker's ids of the units the page holds records of.
    tags: Vec<u32>,
    /// Set when the page (or one file of a page of several) is mostly not records: the
    /// input is broken, and the page must not be written.
    broken: Option<String>,
    read: u64,
    skipped: u64,
    rejects: Vec<&'static str>,
    stamps: StampCounts,
    repairs: Repairs,
    drift: Drift,
}

/// Runs the pipeline to the end. Returns the summary of what committed, and the first
/// fatal error if any (then some pages may have committed, which is safe: they are
/// idempotent, and the caller does not move the checkpoint).
pub async fn execute<S: Source, K: Sink>(
    source: Arc<S>,
    sink: Arc<K>,
    cfg: PipelineConfig,
) -> (Summary, Result<()>) {
    let started = Instant::now();
    let fetchers = cfg.fetchers.max(1);
    let writers = cfg.writers.max(1);
    let (raw_tx, raw_rx) = async_channel::bounded::<(Vec<u32>, RawPage)>(fetchers * 2);
    let (prep_tx, prep_rx) = async_channel::bounded::<(PageInfo, K::Prepared)>(writers * 2);
    let summary = Arc::new(Mutex::new(Summary::default()));

    // Fetch: `fetchers` loops, each taking (or claiming) one unit at a time.
    let tracker = Arc::new(Tracker::new(cfg.claims.clone()));
    let bookkeeping = tracker.clone().bookkeeping(cfg.retry_budget);
    let fetch = {
        let feed = Arc::new(Feed {
            list: Mutex::new(cfg.units.iter().cloned().collect()),
            claims: cfg.claims.clone(),
        });
        let loops: Vec<_> = (0..fetchers)
            .map(|_| {
                let (source, feed, tracker) = (source.clone(), feed.clone(), tracker.clone());
                let (tx, bounds) = (raw_tx.clone(), cfg.bounds.clone());
                tokio::spawn(async move {
                    let res = fetch_loop(&*source, &feed, bounds, &tx, &tracker).await;
                    if res.is_err() {
                        // Stop the other fetchers at their next send.
                        tx.close();
                    }
                    res
                })
            })
            .collect();
        drop(raw_tx);
        tokio::spawn(async move {
            let mut first = Ok(());
            for l in loops {
                let res =
                    l.await.unwrap_or_else(|e| Err(Error::internal(format!("fetch task stopped: {e}"))));
                if first.is_ok() {
                    first = res;
                }
            }
            first
        })
    };

    // Parse: a dispatcher hands each page to rayon; at most `in_flight` pages are being
    // parsed or waiting to be queued, which bounds memory.
    let parse = {
        let sink = sink.clone();
        let filter = cfg.filter;
        let max_unreadable_percent = cfg.max_unreadable_percent;
        let prep_tx = prep_tx.clone();
        let raw_rx = raw_rx.clone();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(rayon::current_num_threads() + 1));
        tokio::spawn(async move {
            while let Ok((tags, page)) = raw_rx.recv().await {
                let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
                if prep_tx.is_closed() {
                    break;
                }
                let (sink, tx) = (sink.clone(), prep_tx.clone());
                rayon::spawn(move || {
                    let (raw, origins) = page.payload.into_raw();
                    let mut parsed = parse_page(&page.unit, raw, &filter);
                    if let Some(o) = &origins {
                        for r in &mut parsed.rejects {
                            r.origin = o.of(r.index, &page.unit);
                        }
                    }
                    let broken = broken_input(&page.unit, &parsed, origins.as_ref(), max_unreadable_percent);
                    let prepared = sink.prepare(&parsed);
                    let info = PageInfo {
                        unit: page.unit,
                        tags,
                        broken,
                        read: parsed.read,
                        skipped: parsed.skipped,
                        rejects: parsed.rejects.iter().map(|r| r.reason.code()).collect(),
                        stamps: parsed.stamps,
                        repairs: parsed.repairs,
                        drift: parsed.drift,
                    };
                    // Blocks this rayon thread while the writers are behind: back-pressure.
                    let _ = tx.send_blocking((info, prepared));
                    drop(permit);
                });
            }
            // Wait for the pages still on rayon before closing the queue behind them.
            let _ = in_flight.acquire_many(rayon::current_num_threads() as u32 + 1).await;
            drop(raw_rx);
        })
    };
    drop(prep_tx);

    // Write: `writers` tasks, each with its own connection.
    let mut handles = Vec::with_capacity(writers);
    for n in 0..writers {
        let (sink, rx, summary) = (sink.clone(), prep_rx.clone(), summary.clone());
        let (raw_rx, progress) = (raw_rx.clone(), cfg.progress.clone());
        let limits = Limits {
            retry_budget: cfg.retry_budget,
            lock: cfg.lock.clone(),
            tracker: tracker.clone(),
            page_seconds: cfg.page_seconds.clone(),
        };
        handles.push(tokio::spawn(async move {
            let res = write_loop(&*sink, &rx, &summary, n, progress.as_deref(), &limits).await;
            if res.is_err() {
                // Stop everything upstream: parsers and fetchers see closed queues.
                rx.close();
                raw_rx.close();
            }
            res
        }));
    }
    drop(raw_rx);
    drop(prep_rx);

    let mut first_err: Option<Error> = None;
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(Error::internal(format!("writer task stopped: {e}")));
            }
        }
    }
    let _ = parse.await;
    drop(tracker);
    if let Err(e) =
        bookkeeping.await.unwrap_or_else(|e| Err(Error::internal(format!("bookkeeping stopped: {e}"))))
    {
        first_err.get_or_insert(e);
    }
    match fetch.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            first_err.get_or_insert(e);
        }
        Err(e) => {
            first_err.get_or_insert(Error::internal(format!("fetch task stopped: {e}")));
        }
    }
    if crate::shutdown::requested() {
        // Whatever else the stop caused, the run was stopped: it is not complete.
        first_err = Some(crate::shutdown::cancelled());
    }
    let mut s = summary.lock().expect("summary poisoned").clone();
    s.elapsed = started.elapsed();
    s.index_items = source.items_returned();
    (s, first_err.map_or(Ok(()), Err))
}

/// Says why a page is a broken input, if it is: more than `max_percent` of its lines (or of
/// one file's lines, in a page of several files) are not DynamoDB JSON items.
fn broken_input(
    unit: &str,
    parsed: &crate::parse::ParsedPage,
    origins: Option<&crate::source::Origins>,
    max_percent: u8,
) -> Option<String> {
    let unreadable: Vec<usize> =
        parsed.rejects.iter().filter(|r| r.reason.is_unreadable()).map(|r| r.index).collect();
    if unreadable.is_empty() {
        return None;
    }
    let over = |bad: u64, all: u64| bad * 100 > u64::from(max_percent) * all;
    let mut files: Vec<(&str, std::ops::Range<usize>)> =
        origins.map(|o| o.files().collect()).unwrap_or_default();
    if files.is_empty() {
        files.push((unit, 0..parsed.read as usize));
    }
    let several = files.len() > 1;
    for (file, range) in files {
        let bad = unreadable.iter().filter(|i| range.contains(i)).count() as u64;
        let all = range.len() as u64;
        if over(bad, all) {
            let shared = if several {
                " (it shared its page with other small files, which fail with it and are retried one by one)"
            } else {
                ""
            };
            return Some(format!(
                "{file}: {bad} of {all} lines are not DynamoDB JSON items (more than --max-unreadable-percent {max_percent}): the input is broken, not dirty; this page was not written{shared}"
            ));
        }
    }
    None
}

/// What a writer checks before and around each page.
struct Limits {
    retry_budget: Duration,
    lock: Option<LockWatch>,
    tracker: Arc<Tracker>,
    page_seconds: Option<Histogram>,
}

async fn write_loop<K: Sink>(
    sink: &K,
    rx: &async_channel::Receiver<(PageInfo, K::Prepared)>,
    summary: &Mutex<Summary>,
    writer: usize,
    progress: Option<&AtomicU64>,
    limits: &Limits,
) -> Result<()> {
    let mut budget = RetryBudget::new(limits.retry_budget);
    let mut w = loop {
        match sink.writer().await {
            Ok(w) => break w,
            Err(e) => match budget.next(&e) {
                Some(wait) => {
                    warn!(writer, attempt = budget.attempts(), error = %e, wait_ms = wait.as_millis() as u64, "writer cannot connect, retrying");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(budget.give_up(e).context("opening a page writer")),
            },
        }
    };
    while let Ok((info, page)) = rx.recv().await {
        // A stop request: the page being written (by this or another writer) finishes;
        // the ones not started are dropped.
        if crate::shutdown::requested() {
            return Err(crate::shutdown::cancelled());
        }
        if let Some(lock) = &limits.lock {
            lock.check()?;
        }
        if let Some(broken) = &info.broken {
            if !limits.tracker.is_job() {
                return Err(Error::new(Kind::Io, format!("{broken} and the run fails")));
            }
            // A job fails the page's units alone: the other units go on.
            let e = Error::new(Kind::Io, broken.clone());
            for tag in &info.tags {
                limits.tracker.fail(*tag, &e);
            }
            continue;
        }
        let mut budget = RetryBudget::new(limits.retry_budget);
        let page_started = std::time::Instant::now();
        let stats = loop {
            // A lost lock ends the retries: another run may hold it now.
            if let Some(lock) = &limits.lock {
                lock.check()?;
            }
            match w.write(&page).await {
                Ok(s) => break s,
                Err(e) => match budget.next(&e) {
                    Some(wait) => {
                        warn!(unit = %info.unit, writer, attempt = budget.attempts(), error = %e, wait_ms = wait.as_millis() as u64, "page failed, retrying");
                        summary.lock().expect("summary poisoned").retries += 1;
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        return Err(budget.give_up(e).context(format!("writing a page of {}", info.unit)))
                    }
                },
            }
        };
        if let Some(h) = &limits.page_seconds {
            h.observe(page_started.elapsed().as_secs_f64());
        }
        info!(unit = %info.unit, writer, read = info.read, content = stats.content, rejected = info.rejects.len(), "page committed");
        for tag in &info.tags {
            limits.tracker.committed(*tag);
        }
        if let Some(p) = progress {
            p.fetch_add(info.read, Ordering::Relaxed);
        }
        let mut s = summary.lock().expect("summary poisoned");
        s.pages += 1;
        s.read += info.read;
        s.skipped += info.skipped;
        for r in info.rejects {
            *s.rejects.entry(r).or_default() += 1;
        }
        s.repairs.merge(&info.repairs);
        for (f, n) in info.stamps {
            *s.stamps.entry(f).or_default() += n;
        }
        for (k, n) in info.drift {
            *s.drift.entry(k).or_default() += n;
        }
        s.written.merge(&stats);
    }
    Ok(())
}

/// Where fetchers take their units from: a list known up front, or a job's claims.
struct Feed {
    list: Mutex<VecDeque<String>>,
    claims: Option<Arc<Claims>>,
}

impl Feed {
    /// The next units to fetch: one, or several small ones read into shared pages. Empty
    /// when none is left.
    async fn next(&self) -> Result<Vec<String>> {
        match &self.claims {
            Some(c) => c.claim().await,
            None => Ok(self.list.lock().expect("feed poisoned").pop_front().into_iter().collect()),
        }
    }
}

/// Fetches units until none is left, forwarding each page tagged with its unit(s).
async fn fetch_loop<S: Source>(
    source: &S,
    feed: &Feed,
    bounds: Option<KeyBounds>,
    out: &async_channel::Sender<(Vec<u32>, RawPage)>,
    tracker: &Tracker,
) -> Result<()> {
    loop {
        if out.is_closed() || crate::shutdown::requested() {
            return Ok(());
        }
        let units = feed.next().await?;
        if units.is_empty() {
            return Ok(());
        }
        if units.len() > 1 {
            let page_size = feed.claims.as_ref().map_or(1000, |c| c.page_size());
            if !fetch_shared(source, units, page_size, out, tracker).await {
                return Ok(());
            }
            continue;
        }
        let unit = units.into_iter().next().expect("one unit");
        let tag = tracker.begin(&unit);
        let (tx, rx) = async_channel::bounded::<RawPage>(1);
        let span = tracing::info_span!("fetch", unit = %unit);
        let fetch = source.fetch(unit, bounds.clone(), tx).instrument(span);
        let stop = crate::shutdown::token();
        let forward = async {
            loop {
                let page = tokio::select! {
                    p = rx.recv() => p,
                    // A stop request: the unit is not complete.
                    _ = stop.cancelled() => {
                        rx.close();
                        return false;
                    }
                };
                let Ok(page) = page else { return true };
                tracker.sent(tag, page.payload.len() as u64);
                if out.send((vec![tag], page)).await.is_err() {
                    // The pipeline is stopping: the unit is not complete.
                    rx.close();
                    return false;
                }
            }
        };
        let (res, forwarded) = tokio::join!(fetch, forward);
        match res {
            Ok(()) if forwarded && !out.is_closed() => tracker.fetched(tag),
            Ok(()) => return Ok(()),
            Err(e) if tracker.is_job() => tracker.fail(tag, &e),
            Err(e) => return Err(e),
        }
    }
}

/// Reads several small units (export files) one after the other into shared pages of
/// about `page_size` lines, so that many small files take few transactions; each unit is
/// still tracked on its own (done once every page holding its lines committed). Returns
/// false when the pipeline is stopping.
async fn fetch_shared<S: Source>(
    source: &S,
    units: Vec<String>,
    page_size: usize,
    out: &async_channel::Sender<(Vec<u32>, RawPage)>,
    tracker: &Tracker,
) -> bool {
    /// The page being filled: its files, and each unit's share of its lines.
    #[derive(Default)]
    struct Shared {
        files: Vec<(String, crate::source::Lines)>,
        lines: usize,
        shares: Vec<(u32, u64)>,
    }
    async fn flush(
        page: &mut Shared,
        fetched: &mut Vec<u32>,
        out: &async_channel::Sender<(Vec<u32>, RawPage)>,
        tracker: &Tracker,
    ) -> bool {
        let page = std::mem::take(page);
        if !page.files.is_empty() {
            let mut tags = Vec::with_capacity(page.shares.len());
            for (tag, records) in &page.shares {
                tracker.sent(*tag, *records);
                tags.push(*tag);
            }
            let unit = format!("{} (+{} files)", page.files[0].0, page.files.len() - 1);
            if out.send((tags, RawPage { unit, payload: Payload::Files(page.files) })).await.is_err() {
                return false;
            }
        }
        // Units read to their end whose lines are all in pages sent by now.
        for tag in fetched.drain(..) {
            tracker.fetched(tag);
        }
        true
    }
    let mut page = Shared::default();
    let mut fetched = Vec::new();
    for unit in units {
        if crate::shutdown::requested() {
            return false;
        }
        let tag = tracker.begin(&unit);
        let (tx, rx) = async_channel::bounded::<RawPage>(1);
        let span = tracing::info_span!("fetch", unit = %unit);
        let fetch = source.fetch(unit, None, tx).instrument(span);
        let collect = async {
            let mut got = Vec::new();
            while let Ok(p) = rx.recv().await {
                got.push(p);
            }
            got
        };
        let (res, pages) = tokio::join!(fetch, collect);
        for p in pages {
            let n = p.payload.len() as u64;
            match p.payload {
                Payload::Lines(lines) => {
                    page.lines += lines.len();
                    page.files.push((p.unit, lines));
                    match page.shares.last_mut() {
                        Some((t, r)) if *t == tag => *r += n,
                        _ => page.shares.push((tag, n)),
                    }
                }
                other => {
                    // Not lines (no source batches those today): its own page.
                    tracker.sent(tag, n);
                    if out.send((vec![tag], RawPage { unit: p.unit, payload: other })).await.is_err() {
                        return false;
                    }
                }
            }
            if page.lines >= page_size && !flush(&mut page, &mut Vec::new(), out, tracker).await {
                return false;
            }
        }
        match res {
            Ok(()) => fetched.push(tag),
            Err(e) => tracker.fail(tag, &e),
        }
    }
    flush(&mut page, &mut fetched, out, tracker).await && !out.is_closed()
}

/// Follows each unit's pages from fetch to commit, so that a job's unit is marked done
/// only once the source delivered all of it and every one of its pages committed.
struct Tracker {
    claims: Option<Arc<Claims>>,
    state: Mutex<TrackState>,
    events: async_channel::Sender<UnitEvent>,
    receiver: async_channel::Receiver<UnitEvent>,
}

#[derive(Default)]
struct TrackState {
    next: u32,
    units: HashMap<u32, Track>,
}

struct Track {
    unit: String,
    sent: u64,
    committed: u64,
    records: u64,
    fetched: bool,
}

enum UnitEvent {
    Done { unit: String, records: u64, pages: u64 },
    Failed { unit: String, error: String },
}

impl Tracker {
    fn new(claims: Option<Arc<Claims>>) -> Self {
        let (events, receiver) = async_channel::unbounded();
        Self { claims, state: Mutex::default(), events, receiver }
    }

    fn is_job(&self) -> bool {
        self.claims.is_some()
    }

    fn begin(&self, unit: &str) -> u32 {
        if !self.is_job() {
            return 0;
        }
        let mut s = self.state.lock().expect("tracker poisoned");
        s.next += 1;
        let tag = s.next;
        s.units
            .insert(tag, Track { unit: unit.to_string(), sent: 0, committed: 0, records: 0, fetched: false });
        tag
    }

    fn sent(&self, tag: u32, records: u64) {
        if let Some(t) = self.state.lock().expect("tracker poisoned").units.get_mut(&tag) {
            t.sent += 1;
            t.records += records;
        }
    }

    fn fetched(&self, tag: u32) {
        let mut s = self.state.lock().expect("tracker poisoned");
        if let Some(t) = s.units.get_mut(&tag) {
            t.fetched = true;
        }
        self.complete_if_done(&mut s, tag);
    }

    fn committed(&self, tag: u32) {
        let mut s = self.state.lock().expect("tracker poisoned");
        if let Some(t) = s.units.get_mut(&tag) {
            t.committed += 1;
        }
        self.complete_if_done(&mut s, tag);
    }

    fn complete_if_done(&self, s: &mut TrackState, tag: u32) {
        if s.units.get(&tag).is_some_and(|t| t.fetched && t.committed == t.sent) {
            let t = s.units.remove(&tag).expect("checked above");
            let _ = self.events.try_send(UnitEvent::Done { unit: t.unit, records: t.records, pages: t.sent });
        }
    }

    /// Fails a unit: it is never marked done by this run (its pages still in flight are
    /// written, which is harmless), and the error is recorded on it.
    fn fail(&self, tag: u32, e: &Error) {
        if let Some(t) = self.state.lock().expect("tracker poisoned").units.remove(&tag) {
            tracing::error!(unit = %t.unit, error = %e, "unit failed; the other units go on");
            let _ = self.events.try_send(UnitEvent::Failed { unit: t.unit, error: e.to_string() });
        }
    }

    /// Records units done and failed in the job as the events come, until every tracker
    /// handle is gone. A unit still being tracked then was interrupted: it stays `running`
    /// under this worker, whose lock ends with the process, and is claimed again.
    fn bookkeeping(self: Arc<Self>, budget: Duration) -> tokio::task::JoinHandle<Result<()>> {
        let claims = self.claims.clone();
        // The queue closes when the last tracker handle (its only sender) is dropped.
        let rx = self.receiver.clone();
        tokio::spawn(async move {
            let Some(claims) = claims else { return Ok(()) };
            let mut first = Ok(());
            while let Ok(event) = rx.recv().await {
                let res = match &event {
                    UnitEvent::Done { unit, records, pages } => {
                        claims.done(unit, *records, *pages, budget).await
                    }
                    UnitEvent::Failed { unit, error } => claims.fail(unit, error, budget).await,
                };
                if let Err(e) = res {
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
            }
            first
        })
    }
}
