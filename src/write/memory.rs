//! An in-memory sink that keeps the merge rules of docs/contract.md, for unit tests of the run
//! logic (checkpoint-last, retries, failures) without a database.
//!
//! It is deliberately a second, independent statement of the rules: tests that feed the
//! same records to it and to PostgreSQL and compare the results check both.

use super::batch::{Batch, Version};
use super::{PageWriter, Sink, WriteStats};
use crate::error::{Error, Kind, Result};
use crate::parse::{ParsedPage, Record};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// A content row in memory: the newest live record and the tombstone, if it still counts.
#[derive(Debug, Clone, PartialEq)]
pub struct MemContent {
    /// The newest live record.
    pub live: Option<Record>,
    /// Set while the newest record of all is a tombstone.
    pub deleted: Option<Version>,
}

/// The tables, as ordered maps so two states compare equal when their contents are.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemDb {
    /// (platform, external id) → content.
    pub content: BTreeMap<(String, String), MemContent>,
    /// (platform, creator id) → (version, handle).
    pub creators: BTreeMap<(String, String), (Version, Option<String>)>,
    /// Quarantined (reason, raw).
    pub quarantine: BTreeSet<(String, String)>,
    /// Pages committed.
    pub pages: usize,
}

/// Failure injection for tests: which page write fails, and how.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// The 1-based number of the write call that fails.
    pub at_write: usize,
    /// How many consecutive calls fail from there.
    pub times: usize,
    /// The error kind returned.
    pub kind: Kind,
}

/// The in-memory sink; clones share one database.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    /// The shared state.
    pub db: Arc<Mutex<MemDb>>,
    fault: Option<Fault>,
    calls: Arc<Mutex<usize>>,
}

impl MemorySink {
    /// Creates an empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a sink that fails as `fault` says.
    pub fn failing(fault: Fault) -> Self {
        Self { fault: Some(fault), ..Self::default() }
    }

    /// Returns a copy of the current state.
    pub fn snapshot(&self) -> MemDb {
        self.db.lock().expect("memory db poisoned").clone()
    }
}

/// A prepared page: the folded batch and the rejects.
#[derive(Debug)]
pub struct MemPage {
    batch: Batch,
    rejects: Vec<(String, String)>,
}

impl Sink for MemorySink {
    type Prepared = MemPage;
    type Writer = MemorySink;

    fn prepare(&self, page: &ParsedPage) -> MemPage {
        MemPage {
            batch: Batch::fold(&page.records),
            rejects: page.rejects.iter().map(|r| (r.reason.code().to_owned(), r.raw.clone())).collect(),
        }
    }

    async fn writer(&self) -> Result<MemorySink> {
        Ok(self.clone())
    }
}

impl PageWriter for MemorySink {
    type Prepared = MemPage;

    async fn write(&mut self, page: &MemPage) -> Result<WriteStats> {
        let call = {
            let mut c = self.calls.lock().expect("poisoned");
            *c += 1;
            *c
        };
        if let Some(f) = self.fault {
            if call >= f.at_write && call < f.at_write + f.times {
                return Err(Error::new(f.kind, format!("injected failure at write {call}")));
            }
        }
        let mut db = self.db.lock().expect("memory db poisoned");
        let mut stats = WriteStats::default();
        for (key, v, c) in &page.batch.creators {
            let newer = db.creators.get(key).is_none_or(|(old, _)| old < v);
            if newer {
                db.creators.insert(key.clone(), (v.clone(), c.handle.clone()));
                stats.creators += 1;
            }
        }
        for (key, fold) in &page.batch.content {
            let row = db.content.entry(key.clone()).or_insert(MemContent { live: None, deleted: None });
            let mut changed = false;
            if let Some(l) = &fold.live {
                if row.live.as_ref().is_none_or(|old| Version::of(old) < Version::of(l)) {
                    row.live = Some(l.clone());
                    if row.deleted.as_ref().is_some_and(|d| *d < Version::of(l)) {
                        row.deleted = None;
                    }
                    changed = true;
                }
            }
            if let Some(t) = &fold.tomb {
                let newest_live = row.live.as_ref().map(Version::of);
                let beats_live = newest_live.is_none_or(|l| l < *t);
                let beats_tomb = row.deleted.as_ref().is_none_or(|d| d < t);
                if beats_live && beats_tomb {
                    row.deleted = Some(t.clone());
                    changed = true;
                }
            }
            stats.content += u64::from(changed);
        }
        for q in &page.rejects {
            stats.quarantined += u64::from(db.quarantine.insert(q.clone()));
        }
        db.pages += 1;
        Ok(stats)
    }
}
