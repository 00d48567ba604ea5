//! What the writers of a sink remember the store holds: learned from their committed pages
//! and from what their first phases found.

use super::encode::{KeyedRows, PgPage};
use crate::time::Timestamp;
use crate::write::batch::Version;

/// Hashed with foldhash (SipHash showed in profiles).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A (platform, external id) key as the maps hold it, looked up by borrowed strings
/// ([`key_of`]): a lookup that cloned both strings first was 8 % of a re-run's client CPU
/// with the page's clones in [`Known::learn`] (measured with `perf`, 1M records).
pub(super) type Key = (Box<str>, Box<str>);

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

/// As `(Box<str>, Box<str>)` hashes: each string in turn (the `Borrow` contract).
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

/// What is known of one creator or community: a version the store holds or has passed,
/// and its id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Held {
    /// The version, as an instant and a scan id.
    version: Option<(Timestamp, Box<str>)>,
    id: Option<i64>,
}

impl Held {
    /// Tells whether `v` is stale: the store holds it or a newer version.
    fn covers(&self, v: &Version) -> bool {
        self.version.as_ref().is_some_and(|(at, scan)| (*at, &**scan) >= (v.at, v.scan_id.as_str()))
    }

    /// Raises the known version to `v` if `v` is newer.
    fn raise(&mut self, v: &Version) {
        if !self.covers(v) {
            self.version = Some((v.at, v.scan_id.as_str().into()));
        }
    }
}

/// The creators' or the communities' map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entity {
    /// `creators`.
    Creators,
    /// `communities`.
    Communities,
}

/// What the writers of a sink know the store holds: per creator and community key a
/// version the store holds or has passed, and its id; tags that exist, and their ids. Such
/// rows are stale without asking ([`fresh_rows`] does not even send them): the top creators
/// of a skewed load are in every page, and were probed on every page. It learns from every
/// page a writer commits, and from the versions its first phase finds the store holding:
/// versions only move forward, so the store holds them or newer ones from then on (a
/// re-run's pages carry older versions of most creators than the store's; learned only from
/// the pages, every later page asked about them again: measured on the 1M re-run, the first
/// phase's summed time 17.4 s against 13.0 s, the whole re-run 14.1 s against 11.5 s).
///
/// One per sink, shared by its writers (under a lock taken between statements, never across
/// one): what one writer learned saves the other a question. It holds only while the store
/// keeps what was committed, and a PostgreSQL crash can lose the last pages committed with
/// `synchronous_commit = off`. Such a crash breaks the connections, and a writer that
/// connects again forgets everything ([`PgWriter::ensure_connected`](super::PgWriter));
/// so does a map that grew past [`Known::MAX`] entries (memory stays flat).
#[derive(Debug, Default)]
pub(super) struct Known {
    creators: HashMap<Key, Held>,
    communities: HashMap<Key, Held>,
    /// Tags that exist, with their ids where known.
    tags: HashMap<Box<str>, Option<i64>>,
}

impl Known {
    /// Entries kept at most per map: about 170 bytes each with their strings, so at most
    /// ~40 MB per map (the 1M-record benchmark's mix holds 161k creators, 47k communities,
    /// 50k tags).
    const MAX: usize = 250_000;

    fn map(&self, e: Entity) -> &HashMap<Key, Held> {
        match e {
            Entity::Creators => &self.creators,
            Entity::Communities => &self.communities,
        }
    }

    /// The entry of row `i`'s key of `rows`, made if new (the key cloned only then); the
    /// map is emptied first when full.
    fn entry(&mut self, e: Entity, rows: &KeyedRows, i: usize) -> &mut Held {
        let map = match e {
            Entity::Creators => &mut self.creators,
            Entity::Communities => &mut self.communities,
        };
        let key = key_of(rows, i);
        if !map.contains_key(&key as &dyn Pair) {
            if map.len() >= Self::MAX {
                map.clear();
            }
            map.insert((key.0.into(), key.1.into()), Held::default());
        }
        map.get_mut(&key as &dyn Pair).expect("inserted above")
    }

    /// Tells whether row `i` of `rows` (a creator or community with its version) is known to
    /// be stale.
    pub(super) fn stale(&self, e: Entity, rows: &KeyedRows, i: usize) -> bool {
        self.map(e).get(&key_of(rows, i) as &dyn Pair).is_some_and(|h| h.covers(&rows.versions[i]))
    }

    /// The id of row `i`'s key of `rows`, if known.
    pub(super) fn id(&self, e: Entity, rows: &KeyedRows, i: usize) -> Option<i64> {
        self.map(e).get(&key_of(rows, i) as &dyn Pair).and_then(|h| h.id)
    }

    /// Remembers the id of row `i`'s key of `rows`.
    pub(super) fn remember_id(&mut self, e: Entity, rows: &KeyedRows, i: usize, id: i64) {
        self.entry(e, rows, i).id = Some(id);
    }

