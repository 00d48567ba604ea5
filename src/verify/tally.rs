//! What a verify found, key by key, in little memory: per content key its verdict and the
//! instant of its newest version seen (16 bytes a key, with its hash); per creator and
//! community its verdict (16 bytes a key too). Key text and records are kept only for
//! divergent keys (to list them, and to repair them).
//!
//! A key compared in several pages ends with the verdict of its newest version, which is
//! the greatest verdict of all its comparisons ([`Verdict`]'s order): a version newer than
//! the store's is stale (or missing) whatever older versions say, one equal to it is same
//! or diverged, and only when every version is older is the store ahead.

use crate::parse::Record;
use crate::time::Day;
use crate::write::postgres::Verdict;
use std::collections::{BTreeMap, HashMap};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The tables a verify compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// `content`.
    Content,
    /// `creators`.
    Creators,
    /// `communities`.
    Communities,
}

impl Table {
    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Content => "content",
            Self::Creators => "creators",
            Self::Communities => "communities",
        }
    }
}

/// Keys per verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; 5]);

impl Counts {
    /// Keys with verdict `v`.
    pub fn get(&self, v: Verdict) -> u64 {
        self.0[v as usize]
    }

    fn add(&mut self, v: Verdict) {
        self.0[v as usize] += 1;
    }

    /// Every key compared.
    pub fn keys(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Keys the store needs the source's record for (missing, stale, diverged).
    pub fn divergent(&self) -> u64 {
        Verdict::ALL.iter().filter(|v| v.divergent()).map(|v| self.get(*v)).sum()
    }

    /// Adds another table's counts.
    pub fn merge(&mut self, o: &Counts) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
    }
}

/// A content key's state, in one word: the instant (µs) of its newest version seen, shifted
/// left by three bits, and its verdict in them. The day it is counted on is that instant's
/// UTC day. With the key's hash, an entry is 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen(i64);

impl Seen {
    const BITS: u32 = 3;

    /// Instants span the years 1 to 9999 (±2^58 µs), so the shift keeps them whole.
    fn new(at: i64, verdict: Verdict) -> Self {
        debug_assert!(at.unsigned_abs() < 1 << 60, "an instant out of range: {at}");
        Self(at << Self::BITS | verdict as i64)
    }

    fn at(self) -> i64 {
        self.0 >> Self::BITS
    }

    fn verdict(self) -> Verdict {
        let n = (self.0 & ((1 << Self::BITS) - 1)) as usize;
        Verdict::ALL[n]
    }

    fn day(self) -> Day {
        crate::time::Timestamp(self.at()).day()
    }
}

/// The keys compared so far.
#[derive(Debug, Default)]
pub struct Tally {
    content: Map<u64, Seen>,
    entities: [Map<u64, Verdict>; 2],
    /// Key text of every key ever found divergent.
    names: Map<(Table, u64), String>,
    /// With a repair: the records of the divergent keys, as the pages held them.
    records: Map<(Table, u64), Vec<Record>>,
}

/// The totals of a verify.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Content keys per day (the day of a key's newest version in the range).
    pub days: BTreeMap<Day, Counts>,
    /// Per table.
    pub content: Counts,
    /// Creators.
    pub creators: Counts,
    /// Communities.
    pub communities: Counts,
    /// The first divergent keys of each table and verdict, in key order.
    pub first: BTreeMap<(Table, Verdict), Vec<String>>,
}

impl Found {
    /// Every table's counts added.
    pub fn all(&self) -> Counts {
        let mut c = self.content;
        c.merge(&self.creators);
        c.merge(&self.communities);
        c
    }

    /// Keys of any table the store needs the source's record for.
    pub fn divergent(&self) -> u64 {
        self.all().divergent()
    }
}

impl Tally {
    /// Notes a content key's comparison: its version's instant `at` (µs; the key is counted
    /// on its UTC day); `name` gives its text (asked only when divergent); `records` its
    /// records in the page (kept only when divergent, and only when given: a repair).
    pub fn content(
        &mut self,
        hash: u64,
        at: i64,
        verdict: Verdict,
        name: impl FnOnce() -> String,
        records: impl FnOnce() -> Option<Vec<Record>>,
    ) {
        let e = self.content.entry(hash).or_insert(Seen::new(at, verdict));
        *e = Seen::new(e.at().max(at), e.verdict().max(verdict));
        if verdict.divergent() {
            self.keep(Table::Content, hash, name, records);
        }
    }

    /// Notes a creator's or community's comparison, as [`Tally::content`].
    pub fn entity(
        &mut self,
        table: Table,
        hash: u64,
        verdict: Verdict,
        name: impl FnOnce() -> String,
        records: impl FnOnce() -> Option<Vec<Record>>,
    ) {
        let map = &mut self.entities[(table == Table::Communities) as usize];
        let e = map.entry(hash).or_insert(verdict);
        *e = (*e).max(verdict);
        if verdict.divergent() {
            self.keep(table, hash, name, records);
        }
    }

    fn keep(
        &mut self,
        table: Table,
        hash: u64,
        name: impl FnOnce() -> String,
        records: impl FnOnce() -> Option<Vec<Record>>,
    ) {
        self.names.entry((table, hash)).or_insert_with(name);
        if let Some(r) = records() {
            self.records.entry((table, hash)).or_default().extend(r);
        }
    }

