//! The pipeline: fetch → parse → write, wired back to front with bounded queues.
//!
//! ```text
//! fetchers (one per unit, ≤ --fetchers at once)            fetch.rs
//!    └─ raw pages ─[bounded]─▶ parse dispatcher ─▶ rayon: decode, parse, fold, encode
//!                                                     └─ prepared ─[bounded]─▶ writers   write.rs
//! ```
//! A slow stage pushes back on the one before it, so memory is bounded by the queue sizes,
//! not by the window. The first fatal error closes the queues: fetchers and parsers stop at
//! their next send, and [`execute`] returns the error with the counts of what committed.
//! For a job, fetchers claim their units from [`JobUnits`] and the tracker (tracker.rs)
//! marks each done once all its pages committed.

mod fetch;
mod hooks;
mod tracker;
mod write;

pub use hooks::Hooks;
pub use tracker::JobUnits;

use crate::config::Tuning;
use crate::error::{Error, Result};
use crate::parse::{parse_page, Filter};
use crate::source::{KeyBounds, Source};
use crate::stats::RunStats;
use crate::write::Sink;
use fetch::{fetch_loop, Feed, Tagged};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracker::Tracker;
use write::{broken_input, write_loop, Limits, PageInfo};

/// How one run is executed.
#[derive(Clone)]
pub struct PipelineConfig {
    /// Parallelism, page size, tolerance.
    pub tuning: Tuning,
    /// The units to fetch (day partitions, export files), when they are known up front.
    pub units: Vec<String>,
    /// A job's units: when set, fetchers claim their units from it instead of taking them
    /// from `units`, a unit that cannot be read fails alone (recorded on the unit) instead of
    /// failing the run, and each unit is marked done once every page of it committed.
    pub job: Option<Arc<dyn JobUnits>>,
    /// The `updatedAt` key bounds handed to the source.
    pub bounds: Option<KeyBounds>,
    /// The exact filter applied after parsing.
    pub filter: Filter,
    /// Stop, lock, progress.
    pub hooks: Hooks,
}

/// Runs the pipeline to the end. Returns the statistics of what committed, and the first
/// fatal error if any (then some pages may have committed, which is safe: they are
/// idempotent, and the caller does not move the checkpoint).
pub async fn execute<S: Source, K: Sink>(
    source: Arc<S>,
    sink: Arc<K>,
    cfg: PipelineConfig,
) -> (RunStats, Result<()>) {
    let started = Instant::now();
    let fetchers = cfg.tuning.fetchers.max(1);
    let writers = cfg.tuning.writers.max(1);
    let (raw_tx, raw_rx) = async_channel::bounded::<Tagged>(fetchers * 2);
    let (prep_tx, prep_rx) = async_channel::bounded::<(PageInfo, K::Prepared)>(writers * 2);
    let stats = Arc::new(Mutex::new(RunStats::default()));
    let stop = cfg.hooks.stop.clone();

    // Fetch: `fetchers` loops, each taking (or claiming) one unit at a time.
    let tracker = Arc::new(Tracker::new(cfg.job.clone()));
    let bookkeeping = tracker.clone().bookkeeping();
    let fetch = {
        let feed =
            Arc::new(Feed { list: Mutex::new(cfg.units.iter().cloned().collect()), job: cfg.job.clone() });
        let loops: Vec<_> = (0..fetchers)
            .map(|_| {
                let (source, feed, tracker, stop) =
                    (source.clone(), feed.clone(), tracker.clone(), stop.clone());
                let (tx, bounds) = (raw_tx.clone(), cfg.bounds.clone());
                tokio::spawn(async move {
                    let res = fetch_loop(&*source, &feed, bounds, &tx, &tracker, &stop).await;
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
        let max_unreadable_percent = cfg.tuning.max_unreadable_percent;
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
                    let info = PageInfo {
                        unit: page.unit,
                        tags,
                        broken,
                        read: parsed.read,
                        skipped: parsed.skipped,
                        rejects: parsed.rejects.iter().map(|r| r.reason.code()).collect(),
                        stamps: std::mem::take(&mut parsed.stamps),
                        repairs: std::mem::take(&mut parsed.repairs),
                        drift: std::mem::take(&mut parsed.drift),
                        removals: parsed.removals,
                        ttl_removals_ignored: parsed.ttl_removals_ignored,
                    };
                    let prepared = sink.prepare_owned(parsed);
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
        let (sink, rx, stats, raw_rx) = (sink.clone(), prep_rx.clone(), stats.clone(), raw_rx.clone());
        let limits = Limits {
            retry_budget: cfg.tuning.retry_budget,
            hooks: cfg.hooks.clone(),
            tracker: tracker.clone(),
        };
        handles.push(tokio::spawn(async move {
            let res = write_loop(&*sink, &rx, &stats, n, &limits).await;
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
    if stop.requested() {
        // Whatever else the stop caused, the run was stopped: it is not complete.
        first_err = Some(stop.error());
    }
    let mut s = stats.lock().expect("stats poisoned").clone();
    s.elapsed = started.elapsed();
    s.index_items = source.items_returned();
    s.capacity_units = source.capacity_units();
    (s, first_err.map_or(Ok(()), Err))
}

#[cfg(test)]
mod tests;
