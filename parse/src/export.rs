//! Export lines: one line of a DynamoDB export in, a raw record or a quarantine reason out.
//!
//! A full export's line is `{"Item": {…}}` (DynamoDB JSON). An incremental export's line is
//! one change: `{"Metadata": {"WriteTimestampMicros": …}, "Keys": {…}, "NewImage": {…},
//! "OldImage": {…}}`. Its `NewImage` is the record as written; a line without `NewImage` is a
//! removal of the `OldImage` ([`RawRecord::Removal`], at `WriteTimestampMicros`): a
//! tombstone of exactly the version it removed (docs/contract.md, "Removals").

use crate::attr::{item_from_dynamodb_json, Attr, Item};
use crate::json::{has_surrogate_escape, repair_json_text};
use crate::{RawRecord, RejectReason};

/// Reads one export line: a line of the common shape straight into a record (the typed
/// path, [`crate::typed`]), any other through [`decode_export_line`] and the general path.
pub fn read_export_line(line: Vec<u8>) -> RawRecord {
    if let Some((record, stamp, repairs)) = crate::typed::parse_common_line(&line) {
        return RawRecord::Typed(Box::new(crate::Typed { record, stamp, repairs }));
    }
    decode_export_line(line)
}

/// The differential check of the typed path (for the tests and the fuzz target): reads `line`
/// both ways. `Ok(true)`: the typed path read it, and the general path gives the same record,
/// the same repairs, no drift and the same stamp form; `Ok(false)`: the typed path sent it on;
/// `Err`: the two paths disagree, and how.
pub fn check_against_general_path(line: &[u8]) -> Result<bool, String> {
    use crate::{parse_page, Filter, RawRecord, Typed};
    let Some((record, stamp, repairs)) = crate::typed::parse_common_line(line) else { return Ok(false) };
    // Each reading as a page of one, so the page's own bookkeeping (stamp forms, repairs,
    // drift, rejects) is what is compared.
    let page = |raw| parse_page("elsewhere", vec![raw], &Filter::default());
    let typed = page(RawRecord::Typed(Box::new(Typed { record, stamp, repairs })));
    let general = page(decode_export_line(line.to_vec()));
    let differs = typed.records != general.records
        || typed.repairs != general.repairs
        || typed.drift != general.drift
        || typed.stamps != general.stamps
        || typed.rejects != general.rejects;
    if differs {
        return Err(format!("typed {typed:?}\ngeneral {general:?}"));
    }
    Ok(true)
}

/// Decodes one export line. A line that is not JSON is repaired (BOM, NUL, lone surrogate
/// escapes, invalid UTF-8) and tried again; if it still fails it is quarantined as
/// `not_json`, and a JSON line that is not a DynamoDB item as `not_a_map`. Either way the
/// lines after it are read as usual.
pub fn decode_export_line(line: Vec<u8>) -> RawRecord {
    // simd-json does not reject a lone surrogate escape: it decodes `\ud83d` to a NUL
    // (measured). Lines holding any surrogate escape take the repairing path instead.
    if !has_surrogate_escape(&line) {
        match decode_fast(&line) {
            Fast::Done(r) => return r,
            // An incremental export's change: the general path reads it.
            Fast::Change => return decode_change(&line),
            Fast::NotJson => {}
        }
    }
    let text = String::from_utf8_lossy(&line);
    let (fixed, _) = repair_json_text(&text);
    let value: serde_json::Value = match serde_json::from_str(&fixed) {
        Ok(v) => v,
        Err(_) => return RawRecord::Unreadable { reason: RejectReason::NotJson, raw: text.into_owned() },
    };
    if value.get("Keys").is_some() || value.get("NewImage").is_some() {
        return decode_change(fixed.as_bytes());
    }
    let item = value.get("Item").unwrap_or(&value);
    match item_from_dynamodb_json(item) {
        Some(item) => RawRecord::Item(item),
        None => RawRecord::Unreadable { reason: RejectReason::NotAMap, raw: text.into_owned() },
    }
}

/// What the fast path made of a line.
enum Fast {
    Done(RawRecord),
    Change,
    NotJson,
}

