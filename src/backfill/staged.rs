//! The staged first load (docs/backfill.md): a bulk backfill that starts into an empty store
//! appends every page, unmerged, to unlogged staging tables without an index (COPY speed:
//! no question asked of the store, no merge, no index to keep), and folds them into the
//! canonical tables once, set-based, when its last unit is done.
//!
//! - **The fold** ([`fold`]): the newest version per key of creators, communities and
//!   content, as the writer's own fold and merges would leave them, then the staging tables
//!   emptied and the job marked folded. Creators and communities are merged on a connection
//!   of their own and committed apart (their merges take only newer versions, so a second
//!   fold merges them to the same) while the content's staged versions are ranked per key
//!   (the losers into `bulk_losers`, the winning tombstones into `bulk_fold`; every other
//!   staged live row wins, with the content id it drew as it was staged) and the tags merged.
//!   Into a `content` that is still empty, its rows and their edges are inserted at once on
//!   two connections, each table's keys off and built after (the empty-store limit of
//!   `loadgen bench`); the edges commit just before the content and the mark, and edges
//!   left without content by a fold killed between the two are removed by the next. A
//!   content table someone wrote to meanwhile (an hourly sync beside the load) gets the
//!   rows through the writer's merge statements instead, in one transaction, so what the
//!   sync wrote wins where it is newer.
//! - **Resumable by unit.** Units are done when their pages are staged; a killed worker's
//!   units are claimed again (pages staged twice fold to the same rows); a killed fold rolls
//!   back and the next worker (or the same command again) folds.
//! - **A PostgreSQL crash empties unlogged tables.** `bulk_staged` holds one row per staged
//!   job and is unlogged too: when it is gone, so are the job's staged rows, and its done
//!   units are loaded again ([`survived`]).

use crate::db;
use crate::error::{Error, Kind, Result};
use crate::lock::LOCK_KEY_SQL;
use crate::schema::quoted_schema;
use crate::write::sql;
use tokio_postgres::Client;

/// The staging tables, emptied by a fold or a restart.
const TABLES: &str = "bulk_content, bulk_creators, bulk_communities, bulk_tags, bulk_fold, bulk_losers";

/// Decides whether job `id` is staged: a job that is staged already stays so until folded;
/// a new one (no unit done) is when it loads in bulk into an empty store and no other job is
/// staged unfolded. The job's row is locked meanwhile, so workers starting at once agree.
pub async fn decide(client: &mut Client, schema: &str, id: i64, bulk: bool) -> Result<bool> {
    let q = quoted_schema(schema)?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            &format!(
                "select staged, folded_at is not null,
                        (select count(*) from {q}.backfill_units where job_id = $1 and state = 'done')
                 from {q}.backfill_jobs where id = $1 for update"
            ),
            &[&id],
        )
        .await?;
    let (staged, folded, done): (bool, bool, i64) = (row.get(0), row.get(1), row.get(2));
    if staged || folded || !bulk || done > 0 {
        return Ok(staged && !folded);
    }
    let other: bool = tx
        .query_one(
            &format!("select exists (select 1 from {q}.backfill_jobs where staged and folded_at is null and id <> $1)"),
            &[&id],
        )
        .await?
        .get(0);
    let empty: bool =
        tx.query_one(&format!("select not exists (select 1 from {q}.content)"), &[]).await?.get(0);
    if other || !empty {
        return Ok(false);
    }
    let t = TABLES.split(", ").map(|t| format!("{q}.{t}")).collect::<Vec<_>>().join(", ");
    tx.batch_execute(&format!("truncate {t}; delete from {q}.bulk_staged")).await?;
    tx.execute(&format!("update {q}.backfill_jobs set staged = true where id = $1"), &[&id]).await?;
    tx.execute(&format!("insert into {q}.bulk_staged values ($1)"), &[&id]).await?;
    tx.commit().await?;
    tracing::info!(
        job = id,
        "a staged first load: pages go to the staging tables, folded when the last unit is done"
    );
    Ok(true)
}

