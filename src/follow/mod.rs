//! `scansync follow`: every write of a table, through its DynamoDB stream, into the store
//! within seconds, whatever its writer stamped (docs/follow.md).
//!
//! The core here is generic over the [`StreamApi`] and the [`FollowStore`], so its logic
//! (lineage, positions, gaps) is tested in memory with kills (`tests.rs`); `pg.rs` is the
//! store on PostgreSQL, `heal.rs` heals gaps through the index path, `service.rs` is the
//! command around it (lock, ledger, metrics, heartbeat).
//!
//! - **Shards**: listed every [`FollowTuning::discover_every`]; a child is read only once its
//!   parent was read to its end ([`crate::stream::shards`]); one reader per open shard; an
//!   empty read backs off from `poll` up to `max_poll`.
//! - **Positions**: each page is applied with its shard's position in one transaction
//!   ([`FollowStore::apply`]): a kill at any moment re-applies at most the page in flight.
//! - **Same rules as every source**: a page's changes become raw records
//!   ([`crate::stream::records`]) and go through the same parser, fold, writer and merges:
//!   newest wins by `updatedAt`/scan id, never by stream order.
//! - **Never a silent gap**: an iterator that expired is renewed from the position; records
//!   trimmed before they were read, a shard that aged out unread, a new stream ARN: each is a
//!   [`Gap`] with its time range, recorded and healed by the index path.

mod heal;
mod pg;
mod service;
#[cfg(test)]
mod tests;

pub use pg::PgFollowStore;
pub use service::{follow, FollowConfig};

use crate::error::{Error, Kind, Result};
use crate::parse::{parse_page, Filter, ParsedPage};
use crate::retry::Retry;
use crate::shutdown::Stop;
use crate::stats::{RunStats, WriteStats};
use crate::stream::records::{origin, raw_record};
use crate::stream::shards::{self, Known, ShardState};
use crate::stream::{Change, ReadFailure, Shard, StartAt, StreamApi, StreamInfo, ViewType};
use crate::time::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the store knows of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredShard {
    /// Its parent and state.
    pub known: Known,
    /// The last sequence number applied.
    pub position: Option<String>,
    /// The time of the last record applied.
    pub last_at: Option<Timestamp>,
}

/// What the store knows of the followed table's stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Followed {
    /// The stream followed so far (`None`: never followed).
    pub arn: Option<String>,
    /// Its shards.
    pub shards: BTreeMap<String, StoredShard>,
    /// The newest record time applied from it (for a gap if it was replaced).
    pub last_at: Option<Timestamp>,
}

/// A page's position: the last change it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Its sequence number.
    pub seq: String,
    /// Its approximate time.
    pub last_at: Option<Timestamp>,
    /// Changes the page holds.
    pub records: u64,
}

/// A time range the stream can no longer give: healed by the index path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// Why (`handoff`, `trimmed`, `lost`, `stream replaced`).
    pub reason: &'static str,
    /// From (`None`: unknown: the heal reads from the index checkpoint, or fails).
    pub from: Option<Timestamp>,
    /// To (`None`: until now).
    pub to: Option<Timestamp>,
    /// The shard, where one is concerned.
    pub shard: Option<String>,
}

/// Where the follower keeps what it applied and where it stands.
///
/// Guarantee expected of an implementation: [`FollowStore::apply`] writes the page and moves
/// the shard's position in one atomic step (both or neither), and refuses a position that
/// does not move forward from the stored one; everything else is idempotent.
pub trait FollowStore: Send + Sync + 'static {
    /// A page made ready to apply (folded, encoded).
    type Page: Send + Sync + 'static;
    /// Makes a parsed page ready to apply. CPU only: runs on the rayon pool.
    fn prepare(&self, page: &ParsedPage) -> Self::Page;
    /// What is known of the table's stream.
    fn load(&self) -> impl Future<Output = Result<Followed>> + Send;
    /// Starts following `stream` (the first one, or a replacement).
    fn begin_stream(&self, stream: &StreamInfo) -> impl Future<Output = Result<()>> + Send;
    /// Registers shards newly listed (open, without a position).
    fn register(&self, arn: &str, shards: &[Shard]) -> impl Future<Output = Result<()>> + Send;
    /// Marks a shard finished (read to its end) or lost.
    fn set_state(&self, arn: &str, shard: &str, state: ShardState)
        -> impl Future<Output = Result<()>> + Send;
    /// Applies a page and moves the shard's position to its last change, atomically.
    fn apply(
        &self,
        arn: &str,
        shard: &str,
        page: &Self::Page,
        to: &Position,
    ) -> impl Future<Output = Result<WriteStats>> + Send;
    /// Records a gap (idempotent per reason, stream and start).
    fn record_gap(&self, arn: &str, gap: &Gap) -> impl Future<Output = Result<()>> + Send;
    /// Notes that the stream's coverage starts at `from` (kept if one is known already).
    fn covers_from(&self, arn: &str, from: Timestamp) -> impl Future<Output = Result<()>> + Send;
}

