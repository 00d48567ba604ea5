//! Folding a batch of records before it meets PostgreSQL.
//!
//! `INSERT … ON CONFLICT` must never meet the same key twice in one statement, and the
//! merge rules are easiest to keep when each key arrives once. [`Batch::fold`] keeps, per
//! content key, the newest live record and the newest tombstone (only if it is newer than
//! that live record); per creator and community key, the newest description. "Newest" is
//! always the [`Version`] order: instant first, then scan id.

use crate::parse::{Community, Creator, Record};
use crate::time::Timestamp;

/// Keyed by borrowed strings with foldhash: a page's fold was a tenth of the writer's CPU
/// with cloned keys, SipHash and maps grown step by step (measured with `perf`).
type Map<'a, V> = std::collections::HashMap<(&'a str, &'a str), V, foldhash::fast::RandomState>;

/// The order in which versions of one row win: newer instant, then greater scan id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// `updatedAt` as an instant.
    pub at: Timestamp,
    /// The scan id, for ties.
    pub scan_id: String,
}

impl Version {
    /// Returns the version of a record.
    pub fn of(r: &Record) -> Self {
        Version { at: r.updated_at, scan_id: r.scan_id.clone() }
    }
}

/// One content key's folded state within a batch.
#[derive(Debug, Clone)]
pub struct ContentFold<'a> {
    /// The newest live (non-deleted) record.
    pub live: Option<&'a Record>,
    /// The newest tombstone, kept only when newer than `live`.
    pub tomb: Option<Version>,
    /// When the source removed the item, if that tombstone is a removal.
    pub removed_at: Option<Timestamp>,
}

/// A batch of pages folded into one entry per row key, sorted by key so concurrent
/// writers lock rows in the same order (fewer deadlocks).
/// Keys and records are borrowed from the page.
#[derive(Debug, Default)]
pub struct Batch<'a> {
    /// Per (platform, creator external id): the newest description, with its version.
    pub creators: Vec<((&'a str, &'a str), Version, &'a Creator)>,
    /// Per (platform, community external id): the newest description, with its version.
    pub communities: Vec<((&'a str, &'a str), Version, &'a Community)>,
    /// Per (platform, content external id).
    pub content: Vec<((&'a str, &'a str), ContentFold<'a>)>,
    /// Every tag of every live record of the batch, winners or not, sorted. The tag
    /// dictionary is the set of tags ever seen: keeping only the winners' tags would make
    /// it depend on how records were split into pages.
    pub tags: Vec<&'a str>,
}

impl<'a> Batch<'a> {
    /// Folds records (in any order) into one entry per key.
    pub fn fold(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let records = records.into_iter();
        let n = records.size_hint().0;
        let mut content: Map<ContentFold> = Map::with_capacity_and_hasher(n, Default::default());
        let mut creators: Map<(Version, &Creator)> = Map::with_capacity_and_hasher(n, Default::default());
        let mut communities: Map<(Version, &Community)> =
            Map::with_capacity_and_hasher(n, Default::default());
        let mut tags: Vec<&str> = Vec::with_capacity(n * 2);
        for r in records {
            let v = Version::of(r);
            let key = (r.platform.as_str(), r.external_id.as_str());
            let entry =
                content.entry(key).or_insert(ContentFold { live: None, tomb: None, removed_at: None });
            if r.deleted {
                if entry.tomb.as_ref().is_none_or(|t| *t < v) {
                    entry.tomb = Some(v);
                    entry.removed_at = r.removal.and_then(|x| x.at);
                }
                continue;
            }
            // Creators, communities and tags follow live records only: a tombstone's other
            // values are not an observation of anything.
            tags.extend(r.tags.iter().map(String::as_str));
            if let Some(c) = &r.creator {
                let k = (r.platform.as_str(), c.external_id.as_str());
                if creators.get(&k).is_none_or(|(old, _)| *old < v) {
                    creators.insert(k, (v.clone(), c));
                }
            }
            if let Some(c) = &r.community {
                let k = (r.platform.as_str(), c.external_id.as_str());
                if communities.get(&k).is_none_or(|(old, _)| *old < v) {
                    communities.insert(k, (v.clone(), c));
                }
            }
            if entry.live.is_none_or(|l| Version::of(l) < v) {
                entry.live = Some(r);
            }
        }
        let mut content: Vec<_> = content
            .into_iter()
            .map(|(k, mut f)| {
                if let (Some(t), Some(l)) = (&f.tomb, f.live) {
                    if *t < Version::of(l) {
                        f.tomb = None;
                        f.removed_at = None;
                    }
                }
                (k, f)
            })
            .collect();
        content.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut creators: Vec<_> = creators.into_iter().map(|(k, (v, c))| (k, v, c)).collect();
        creators.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut communities: Vec<_> = communities.into_iter().map(|(k, (v, c))| (k, v, c)).collect();
        communities.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        tags.sort_unstable();
        tags.dedup();
        Batch { creators, communities, content, tags }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, at: &str, scan: &str, deleted: bool, caption: &str) -> Record {
        Record {
            scan_id: scan.into(),
            partition: String::new(),
            updated_at: Timestamp::parse(at).unwrap(),
            platform: "x".into(),
            external_id: id.into(),
            deleted,
            url: None,
            caption: Some(caption.into()),
            creator: None,
            community: None,
            tags: vec![],
            stats: Default::default(),
            posted_at: None,
            metadata: None,
            extra: None,
            removal: None,
        }
    }

    #[test]
    fn duplicates_in_a_batch_fold_to_the_newest_whatever_the_order() {
        let a = rec("1", "2026-01-01T00:00:00Z", "a", false, "old");
        let b = rec("1", "2026-01-01T00:00:00.5Z", "a", false, "new");
        let c = rec("1", "2026-01-01T00:00:00.5Z", "b", false, "newest-by-scan-id");
        for order in [[&a, &b, &c], [&c, &b, &a], [&b, &c, &a]] {
            let batch = Batch::fold(order);
            assert_eq!(batch.content.len(), 1);
            let live = batch.content[0].1.live.as_ref().unwrap();
            assert_eq!(live.caption.as_deref(), Some("newest-by-scan-id"));
        }
    }

    #[test]
    fn every_live_records_tags_are_kept_not_only_the_winners() {
        let mut old = rec("1", "2026-01-01T00:00:00Z", "a", false, "old");
        old.tags = vec!["gone".into(), "kept".into()];
        let mut new = rec("1", "2026-01-01T00:00:01Z", "b", false, "new");
        new.tags = vec!["kept".into()];
        let mut dead = rec("2", "2026-01-01T00:00:01Z", "c", true, "");
        dead.tags = vec!["tombstone".into()];
        assert_eq!(Batch::fold([&new, &old, &dead]).tags, ["gone", "kept"]);
    }

    #[test]
    fn a_tombstone_older_than_the_live_record_is_dropped() {
        let t = rec("1", "2026-01-01T00:00:00Z", "t", true, "");
        let l = rec("1", "2026-01-01T00:00:01Z", "l", false, "live");
        let batch = Batch::fold([&t, &l]);
        assert!(batch.content[0].1.tomb.is_none());
        let newer = rec("1", "2026-01-01T00:00:02Z", "t", true, "");
        let batch = Batch::fold([&newer, &l]);
        assert!(batch.content[0].1.tomb.is_some());
        assert!(batch.content[0].1.live.is_some());
    }
}