    /// The totals, with the first `keys` divergent keys of each table and verdict.
    pub fn found(&self, keys: usize) -> Found {
        let mut f = Found::default();
        for s in self.content.values() {
            f.content.add(s.verdict());
            f.days.entry(s.day()).or_default().add(s.verdict());
        }
        for (map, counts) in self.entities.iter().zip([&mut f.creators, &mut f.communities]) {
            for v in map.values() {
                counts.add(*v);
            }
        }
        for ((table, hash), name) in &self.names {
            let v = self.verdict(*table, *hash);
            if v.is_some_and(Verdict::divergent) {
                f.first.entry((*table, v.expect("checked"))).or_default().push(name.clone());
            }
        }
        for list in f.first.values_mut() {
            list.sort_unstable();
            list.truncate(keys);
        }
        f
    }

    fn verdict(&self, table: Table, hash: u64) -> Option<Verdict> {
        match table {
            Table::Content => self.content.get(&hash).map(|s| s.verdict()),
            Table::Creators => self.entities[0].get(&hash).copied(),
            Table::Communities => self.entities[1].get(&hash).copied(),
        }
    }

    /// The records of every key that ended divergent (a repair's input), each key's
    /// records together.
    pub fn take_records(&mut self) -> Vec<Record> {
        let records = std::mem::take(&mut self.records);
        let mut out = Vec::new();
        for ((table, hash), r) in records {
            if self.verdict(table, hash).is_some_and(Verdict::divergent) {
                out.extend(r);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn v(n: i64) -> Day {
        Day(n)
    }

    #[test]
    fn a_content_key_is_kept_in_sixteen_bytes_with_its_instant_and_verdict_whole() {
        assert_eq!(std::mem::size_of::<(u64, Seen)>(), 16);
        let extremes = [
            crate::time::Timestamp::parse("0001-01-01T00:00:00Z").expect("valid").0,
            crate::time::Timestamp::parse("9999-12-31T23:59:59.999999Z").expect("valid").0,
            -1,
            0,
        ];
        for at in extremes {
            for verdict in Verdict::ALL {
                let s = Seen::new(at, verdict);
                assert_eq!((s.at(), s.verdict()), (at, verdict));
                assert_eq!(s.day(), crate::time::Timestamp(at).day());
            }
        }
    }

    #[test]
    fn a_key_ends_with_the_verdict_of_its_newest_version_in_any_page_order() {
        // Store holds version 20. Versions 10 (ahead), 20 (same) and 30 (stale).
        let seen = [(DAY, Verdict::Ahead), (2 * DAY, Verdict::Same), (3 * DAY + 5, Verdict::Stale)];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1]] {
            let mut t = Tally::default();
            for i in order {
                let (at, verdict) = seen[i];
                t.content(7, at, verdict, || "x/1".into(), || None);
            }
            let f = t.found(10);
            assert_eq!(f.content.get(Verdict::Stale), 1, "{order:?}");
            assert_eq!(f.content.keys(), 1);
            assert_eq!(
                f.days.keys().copied().collect::<Vec<_>>(),
                [v(3)],
                "counted on its newest version's day"
            );
            assert_eq!(f.first[&(Table::Content, Verdict::Stale)], ["x/1"]);
        }
    }

    #[test]
    fn a_key_the_store_holds_alike_is_not_ahead_because_an_older_version_was_seen_too() {
        let mut t = Tally::default();
        t.content(1, 10, Verdict::Ahead, String::new, || None);
        t.content(1, 20, Verdict::Same, String::new, || None);
        t.content(2, 10, Verdict::Ahead, String::new, || None);
        let f = t.found(10);
        assert_eq!((f.content.get(Verdict::Same), f.content.get(Verdict::Ahead)), (1, 1));
        assert_eq!(f.divergent(), 0);
        assert!(f.first.is_empty());
    }

    #[test]
    fn only_the_records_of_keys_that_end_divergent_are_repaired() {
        let rec = |id: &str| crate::parse::Record {
            scan_id: id.into(),
            partition: String::new(),
            updated_at: crate::time::Timestamp(0),
            platform: "x".into(),
            external_id: id.into(),
            deleted: false,
            url: None,
            caption: None,
            creator: None,
            community: None,
            tags: vec![],
            stats: Default::default(),
            posted_at: None,
            metadata: None,
            extra: None,
            removal: None,
        };
        let mut t = Tally::default();
        t.content(1, 10, Verdict::Missing, || "x/a".into(), || Some(vec![rec("a")]));
        t.content(2, 10, Verdict::Diverged, || "x/b".into(), || Some(vec![rec("b")]));
        t.entity(Table::Creators, 2, Verdict::Stale, || "x/c".into(), || Some(vec![rec("c")]));
        t.content(3, 10, Verdict::Same, || "x/d".into(), || Some(vec![rec("d")]));
        let mut ids: Vec<String> = t.take_records().into_iter().map(|r| r.scan_id).collect();
        ids.sort();
        assert_eq!(ids, ["a", "b", "c"]);
        let f = t.found(1);
        assert_eq!(f.first[&(Table::Creators, Verdict::Stale)], ["x/c"]);
        assert_eq!(f.divergent(), 3);
    }
}
