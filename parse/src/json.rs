//! Metadata rules: turn whatever arrives in `metadata` into a value `jsonb` accepts, or null.
//!
//! The metadata blob arrives as NULL, a map, a JSON string, or a JSON string *of* a JSON
//! string (double-encoded by an upstream `JSON.stringify` of a string), often with a BOM,
//! NUL bytes and lone `\ud83d` escapes. The rules, each a function below:
//! - [`repair_json_text`]: strip the BOM, drop raw NUL and `\u0000` escapes, turn lone
//!   surrogate escapes into `\ufffd`, escape raw control characters inside strings;
//! - [`parse_json_text`]: parse, unwrapping up to [`MAX_ENCODING_DEPTH`] layers of encoding;
//! - [`strip_nul`]: remove NUL from every string and key of a value;
//! - [`jsonb_text`]: serialise, after checking every number fits `jsonb`'s `numeric`.
//!
//! No page may fail because PostgreSQL rejected a value produced here.

use crate::attr::{Attr, Item};
use crate::number::normalize_decimal;
use crate::text::hex4;
use serde_json::{Map, Number, Value};

/// How many layers of string-encoding are unwrapped before giving up.
pub const MAX_ENCODING_DEPTH: usize = 4;

/// Repairs JSON text so a strict parser accepts it, without changing valid content.
/// Returns the repaired text and whether anything was changed.
pub fn repair_json_text(s: &str) -> (String, bool) {
    // Every repair below starts at a BOM, a control byte or a backslash: text without them
    // (most metadata) is already what the repair would return.
    if !s.starts_with('\u{feff}') && !s.bytes().any(|b| b < 0x20 || b == b'\\') {
        return (s.to_owned(), false);
    }
    let s0 = s.trim_start_matches('\u{feff}');
    let mut changed = s0.len() != s.len();
    let b = s0.as_bytes();
    let mut out = String::with_capacity(s0.len());
    let mut in_string = false;
    let mut i = 0;
    let mut copied = 0;
    // Bytes are scanned, but every cut below falls on an ASCII byte, so slices stay on
    // char boundaries.
    while i < b.len() {
        let c = b[i];
        if c == 0 {
            out.push_str(&s0[copied..i]);
            changed = true;
            i += 1;
            copied = i;
            continue;
        }
        if !in_string {
            if c == b'"' {
                in_string = true;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_string = false;
                i += 1;
            }
            b'\\' if i + 1 < b.len() && b[i + 1] == b'u' => {
                let code = b.get(i + 2..i + 6).and_then(hex4);
                match code {
                    Some(0) => {
                        out.push_str(&s0[copied..i]);
                        changed = true;
                        i += 6;
                        copied = i;
                    }
                    Some(u) if (0xD800..0xDC00).contains(&u) => {
                        let low = b
                            .get(i + 6..i + 12)
                            .filter(|x| x[0] == b'\\' && x[1] == b'u')
                            .and_then(|x| hex4(&x[2..]));
                        if low.is_some_and(|l| (0xDC00..0xE000).contains(&l)) {
                            i += 12;
                        } else {
                            out.push_str(&s0[copied..i]);
                            out.push_str("\\ufffd");
                            changed = true;
                            i += 6;
                            copied = i;
                        }
                    }
                    Some(u) if (0xDC00..0xE000).contains(&u) => {
                        out.push_str(&s0[copied..i]);
                        out.push_str("\\ufffd");
                        changed = true;
                        i += 6;
                        copied = i;
                    }
                    _ => i += 2,
                }
            }
            b'\\' => i += 2,
            c if c < 0x20 => {
                out.push_str(&s0[copied..i]);
                match c {
                    b'\n' => out.push_str("\\n"),
                    b'\t' => out.push_str("\\t"),
                    _ => {}
                }
                changed = true;
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&s0[copied.min(s0.len())..]);
    (out, changed)
}

/// What [`parse_json_text`] found.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A JSON value, after `layers` string-encoding layers were unwrapped (0: plain).
    Value {
        /// The value.
        value: Value,
        /// How many encoding layers were removed.
        layers: usize,
        /// Whether [`repair_json_text`] had to change the text.
        repaired: bool,
    },
    /// Not JSON even after repair.
    Invalid,
}

/// Parses JSON text with the repairs above, unwrapping double (or deeper) encoding.
pub fn parse_json_text(s: &str) -> Parsed {
    let mut text = s.to_owned();
    let mut repaired = false;
    for layers in 0..=MAX_ENCODING_DEPTH {
        let (fixed, changed) = repair_json_text(&text);
        repaired |= changed;
        let value: Value = match serde_json::from_str(&fixed) {
            Ok(v) => v,
            Err(_) if layers == 0 => return Parsed::Invalid,
            // An inner layer that is not JSON was a plain string all along.
            Err(_) => return Parsed::Value { value: Value::String(text), layers: layers - 1, repaired },
        };
        match value {
            Value::String(inner) if looks_like_json(&inner) => text = inner,
            value => return Parsed::Value { value, layers, repaired },
        }
    }
    Parsed::Invalid
}

fn looks_like_json(s: &str) -> bool {
    let t = s.trim_start_matches('\u{feff}').trim_start();
    t.starts_with('{') || t.starts_with('[') || t.starts_with('"')
}

/// Tells whether a value holds a NUL character (which `jsonb` refuses), in a string or a key.
pub fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(xs) => xs.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Removes NUL characters from every string and key; returns whether any were found.
pub fn strip_nul(v: &mut Value) -> bool {
    match v {
        Value::String(s) if s.contains('\0') => {
            s.retain(|c| c != '\0');
            true
        }
        Value::Array(xs) => xs.iter_mut().fold(false, |acc, x| strip_nul(x) | acc),
        Value::Object(m) => {
            let mut changed = false;
            if m.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(m);
                for (k, v) in old {
                    m.insert(k.replace('\0', ""), v);
                }
                changed = true;
            }
            m.values_mut().fold(changed, |acc, x| strip_nul(x) | acc)
        }
        _ => false,
    }
}

