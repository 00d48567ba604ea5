//! A job's units through the pipeline: the [`JobUnits`] boundary (PostgreSQL claims in
//! production, a twin in tests) and the [`Tracker`] that marks a unit done only once the
//! source delivered all of it and every one of its pages committed.

use crate::error::{Error, Result};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The units of a job, claimed one (or a batch of small ones) at a time.
///
/// Guarantee expected of an implementation: a unit is handed to one claimer at a time; a
/// unit marked done is never handed out again by this job; a unit whose claimer dies (or
/// fails it) is handed out again later. `done` and `fail` retry transient failures
/// themselves; an error from them stops the worker.
pub trait JobUnits: Send + Sync {
    /// The next units to fetch: a batch of small ones read into shared pages, or one.
    /// Empty when no unit is left.
    fn claim(&self) -> BoxFuture<'_, Result<Vec<String>>>;

    /// Marks `unit` done: every page of it committed.
    fn done<'a>(&'a self, unit: &'a str, records: u64, pages: u64) -> BoxFuture<'a, Result<()>>;

    /// Marks `unit` failed with its error (retried by the job's next invocation).
    fn fail<'a>(&'a self, unit: &'a str, error: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Records per page: small units are batched up to this many records.
    fn page_size(&self) -> usize;
}

/// Follows each unit's pages from fetch to commit, so that a job's unit is marked done
/// only once the source delivered all of it and every one of its pages committed.
pub(super) struct Tracker {
    job: Option<Arc<dyn JobUnits>>,
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
    pub(super) fn new(job: Option<Arc<dyn JobUnits>>) -> Self {
        let (events, receiver) = async_channel::unbounded();
        Self { job, state: Mutex::default(), events, receiver }
    }

    pub(super) fn is_job(&self) -> bool {
        self.job.is_some()
    }

    /// Starts following `unit`; returns its tag (0 outside a job: nothing is followed).
    pub(super) fn begin(&self, unit: &str) -> u32 {
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

    /// A page holding `records` of the unit was sent to be written.
    pub(super) fn sent(&self, tag: u32, records: u64) {
        if let Some(t) = self.state.lock().expect("tracker poisoned").units.get_mut(&tag) {
            t.sent += 1;
            t.records += records;
        }
    }

    /// The source delivered all of the unit.
    pub(super) fn fetched(&self, tag: u32) {
        let mut s = self.state.lock().expect("tracker poisoned");
        if let Some(t) = s.units.get_mut(&tag) {
            t.fetched = true;
        }
        self.complete_if_done(&mut s, tag);
    }

    /// A page holding records of the unit committed.
    pub(super) fn committed(&self, tag: u32) {
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
    pub(super) fn fail(&self, tag: u32, e: &Error) {
        if let Some(t) = self.state.lock().expect("tracker poisoned").units.remove(&tag) {
            tracing::error!(unit = %t.unit, error = %e, "unit failed; the other units go on");
            let _ = self.events.try_send(UnitEvent::Failed { unit: t.unit, error: e.to_string() });
        }
    }

    /// Records units done and failed in the job as the events come, until every tracker
    /// handle is gone. A unit still being tracked then was interrupted: it stays claimed by
    /// this worker, whose lock ends with the process, and is claimed again.
    pub(super) fn bookkeeping(self: Arc<Self>) -> tokio::task::JoinHandle<Result<()>> {
        let job = self.job.clone();
        // The queue closes when the last tracker handle (its only sender) is dropped.
        let rx = self.receiver.clone();
        drop(self);
        tokio::spawn(async move {
            let Some(job) = job else { return Ok(()) };
            let mut first = Ok(());
            while let Ok(event) = rx.recv().await {
                let res = match &event {
                    UnitEvent::Done { unit, records, pages } => job.done(unit, *records, *pages).await,
                    UnitEvent::Failed { unit, error } => job.fail(unit, error).await,
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