/// Checks that the staged rows of job `id` survived: after a PostgreSQL crash the unlogged
/// tables are empty, and so is `bulk_staged`; the job's done units are then made pending
/// again (they are loaded again). Returns how many units it reset.
pub async fn survived(client: &mut Client, schema: &str, id: i64) -> Result<u64> {
    let q = quoted_schema(schema)?;
    let tx = client.transaction().await?;
    let unfolded: bool = tx
        .query_one(
            &format!("select staged and folded_at is null from {q}.backfill_jobs where id = $1 for update"),
            &[&id],
        )
        .await?
        .get(0);
    if !unfolded {
        // Folded (by another worker, maybe a moment ago): its staging is gone by design.
        return Ok(0);
    }
    let alive: bool = tx
        .query_one(&format!("select exists (select 1 from {q}.bulk_staged where job_id = $1)"), &[&id])
        .await?
        .get(0);
    if alive {
        return Ok(0);
    }
    let reset = tx
        .execute(
            &format!(
                "update {q}.backfill_units set state = 'pending', worker_id = null, worker = null,
                     records = 0, pages = 0, started_at = null, finished_at = null
                 where job_id = $1 and state = 'done'"
            ),
            &[&id],
        )
        .await?;
    tx.execute(&format!("insert into {q}.bulk_staged values ($1) on conflict do nothing"), &[&id]).await?;
    tx.commit().await?;
    if reset > 0 {
        tracing::warn!(
            job = id,
            units = reset,
            "the staged rows of this job are gone (PostgreSQL restarted after a crash empties unlogged tables): loading its done units again"
        );
    }
    Ok(reset)
}

/// What a fold wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    /// Content rows inserted (or merged).
    pub content: u64,
    /// Tag edges inserted.
    pub edges: u64,
    /// Whether `content` was empty (keys off, built after) or merged into.
    pub into_empty: bool,
}

