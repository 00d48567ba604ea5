//! The run lock: a PostgreSQL session advisory lock named after the sync target.
//!
//! Held on its own connection for the whole run. If the process dies, the connection dies
//! and PostgreSQL releases the lock: no stale lock files, no manual cleanup. The other side
//! of that coin: if the *connection* dies while the process lives (PostgreSQL restarted or
//! failed over), the lock is gone and another run may take it. So the connection is
//! watched ([`LockWatch`]): once it is lost, writers stop before their next page and the
//! checkpoint is not written.

use crate::db;
use crate::error::{Error, Kind, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// How often the lock's connection is checked while a run holds it.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// How long a check may take before the lock counts as lost.
const WATCH_TIMEOUT: Duration = Duration::from_secs(15);

/// Returns the lock name of a sync target (its schema).
pub fn lock_name(schema: &str) -> String {
    format!("scansync:{schema}")
}

/// The SQL expression of the lock's key (a bigint), given the name as `$1`.
pub const LOCK_KEY_SQL: &str = "hashtextextended($1::text, 0)";

/// A held lock (the run lock, or a backfill worker's); dropping it closes the connection,
/// which releases the lock.
pub struct RunLock {
    watch: LockWatch,
    watchdog: tokio::task::JoinHandle<()>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.watchdog.abort();
    }
}

impl RunLock {
    /// Returns a handle that tells whether the lock is still held.
    pub fn watch(&self) -> LockWatch {
        self.watch.clone()
    }
}

/// Tells whether a run still holds its lock. Cheap to clone; shared by the writers and the
/// checkpoint step.
#[derive(Clone)]
pub struct LockWatch {
    client: Arc<Client>,
    name: Arc<str>,
    lost: Arc<AtomicBool>,
}

impl std::fmt::Debug for LockWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockWatch").field("lost", &self.lost.load(Ordering::Relaxed)).finish()
    }
}

impl LockWatch {
    /// Fails fast if the watchdog has seen the lock's connection die.
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::Relaxed) || self.client.is_closed() {
            self.lost.store(true, Ordering::Relaxed);
            return Err(lost());
        }
        Ok(())
    }

    /// Asks the lock's connection now (before the checkpoint is written) whether its
    /// session still holds the lock: fails if the connection is gone or the lock is not
    /// this session's, so the lock may be another run's.
    ///
    /// A query that fails while the connection stays open says nothing about the lock (the
    /// session, and the lock with it, lives as long as the connection): it is asked again,
    /// up to three times. Only an answer "not held", a closed connection or no answer within
    /// [`WATCH_TIMEOUT`] count as lost.
    pub async fn verify(&self) -> Result<()> {
        self.check()?;
        let sql = format!("select {}", held_by_me_sql("$1::text"));
        let mut why = String::new();
        for _ in 0..3 {
            match tokio::time::timeout(WATCH_TIMEOUT, self.client.query_one(&sql, &[&&*self.name])).await {
                Ok(Ok(row)) if row.get::<_, bool>(0) => return Ok(()),
                Ok(Ok(_)) => why = "pg_locks says this session does not hold it".into(),
                Ok(Err(e)) if !self.client.is_closed() => {
                    tracing::warn!(error = %e, "asking whether the lock is held failed; asking again");
                    why = e.to_string();
                    continue;
                }
                Ok(Err(e)) => why = format!("its connection closed ({e})"),
                Err(_) => why = format!("no answer within {} s", WATCH_TIMEOUT.as_secs()),
            }
            break;
        }
        tracing::error!(lock = %self.name, why, "the lock is lost");
        self.lost.store(true, Ordering::Relaxed);
        Err(lost())
    }
}

fn lost() -> Error {
    Error::new(
        Kind::LockLost,
        "lost the run lock: its PostgreSQL connection closed (a restart or failover?), so another run may have taken it; this run stopped writing and did not move the checkpoint (pages committed so far are kept; the next run re-processes the window)",
    )
}

/// Takes the lock of `schema`, or fails at once with [`Kind::Locked`].
pub async fn acquire(url: &str, schema: &str) -> Result<RunLock> {
    take(url, &lock_name(schema)).await?.ok_or_else(|| {
        Error::new(
            Kind::Locked,
            format!(
                "another scansync run holds the lock of schema {schema}; nothing was done (it is released when that run ends)"
            ),
        )
    })
}

/// Returns the advisory lock name of backfill worker `id` of `schema`: held by the worker
/// for its whole life, it ties the worker's claims on units to its connection.
pub fn worker_lock_name(schema: &str, id: i64) -> String {
    format!("scansync-backfill-worker:{schema}:{id}")
}

/// The SQL condition "worker `w` of this schema is alive" (holds its advisory lock), for a
/// query with the schema name as `$schema_param`.
pub fn worker_alive_sql(w: &str, schema_param: &str) -> String {
    held_sql(&format!("'scansync-backfill-worker:' || {schema_param}::text || ':' || {w}.id"))
}

/// The lock name of the follower of `table` in `schema`: one follower per table.
pub fn follow_lock_name(schema: &str, table: &str) -> String {
    format!("scansync-follow:{schema}:{table}")
}

