//! The first phase of a page: which of its rows may change the store, asked with only their
//! keys and versions, and the ids the page's new rows need.

use super::encode::{KeyedRows, Payload, PgPage};
use super::known::{Entity, Known};
use crate::error::Result;
use crate::time::Timestamp;
use crate::write::batch::Version;
use crate::write::sql::{self, FreshTable};
use crate::write::WriteStats;
use bytes::Bytes;
use std::sync::{Mutex, MutexGuard};
use tokio_postgres::Client;

/// What of a page may change the store: its content rows newer than the store's (or not in
/// it), the creators and communities newer than the store's, and the tags it lacks; and the
/// ids its content rows need.
///
/// Content rows the store does not hold at all (`absent`) are COPYed in ([`new_rows`]), rows
/// it holds (`updates`) updated by their id ([`updates`]): neither is staged or upserted.
/// Only absent rows the page must merge after all (another writer of the process holds the
/// key, or inserted it meanwhile) are: `content` holds their payload, built by
/// [`Fresh::merge_absent`].
#[derive(Debug, Default)]
pub(super) struct Fresh {
    /// Indexes of the creators and communities newer than the store's (ascending).
    pub(super) creators: Vec<usize>,
    pub(super) communities: Vec<usize>,
    pub(super) content: Option<Bytes>,
    pub(super) tags: Vec<String>,
    /// Indexes of the content rows absent from the store (ascending).
    pub(super) absent: Vec<usize>,
    /// Indexes of the content rows the store holds, kept (ascending).
    pub(super) updates: Vec<usize>,
    /// Indexes of every content row kept, absent or not (ascending).
    pub(super) kept: Vec<usize>,
    /// The ids of the page's creators, communities and tags that the first phase found and
    /// [`write_entities`] inserted or updated.
    pub(super) ids: PageIds,
    /// Each kept content row's id (by the page's index; `None` elsewhere), as the first
    /// phase answered: the store's for a row it holds, a fresh one for an absent row (a row
    /// merged after all leaves it unused).
    pub(super) content_ids: Vec<Option<i64>>,
}

/// Ids of a page's creators, communities and tags, by their index in the page; `None`
/// where not known yet.
#[derive(Debug, Default, Clone)]
pub(super) struct PageIds {
    pub(super) creators: Vec<Option<i64>>,
    pub(super) communities: Vec<Option<i64>>,
    pub(super) tags: Vec<Option<i64>>,
}

impl Fresh {
    /// Sends the absent content rows for which `merge` holds through the merges instead,
    /// and builds their staging payload from `payload` (which holds at least the rows kept).
    pub(super) fn merge_absent(&mut self, payload: &Payload<'_>, merge: impl Fn(usize) -> bool) {
        self.absent.retain(|&i| !merge(i));
        let (absent, updates) = (&self.absent, &self.updates);
        let merged: Vec<usize> = self
            .kept
            .iter()
            .copied()
            .filter(|i| absent.binary_search(i).is_err() && updates.binary_search(i).is_err())
            .collect();
        self.content = payload.select(&merged);
    }
}

