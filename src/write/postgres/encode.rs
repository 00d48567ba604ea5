//! A page encoded for COPY: each table's rows with their keys and versions (for the first
//! phase), the content rows' COPY payload (or the records to encode it from once the first
//! phase has said which rows it needs: [`PgPage::payload`]), and what a new row needs to skip
//! the merges.

use crate::parse::time::Timestamp;
use crate::parse::Record;
pub(super) use crate::write::batch::Batch;
use crate::write::batch::Version;
use crate::write::copy::CopyBuf;
use bytes::Bytes;
use std::borrow::Cow;

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
    /// The records the content payload is encoded from, where it was not encoded whole
    /// ([`PgSink::prepare_owned`](super::PgSink)).
    pub(super) pending: Option<Pending>,
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
/// ([`fresh_rows`]); for content, their COPY payload and where each row ends in it (empty
/// where the page keeps its records instead: [`Pending`]); for creators and communities,
/// their own columns, which the upserts take as arrays.
#[derive(Debug, Default)]
pub struct KeyedRows {
    pub(super) data: Bytes,
    pub(super) ends: Vec<usize>,
    pub(super) platform: Vec<String>,
    pub(super) external_id: Vec<String>,
    pub(super) at: Vec<Option<String>>,
    pub(super) scan: Vec<Option<String>>,
    /// Content only: the tombstone's version (NULL where the row has none), as text for the
    /// first phase and as an instant for COPY.
    pub(super) tomb_at: Vec<Option<String>>,
    pub(super) tomb_scan: Vec<Option<String>>,
    pub(super) tomb_instant: Vec<Option<Timestamp>>,
    /// Content only: when the source removed the item, where the tombstone is a removal.
    pub(super) removed_at: Vec<Option<Timestamp>>,
    /// Creators and communities: each row's version, for the writer's [`Known`] versions.
    pub(super) versions: Vec<Version>,
    /// Creators: handle, display name, follower count; communities: name (and two empty).
    pub(super) own: [Vec<Option<String>>; 3],
    /// Creators: whether the account is deleted.
    pub(super) deleted: Vec<bool>,
    /// Content only: what a row needs to be COPYed straight into `content` ([`NewRows`]).
    pub(super) new: NewParts,
    /// How many rows there are: keys, payload rows or both ([`Keyed::finish`]; a staged
    /// page's content has a payload and no keys, a writer's page keys before its payload).
    rows: usize,
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
        self.rows
    }

    /// Tells whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
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
            tomb_instant: Vec::new(),
            removed_at: Vec::new(),
            versions: Vec::new(),
            own: Default::default(),
            deleted: Vec::new(),
            new: NewParts::default(),
            rows: 0,
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

    /// A creator or community row: its key, its one version (also kept for [`Known`]), its
    /// own columns.
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
        let rows = self.rows.platform.len().max(self.rows.ends.len());
        (rows > 0).then(|| KeyedRows { data: Bytes::from(self.buf.into_bytes()), rows, ..self.rows })
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
    encode_with(batch, Mode::Whole).0
}

/// Encodes a folded batch's keys and versions, and what a new row needs besides its payload,
/// but no content payload: for each content row, the index in `records` (the slice the batch
/// was folded from) of the live record whose payload [`PgPage::payload`] encodes once the
/// first phase has said which rows it needs (a re-run needs a tenth of them).
pub(super) fn encode_keys(batch: &Batch, records: &[Record]) -> (Encoded, Vec<Option<u32>>) {
    encode_with(batch, Mode::Keys(records))
}

/// Encodes a folded batch for a staged load's page ([`land::stage`](super::land)): the
/// content payload alone, and the creators' and communities' columns. A staged page asks
/// nothing of the store and merges nothing, so none of the content keys, versions, hashes
/// and indexes the first phase and the new rows' COPY take are built: they were 14 % of
/// the client's CPU while staging (a String or more per column per row, binary searches);
/// measured on 1M records, staging took 6.5-6.7 s against 6.9-7.3 s.
pub(super) fn encode_staged(batch: &Batch) -> Encoded {
    encode_with(batch, Mode::Staged).0
}

