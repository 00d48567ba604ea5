//! Properties of the parse rules over arbitrary input: cleaned text is always fit for a
//! PostgreSQL `text` column, metadata is always fit for `jsonb` or null, and nothing panics.

use proptest::prelude::*;
use scansync_parse::attr::{Attr, Item};
use scansync_parse::export::check_against_general_path;
use scansync_parse::export::decode_export_line;
use scansync_parse::json::{
    has_nul, is_json, numbers_fit_numeric, parse_json_text, plain_json_container, repair_json_text,
    strip_nul, Parsed,
};
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

/// One attribute value in one of the forms upstream writes, its text drawn from `text`.
fn value_form(text: impl Strategy<Value = String> + Clone) -> impl Strategy<Value = Attr> {
    prop_oneof![
        4 => text.clone().prop_map(Attr::S),
        1 => prop_oneof![Just("12"), Just("9007199254740993"), Just("1.5e3"), Just("-0"), Just("x")]
            .prop_map(|n| Attr::N(n.into())),
        1 => any::<bool>().prop_map(Attr::Bool),
        1 => Just(Attr::Null),
        1 => prop::collection::vec(text.clone().prop_map(Attr::S), 0..3).prop_map(Attr::L),
        1 => prop::collection::vec(text, 0..3).prop_map(Attr::Ss),
    ]
}

/// Mostly plain text, sometimes text a rule repairs.
fn mostly_plain() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        3 => "[ -~]{0,12}",
        1 => "[a-zé🎬 ]{1,8}",
        1 => nasty_string(),
    ]
}

/// A record near the common shape: every field present in its usual form, then some of them
/// replaced by another form, removed, or joined by another name of the same field.
fn near_common_item() -> impl Strategy<Value = Item> {
    let names = [
        "scanId",
        "datePartition",
        "updatedAt",
        "platform",
        "contentId",
        "postId",
        "url",
        "contentUrl",
        "caption",
        "creator",
        "creatorId",
        "creatorHandle",
        "creatorFollowers",
        "community",
        "communityId",
        "communityName",
        "tags",
        "stats",
        "postedAt",
        "metadata",
        "deleted",
        "mood",
    ];
    let changes = prop::collection::vec(
        (prop::sample::select(names.to_vec()), prop::option::weighted(0.8, value_form(mostly_plain()))),
        0..4,
    );
    let sub = (mostly_plain(), mostly_plain(), prop::sample::select(vec!["id", "name", "handle", "views"]));
    let metadata = prop_oneof![
        Just(r#"{"lang":"en","n":1}"#.to_string()),
        Just(r#"["a",1]"#.to_string()),
        Just(r#"{"url":"https://meta.example/1","caption":"from meta"}"#.to_string()),
        nasty_string(),
    ];
    (changes, sub, metadata).prop_map(|(changes, (a, b, key), metadata)| {
        let s = |x: &str| Attr::S(x.to_string());
        let map =
            |pairs: Vec<(&str, Attr)>| Attr::M(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let mut item: Item = [
            ("scanId", s("scan-1")),
            ("datePartition", s("2026-11-26")),
            ("updatedAt", s("2026-11-26 10:00:00+00:00")),
            ("platform", s("reddit")),
            ("contentId", s("p1")),
            ("url", s("https://example.com/p/1")),
            ("caption", Attr::S(a.clone())),
            (
                "creator",
                map(vec![("id", s("c1")), (key, Attr::S(b.clone())), ("followers", Attr::N("7".into()))]),
            ),
            ("community", map(vec![("name", Attr::S(b)), ("id", s("g1"))])),
            ("tags", Attr::S(a)),
            ("stats", map(vec![("views", Attr::N("100".into())), ("likes", s(" 10 "))])),
            ("postedAt", s("2026-11-25T00:00:00Z")),
            ("metadata", Attr::S(metadata)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (name, value) in changes {
            match value {
                Some(v) => item.insert(name.to_string(), v),
                None => item.remove(name),
            };
        }
        item
    })
}

/// JSON text and text nearly JSON: a value built from tokens the metadata checks care about
/// (escapes good and bad, numbers with leading zeros, long runs and big exponents, literals
/// and near-literals), then maybe mutated by an inserted or removed character.
fn json_ish_text() -> impl Strategy<Value = String> {
    let string = prop::collection::vec(
        prop_oneof![
            4 => "[a-z ]{0,4}",
            1 => prop_oneof![
                Just(r"\u00e9"), Just(r"\ud83c\udfac"), Just(r"\ud83d"), Just(r"\udc00"), Just(r"\ud83d\u0041"),
                Just(r"\u0000"), Just(r"\n"), Just(r#"\""#), Just(r"\\"), Just(r"\/"), Just(r"\x"), Just("é🎬"),
                Just("\t"), Just("\u{0}"), Just(r"\u12"),
            ]
            .prop_map(String::from),
        ],
        0..4,
    )
    .prop_map(|v| format!("\"{}\"", v.concat()));
    let number = prop_oneof![
        3 => "-?[0-9]{1,3}(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,4})?",
        1 => prop_oneof![Just("01"), Just("1."), Just(".5"), Just("-"), Just("+1"), Just("1e"), Just("-0")]
            .prop_map(String::from),
        1 => (900usize..=901).prop_map(|n| "9".repeat(n)),
    ];
    let leaf = prop_oneof![
        3 => string.clone(),
        3 => number,
        1 => prop_oneof![Just("true"), Just("false"), Just("null"), Just("tru"), Just("nul")].prop_map(String::from),
    ];
    let value = leaf.prop_recursive(4, 32, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|xs| format!("[{}]", xs.join(","))),
            prop::collection::vec((string.clone(), inner), 0..5).prop_map(|kv| {
                let members: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(" , "))
            }),
        ]
    });
    let edit = prop_oneof![
        Just(""),
        Just(" "),
        Just("\n"),
        Just(","),
        Just("]"),
        Just("}"),
        Just("\""),
        Just(":"),
        Just("\u{feff}"),
        Just("x"),
        Just("0"),
        Just("\\"),
    ];
    let edits = prop::collection::vec((any::<prop::sample::Index>(), edit), 0..3);
    (value, edits).prop_map(|(mut text, edits)| {
        for (at, piece) in edits {
            let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let i = cuts[at.index(cuts.len())];
            if piece.is_empty() {
                if i < text.len() {
                    text.remove(i);
                }
            } else {
                text.insert_str(i, piece);
            }
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_typed_path_reads_a_line_exactly_as_the_general_path_or_leaves_it_to_it(item in near_common_item()) {
        let mut line = String::from("{\"Item\":");
        scansync_parse::attr::write_item_dynamodb_json(&item, &mut line);
        line.push('}');
        if let Err(e) = check_against_general_path(line.as_bytes()) {
            panic!("{e}\nline: {line}");
        }
    }

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
    fn the_one_pass_metadata_check_holds_exactly_when_the_three_checks_it_stands_for_do(text in json_ish_text()) {
        // (Its other refusals, whitespace but spaces and nesting past 64, are not generated
        // here; the unit cases pin them.)
        let three = text.starts_with(['{', '['])
            && !text.bytes().any(|b| b < 0x20)
            && repair_json_text(&text) == (text.clone(), false)
            && numbers_fit_numeric(&text)
            && is_json(&text);
        prop_assert_eq!(plain_json_container(&text), three, "{}", text);
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
        if let Err(e) = check_against_general_path(&b) {
            panic!("{e}");
        }
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
