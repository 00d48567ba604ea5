//! The run lock: a PostgreSQL session advisory lock named after the sync target.
//!
//! Held on its own connection for the whole run. If the process dies, the connection dies
//! and PostgreSQL releases the lock: no stale lock files, no manual cleanup.

use crate::db;
use crate::error::{Error, Kind, Result};
use tokio_postgres::Client;

/// Returns the lock name of a sync target (its schema).
pub fn lock_name(schema: &str) -> String {
    format!("scansync:{schema}")
}

/// A held run lock; dropping it closes the connection, which releases the lock.
pub struct RunLock {
    _client: Client,
}

/// Takes the lock of `schema`, or fails at once with [`Kind::Locked`].
pub async fn acquire(url: &str, schema: &str) -> Result<RunLock> {
    let client = db::connect(url).await?;
    let got: bool = client
        .query_one("select pg_try_advisory_lock(hashtextextended($1, 0))", &[&lock_name(schema)])
        .await?
        .get(0);
    if !got {
        return Err(Error::new(
            Kind::Locked,
            format!(
                "another scansync run holds the lock of schema {schema}; nothing was done (it is released when that run ends)"
            ),
        ));
    }
    Ok(RunLock { _client: client })
}