/// Folds job `id`'s staged rows into the canonical tables when no unit is left to run (every
/// one done, or failed: a failed unit is retried by the next run through the writer's
/// merges, as the job is no longer staged) and no other process is folding; `None` when
/// there is nothing to fold now.
pub async fn fold(url: &str, schema: &str, id: i64) -> Result<Option<Folded>> {
    let q = quoted_schema(schema)?;
    let mut client = db::connect(url).await?;
    client
        .batch_execute(&format!(
            "set search_path = {q}; set random_page_cost = 1.1; set jit = off; {}",
            sql::CREATE_STAGING
        ))
        .await?;
    if survived(&mut client, schema, id).await? > 0 {
        return Err(Error::new(
            Kind::Database,
            format!("the staged rows of backfill job {id} were lost in a PostgreSQL crash; its units are pending again: run the same command again"),
        ));
    }
    let started = std::time::Instant::now();
    let tx = client.transaction().await?;
    let mine: bool = tx
        .query_one(
            &format!("select pg_try_advisory_xact_lock({LOCK_KEY_SQL})"),
            &[&format!("scansync-fold:{schema}")],
        )
        .await?
        .get(0);
    if !mine {
        return Ok(None);
    }
    let ready: bool = tx
        .query_one(
            "select staged and folded_at is null
                    and not exists (select 1 from backfill_units where job_id = $1 and state in ('pending', 'running'))
             from backfill_jobs where id = $1 for update",
            &[&id],
        )
        .await?
        .get(0);
    if !ready {
        return Ok(None);
    }
    tx.batch_execute(FOLD_MEMORY).await?;
    // The job's row is locked from here: no page lands in the staging tables until the end.
    // Creators and communities are merged on a connection of their own and committed apart,
    // while a second one ranks the content's staged versions into `bulk_losers` and
    // `bulk_fold` (committed: the edges are written from them on that connection) and merges
    // the tags: the two take both cores (measured on 1M records: 3.5 + 2.0 s of entities
    // against 4.6–5.3 + 1.0 s; the tags on the entities' side left the winners' connection
    // idle for 2–3 s). The entities' and
    // tags' merges take only newer versions or missing names, so a fold killed after them
    // leaves rows the next fold merges again to the same, as a page's upserts would.
    let mut helper = db::connect(url).await?;
    helper.batch_execute(&format!("set search_path = {q}; set jit = off")).await?;
    let pick = format!("begin; {FOLD_MEMORY}; {}; {}; commit", sql::PICK_WINNERS, sql::FOLD_TAGS);
    let winners = helper.batch_execute(&pick);
    let (entities, winners) = tokio::join!(fold_entities(url, &q), winners);
    entities?;
    winners?;
    // From here no one else writes content (a page writes content before its edges, so no
    // writer waits for this lock holding one on the edges): the fold sees it as it is, and
    // lands in one go.
    tx.batch_execute("lock table content in access exclusive mode").await?;
    let empty: bool = tx.query_one("select not exists (select 1 from content)", &[]).await?.get(0);
    // Keys to take off: content's and its edges' primary and unique keys; possible only
    // when no foreign key (the bulk load took them off) references content.
    let referenced: bool = tx
        .query_one("select exists (select 1 from pg_constraint where confrelid = 'content'::regclass)", &[])
        .await?
        .get(0);
    let mut out = Folded::default();
    if empty && !referenced {
        // Into an empty store: the content on this connection, its edges on the other, at
        // once, each with its keys off and built after. The edges are committed first and
        // the content with the job's mark right after: a fold killed between the two leaves
        // edges of no content row, which the next fold removes (into an empty `content` no
        // edge is anyone's: they are truncated; else they are deleted by
        // `DELETE_ORPHAN_EDGES`).
        let (content_off, content_on) = keys(&tx, "content").await?;
        tx.batch_execute(&content_off).await?;
        // This connection waits for the edges' commit inside PostgreSQL, on a lock their
        // transaction holds, not here: a wait PostgreSQL cannot see would hide a deadlock
        // from it (a reader holding `content_tags` while it waits for `content`).
        let edges_done = format!("select pg_advisory_xact_lock({LOCK_KEY_SQL})");
        let edges_key = format!("scansync-fold-edges:{schema}");
        let edges_tx = helper.transaction().await?;
        edges_tx.execute(&edges_done, &[&edges_key]).await?;
        let edges = async move {
            // One core each: a parallel build of the edges' keys would take the content's.
            edges_tx
                .batch_execute(&format!(
                    "{FOLD_MEMORY}; set local max_parallel_maintenance_workers = 0; truncate content_tags"
                ))
                .await?;
            let (off, on) = keys(&edges_tx, "content_tags").await?;
            edges_tx.batch_execute(&off).await?;
            let n = edges_tx.execute(sql::FOLD_INSERT_EDGES, &[]).await?;
            edges_tx.batch_execute(&on).await?;
            // The bulk load's index of the edges by tag, which it would build after the fold,
            // is built here, while the content is still being written (measured: 1.3 s per
            // two million edges off the load's end).
            for (_, name, columns) in crate::bulk::INDEXES.iter().filter(|(t, _, _)| *t == "content_tags") {
                edges_tx
                    .batch_execute(&format!("create index if not exists {name} on content_tags {columns}"))
                    .await?;
            }
            // So is the edges' foreign key to `tags` (all the tags are in), while the content's
            // keys are built: the end of the load would validate it after the one to
            // `content`, on the same table, one core idle (measured: 0.35 s of a 1M load).
            let key =
                crate::bulk::FOREIGN_KEYS.iter().find(|(_, name, _)| *name == "content_tags_tag_id_fkey");
            if let Some((table, name, def)) = key {
                let absent: bool = edges_tx
                    .query_one(
                        "select not exists (select 1 from pg_constraint
                                            where conrelid = $1::text::regclass and conname = $2)",
                        &[table, name],
                    )
                    .await?
                    .get(0);
                if absent {
                    edges_tx
                        .batch_execute(&format!("alter table {table} add constraint {name} {def}"))
                        .await?;
                }
            }
            edges_tx.commit().await?;
            Ok::<_, Error>(n)
        };
        let content = async {
            let n = tx.execute(sql::FOLD_INSERT_CONTENT, &[]).await?;
            tx.batch_execute(&content_on).await?;
            tx.execute(&edges_done, &[&edges_key]).await?;
            Ok::<_, Error>(n)
        };
        let (edges, content) = tokio::join!(edges, content);
        (out.content, out.edges, out.into_empty) = (content?, edges?, true);
        #[cfg(feature = "fault-injection")]
        if crate::run::fault::is("exit-after-fold-edges") {
            std::process::exit(99);
        }
    } else {
        // Written to meanwhile: the writer's own merges, over every folded row at once.
        tx.batch_execute("lock table content_tags in access exclusive mode").await?;
        // Edges of no content row (a fold killed after its edges' commit) can be there
        // unless a validated foreign key says they cannot.
        let checked: bool = tx
            .query_one(
                "select exists (select 1 from pg_constraint where conrelid = 'content_tags'::regclass
                                and confrelid = 'content'::regclass and convalidated)",
                &[],
            )
            .await?
            .get(0);
        if !checked {
            tx.execute(sql::DELETE_ORPHAN_EDGES, &[]).await?;
        }
        tx.execute(sql::STAGE_BULK_WINNERS, &[]).await?;
        out.content = tx.execute(sql::MERGE_CONTENT_LIVE, &[]).await?;
        tx.execute(sql::STAGE_EDGES, &[]).await?;
        tx.execute(sql::DELETE_STALE_EDGES, &[]).await?;
        out.edges = tx.execute(sql::INSERT_EDGES, &[]).await?;
        out.content += tx.execute(sql::MERGE_CONTENT_TOMBSTONES, &[]).await?;
    }
    tx.execute("update backfill_jobs set folded_at = now() where id = $1", &[&id]).await?;
    tx.batch_execute(&format!("truncate {TABLES}")).await?;
    tx.execute("delete from bulk_staged where job_id = $1", &[&id]).await?;
    tx.commit().await?;
    tracing::info!(
        job = id,
        content = out.content,
        edges = out.edges,
        into_empty = out.into_empty,
        seconds = started.elapsed().as_secs_f64(),
        "staged rows folded into the tables"
    );
    Ok(Some(out))
}

