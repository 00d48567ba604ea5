//! The checkpoint in a PostgreSQL table of the canonical schema (the embedded default).

use super::CheckpointStore;
use crate::error::Result;
use crate::schema::quoted_schema;
use crate::time::Timestamp;
use std::sync::Arc;
use tokio_postgres::Client;

/// The name of the incremental checkpoint row.
pub const INCREMENTAL: &str = "incremental";

/// Reads and writes `checkpoints` in one schema.
#[derive(Clone)]
pub struct PgCheckpoint {
    client: Arc<Client>,
    table: String,
    name: String,
}

impl PgCheckpoint {
    /// Creates a store on an open connection.
    pub fn new(client: Arc<Client>, schema: &str, name: &str) -> Result<Self> {
        Ok(Self { client, table: format!("{}.checkpoints", quoted_schema(schema)?), name: name.to_owned() })
    }
}

impl CheckpointStore for PgCheckpoint {
    async fn read(&self) -> Result<Option<Timestamp>> {
        let sql =
            format!("select (extract(epoch from value) * 1000000)::int8 from {} where name = $1", self.table);
        let row = self.client.query_opt(&sql, &[&self.name]).await?;
        Ok(row.map(|r| Timestamp(r.get(0))))
    }

    async fn write(&self, at: Timestamp) -> Result<()> {
        // greatest(): a checkpoint never moves backwards, whatever the order of writers.
        let sql = format!(
            "insert into {t} as c (name, value, updated_at)
             values ($1, $2::text::timestamptz, now())
             on conflict (name) do update
             set value = greatest(c.value, excluded.value), updated_at = now()",
            t = self.table
        );
        self.client.execute(&sql, &[&self.name, &at.to_pg()]).await?;
        Ok(())
    }
}