/// Serialises `v` for a `jsonb` column, or `None` if `jsonb` would reject it (a number out
/// of `numeric`'s range, a NUL left in a string).
pub fn jsonb_text(v: &Value) -> Option<String> {
    fn fits(v: &Value) -> bool {
        match v {
            Value::Number(n) => normalize_decimal(&n.to_string()).is_some(),
            Value::String(s) => !s.contains('\0'),
            Value::Array(xs) => xs.iter().all(fits),
            Value::Object(m) => m.iter().all(|(k, x)| !k.contains('\0') && fits(x)),
            _ => true,
        }
    }
    fits(v).then(|| v.to_string())
}

/// Tells whether `s` is valid JSON, without building a tree.
pub fn is_json(s: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

/// A conservative, allocation-free check that every number in JSON text fits `numeric`:
/// no exponent of four digits or more, no run of more than 900 digits. `false` only means
/// "check exactly" (the general path does).
pub fn numbers_fit_numeric(s: &str) -> bool {
    let b = s.as_bytes();
    let (mut i, mut in_string, mut run) = (0, false, 0usize);
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
            run = 0;
        } else if c.is_ascii_digit() {
            run += 1;
            if run > 900 {
                return false;
            }
        } else if c == b'e' || c == b'E' {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            let digits = b[j..].iter().take_while(|d| d.is_ascii_digit()).count();
            if digits >= 4 {
                return false;
            }
            run = 0;
        } else {
            run = 0;
        }
        i += 1;
    }
    true
}

/// Converts an attribute to plain JSON (DynamoDB types dropped, numbers exact, sets as
/// arrays). Numbers that are not valid decimals become strings rather than invalid JSON.
pub fn attr_to_json(a: &Attr) -> Value {
    match a {
        Attr::S(s) | Attr::B(s) => Value::String(s.clone()),
        Attr::N(n) => number_value(n),
        Attr::Bool(b) => Value::Bool(*b),
        Attr::Null => Value::Null,
        Attr::M(m) => Value::Object(item_to_json(m)),
        Attr::L(xs) => Value::Array(xs.iter().map(attr_to_json).collect()),
        Attr::Ss(xs) | Attr::Bs(xs) => Value::Array(xs.iter().cloned().map(Value::String).collect()),
        Attr::Ns(xs) => Value::Array(xs.iter().map(|n| number_value(n)).collect()),
    }
}

/// Converts an item to a plain JSON object.
pub fn item_to_json(m: &Item) -> Map<String, Value> {
    m.iter().map(|(k, v)| (k.clone(), attr_to_json(v))).collect()
}

/// Makes an exact JSON number from a decimal string (arbitrary precision), or a string.
pub fn number_value(n: &str) -> Value {
    normalize_decimal(n)
        .and_then(|d| serde_json::from_str::<Number>(&d).ok())
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(n.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> (Value, usize) {
        match parse_json_text(s) {
            Parsed::Value { value, layers, .. } => (value, layers),
            Parsed::Invalid => panic!("{s:?} should parse"),
        }
    }

    #[test]
    fn double_and_triple_encoded_json_is_unwrapped() {
        let once = r#"{"a":1}"#;
        let twice = serde_json::to_string(once).unwrap();
        let thrice = serde_json::to_string(&twice).unwrap();
        assert_eq!(value(once), (serde_json::json!({"a": 1}), 0));
        assert_eq!(value(&twice), (serde_json::json!({"a": 1}), 1));
        assert_eq!(value(&thrice), (serde_json::json!({"a": 1}), 2));
    }

    #[test]
    fn bom_nul_and_lone_surrogates_are_repaired() {
        let (v, _) = value("\u{feff}{\"a\":\"x\\u0000y\\ud83dz\",\"b\u{0}\":1}");
        assert_eq!(v, serde_json::json!({"a": "xy\u{FFFD}z", "b": 1}));
        let text = jsonb_text(&v).unwrap();
        assert!(!text.contains("\\u0000"));
    }

    #[test]
    fn a_valid_surrogate_pair_is_kept() {
        let (v, _) = value(r#"{"e":"\ud83d\ude00"}"#);
        assert_eq!(v["e"], "\u{1F600}");
    }

    #[test]
    fn escaped_backslash_before_u_is_not_an_escape() {
        let (v, _) = value(r#"{"p":"C:\\u0000dir"}"#);
        assert_eq!(v["p"], "C:\\u0000dir");
    }

    #[test]
    fn raw_control_characters_inside_strings_are_repaired() {
        let (v, _) = value("{\"a\":\"line1\nline2\u{1}\"}");
        assert_eq!(v["a"], "line1\nline2");
    }

    #[test]
    fn big_numbers_in_metadata_stay_exact() {
        let (v, _) = value(r#"{"views":123456789012345678901234567890}"#);
        assert_eq!(jsonb_text(&v).unwrap(), r#"{"views":123456789012345678901234567890}"#);
    }

    #[test]
    fn numbers_outside_numeric_are_refused() {
        let (v, _) = value(r#"{"x":1e999999}"#);
        assert_eq!(jsonb_text(&v), None);
    }

    #[test]
    fn plain_text_is_not_json() {
        assert_eq!(parse_json_text("not json"), Parsed::Invalid);
    }
}
