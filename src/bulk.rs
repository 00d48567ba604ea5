//! The bulk path: a large backfill loads without per-row foreign-key checks and proves the
//! model's integrity once, set-based, at the end.
//!
//! Per-row foreign-key checks of `content` and `content_tags` are about half the cost of a
//! first load (`loadgen bench`'s model ceiling with and without them). A bulk worker:
//!
//! 1. holds a *shared* advisory lock (`scansync-bulk:<schema>`) on a connection of its own
//!    for as long as it runs: it ends with the process, however the process ends;
//! 2. drops the four foreign keys of `content` and `content_tags` (when present);
//! 3. when it ends (done, failed or stopped), lets go of its shared lock and, if it can
//!    take the same lock *exclusively* (no other bulk worker is alive), restores them:
//!    `ADD CONSTRAINT … NOT VALID` (a brief lock, no scan) and then `VALIDATE CONSTRAINT`
//!    (one pass over the table, concurrent writes allowed).
//!
//! Every other run repairs on start what a killed bulk worker left ([`repair`]): when a
//! foreign key is missing or not validated and no bulk worker is alive, it restores it the
//! same way. An incremental sync during a bulk load stays correct: it writes creators,
//! communities and tags before the rows that reference them, as always; the foreign keys
//! check the model, they do not steer the writes. Their validation at the end proves that
//! nothing written meanwhile breaks them.

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

fn lock_name(schema: &str) -> String {
    format!("scansync-bulk:{schema}")
}

/// The state of each foreign key: `None` absent, `Some(validated)` present.
pub async fn states(client: &Client, schema: &str) -> Result<Vec<(&'static str, Option<bool>)>> {
    let rows = client
        .query(
            "select conname::text, convalidated from pg_constraint
             where contype = 'f' and connamespace = (select oid from pg_namespace where nspname = $1)",
            &[&schema],
        )
        .await?;
    Ok(FOREIGN_KEYS
        .iter()
        .map(|(_, name, _)| {
            let state = rows.iter().find(|r| r.get::<_, String>(0) == *name).map(|r| r.get::<_, bool>(1));
            (*name, state)
        })
        .collect())
}

/// Restores foreign keys a bulk load dropped, unless a bulk worker is alive. Returns true
/// when it restored any. Called at the start of every run that is not a bulk load.
pub async fn repair(client: &Client, schema: &str) -> Result<bool> {
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
    let restored = restore(client, schema).await;
    client.execute(&format!("select pg_advisory_unlock({LOCK_KEY_SQL})"), &[&name]).await?;
    restored.map(|()| true)
}

/// Adds the missing foreign keys `NOT VALID`, then validates every one not validated.
async fn restore(client: &Client, schema: &str) -> Result<()> {
    let q = quoted_schema(schema)?;
    let states = states(client, schema).await?;
    let started = std::time::Instant::now();
    for ((table, name, def), (_, state)) in FOREIGN_KEYS.iter().zip(&states) {
        if state.is_none() {
            let def = def.replace("references ", &format!("references {q}."));
            client
                .batch_execute(&format!("alter table {q}.{table} add constraint {name} {def} not valid"))
                .await?;
        }
    }
    for ((table, name, _), (_, state)) in FOREIGN_KEYS.iter().zip(&states) {
        if *state != Some(true) {
            client.batch_execute(&format!("alter table {q}.{table} validate constraint {name}")).await.map_err(
                |e| {
                    let e = Error::from(e);
                    Error::new(
                        Kind::Database,
                        format!(
                            "foreign key {name} of {schema}.{table} does not hold after a bulk load ({e}): some row references a missing one; the key stays NOT VALID (enforced for new rows) and every run tries to validate it again; this is a defect: report it"
                        ),
                    )
                },
            )?;
        }
    }
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "foreign keys restored and validated");
    Ok(())
}

/// A bulk load in progress: the foreign keys are off while any worker holds one.
pub struct BulkLoad {
    holder: Client,
    schema: String,
}

impl BulkLoad {
    /// Joins (or starts) a bulk load: takes the shared lock, then drops the foreign keys.
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
        sql.push_str("commit;");
        holder.batch_execute(&sql).await?;
        tracing::info!("bulk load: foreign keys of content and content_tags off until the load ends");
        Ok(Self { holder, schema: schema.to_string() })
    }

    /// Leaves the bulk load; the last worker to leave restores and validates the keys.
    pub async fn end(self, admin: &Client) -> Result<()> {
        self.holder
            .execute(
                &format!("select pg_advisory_unlock_shared({LOCK_KEY_SQL})"),
                &[&lock_name(&self.schema)],
            )
            .await?;
        drop(self.holder);
        repair(admin, &self.schema).await.map(|_| ())
    }
}