/// The follower's knobs.
#[derive(Debug, Clone, Copy)]
pub struct FollowTuning {
    /// The wait after an empty read, doubled up to `max_poll` while reads stay empty.
    pub poll: Duration,
    /// The longest wait between reads of an idle shard.
    pub max_poll: Duration,
    /// Changes per `GetRecords` (at most 1000).
    pub limit: i32,
    /// How often the shards are listed again.
    pub discover_every: Duration,
    /// How long transient failures (throttling, 5xx, a database restart) are retried.
    pub retry_budget: Duration,
    /// TTL expiries tombstone (`--ttl-removals tombstone`).
    pub ttl_removals: bool,
}

impl Default for FollowTuning {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            max_poll: Duration::from_secs(2),
            limit: 1000,
            discover_every: Duration::from_secs(10),
            retry_budget: crate::config::Tuning::DEFAULT.retry_budget,
            ttl_removals: false,
        }
    }
}

/// One shard's progress, for metrics and health.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShardProgress {
    /// Seconds between the last applied record's time and now; 0 while caught up.
    pub lag: f64,
    /// Records applied by this process.
    pub records: u64,
}

/// What the follower did and where it stands (shared with metrics and the heartbeat).
#[derive(Debug, Default)]
pub struct Progress {
    /// Counts of what committed.
    pub stats: RunStats,
    /// Open shards being read, with their lag.
    pub shards: HashMap<String, ShardProgress>,
    /// Gaps found by this process.
    pub gaps: u64,
    /// The newest record time applied by this process: where "now" is for the stream's
    /// clock, which a gap that runs "until now" is healed up to when it is ahead of ours.
    pub newest_at: Option<Timestamp>,
    /// A read of a shard listed open found nothing new: the follower reached the stream's
    /// live end once.
    pub caught_up: bool,
}

impl Progress {
    /// The largest lag of an open shard (0 when all are caught up).
    pub fn lag(&self) -> f64 {
        self.shards.values().map(|s| s.lag).fold(0.0, f64::max)
    }
}

/// A follower of one table's stream.
pub struct Follower<A: StreamApi, F: FollowStore> {
    api: Arc<A>,
    store: Arc<F>,
    table: String,
    tuning: FollowTuning,
    stop: Stop,
    progress: Arc<Mutex<Progress>>,
}

impl<A: StreamApi, F: FollowStore> Clone for Follower<A, F> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            store: self.store.clone(),
            table: self.table.clone(),
            tuning: self.tuning,
            stop: self.stop.clone(),
            progress: self.progress.clone(),
        }
    }
}

/// The table has no stream that can be followed: what to run to enable one.
pub fn no_stream(table: &str, view: Option<ViewType>) -> Error {
    let why = match view {
        None => "has no stream".to_string(),
        Some(v) => format!("has a stream of view type {} (its records carry no item)", v.as_str()),
    };
    Error::config(format!(
        "table {table} {why}: enable one with `aws dynamodb update-table --table-name {table} --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES` (NEW_IMAGE also works, but its removals cannot be applied)"
    ))
}

impl<A: StreamApi, F: FollowStore> Follower<A, F> {
    /// A follower of `table`, reading through `api`, applying into `store`.
    pub fn new(api: Arc<A>, store: Arc<F>, table: &str, tuning: FollowTuning, stop: Stop) -> Self {
        Self { api, store, table: table.to_string(), tuning, stop, progress: Arc::default() }
    }

    /// What it did and where it stands.
    pub fn progress(&self) -> Arc<Mutex<Progress>> {
        self.progress.clone()
    }

