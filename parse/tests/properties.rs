//! Properties of the parse rules over arbitrary input: cleaned text is always fit for a
//! PostgreSQL `text` column, metadata is always fit for `jsonb` or null, and nothing panics.

use proptest::prelude::*;
use scansync_parse::attr::{Attr, Item};
use scansync_parse::export::decode_export_line;
use scansync_parse::json::{has_nul, parse_json_text, strip_nul, Parsed};
use scansync_parse::text::{clean_bytes, clean_text};
use scansync_parse::{parse_item, Drift, Repairs};
use unicode_normalization::is_nfc;

fn assert_clean(out: &Option<String>) {
    if let Some(s) = out {
        assert!(is_nfc(s), "not NFC: {s:?}");
        assert!(s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'), "control char: {s:?}");
        assert_eq!(s.trim(), s, "not trimmed: {s:?}");
        assert!(!s.is_empty());
    }
}

/// Strings rich in the characters that break things.
fn nasty_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        Just("\u{0}".to_string()),
        Just("\\u0000".to_string()),
        Just("\\ud83d".to_string()),
        Just("\\udc00".to_string()),
        Just("\\ud83d\\ude00".to_string()),
        Just("\u{feff}".to_string()),
        Just("e\u{301}".to_string()),
        Just("\\\\".to_string()),
        Just("\"".to_string()),
        Just("{\"a\":".to_string()),
        Just("[".to_string()),
        Just("1e999999".to_string()),
        Just(" ".to_string()),
        Just("\r\n\t".to_string()),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// Whether PostgreSQL's jsonb would accept this text: valid JSON holding no NUL (serde_json
/// never writes lone surrogates; numbers are range-checked by `jsonb_text`). The server
/// itself checks the same property in `tests/it/jsonb_property.rs`.
fn jsonb_acceptable(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| !has_nul(&v))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn cleaned_text_is_nfc_trimmed_and_free_of_control_characters(s in nasty_string()) {
        assert_clean(&clean_text(&s).0);
    }

    #[test]
    fn cleaned_bytes_are_valid_utf8_and_clean(b in prop::collection::vec(any::<u8>(), 0..64)) {
        assert_clean(&clean_bytes(&b).0);
    }

    #[test]
    fn metadata_text_becomes_jsonb_acceptable_json_or_null(s in nasty_string()) {
        let mut repairs = Repairs::default();
        let mut drift = Drift::default();
        let item: Item = [
            ("updatedAt", Attr::S("2026-11-26T00:00:00Z".into())),
            ("platform", Attr::S("x".into())),
            ("contentId", Attr::S("1".into())),
            ("metadata", Attr::S(s.clone())),
            ("caption", Attr::S(s.clone())),
            ("tags", Attr::S(s.clone())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let rec = parse_item(&item, "", &mut repairs, &mut drift).unwrap();
        if let Some(m) = &rec.metadata {
            prop_assert!(jsonb_acceptable(m), "{m:?}");
        }
        assert_clean(&rec.caption);
        for (i, t) in rec.tags.iter().enumerate() {
            assert_clean(&Some(t.clone()));
            prop_assert_eq!(&t.to_lowercase(), t);
            prop_assert!(!rec.tags[..i].contains(t), "duplicate tag {:?}", t);
        }
    }

    #[test]
    fn repaired_json_values_carry_no_nul(s in nasty_string()) {
        if let Parsed::Value { mut value, .. } = parse_json_text(&s) {
            strip_nul(&mut value);
            prop_assert!(!has_nul(&value));
        }
    }

    #[test]
    fn export_line_decoding_never_panics(b in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_export_line(b);
    }

    #[test]
    fn export_lines_built_from_nasty_strings_decode_and_parse(s in nasty_string()) {
        let line = format!(
            "{{\"Item\":{{\"updatedAt\":{{\"S\":\"2026-11-26T00:00:00Z\"}},\"platform\":{{\"S\":\"x\"}},\"contentId\":{{\"S\":\"1\"}},\"caption\":{{\"S\":{}}}}}}}",
            serde_json::to_string(&s).unwrap()
        );
        if let scansync_parse::RawRecord::Item(item) = decode_export_line(line.into_bytes()) {
            let rec = parse_item(&item, "", &mut Repairs::default(), &mut Drift::default()).unwrap();
            assert_clean(&rec.caption);
        } else {
            panic!("a valid export line was not decoded");
        }
    }
}
