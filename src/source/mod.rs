//! Where records come from: the [`Source`] boundary and its implementations.
//!
//! Guarantee: **at-least-once**. A source delivers every record of the units it is asked
//! for, possibly more than once and in any order; the sink's idempotent, monotonic merges
//! make that safe. Sources deliver raw payloads: turning them into items (JSON parsing,
//! SDK value conversion) is CPU work and happens on the rayon pool, in [`Payload::into_raw`].

pub mod dynamodb;
pub mod export;
pub mod generated;
pub mod memory;

use crate::attr::Item;
use crate::error::Result;
use crate::parse::export::decode_export_line;
use crate::parse::RawRecord;
use crate::time::Day;
use std::collections::HashMap;
use std::future::Future;

/// A page of raw records from one unit (a day partition, an export file).
#[derive(Debug)]
pub struct RawPage {
    /// The unit's label (`2026-11-26`, a file name): used in logs and the quarantine.
    pub unit: String,
    /// The records, not yet decoded.
    pub payload: Payload,
}

/// Raw records as a source has them.
#[derive(Debug)]
pub enum Payload {
    /// Items already in the shared model.
    Items(Vec<Item>),
    /// DynamoDB SDK items.
    Sdk(Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>),
    /// Export lines (`{"Item": {…}}` in DynamoDB JSON), undecoded.
    Lines(Vec<Vec<u8>>),
}

impl Payload {
    /// Returns how many raw records the payload holds.
    pub fn len(&self) -> usize {
        match self {
            Payload::Items(x) => x.len(),
            Payload::Sdk(x) => x.len(),
            Payload::Lines(x) => x.len(),
        }
    }

    /// Tells whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes the payload into raw records. CPU work: call it on the rayon pool.
    pub fn into_raw(self) -> Vec<RawRecord> {
        match self {
            Payload::Items(items) => items.into_iter().map(RawRecord::Item).collect(),
            Payload::Sdk(items) => items
                .into_iter()
                .map(|m| {
                    RawRecord::Item(m.into_iter().map(|(k, v)| (k, crate::attr::sdk::from_sdk(v))).collect())
                })
                .collect(),
            Payload::Lines(lines) => lines.into_iter().map(decode_export_line).collect(),
        }
    }
}

/// The `updatedAt` key bounds of an incremental fetch (DESIGN §1.4), as strings.
///
/// Writers stamp `updatedAt` in `Z`, `+00:00`, positive or negative offsets. For the first
/// three, string order past `utc` is instant order past the window's lower bound. Only a
/// negative offset writes an instant *later* than the bound as a string *smaller* than it,
/// by at most the offset (12 h; 14 h is used, as DESIGN says). So a source queries from
/// `any_offset`, and of the stamps in `[any_offset, utc]` keeps only those with neither
/// `Z` nor `+` ([`KeyBounds::admits`]): older UTC stamps are dropped before they are
/// decoded. The exact instant comparison happens after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBounds {
    /// The window's lower bound as a zone-less UTC prefix (`YYYY-MM-DDTHH:MM:SS`).
    pub utc: String,
    /// The same bound minus the largest negative offset.
    pub any_offset: String,
}

impl KeyBounds {
    /// Tells whether a stamp passes the bounds: what the two DynamoDB queries return.
    pub fn admits(&self, updated_at: &str) -> bool {
        updated_at > self.utc.as_str()
            || (updated_at >= self.any_offset.as_str() && !updated_at.contains(['Z', 'z', '+']))
    }
}

/// A source of raw scan records.
pub trait Source: Send + Sync + 'static {
    /// Lists the units to fetch (in parallel) to cover these UTC day partitions.
    fn units(&self, days: &[Day]) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Fetches one unit to its end, sending non-empty pages to `tx`. `bounds` are key bounds
    /// on `updatedAt` the source may use as a pre-filter (they never drop a record whose
    /// instant is later than the window's lower bound). Returns `Ok` early when `tx` is closed.
    fn fetch(
        &self,
        unit: String,
        bounds: Option<KeyBounds>,
        tx: async_channel::Sender<RawPage>,
    ) -> impl Future<Output = Result<()>> + Send;
}