    /// Finds the table's stream, begins following it (recording a gap if it replaced the
    /// one followed before), and returns it.
    pub async fn open(&self) -> Result<StreamInfo> {
        let info = self.api.stream_of(&self.table).await?.ok_or_else(|| no_stream(&self.table, None))?;
        if matches!(info.view, ViewType::KeysOnly | ViewType::OldImage) {
            return Err(no_stream(&self.table, Some(info.view)));
        }
        if info.view == ViewType::NewImage {
            tracing::warn!(table = %self.table, "the stream carries new images only: removals cannot be applied (they are quarantined as delete_without_old_image); use NEW_AND_OLD_IMAGES");
        }
        let followed = self.store.load().await?;
        if followed.arn.as_deref() != Some(info.arn.as_str()) {
            if let Some(old) = &followed.arn {
                // The stream was disabled and enabled again: what the old one did not deliver,
                // and everything between, is lost to the stream.
                let gap =
                    Gap { reason: "stream replaced", from: followed.last_at, to: info.created, shard: None };
                tracing::warn!(old = %old, new = %info.arn, "the table's stream was replaced: recording a gap");
                self.store.record_gap(&info.arn, &gap).await?;
                self.progress.lock().expect("progress poisoned").gaps += 1;
            }
            self.store.begin_stream(&info).await?;
        }
        Ok(info)
    }

