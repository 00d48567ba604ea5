//! The verify as a [`Sink`]: the pipeline reads, parses and folds the source exactly as
//! for a sync (same fetchers, same back-pressure, same broken-input rule, same stop), and
//! each "writer" compares its page with the store instead of merging it, on a read-only
//! connection, into the shared [`Tally`].

use super::tally::{Table, Tally};
use crate::db;
use crate::error::Result;
use crate::parse::{ParsedPage, Record};
use crate::write::batch::{Batch, Version};
use crate::write::postgres::{compare, prepare_reader, PgPage, Verdict};
use crate::write::{PageWriter, Sink, WriteStats};
use std::sync::{Arc, Mutex};
use tokio_postgres::Client;

/// A key's hash: one fixed seed, so every page of the run hashes a key alike.
pub fn key_hash(platform: &str, external_id: &str) -> u64 {
    std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), (platform, external_id))
}

/// A page ready to compare: the writer's own encoding, and per row what the tally needs.
pub struct VerifyPage {
    pg: PgPage,
    /// Per content row (in the page's key order): key hash and the instant (µs) of its
    /// newest version.
    content: Vec<(u64, i64)>,
    /// Per creator and community row: key hash.
    entities: [Vec<u64>; 2],
    /// With a repair: the page's records, and per content row, creator and community the
    /// indexes of the records that carry it.
    records: Option<Carried>,
}

struct Carried {
    records: Vec<Record>,
    content: Vec<Vec<usize>>,
    entities: [Vec<Option<usize>>; 2],
}

/// Compares pages with the tables of one schema.
#[derive(Clone)]
pub struct VerifySink {
    url: String,
    schema: String,
    /// Keep the records of divergent keys (a repair).
    keep_records: bool,
    /// What was found, shared by every writer.
    pub tally: Arc<Mutex<Tally>>,
}

impl VerifySink {
    /// A sink comparing with `schema` at `url`; `keep_records` for a repair.
    pub fn new(url: &str, schema: &str, keep_records: bool) -> Self {
        Self { url: url.into(), schema: schema.into(), keep_records, tally: Arc::default() }
    }
}

impl Sink for VerifySink {
    type Prepared = VerifyPage;
    type Writer = VerifyWriter;

    fn prepare(&self, page: &ParsedPage) -> VerifyPage {
        let batch = Batch::fold(&page.records);
        let content = batch
            .content
            .iter()
            .map(|((platform, ext), f)| {
                // The newest version of all: the tombstone where the fold kept one (it keeps
                // one only while newer than the live record).
                let at = match (&f.tomb, f.live) {
                    (Some(t), _) => t.at,
                    (None, Some(l)) => l.updated_at,
                    (None, None) => unreachable!("a folded key has a live record or a tombstone"),
                };
                (key_hash(platform, ext), at.0)
            })
            .collect();
        let entities = [
            batch.creators.iter().map(|((p, e), ..)| key_hash(p, e)).collect(),
            batch.communities.iter().map(|((p, e), ..)| key_hash(p, e)).collect(),
        ];
        let records = self.keep_records.then(|| carriers(&batch, &page.records));
        VerifyPage { pg: PgPage::of_batch(&batch), content, entities, records }
    }

    async fn writer(&self) -> Result<VerifyWriter> {
        let mut w = VerifyWriter { sink: self.clone(), client: None };
        w.ensure_connected().await?;
        Ok(w)
    }
}

/// For a repair: the records of the page, and for each folded row which of them carry it
/// (every record of a content key; for a creator or community, the live record its
/// version came from).
fn carriers(batch: &Batch, records: &[Record]) -> Carried {
    let mut by_key: std::collections::HashMap<(&str, &str), Vec<usize>> = Default::default();
    for (i, r) in records.iter().enumerate() {
        by_key.entry((&r.platform, &r.external_id)).or_default().push(i);
    }
    let content = batch.content.iter().map(|(k, _)| by_key.get(k).cloned().unwrap_or_default()).collect();
    let carrier = |platform: &str, v: &Version, of: fn(&Record) -> Option<&str>, ext: &str| {
        records
            .iter()
            .position(|r| !r.deleted && r.platform == platform && of(r) == Some(ext) && Version::of(r) == *v)
    };
    let entities = [
        batch.creators.iter().map(|((p, e), v, _)| carrier(p, v, creator_of, e)).collect(),
        batch.communities.iter().map(|((p, e), v, _)| carrier(p, v, community_of, e)).collect(),
    ];
    Carried { records: records.to_vec(), content, entities }
}

fn creator_of(r: &Record) -> Option<&str> {
    r.creator.as_ref().map(|c| c.external_id.as_str())
}

fn community_of(r: &Record) -> Option<&str> {
    r.community.as_ref().map(|c| c.external_id.as_str())
}

/// One comparing connection, read-only.
pub struct VerifyWriter {
    sink: VerifySink,
    client: Option<Client>,
}

impl VerifyWriter {
    async fn ensure_connected(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let client = db::connect(&self.sink.url).await?;
            prepare_reader(&client, &self.sink.schema).await?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

impl PageWriter for VerifyWriter {
    type Prepared = VerifyPage;

    async fn write(&mut self, page: &VerifyPage) -> Result<WriteStats> {
        let client = self.ensure_connected().await?;
        let found = compare(client, &page.pg).await?;
        let [n_content, ..] = page.pg.rows();
        let mut verdicts = vec![Verdict::Same; n_content];
        for (i, v) in &found.content {
            verdicts[*i] = *v;
        }
        let mut tally = self.sink.tally.lock().expect("tally poisoned");
        let take = |ix: &[usize]| {
            page.records.as_ref().map(|c| ix.iter().map(|&i| c.records[i].clone()).collect::<Vec<_>>())
        };
        for (i, (&(hash, at), verdict)) in page.content.iter().zip(verdicts).enumerate() {
            let name = || {
                let (p, e) = page.pg.content_key(i);
                format!("{p}/{e}")
            };
            let records = || take(page.records.as_ref().map_or(&[][..], |c| &c.content[i]));
            tally.content(hash, at, verdict, name, records);
        }
        for (t, (table, list)) in
            [(Table::Creators, &found.creators), (Table::Communities, &found.communities)]
                .into_iter()
                .enumerate()
        {
            let mut verdicts = vec![Verdict::Same; page.entities[t].len()];
            for (i, v) in list {
                verdicts[*i] = *v;
            }
            for (i, (&hash, verdict)) in page.entities[t].iter().zip(verdicts).enumerate() {
                let name = || {
                    let (p, e) = page.pg.entity_key(t == 1, i);
                    format!("{p}/{e}")
                };
                let carrier: Vec<usize> =
                    page.records.as_ref().and_then(|c| c.entities[t][i]).into_iter().collect();
                let records = || take(&carrier);
                tally.entity(table, hash, verdict, name, records);
            }
        }
        Ok(WriteStats::default())
    }
}