/// What [`encode_with`] builds.
#[derive(Clone, Copy)]
enum Mode<'r> {
    /// Everything ([`encode`]).
    Whole,
    /// No content payload ([`encode_keys`]), the records it is encoded from later.
    Keys(&'r [Record]),
    /// The payloads only ([`encode_staged`]).
    Staged,
}

fn encode_with(batch: &Batch, mode: Mode<'_>) -> (Encoded, Vec<Option<u32>>) {
    let staged = matches!(mode, Mode::Staged);
    // A staged page's creators and communities are COPYed into their staging tables as
    // they are (measured on a 1M first load: 2.2 s and 1.4 s of statement time as arrays
    // unnested into them, their instants and numbers parsed from text); a writer's take
    // part in its first phase and upserts as arrays.
    let mut cr = Keyed::with_capacity(batch.creators.len());
    for ((platform, ext), v, c) in &batch.creators {
        if staged {
            let b = &mut cr.buf;
            b.begin_row(8);
            b.text(platform);
            b.text(ext);
            b.instant(Some(v.at));
            b.text(&v.scan_id);
            b.opt(c.handle.as_deref());
            b.opt(c.display_name.as_deref());
            b.numeric(c.followers.as_deref());
            b.bool(c.deleted);
            cr.end_row();
        } else {
            let own = [c.handle.as_deref(), c.display_name.as_deref(), c.followers.as_deref()];
            cr.entity(platform, ext, v, own, c.deleted);
        }
    }
    let mut cm = Keyed::with_capacity(batch.communities.len());
    for ((platform, ext), v, c) in &batch.communities {
        if staged {
            let b = &mut cm.buf;
            b.begin_row(5);
            b.text(platform);
            b.text(ext);
            b.instant(Some(v.at));
            b.text(&v.scan_id);
            b.opt(c.name.as_deref());
            cm.end_row();
        } else {
            cm.entity(platform, ext, v, [c.name.as_deref(), None, None], false);
        }
    }
    // Where each creator, community and tag is in the page (sorted, as folded), for the new
    // rows' references: hashed once per page rather than searched per row (the binary
    // searches' comparisons were 3 % of a re-run's client CPU).
    let (creator_ix, community_ix, tag_ix) = if staged {
        Default::default()
    } else {
        (
            index(batch.creators.iter().map(|(k, ..)| *k)),
            index(batch.communities.iter().map(|(k, ..)| *k)),
            index(batch.tags.iter().copied()),
        )
    };
    let mut ct = Keyed::with_capacity(if staged { 0 } else { batch.content.len() });
    let mut live_ix = Vec::with_capacity(if let Mode::Keys(_) = mode { batch.content.len() } else { 0 });
    // A staged page's metadata goes to `bulk_content`'s text columns (cast to `jsonb` by the
    // fold, for its winners only); every other payload's to `jsonb` columns.
    let meta = if staged { Meta::Text } else { Meta::Jsonb };
    for ((platform, ext), f) in &batch.content {
        let removed_at = f.tomb.as_ref().and(f.removed_at);
        let encode_payload = |ct: &mut Keyed| {
            let mid = payload_row(
                &mut ct.buf,
                PayloadRow {
                    platform,
                    external_id: ext,
                    live: f.live,
                    tomb: f.tomb.as_ref().map(|v| (v.at, v.scan_id.as_str())),
                    removed_at,
                },
                meta,
            );
            ct.rows.new.mids.push(mid);
            ct.end_row();
        };
        if staged {
            encode_payload(&mut ct);
            continue;
        }
        ct.key(
            platform,
            ext,
            f.live.as_ref().map(|r| (r.updated_at.to_pg(), r.scan_id.as_str())),
            f.tomb.as_ref().map(|v| (v.at.to_pg(), v.scan_id.as_str())),
        );
        ct.rows.tomb_instant.push(f.tomb.as_ref().map(|v| v.at));
        match mode {
            Mode::Keys(records) => live_ix.push(f.live.map(|r| index_in(records, r))),
            _ => encode_payload(&mut ct),
        }
        let new = &mut ct.rows.new;
        // One fixed seed: every writer of the process must hash a key alike.
        new.hashes
            .push(std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), (platform, ext)));
        match &f.live {
            Some(r) => {
                let of = |at: &Index<(&str, &str)>, ext: &str| at.get(&(*platform, ext)).copied();
                new.creator.push(r.creator.as_ref().and_then(|c| of(&creator_ix, &c.external_id)));
                new.community.push(r.community.as_ref().and_then(|c| of(&community_ix, &c.external_id)));
                new.tags.push(r.tags.iter().filter_map(|t| tag_ix.get(t.as_str()).copied()).collect());
            }
            None => {
                new.creator.push(None);
                new.community.push(None);
                new.tags.push(Vec::new());
            }
        }
        new.tomb_applies.push(match (&f.tomb, &f.live) {
            (Some(t), Some(l)) => *t > Version::of(l),
            (tomb, _) => tomb.is_some(),
        });
        ct.rows.removed_at.push(removed_at);
    }
    let encoded = Encoded { creators: cr.finish(), communities: cm.finish(), content: ct.finish() };
    (encoded, live_ix)
}

