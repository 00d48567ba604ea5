//! A page encoded for COPY: each table's rows with their keys and versions (for the first
//! phase), the content rows' COPY payload, and what a new row needs to skip the merges.

pub(super) use crate::write::batch::Batch;
use crate::write::batch::Version;
use crate::write::copy::CopyBuf;
use bytes::Bytes;

/// A page encoded for COPY, plus its quarantine rows.
#[derive(Debug, Default)]
pub struct PgPage {
    pub(super) creators: Option<KeyedRows>,
    pub(super) communities: Option<KeyedRows>,
    pub(super) content: Option<KeyedRows>,
    pub(super) tags: Vec<String>,
    pub(super) q_reason: Vec<String>,
    pub(super) q_scan: Vec<Option<String>>,
    pub(super) q_partition: Vec<String>,
    pub(super) q_raw: Vec<String>,
    pub(super) q_origin: Vec<String>,
}

/// Where a stream shard was read up to, written in the same transaction as the page that
/// covers it ([`super::PgWriter::write_at`]): the page and its position can never disagree,
/// so a follower killed at any moment re-reads at most the page in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPosition {
    /// The stream.
    pub stream_arn: String,
    /// The shard.
    pub shard_id: String,
    /// The last sequence number the page holds.
    pub sequence: String,
    /// Its `ApproximateCreationDateTime` (PostgreSQL text form), if known.
    pub last_at: Option<String>,
    /// Stream records the page holds.
    pub records: i64,
}

/// The rows of one table: each row's key and version(s) for the first phase of a page
/// ([`fresh_rows`]); for content, their COPY payload and where each row ends in it; for
/// creators and communities, their own columns, which the upserts take as arrays.
#[derive(Debug, Default)]
pub struct KeyedRows {
    pub(super) data: Bytes,
    pub(super) ends: Vec<usize>,
    pub(super) platform: Vec<String>,
    pub(super) external_id: Vec<String>,
    pub(super) at: Vec<Option<String>>,
    pub(super) scan: Vec<Option<String>>,
    /// Content only: the tombstone's version (NULL where the row has none).
    pub(super) tomb_at: Vec<Option<String>>,
    pub(super) tomb_scan: Vec<Option<String>>,
    /// Content only: when the source removed the item, where the tombstone is a removal.
    pub(super) removed_at: Vec<Option<String>>,
    /// Creators and communities: each row's version, for the writer's [`Known`] versions.
    pub(super) versions: Vec<Version>,
    /// Creators: handle, display name, follower count; communities: name (and two empty).
    pub(super) own: [Vec<Option<String>>; 3],
    /// Creators: whether the account is deleted.
    pub(super) deleted: Vec<bool>,
    /// Content only: what a row needs to be COPYed straight into `content` ([`NewRows`]).
    pub(super) new: NewParts,
}

/// Per content row, what [`COPY_NEW_CONTENT`](sql::COPY_NEW_CONTENT) needs beyond the row's
/// staging payload, whose first columns it shares (up to `extra`, ending at `mids[i]`).
#[derive(Debug, Default)]
pub(super) struct NewParts {
    /// Each row's key, hashed ([`InFlight`]).
    pub(super) hashes: Vec<u64>,
    pub(super) mids: Vec<usize>,
    /// Indexes into the page's creators and communities (sorted by key, as folded).
    pub(super) creator: Vec<Option<u32>>,
    pub(super) community: Vec<Option<u32>>,
    /// Indexes into the page's tags (sorted, as folded).
    pub(super) tags: Vec<Vec<u32>>,
    /// Whether the row's tombstone is newer than its live version (or it has none): the
    /// row is inserted deleted, as the two merges would leave it.
    pub(super) tomb_applies: Vec<bool>,
}