thread_local! {
    /// Per thread: a copy of the line for simd-json to parse in place (it destroys its
    /// input, and the line must stay intact for the quarantine), and simd-json's buffers,
    /// reused from line to line instead of allocated for each.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, simd_json::Buffers)> =
        std::cell::RefCell::new((Vec::new(), simd_json::Buffers::new(4096)));
}

/// Parses a full export's line with simd-json, straight into an [`Item`].
fn decode_fast(line: &[u8]) -> Fast {
    SCRATCH.with(|s| {
        let (scratch, buffers) = &mut *s.borrow_mut();
        scratch.clear();
        scratch.extend_from_slice(line);
        let Ok(v) = simd_json::value::borrowed::to_value_with_buffers(scratch, buffers) else {
            return Fast::NotJson;
        };
        if let simd_json::BorrowedValue::Object(o) = &v {
            if o.contains_key("Keys") || o.contains_key("NewImage") {
                return Fast::Change;
            }
        }
        let item = match &v {
            simd_json::BorrowedValue::Object(o) => o.get("Item").unwrap_or(&v),
            _ => &v,
        };
        Fast::Done(match item_from_simd(item) {
            Some(item) => RawRecord::Item(item),
            None => RawRecord::Unreadable {
                reason: RejectReason::NotAMap,
                raw: String::from_utf8_lossy(line).into_owned(),
            },
        })
    })
}

/// Decodes a line of an incremental export (a change): the new image, or for a delete the
/// old image as a tombstone versioned by the time of the delete.
fn decode_change(original: &[u8]) -> RawRecord {
    let text = String::from_utf8_lossy(original);
    let (fixed, _) = repair_json_text(&text);
    let value: serde_json::Value = match serde_json::from_str(&fixed) {
        Ok(v) => v,
        Err(_) => return RawRecord::Unreadable { reason: RejectReason::NotJson, raw: text.into_owned() },
    };
    let not_a_map = |text: std::borrow::Cow<'_, str>| RawRecord::Unreadable {
        reason: RejectReason::NotAMap,
        raw: text.into_owned(),
    };
    if let Some(image) = value.get("NewImage") {
        return match item_from_dynamodb_json(image) {
            Some(item) => RawRecord::Item(item),
            None => not_a_map(text),
        };
    }
    let Some(old) = value.get("OldImage") else {
        return RawRecord::Unreadable { reason: RejectReason::DeleteWithoutOldImage, raw: text.into_owned() };
    };
    let Some(item) = item_from_dynamodb_json(old) else { return not_a_map(text) };
    let at = value
        .pointer("/Metadata/WriteTimestampMicros/N")
        .and_then(|n| n.as_str().map(str::to_string).or_else(|| Some(n.to_string())))
        .and_then(|n| n.parse::<i64>().ok())
        .map(crate::time::Timestamp);
    // An incremental export does not say who removed the item: never a TTL expiry here.
    RawRecord::Removal { item, removal: crate::Removal { at, by_ttl: false } }
}

/// Converts a DynamoDB JSON map straight from simd-json's borrowed DOM (no intermediate tree).
fn item_from_simd(v: &simd_json::BorrowedValue) -> Option<Item> {
    match v {
        simd_json::BorrowedValue::Object(o) => {
            let mut item = Item::with_capacity_and_hasher(o.len(), Default::default());
            for (k, v) in o.iter() {
                item.insert(k.to_string(), attr_from_simd(v)?);
            }
            Some(item)
        }
        _ => None,
    }
}