    /// Follows the stream until the stop is requested (or a failure that is not retried).
    /// Its shard readers are tasks it owns: dropping it (a kill) ends them too.
    pub async fn run(&self, info: &StreamInfo) -> Result<()> {
        let arn = info.arn.clone();
        let mut readers = tokio::task::JoinSet::new();
        let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut result = Ok(());
        while !self.stop.requested() {
            let retry = Retry::within(self.tuning.retry_budget);
            let listed = retry
                .run(|| self.api.shards(&arn), |e, attempt, _| tracing::warn!(error = %e, attempt, "listing the shards failed, retrying"))
                .await?;
            let followed = self.store.load().await?;
            let known: BTreeMap<String, Known> =
                followed.shards.iter().map(|(id, s)| (id.clone(), s.known.clone())).collect();
            let plan = shards::plan(&listed, &known);
            if !plan.new.is_empty() {
                self.store.register(&arn, &plan.new).await?;
            }
            for id in &plan.lost {
                let last_at = followed.shards.get(id).and_then(|s| s.last_at);
                self.lose(&arn, id, last_at).await?;
            }
            for id in plan.readable {
                if running.values().any(|r| *r == id) {
                    continue;
                }
                let stored = followed.shards.get(&id);
                let position = stored.and_then(|s| s.position.clone());
                let last_at = stored.and_then(|s| s.last_at);
                // Reads that find nothing on a shard still open are at the stream's live end.
                let open = listed.iter().any(|s| s.id == id && !s.closed);
                let (me, arn, shard) = (self.clone(), arn.clone(), id.clone());
                let h =
                    readers.spawn(async move { me.read_shard(&arn, &shard, open, position, last_at).await });
                running.insert(h.id(), id);
            }
            // Until the next listing, a reader that ended, or the stop.
            let ended = tokio::select! {
                r = readers.join_next_with_id(), if !readers.is_empty() => r,
                _ = tokio::time::sleep(self.tuning.discover_every) => None,
                _ = self.stop.requested_wait() => None,
            };
            if let Some(ended) = ended {
                let (id, outcome) = match ended {
                    Ok((id, r)) => (id, r),
                    Err(e) => (e.id(), Err(Error::internal(format!("a shard reader stopped: {e}")))),
                };
                let shard = running.remove(&id).unwrap_or_default();
                self.progress.lock().expect("progress poisoned").shards.remove(&shard);
                match outcome {
                    Ok(state) => tracing::info!(shard = %shard, state = state.as_str(), "shard done"),
                    Err(e) if e.kind() == Kind::Cancelled => {}
                    Err(e) => {
                        result = Err(e.context(format!("reading shard {shard}")));
                        self.stop.request();
                    }
                }
            }
        }
        // The stop: every reader finishes the page it is writing.
        while let Some(ended) = readers.join_next().await {
            if let Ok(Err(e)) = ended {
                if e.kind() != Kind::Cancelled && result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    /// Reads one shard from `position` until it is finished (read to its end), lost, or the
    /// stop; returns the state it left it in.
    async fn read_shard(
        &self,
        arn: &str,
        shard: &str,
        open: bool,
        mut position: Option<String>,
        mut last_at: Option<Timestamp>,
    ) -> Result<ShardState> {
        let retry = Retry::within(self.tuning.retry_budget);
        // A trimmed range found and not recorded yet: it is recorded, ending at the first
        // record the shard still has, before any page after it commits (a kill in between
        // finds it again: the position has not moved).
        let (mut iterator, mut trimmed) = match self.iterator(arn, shard, &position, last_at).await? {
            Some(got) => got,
            None => return Ok(ShardState::Lost),
        };
        let mut idle = self.tuning.poll;
        let first_read = position.is_none();
        loop {
            if self.stop.requested() {
                return Err(self.stop.error());
            }
            let read = retry
                .run(
                    || async {
                        match self.api.records(&iterator, self.tuning.limit).await {
                            Err(ReadFailure::Other(e)) => Err(e),
                            other => Ok(other),
                        }
                    },
                    |e, attempt, wait| {
                        tracing::warn!(shard, attempt, error = %e, wait_ms = wait.as_millis() as u64, "GetRecords failed, retrying");
                    },
                )
                .await?;
            let mut records = match read {
                Ok(r) => r,
                Err(ReadFailure::Expired) => {
                    tracing::info!(shard, "the shard iterator expired: renewing it from the position");
                    match self.iterator(arn, shard, &position, last_at).await? {
                        Some((it, t)) => {
                            iterator = it;
                            trimmed |= t;
                        }
                        None => return Ok(ShardState::Lost),
                    }
                    continue;
                }
                Err(ReadFailure::Trimmed) => {
                    match self.oldest(arn, shard, last_at).await? {
                        Some(it) => iterator = it,
                        None => return Ok(ShardState::Lost),
                    }
                    trimmed = true;
                    continue;
                }
                Err(ReadFailure::Gone) => return self.lose(arn, shard, last_at).await,
                Err(ReadFailure::Other(e)) => return Err(e),
            };
            // Read from the oldest record after a trim: what the position already covers is
            // not applied again (the service answers a trim only when nothing up to the
            // position is kept, but a proxy or an older answer can say so of records still
            // there; the position's compare-and-set would refuse them as another follower's).
            let nothing_read = records.changes.is_empty();
            if let (true, Some(p)) = (trimmed, position.as_deref()) {
                records.changes.retain(|c| seq_after(&c.seq, p));
            }
            let (next, empty) = (records.next.clone(), records.changes.is_empty());
            // The gap ends at the first record after the position; when the shard has none
            // (a read that finds nothing), it runs until now, healed once caught up.
            if trimmed && (!empty || next.is_none() || nothing_read) {
                let to = records.changes.first().and_then(|c| c.at);
                self.gap(arn, "trimmed", last_at, to, shard).await?;
                trimmed = false;
            }
            if let (true, Some(first)) = (first_read && position.is_none(), records.changes.first()) {
                if let Some(at) = first.at {
                    self.store.covers_from(arn, at).await?;
                }
            }
            if let Some(last) = records.changes.last() {
                let to = Position {
                    seq: last.seq.clone(),
                    last_at: last.at.or(last_at),
                    records: records.changes.len() as u64,
                };
                let (page, prepared) = self.parse(shard, records.changes).await;
                let written = retry
                    .run(
                        || self.store.apply(arn, shard, &prepared, &to),
                        |e, attempt, wait| {
                            tracing::warn!(shard, attempt, error = %e, wait_ms = wait.as_millis() as u64, "page failed, retrying");
                            self.progress.lock().expect("progress poisoned").stats.retries += 1;
                        },
                    )
                    .await?;
                position = Some(to.seq.clone());
                last_at = to.last_at;
                let mut p = self.progress.lock().expect("progress poisoned");
                p.stats.add_page(&page, &written);
                p.newest_at = p.newest_at.max(last_at);
                let lag = last_at.map_or(0.0, |t| (Timestamp::now().0 - t.0).max(0) as f64 / 1e6);
                let e = p.shards.entry(shard.to_string()).or_default();
                e.records += to.records;
                e.lag = lag;
                idle = self.tuning.poll;
            } else {
                // Read to what the shard has: caught up.
                let mut p = self.progress.lock().expect("progress poisoned");
                p.caught_up |= open && next.is_some();
                p.shards.entry(shard.to_string()).or_default().lag = 0.0;
            }
            match next {
                None => {
                    self.store.set_state(arn, shard, ShardState::Finished).await?;
                    return Ok(ShardState::Finished);
                }
                Some(next) => iterator = next,
            }
            if empty {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = self.stop.requested_wait() => {}
                }
                idle = (idle * 2).min(self.tuning.max_poll);
            }
        }
    }

    /// An iterator from `position` (or the oldest record), and whether the records after the
    /// position were trimmed (it then starts at the oldest record left: the caller records
    /// the gap); `None` when the shard is gone (recorded as lost).
    async fn iterator(
        &self,
        arn: &str,
        shard: &str,
        position: &Option<String>,
        last_at: Option<Timestamp>,
    ) -> Result<Option<(String, bool)>> {
        let from = position.clone().map_or(StartAt::Oldest, StartAt::After);
        let retry = Retry::within(self.tuning.retry_budget);
        let got = retry
            .run(
                || async {
                    match self.api.iterator(arn, shard, &from).await {
                        Err(ReadFailure::Other(e)) => Err(e),
                        other => Ok(other),
                    }
                },
                |e, attempt, _| tracing::warn!(shard, attempt, error = %e, "GetShardIterator failed, retrying"),
            )
            .await?;
        match got {
            Ok(it) => Ok(Some((it, false))),
            Err(ReadFailure::Trimmed) => Ok(self.oldest(arn, shard, last_at).await?.map(|it| (it, true))),
            Err(ReadFailure::Gone) => self.lose(arn, shard, last_at).await.map(|_| None),
            Err(ReadFailure::Expired) => {
                Err(Error::new(Kind::Aws, format!("a fresh iterator for shard {shard} expired")))
            }
            Err(ReadFailure::Other(e)) => Err(e),
        }
    }

    /// An iterator at the oldest record the shard still has (after a trim); `None` when the
    /// shard is gone (recorded as lost).
    async fn oldest(&self, arn: &str, shard: &str, last_at: Option<Timestamp>) -> Result<Option<String>> {
        match self.api.iterator(arn, shard, &StartAt::Oldest).await {
            Ok(it) => Ok(Some(it)),
            Err(ReadFailure::Gone) => self.lose(arn, shard, last_at).await.map(|_| None),
            Err(ReadFailure::Other(e)) => Err(e),
            Err(_) => {
                Err(Error::new(Kind::Aws, format!("no iterator for shard {shard} at its oldest record")))
            }
        }
    }

    async fn gap(
        &self,
        arn: &str,
        reason: &'static str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        shard: &str,
    ) -> Result<()> {
        tracing::error!(
            shard,
            reason,
            from = ?from.map(|t| t.to_string()),
            to = ?to.map(|t| t.to_string()),
            "records of the shard were trimmed before they were read: recording a gap"
        );
        let gap = Gap { reason, from, to, shard: Some(shard.to_string()) };
        self.store.record_gap(arn, &gap).await?;
        self.progress.lock().expect("progress poisoned").gaps += 1;
        Ok(())
    }

    async fn lose(&self, arn: &str, shard: &str, last_at: Option<Timestamp>) -> Result<ShardState> {
        tracing::error!(shard, "the shard aged out before it was read to its end: recording a gap");
        self.store.set_state(arn, shard, ShardState::Lost).await?;
        let gap = Gap { reason: "lost", from: last_at, to: None, shard: Some(shard.to_string()) };
        self.store.record_gap(arn, &gap).await?;
        self.progress.lock().expect("progress poisoned").gaps += 1;
        Ok(ShardState::Lost)
    }

    /// Parses and prepares a page of changes on the rayon pool, as every source's pages are.
    async fn parse(&self, shard: &str, changes: Vec<Change>) -> (ParsedPage, F::Page) {
        let filter = Filter { ttl_removals: self.tuning.ttl_removals, ..Filter::default() };
        let (shard, store) = (shard.to_string(), self.store.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        rayon::spawn(move || {
            let raw = changes.iter().map(raw_record).collect();
            let mut page = parse_page("", raw, &filter);
            for r in &mut page.rejects {
                r.origin = origin(&shard, &changes[r.index]);
                r.partition = shard.clone();
            }
            let prepared = store.prepare(&page);
            let _ = tx.send((page, prepared));
        });
        rx.await.expect("the parse stage stopped")
    }
}

/// Whether sequence number `a` comes after `b` within a shard: both are decimal numbers of up
/// to 40 digits (DynamoDB Local pads them with zeros), compared as numbers.
fn seq_after(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) > (b.len(), b)
}
