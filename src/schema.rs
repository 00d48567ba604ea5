//! Creating and upgrading the canonical schema: idempotent, versioned, safe to race.
//!
//! Migrations are numbered SQL files embedded in the binary. [`migrate`] applies the ones a
//! schema has not seen, in one transaction, under a transaction-level advisory lock so two
//! processes starting at once do not both apply them.

use crate::error::{Error, Result};
use tokio_postgres::Client;

/// The embedded migrations, in order: (version, SQL).
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../sql/001_canonical.sql")),
    (2, include_str!("../sql/002_collation_ledger.sql")),
    (3, include_str!("../sql/003_backfill_jobs.sql")),
];

/// Checks a schema name and returns it quoted for SQL.
///
/// Only lowercase letters, digits and `_` (not leading digit, at most 63 bytes) are accepted,
/// which keeps every name usable unquoted by downstream queries.
pub fn quoted_schema(name: &str) -> Result<String> {
    if name.len() > 63 {
        return Err(Error::config(format!(
            "schema name {name:?} is {} bytes long: PostgreSQL names hold at most 63 (e.g. --schema scansync)",
            name.len()
        )));
    }
    if name.starts_with("pg_") || name == "information_schema" {
        return Err(Error::config(format!(
            "schema {name:?} belongs to PostgreSQL (pg_*, information_schema): choose a schema of scansync's own, e.g. --schema scansync"
        )));
    }
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(Error::config(format!(
            "invalid schema name {name:?}: use lowercase letters, digits and _ (e.g. --schema scansync)"
        )))
    }
}

/// Creates the schema if needed and applies every migration it has not seen yet.
/// Returns the number of migrations applied (0 when already current).
pub async fn migrate(client: &mut Client, schema: &str) -> Result<usize> {
    let q = quoted_schema(schema)?;
    let tx = client.transaction().await?;
    tx.execute(
        "select pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("scansync-migrate:{schema}")],
    )
    .await?;
    tx.batch_execute(&format!(
        "create schema if not exists {q};
         set local search_path = {q};
         create table if not exists schema_migrations (
             version int primary key,
             applied_at timestamptz not null default now());"
    ))
    .await?;
    let applied: Vec<i32> =
        tx.query("select version from schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    let mut n = 0;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| Error::from(e).context(format!("migration {version} failed")))?;
        tx.execute("insert into schema_migrations (version) values ($1)", &[version]).await?;
        n += 1;
    }
    tx.commit().await?;
    Ok(n)
}
