//! A page compared with the store instead of merged into it (`scansync verify`).
//!
//! The page is the writer's own: folded and encoded by the same code, its content rows
//! COPYed into the same staging table by the same statement. So the values compared are the
//! ones a sync would write, never derived a second way; what differs is the statement that
//! follows: [`COMPARE_CONTENT`](sql::COMPARE_CONTENT) reads the store's rows by key instead
//! of merging into them, and answers only for the rows that differ.

use super::encode::{KeyedRows, PgPage};
use super::land::copy_in;
use crate::error::Result;
use crate::write::sql;
use tokio_postgres::Client;

/// How one row of the source compares with the store's. The order is the precedence of
/// verdicts when one key is compared several times (in several pages): the verdict of the
/// key's newest version is the greatest of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Verdict {
    /// The store holds a newer version than this one (normal: not a divergence).
    Ahead = 0,
    /// The store holds this version with these values.
    Same = 1,
    /// The store holds this version with other values.
    Diverged = 2,
    /// The store holds an older version.
    Stale = 3,
    /// The store does not hold the key.
    Missing = 4,
}

impl Verdict {
    /// Every verdict, in precedence order.
    pub const ALL: [Verdict; 5] = [Self::Ahead, Self::Same, Self::Diverged, Self::Stale, Self::Missing];

    /// The verdict of its number in the comparison's answer.
    fn of(n: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|v| *v as i32 == n)
    }

    /// Its name, as printed and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ahead => "ahead",
            Self::Same => "same",
            Self::Diverged => "diverged",
            Self::Stale => "stale",
            Self::Missing => "missing",
        }
    }

    /// Whether the store needs the source's record (missing, stale, diverged).
    pub fn divergent(self) -> bool {
        self >= Self::Diverged
    }
}

/// The rows of a page that differ from the store, by their index in the page; every other
/// row is [`Verdict::Same`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Compared {
    /// Content rows (indexes into the page's content, in key order).
    pub content: Vec<(usize, Verdict)>,
    /// Creators.
    pub creators: Vec<(usize, Verdict)>,
    /// Communities.
    pub communities: Vec<(usize, Verdict)>,
}

/// Compares a page with the store on `client`, a connection prepared by [`prepare_reader`],
/// in one transaction that writes nothing but its own staging table.
pub async fn compare(client: &mut Client, page: &PgPage) -> Result<Compared> {
    let mut out = Compared::default();
    let tx = client.transaction().await?;
    if let Some(rows) = &page.content {
        copy_in(&tx, sql::COPY_CONTENT, &page.whole_payload()).await?;
        for r in tx.query(sql::COMPARE_CONTENT, &[]).await? {
            let (platform, external_id): (&str, &str) = (r.get(0), r.get(1));
            let (Some(i), Some(v)) = (rows.position(platform, external_id), Verdict::of(r.get(2))) else {
                return Err(crate::error::Error::internal(format!(
                    "the comparison answered for {platform}/{external_id}, which the page does not hold"
                )));
            };
            out.content.push((i, v));
        }
        out.content.sort_unstable();
    }
    for (stmt, rows, found) in [
        (sql::COMPARE_CREATORS, &page.creators, &mut out.creators),
        (sql::COMPARE_COMMUNITIES, &page.communities, &mut out.communities),
    ] {
        let Some(rows) = rows else { continue };
        for r in tx.query(stmt, &entity_params(rows)).await? {
            let i = r.get::<_, i64>(0) as usize;
            let v = Verdict::of(r.get(1)).ok_or_else(|| crate::error::Error::internal("unknown verdict"))?;
            found.push((i, v));
        }
    }
    // Read-only apart from the staging table, which the commit empties.
    tx.commit().await?;
    Ok(out)
}