/// Positions by key, hashed with foldhash.
type Index<K> = std::collections::HashMap<K, u32, foldhash::fast::RandomState>;

/// The position of each of `keys`.
fn index<K: std::hash::Hash + Eq>(keys: impl ExactSizeIterator<Item = K>) -> Index<K> {
    let mut at = Index::with_capacity_and_hasher(keys.len(), Default::default());
    at.extend(keys.zip(0..));
    at
}

/// The index of `r` in `records`, which holds it (the batch borrows its records from there).
fn index_in(records: &[Record], r: &Record) -> u32 {
    let offset = (r as *const Record as usize) - (records.as_ptr() as usize);
    let i = offset / std::mem::size_of::<Record>();
    debug_assert!(std::ptr::eq(&records[i], r), "the record is not one of the page's");
    i as u32
}

/// What one content row's staging payload is made of.
struct PayloadRow<'a> {
    platform: &'a str,
    external_id: &'a str,
    /// The live record.
    live: Option<&'a Record>,
    /// The tombstone's instant and scan id.
    tomb: Option<(Timestamp, &'a str)>,
    removed_at: Option<Timestamp>,
}

/// How a payload's `metadata` and `extra` are typed: as its table's columns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Meta {
    /// `jsonb`: the writer's staging table and `content` (a new row's COPY shares the
    /// fields).
    Jsonb,
    /// `text`: a staged load's `bulk_content`, cast by the fold for the winners only.
    Text,
}

/// The fields of a row of [`COPY_CONTENT`](crate::write::sql::COPY_CONTENT).
const PAYLOAD_FIELDS: u16 = 19;