/// The fold's sessions sort and hash in memory: a million staged keys and their versions fit.
const FOLD_MEMORY: &str = "set local work_mem = '256MB'; set local maintenance_work_mem = '512MB'";

/// The statements that take `table`'s primary and unique keys off, and those that put them
/// back as they were.
async fn keys(tx: &tokio_postgres::Transaction<'_>, table: &str) -> Result<(String, String)> {
    let keys = tx
        .query(
            "select conname::text, pg_get_constraintdef(oid) from pg_constraint
             where conrelid = $1::text::regclass and contype in ('p', 'u')",
            &[&table],
        )
        .await?;
    let (mut off, mut on) = (String::new(), String::new());
    for k in &keys {
        let (name, def): (String, String) = (k.get(0), k.get(1));
        off.push_str(&format!("alter table {table} drop constraint \"{name}\";"));
        on.push_str(&format!("alter table {table} add constraint \"{name}\" {def};"));
    }
    Ok((off, on))
}

/// The fold's first part, on a connection of its own: the staged creators and communities
/// merged into their tables, committed.
async fn fold_entities(url: &str, q: &str) -> Result<()> {
    let client = db::connect(url).await?;
    client
        .batch_execute(&format!(
            "set search_path = {q}; set jit = off; begin; {FOLD_MEMORY}; {}; {}; commit",
            sql::FOLD_CREATORS,
            sql::FOLD_COMMUNITIES
        ))
        .await?;
    Ok(())
}

/// Empties the staging tables of a job started again (`--restart`; no worker is running).
pub async fn restart(client: &Client, schema: &str, id: i64) -> Result<()> {
    let q = quoted_schema(schema)?;
    let staged: bool = client
        .query_one(
            &format!("select staged and folded_at is null from {q}.backfill_jobs where id = $1"),
            &[&id],
        )
        .await?
        .get(0);
    if staged {
        let t = TABLES.split(", ").map(|t| format!("{q}.{t}")).collect::<Vec<_>>().join(", ");
        client.batch_execute(&format!("truncate {t}")).await?;
        client.execute(&format!("delete from {q}.bulk_staged where job_id = $1"), &[&id]).await?;
    }
    client
        .execute(
            &format!("update {q}.backfill_jobs set staged = false, folded_at = null where id = $1"),
            &[&id],
        )
        .await?;
    Ok(())
}
