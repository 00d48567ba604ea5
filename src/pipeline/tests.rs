//! The pipeline's job mode against twins: a job's units in memory, the in-memory source and
//! sink.

use super::*;
use crate::attr::{Attr, Item};
use crate::error::Kind;
use crate::source::memory::MemorySource;
use crate::source::RawPage;
use crate::time::Day;
use crate::write::memory::{Fault, MemorySink};
use futures_util::future::BoxFuture;
use std::collections::VecDeque;

/// A job's units in memory: claims hand out the batches in order; done and failed units are
/// recorded.
#[derive(Default)]
struct MemoryJob {
    pending: Mutex<VecDeque<Vec<String>>>,
    done: Mutex<Vec<(String, u64, u64)>>,
    failed: Mutex<Vec<(String, String)>>,
}

impl MemoryJob {
    fn of(batches: &[&[&str]]) -> Arc<Self> {
        let pending = batches.iter().map(|b| b.iter().map(|u| u.to_string()).collect()).collect();
        Arc::new(Self { pending: Mutex::new(pending), ..Self::default() })
    }

    fn done_units(&self) -> Vec<String> {
        let mut d: Vec<String> = self.done.lock().unwrap().iter().map(|(u, ..)| u.clone()).collect();
        d.sort();
        d
    }
}

impl JobUnits for MemoryJob {
    fn claim(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async { Ok(self.pending.lock().unwrap().pop_front().unwrap_or_default()) })
    }
    fn done<'a>(&'a self, unit: &'a str, records: u64, pages: u64) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.done.lock().unwrap().push((unit.to_string(), records, pages));
            Ok(())
        })
    }
    fn fail<'a>(&'a self, unit: &'a str, error: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.failed.lock().unwrap().push((unit.to_string(), error.to_string()));
            Ok(())
        })
    }
    fn page_size(&self) -> usize {
        10
    }
}

fn item(id: usize, day: u32) -> Item {
    let at = format!("2026-11-{day:02}T10:00:00Z");
    [
        ("scanId", format!("s{id}")),
        ("datePartition", at[..10].to_string()),
        ("updatedAt", at.clone()),
        ("platform", "x".to_string()),
        ("contentId", format!("p{id}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Attr::S(v)))
    .collect()
}

/// 25 records on each of 2026-11-01 .. 2026-11-04 (one unit per day: `DAY#0`).
fn source() -> MemorySource {
    MemorySource::new((0..100).map(|i| item(i, 1 + (i / 25) as u32)).collect(), 10)
}

fn config(job: Arc<dyn JobUnits>) -> PipelineConfig {
    PipelineConfig {
        tuning: Tuning { fetchers: 2, writers: 2, ..Tuning::default() },
        units: Vec::new(),
        job: Some(job),
        bounds: None,
        filter: Filter::default(),
        hooks: Hooks::default(),
    }
}

const DAYS: [&str; 4] = ["2026-11-01#0", "2026-11-02#0", "2026-11-03#0", "2026-11-04#0"];

#[tokio::test]
async fn every_claimed_unit_is_marked_done_with_its_records_and_pages_once_they_committed() {
    let job = MemoryJob::of(&[&[DAYS[0]], &[DAYS[1]], &[DAYS[2]], &[DAYS[3]]]);
    let sink = Arc::new(MemorySink::new());
    let (stats, result) = execute(Arc::new(source()), sink.clone(), config(job.clone())).await;
    result.unwrap();
    assert_eq!(job.done_units(), DAYS);
    for (unit, records, pages) in job.done.lock().unwrap().iter() {
        assert_eq!((*records, *pages), (25, 3), "{unit}: 25 records in pages of 10");
    }
    assert_eq!((stats.read, sink.snapshot().content.len()), (100, 100));
}

/// A source whose one unit cannot be read.
struct Failing(MemorySource, &'static str);

impl Source for Failing {
    async fn units(&self, days: &[Day], bounds: Option<&KeyBounds>) -> Result<Vec<String>> {
        self.0.units(days, bounds).await
    }
    async fn fetch(
        &self,
        unit: String,
        bounds: Option<KeyBounds>,
        tx: async_channel::Sender<RawPage>,
    ) -> Result<()> {
        if unit == self.1 {
            return Err(Error::new(Kind::Io, format!("{unit} is unreadable")));
        }
        self.0.fetch(unit, bounds, tx).await
    }
}

#[tokio::test]
async fn a_unit_that_cannot_be_read_fails_alone_and_the_others_are_done() {
    let job = MemoryJob::of(&[&[DAYS[0]], &[DAYS[1]], &[DAYS[2]], &[DAYS[3]]]);
    let sink = Arc::new(MemorySink::new());
    let (_, result) = execute(Arc::new(Failing(source(), DAYS[2])), sink.clone(), config(job.clone())).await;
    result.expect("a job's unit failure does not fail the run");
    assert_eq!(job.done_units(), [DAYS[0], DAYS[1], DAYS[3]]);
    let failed = job.failed.lock().unwrap().clone();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, DAYS[2]);
    assert!(failed[0].1.contains("unreadable"), "{failed:?}");
    assert_eq!(sink.snapshot().content.len(), 75);
}

#[tokio::test]
async fn when_a_page_fails_for_good_no_unit_with_pages_in_flight_is_marked_done() {
    let job = MemoryJob::of(&[&[DAYS[0]], &[DAYS[1]], &[DAYS[2]], &[DAYS[3]]]);
    let sink = Arc::new(MemorySink::failing(Fault { at_write: 4, times: 100, kind: Kind::Database }));
    let (_, result) = execute(Arc::new(source()), sink.clone(), config(job.clone())).await;
    assert_eq!(result.unwrap_err().kind(), Kind::Database);
    let committed = sink.snapshot().content;
    for (unit, records, _) in job.done.lock().unwrap().iter() {
        let day = &unit[..10];
        let landed =
            committed.values().filter(|c| c.live.as_ref().is_some_and(|r| r.partition == day)).count();
        assert_eq!(landed as u64, *records, "{unit} is done only with all of its records committed");
    }
    assert!(job.done_units().len() < 4, "the failed page's unit is not done");
}

#[tokio::test]
async fn units_claimed_together_are_each_done_on_their_own() {
    let job = MemoryJob::of(&[&[DAYS[0], DAYS[1], DAYS[2]], &[DAYS[3]]]);
    let sink = Arc::new(MemorySink::new());
    let (_, result) = execute(Arc::new(source()), sink.clone(), config(job.clone())).await;
    result.unwrap();
    assert_eq!(job.done_units(), DAYS);
    assert_eq!(sink.snapshot().content.len(), 100);
}

#[tokio::test]
async fn a_stop_before_the_run_leaves_every_unit_claimable_and_says_cancelled() {
    let job = MemoryJob::of(&[&[DAYS[0]], &[DAYS[1]]]);
    let cfg = config(job.clone());
    cfg.hooks.stop.request();
    let (_, result) = execute(Arc::new(source()), Arc::new(MemorySink::new()), cfg).await;
    assert_eq!(result.unwrap_err().kind(), Kind::Cancelled);
    assert!(job.done_units().is_empty());
}
