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
    (4, include_str!("../sql/004_removals_streams.sql")),
    (5, include_str!("../sql/005_verify.sql")),
    (6, include_str!("../sql/006_staged_load.sql")),
    (7, include_str!("../sql/007_fold_winners.sql")),
    (8, include_str!("../sql/008_fold_losers.sql")),
];

/// The newest migration applied to `schema`; `None` when it holds no scansync store. Reads
/// only (for commands that must not write, such as `verify`).
pub async fn version(client: &Client, schema: &str) -> Result<Option<i32>> {
    let q = quoted_schema(schema)?;
    let has: bool = client
        .query_one("select to_regclass($1) is not null", &[&format!("{q}.schema_migrations")])
        .await?
        .get(0);
    if !has {
        return Ok(None);
    }
    let v = client.query_one(&format!("select max(version) from {q}.schema_migrations"), &[]).await?;
    Ok(v.get::<_, Option<i32>>(0))
}

/// The version [`migrate`] brings a schema to.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

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

/// A `42501` (insufficient privilege) with what to grant, any other error as it is.
fn privilege_error(e: tokio_postgres::Error, what_to_grant: &str) -> Error {
    let denied = e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
    let base = Error::from_pg(e);
    if denied {
        Error::new(base.kind(), format!("{}: {what_to_grant}", base.message()))
    } else {
        base
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
    // `create schema if not exists` needs CREATE on the database even when the schema
    // exists: a role that owns only its schema must not need it.
    let exists: bool = tx
        .query_one("select exists (select 1 from pg_namespace where nspname = $1)", &[&schema])
        .await?
        .get(0);
    if !exists {
        tx.batch_execute(&format!("create schema {q}")).await.map_err(|e| {
            privilege_error(e, &format!(
                "creating schema {schema} needs CREATE on the database: grant it (`grant create on database <db> to <role>`), or have an administrator create the schema owned by this role (`create schema {schema} authorization <role>`); see docs/operations.md"
            ))
        })?;
    }
    // Without USAGE the schema is invisible (search_path skips it), and without CREATE no
    // table can be made: say which privilege is missing instead of "no schema selected".
    let (usage, create): (bool, bool) = {
        let r = tx
            .query_one(
                "select has_schema_privilege($1, 'USAGE'), has_schema_privilege($1, 'CREATE')",
                &[&schema],
            )
            .await?;
        (r.get(0), r.get(1))
    };
    let denied = |what: &str| {
        Error::new(
            crate::error::Kind::Database,
            format!(
                "permission denied for schema {schema} (SQLSTATE 42501): the role has no {what} on it; it needs to own schema {schema} (`alter schema {schema} owner to <role>`, or create it `authorization <role>`); see docs/operations.md"
            ),
        )
    };
    if !usage {
        return Err(denied("USAGE"));
    }
    tx.batch_execute(&format!("set local search_path = {q}")).await?;
    let has_table: bool =
        tx.query_one("select to_regclass('schema_migrations') is not null", &[]).await?.get(0);
    if !has_table {
        if !create {
            return Err(denied("CREATE"));
        }
        tx.batch_execute(
            "create table schema_migrations (
                 version int primary key,
                 applied_at timestamptz not null default now());",
        )
        .await?;
    }
    let applied: Vec<i32> =
        tx.query("select version from schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    if MIGRATIONS.iter().any(|(v, _)| !applied.contains(v)) && !create {
        return Err(denied("CREATE (a migration is pending)"));
    }
    let mut n = 0;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|e| {
            privilege_error(e, &format!(
                "migration {version} needs the role to own schema {schema} and its tables: `alter schema {schema} owner to <role>`, and the tables too if another role created them"
            ))
            .context(format!("migration {version} failed"))
        })?;
        tx.execute("insert into schema_migrations (version) values ($1)", &[version]).await?;
        n += 1;
    }
    tx.commit().await?;
    Ok(n)
}
