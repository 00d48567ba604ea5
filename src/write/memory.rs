//! An in-memory sink that keeps the merge rules of docs/contract.md, for unit tests of the run
//! logic (checkpoint-last, retries, failures) without a database, and as the other side of
//! the differential test (`tests/it/differential.rs`).
//!
//! It is deliberately a second, independent statement of the rules: it shares no code with
//! the PostgreSQL path (not the page fold, not the version type). It keeps every record it
//! is given and derives the tables from their *definitions* when asked: a row holds its
//! newest live record, its newest tombstone while that is newer, and so on. Order
//! independence is then true by construction, and any difference from PostgreSQL is a bug
//! in one of the two.

use super::{PageWriter, Sink, WriteStats};
use crate::error::{Error, Kind, Result};
use crate::parse::{ParsedPage, Record};
use crate::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// A version: the instant, then the scan id compared byte by byte.
pub type Version = (Timestamp, Vec<u8>);

fn version(r: &Record) -> Version {
    (r.updated_at, r.scan_id.as_bytes().to_vec())
}

/// A content row: the newest live record, and the newest tombstone while it is newer.
#[derive(Debug, Clone, PartialEq)]
pub struct MemContent {
    /// The newest live record.
    pub live: Option<Record>,
    /// Set while the newest record of all is a tombstone.
    pub deleted: Option<Version>,
}

/// A creator row: the newest live record's description of it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemCreator {
    /// The version of the record that described it.
    pub version: Version,
    /// Handle.
    pub handle: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Followers, exact.
    pub followers: Option<String>,
    /// Set (to the record's time) when that record says the creator is deleted.
    pub deleted_at: Option<Timestamp>,
}

/// A community row: the newest live record's description of it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemCommunity {
    /// The version of the record that described it.
    pub version: Version,
    /// Name.
    pub name: Option<String>,
}

/// The tables, as ordered maps so two states compare equal when their contents are.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemDb {
    /// (platform, external id) → content.
    pub content: BTreeMap<(String, String), MemContent>,
    /// (platform, creator id) → creator.
    pub creators: BTreeMap<(String, String), MemCreator>,
    /// (platform, community id) → community.
    pub communities: BTreeMap<(String, String), MemCommunity>,
    /// Every live record's tags.
    pub tags: BTreeSet<String>,
    /// (platform, external id, tag): the tags of each row's newest live record.
    pub edges: BTreeSet<(String, String, String)>,
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

#[derive(Debug, Default)]
struct Store {
    records: Vec<Record>,
    quarantine: BTreeSet<(String, String)>,
    pages: usize,
}

/// The in-memory sink; clones share one database.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    store: Arc<Mutex<Store>>,
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

    /// Derives the tables from every record written so far.
    pub fn snapshot(&self) -> MemDb {
        let store = self.store.lock().expect("memory db poisoned");
        let mut db = MemDb { quarantine: store.quarantine.clone(), pages: store.pages, ..MemDb::default() };
        let newer = |old: &Version, new: &Version| old < new;
        for r in &store.records {
            let key = (r.platform.clone(), r.external_id.clone());
            let row = db.content.entry(key).or_insert(MemContent { live: None, deleted: None });
            let v = version(r);
            if r.deleted {
                if row.deleted.as_ref().is_none_or(|d| newer(d, &v)) {
                    row.deleted = Some(v);
                }
                continue;
            }
            if row.live.as_ref().is_none_or(|l| newer(&version(l), &v)) {
                row.live = Some(r.clone());
            }
            db.tags.extend(r.tags.iter().cloned());
            if let Some(c) = &r.creator {
                let k = (r.platform.clone(), c.external_id.clone());
                if db.creators.get(&k).is_none_or(|old| newer(&old.version, &v)) {
                    let deleted_at = c.deleted.then_some(r.updated_at);
                    let (handle, display_name, followers) =
                        (c.handle.clone(), c.display_name.clone(), c.followers.clone());
                    db.creators.insert(
                        k,
                        MemCreator { version: v.clone(), handle, display_name, followers, deleted_at },
                    );
                }
            }
            if let Some(c) = &r.community {
                let k = (r.platform.clone(), c.external_id.clone());
                if db.communities.get(&k).is_none_or(|old| newer(&old.version, &v)) {
                    db.communities.insert(k, MemCommunity { version: v.clone(), name: c.name.clone() });
                }
            }
        }
        // The tombstone counts only while it is newer than the newest live record.
        for ((platform, id), row) in db.content.iter_mut() {
            if let (Some(d), Some(l)) = (&row.deleted, &row.live) {
                if *d < version(l) {
                    row.deleted = None;
                }
            }
            if let Some(l) = &row.live {
                for t in &l.tags {
                    db.edges.insert((platform.clone(), id.clone(), t.clone()));
                }
            }
        }
        db
    }
}

/// A prepared page: its records and rejects.
#[derive(Debug)]
pub struct MemPage {
    records: Vec<Record>,
    rejects: Vec<(String, String)>,
}

impl Sink for MemorySink {
    type Prepared = MemPage;
    type Writer = MemorySink;

    fn prepare(&self, page: &ParsedPage) -> MemPage {
        MemPage {
            records: page.records.clone(),
            rejects: page.rejects.iter().map(|r| (r.reason.code().to_owned(), r.raw.clone())).collect(),
        }
    }

    async fn writer(&self) -> Result<MemorySink> {
        Ok(self.clone())
    }
}

impl PageWriter for MemorySink {
    type Prepared = MemPage;

    /// Keeps the page's records (all of them, at once: the twin's page is atomic).
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
        let mut store = self.store.lock().expect("memory db poisoned");
        let mut stats = WriteStats { content: page.records.len() as u64, ..WriteStats::default() };
        store.records.extend(page.records.iter().cloned());
        for q in &page.rejects {
            stats.quarantined += u64::from(store.quarantine.insert(q.clone()));
        }
        store.pages += 1;
        Ok(stats)
    }
}