    /// Tells whether tag `name` is known to exist.
    pub(super) fn tag_exists(&self, name: &str) -> bool {
        self.tags.contains_key(name)
    }

    /// The id of tag `name`, if known.
    pub(super) fn tag_id(&self, name: &str) -> Option<i64> {
        self.tags.get(name).copied().flatten()
    }

    /// Remembers that tag `name` exists, with its id where known.
    pub(super) fn remember_tag(&mut self, name: &str, id: Option<i64>) {
        match self.tags.get_mut(name) {
            Some(held) => *held = id.or(*held),
            None => {
                if self.tags.len() >= Self::MAX {
                    self.tags.clear();
                }
                self.tags.insert(name.into(), id);
            }
        }
    }

    /// Learns the versions the first phase found the store holding (`held`: by the index of
    /// the row in `rows`).
    pub(super) fn learn_held(&mut self, e: Entity, rows: &KeyedRows, held: &[(usize, Version)]) {
        for (i, v) in held {
            self.entry(e, rows, *i).raise(v);
        }
    }

    /// Learns a committed page: the store now holds each row's version or a newer one, and
    /// each of its tags.
    pub(super) fn learn(&mut self, page: &PgPage) {
        for (e, rows) in [(Entity::Creators, &page.creators), (Entity::Communities, &page.communities)] {
            let Some(rows) = rows else { continue };
            for i in 0..rows.len() {
                self.entry(e, rows, i).raise(&rows.versions[i]);
            }
        }
        for t in &page.tags {
            if !self.tag_exists(t) {
                self.remember_tag(t, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::postgres::encode::Keyed;

    fn version(at: i64, scan: &str) -> Version {
        Version { at: Timestamp(at), scan_id: scan.to_owned() }
    }

    /// A page with one creator per (id, version), and the given tags.
    fn page(creators: &[(&str, Version)], tags: &[&str]) -> PgPage {
        let mut k = Keyed::with_capacity(creators.len());
        for (id, v) in creators {
            k.entity("x", id, v, [None, None, None], false);
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
        let stale: Vec<bool> = (0..3).map(|i| known.stale(Entity::Creators, rows, i)).collect();
        assert_eq!(stale, [true, true, false], "older and equal are stale; a newer scan id is asked about");
        let other = page(&[("c2", version(1, "a"))], &[]);
        assert!(
            !known.stale(Entity::Creators, other.creators.as_ref().unwrap(), 0),
            "unknown keys are asked about"
        );
        assert!(known.tag_exists("t") && known.tag_id("t").is_none());
    }

    #[test]
    fn learning_an_older_version_keeps_the_newer_one() {
        let mut known = Known::default();
        known.learn(&page(&[("c1", version(20, "a"))], &[]));
        let older = page(&[("c1", version(10, "z"))], &[]);
        known.learn(&older);
        let rows = older.creators.as_ref().unwrap();
        let newer = page(&[("c1", version(20, "b"))], &[]);
        assert!(known.stale(Entity::Creators, rows, 0));
        assert!(
            !known.stale(Entity::Creators, newer.creators.as_ref().unwrap(), 0),
            "20/a is still the newest known"
        );
    }

    #[test]
    fn a_version_the_store_holds_covers_the_older_ones_of_later_pages() {
        let mut known = Known::default();
        let asked = page(&[("c1", version(10, "a"))], &[]);
        let rows = asked.creators.as_ref().unwrap();
        known.learn_held(Entity::Creators, rows, &[(0, version(30, "s"))]);
        known.remember_id(Entity::Creators, rows, 0, 7);
        let later = page(&[("c1", version(20, "b")), ("c1", version(40, "c"))], &[]);
        let rows = later.creators.as_ref().unwrap();
        assert_eq!(
            (known.stale(Entity::Creators, rows, 0), known.stale(Entity::Creators, rows, 1)),
            (true, false)
        );
        assert_eq!(known.id(Entity::Creators, rows, 0), Some(7), "the id stays with the version");
        assert!(!known.stale(Entity::Communities, rows, 0), "each entity has its own map");
    }

    #[test]
    fn a_map_past_the_cap_is_forgotten_and_the_others_kept() {
        let mut known = Known::default();
        let names: Vec<String> = (0..Known::MAX).map(|i| format!("t{i}")).collect();
        known.learn(&page(&[("c1", version(1, "a"))], &names.iter().map(String::as_str).collect::<Vec<_>>()));
        assert!(known.tag_exists("t0"));
        known.remember_tag("one more", Some(3));
        assert!(!known.tag_exists("t0"), "the full map was emptied");
        assert_eq!(known.tag_id("one more"), Some(3));
        assert_eq!(known.creators.len(), 1, "the creators' map is kept");
    }
}
