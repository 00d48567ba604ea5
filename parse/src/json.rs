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

/// Tells, in one pass and without allocating, whether `s` is JSON text the metadata rules
/// keep exactly as it is: an object or an array that serde_json accepts, with nothing
/// [`repair_json_text`] would change (no BOM, no byte below 0x20, no `\u0000` or lone
/// surrogate escape) and no number [`numbers_fit_numeric`] would doubt (at most 900 digits in a run, an
/// exponent of at most three). `false` only means "check the slow way": it also refuses
/// whitespace other than spaces, and nesting deeper than 64.
///
/// Most metadata is such text; the three checks it stands for each took a pass of their own
/// (a tenth of the parse stage's time). `plain_json_container(s)` implies all three hold
/// (tested against them on mutated JSON, and asserted by the fuzz target).
pub fn plain_json_container(s: &str) -> bool {
    let b = s.as_bytes();
    if !matches!(b.first(), Some(b'{' | b'[')) {
        return false;
    }
    let mut i = 0;
    // The open containers, one bit each (1: an object), innermost lowest.
    let (mut stack, mut depth) = (0u64, 0u32);
    loop {
        // A value starts at `i`.
        skip_spaces(b, &mut i);
        match b.get(i) {
            Some(&open @ (b'{' | b'[')) => {
                if depth == 64 {
                    return false;
                }
                let object = open == b'{';
                stack = (stack << 1) | u64::from(object);
                depth += 1;
                i += 1;
                skip_spaces(b, &mut i);
                if b.get(i) == Some(if object { &b'}' } else { &b']' }) {
                    i += 1;
                    stack >>= 1;
                    depth -= 1;
                } else if object {
                    if !member_key(b, &mut i) {
                        return false;
                    }
                    continue;
                } else {
                    continue;
                }
            }
            Some(b'"') => {
                if !plain_string(b, &mut i) {
                    return false;
                }
            }
            Some(b't') if b[i..].starts_with(b"true") => i += 4,
            Some(b'f') if b[i..].starts_with(b"false") => i += 5,
            Some(b'n') if b[i..].starts_with(b"null") => i += 4,
            Some(b'-' | b'0'..=b'9') => {
                if !plain_number(b, &mut i) {
                    return false;
                }
            }
            _ => return false,
        }
        // After a value: its container goes on, or ends (maybe several), or the text does.
        loop {
            skip_spaces(b, &mut i);
            if depth == 0 {
                return i == b.len();
            }
            let object = stack & 1 == 1;
            match b.get(i) {
                Some(b',') => {
                    i += 1;
                    if object {
                        skip_spaces(b, &mut i);
                        if !member_key(b, &mut i) {
                            return false;
                        }
                    }
                    break;
                }
                Some(b'}') if object => {}
                Some(b']') if !object => {}
                _ => return false,
            }
            i += 1;
            stack >>= 1;
            depth -= 1;
        }
    }
}

fn skip_spaces(b: &[u8], i: &mut usize) {
    while b.get(*i) == Some(&b' ') {
        *i += 1;
    }
}

/// `"key" :` at `i`, and past it.
fn member_key(b: &[u8], i: &mut usize) -> bool {
    if b.get(*i) != Some(&b'"') || !plain_string(b, i) {
        return false;
    }
    skip_spaces(b, i);
    if b.get(*i) != Some(&b':') {
        return false;
    }
    *i += 1;
    true
}

/// A string at `i` (its opening quote) that needs no repair, and past it.
fn plain_string(b: &[u8], i: &mut usize) -> bool {
    let mut j = *i + 1;
    loop {
        match b.get(j) {
            None => return false,
            Some(b'"') => {
                *i = j + 1;
                return true;
            }
            Some(b'\\') => match b.get(j + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                Some(b'u') => match b.get(j + 2..j + 6).and_then(hex4) {
                    Some(0) | None => return false,
                    // A surrogate pair (as Python's `ensure_ascii` writes every emoji).
                    Some(0xD800..=0xDBFF) => match b.get(j + 6..j + 12) {
                        Some([b'\\', b'u', low @ ..])
                            if hex4(low).is_some_and(|l| (0xDC00..0xE000).contains(&l)) =>
                        {
                            j += 12
                        }
                        _ => return false,
                    },
                    Some(0xDC00..=0xDFFF) => return false,
                    Some(_) => j += 6,
                },
                _ => return false,
            },
            Some(&c) if c < 0x20 => return false,
            Some(_) => j += 1,
        }
    }
}

