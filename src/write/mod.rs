//! Where records land: the [`Sink`] boundary, its PostgreSQL implementation and an
//! in-memory twin that keeps the same merge rules for unit tests.

pub mod batch;
pub mod copy;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod postgres;
pub mod sql;

use crate::error::Result;
use crate::parse::ParsedPage;
use std::future::Future;

pub use crate::stats::WriteStats;

/// A destination for parsed pages.
///
/// Guarantee expected of every sink: writes are **idempotent and monotonic**
/// (docs/contract.md): the same records written twice, in any order, with any interleaving
/// of pages, leave the same state. The pipeline relies on that to retry pages and to
/// re-process windows after a failure. What [`PageWriter::write`] makes durable, and when,
/// is on that method.
pub trait Sink: Send + Sync + 'static {
    /// A page made ready for writing (folded, encoded): built on the rayon pool.
    type Prepared: Send + Sync + 'static;
    /// One writer; the pipeline runs several at once, each on its own connection.
    type Writer: PageWriter<Prepared = Self::Prepared>;

    /// Prepares a page for writing. CPU only: runs on the rayon pool, never on tokio (a
    /// writer's own CPU work is bounded by what it writes: [`Sink::prepare_owned`]).
    fn prepare(&self, page: &ParsedPage) -> Self::Prepared;

    /// Prepares a page the caller no longer needs (the pipeline's): a sink may keep its
    /// records and leave work to its writer that the writer may find it need not do (the
    /// PostgreSQL sink encodes only the rows its first phase keeps). The default:
    /// [`Sink::prepare`].
    fn prepare_owned(&self, page: ParsedPage) -> Self::Prepared {
        self.prepare(&page)
    }

    /// Opens one writer.
    fn writer(&self) -> impl Future<Output = Result<Self::Writer>> + Send;

    /// Makes every page committed so far durable: called before the checkpoint moves past
    /// them. Writers may commit pages without waiting for their flush to disk (the
    /// PostgreSQL writer does); this waits for all of them at once. The default: pages are
    /// durable when they commit.
    fn make_durable(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

/// Writes prepared pages, one transaction each.
pub trait PageWriter: Send + 'static {
    /// What [`Sink::prepare`] produced.
    type Prepared: Send + Sync + 'static;

    /// Writes one page. When it returns `Ok`, the whole page is committed: visible to every
    /// reader, but not necessarily flushed to disk (the PostgreSQL writer commits with
    /// `synchronous_commit = off`); it is durable once [`Sink::make_durable`] has returned,
    /// which the run calls before the checkpoint passes the page. On an error, the page's
    /// content rows and tag edges are not written, but rows that only *add* facts may
    /// already be (the PostgreSQL writer commits new creators, communities and tags in a
    /// short transaction before the page's own): they carry the newest version the page
    /// has, so writing the page again, or any newer one, converges. A retryable error
    /// leaves the writer usable (it reconnects if it must).
    fn write(&mut self, page: &Self::Prepared) -> impl Future<Output = Result<WriteStats>> + Send;
}