/// Encodes one content row for [`COPY_CONTENT`](crate::write::sql::COPY_CONTENT) (the caller
/// ends the row); returns where its part shared with a new row's COPY ends (after `extra`).
/// That part starts after the row's field count ([`Payload::head`]).
fn payload_row(b: &mut CopyBuf, row: PayloadRow<'_>, meta: Meta) -> usize {
    b.begin_row(PAYLOAD_FIELDS);
    b.text(row.platform);
    b.text(row.external_id);
    // The columns shared with a new row's COPY, then those only staging has.
    match row.live {
        Some(r) => {
            b.instant(Some(r.updated_at));
            b.text(&r.scan_id);
            b.opt(r.url.as_deref());
            b.opt(r.caption.as_deref());
            for s in &r.stats {
                b.numeric(s.as_deref());
            }
            b.instant(r.posted_at);
            match meta {
                Meta::Jsonb => {
                    b.jsonb(r.metadata.as_deref());
                    b.jsonb(r.extra.as_deref());
                }
                Meta::Text => {
                    b.opt(r.metadata.as_deref());
                    b.opt(r.extra.as_deref());
                }
            }
        }
        None => (0..11).for_each(|_| b.null()),
    }
    let mid = b.len();
    match row.live {
        Some(r) => {
            b.opt(r.creator.as_ref().map(|c| c.external_id.as_str()));
            b.opt(r.community.as_ref().map(|c| c.external_id.as_str()));
            b.text_array(&r.tags);
        }
        None => (0..3).for_each(|_| b.null()),
    }
    b.instant(row.tomb.map(|(at, _)| at));
    b.opt(row.tomb.map(|(_, scan)| scan));
    b.instant(row.removed_at);
    mid
}

/// The records a page was folded from, kept until its writer knows which content rows it
/// needs the payload of ([`PgPage::payload`]).
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) records: Vec<Record>,
    /// Per content row, the index of its live record in `records`.
    pub(super) live: Vec<Option<u32>>,
}

/// The COPY payload of a page's content rows, or of some of them, addressed by the page's
/// index of each row: row `j` of the payload ends at `ends[j]`, its part shared with a new
/// row's COPY at `mids[j]`.
#[derive(Debug)]
pub(super) struct Payload<'a> {
    data: Bytes,
    ends: Cow<'a, [usize]>,
    mids: Cow<'a, [usize]>,
    /// The page's index of each row held (ascending); `None`: every row, in order.
    rows: Option<Vec<usize>>,
}

impl<'a> Payload<'a> {
    /// Every row of `content`, as encoded when the page was prepared.
    pub(super) fn whole(content: &'a KeyedRows) -> Self {
        Payload {
            data: content.data.clone(),
            ends: Cow::Borrowed(&content.ends),
            mids: Cow::Borrowed(&content.new.mids),
            rows: None,
        }
    }

    /// Where the payload holds row `i`, and where that row starts.
    fn locate(&self, i: usize) -> (usize, usize) {
        let j = match &self.rows {
            None => i,
            Some(rows) => {
                rows.binary_search(&i).unwrap_or_else(|_| panic!("content row {i} was not encoded"))
            }
        };
        (j, if j == 0 { 0 } else { self.ends[j - 1] })
    }

    /// Row `i`'s fields up to the end of its part shared with a new row's COPY (without the
    /// row's field count).
    pub(super) fn head(&self, i: usize) -> &[u8] {
        let (j, start) = self.locate(i);
        &self.data[start + 2..self.mids[j]]
    }

    /// The COPY payload of the rows at `keep` (ascending page indexes), or `None` for none.
    pub(super) fn select(&self, keep: &[usize]) -> Option<Bytes> {
        if keep.is_empty() {
            return None;
        }
        if keep.len() == self.ends.len() {
            return Some(self.data.clone());
        }
        let mut out = Vec::new();
        for &i in keep {
            let (j, start) = self.locate(i);
            out.extend_from_slice(&self.data[start..self.ends[j]]);
        }
        Some(Bytes::from(out))
    }
}

