//! The DynamoDB item model shared by every source, and its two encodings.
//!
//! A source hands the pipeline [`Item`]s: the DynamoDB SDK's `AttributeValue` maps and the
//! lines of a DynamoDB export (DynamoDB JSON) both convert into this one shape, so the parse
//! stage has a single input type. Numbers stay strings, exactly as DynamoDB sends them.

use std::collections::HashMap;

/// One DynamoDB attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// A string.
    S(String),
    /// A number, as DynamoDB's exact decimal string (up to 38 digits).
    N(String),
    /// Binary, kept base64-encoded as it travels.
    B(String),
    /// A boolean.
    Bool(bool),
    /// An explicit NULL.
    Null,
    /// A map.
    M(Item),
    /// A list.
    L(Vec<Attr>),
    /// A string set.
    Ss(Vec<String>),
    /// A number set.
    Ns(Vec<String>),
    /// A binary set (base64).
    Bs(Vec<String>),
}

/// One DynamoDB item: attribute name to value.
///
/// Hashed with foldhash (randomly seeded per process) rather than SipHash: the parse
/// stage looks every field up under each of its names, and SipHash was a tenth of its
/// time (measured with `cargo bench -p scansync-bench --bench parse`). Build one with
/// `Item::default()` or `collect()`.
pub type Item = HashMap<String, Attr, foldhash::fast::RandomState>;

impl Attr {
    /// Returns the DynamoDB type descriptor (`S`, `N`, `M`, …), as recorded in the drift ledger.
    pub fn type_name(&self) -> &'static str {
        match self {
            Attr::S(_) => "S",
            Attr::N(_) => "N",
            Attr::B(_) => "B",
            Attr::Bool(_) => "BOOL",
            Attr::Null => "NULL",
            Attr::M(_) => "M",
            Attr::L(_) => "L",
            Attr::Ss(_) => "SS",
            Attr::Ns(_) => "NS",
            Attr::Bs(_) => "BS",
        }
    }

    /// Converts one value of DynamoDB JSON (`{"S": "…"}`, `{"N": "…"}`, …).
    pub fn from_dynamodb_json(v: &serde_json::Value) -> Option<Attr> {
        use serde_json::Value;
        let obj = v.as_object()?;
        if obj.len() != 1 {
            return None;
        }
        let (tag, inner) = obj.iter().next()?;
        let strings = |inner: &Value| -> Option<Vec<String>> {
            inner.as_array()?.iter().map(|x| x.as_str().map(str::to_owned)).collect()
        };
        Some(match (tag.as_str(), inner) {
            ("S", Value::String(s)) => Attr::S(s.clone()),
            ("N", Value::String(s)) => Attr::N(s.clone()),
            // Some exporters write numbers unquoted; arbitrary_precision keeps them exact.
            ("N", Value::Number(n)) => Attr::N(n.to_string()),
            ("B", Value::String(s)) => Attr::B(s.clone()),
            ("BOOL", Value::Bool(b)) => Attr::Bool(*b),
            ("NULL", _) => Attr::Null,
            ("M", m @ Value::Object(_)) => Attr::M(item_from_dynamodb_json(m)?),
            ("L", Value::Array(items)) => {
                Attr::L(items.iter().map(Attr::from_dynamodb_json).collect::<Option<_>>()?)
            }
            ("SS", v) => Attr::Ss(strings(v)?),
            ("NS", v) => Attr::Ns(strings(v)?),
            ("BS", v) => Attr::Bs(strings(v)?),
            _ => return None,
        })
    }

    /// Writes this value as DynamoDB JSON, the form quarantine keeps raw records in.
    pub fn write_dynamodb_json(&self, out: &mut String) {
        let tagged = |out: &mut String, tag: &str| {
            out.push_str("{\"");
            out.push_str(tag);
            out.push_str("\":");
        };
        let string_list = |out: &mut String, xs: &[String]| {
            out.push('[');
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, x);
            }
            out.push(']');
        };
        match self {
            Attr::S(s) => {
                tagged(out, "S");
                write_json_string(out, s);
            }
            Attr::N(n) => {
                tagged(out, "N");
                write_json_string(out, n);
            }
            Attr::B(b) => {
                tagged(out, "B");
                write_json_string(out, b);
            }
            Attr::Bool(b) => {
                tagged(out, "BOOL");
                out.push_str(if *b { "true" } else { "false" });
            }
            Attr::Null => out.push_str("{\"NULL\":true"),
            Attr::M(m) => {
                tagged(out, "M");
                write_item_dynamodb_json(m, out);
            }
            Attr::L(xs) => {
                tagged(out, "L");
                out.push('[');
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write_dynamodb_json(out);
                }
                out.push(']');
            }
            Attr::Ss(xs) => {
                tagged(out, "SS");
                string_list(out, xs);
            }
            Attr::Ns(xs) => {
                tagged(out, "NS");
                string_list(out, xs);
            }
            Attr::Bs(xs) => {
                tagged(out, "BS");
                string_list(out, xs);
            }
        }
        out.push('}');
    }
}