fn attr_from_simd(v: &simd_json::BorrowedValue) -> Option<Attr> {
    use simd_json::BorrowedValue as V;
    let V::Object(o) = v else { return None };
    if o.len() != 1 {
        return None;
    }
    let (tag, inner) = o.iter().next()?;
    let strings = |inner: &V| -> Option<Vec<String>> {
        match inner {
            V::Array(xs) => {
                xs.iter().map(|x| if let V::String(s) = x { Some(s.to_string()) } else { None }).collect()
            }
            _ => None,
        }
    };
    Some(match (tag.as_ref(), inner) {
        ("S", V::String(s)) => Attr::S(s.to_string()),
        ("N", V::String(s)) => Attr::N(s.to_string()),
        // Some exporters write numbers unquoted; integers are exact, floats are not
        // expected in DynamoDB JSON (its numbers are strings).
        ("N", V::Static(n)) => Attr::N(n.to_string()),
        ("B", V::String(s)) => Attr::B(s.to_string()),
        ("BOOL", V::Static(simd_json::StaticNode::Bool(b))) => Attr::Bool(*b),
        ("NULL", _) => Attr::Null,
        ("M", m @ V::Object(_)) => Attr::M(item_from_simd(m)?),
        ("L", V::Array(xs)) => Attr::L(xs.iter().map(attr_from_simd).collect::<Option<_>>()?),
        ("SS", v) => Attr::Ss(strings(v)?),
        ("NS", v) => Attr::Ns(strings(v)?),
        ("BS", v) => Attr::Bs(strings(v)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incremental_export_change_is_read_as_its_new_image() {
        let line = br#"{"Metadata":{"WriteTimestampMicros":{"N":"1767225600000000"}},"Keys":{"scanId":{"S":"s1"}},"NewImage":{"scanId":{"S":"s1"},"caption":{"S":"new"}},"OldImage":{"scanId":{"S":"s1"},"caption":{"S":"old"}}}"#;
        match decode_export_line(line.to_vec()) {
            RawRecord::Item(item) => {
                assert_eq!(item["caption"], Attr::S("new".into()));
                assert!(!item.contains_key("Keys") && !item.contains_key("deleted"), "{item:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_incremental_export_delete_is_the_removal_of_exactly_its_old_image_version() {
        let line = br#"{"Metadata":{"WriteTimestampMicros":{"N":"1767225600000001"}},"Keys":{"scanId":{"S":"s1"}},"OldImage":{"scanId":{"S":"s1"},"updatedAt":{"S":"2025-12-31T00:00:00Z"},"platform":{"S":"x"},"contentId":{"S":"p"}}}"#;
        let raw = decode_export_line(line.to_vec());
        let RawRecord::Removal { item, removal } = &raw else { panic!("{raw:?}") };
        assert_eq!(item["updatedAt"], Attr::S("2025-12-31T00:00:00Z".into()), "the image as it was");
        assert!(!item.contains_key("deleted"));
        assert_eq!(removal.at, Some(crate::time::Timestamp(1767225600000001)));
        // As a page reads it: a tombstone versioned just after the version it removed, so
        // that a newer scan of the post is never covered by it.
        let page = crate::parse_page("f", vec![raw], &crate::Filter::default());
        let r = &page.records[0];
        assert!(r.deleted);
        assert_eq!(r.updated_at, crate::time::Timestamp::parse("2025-12-31T00:00:00.000001Z").unwrap());
        assert_eq!(r.removal.and_then(|x| x.at), Some(crate::time::Timestamp(1767225600000001)));
        assert_eq!((page.removals, page.ttl_removals_ignored), (1, 0));
    }

    #[test]
    fn an_incremental_export_delete_without_old_image_is_quarantined_with_its_reason() {
        let line = br#"{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"scanId":{"S":"s1"}}}"#;
        match decode_export_line(line.to_vec()) {
            RawRecord::Unreadable { reason, .. } => {
                assert_eq!(reason, RejectReason::DeleteWithoutOldImage);
                assert!(!reason.is_unreadable());
            }
            other => panic!("{other:?}"),
        }
    }

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
    fn a_backslash_escaped_before_ud83d_starts_no_surrogate_escape() {
        for (line, holds) in [
            (r#"{"S":"a\ud83db"}"#, true),
            (r#"{"S":"a\\ud83db"}"#, false),
            (r#"{"S":"a\\\ud83db"}"#, true),
            (r#"{"S":"a\\\\ud83db"}"#, false),
            (r#"{"S":"\uDC00"}"#, true),
            (r#"{"S":"\u00e9 \\udc00"}"#, false),
        ] {
            assert_eq!(has_surrogate_escape(line.as_bytes()), holds, "{line}");
        }
        // Such a line is read as it is: the text keeps its backslash.
        match decode_export_line(br#"{"Item":{"caption":{"S":"quote \\ud83d"}}}"#.to_vec()) {
            RawRecord::Item(item) => assert_eq!(item["caption"], Attr::S(r"quote \ud83d".into())),
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
