//! DynamoDB Streams, as the follower reads them: the [`StreamApi`] boundary (the AWS SDK in
//! production, `aws.rs`; an in-memory stream with splits, `memory.rs`, for tests), the shard
//! tree (`shards.rs`: which shard may be read when), and stream records turned into the raw
//! records every source delivers (`records.rs`).
//!
//! A stream is a tree of shards. Each holds the changes of some keys in write order; a shard
//! is closed (it has an ending sequence number) when it rolls over (every 4 hours) or splits,
//! and its children continue its keys. So a child is read only after its parent was read to
//! its end, and a key's changes arrive in the order they were written. Records live 24 hours.

pub mod aws;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod records;
pub mod shards;

use crate::attr::Item;
use crate::error::Error;
use crate::time::Timestamp;
use std::future::Future;

/// What a table's stream carries (`StreamViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewType {
    /// New and old images: every change can be applied, removals included.
    NewAndOldImages,
    /// New images only: removals say only their key (they are quarantined).
    NewImage,
    /// Old images only: nothing to apply.
    OldImage,
    /// Keys only: nothing to apply.
    KeysOnly,
}

impl ViewType {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ViewType::NewAndOldImages => "NEW_AND_OLD_IMAGES",
            ViewType::NewImage => "NEW_IMAGE",
            ViewType::OldImage => "OLD_IMAGE",
            ViewType::KeysOnly => "KEYS_ONLY",
        }
    }
}

/// A table's current stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Its ARN (a new one after the stream was disabled and enabled again).
    pub arn: String,
    /// What its records carry.
    pub view: ViewType,
    /// When it was enabled, if the API says.
    pub created: Option<Timestamp>,
}

/// One shard of a stream, as `DescribeStream` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The shard's id.
    pub id: String,
    /// The shard it continues (read to its end first), if any.
    pub parent: Option<String>,
    /// Closed: it has an ending sequence number and receives nothing more.
    pub closed: bool,
}

/// Where to start reading a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// Its oldest record still kept (`TRIM_HORIZON`).
    Oldest,
    /// Right after this sequence number (`AFTER_SEQUENCE_NUMBER`).
    After(String),
}

/// One change of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Its sequence number (decimal digits; greater is later within a shard).
    pub seq: String,
    /// `ApproximateCreationDateTime`: about when the write happened.
    pub at: Option<Timestamp>,
    /// What happened.
    pub kind: ChangeKind,
}

/// What a change did to its item.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    /// Written (INSERT or MODIFY): the item as it is now.
    Put(Item),
    /// Removed (REMOVE): the item as it was, when the stream carries old images; its key.
    Remove {
        /// The item before the removal (`None` with a NEW_IMAGE stream).
        old: Option<Item>,
        /// The item's key.
        keys: Item,
        /// The DynamoDB service removed it (a TTL expiry), not a writer.
        by_ttl: bool,
    },
}

/// One `GetRecords` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Records {
    /// The changes, in sequence order.
    pub changes: Vec<Change>,
    /// The iterator for the next call; `None` when the shard is closed and read to its end.
    pub next: Option<String>,
}

/// Why a read of a shard failed.
#[derive(Debug)]
pub enum ReadFailure {
    /// The iterator is older than 15 minutes: ask for a new one from the position.
    Expired,
    /// The records after the position were trimmed (older than 24 hours): they are lost.
    Trimmed,
    /// The shard no longer exists (it aged out): whatever of it was not read is lost.
    Gone,
    /// Anything else (throttling and 5xx are [`crate::Kind::Connection`]: retried).
    Other(Error),
}

impl From<Error> for ReadFailure {
    fn from(e: Error) -> Self {
        ReadFailure::Other(e)
    }
}

/// The stream API the follower reads through.
///
/// Guarantee expected of an implementation: the changes of a shard come in sequence order,
/// each once per iterator; an iterator obtained `After(seq)` yields exactly the changes
/// after `seq` that are still kept (or fails with [`ReadFailure::Trimmed`] when some are
/// not).
pub trait StreamApi: Send + Sync + 'static {
    /// The table's current stream; `None` when it has none.
    fn stream_of(&self, table: &str) -> impl Future<Output = Result<Option<StreamInfo>, Error>> + Send;

    /// Every shard of the stream (all pages of `DescribeStream`).
    fn shards(&self, arn: &str) -> impl Future<Output = Result<Vec<Shard>, Error>> + Send;

    /// An iterator for `shard`, starting `from`.
    fn iterator(
        &self,
        arn: &str,
        shard: &str,
        from: &StartAt,
    ) -> impl Future<Output = Result<String, ReadFailure>> + Send;

    /// Up to `limit` changes from `iterator` (at most 1000).
    fn records(
        &self,
        iterator: &str,
        limit: i32,
    ) -> impl Future<Output = Result<Records, ReadFailure>> + Send;
}