/// The first phase of a page: which of its rows may change the store. Only keys and
/// versions travel (as arrays, in one round trip), and only the rows it returns are copied
/// and merged: a re-run that changes a tenth of the rows copies a tenth of them, and a
/// page whose creators, communities and tags all exist skips their transaction.
///
/// It runs outside the page's transactions, and that is safe because staleness is stable:
/// a row is dropped only if the store already holds a version at least as new (for
/// content: a live version at least as new as the row's, and a tombstone at least as new
/// as its tombstone or a live version newer than it), and the merges only ever move
/// versions forward; a tag, once in the dictionary, stays. A row found stale stays stale
/// whatever commits meanwhile; a row kept is checked again by the merges as before.
pub(super) async fn fresh_rows(
    client: &Client,
    page: &PgPage,
    known: &Mutex<Known>,
    sequence: &str,
    ask_entities: bool,
    stats: &mut WriteStats,
) -> Result<Fresh> {
    let none = KeyedRows::default();
    let [cr, cm, ct] =
        [&page.creators, &page.communities, &page.content].map(|r| r.as_ref().unwrap_or(&none));
    // Creators and communities the writers do not know to be stale: asked about, or kept
    // without asking (`ask_entities` false: [`PgSink::bulk`]). Every content row is asked
    // about, and tags not known.
    let (unknown_cr, unknown_cm, ask_tags) = {
        let known = lock(known);
        let unknown = |e, rows: &KeyedRows| (0..rows.len()).filter(|&i| !known.stale(e, rows, i)).collect();
        let tags: Vec<usize> = (0..page.tags.len()).filter(|&i| !known.tag_exists(&page.tags[i])).collect();
        (unknown(Entity::Creators, cr), unknown(Entity::Communities, cm), tags)
    };
    let ((ask_cr, kept_cr), (ask_cm, kept_cm)) = if ask_entities {
        ((unknown_cr, Vec::new()), (unknown_cm, Vec::new()))
    } else {
        ((Vec::new(), unknown_cr), (Vec::new(), unknown_cm))
    };
    // Ids by the page's index, as the first phase and the entity inserts learn them.
    let mut ids = PageIds {
        creators: vec![None; cr.len()],
        communities: vec![None; cm.len()],
        tags: vec![None; page.tags.len()],
    };
    if ct.is_empty() && ask_cr.is_empty() && ask_cm.is_empty() && ask_tags.is_empty() {
        return Ok(Fresh { creators: kept_cr, communities: kept_cm, ids, ..Fresh::default() });
    }
    let found = client
        .query(
            sql::FRESH_ROWS.as_str(),
            &[
                &ct.platform,
                &ct.external_id,
                &ct.at,
                &ct.scan,
                &ct.tomb_at,
                &ct.tomb_scan,
                &pick(&cr.platform, &ask_cr),
                &pick(&cr.external_id, &ask_cr),
                &pick(&cr.at, &ask_cr),
                &pick(&cr.scan, &ask_cr),
                &pick(&cm.platform, &ask_cm),
                &pick(&cm.external_id, &ask_cm),
                &pick(&cm.at, &ask_cm),
                &pick(&cm.scan, &ask_cm),
                &pick(&page.tags, &ask_tags),
                &sequence,
            ],
        )
        .await?;
    // Indexes into what was asked, mapped back to the page's rows, by table (absent content
    // is kept too).
    let mut keep: [Vec<usize>; 5] = Default::default();
    // The versions the store holds of the creators and communities asked about, by the
    // page's index: learned whether the page writes them or not.
    let mut held: [Vec<(usize, Version)>; 2] = Default::default();
    let mut content_ids = vec![None; ct.len()];
    for row in &found {
        let tag = row.get::<_, i32>(0);
        let table = FreshTable::of(tag)
            .ok_or_else(|| crate::Error::internal(format!("the first phase answered for table {tag}")))?;
        let (i, id, changes) =
            (row.get::<_, i64>(1) as usize, row.get::<_, Option<i64>>(2), row.get::<_, bool>(3));
        let i = match table {
            FreshTable::Creators => ask_cr[i],
            FreshTable::Communities => ask_cm[i],
            FreshTable::Tags => ask_tags[i],
            FreshTable::Content | FreshTable::Absent => i,
        };
        if let (Some(at), Some(scan_id)) =
            (row.get::<_, Option<std::time::SystemTime>>(4), row.get::<_, Option<String>>(5))
        {
            let at = Timestamp(match at.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_micros() as i64,
                Err(e) => -(e.duration().as_micros() as i64),
            });
            let entity = usize::from(table == FreshTable::Communities);
            held[entity].push((i, Version { at, scan_id }));
        }
        match table {
            FreshTable::Creators => ids.creators[i] = id,
            FreshTable::Communities => ids.communities[i] = id,
            FreshTable::Tags => ids.tags[i] = id,
            FreshTable::Absent | FreshTable::Content => content_ids[i] = id,
        }
        if changes {
            keep[table as usize].push(i);
        }
    }
    {
        let mut known = lock(known);
        known.learn_held(Entity::Creators, cr, &held[0]);
        known.learn_held(Entity::Communities, cm, &held[1]);
    }
    keep[FreshTable::Creators as usize].extend(kept_cr);
    keep[FreshTable::Communities as usize].extend(kept_cm);
    keep.iter_mut().for_each(|k| k.sort_unstable());
    let [present, creators, communities, tags, absent] = keep;
    stats.unchanged = (ct.len() - present.len() - absent.len()) as u64;
    let mut kept: Vec<usize> = present.iter().chain(&absent).copied().collect();
    kept.sort_unstable();
    Ok(Fresh {
        content: None,
        creators,
        communities,
        tags: tags.iter().map(|&i| page.tags[i].clone()).collect(),
        absent,
        updates: present,
        kept,
        ids,
        content_ids,
    })
}

/// The values of `v` at the indexes `at`, borrowed, as one query parameter (an array: the
/// strings are not cloned to be sent).
pub(super) fn pick<'a, T>(v: &'a [T], at: &[usize]) -> Vec<&'a T> {
    at.iter().map(|&i| &v[i]).collect()
}

/// The writers' shared [`Known`], locked between statements (a writer that panicked while
/// holding it left nothing half-learned that matters: every entry is a fact on its own).
pub(super) fn lock(known: &Mutex<Known>) -> MutexGuard<'_, Known> {
    known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
