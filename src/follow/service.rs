//! The `follow` command around the core: one follower per table (a lock), the ledger row of
//! its life, the heartbeat that `health` reads, `/metrics`, and the healing of gaps: the
//! hand-off gap (the index checkpoint older than the stream's coverage) and every gap the
//! core records, each by an index-path sync of exactly its range.

use super::heal::{heal, HealSpec};
use super::{FollowStore, FollowTuning, Follower, PgFollowStore};
use crate::checkpoint::any::AnyCheckpoint;
use crate::checkpoint::CheckpointStore;
use crate::config::{CheckpointConfig, MetricsConfig, Target, Tuning, WindowConfig};
use crate::error::{Error, Kind, Result, EXIT_FAILED, EXIT_OK};
use crate::ledger::RunKind;
use crate::lifecycle::{self, Prepare};
use crate::metrics::Metrics;
use crate::run::Outcome;
use crate::shutdown::Stop;
use crate::stream::aws::AwsStreams;
use crate::stream::StreamApi;
use crate::time::Timestamp;
use crate::{lock, metrics};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything `follow` needs.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The table whose stream is followed.
    pub table: String,
    /// Its date-partition GSI (for healing gaps through the index).
    pub index: String,
    /// The lookback and margins gaps are healed with.
    pub window: WindowConfig,
    /// Where the index path's checkpoint lives (for the hand-off gap).
    pub checkpoint: CheckpointConfig,
    /// Writers, retry budget, TTL expiries.
    pub tuning: Tuning,
    /// Reads, polls, listings.
    pub follow: FollowTuning,
    /// `/metrics`, `/healthz`, `/livez`.
    pub metrics: MetricsConfig,
}

/// How often the heartbeat (and the metrics, and the gap check) run.
const BEAT: Duration = Duration::from_secs(2);

/// Follows the table's stream until `stop`; returns the exit status.
pub async fn follow(target: &Target, cfg: &FollowConfig, stop: &Stop) -> Result<u8> {
    let started = Timestamp::now();
    let api = Arc::new(AwsStreams::from_env().await?);
    // No stream, or one that carries no item: a setting to correct, refused before any work.
    let info = api.stream_of(&cfg.table).await?.ok_or_else(|| super::no_stream(&cfg.table, None))?;
    if matches!(info.view, crate::stream::ViewType::KeysOnly | crate::stream::ViewType::OldImage) {
        return Err(super::no_stream(&cfg.table, Some(info.view)));
    }
    let lock = lock::acquire_follower(&target.url, &target.schema, &cfg.table).await?;
    let budget = cfg.tuning.retry_budget;
    let admin = lifecycle::prepare(
        target,
        budget,
        Prepare { repair_bulk: true, follower_of: Some(&cfg.table), ..Prepare::default() },
    )
    .await?;
    let run_id = lifecycle::open(&admin, target, RunKind::Follow, started, budget, Some(&cfg.table)).await?;
    let store = Arc::new(PgFollowStore::new(
        &target.url,
        &target.schema,
        &cfg.table,
        Some(run_id),
        cfg.tuning.writers,
        budget,
    )?);
    let follower = Follower::new(api, store.clone(), &cfg.table, cfg.follow, stop.clone());
    let metrics = metrics::start(&cfg.metrics, target, &cfg.checkpoint)?;
    let result = match follower.open().await {
        Ok(info) => {
            tracing::info!(table = %cfg.table, stream = %info.arn, view = info.view.as_str(), "following the table's stream");
            let side =
                side_tasks(target, cfg, store.clone(), follower.progress(), metrics.clone(), stop.clone());
            let watch = lock.watch();
            let run = follower.run(&info);
            // A lost lock (a restart, a failover) stops the follower: another may hold it now.
            let lost = async {
                loop {
                    tokio::time::sleep(BEAT).await;
                    if watch.check().is_err() {
                        return;
                    }
                }
            };
            let result = tokio::select! {
                r = run => r,
                _ = lost => {
                    stop.request();
                    Err(Error::new(Kind::LockLost, "lost the follower's lock (its connection closed): stopped"))
                }
            };
            side.abort();
            let (lag, open) = {
                let p = follower.progress();
                let p = p.lock().expect("progress poisoned");
                (p.lag(), p.shards.len())
            };
            let _ = store.heartbeat(lag, open).await;
            result
        }
        Err(e) => Err(e),
    };
    let mut stats = follower.progress().lock().expect("progress poisoned").stats.clone();
    stats.elapsed = std::time::Duration::from_micros((Timestamp::now().0 - started.0).max(0) as u64);
    let cancelled = stop.requested() && result.is_ok();
    let result = if cancelled { Err(stop.error()) } else { result };
    let failed = result.as_ref().err().map(|e| e.kind());
    let mut outcome = Outcome { plan: None, stats, result, notes: Vec::new() };
    lifecycle::record(target, admin, run_id, &mut outcome, budget).await?;
    if let Some(m) = &metrics {
        m.observe("follow", Some(&outcome), None);
    }
    crate::summary::print("follow", &outcome);
    Ok(match failed {
        None => EXIT_OK,
        Some(Kind::Cancelled) => stop.exit_code().unwrap_or(EXIT_OK),
        Some(Kind::Config) => crate::error::EXIT_CONFIG,
        Some(_) => EXIT_FAILED,
    })
}

