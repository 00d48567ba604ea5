//! Where records come from: the [`Source`] boundary and its implementations.
//!
//! Guarantee: **at-least-once**. A source delivers every record of the units it is asked
//! for, possibly more than once and in any order; the sink's idempotent, monotonic merges
//! make that safe. Sources deliver raw payloads: turning them into items (JSON parsing,
//! SDK value conversion) is CPU work and happens on the rayon pool, in [`Payload::into_raw`].

pub mod dynamodb;
pub mod export;
pub mod memory;

use crate::attr::{item_from_dynamodb_json, Attr, Item};
use crate::error::Result;
use crate::parse::json::repair_json_text;
use crate::parse::{RawRecord, RejectReason};
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
                .map(|m| RawRecord::Item(m.into_iter().map(|(k, v)| (k, Attr::from(v))).collect()))
                .collect(),
            Payload::Lines(lines) => lines.into_iter().map(decode_export_line).collect(),
        }
    }
}

/// Decodes one export line. A line that is not JSON is repaired (BOM, NUL, lone surrogate
/// escapes, invalid UTF-8) and tried again; if it still fails it is quarantined as
/// `not_json`, and a JSON line that is not a DynamoDB item as `not_a_map`. Either way the
/// lines after it are read as usual.
pub fn decode_export_line(mut line: Vec<u8>) -> RawRecord {
    let original = line.clone();
    // simd-json does not reject a lone surrogate escape: it decodes `\ud83d` to a NUL
    // (measured). Lines holding any surrogate escape take the repairing path instead.
    let fast = if has_surrogate_escape(&line) {
        Err(())
    } else {
        simd_json::serde::from_slice::<serde_json::Value>(&mut line).map_err(|_| ())
    };
    let value: serde_json::Value = match fast {
        Ok(v) => v,
        Err(()) => {
            let text = String::from_utf8_lossy(&original);
            let (fixed, _) = repair_json_text(&text);
            match serde_json::from_str(&fixed) {
                Ok(v) => v,
                Err(_) => {
                    return RawRecord::Unreadable { reason: RejectReason::NotJson, raw: text.into_owned() }
                }
            }
        }
    };
    let item = value.get("Item").unwrap_or(&value);
    match item_from_dynamodb_json(item) {
        Some(item) => RawRecord::Item(item),
        None => RawRecord::Unreadable {
            reason: RejectReason::NotAMap,
            raw: String::from_utf8_lossy(&original).into_owned(),
        },
    }
}

/// Tells whether `b` holds a `\uD800`–`\uDFFF` escape (paired or not).
fn has_surrogate_escape(b: &[u8]) -> bool {
    b.windows(4).any(|w| {
        w[0] == b'\\'
            && w[1] == b'u'
            && (w[2] == b'd' || w[2] == b'D')
            && matches!(w[3], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
    })
}

/// A source of raw scan records.
pub trait Source: Send + Sync + 'static {
    /// Lists the units to fetch (in parallel) to cover these UTC day partitions.
    fn units(&self, days: &[Day]) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Fetches one unit to its end, sending non-empty pages to `tx`. `coarse_after` is a
    /// lexicographic lower bound on `updatedAt` the source may use as a pre-filter (it must
    /// never drop a record whose instant is later). Returns `Ok` early when `tx` is closed.
    fn fetch(
        &self,
        unit: String,
        coarse_after: Option<String>,
        tx: async_channel::Sender<RawPage>,
    ) -> impl Future<Output = Result<()>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_line_that_is_not_json_is_quarantined_with_its_text() {
        match decode_export_line(b"{\"Item\": {oops".to_vec()) {
            RawRecord::Unreadable { reason, raw } => {
                assert_eq!(reason, RejectReason::NotJson);
                assert_eq!(raw, "{\"Item\": {oops");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_export_line_with_a_lone_surrogate_escape_is_repaired() {
        let line = br#"{"Item":{"caption":{"S":"a\ud83db"}}}"#.to_vec();
        match decode_export_line(line) {
            RawRecord::Item(item) => assert_eq!(item["caption"], Attr::S("a\u{FFFD}b".into())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_export_line_with_a_valid_surrogate_pair_keeps_the_character() {
        let line = br#"{"Item":{"caption":{"S":"a\ud83d\ude00b"}}}"#.to_vec();
        match decode_export_line(line) {
            RawRecord::Item(item) => assert_eq!(item["caption"], Attr::S("a\u{1F600}b".into())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_json_line_that_is_not_an_item_is_not_a_map() {
        match decode_export_line(br#"{"Item": [1,2]}"#.to_vec()) {
            RawRecord::Unreadable { reason, .. } => assert_eq!(reason, RejectReason::NotAMap),
            other => panic!("{other:?}"),
        }
    }
}
