//! What a writer remembers the store holds, learned from its own committed pages.

use super::encode::{KeyedRows, PgPage};
use crate::write::batch::Version;

/// Hashed with foldhash (SipHash showed in profiles).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A (platform, external id) key as the maps hold it, looked up by borrowed strings
/// ([`key_of`]): a lookup that cloned both strings first was 8 % of a re-run's client CPU
/// with the page's clones in [`Known::learn`] (measured with `perf`, 1M records).
pub(super) type Key = (String, String);

/// A key pair, owned or borrowed, hashed and compared as the owned tuple is.
pub(super) trait Pair {
    /// Its two strings.
    fn pair(&self) -> (&str, &str);
}

impl Pair for Key {
    fn pair(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl Pair for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn Pair + 'a> for Key {
    fn borrow(&self) -> &(dyn Pair + 'a) {
        self
    }
}

/// As `(String, String)` hashes: each string in turn (the `Borrow` contract).
impl std::hash::Hash for dyn Pair + '_ {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.pair().hash(h)
    }
}

impl PartialEq for dyn Pair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn Pair + '_ {}

/// Row `i`'s key of `rows`, borrowed, as the maps look it up.
pub(super) fn key_of(rows: &KeyedRows, i: usize) -> (&str, &str) {
    (rows.platform[i].as_str(), rows.external_id[i].as_str())
}

/// Row `i`'s key of `rows`, owned, to insert it.
fn owned_key(rows: &KeyedRows, i: usize) -> Key {
    (rows.platform[i].clone(), rows.external_id[i].clone())
}

/// Remembers `value` for row `i`'s key, cloning the key only when it is new.
pub(super) fn remember<V>(map: &mut HashMap<Key, V>, rows: &KeyedRows, i: usize, value: V) {
    match map.get_mut(&key_of(rows, i) as &dyn Pair) {
        Some(v) => *v = value,
        None => {
            map.insert(owned_key(rows, i), value);
        }
    }
}

/// What this writer knows the store holds, learned from its own committed pages: per
/// creator and community key a version the store holds or has passed, and tags that
/// exist. Such rows are stale without asking ([`fresh_rows`] does not even send them): the
/// top creators of a skewed load are in every page, and were probed on every page.
///
/// It holds only while the store keeps what it committed, and a PostgreSQL crash can lose
/// the last pages committed with `synchronous_commit = off`. Such a crash breaks the
/// connection, and a new connection starts with nothing known ([`PgWriter::ensure_connected`]);
/// so does a writer whose knowledge grew past [`Known::MAX`] entries (memory stays flat).
#[derive(Debug, Default)]
pub(super) struct Known {
    pub(super) creators: HashMap<Key, Version>,
    pub(super) communities: HashMap<Key, Version>,
    pub(super) tags: HashSet<String>,
    /// Ids of creators, communities and tags, for new content rows ([`new_rows`]). An id
    /// never changes while its row exists, and these rows are never deleted; but a crash
    /// can lose a row committed without a flush, and its id be given to another.
    pub(super) creator_ids: HashMap<Key, i64>,
    pub(super) community_ids: HashMap<Key, i64>,
    pub(super) tag_ids: HashMap<String, i64>,
}

impl Known {
    /// Entries kept at most: about 150 bytes each, so at most ~15 MB per writer.
    const MAX: usize = 100_000;

    /// Tells whether row `i` of `rows` is known to be stale in `map`.
    pub(super) fn stale(map: &HashMap<Key, Version>, rows: &KeyedRows, i: usize) -> bool {
        map.get(&key_of(rows, i) as &dyn Pair).is_some_and(|v| *v >= rows.versions[i])
    }

    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.creators.len()
            + self.communities.len()
            + self.tags.len()
            + self.creator_ids.len()
            + self.community_ids.len()
            + self.tag_ids.len()
    }

    /// Learns a committed page: the store now holds each row's version or a newer one.
    pub(super) fn learn(&mut self, page: &PgPage) {
        if self.len() > Self::MAX {
            *self = Known::default();
        }
        for (map, rows) in [(&mut self.creators, &page.creators), (&mut self.communities, &page.communities)]
        {
            let Some(rows) = rows else { continue };
            for i in 0..rows.len() {
                let v = &rows.versions[i];
                match map.get_mut(&key_of(rows, i) as &dyn Pair) {
                    Some(known) if *known >= *v => {}
                    Some(known) => *known = v.clone(),
                    None => {
                        map.insert(owned_key(rows, i), v.clone());
                    }
                }
            }
        }
        for t in &page.tags {
            if !self.tags.contains(t.as_str()) {
                self.tags.insert(t.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use crate::write::postgres::encode::Keyed;

    fn version(at: i64, scan: &str) -> Version {
        Version { at: Timestamp(at), scan_id: scan.to_owned() }
    }

    /// A page with one creator per (id, version), and the given tags.
    fn page(creators: &[(&str, Version)], tags: &[&str]) -> PgPage {
        let mut k = Keyed::with_capacity(creators.len());
        for (id, v) in creators {
            k.entity("x", id, v, [None, None, None], false, true);
        }
        PgPage {
            creators: k.finish(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..PgPage::default()
        }
    }

    #[test]
    fn a_known_version_covers_itself_and_older_ones_never_newer() {
        let mut known = Known::default();
        known.learn(&page(&[("c1", version(10, "b"))], &["t"]));
        let later =
            page(&[("c1", version(10, "a")), ("c1", version(10, "b")), ("c1", version(10, "c"))], &[]);
        let rows = later.creators.as_ref().unwrap();
        let stale: Vec<bool> = (0..3).map(|i| Known::stale(&known.creators, rows, i)).collect();
        assert_eq!(stale, [true, true, false], "older and equal are stale; a newer scan id is asked about");
        let other = page(&[("c2", version(1, "a"))], &[]);
        assert!(
            !Known::stale(&known.creators, other.creators.as_ref().unwrap(), 0),
            "unknown keys are asked about"
        );
        assert!(known.tags.contains("t"));
    }

    #[test]
    fn learning_an_older_version_keeps_the_newer_one() {
        let mut known = Known::default();
        known.learn(&page(&[("c1", version(20, "a"))], &[]));
        known.learn(&page(&[("c1", version(10, "z"))], &[]));
        assert_eq!(known.creators[&("x".to_string(), "c1".to_string())], version(20, "a"));
        assert_eq!(known.creators.get(&("x", "c1") as &dyn Pair), Some(&version(20, "a")), "found borrowed");
    }

    #[test]
    fn knowledge_past_the_cap_is_forgotten() {
        let mut known = Known::default();
        let names: Vec<String> = (0..=Known::MAX).map(|i| format!("t{i}")).collect();
        known.learn(&page(&[], &names.iter().map(String::as_str).collect::<Vec<_>>()));
        assert_eq!(known.tags.len(), Known::MAX + 1);
        known.learn(&page(&[("c1", version(1, "a"))], &[]));
        assert_eq!((known.tags.len(), known.creators.len()), (0, 1), "cleared before learning the next page");
    }
}
