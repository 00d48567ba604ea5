//! An in-memory stream for tests of the follower's logic: shards that roll over and split
//! (what no local server does), records trimmed, shards that age out, and a log of every
//! read, so a test can check that no child was read before its parent was finished.

use super::{Change, ChangeKind, ReadFailure, Records, Shard, StartAt, StreamApi, StreamInfo, ViewType};
use crate::attr::{Attr, Item};
use crate::error::Error;
use std::sync::Mutex;

#[derive(Debug, Clone)]
struct MemShard {
    id: String,
    parent: Option<String>,
    changes: Vec<Change>,
    closed: bool,
    /// Changes before this index were trimmed.
    kept_from: usize,
    /// Aged out: no longer listed, reads fail.
    gone: bool,
}

#[derive(Debug, Default)]
struct Inner {
    shards: Vec<MemShard>,
    next_seq: u64,
    next_shard: u64,
    reads: Vec<(String, Vec<String>)>,
    /// Answer the next position iterator `TrimmedDataAccessException` though nothing was
    /// trimmed (what the fault suite injects; a read from the oldest record then finds records
    /// the follower already applied).
    false_trim: bool,
}

/// A table's stream in memory (view type NEW_AND_OLD_IMAGES).
#[derive(Debug, Default)]
pub struct MemoryStream {
    inner: Mutex<Inner>,
}

/// The stream's ARN.
pub const ARN: &str = "arn:memory:stream/1";

impl MemoryStream {
    /// A stream of one open root shard.
    pub fn new() -> Self {
        let s = Self::default();
        s.open_shard(None);
        s
    }

    fn open_shard(&self, parent: Option<String>) -> String {
        let mut g = self.inner.lock().unwrap();
        g.next_shard += 1;
        let id = format!("shard-{:04}", g.next_shard);
        g.shards.push(MemShard {
            id: id.clone(),
            parent,
            changes: Vec::new(),
            closed: false,
            kept_from: 0,
            gone: false,
        });
        id
    }

    /// Writes a change of `item` to the open shard its `scanId` belongs to; returns the
    /// shard's id.
    pub fn write(&self, kind: ChangeKind, at: Option<crate::time::Timestamp>) -> String {
        let key = match &kind {
            ChangeKind::Put(i) => scan(i),
            ChangeKind::Remove { keys, .. } => scan(keys),
        };
        let mut g = self.inner.lock().unwrap();
        g.next_seq += 1;
        let seq = format!("{:021}", g.next_seq);
        let open: Vec<usize> = (0..g.shards.len()).filter(|&i| !g.shards[i].closed).collect();
        let i = open[(foldhash_of(&key) as usize) % open.len()];
        g.shards[i].changes.push(Change { seq, at, kind });
        g.shards[i].id.clone()
    }

    /// Closes every open shard and gives each `children` children (1: a rollover, 2: a
    /// split).
    pub fn roll(&self, children: usize) {
        let open: Vec<String> = {
            let mut g = self.inner.lock().unwrap();
            let ids = g.shards.iter().filter(|s| !s.closed).map(|s| s.id.clone()).collect();
            g.shards.iter_mut().for_each(|s| s.closed = true);
            ids
        };
        for parent in open {
            for _ in 0..children {
                self.open_shard(Some(parent.clone()));
            }
        }
    }

    /// Trims the oldest `n` changes of shard `id`.
    pub fn trim(&self, id: &str, n: usize) {
        let mut g = self.inner.lock().unwrap();
        if let Some(s) = g.shards.iter_mut().find(|s| s.id == id) {
            s.kept_from = (s.kept_from + n).min(s.changes.len());
        }
    }

    /// Answers the next iterator at a position `TrimmedDataAccessException`, with every
    /// record still kept.
    pub fn answer_trimmed_once(&self) {
        self.inner.lock().unwrap().false_trim = true;
    }

    /// Makes shard `id` age out (no longer listed; reads fail).
    pub fn age_out(&self, id: &str) {
        let mut g = self.inner.lock().unwrap();
        if let Some(s) = g.shards.iter_mut().find(|s| s.id == id) {
            s.gone = true;
        }
    }

    /// Every read that returned changes: (shard, their sequence numbers), in order.
    pub fn reads(&self) -> Vec<(String, Vec<String>)> {
        self.inner.lock().unwrap().reads.clone()
    }

    /// Every shard: (id, parent, closed, the sequence number of its last change).
    pub fn topology(&self) -> Vec<(String, Option<String>, bool, Option<String>)> {
        let g = self.inner.lock().unwrap();
        g.shards
            .iter()
            .map(|s| (s.id.clone(), s.parent.clone(), s.closed, s.changes.last().map(|c| c.seq.clone())))
            .collect()
    }
}

fn scan(i: &Item) -> String {
    match i.get("scanId") {
        Some(Attr::S(s)) => s.clone(),
        _ => String::new(),
    }
}

fn foldhash_of(s: &str) -> u64 {
    std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), s)
}

impl StreamApi for MemoryStream {
    async fn stream_of(&self, _table: &str) -> Result<Option<StreamInfo>, Error> {
        Ok(Some(StreamInfo { arn: ARN.into(), view: ViewType::NewAndOldImages, created: None }))
    }

    async fn shards(&self, _arn: &str) -> Result<Vec<Shard>, Error> {
        let g = self.inner.lock().unwrap();
        Ok(g.shards
            .iter()
            .filter(|s| !s.gone)
            .map(|s| Shard { id: s.id.clone(), parent: s.parent.clone(), closed: s.closed })
            .collect())
    }

    async fn iterator(&self, _arn: &str, shard: &str, from: &StartAt) -> Result<String, ReadFailure> {
        let mut g = self.inner.lock().unwrap();
        if matches!(from, StartAt::After(_)) && std::mem::take(&mut g.false_trim) {
            return Err(ReadFailure::Trimmed);
        }
        let s = g.shards.iter().find(|s| s.id == shard && !s.gone).ok_or(ReadFailure::Gone)?;
        let at = match from {
            StartAt::Oldest => s.kept_from,
            StartAt::After(seq) => match s.changes.iter().position(|c| c.seq == *seq) {
                Some(i) if i + 1 >= s.kept_from => i + 1,
                _ => return Err(ReadFailure::Trimmed),
            },
        };
        Ok(format!("{shard}@{at}"))
    }

    async fn records(&self, iterator: &str, limit: i32) -> Result<Records, ReadFailure> {
        let (shard, at) = iterator.split_once('@').ok_or(ReadFailure::Expired)?;
        let at: usize = at.parse().map_err(|_| ReadFailure::Expired)?;
        let mut g = self.inner.lock().unwrap();
        let s = g.shards.iter().find(|s| s.id == shard && !s.gone).ok_or(ReadFailure::Gone)?;
        if at < s.kept_from {
            return Err(ReadFailure::Trimmed);
        }
        let end = (at + limit.max(1) as usize).min(s.changes.len());
        let changes = s.changes[at..end].to_vec();
        let next = (!(s.closed && end == s.changes.len())).then(|| format!("{shard}@{end}"));
        if !changes.is_empty() {
            let seqs = changes.iter().map(|c| c.seq.clone()).collect();
            g.reads.push((shard.to_string(), seqs));
        }
        Ok(Records { changes, next })
    }
}
