//! Fuzzes the record parser: one export line (DynamoDB JSON) in, a record or a quarantine
//! reason out. Beyond "never panics", it checks every output is fit for PostgreSQL: text
//! is clean, JSON columns are valid `jsonb`, numbers are canonical decimals; and that the
//! typed path reads a line exactly as the general path does, or leaves it to it; and that
//! the one-pass metadata check never passes text the three checks it stands for would not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scansync_parse::export::decode_export_line;
use scansync_parse::json::{has_nul, is_json, numbers_fit_numeric, plain_json_container, repair_json_text};
use scansync_parse::number::normalize_decimal;
use scansync_parse::{parse_item, Drift, RawRecord, Repairs};
use unicode_normalization::is_nfc;

fn check_text(what: &str, s: &str) {
    assert!(!s.is_empty(), "{what}: empty string instead of null");
    assert!(is_nfc(s), "{what}: not NFC: {s:?}");
    assert!(s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'), "{what}: control character: {s:?}");
    assert_eq!(s.trim(), s, "{what}: not trimmed");
}

fn check_json(what: &str, s: &str) {
    let v: serde_json::Value =
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {s:?}"));
    assert!(!has_nul(&v), "{what}: NUL that jsonb refuses: {s:?}");
}

fuzz_target!(|data: &[u8]| {
    // The one-pass metadata check stands for the three checks of the slow way.
    if let Ok(text) = std::str::from_utf8(data) {
        if plain_json_container(text) {
            assert!(is_json(text) && numbers_fit_numeric(text), "plain but not JSON fit for numeric: {text:?}");
            assert_eq!(repair_json_text(text), (text.to_owned(), false), "plain but repaired");
        }
    }
    // The typed path reads a line exactly as the general path does, or leaves it to it.
    if let Err(e) = scansync_parse::export::check_against_general_path(data) {
        panic!("the typed path disagrees with the general path: {e}");
    }
    match decode_export_line(data.to_vec()) {
        RawRecord::Unreadable { raw, .. } => assert!(!raw.is_empty() || data.is_empty()),
        // A removal's old image goes through the same parser; it must not panic.
        RawRecord::Removal { item, .. } => {
            let _ = parse_item(&item, "fuzz", &mut Repairs::default(), &mut Drift::default());
        }
        RawRecord::Typed(_) => panic!("decode_export_line is the general path: it never reads a line typed"),
        RawRecord::Item(item) => {
            let mut repairs = Repairs::default();
            let mut drift = Drift::default();
            if let Ok(r) = parse_item(&item, "fuzz", &mut repairs, &mut drift) {
                check_text("platform", &r.platform);
                assert!(!r.external_id.contains('\0'));
                for (what, v) in [("url", &r.url), ("caption", &r.caption)] {
                    if let Some(v) = v {
                        check_text(what, v);
                    }
                }
                if let Some(c) = &r.creator {
                    for v in [&c.handle, &c.display_name].into_iter().flatten() {
                        check_text("creator", v);
                    }
                    if let Some(f) = &c.followers {
                        assert_eq!(normalize_decimal(f).as_deref(), Some(f.as_str()));
                    }
                }
                for t in &r.tags {
                    check_text("tag", t);
                }
                for n in r.stats.iter().flatten() {
                    assert_eq!(normalize_decimal(n).as_deref(), Some(n.as_str()), "count not canonical");
                }
                if let Some(m) = &r.metadata {
                    check_json("metadata", m);
                }
                if let Some(e) = &r.extra {
                    check_json("extra", e);
                }
            }
        }
    }
});
