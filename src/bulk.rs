//! The bulk path: a large backfill loads without per-row foreign-key checks and proves the
//! model's integrity once, set-based, at the end; it also builds the one secondary index
//! nothing in the load reads once, at the end, instead of row by row.
//!
//! Per-row foreign-key checks of `content` and `content_tags` are about half the cost of a
//! first load (`loadgen bench`'s model ceiling with and without them). Keeping the index of
//! `content_tags` by tag up to date costs another tenth of PostgreSQL's CPU (measured: a
//! 200k first load, 13.7–14.2 s of server CPU with it, 12.2–12.4 s without): its keys repeat
//! (some tags are on a tenth of the posts), and every insert lands amid a run of duplicates
//! that PostgreSQL keeps deduplicating. A build from scratch at the end sorts once (0.17 s
//! for 390k edges). A bulk worker:
//!
//! 1. holds a *shared* advisory lock (`scansync-bulk:<schema>`) on a connection of its own
//!    for as long as it runs: it ends with the process, however the process ends;
//! 2. drops the four foreign keys of `content` and `content_tags` and the index
//!    `content_tags_tag_id` (when present);
//! 3. when it ends (done, failed or stopped), lets go of its shared lock and, if it can
//!    take the same lock *exclusively* (no other bulk worker is alive), restores them:
//!    `ADD CONSTRAINT … NOT VALID` (a brief lock, no scan) and then `VALIDATE CONSTRAINT`
//!    (one pass over the table, concurrent writes allowed); `CREATE INDEX CONCURRENTLY`
//!    (writes allowed while it builds; one left invalid by a build that was killed is
//!    dropped and built again).
//!
//! Every other run repairs on start what a killed bulk worker left ([`repair`]): when a
//! foreign key or the index is missing or not valid and no bulk worker is alive, it
//! restores it the same way. Nothing scansync runs reads the index: it serves downstream
//! queries by tag, which are slower while a bulk load runs. An incremental sync during a
//! bulk load stays correct: it writes creators, communities and tags before the rows that
//! reference them, as always; the foreign keys check the model, they do not steer the
//! writes. Their validation at the end proves that nothing written meanwhile breaks them.

use crate::db;
use crate::error::{Error, Kind, Result};
use crate::lock::LOCK_KEY_SQL;
use crate::schema::quoted_schema;
use tokio_postgres::Client;

/// The foreign keys of the canonical model: (table, constraint, definition), as
/// `sql/001_canonical.sql` creates them.
pub const FOREIGN_KEYS: [(&str, &str, &str); 4] = [
    ("content", "content_creator_id_fkey", "foreign key (creator_id) references creators (id)"),
    ("content", "content_community_id_fkey", "foreign key (community_id) references communities (id)"),
    (
        "content_tags",
        "content_tags_content_id_fkey",
        "foreign key (content_id) references content (id) on delete cascade",
    ),
    ("content_tags", "content_tags_tag_id_fkey", "foreign key (tag_id) references tags (id)"),
];

/// The secondary indexes a bulk load builds at its end: (table, index, columns), as
/// `sql/001_canonical.sql` creates them.
pub const INDEXES: [(&str, &str, &str); 1] = [("content_tags", "content_tags_tag_id", "(tag_id)")];

fn lock_name(schema: &str) -> String {
    format!("scansync-bulk:{schema}")
}

/// The state of each foreign key ([`FOREIGN_KEYS`], in order), then of each index
/// ([`INDEXES`]): `None` absent, `Some(valid)` present (a key validated, an index built).
pub async fn states(client: &Client, schema: &str) -> Result<Vec<(&'static str, Option<bool>)>> {
    let rows = client
        .query(
            "select conname::text, convalidated from pg_constraint
             where contype = 'f' and connamespace = (select oid from pg_namespace where nspname = $1)
             union all
             select c.relname::text, i.indisvalid and i.indisready from pg_index i
             join pg_class c on c.oid = i.indexrelid
             where c.relnamespace = (select oid from pg_namespace where nspname = $1)",
            &[&schema],
        )
        .await?;
    let names = FOREIGN_KEYS.iter().map(|(_, name, _)| *name).chain(INDEXES.iter().map(|(_, name, _)| *name));
    Ok(names
        .map(|name| {
            let state = rows.iter().find(|r| r.get::<_, String>(0) == name).map(|r| r.get::<_, bool>(1));
            (name, state)
        })
        .collect())
}

