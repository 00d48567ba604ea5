//! What a run hands the pipeline besides what it reads.

use crate::lock::LockWatch;
use crate::shutdown::Stop;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What a run hands the pipeline besides what it reads: how to stop, the lock to watch, and
/// where to report progress.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Requested by a signal or a deadline: writers stop before their next page.
    pub stop: Stop,
    /// The run lock: writers stop before their next page once it is lost.
    pub lock: Option<LockWatch>,
    /// Counts raw records of committed pages (for a progress display).
    pub progress: Option<Arc<AtomicU64>>,
    /// Observes each committed page's write time, retries included (for `/metrics`).
    pub page_seconds: Option<Histogram>,
}
