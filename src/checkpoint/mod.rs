//! Where progress lives: the [`CheckpointStore`] boundary.
//!
//! The checkpoint is the start time (UTC) of the last successful incremental run. It is
//! written only after every page of a run has committed, so it can never move past data
//! that is not durable; the PostgreSQL store also refuses to move it backwards.

pub mod any;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod postgres;
pub mod ssm;

use crate::error::Result;
use crate::time::Timestamp;
use std::future::Future;

/// A store for the incremental checkpoint.
pub trait CheckpointStore: Send + Sync {
    /// Reads the checkpoint; `None` before the first successful run.
    fn read(&self) -> impl Future<Output = Result<Option<Timestamp>>> + Send;

    /// Writes the checkpoint once (the caller retries with backoff).
    fn write(&self, at: Timestamp) -> impl Future<Output = Result<()>> + Send;
}