impl KeyedRows {
    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.platform.len()
    }

    /// Tells whether there are none.
    pub fn is_empty(&self) -> bool {
        self.platform.is_empty()
    }

    /// The index of the row keyed (`platform`, `external_id`), for rows sorted by key
    /// (creators and communities, as folded).
    pub(super) fn position(&self, platform: &str, external_id: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match (self.platform[mid].as_str(), self.external_id[mid].as_str()).cmp(&(platform, external_id))
            {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The whole COPY payload.
    pub fn all(&self) -> Option<Bytes> {
        (!self.is_empty()).then(|| self.data.clone())
    }

    /// The COPY payload of the rows at `keep` (ascending indexes), or `None` for none.
    pub fn select(&self, keep: &[usize]) -> Option<Bytes> {
        if keep.len() == self.ends.len() {
            return self.all();
        }
        if keep.is_empty() {
            return None;
        }
        let start = |i: usize| if i == 0 { 0 } else { self.ends[i - 1] };
        let mut out = Vec::with_capacity(keep.iter().map(|&i| self.ends[i] - start(i)).sum());
        for &i in keep {
            out.extend_from_slice(&self.data[start(i)..self.ends[i]]);
        }
        Some(Bytes::from(out))
    }
}

/// Builds [`KeyedRows`]: [`Keyed::key`], then the row's fields on [`Keyed::buf`], then
/// [`Keyed::end_row`].
pub(super) struct Keyed {
    pub(super) buf: CopyBuf,
    pub(super) rows: KeyedRows,
}

impl Keyed {
    pub(super) fn with_capacity(n: usize) -> Self {
        let rows = KeyedRows {
            data: Bytes::new(),
            ends: Vec::with_capacity(n),
            platform: Vec::with_capacity(n),
            external_id: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            scan: Vec::with_capacity(n),
            tomb_at: Vec::with_capacity(n),
            tomb_scan: Vec::with_capacity(n),
            removed_at: Vec::new(),
            versions: Vec::new(),
            own: Default::default(),
            deleted: Vec::new(),
            new: NewParts::default(),
        };
        Self { buf: CopyBuf::new(), rows }
    }

    pub(super) fn key(
        &mut self,
        platform: &str,
        external_id: &str,
        live: Option<(String, &str)>,
        tomb: Option<(String, &str)>,
    ) {
        let r = &mut self.rows;
        r.platform.push(platform.to_owned());
        r.external_id.push(external_id.to_owned());
        let (at, scan) = live.map(|(a, s)| (a, s.to_owned())).unzip();
        r.at.push(at);
        r.scan.push(scan);
        let (at, scan) = tomb.map(|(a, s)| (a, s.to_owned())).unzip();
        r.tomb_at.push(at);
        r.tomb_scan.push(scan);
    }

    /// A creator or community row: its key, its one version, its own columns.
    pub(super) fn entity(
        &mut self,
        platform: &str,
        external_id: &str,
        v: &Version,
        own: [Option<&str>; 3],
        deleted: bool,
    ) {
        self.key(platform, external_id, Some((v.at.to_pg(), &v.scan_id)), None);
        self.rows.versions.push(v.clone());
        for (col, x) in self.rows.own.iter_mut().zip(own) {
            col.push(x.map(str::to_owned));
        }
        self.rows.deleted.push(deleted);
    }

    pub(super) fn end_row(&mut self) {
        self.buf.end_row();
        self.rows.ends.push(self.buf.len());
    }

    pub(super) fn finish(self) -> Option<KeyedRows> {
        (!self.rows.is_empty()).then(|| KeyedRows { data: Bytes::from(self.buf.into_bytes()), ..self.rows })
    }
}

/// A folded batch encoded for COPY.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The creators' rows.
    pub creators: Option<KeyedRows>,
    /// The communities' rows.
    pub communities: Option<KeyedRows>,
    /// The content rows.
    pub content: Option<KeyedRows>,
}

