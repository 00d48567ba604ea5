//! The write stage: each writer takes prepared pages from the bounded queue and commits them,
//! one transaction each, retried through transient failures within the budget.

use super::hooks::Hooks;
use super::tracker::Tracker;
use crate::error::{Error, Kind, Result};
use crate::parse::{Drift, ParsedPage, Repairs, StampCounts};
use crate::retry::Retry;
use crate::source::Origins;
use crate::stats::RunStats;
use crate::write::{PageWriter, Sink};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

/// The counts a page carries from the parse stage to its commit.
pub(super) struct PageInfo {
    pub(super) unit: String,
    /// The tracker's tags of the units the page holds records of.
    pub(super) tags: Vec<u32>,
    /// Set when the page (or one file of a page of several) is mostly not records: the
    /// input is broken, and the page must not be written.
    pub(super) broken: Option<String>,
    pub(super) read: u64,
    pub(super) skipped: u64,
    pub(super) rejects: Vec<&'static str>,
    pub(super) stamps: StampCounts,
    pub(super) repairs: Repairs,
    pub(super) drift: Drift,
    pub(super) removals: u64,
    pub(super) ttl_removals_ignored: u64,
}

/// Says why a page is a broken input, if it is: more than `max_percent` of its lines (or of
/// one file's lines, in a page of several files) are not DynamoDB JSON items.
pub(super) fn broken_input(
    unit: &str,
    parsed: &ParsedPage,
    origins: Option<&Origins>,
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
pub(super) struct Limits {
    pub(super) retry_budget: Duration,
    pub(super) hooks: Hooks,
    pub(super) tracker: Arc<Tracker>,
}

/// Writes pages until the queue closes; the first error that is not retried ends it.
pub(super) async fn write_loop<K: Sink>(
    sink: &K,
    rx: &async_channel::Receiver<(PageInfo, K::Prepared)>,
    stats: &Mutex<RunStats>,
    writer: usize,
    limits: &Limits,
) -> Result<()> {
    let retry = Retry::within(limits.retry_budget);
    let mut w = retry
        .run(|| sink.writer(), |e, attempt, wait| {
            warn!(writer, attempt, error = %e, wait_ms = wait.as_millis() as u64, "writer cannot connect, retrying");
        })
        .await
        .map_err(|e| e.context("opening a page writer"))?;
    let hooks = &limits.hooks;
    while let Ok((info, page)) = rx.recv().await {
        // A stop request: the page being written (by this or another writer) finishes;
        // the ones not started are dropped.
        if hooks.stop.requested() {
            return Err(hooks.stop.error());
        }
        if let Some(lock) = &hooks.lock {
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
        let page_started = std::time::Instant::now();
        let unit = &info.unit;
        let mut attempt = (&mut w, &page, hooks.lock.as_ref());
        let written = retry
            .run_with(
                &mut attempt,
                |(w, page, lock)| {
                    Box::pin(async move {
                        // A lost lock ends the retries: another run may hold it now.
                        if let Some(lock) = lock {
                            lock.check()?;
                        }
                        w.write(page).await
                    })
                },
                |e, attempt, wait| {
                    warn!(unit = %unit, writer, attempt, error = %e, wait_ms = wait.as_millis() as u64, "page failed, retrying");
                    stats.lock().expect("stats poisoned").retries += 1;
                },
            )
            .await
            .map_err(|e| if e.kind() == Kind::LockLost { e } else { e.context(format!("writing a page of {unit}")) })?;
        if let Some(h) = &hooks.page_seconds {
            h.observe(page_started.elapsed().as_secs_f64());
        }
        info!(unit = %info.unit, writer, read = info.read, content = written.content, rejected = info.rejects.len(), "page committed");
        for tag in &info.tags {
            limits.tracker.committed(*tag);
        }
        if let Some(p) = &hooks.progress {
            p.fetch_add(info.read, Ordering::Relaxed);
        }
        let mut s = stats.lock().expect("stats poisoned");
        s.pages += 1;
        s.read += info.read;
        s.skipped += info.skipped;
        s.removals += info.removals;
        s.ttl_removals_ignored += info.ttl_removals_ignored;
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
        s.written.merge(&written);
    }
    Ok(())
}
