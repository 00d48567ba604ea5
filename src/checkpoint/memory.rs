//! An in-memory checkpoint store for unit tests, with injectable write failures.

use super::CheckpointStore;
use crate::error::{Error, Kind, Result};
use crate::time::Timestamp;
use std::sync::{Arc, Mutex};

/// A checkpoint in memory; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpoint {
    value: Arc<Mutex<Option<Timestamp>>>,
    failures_left: Arc<Mutex<usize>>,
}

impl MemoryCheckpoint {
    /// Creates a store holding `value`.
    pub fn new(value: Option<Timestamp>) -> Self {
        Self { value: Arc::new(Mutex::new(value)), ..Self::default() }
    }

    /// Makes the next `n` writes fail with a retryable error.
    pub fn fail_next_writes(&self, n: usize) {
        *self.failures_left.lock().expect("poisoned") = n;
    }

    /// Returns the current value.
    pub fn get(&self) -> Option<Timestamp> {
        *self.value.lock().expect("poisoned")
    }
}

impl CheckpointStore for MemoryCheckpoint {
    async fn read(&self) -> Result<Option<Timestamp>> {
        Ok(self.get())
    }

    async fn write(&self, at: Timestamp) -> Result<()> {
        let mut left = self.failures_left.lock().expect("poisoned");
        if *left > 0 {
            *left -= 1;
            return Err(Error::new(Kind::Connection, "injected checkpoint write failure"));
        }
        *self.value.lock().expect("poisoned") = Some(at);
        Ok(())
    }
}