/// Encodes a folded batch as the three COPY payloads, with their keys and versions.
pub fn encode(batch: &Batch) -> Encoded {
    let mut cr = Keyed::with_capacity(batch.creators.len());
    for ((platform, ext), v, c) in &batch.creators {
        let own = [c.handle.as_deref(), c.display_name.as_deref(), c.followers.as_deref()];
        cr.entity(platform, ext, v, own, c.deleted);
    }
    let mut cm = Keyed::with_capacity(batch.communities.len());
    for ((platform, ext), v, c) in &batch.communities {
        cm.entity(platform, ext, v, [c.name.as_deref(), None, None], false);
    }
    let mut ct = Keyed::with_capacity(batch.content.len());
    for ((platform, ext), f) in &batch.content {
        let live_at = f.live.as_ref().map(|r| r.updated_at.to_pg());
        let tomb_at = f.tomb.as_ref().map(|v| v.at.to_pg());
        ct.key(
            platform,
            ext,
            live_at.clone().zip(f.live.as_ref().map(|r| r.scan_id.as_str())),
            tomb_at.clone().zip(f.tomb.as_ref().map(|v| v.scan_id.as_str())),
        );
        let b = &mut ct.buf;
        b.text(platform);
        b.text(ext);
        // The columns shared with a new row's COPY, then those only staging has.
        match &f.live {
            Some(r) => {
                b.opt(live_at.as_deref());
                b.text(&r.scan_id);
                b.opt(r.url.as_deref());
                b.opt(r.caption.as_deref());
                for s in &r.stats {
                    b.opt(s.as_deref());
                }
                b.opt(r.posted_at.map(|t| t.to_pg()).as_deref());
                b.opt(r.metadata.as_deref());
                b.opt(r.extra.as_deref());
            }
            None => (0..11).for_each(|_| b.null()),
        }
        let new = &mut ct.rows.new;
        new.mids.push(b.len());
        // One fixed seed: every writer of the process must hash a key alike.
        new.hashes
            .push(std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), (platform, ext)));
        let by_key = |k: &(&str, &str), ext: &str| (k.0, k.1).cmp(&(*platform, ext));
        let creator_ix = |ext: &str| batch.creators.binary_search_by(|(k, ..)| by_key(k, ext)).ok();
        let community_ix = |ext: &str| batch.communities.binary_search_by(|(k, ..)| by_key(k, ext)).ok();
        match &f.live {
            Some(r) => {
                b.opt(r.creator.as_ref().map(|c| c.external_id.as_str()));
                b.opt(r.community.as_ref().map(|c| c.external_id.as_str()));
                b.text_array(&r.tags);
                new.creator
                    .push(r.creator.as_ref().and_then(|c| creator_ix(&c.external_id)).map(|i| i as u32));
                new.community
                    .push(r.community.as_ref().and_then(|c| community_ix(&c.external_id)).map(|i| i as u32));
                new.tags.push(
                    r.tags
                        .iter()
                        .filter_map(|t| batch.tags.binary_search(&t.as_str()).ok().map(|i| i as u32))
                        .collect(),
                );
            }
            None => {
                (0..3).for_each(|_| b.null());
                new.creator.push(None);
                new.community.push(None);
                new.tags.push(Vec::new());
            }
        }
        new.tomb_applies.push(match (&f.tomb, &f.live) {
            (Some(t), Some(l)) => *t > Version::of(l),
            (tomb, _) => tomb.is_some(),
        });
        let removed_at = f.tomb.as_ref().and(f.removed_at).map(|t| t.to_pg());
        match &f.tomb {
            Some(v) => {
                b.opt(tomb_at.as_deref());
                b.text(&v.scan_id);
            }
            None => {
                b.null();
                b.null();
            }
        }
        b.opt(removed_at.as_deref());
        ct.rows.removed_at.push(removed_at);
        ct.end_row();
    }
    Encoded { creators: cr.finish(), communities: cm.finish(), content: ct.finish() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_rows_are_the_kept_rows_bytes_in_order() {
        let mut k = Keyed::with_capacity(3);
        for id in ["a", "bb", "ccc"] {
            k.key("x", id, None, None);
            k.buf.text(id);
            k.end_row();
        }
        let rows = &k.finish().unwrap();
        assert_eq!(rows.select(&[0, 2]).as_deref(), Some(&b"a\nccc\n"[..]));
        assert_eq!(rows.select(&[]), None);
        assert_eq!(rows.select(&[0, 1, 2]).as_deref(), Some(&b"a\nbb\nccc\n"[..]));
    }
}
