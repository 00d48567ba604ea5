//! The checkpoint store chosen on the command line, built from its flags.

use super::postgres::{PgCheckpoint, INCREMENTAL};
use super::ssm::SsmCheckpoint;
use super::CheckpointStore;
use crate::config::CheckpointConfig;
use crate::error::Result;
use crate::time::Timestamp;
use std::sync::Arc;

/// A checkpoint store chosen on the command line.
pub enum AnyCheckpoint {
    /// The PostgreSQL table.
    Pg(PgCheckpoint),
    /// An SSM parameter.
    Ssm(SsmCheckpoint),
}

impl AnyCheckpoint {
    /// Builds the store a configuration describes.
    pub async fn open(
        config: &CheckpointConfig,
        client: Arc<tokio_postgres::Client>,
        schema: &str,
    ) -> Result<Self> {
        match config {
            CheckpointConfig::Postgres => {
                Ok(AnyCheckpoint::Pg(PgCheckpoint::new(client, schema, INCREMENTAL)?))
            }
            CheckpointConfig::Ssm { parameter } => {
                Ok(AnyCheckpoint::Ssm(SsmCheckpoint::from_env(parameter).await?))
            }
        }
    }
}

impl CheckpointStore for AnyCheckpoint {
    async fn read(&self) -> Result<Option<Timestamp>> {
        match self {
            AnyCheckpoint::Pg(s) => s.read().await,
            AnyCheckpoint::Ssm(s) => s.read().await,
        }
    }

    async fn write(&self, at: Timestamp) -> Result<()> {
        match self {
            AnyCheckpoint::Pg(s) => s.write(at).await,
            AnyCheckpoint::Ssm(s) => s.write(at).await,
        }
    }
}
