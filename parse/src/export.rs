//! Export lines: one line of a DynamoDB export (`{"Item": {…}}` in DynamoDB JSON) in, a raw
//! record or a quarantine reason out.

use crate::attr::{item_from_dynamodb_json, Attr, Item};
use crate::json::repair_json_text;
use crate::{RawRecord, RejectReason};

/// Decodes one export line. A line that is not JSON is repaired (BOM, NUL, lone surrogate
/// escapes, invalid UTF-8) and tried again; if it still fails it is quarantined as
/// `not_json`, and a JSON line that is not a DynamoDB item as `not_a_map`. Either way the
/// lines after it are read as usual.
pub fn decode_export_line(mut line: Vec<u8>) -> RawRecord {
    // simd-json parses in place, destroying the buffer: keep the original for the quarantine.
    let original = line.clone();
    // simd-json does not reject a lone surrogate escape: it decodes `\ud83d` to a NUL
    // (measured). Lines holding any surrogate escape take the repairing path instead.
    if !has_surrogate_escape(&line) {
        if let Ok(v) = simd_json::to_borrowed_value(&mut line) {
            let item = match &v {
                simd_json::BorrowedValue::Object(o) => o.get("Item").unwrap_or(&v),
                _ => &v,
            };
            return match item_from_simd(item) {
                Some(item) => RawRecord::Item(item),
                None => RawRecord::Unreadable {
                    reason: RejectReason::NotAMap,
                    raw: String::from_utf8_lossy(&original).into_owned(),
                },
            };
        }
    }
    let text = String::from_utf8_lossy(&original);
    let (fixed, _) = repair_json_text(&text);
    let value: serde_json::Value = match serde_json::from_str(&fixed) {
        Ok(v) => v,
        Err(_) => return RawRecord::Unreadable { reason: RejectReason::NotJson, raw: text.into_owned() },
    };
    let item = value.get("Item").unwrap_or(&value);
    match item_from_dynamodb_json(item) {
        Some(item) => RawRecord::Item(item),
        None => RawRecord::Unreadable { reason: RejectReason::NotAMap, raw: text.into_owned() },
    }
}

/// Converts a DynamoDB JSON map straight from simd-json's borrowed DOM (no intermediate tree).
fn item_from_simd(v: &simd_json::BorrowedValue) -> Option<Item> {
    match v {
        simd_json::BorrowedValue::Object(o) => {
            let mut item = Item::with_capacity(o.len());
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

/// Tells whether `b` holds a `\uD800`–`\uDFFF` escape (paired or not).
fn has_surrogate_escape(b: &[u8]) -> bool {
    b.windows(4).any(|w| {
        w[0] == b'\\'
            && w[1] == b'u'
            && (w[2] == b'd' || w[2] == b'D')
            && matches!(w[3], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
    })
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