/// Sets up a connection for [`compare`]: the schema, the writer's staging table, and then
/// every later transaction read-only, so a comparison cannot change the store whatever it
/// runs (PostgreSQL still lets it fill its own temporary staging table). No JIT: the
/// comparison's estimated cost (per-row subplans) passes `jit_above_cost`, and compiling
/// it took a second a page for 60 ms of work (measured with `explain analyze`).
pub async fn prepare_reader(client: &Client, schema: &str) -> Result<()> {
    let q = crate::schema::quoted_schema(schema)?;
    client
        .batch_execute(&format!(
            "set search_path = {q}; set random_page_cost = 1.1; set max_parallel_workers_per_gather = 0; set jit = off; {}
             set session characteristics as transaction read only;",
            sql::CREATE_STAGING
        ))
        .await?;
    Ok(())
}

/// Moves the store's version of each diverged row (same version as the source's, other
/// values) back by one microsecond, where it still is that version: the normal writer then
/// takes the source's record as newer and rewrites the row by the ordinary merge rules.
/// Returns how many rows it moved. Run before the repair writes the records; if the repair
/// stops in between, the rows are left one microsecond stale, which the next verify (or
/// repair) finds as `stale`: nothing is lost, and no row ever holds a version older than
/// the source's by more than that microsecond.
/// `client`'s search path is the store's schema.
pub async fn demote(client: &Client, page: &PgPage, found: &Compared) -> Result<u64> {
    let pick = |v: &[Option<String>], ix: &[usize]| ix.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
    let diverged = |f: &[(usize, Verdict)]| -> Vec<usize> {
        f.iter().filter(|(_, v)| *v == Verdict::Diverged).map(|(i, _)| *i).collect()
    };
    let mut moved = 0;
    if let Some(rows) = &page.content {
        let ix = diverged(&found.content);
        if !ix.is_empty() {
            let (platform, external) = (pick_text(&rows.platform, &ix), pick_text(&rows.external_id, &ix));
            let (at, scan) = (pick(&rows.at, &ix), pick(&rows.scan, &ix));
            let (tomb_at, tomb_scan) = (pick(&rows.tomb_at, &ix), pick(&rows.tomb_scan, &ix));
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
                [&platform, &external, &at, &scan, &tomb_at, &tomb_scan];
            moved += client.execute(sql::DEMOTE_CONTENT, &params).await?;
        }
    }
    for (stmt, rows, found) in [
        (&*sql::DEMOTE_CREATORS, &page.creators, &found.creators),
        (&*sql::DEMOTE_COMMUNITIES, &page.communities, &found.communities),
    ] {
        let Some(rows) = rows else { continue };
        let ix = diverged(found);
        if ix.is_empty() {
            continue;
        }
        let params = (
            pick_text(&rows.platform, &ix),
            pick_text(&rows.external_id, &ix),
            pick(&rows.at, &ix),
            pick(&rows.scan, &ix),
        );
        moved += client.execute(stmt, &[&params.0, &params.1, &params.2, &params.3]).await?;
    }
    Ok(moved)
}

fn pick_text(v: &[String], ix: &[usize]) -> Vec<String> {
    ix.iter().map(|&i| v[i].clone()).collect()
}

/// The parameters of [`sql::COMPARE_CREATORS`] (and communities): every row's key, version
/// and own columns.
fn entity_params(rows: &KeyedRows) -> [&(dyn tokio_postgres::types::ToSql + Sync); 8] {
    [
        &rows.platform,
        &rows.external_id,
        &rows.at,
        &rows.scan,
        &rows.own[0],
        &rows.own[1],
        &rows.own[2],
        &rows.deleted,
    ]
}

impl PgPage {
    /// The key of content row `i`.
    pub fn content_key(&self, i: usize) -> (&str, &str) {
        let rows = self.content.as_ref().expect("a content row of a page without content");
        (&rows.platform[i], &rows.external_id[i])
    }

    /// How many content rows, creators and communities the page holds.
    pub fn rows(&self) -> [usize; 3] {
        [&self.content, &self.creators, &self.communities].map(|r| r.as_ref().map_or(0, KeyedRows::len))
    }

    /// The key of creator `i` (or community `i`, with `community`).
    pub fn entity_key(&self, community: bool, i: usize) -> (&str, &str) {
        let rows = if community { &self.communities } else { &self.creators };
        let rows = rows.as_ref().expect("an entity of a page without them");
        (&rows.platform[i], &rows.external_id[i])
    }
}