/// [`follow_lock_name`] as a SQL text expression of a schema and a table expression.
pub fn follow_lock_sql(schema_param: &str, table: &str) -> String {
    format!("'scansync-follow:' || {schema_param}::text || ':' || {table}")
}

/// The lock of `verify --repair` (and of serve's recorded verifies) in `schema`: one at a
/// time, beside the syncs (its writes are the writer's, idempotent and monotonic).
pub fn verify_lock_name(schema: &str) -> String {
    format!("scansync-verify:{schema}")
}

/// Takes the verify lock of `schema`, or fails at once with [`Kind::Locked`].
pub async fn acquire_verifier(url: &str, schema: &str) -> Result<RunLock> {
    take(url, &verify_lock_name(schema)).await?.ok_or_else(|| {
        Error::new(Kind::Locked, format!("another verify of schema {schema} is running; nothing was done"))
    })
}

/// Takes the lock of the follower of `table`, or fails at once with [`Kind::Locked`].
pub async fn acquire_follower(url: &str, schema: &str, table: &str) -> Result<RunLock> {
    take(url, &follow_lock_name(schema, table)).await?.ok_or_else(|| {
        Error::new(
            Kind::Locked,
            format!("another follower of table {table} holds the lock of schema {schema}; nothing was done (one follower per table)"),
        )
    })
}

/// Takes the lock of backfill worker `id` (fresh ids are never held, so this only fails if
/// the connection does).
pub async fn acquire_worker(url: &str, schema: &str, id: i64) -> Result<RunLock> {
    take(url, &worker_lock_name(schema, id))
        .await?
        .ok_or_else(|| Error::internal(format!("the lock of backfill worker {id} is already held")))
}

/// Takes the session advisory lock `name` on a connection of its own, watched; `None` when
/// another session holds it. A URL that leads to a transaction-pooling connection pooler is
/// refused first ([`refuse_transaction_pooling`]).
async fn take(url: &str, name: &str) -> Result<Option<RunLock>> {
    let client = Arc::new(db::connect(url).await?);
    refuse_transaction_pooling(url, &client).await?;
    let got: bool =
        client.query_one(&format!("select pg_try_advisory_lock({LOCK_KEY_SQL})"), &[&name]).await?.get(0);
    if !got {
        return Ok(None);
    }
    let watch = LockWatch { client, name: name.into(), lost: Arc::new(AtomicBool::new(false)) };
    let w = watch.clone();
    let watchdog = tokio::spawn(async move {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if w.verify().await.is_err() {
                tracing::error!("the run lock's connection is gone: stopping before the next page");
                return;
            }
        }
    });
    Ok(Some(RunLock { watch, watchdog }))
}

/// Refuses a database URL that leads to a connection pooler in transaction (or statement)
/// mode, such as PgBouncer with `pool_mode = transaction`: scansync's locks are session
/// advisory locks and its writers' staging tables are temporary tables of their session,
/// and such a pooler lends each transaction whichever server session is free, to any
/// client. Two direct sessions never share a PostgreSQL backend; behind such a pooler, a
/// second client's statement runs on the backend this session's statement just released.
async fn refuse_transaction_pooling(url: &str, client: &Client) -> Result<()> {
    async fn pid(c: &Client) -> Result<i32> {
        Ok(c.query_one("select pg_backend_pid()", &[]).await?.get(0))
    }
    let mine = pid(client).await?;
    // The probe is a second session: if it cannot be had, the check is skipped (the lock's
    // watch still asks that this very session holds the lock).
    let other = match db::connect(url).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not open a second session to check for a transaction pooler; going on");
            return Ok(());
        }
    };
    let (Ok(theirs), Ok(mine_again)) = (pid(&other).await, pid(client).await) else {
        tracing::warn!("the check for a transaction pooler was cut short; going on");
        return Ok(());
    };
    if theirs == mine || mine_again != mine {
        return Err(Error::config(format!(
            "the database URL leads to a connection pooler in transaction mode (two clients were served by one PostgreSQL backend, pid {mine}): scansync's run lock is a session advisory lock and its staging tables belong to its session, which such a pooler shares between clients; connect to PostgreSQL directly, or through a pool in session mode (PgBouncer: pool_mode = session)"
        )));
    }
    Ok(())
}

/// The SQL condition "this session holds the advisory lock named by the text expression
/// `name`".
fn held_by_me_sql(name: &str) -> String {
    held_sql(name).replacen("and granted", "and granted and pid = pg_backend_pid()", 1)
}

/// The SQL condition "some session of this database holds the advisory lock named by the
/// text expression `name`" (read from `pg_locks`, without taking it). An advisory lock on a
/// bigint key shows there as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
pub fn held_sql(name: &str) -> String {
    format!(
        "exists (select 1 from pg_locks where locktype = 'advisory' and objsubid = 1 and granted
            and database = (select oid from pg_database where datname = current_database())
            and ((classid::int8 << 32) | objid::int8) = hashtextextended({name}, 0))"
    )
}

/// Tells whether any session holds the run lock of `schema` (read from `pg_locks`, without
/// taking it: a probe must never make a starting run exit 75).
pub async fn is_held(client: &Client, schema: &str) -> Result<bool> {
    let sql = format!("select {}", held_sql("$1::text"));
    Ok(client.query_one(&sql, &[&lock_name(schema)]).await?.get(0))
}
