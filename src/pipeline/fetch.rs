//! The fetch stage: each fetcher takes (or claims) one unit at a time and forwards its pages,
//! tagged with the unit, into the bounded queue to the parsers.

use super::tracker::{JobUnits, Tracker};
use crate::error::Result;
use crate::shutdown::Stop;
use crate::source::{KeyBounds, Payload, RawPage, Source};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tracing::Instrument;

/// A page on its way to the parsers, with the tracker's tags of the units it holds.
pub(super) type Tagged = (Vec<u32>, RawPage);

/// Where fetchers take their units from: a list known up front, or a job's claims.
pub(super) struct Feed {
    pub(super) list: Mutex<VecDeque<String>>,
    pub(super) job: Option<Arc<dyn JobUnits>>,
}

impl Feed {
    /// The next units to fetch: one, or several small ones read into shared pages. Empty
    /// when none is left.
    async fn next(&self) -> Result<Vec<String>> {
        match &self.job {
            Some(j) => j.claim().await,
            None => Ok(self.list.lock().expect("feed poisoned").pop_front().into_iter().collect()),
        }
    }
}

/// Fetches units until none is left (or a stop), forwarding each page tagged with its unit(s).
pub(super) async fn fetch_loop<S: Source>(
    source: &S,
    feed: &Feed,
    bounds: Option<KeyBounds>,
    out: &async_channel::Sender<Tagged>,
    tracker: &Tracker,
    stop: &Stop,
) -> Result<()> {
    loop {
        if out.is_closed() || stop.requested() {
            return Ok(());
        }
        let units = feed.next().await?;
        if units.is_empty() {
            return Ok(());
        }
        if units.len() > 1 {
            let page_size = feed.job.as_ref().map_or(1000, |j| j.page_size());
            if !fetch_shared(source, units, page_size, out, tracker, stop).await {
                return Ok(());
            }
            continue;
        }
        let unit = units.into_iter().next().expect("one unit");
        let tag = tracker.begin(&unit);
        let (tx, rx) = async_channel::bounded::<RawPage>(1);
        let span = tracing::info_span!("fetch", unit = %unit);
        let fetch = source.fetch(unit, bounds.clone(), tx).instrument(span);
        let forward = async {
            loop {
                let page = tokio::select! {
                    p = rx.recv() => p,
                    // A stop request: the unit is not complete.
                    _ = stop.requested_wait() => {
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
    out: &async_channel::Sender<Tagged>,
    tracker: &Tracker,
    stop: &Stop,
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
        out: &async_channel::Sender<Tagged>,
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
        if stop.requested() {
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
