//! The checkpoint store chosen on the command line, built from its flags.

use super::postgres::{PgCheckpoint, INCREMENTAL};
use super::ssm::SsmCheckpoint;
use super::CheckpointStore;
use crate::cli::{CheckpointArgs, CheckpointKind};
use crate::error::{Error, Result};
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
    /// Builds the store the flags describe.
    pub async fn from_args(
        a: &CheckpointArgs,
        client: Arc<tokio_postgres::Client>,
        schema: &str,
    ) -> Result<Self> {
        match a.checkpoint {
            CheckpointKind::Postgres => {
                Ok(AnyCheckpoint::Pg(PgCheckpoint::new(client, schema, INCREMENTAL)?))
            }
            CheckpointKind::Ssm => {
                let name = a.ssm_parameter.as_deref().ok_or_else(|| {
                    Error::config("--checkpoint ssm needs --ssm-parameter NAME (or SCANSYNC_SSM_PARAMETER)")
                })?;
                Ok(AnyCheckpoint::Ssm(SsmCheckpoint::from_env(name).await?))
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