impl PgPage {
    /// The content payload of the rows at `rows` (ascending indexes): the page's own if it
    /// was encoded whole, else those rows encoded now.
    pub(super) fn payload(&self, rows: &[usize]) -> Payload<'_> {
        let Some(content) = &self.content else {
            return Payload {
                data: Bytes::new(),
                ends: Cow::Borrowed(&[]),
                mids: Cow::Borrowed(&[]),
                rows: None,
            };
        };
        let Some(pending) = &self.pending else { return Payload::whole(content) };
        let mut buf = CopyBuf::new();
        let (mut ends, mut mids) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
        for &i in rows {
            let c = content;
            let mid = payload_row(
                &mut buf,
                PayloadRow {
                    platform: &c.platform[i],
                    external_id: &c.external_id[i],
                    live: pending.live[i].map(|r| &pending.records[r as usize]),
                    tomb: c.tomb_instant[i].zip(c.tomb_scan[i].as_deref()),
                    removed_at: c.removed_at[i],
                },
                Meta::Jsonb,
            );
            buf.end_row();
            mids.push(mid);
            ends.push(buf.len());
        }
        Payload {
            data: Bytes::from(buf.into_bytes()),
            ends: Cow::Owned(ends),
            mids: Cow::Owned(mids),
            rows: Some(rows.to_vec()),
        }
    }

    /// The content payload of every row.
    pub(super) fn whole_payload(&self) -> Option<Bytes> {
        let n = self.content.as_ref().map_or(0, KeyedRows::len);
        let all: Vec<usize> = (0..n).collect();
        self.payload(&all).select(&all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::Sink;

    /// Every record of the sample export (dirty: duplicates, tombstones, odd text), and a
    /// removal of one of them, as one page.
    fn sample_page() -> crate::parse::ParsedPage {
        use crate::attr::{Attr, Item};
        use std::io::BufRead;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sample/export/data");
        let mut raw = Vec::new();
        for file in ["part-00.json.gz", "part-01.json.gz"] {
            let f = std::fs::File::open(format!("{dir}/{file}")).expect("the sample export");
            for line in std::io::BufReader::new(flate2::read::GzDecoder::new(f)).split(b'\n') {
                raw.push(crate::parse::export::read_export_line(line.unwrap()));
            }
        }
        let old: Item = [
            ("scanId", "scan-9"),
            ("updatedAt", "2030-01-01T00:00:00Z"),
            ("platform", "x"),
            ("postId", "gone"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Attr::S(v.to_string())))
        .collect();
        let at = crate::time::Timestamp::parse("2030-01-02T00:00:00Z");
        raw.push(crate::parse::RawRecord::Removal {
            item: old,
            removal: crate::parse::Removal { at, by_ttl: false },
        });
        crate::parse::parse_page("", raw, &crate::parse::Filter::default())
    }

    #[test]
    fn a_page_whose_payload_is_left_to_its_writer_encodes_any_of_its_rows_as_a_page_encoded_whole() {
        let sink = super::super::PgSink::new("postgres://localhost/x", "scansync", None).unwrap();
        let page = sample_page();
        let whole = PgPage::of_batch(&Batch::fold(&page.records));
        let kept = sink.prepare(&page);
        let left = sink.prepare_owned(page);
        assert!(whole.pending.is_none() && left.pending.is_some() && kept.pending.is_some());
        assert_eq!(
            kept.whole_payload(),
            whole.whole_payload(),
            "a page the caller keeps keeps its records too"
        );
        let (w, l) = (whole.content.as_ref().unwrap(), left.content.as_ref().unwrap());
        assert!(l.data.is_empty(), "nothing of the payload is encoded before the writer asks");
        assert_eq!(
            (&w.platform, &w.external_id, &w.at, &w.tomb_at),
            (&l.platform, &l.external_id, &l.at, &l.tomb_at)
        );
        assert!(
            w.tomb_at.iter().any(Option::is_some) && w.removed_at.iter().any(Option::is_some),
            "tombstones and a removal"
        );
        let all: Vec<usize> = (0..w.len()).collect();
        assert_eq!(left.whole_payload(), whole.whole_payload());
        let some: Vec<usize> = (0..w.len()).filter(|i| i % 3 != 1).collect();
        let (w, l) = (whole.payload(&all), left.payload(&some));
        let kept: Vec<usize> = some.iter().copied().filter(|i| i % 2 == 0).collect();
        assert_eq!(l.select(&kept), w.select(&kept));
        assert_eq!(l.select(&some), w.select(&some));
        for &i in &some {
            assert_eq!(l.head(i), w.head(i), "row {i}");
        }
    }

    #[test]
    fn a_staged_page_carries_the_payload_and_entities_of_a_page_encoded_whole_without_content_keys() {
        let sink = super::super::PgSink::new("postgres://localhost/x", "scansync", None).unwrap();
        let page = sample_page();
        let whole = sink.prepare(&page);
        let staged = sink.clone().staged(Some(1)).prepare_owned(page);
        assert!(staged.pending.is_none());
        let (w, s) = (whole.content.as_ref().unwrap(), staged.content.as_ref().unwrap());
        assert_eq!(s.len(), w.len());
        assert!(s.platform.is_empty() && s.new.hashes.is_empty(), "no content keys are built");
        // Field for field the same rows, but `metadata` and `extra` (fields 11 and 12) typed
        // `text` for `bulk_content`: `jsonb`'s binary form is a version byte and the text.
        let (s, w) = (rows(&staged.whole_payload().unwrap()), rows(&whole.whole_payload().unwrap()));
        assert_eq!(s.len(), w.len());
        for (s, w) in s.iter().zip(&w) {
            let as_jsonb = |f: &Option<Vec<u8>>| f.as_ref().map(|t| [&[1u8][..], t].concat());
            let s: Vec<_> = s
                .iter()
                .enumerate()
                .map(|(i, f)| if i == 11 || i == 12 { as_jsonb(f) } else { f.clone() })
                .collect();
            assert_eq!(&s, w);
        }
        // Creators and communities as COPY rows of their staging tables, one per key of the
        // page, instead of arrays: every row starts with its field count.
        for (s, w, fields) in
            [(&staged.creators, &whole.creators, 8u16), (&staged.communities, &whole.communities, 5)]
        {
            let (s, w) = (s.as_ref().unwrap(), w.as_ref().unwrap());
            assert!(s.platform.is_empty() && !s.data.is_empty());
            assert_eq!(s.len(), w.len());
            let starts = std::iter::once(0).chain(s.ends[..s.len() - 1].iter().copied());
            for start in starts {
                assert_eq!(s.data[start..start + 2], fields.to_be_bytes());
            }
        }
        assert_eq!(staged.tags, whole.tags);
        assert_eq!(staged.q_raw, whole.q_raw);
    }

    /// A binary COPY payload's rows, field by field (`None`: NULL).
    fn rows(mut b: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::new();
        let take = |b: &mut &[u8], n: usize| {
            let (head, rest) = b.split_at(n);
            *b = rest;
            head.to_vec()
        };
        while !b.is_empty() {
            let n = u16::from_be_bytes(take(&mut b, 2).try_into().unwrap());
            let row = (0..n)
                .map(|_| {
                    let len = i32::from_be_bytes(take(&mut b, 4).try_into().unwrap());
                    (len >= 0).then(|| take(&mut b, len as usize))
                })
                .collect();
            out.push(row);
        }
        out
    }

    #[test]
    fn selected_rows_are_the_kept_rows_bytes_in_order() {
        let mut k = Keyed::with_capacity(3);
        for id in ["a", "bb", "ccc"] {
            k.key("x", id, None, None);
            k.buf.begin_row(1);
            k.buf.text(id);
            k.rows.new.mids.push(k.buf.len());
            k.end_row();
        }
        let rows = &k.finish().unwrap();
        let whole = Payload::whole(rows);
        let (a, bb, ccc) =
            (&b"\0\x01\0\0\0\x01a"[..], &b"\0\x01\0\0\0\x02bb"[..], &b"\0\x01\0\0\0\x03ccc"[..]);
        assert_eq!(whole.select(&[0, 2]).as_deref(), Some(&[a, ccc].concat()[..]));
        assert_eq!(whole.select(&[]), None);
        assert_eq!(whole.select(&[0, 1, 2]).as_deref(), Some(&[a, bb, ccc].concat()[..]));
        assert_eq!(whole.head(1), &bb[2..], "a row's head starts after its field count");
    }
}
