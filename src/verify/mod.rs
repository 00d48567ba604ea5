//! `scansync verify`: the store proves it equals the source, and repairs what does not
//! (docs/verify.md).
//!
//! One pass over the source, page by page, through the pipeline a sync uses: each page is
//! folded and encoded by the writer's own code and compared with the store's rows by key
//! ([`sink`]), on read-only connections. Each key gets a verdict (missing, stale, diverged,
//! same, ahead), kept in a [`tally`] of 16 bytes a key (its memory grows with the keys).
//! With `--repair` the divergent keys' records go through the normal writer and are compared
//! again ([`repair`]).
//!
//! A verify that only reads writes nothing at all, not even its ledger row; with `--record`
//! (serve's and the Lambda's scheduled verifies) or `--repair` it is a `sync_runs` row of
//! kind `verify`, under the verify lock, which `health` and `/metrics` read.

mod repair;
mod report;
mod sink;
mod tally;

pub use repair::Repair;
pub use sink::{key_hash, VerifySink};
pub use tally::{Counts, Found, Table, Tally};

use crate::config::{SourceConfig, Target, VerifyConfig};
use crate::error::{Error, Kind, Result};
use crate::ledger::{self, RunKind, VerifyCounts};
use crate::lifecycle::{self, Prepare};
use crate::pipeline::Hooks;
use crate::run::{self, Outcome};
use crate::shutdown::Stop;
use crate::source::any::AnySource;
use crate::stats::RunStats;
use crate::time::{Day, Timestamp};
use crate::write::postgres::Verdict;
use crate::{db, lock, schema};
use std::sync::Arc;

/// What a verify found (and repaired).
#[derive(Debug)]
pub struct VerifyReport {
    /// The source, described.
    pub source: String,
    /// The day partitions compared (`None`: the whole export).
    pub days: Option<(Day, Day)>,
    /// What the pass found.
    pub found: Found,
    /// What the pass read.
    pub stats: RunStats,
    /// What the repair did, with `--repair` and something to repair.
    pub repair: Option<Repair>,
    /// Its ledger row, when it recorded itself.
    pub run_id: Option<i64>,
}

impl VerifyReport {
    /// Divergent keys left: all those found, or after a repair those it did not bring to
    /// the source's version.
    pub fn unrepaired(&self) -> u64 {
        match &self.repair {
            Some(r) => r.after.divergent(),
            None => self.found.divergent(),
        }
    }

    /// 0 when the store holds what the source holds (or was repaired to), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.unrepaired() == 0 {
            crate::error::EXIT_OK
        } else {
            crate::error::EXIT_FAILED
        }
    }

    /// The counts a ledger row keeps.
    pub fn counts(&self) -> VerifyCounts {
        let all = self.found.all();
        VerifyCounts {
            missing: all.get(Verdict::Missing),
            stale: all.get(Verdict::Stale),
            diverged: all.get(Verdict::Diverged),
            ahead: all.get(Verdict::Ahead),
            unrepaired: self.unrepaired(),
        }
    }
}

/// Describes a source for people.
fn describe(source: &SourceConfig) -> String {
    match source {
        SourceConfig::Dynamodb { table, index } => format!("dynamodb table {table} (index {index})"),
        SourceConfig::Export { location } => format!("export {location}"),
    }
}

/// Runs a verify as configured; `Err` when it could not compare (a source or database
/// failure, a stop): a verify that did not read every page proves nothing.
pub async fn verify(target: &Target, cfg: &VerifyConfig, stop: &Stop) -> Result<VerifyReport> {
    let days = cfg.days.resolve(Timestamp::now().day());
    let budget = cfg.tuning.retry_budget;
    let records_itself = cfg.record || cfg.repair;
    // A verify that records itself (or repairs) may create or upgrade the store; one that
    // only reads never writes, so the store must already be current.
    let (lock, admin) = if records_itself {
        let lock = lock::acquire_verifier(&target.url, &target.schema).await?;
        let admin = lifecycle::prepare(target, budget, Prepare::default()).await?;
        (Some(lock), admin)
    } else {
        let client = db::connect(&target.url).await?;
        check_current(&client, &target.schema).await?;
        (None, Arc::new(client))
    };
    let started = Timestamp::now();
    let run_id = match records_itself {
        true => Some(lifecycle::open(&admin, target, RunKind::Verify, started, budget, None).await?),
        false => None,
    };
    let sink = Arc::new(VerifySink::new(&target.url, &target.schema, cfg.repair));
    let hooks = Hooks { stop: stop.clone(), lock: lock.as_ref().map(|l| l.watch()), ..Hooks::default() };
    let mut outcome = match AnySource::open(&cfg.source, &cfg.tuning).await {
        Ok(source) => run::full(Arc::new(source), sink.clone(), days, cfg.tuning, hooks).await,
        Err(e) => Outcome { plan: None, stats: RunStats::default(), result: Err(e), notes: Vec::new() },
    };
    let (found, records) = {
        let mut tally = sink.tally.lock().map_err(|_| Error::internal("tally poisoned"))?;
        (tally.found(cfg.keys), if cfg.repair { tally.take_records() } else { Vec::new() })
    };
    let mut report = VerifyReport {
        source: describe(&cfg.source),
        days,
        found,
        stats: outcome.stats.clone(),
        repair: None,
        run_id,
    };
    if let (Some(id), true, true) = (run_id, cfg.repair, outcome.result.is_ok()) {
        if !records.is_empty() {
            match repair::repair(target, id, records, &cfg.tuning, cfg.keys, stop).await {
                Ok(r) => {
                    outcome.stats.written = r.written;
                    report.repair = Some(r);
                }
                Err(e) => outcome.result = Err(e.context("repairing the divergent keys")),
            }
        }
    }
    if let Some(id) = run_id {
        // The ledger row: the run's outcome, then what it found (the counts of a verify
        // that failed prove nothing, but say how far it got).
        lifecycle::record(target, admin.clone(), id, &mut outcome, budget).await?;
        ledger::record_verify(&admin, &target.schema, id, days, &report.counts()).await?;
    }
    drop(lock);
    outcome.result.map(|()| report)
}

/// Refuses a store that is not there, or not at this binary's version: a read-only verify
/// cannot migrate it.
async fn check_current(client: &tokio_postgres::Client, schema_name: &str) -> Result<()> {
    match schema::version(client, schema_name).await? {
        None => Err(Error::new(
            Kind::Config,
            format!(
                "schema {schema_name} holds no scansync store: nothing to verify against (check --schema, or load it with sync or backfill; verify --repair loads what is missing)"
            ),
        )),
        Some(v) if v < schema::latest() => Err(Error::new(
            Kind::Config,
            format!(
                "schema {schema_name} is at version {v}, this scansync compares version {}: run `scansync migrate` first (verify only reads)",
                schema::latest()
            ),
        )),
        Some(_) => Ok(()),
    }
}
