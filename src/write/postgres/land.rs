//! What lands a page: the short entity transaction, then in the page's transaction the new
//! rows COPYed straight in, the rest merged, and the quarantine.

use super::encode::{KeyedRows, Payload, PgPage};
use super::fresh::{lock, pick, Fresh, PageIds};
use super::known::{Entity, Known};
use crate::error::{Error, Kind, Result};
use crate::write::copy::{framed, CopyBuf};
use crate::write::sql::{self, EntityTable};
use crate::write::WriteStats;
use bytes::Bytes;
use futures_util::SinkExt;
use std::sync::Mutex;
use tokio_postgres::Client;

/// New and newer creators and communities, and new tags, in a short transaction of their
/// own, before the page's; the ids of the rows it writes go into `fresh.ids`.
///
/// In the page transaction, an insert of a key another writer has just inserted waits for
/// that writer's whole page to commit, and on a first load every page brings new creators
/// its neighbours also bring: the writers queued behind each other (measured: 365 ms of a
/// page with three writers). Here the row locks on hot creators are held only until this
/// short commit, and the page's transaction writes content alone. This is safe under the
/// merge rules: the rows carry the newest version the page has, newest-wins keeps them
/// monotonic, and if the page then fails they are facts a retry writes again while the
/// checkpoint does not move. Both writers take the rows in key order, so they cannot
/// deadlock on them.
pub(super) async fn write_entities(
    client: &mut Client,
    page: &PgPage,
    fresh: &mut Fresh,
    stats: &mut WriteStats,
) -> Result<()> {
    if fresh.creators.is_empty() && fresh.communities.is_empty() && fresh.tags.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await?;
    for (stmt, kept, rows, ids, count) in [
        (sql::UPSERT_CREATORS, &fresh.creators, &page.creators, &mut fresh.ids.creators, &mut stats.creators),
        (
            sql::UPSERT_COMMUNITIES,
            &fresh.communities,
            &page.communities,
            &mut fresh.ids.communities,
            &mut stats.communities,
        ),
    ] {
        let Some(rows) = rows.as_ref().filter(|_| !kept.is_empty()) else { continue };
        let written = tx
            .query(
                stmt,
                &[
                    &pick(&rows.platform, kept),
                    &pick(&rows.external_id, kept),
                    &pick(&rows.at, kept),
                    &pick(&rows.scan, kept),
                    &pick(&rows.own[0], kept),
                    &pick(&rows.own[1], kept),
                    &pick(&rows.own[2], kept),
                    &pick(&rows.deleted, kept),
                ],
            )
            .await?;
        *count = written.len() as u64;
        for row in &written {
            if let Some(i) = rows.position(row.get(0), row.get(1)) {
                ids[i] = Some(row.get(2));
            }
        }
    }
    if !fresh.tags.is_empty() {
        let written = tx.query(sql::MERGE_TAGS, &[&fresh.tags]).await?;
        stats.tags = written.len() as u64;
        for row in &written {
            if let Ok(i) = page.tags.binary_search_by(|t| t.as_str().cmp(row.get::<_, &str>(0))) {
                fresh.ids.tags[i] = Some(row.get(1));
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Content rows absent from the store, encoded for COPY straight into `content`, and their
/// tag edges.
#[derive(Debug)]
pub(super) struct NewRows {
    pub(super) content: Bytes,
    pub(super) edges: Option<Bytes>,
    /// Rows written as the merges count them: a live row, plus its tombstone if applied.
    pub(super) content_rows: u64,
    pub(super) edge_rows: u64,
    /// Rows inserted deleted by a removal.
    pub(super) removals: u64,
}

/// The ids of the creators, communities and tags the page's absent and updated content
/// rows reference: from the first phase and the entity inserts (see [`Fresh`]), else from
/// what this writer remembers, else from one more query ([`ENTITY_IDS`](sql::ENTITY_IDS)),
/// which a page needs only when another session inserted an entity meanwhile. One not found
/// stays `None`: NULL or no edge, as in the merges' joins (none is missing: the page's own
/// were inserted before this runs). Every id found is remembered.
pub(super) async fn entity_ids(
    client: &Client,
    page: &PgPage,
    fresh: &Fresh,
    known: &Mutex<Known>,
) -> Result<PageIds> {
    let PageIds { creators: mut creator_ids, communities: mut community_ids, tags: mut tag_ids } =
        fresh.ids.clone();
    let Some(rows) = &page.content else {
        return Ok(PageIds { creators: creator_ids, communities: community_ids, tags: tag_ids });
    };
    let parts = &rows.new;
    let none = KeyedRows::default();
    let [cr, cm] = [&page.creators, &page.communities].map(|r| r.as_ref().unwrap_or(&none));
    // What the rows reference and is still unknown is asked for.
    let referencing = || fresh.absent.iter().chain(&fresh.updates);
    let mut ask_cr: Vec<usize> =
        referencing().filter_map(|&i| parts.creator[i]).map(|i| i as usize).collect();
    let mut ask_cm: Vec<usize> =
        referencing().filter_map(|&i| parts.community[i]).map(|i| i as usize).collect();
    let mut ask_tags: Vec<usize> = referencing().flat_map(|&i| &parts.tags[i]).map(|&i| i as usize).collect();
    for v in [&mut ask_cr, &mut ask_cm, &mut ask_tags] {
        v.sort_unstable();
        v.dedup();
    }
    {
        let known = lock(known);
        ask_cr.retain(|&i| {
            creator_ids[i] = creator_ids[i].or_else(|| known.id(Entity::Creators, cr, i));
            creator_ids[i].is_none()
        });
        ask_cm.retain(|&i| {
            community_ids[i] = community_ids[i].or_else(|| known.id(Entity::Communities, cm, i));
            community_ids[i].is_none()
        });
        ask_tags.retain(|&i| {
            tag_ids[i] = tag_ids[i].or_else(|| known.tag_id(&page.tags[i]));
            tag_ids[i].is_none()
        });
    }
    if !(ask_cr.is_empty() && ask_cm.is_empty() && ask_tags.is_empty()) {
        let found = client
            .query(
                sql::ENTITY_IDS.as_str(),
                &[
                    &pick(&cr.platform, &ask_cr),
                    &pick(&cr.external_id, &ask_cr),
                    &pick(&cm.platform, &ask_cm),
                    &pick(&cm.external_id, &ask_cm),
                    &pick(&page.tags, &ask_tags),
                ],
            )
            .await?;
        for row in &found {
            let (tag, i, id) =
                (row.get::<_, i32>(0), row.get::<_, i64>(1) as usize, row.get::<_, Option<i64>>(2));
            match EntityTable::of(tag) {
                Some(EntityTable::Creators) => creator_ids[ask_cr[i]] = id,
                Some(EntityTable::Communities) => community_ids[ask_cm[i]] = id,
                Some(EntityTable::Tags) => tag_ids[ask_tags[i]] = id,
                None => return Err(crate::Error::internal(format!("the id query answered for table {tag}"))),
            }
        }
    }
    // Every id the page now knows is remembered, once: the next pages' rows reference the
    // same creators, and a creator this writer knows is current is not asked about again.
    let mut known = lock(known);
    for (e, rows, ids) in [(Entity::Creators, cr, &creator_ids), (Entity::Communities, cm, &community_ids)] {
        for (i, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                known.remember_id(e, rows, i, *id);
            }
        }
    }
    for (i, id) in tag_ids.iter().enumerate() {
        if id.is_some() {
            known.remember_tag(&page.tags[i], *id);
        }
    }
    drop(known);
    Ok(PageIds { creators: creator_ids, communities: community_ids, tags: tag_ids })
}

/// Encodes the absent rows with the ids they reference ([`entity_ids`]): each row is what
/// the merges would make of it in a store without it (its live values, deleted if its
/// tombstone is newer, an edge to every tag).
pub(super) fn new_rows(
    page: &PgPage,
    payload: &Payload<'_>,
    fresh: &Fresh,
    ids: &PageIds,
) -> Result<Option<NewRows>> {
    let absent = &fresh.absent;
    let (Some(rows), false) = (&page.content, absent.is_empty()) else { return Ok(None) };
    let parts = &rows.new;
    let mut content = CopyBuf::new();
    let mut edges = CopyBuf::new();
    let mut content_rows = 0;
    let mut removals = 0;
    for &i in absent {
        let id = content_id(fresh, i)?;
        let b = &mut content;
        b.begin_row(NEW_CONTENT_FIELDS);
        b.int(Some(id));
        b.int(parts.creator[i].and_then(|c| ids.creators[c as usize]));
        b.int(parts.community[i].and_then(|c| ids.communities[c as usize]));
        if parts.tomb_applies[i] {
            b.instant(rows.tomb_instant[i]);
            b.opt(rows.tomb_scan[i].as_deref());
            b.instant(rows.removed_at[i]);
            removals += u64::from(rows.removed_at[i].is_some());
        } else {
            (0..3).for_each(|_| b.null());
        }
        b.encoded(payload.head(i));
        b.end_row();
        content_rows += 1 + u64::from(parts.tomb_applies[i] && rows.at[i].is_some());
        for &t in &parts.tags[i] {
            if let Some(tag) = ids.tags[t as usize] {
                edges.begin_row(2);
                edges.int(Some(id));
                edges.int(Some(tag));
                edges.end_row();
            }
        }
    }
    let edge_rows = edges.rows() as u64;
    Ok(Some(NewRows {
        content: Bytes::from(content.into_bytes()),
        edges: (edge_rows > 0).then(|| Bytes::from(edges.into_bytes())),
        content_rows,
        edge_rows,
        removals,
    }))
}

/// The id the first phase answered for kept content row `i`.
fn content_id(fresh: &Fresh, i: usize) -> Result<i64> {
    fresh.content_ids[i]
        .ok_or_else(|| Error::internal(format!("the first phase answered no content id for kept row {i}")))
}

/// The content rows the store holds that the page has newer versions of, as the arrays
/// [`UPDATE_CONTENT_LIVE`](sql::UPDATE_CONTENT_LIVE) and
/// [`UPDATE_CONTENT_TOMBSTONES`](sql::UPDATE_CONTENT_TOMBSTONES) take, sorted by id; and
/// the tag edges of their live records. Borrowed from the page's records.
#[derive(Debug, Default)]
pub(super) struct Updates<'p> {
    ids: Vec<i64>,
    creator_ids: Vec<Option<i64>>,
    community_ids: Vec<Option<i64>>,
    at: Vec<Option<std::time::SystemTime>>,
    scan: Vec<Option<&'p str>>,
    url: Vec<Option<&'p str>>,
    caption: Vec<Option<&'p str>>,
    counts: [Vec<Option<&'p str>>; 4],
    posted_at: Vec<Option<std::time::SystemTime>>,
    metadata: Vec<Option<&'p str>>,
    extra: Vec<Option<&'p str>>,
    /// The rows with a tombstone: ids, instants, scan ids, removals.
    tomb_ids: Vec<i64>,
    tomb_at: Vec<Option<std::time::SystemTime>>,
    tomb_scan: Vec<Option<&'p str>>,
    removed_at: Vec<Option<std::time::SystemTime>>,
    /// The live records' edges: content id and tag id.
    edge_content: Vec<i64>,
    edge_tag: Vec<i64>,
}

/// An instant as the driver sends a `timestamptz`.
fn system_time(t: crate::parse::time::Timestamp) -> std::time::SystemTime {
    let at = std::time::Duration::from_micros(t.0.unsigned_abs());
    if t.0 >= 0 {
        std::time::UNIX_EPOCH + at
    } else {
        std::time::UNIX_EPOCH - at
    }
}

/// The updates of the page's rows the store holds ([`Updates`]), with the ids they
/// reference ([`entity_ids`]). `None` when there are none.
pub(super) fn updates<'p>(page: &'p PgPage, fresh: &Fresh, ids: &PageIds) -> Result<Option<Updates<'p>>> {
    let (Some(rows), false) = (&page.content, fresh.updates.is_empty()) else { return Ok(None) };
    let Some(pending) = &page.pending else {
        return Err(Error::internal(
            "a page encoded without its records cannot update the rows the store holds",
        ));
    };
    let parts = &rows.new;
    let mut order: Vec<(i64, usize)> =
        fresh.updates.iter().map(|&i| content_id(fresh, i).map(|id| (id, i))).collect::<Result<_>>()?;
    order.sort_unstable();
    let mut u = Updates::default();
    for (id, i) in order {
        let live = pending.live[i].map(|r| &pending.records[r as usize]);
        u.ids.push(id);
        u.creator_ids.push(parts.creator[i].and_then(|c| ids.creators[c as usize]));
        u.community_ids.push(parts.community[i].and_then(|c| ids.communities[c as usize]));
        u.at.push(live.map(|r| system_time(r.updated_at)));
        u.scan.push(live.map(|r| r.scan_id.as_str()));
        u.url.push(live.and_then(|r| r.url.as_deref()));
        u.caption.push(live.and_then(|r| r.caption.as_deref()));
        for (col, k) in u.counts.iter_mut().zip(0..) {
            col.push(live.and_then(|r| r.stats[k].as_deref()));
        }
        u.posted_at.push(live.and_then(|r| r.posted_at).map(system_time));
        u.metadata.push(live.and_then(|r| r.metadata.as_deref()));
        u.extra.push(live.and_then(|r| r.extra.as_deref()));
        if let Some(at) = rows.tomb_instant[i] {
            u.tomb_ids.push(id);
            u.tomb_at.push(Some(system_time(at)));
            u.tomb_scan.push(rows.tomb_scan[i].as_deref());
            u.removed_at.push(rows.removed_at[i].map(system_time));
        }
        for &t in &parts.tags[i] {
            if let Some(tag) = ids.tags[t as usize] {
                u.edge_content.push(id);
                u.edge_tag.push(tag);
            }
        }
    }
    Ok(Some(u))
}

/// Updates the rows the store holds, by id: live values, then the edges of the rows that
/// changed, then tombstones (the merges' order and rules).
pub(super) async fn update_rows(
    tx: &tokio_postgres::Transaction<'_>,
    u: &Updates<'_>,
    stats: &mut WriteStats,
) -> Result<()> {
    let [views, likes, comments, shares] = &u.counts;
    let changed: Vec<i64> = tx
        .query(
            sql::UPDATE_CONTENT_LIVE,
            &[
                &u.ids,
                &u.creator_ids,
                &u.community_ids,
                &u.at,
                &u.scan,
                &u.url,
                &u.caption,
                views,
                likes,
                comments,
                shares,
                &u.posted_at,
                &u.metadata,
                &u.extra,
            ],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !changed.is_empty() {
        let edges: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&changed, &u.edge_content, &u.edge_tag];
        let removed = tx.execute(sql::DELETE_STALE_EDGES_BY_ID, &edges).await?;
        let added = tx.execute(sql::INSERT_EDGES_BY_ID, &edges).await?;
        stats.content_tags += removed + added;
    }
    stats.content += changed.len() as u64;
    if !u.tomb_ids.is_empty() {
        let tombs = tx
            .query(sql::UPDATE_CONTENT_TOMBSTONES, &[&u.tomb_ids, &u.tomb_at, &u.tomb_scan, &u.removed_at])
            .await?;
        stats.removals_applied += tombs.iter().filter(|r| r.get::<_, bool>(0)).count() as u64;
        stats.content += tombs.len() as u64;
    }
    Ok(())
}

/// The fields of a row of [`COPY_NEW_CONTENT`](sql::COPY_NEW_CONTENT): the ids and the
/// tombstone, then a payload row's head ([`Payload::head`]).
const NEW_CONTENT_FIELDS: u16 = 19;

/// COPYs the new rows and their edges; the driver's own error, so a unique violation can be
/// told from the rest.
pub(super) async fn copy_new(
    tx: &tokio_postgres::Transaction<'_>,
    new: &NewRows,
) -> Result<(), tokio_postgres::Error> {
    for (stmt, data) in
        [(sql::COPY_NEW_CONTENT, Some(&new.content)), (sql::COPY_NEW_EDGES, new.edges.as_ref())]
    {
        let Some(data) = data else { continue };
        copy_framed(tx, stmt, data).await?;
    }
    Ok(())
}

/// Live values, then the tag edges of the rows that changed, then tombstones.
pub(super) async fn merge_content(
    tx: &tokio_postgres::Transaction<'_>,
    page: &Fresh,
    stats: &mut WriteStats,
) -> Result<()> {
    if page.content.is_none() {
        return Ok(());
    }
    let live = tx.execute(sql::MERGE_CONTENT_LIVE, &[]).await?;
    if live > 0 {
        tx.execute(sql::STAGE_EDGES, &[]).await?;
        let removed = tx.execute(sql::DELETE_STALE_EDGES, &[]).await?;
        let added = tx.execute(sql::INSERT_EDGES, &[]).await?;
        stats.content_tags += removed + added;
    }
    let tombs = tx.query(sql::MERGE_CONTENT_TOMBSTONES, &[]).await?;
    stats.removals_applied += tombs.iter().filter(|r| r.get::<_, bool>(0)).count() as u64;
    stats.content += live + tombs.len() as u64;
    Ok(())
}

/// The page's records beyond repair (each (reason, raw record) once).
pub(super) async fn quarantine(
    tx: &tokio_postgres::Transaction<'_>,
    page: &PgPage,
    run_id: Option<i64>,
    stats: &mut WriteStats,
) -> Result<()> {
    if page.q_raw.is_empty() {
        return Ok(());
    }
    let runs: Vec<Option<i64>> = vec![run_id; page.q_raw.len()];
    stats.quarantined = tx
        .execute(
            sql::INSERT_QUARANTINE,
            &[&page.q_reason, &page.q_scan, &page.q_partition, &page.q_raw, &runs, &page.q_origin],
        )
        .await?;
    Ok(())
}

pub(super) async fn copy_in(
    tx: &tokio_postgres::Transaction<'_>,
    stmt: &str,
    data: &Option<Bytes>,
) -> Result<()> {
    if let Some(data) = data {
        copy_framed(tx, stmt, data).await?;
    }
    Ok(())
}

/// One binary COPY of `rows`, framed.
async fn copy_framed(
    tx: &tokio_postgres::Transaction<'_>,
    stmt: &str,
    rows: &Bytes,
) -> Result<(), tokio_postgres::Error> {
    let sink = tx.copy_in::<_, Bytes>(stmt).await?;
    futures_util::pin_mut!(sink);
    for part in framed(rows.clone()) {
        sink.feed(part).await?;
    }
    sink.finish().await?;
    Ok(())
}

/// A page of a staged load: its content rows COPYed into `bulk_content`, its creators,
/// communities and tags appended to theirs, and its quarantine, in one transaction. Nothing
/// is asked of the store and nothing merged: the job's fold does that once, at its end.
pub(super) async fn stage(
    client: &mut Client,
    page: &PgPage,
    job: i64,
    run_id: Option<i64>,
    stats: &mut WriteStats,
) -> Result<()> {
    let tx = client.transaction().await?;
    // The fold locks the job's row: a page staged after it would never be folded.
    let open: Option<bool> = tx.query_opt(sql::STAGED_JOB_OPEN, &[&job]).await?.map(|r| r.get(0));
    if open != Some(true) {
        return Err(Error::new(
            Kind::Database,
            format!("backfill job {job} was folded while this page was being staged: its unit is loaded again by the next run"),
        ));
    }
    if let Some(rows) = &page.content {
        copy_in(&tx, &sql::COPY_BULK_CONTENT, &page.whole_payload()).await?;
        stats.staged = rows.len() as u64;
    }
    for (stmt, rows) in
        [(sql::COPY_BULK_CREATORS, &page.creators), (sql::COPY_BULK_COMMUNITIES, &page.communities)]
    {
        copy_in(&tx, stmt, &rows.as_ref().map(|r| r.data.clone())).await?;
    }
    if !page.tags.is_empty() {
        let mut tags = CopyBuf::new();
        for t in &page.tags {
            tags.begin_row(1);
            tags.text(t);
            tags.end_row();
        }
        copy_in(&tx, sql::COPY_BULK_TAGS, &Some(Bytes::from(tags.into_bytes()))).await?;
    }
    quarantine(&tx, page, run_id, stats).await?;
    tx.commit().await?;
    Ok(())
}