/// Restores the foreign keys and indexes a bulk load dropped, unless a bulk worker is alive.
/// Returns true when it restored any. Called at the start of every run that is not a bulk load.
pub async fn repair(client: &Client, schema: &str) -> Result<bool> {
    repair_with(client, None, schema).await
}

/// [`repair`], with a second connection (when given) to restore two tables at once.
async fn repair_with(client: &Client, helper: Option<&Client>, schema: &str) -> Result<bool> {
    if states(client, schema).await?.iter().all(|(_, s)| *s == Some(true)) {
        return Ok(false);
    }
    let name = lock_name(schema);
    let got: bool =
        client.query_one(&format!("select pg_try_advisory_lock({LOCK_KEY_SQL})"), &[&name]).await?.get(0);
    if !got {
        tracing::info!("a bulk load is running: the foreign keys stay off until it ends");
        return Ok(false);
    }
    let restored = restore(client, helper, schema).await;
    client.execute(&format!("select pg_advisory_unlock({LOCK_KEY_SQL})"), &[&name]).await?;
    restored.map(|()| true)
}

/// Adds the missing foreign keys `NOT VALID`, then validates every one not validated and
/// builds the missing indexes.
///
/// The order is the locks': adding a key locks both its tables against a build or a
/// validation (`SHARE ROW EXCLUSIVE`), so every key is added first. Then `content`'s keys
/// are validated on `helper` (when given) while `content_tags`'s are validated on `client`:
/// each validation locks only its own table against another validation. The index is built
/// last: a concurrent build waits for every transaction older than it, the other
/// validation's too, so it would gain nothing by starting sooner.
async fn restore(client: &Client, helper: Option<&Client>, schema: &str) -> Result<()> {
    let q = quoted_schema(schema)?;
    let states = states(client, schema).await?;
    let started = std::time::Instant::now();
    let keys: Vec<_> = FOREIGN_KEYS.iter().zip(&states).map(|(k, (_, state))| (k, *state)).collect();
    for ((table, name, def), state) in &keys {
        if state.is_none() {
            let def = def.replace("references ", &format!("references {q}."));
            client
                .batch_execute(&format!("alter table {q}.{table} add constraint {name} {def} not valid"))
                .await?;
        }
    }
    let pending = |table: &str| -> Vec<(&'static str, &'static str)> {
        keys.iter()
            .filter(|((t, _, _), state)| *t == table && *state != Some(true))
            .map(|((t, name, _), _)| (*t, *name))
            .collect()
    };
    let (content, edges) = (pending("content"), pending("content_tags"));
    let edges_then_indexes = async {
        validate(client, schema, &edges).await?;
        // Each its own statement: CONCURRENTLY refuses to run inside a transaction.
        for ((table, name, columns), (_, state)) in INDEXES.iter().zip(&states[FOREIGN_KEYS.len()..]) {
            if *state == Some(false) {
                // A concurrent build that was killed leaves an invalid index behind, which
                // `if not exists` would keep.
                client.batch_execute(&format!("drop index concurrently if exists {q}.{name}")).await?;
            }
            if *state != Some(true) {
                client
                    .batch_execute(&format!(
                        "create index concurrently if not exists {name} on {q}.{table} {columns}"
                    ))
                    .await?;
            }
        }
        Ok::<(), Error>(())
    };
    // A bulk load filled the tables faster than autovacuum analyzes them: without
    // statistics, the next run plans its page statements on defaults (a probe of a unique
    // key estimated at a 40,000th of the table), whose cost grows with the store. Measured
    // on a 5M-record store: the 10 % re-run took 152 s unanalyzed, 113 s analyzed. A few
    // seconds at most: ANALYZE reads a sample of each table. Each table is analyzed on the
    // connection that validated its keys, once they are (an ANALYZE and a validation of the
    // same table wait for each other): the other four on `helper` while `content_tags`'s
    // keys are still validated (measured: 0.2 s of a 1M first load's end).
    let analyze = |tables: &[&str]| {
        format!("analyze {}", tables.iter().map(|t| format!("{q}.{t}")).collect::<Vec<_>>().join(", "))
    };
    let (edges_table, others) = (&ANALYZED[..1], &ANALYZED[1..]);
    match helper {
        Some(helper) => {
            let content_then_analyze = async {
                validate(helper, schema, &content).await?;
                helper.batch_execute(&analyze(others)).await.map_err(Error::from)
            };
            let edges = async {
                edges_then_indexes.await?;
                client.batch_execute(&analyze(edges_table)).await.map_err(Error::from)
            };
            let (a, b) = tokio::join!(content_then_analyze, edges);
            a.and(b)?;
        }
        None => {
            validate(client, schema, &content).await?;
            edges_then_indexes.await?;
            client.batch_execute(&analyze(&ANALYZED)).await?;
        }
    }
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "foreign keys and indexes restored and validated, the tables analyzed"
    );
    Ok(())
}