/// Converts a DynamoDB JSON map (`{"name": {"S": "…"}, …}`) into an [`Item`].
pub fn item_from_dynamodb_json(v: &serde_json::Value) -> Option<Item> {
    v.as_object()?.iter().map(|(k, v)| Some((k.clone(), Attr::from_dynamodb_json(v)?))).collect()
}

/// Writes an item as a DynamoDB JSON map, keys sorted so equal items give equal text.
pub fn write_item_dynamodb_json(item: &Item, out: &mut String) {
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort();
    out.push('{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, k);
        out.push(':');
        item[k].write_dynamodb_json(out);
    }
    out.push('}');
}

/// Writes `s` as a JSON string literal. NUL and other control characters are escaped, so
/// the output is valid JSON and valid PostgreSQL `text` (it may still hold a `\u0000`
/// escape, which `jsonb` would refuse: callers that feed `jsonb` strip NUL first).
pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Encodes bytes as standard base64 (how binary attributes travel in DynamoDB JSON).
pub fn encode_base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Conversions between the item model and the AWS SDK's `AttributeValue` (feature `aws`).
#[cfg(feature = "aws")]
pub mod sdk {
    use super::{encode_base64, Attr};
    use aws_sdk_dynamodb::types::AttributeValue;

    /// Converts an SDK attribute value into the shared item model.
    pub fn from_sdk(v: AttributeValue) -> Attr {
        {
            use aws_sdk_dynamodb::primitives::Blob;
            use aws_sdk_dynamodb::types::AttributeValue as Av;
            let b64 = |b: Blob| encode_base64(b.as_ref());
            match v {
                Av::S(s) => Attr::S(s),
                Av::N(n) => Attr::N(n),
                Av::B(b) => Attr::B(b64(b)),
                Av::Bool(b) => Attr::Bool(b),
                Av::Null(_) => Attr::Null,
                Av::M(m) => Attr::M(m.into_iter().map(|(k, v)| (k, from_sdk(v))).collect()),
                Av::L(l) => Attr::L(l.into_iter().map(from_sdk).collect()),
                Av::Ss(s) => Attr::Ss(s),
                Av::Ns(n) => Attr::Ns(n),
                Av::Bs(b) => Attr::Bs(b.into_iter().map(b64).collect()),
                // A type newer than this SDK: keep that it was there rather than fail the page.
                _ => Attr::Null,
            }
        }
    }

    /// Converts an attribute into an SDK value (for writers such as tests and loadgen).
    pub fn to_sdk(v: Attr) -> AttributeValue {
        {
            use aws_sdk_dynamodb::primitives::Blob;
            use aws_sdk_dynamodb::types::AttributeValue as Av;
            match v {
                Attr::S(s) => Av::S(s),
                Attr::N(n) => Av::N(n),
                Attr::B(b) => Av::B(Blob::new(b.into_bytes())),
                Attr::Bool(b) => Av::Bool(b),
                Attr::Null => Av::Null(true),
                Attr::M(m) => Av::M(m.into_iter().map(|(k, v)| (k, to_sdk(v))).collect()),
                Attr::L(l) => Av::L(l.into_iter().map(to_sdk).collect()),
                Attr::Ss(s) => Av::Ss(s),
                Attr::Ns(n) => Av::Ns(n),
                Attr::Bs(b) => Av::Bs(b.into_iter().map(|x| Blob::new(x.into_bytes())).collect()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_json_round_trips_every_type() {
        let text = r#"{"a":{"S":"x\"y"},"b":{"N":"12345678901234567890123"},"c":{"BOOL":true},"d":{"NULL":true},"e":{"M":{"f":{"L":[{"S":"g"},{"N":"1"}]}}},"h":{"SS":["i","j"]},"k":{"NS":["1","2"]}}"#;
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let item = item_from_dynamodb_json(&v).unwrap();
        assert_eq!(item["b"], Attr::N("12345678901234567890123".into()));
        let mut out = String::new();
        write_item_dynamodb_json(&item, &mut out);
        assert_eq!(out, text);
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(encode_base64(b"scan"), "c2Nhbg==");
        assert_eq!(encode_base64(b"sca"), "c2Nh");
    }
}