/// A JSON number at `i` whose digit runs [`numbers_fit_numeric`] accepts, and past it.
fn plain_number(b: &[u8], i: &mut usize) -> bool {
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b[*i] == b'-' {
        *i += 1;
    }
    let leading_zero = b.get(*i) == Some(&b'0');
    let int = digits(i);
    if int == 0 || int > 900 || (leading_zero && int > 1) {
        return false;
    }
    if b.get(*i) == Some(&b'.') {
        *i += 1;
        if !(1..=900).contains(&digits(i)) {
            return false;
        }
    }
    if matches!(b.get(*i), Some(b'e' | b'E')) {
        *i += 1;
        if matches!(b.get(*i), Some(b'+' | b'-')) {
            *i += 1;
        }
        if !(1..=3).contains(&digits(i)) {
            return false;
        }
    }
    true
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

/// Tells whether `b` holds a `\uD800`–`\uDFFF` escape (paired or not). A backslash that is
/// itself escaped starts none: `\\ud83d` is a backslash and the text `ud83d`, as in a
/// caption that quotes an escape.
pub fn has_surrogate_escape(b: &[u8]) -> bool {
    // `\u` escapes are rare in export lines: find them with memchr's substring search (SIMD),
    // then look at the backslashes before and the digits after.
    memchr::memmem::find_iter(b, b"\\u").any(|i| {
        let escaped = b[..i].iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 1;
        !escaped
            && b.get(i + 2..i + 4).is_some_and(|w| {
                (w[0] == b'd' || w[0] == b'D') && matches!(w[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            })
    })
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
    fn plain_json_containers_are_told_in_one_pass_and_anything_doubtful_is_left_to_the_slow_checks() {
        let (digits_900, digits_901) = ("9".repeat(900), "9".repeat(901));
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let cases: Vec<(String, bool)> = [
            (r#"{"platform":"tiktok","n":18446744073709551616,"f":{"a":[1,2.5,-0,1E+10,true,false,null]}}"#, true),
            ("[]", true),
            ("{}", true),
            (r#"{ "a" : [ ] , "b" : { } } "#, true),
            (r#"{"e":"\u00e9\n\"\\\/\b\f\r\t"}"#, true),
            (r#"{"e":"\ud83c\udfac"}"#, true),
            (r#"{"a":1e999}"#, true),
            (r#"{"e":"\ud83d"}"#, false),
            (r#"{"e":"\ud83d\u0041"}"#, false),
            (r#"{"e":"\udc00"}"#, false),
            (r#"{"e":"\u0000"}"#, false),
            (r#"{"e":"\x"}"#, false),
            ("\u{feff}{}", false),
            (" {}", false),
            (r#""{}""#, false),
            ("{}\n", false),
            ("{\"a\":\"tab\there\"}", false),
            (r#"{"a":01}"#, false),
            (r#"{"a":-}"#, false),
            (r#"{"a":1.}"#, false),
            (r#"{"a":.5}"#, false),
            (r#"{"a":+1}"#, false),
            (r#"{"a":1e}"#, false),
            (r#"{"a":1e1000}"#, false),
            (r#"{"a":1,}"#, false),
            ("[1,]", false),
            (r#"{"a"}"#, false),
            (r#"{"a":1}x"#, false),
            (r#"{"a":1}}"#, false),
            ("[1 2]", false),
            ("{1:2}", false),
            (r#"{"a":tru}"#, false),
            (r#"{"a":"x"#, false),
            ("[", false),
            (r#"{"a":[}"#, false),
            ("[{]}", false),
        ]
        .into_iter()
        .map(|(t, plain)| (t.to_string(), plain))
        .chain([
            (format!("[{digits_900}]"), true),
            (format!("[{digits_901}]"), false),
            (format!("[0.{digits_901}]"), false),
            (nested(64), true),
            (nested(65), false),
        ])
        .collect();
        for (text, plain) in cases {
            assert_eq!(plain_json_container(&text), plain, "{text}");
            if plain {
                // What it stands for.
                assert!(is_json(&text) && numbers_fit_numeric(&text), "{text}");
                assert_eq!(repair_json_text(&text), (text.clone(), false));
            }
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