/// The tables a bulk load fills, analyzed at its end (`content_tags` first: it is analyzed
/// apart).
const ANALYZED: [&str; 5] = ["content_tags", "content", "creators", "communities", "tags"];

/// Validates the foreign keys `keys` ((table, constraint) pairs), one after another.
async fn validate(client: &Client, schema: &str, keys: &[(&str, &str)]) -> Result<()> {
    let q = quoted_schema(schema)?;
    for (table, name) in keys {
        client.batch_execute(&format!("alter table {q}.{table} validate constraint {name}")).await.map_err(|e| {
            let e = Error::from(e);
            Error::new(
                Kind::Database,
                format!(
                    "foreign key {name} of {schema}.{table} does not hold after a bulk load ({e}): some row references a missing one; the key stays NOT VALID (enforced for new rows) and every run tries to validate it again; this is a defect: report it"
                ),
            )
        })?;
    }
    Ok(())
}

/// A bulk load in progress: the foreign keys and [`INDEXES`] are off while any worker holds one.
pub struct BulkLoad {
    holder: Client,
    schema: String,
}

impl BulkLoad {
    /// Joins (or starts) a bulk load: takes the shared lock, then drops the foreign keys and
    /// the indexes.
    pub async fn begin(url: &str, schema: &str) -> Result<Self> {
        let holder = db::connect(url).await?;
        // Waits only while another run restores the keys (it holds the lock exclusively).
        holder
            .execute(&format!("select pg_advisory_lock_shared({LOCK_KEY_SQL})"), &[&lock_name(schema)])
            .await?;
        let q = quoted_schema(schema)?;
        let mut sql = String::from("begin;");
        for (table, name, _) in FOREIGN_KEYS {
            sql.push_str(&format!("alter table {q}.{table} drop constraint if exists {name};"));
        }
        for (_, name, _) in INDEXES {
            sql.push_str(&format!("drop index if exists {q}.{name};"));
        }
        sql.push_str("commit;");
        holder.batch_execute(&sql).await?;
        tracing::info!(
            "bulk load: foreign keys of content and content_tags, and the index of edges by tag, off until the load ends"
        );
        Ok(Self { holder, schema: schema.to_string() })
    }

    /// Leaves the bulk load; the last worker to leave builds the indexes and restores and
    /// validates the keys.
    pub async fn end(self, admin: &Client) -> Result<()> {
        self.holder
            .execute(
                &format!("select pg_advisory_unlock_shared({LOCK_KEY_SQL})"),
                &[&lock_name(&self.schema)],
            )
            .await?;
        // The holder connection, free now, validates one table while `admin` does the other.
        repair_with(admin, Some(&self.holder), &self.schema).await.map(|_| ())
    }
}