/// The heartbeat, the metrics and the healing, beside the follower; aborted with it.
fn side_tasks(
    target: &Target,
    cfg: &FollowConfig,
    store: Arc<PgFollowStore>,
    progress: Arc<Mutex<super::Progress>>,
    metrics: Option<Arc<Metrics>>,
    stop: Stop,
) -> tokio_util::task::AbortOnDropHandle<()> {
    let (target, cfg) = (target.clone(), cfg.clone());
    tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let mut handoff_checked = false;
        loop {
            let (lags, records, gaps, lag) = {
                let p = progress.lock().expect("progress poisoned");
                let lags: Vec<(String, f64)> = p.shards.iter().map(|(id, s)| (id.clone(), s.lag)).collect();
                (lags, p.stats.read, p.gaps, p.lag())
            };
            if let Err(e) = store.heartbeat(lag, lags.len()).await {
                tracing::warn!(error = %e, "the heartbeat could not be written");
            }
            if !handoff_checked {
                handoff_checked = handoff(&target, &cfg, &store).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "the hand-off check failed; trying again");
                    false
                });
            }
            let open = store.open_gaps().await.unwrap_or_default();
            if let Some(m) = &metrics {
                m.set_follow(&lags, records, gaps, open.len() as i64);
            }
            // A gap "until now" is healed once this process applied what the stream still has
            // after it (or found nothing there), up to now on the stream's clock where that
            // runs ahead of ours.
            let (newest, caught_up) = {
                let p = progress.lock().expect("progress poisoned");
                (p.newest_at, p.caught_up || p.newest_at.is_some())
            };
            for (id, reason, from, to) in open {
                if stop.requested() {
                    return;
                }
                if to.is_none() && !caught_up {
                    continue;
                }
                heal_one(&target, &cfg, &store, id, &reason, from, to, newest, &stop).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(BEAT) => {}
                _ = stop.requested_wait() => return,
            }
        }
    }))
}

/// The hand-off: when the index path has a checkpoint older than (its lookback before) the
/// stream's coverage, what lies between was never followed: a gap. Returns whether the
/// check could be made (the coverage is known).
async fn handoff(target: &Target, cfg: &FollowConfig, store: &PgFollowStore) -> Result<bool> {
    let Some(covers) = store.coverage().await? else { return Ok(false) };
    let client = Arc::new(crate::db::connect(&target.url).await?);
    let checkpoint = AnyCheckpoint::open(&cfg.checkpoint, client, &target.schema).await?.read().await?;
    if let Some(c) = checkpoint {
        let from = c.add_micros(-(cfg.window.lookback.as_micros() as i64));
        if from < covers {
            let arn = store.load().await.map(|f| f.arn.unwrap_or_default())?;
            tracing::warn!(checkpoint = %c, covers_from = %covers, "the index path's checkpoint is older than the stream's coverage: healing the hand-off gap");
            let gap = super::Gap { reason: "handoff", from: Some(from), to: Some(covers), shard: None };
            store.record_gap(&arn, &gap).await?;
        }
    }
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
async fn heal_one(
    target: &Target,
    cfg: &FollowConfig,
    store: &PgFollowStore,
    id: i64,
    reason: &str,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    newest: Option<Timestamp>,
    stop: &Stop,
) {
    let now = Timestamp::now().max(newest.unwrap_or(Timestamp(i64::MIN)));
    let from = from.unwrap_or_else(|| now.add_micros(-24 * 3_600_000_000));
    let to = to.unwrap_or(now).max(from);
    let spec = HealSpec { table: &cfg.table, index: &cfg.index, window: cfg.window, tuning: cfg.tuning };
    tracing::warn!(gap = id, reason, from = %from, to = %to, "healing a gap through the index path");
    let done = match heal(target, &spec, from, to, stop).await {
        Ok((outcome, run_id)) => match &outcome.result {
            Ok(()) => store.healed(id, Some(run_id), None).await,
            Err(e) => store.healed(id, Some(run_id), Some(&e.to_string())).await,
        },
        Err(e) => store.healed(id, None, Some(&e.to_string())).await,
    };
    if let Err(e) = done {
        tracing::warn!(gap = id, error = %e, "the heal's outcome could not be recorded");
    }
}
