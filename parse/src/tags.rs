//! Tag rules: every container form upstream uses, one normalised set out.
//!
//! Forms: a string set (`SS`), a list of strings (`L`), a string holding a JSON array, or a
//! comma-separated string. Each tag is cleaned like any text, lowercased, stripped of one
//! leading `#`, trimmed; empty tags are dropped and duplicates folded (first one kept).

use crate::attr::Attr;
use crate::json::{parse_json_text, Parsed};
use crate::text::{clean_text, plainly_nfc};
use unicode_normalization::UnicodeNormalization;

/// Extracts and normalises the tags of one attribute value; `None` if the type cannot hold
/// tags (a map, a boolean), so the caller can record it as drift.
pub fn parse_tags(a: &Attr) -> Option<Vec<String>> {
    let mut out = Vec::new();
    match a {
        Attr::Ss(xs) | Attr::Ns(xs) => xs.iter().for_each(|x| push_tag(&mut out, x)),
        Attr::L(xs) => {
            for x in xs {
                match x {
                    Attr::S(s) | Attr::N(s) => push_tag(&mut out, s),
                    _ => {}
                }
            }
        }
        Attr::S(s) => tags_of_text(&mut out, s),
        Attr::Null => {}
        _ => return None,
    }
    Some(out)
}

/// The tags of one string: a JSON array of strings (or numbers), else a comma-separated list.
pub(crate) fn tags_of_text(out: &mut Vec<String>, s: &str) {
    let t = s.trim_start_matches('\u{feff}').trim();
    let json_array = if t.starts_with('[') {
        match parse_json_text(t) {
            Parsed::Value { value: serde_json::Value::Array(xs), .. } => Some(xs),
            _ => None,
        }
    } else {
        None
    };
    match json_array {
        Some(xs) => {
            for x in xs {
                match x {
                    serde_json::Value::String(s) => push_tag(out, &s),
                    serde_json::Value::Number(n) => push_tag(out, &n.to_string()),
                    _ => {}
                }
            }
        }
        None => t.split(',').for_each(|x| push_tag(out, x)),
    }
}

/// Normalises one tag; `None` if nothing is left.
pub fn normalize_tag(raw: &str) -> Option<String> {
    let cleaned = clean_text(raw).0?;
    let t = cleaned.strip_prefix('#').unwrap_or(&cleaned).trim();
    if t.is_empty() {
        return None;
    }
    // Lowercasing can produce a sequence that is no longer NFC (rare): normalise again,
    // unless every character is one no normalisation changes.
    let lower = t.to_lowercase();
    if lower.chars().all(plainly_nfc) {
        return Some(lower);
    }
    Some(lower.nfc().collect())
}

pub(crate) fn push_tag(out: &mut Vec<String>, raw: &str) {
    if let Some(t) = normalize_tag(raw) {
        if !out.contains(&t) {
            out.push(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Attr {
        Attr::S(x.into())
    }

    #[test]
    fn every_container_form_gives_the_same_tags() {
        let want = vec!["rust".to_string(), "data".to_string()];
        let forms = [
            Attr::Ss(vec!["#Rust".into(), "data".into()]),
            Attr::L(vec![s(" #rust "), s("#DATA"), s("rust")]),
            s(r##"["#Rust", "Data"]"##),
            s("#rust, data,,  #RUST , "),
        ];
        for f in forms {
            assert_eq!(parse_tags(&f).unwrap(), want, "{f:?}");
        }
    }

    #[test]
    fn only_one_leading_hash_is_removed() {
        assert_eq!(normalize_tag("##x").as_deref(), Some("#x"));
        assert_eq!(normalize_tag("#"), None);
    }

    #[test]
    fn tags_are_nfc_and_lowercase() {
        assert_eq!(normalize_tag("#Cafe\u{301}").as_deref(), Some("caf\u{e9}"));
    }

    #[test]
    fn a_map_cannot_hold_tags() {
        assert_eq!(parse_tags(&Attr::M(Default::default())), None);
    }
}
