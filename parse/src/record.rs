//! Records: raw DynamoDB items in, uniform [`Record`]s or quarantine [`Reject`]s out.
//!
//! Runs on the rayon pool, one page at a time ([`parse_page`]); it never blocks on I/O.
//! Every field-name variant of the upstream contract (docs/contract.md) is normalised here, and
//! every known kind of dirt (docs/contract.md) is repaired by a named [`Rule`] and counted, or the
//! record is rejected with a [`RejectReason`]. Nothing is dropped silently.
//!
//! The names each field arrives under, at the top level and in the metadata, are in one
//! table, [`fields`]. The rest lives by concern: [`rules`] (repair rules and reject
//! reasons), `item` (one item into a record), `page` (a page in, counts out, the window
//! filter), `meta` (the metadata blob and its fallbacks), `entities` (creator, community,
//! stats).

mod ctx;
mod entities;
pub mod fields;
mod item;
mod meta;
mod page;
mod rules;

pub(crate) use ctx::count_text_repairs;
pub use item::parse_item;
pub(crate) use meta::{metadata_of_text, parse_metadata};
pub use page::*;
pub use rules::*;

use crate::time::Timestamp;

/// One scan record, cleaned and in the canonical shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The DynamoDB key of the scan event; breaks ties between equal `updated_at`.
    pub scan_id: String,
    /// The UTC day partition the record was read from.
    pub partition: String,
    /// When the record last changed upstream.
    pub updated_at: Timestamp,
    /// Platform, lowercase.
    pub platform: String,
    /// The platform's post id, as exact text.
    pub external_id: String,
    /// A tombstone: the post (or account) is gone.
    pub deleted: bool,
    /// The post's URL.
    pub url: Option<String>,
    /// The caption text.
    pub caption: Option<String>,
    /// The author, if known.
    pub creator: Option<Creator>,
    /// The community (subreddit, channel, group), if known.
    pub community: Option<Community>,
    /// Normalised, de-duplicated tags.
    pub tags: Vec<String>,
    /// Engagement counts as exact decimals: views, likes, comments, shares.
    pub stats: [Option<String>; 4],
    /// Publication time.
    pub posted_at: Option<Timestamp>,
    /// The metadata blob as `jsonb`-safe JSON text.
    pub metadata: Option<String>,
    /// Drifted attributes by name, as a `jsonb`-safe JSON object.
    pub extra: Option<String>,
    /// Set when this record stands for the removal of a DynamoDB item (an incremental
    /// export's delete, a stream's REMOVE): it is then a tombstone of the removed version
    /// (docs/contract.md, "Removals").
    pub removal: Option<Removal>,
}

/// The removal of an item, as a tombstone: the record carries the removed item's values,
/// `deleted` is set, and its version is the removed version plus 1 µs, so that it covers
/// exactly that version and older ones, never a newer scan of the same post, whatever the
/// order records arrive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// When the source removed the item (the incremental export's `WriteTimestampMicros`,
    /// the stream record's `ApproximateCreationDateTime`), if known.
    pub at: Option<Timestamp>,
    /// The removal is a TTL expiry (the stream record's `userIdentity` is the DynamoDB
    /// service): it tombstones only when the run is asked to (`--ttl-removals tombstone`).
    pub by_ttl: bool,
}

/// A creator as one record describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Creator {
    /// The platform's creator id; if absent, the handle lowercased.
    pub external_id: String,
    /// The handle.
    pub handle: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// Follower count, exact.
    pub followers: Option<String>,
    /// The creator map says the account is gone.
    pub deleted: bool,
}

/// A community as one record describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Community {
    /// The community id; if absent, the name lowercased.
    pub external_id: String,
    /// The community name.
    pub name: Option<String>,
}

#[cfg(test)]
mod tests;
