//! `verify --repair`: the divergent keys' records written through the normal writer, then
//! compared again.
//!
//! Page by page: the page is compared with the store as it is now (it may have moved since
//! the pass found the keys), each row found *diverged* (the store holds the source's
//! version with other values) has that version moved back by a microsecond
//! ([`demote`]) so that the merges take the source's record as newer, the page is written
//! by the ordinary writer (same fold, same merge rules: never a version older than the
//! store's), and it is compared once more into the result.

use super::sink::VerifySink;
use super::tally::Found;
use crate::config::{Target, Tuning};
use crate::db;
use crate::error::{Error, Result};
use crate::parse::{ParsedPage, Record};
use crate::retry::Retry;
use crate::schema::quoted_schema;
use crate::shutdown::Stop;
use crate::write::postgres::{compare, demote, prepare_reader, PgSink};
use crate::write::{PageWriter, Sink, WriteStats};
use std::time::{Duration, Instant};

/// What a repair did.
#[derive(Debug, Clone, Default)]
pub struct Repair {
    /// Records written (every record of each divergent key the range holds).
    pub records: u64,
    /// Rows the writer changed.
    pub written: WriteStats,
    /// Diverged rows whose version was moved back so the writer would rewrite them.
    pub demoted: u64,
    /// The repaired keys compared again: 0 divergent when every one was repaired.
    pub after: Found,
    /// Wall time.
    pub elapsed: Duration,
}

/// Writes `records` (the divergent keys' records) into the store as `run_id`, in pages of
/// `tuning.page_size`, and compares them again; `keys` divergent keys are listed.
pub async fn repair(
    target: &Target,
    run_id: i64,
    records: Vec<Record>,
    tuning: &Tuning,
    keys: usize,
    stop: &Stop,
) -> Result<Repair> {
    let started = Instant::now();
    let sink = PgSink::new(&target.url, &target.schema, Some(run_id))?;
    let mut writer = sink.writer().await?;
    let mut reader = db::connect(&target.url).await?;
    prepare_reader(&reader, &target.schema).await?;
    let demoter = db::connect(&target.url).await?;
    demoter.batch_execute(&format!("set search_path = {}", quoted_schema(&target.schema)?)).await?;
    let check = VerifySink::new(&target.url, &target.schema, false);
    let mut checker = check.writer().await?;
    let mut out = Repair { records: records.len() as u64, ..Repair::default() };
    for chunk in records.chunks(tuning.page_size.max(1)) {
        if stop.requested() {
            return Err(stop.error());
        }
        let parsed = ParsedPage { records: chunk.to_vec(), ..ParsedPage::default() };
        let page = sink.prepare(&parsed);
        let found = compare(&mut reader, &page).await?;
        out.demoted += demote(&demoter, &page, &found).await?;
        let mut state = (&mut writer, &page);
        let written = Retry::within(tuning.retry_budget)
            .run_with(
                &mut state,
                |(w, p)| Box::pin(w.write(p)),
                |e, attempt, _| {
                    tracing::warn!(error = %e, attempt, "a repair page failed, retrying");
                },
            )
            .await?;
        out.written.merge(&written);
        checker.write(&check.prepare(&parsed)).await?;
    }
    sink.make_durable().await?;
    out.after = check.tally.lock().map_err(|_| Error::internal("tally poisoned"))?.found(keys);
    out.elapsed = started.elapsed();
    Ok(out)
}
