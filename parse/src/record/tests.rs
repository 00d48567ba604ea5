//! Record-level tests of the parse stage: one behaviour each.

use super::*;
use crate::attr::{Attr, Item};

fn s(x: &str) -> Attr {
    Attr::S(x.into())
}
fn n(x: &str) -> Attr {
    Attr::N(x.into())
}
fn m(pairs: &[(&str, Attr)]) -> Attr {
    Attr::M(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}
fn item(pairs: &[(&str, Attr)]) -> Item {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}
fn base() -> Vec<(&'static str, Attr)> {
    vec![
        ("scanId", s("scan-1")),
        ("datePartition", s("2026-11-26")),
        ("updatedAt", s("2026-11-26T10:00:00Z")),
        ("platform", s("TikTok")),
        ("contentId", s("post-1")),
    ]
}
fn parse(pairs: &[(&str, Attr)]) -> Result<Record, RejectReason> {
    let mut r = Repairs::default();
    let mut d = Drift::default();
    parse_item(&item(pairs), "2026-11-26", &mut r, &mut d)
}
fn with(extra: &[(&'static str, Attr)]) -> Vec<(&'static str, Attr)> {
    let mut v = base();
    for (k, a) in extra {
        v.retain(|(kk, _)| kk != k);
        v.push((k, a.clone()));
    }
    v
}

#[test]
fn every_content_id_variant_lands_in_external_id() {
    for (name, attr, want) in [
        ("contentId", s("a1"), "a1"),
        ("content_id", s("a2"), "a2"),
        ("postId", s("a3"), "a3"),
        ("contentId", n("123456789012345678901"), "123456789012345678901"),
    ] {
        let mut v: Vec<_> = base().into_iter().filter(|(k, _)| *k != "contentId").collect();
        v.push((name, attr));
        assert_eq!(parse(&v).unwrap().external_id, want, "{name}");
    }
}

#[test]
fn platform_is_lowercased() {
    assert_eq!(parse(&base()).unwrap().platform, "tiktok");
}

#[test]
fn url_variants_are_normalised() {
    assert_eq!(parse(&with(&[("contentUrl", s("https://a"))])).unwrap().url.as_deref(), Some("https://a"));
    assert_eq!(parse(&with(&[("url", s("https://b"))])).unwrap().url.as_deref(), Some("https://b"));
}

#[test]
fn creator_map_and_flat_fields_give_the_same_creator() {
    let map = parse(&with(&[(
        "creator",
        m(&[
            ("id", n("42")),
            ("handle", s("Ann")),
            ("displayName", s("Ann A")),
            ("followers", n("99999999999999999999")),
        ]),
    )]))
    .unwrap()
    .creator
    .unwrap();
    assert_eq!(map.external_id, "42");
    assert_eq!(map.followers.as_deref(), Some("99999999999999999999"));
    let flat = parse(&with(&[("creatorId", s("42")), ("creatorHandle", s("Ann"))])).unwrap().creator.unwrap();
    assert_eq!((flat.external_id.as_str(), flat.handle.as_deref()), ("42", Some("Ann")));
}

#[test]
fn creator_without_id_is_keyed_by_lowercased_handle() {
    let c = parse(&with(&[("creatorHandle", s("MixedCase"))])).unwrap().creator.unwrap();
    assert_eq!(c.external_id, "mixedcase");
    assert_eq!(c.handle.as_deref(), Some("MixedCase"));
}

#[test]
fn community_without_id_is_keyed_by_lowercased_name() {
    let c = parse(&with(&[("community", m(&[("name", s("r/Rust"))]))])).unwrap().community.unwrap();
    assert_eq!((c.external_id.as_str(), c.name.as_deref()), ("r/rust", Some("r/Rust")));
    let flat =
        parse(&with(&[("communityId", n("7")), ("communityName", s("x"))])).unwrap().community.unwrap();
    assert_eq!(flat.external_id, "7");
}

#[test]
fn counts_past_two_to_the_64_are_exact_and_non_numbers_are_null() {
    let r = parse(&with(&[(
        "stats",
        m(&[("views", n("12345678901234567890123")), ("likes", s("17")), ("comments", s("n/a"))]),
    )]))
    .unwrap();
    assert_eq!(r.stats[0].as_deref(), Some("12345678901234567890123"));
    assert_eq!(r.stats[1].as_deref(), Some("17"));
    assert_eq!(r.stats[2], None);
}

#[test]
fn stats_given_as_a_json_string_are_read() {
    let r = parse(&with(&[("stats", s(r#"{"views": 5, "shares": "6"}"#))])).unwrap();
    assert_eq!(r.stats[0].as_deref(), Some("5"));
    assert_eq!(r.stats[3].as_deref(), Some("6"));
}

#[test]
fn posted_at_accepts_iso_and_epoch_forms() {
    let want = Timestamp::parse("2025-11-26T10:00:00Z");
    for a in [s("2025-11-26T10:00:00Z"), n("1764151200"), n("1764151200000"), s("1764151200000")] {
        assert_eq!(parse(&with(&[("postedAt", a.clone())])).unwrap().posted_at, want, "{a:?}");
    }
    assert_eq!(parse(&with(&[("postedAt", s("yesterday"))])).unwrap().posted_at, None);
}

#[test]
fn records_without_content_id_or_platform_are_rejected() {
    let no_id: Vec<_> = base().into_iter().filter(|(k, _)| *k != "contentId").collect();
    assert_eq!(parse(&no_id), Err(RejectReason::MissingContentId));
    let no_platform: Vec<_> = base().into_iter().filter(|(k, _)| *k != "platform").collect();
    assert_eq!(parse(&no_platform), Err(RejectReason::MissingPlatform));
    assert_eq!(parse(&with(&[("platform", s("  \u{0} "))])), Err(RejectReason::MissingPlatform));
}

#[test]
fn records_without_a_usable_updated_at_are_rejected() {
    let none: Vec<_> = base().into_iter().filter(|(k, _)| *k != "updatedAt").collect();
    assert_eq!(parse(&none), Err(RejectReason::MissingUpdatedAt));
    assert_eq!(parse(&with(&[("updatedAt", s("soon"))])), Err(RejectReason::UnparseableUpdatedAt));
}

#[test]
fn missing_fields_are_found_in_the_metadata() {
    let meta = s(
        r#"{"platform":"YouTube","id":"vid9","author":{"id":"c1","username":"Bob"},"statistics":{"viewCount":"10"}}"#,
    );
    let v: Vec<_> = base()
        .into_iter()
        .filter(|(k, _)| *k != "platform" && *k != "contentId")
        .chain([("metadata", meta)])
        .collect();
    let r = parse(&v).unwrap();
    assert_eq!((r.platform.as_str(), r.external_id.as_str()), ("youtube", "vid9"));
    assert_eq!(r.creator.unwrap().handle.as_deref(), Some("Bob"));
    assert_eq!(r.stats[0].as_deref(), Some("10"));
}

#[test]
fn double_encoded_metadata_is_stored_as_the_inner_object() {
    let inner = r#"{"a":"x\u0000y","n":123456789012345678901234567890}"#;
    let twice = serde_json::to_string(inner).unwrap();
    let mut r = Repairs::default();
    let mut d = Drift::default();
    let rec = parse_item(&item(&with(&[("metadata", s(&format!("\u{feff}{twice}")))])), "", &mut r, &mut d)
        .unwrap();
    assert_eq!(rec.metadata.as_deref(), Some(r#"{"a":"xy","n":123456789012345678901234567890}"#));
    assert_eq!(r.get(Rule::MetadataUnwrapped), 1);
}

#[test]
fn metadata_that_is_not_json_is_null_and_counted() {
    let mut r = Repairs::default();
    let mut d = Drift::default();
    let rec = parse_item(&item(&with(&[("metadata", s("{broken"))])), "", &mut r, &mut d).unwrap();
    assert_eq!(rec.metadata, None);
    assert_eq!(r.get(Rule::MetadataInvalid), 1);
}

#[test]
fn unknown_attributes_are_kept_in_extra_and_recorded_as_drift() {
    let mut r = Repairs::default();
    let mut d = Drift::default();
    let rec = parse_item(
        &item(&with(&[("sentiment", n("0.75")), ("caption", m(&[("text", s("hi"))]))])),
        "",
        &mut r,
        &mut d,
    )
    .unwrap();
    let extra: serde_json::Value = serde_json::from_str(rec.extra.as_deref().unwrap()).unwrap();
    assert_eq!(extra, serde_json::json!({"sentiment": 0.75, "caption": {"text": "hi"}}));
    assert_eq!(d.get(&("sentiment".to_string(), "N")), Some(&1));
    assert_eq!(d.get(&("caption".to_string(), "M")), Some(&1));
    assert_eq!(rec.caption, None);
}

#[test]
fn tombstones_are_read_from_the_deleted_flag() {
    assert!(parse(&with(&[("deleted", Attr::Bool(true))])).unwrap().deleted);
    assert!(!parse(&base()).unwrap().deleted);
}

#[test]
fn records_at_or_before_the_window_bound_are_skipped_and_counted() {
    let at = Timestamp::parse("2026-11-26T10:00:00Z").unwrap();
    let raw = vec![
        RawRecord::Item(item(&base())),
        RawRecord::Item(item(&with(&[
            ("updatedAt", s("2026-11-26T10:00:00.500Z")),
            ("scanId", s("scan-2")),
        ]))),
    ];
    let page = parse_page("2026-11-26", raw, &Filter { after: Some(at), ..Filter::default() });
    assert_eq!(page.skipped, 1);
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].scan_id, "scan-2");
}

#[test]
fn rejects_keep_the_raw_record_and_scan_id() {
    let no_id: Vec<_> = base().into_iter().filter(|(k, _)| *k != "contentId").collect();
    let page = parse_page("2026-11-26", vec![RawRecord::Item(item(&no_id))], &Filter::default());
    let rj = &page.rejects[0];
    assert_eq!(rj.reason, RejectReason::MissingContentId);
    assert_eq!(rj.scan_id.as_deref(), Some("scan-1"));
    assert!(rj.raw.contains(r#""platform":{"S":"TikTok"}"#));
}

/// Compares JSON texts as values (the `metadata` column is `jsonb`: formatting is not kept).
fn json_eq(text: &Option<String>, want: &str) -> bool {
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).ok();
    text.as_deref().and_then(parse).is_some_and(|v| Some(v) == parse(want))
}

/// One row per known failure mode: the input, what must come out, and the rule that must
/// be counted. The same cases run through PostgreSQL in `tests/it/export.rs`.
#[test]
fn every_failure_mode_is_repaired_by_its_named_rule() {
    type Check = fn(&Record) -> bool;
    type Case = (&'static str, Vec<(&'static str, Attr)>, Check, Option<Rule>);
    let double = serde_json::to_string(r#"{"k":"v"}"#).unwrap();
    let cases: Vec<Case> = vec![
        (
            "nul_in_caption",
            with(&[("caption", s("a\u{0}b"))]),
            |r| r.caption.as_deref() == Some("ab"),
            Some(Rule::TextControl),
        ),
        (
            "control_chars",
            with(&[("caption", s("a\u{7}b\r\n"))]),
            |r| r.caption.as_deref() == Some("ab"),
            Some(Rule::TextControl),
        ),
        (
            "non_nfc",
            with(&[("caption", s("Cafe\u{301}"))]),
            |r| r.caption.as_deref() == Some("Caf\u{e9}"),
            Some(Rule::TextNfc),
        ),
        (
            "escaped_lone_surrogate",
            with(&[("caption", s(r"x\ud83d"))]),
            |r| r.caption.as_deref() == Some("x\u{fffd}"),
            Some(Rule::TextSurrogate),
        ),
        ("blank_is_null", with(&[("caption", s(" \t "))]), |r| r.caption.is_none(), None),
        (
            "metadata_bom",
            with(&[("metadata", s("\u{feff}{\"k\":1}"))]),
            |r| r.metadata.as_deref() == Some(r#"{"k":1}"#),
            Some(Rule::MetadataRepaired),
        ),
        (
            "metadata_nul_escape",
            with(&[("metadata", s(r#"{"k":"a\u0000"}"#))]),
            |r| r.metadata.as_deref() == Some(r#"{"k":"a"}"#),
            Some(Rule::MetadataRepaired),
        ),
        (
            "metadata_raw_nul",
            with(&[("metadata", s("{\"k\":\"a\u{0}\"}"))]),
            |r| r.metadata.as_deref() == Some(r#"{"k":"a"}"#),
            Some(Rule::MetadataRepaired),
        ),
        (
            "metadata_lone_surrogate",
            with(&[("metadata", s(r#"{"k":"\udc00"}"#))]),
            |r| json_eq(&r.metadata, "{\"k\":\"\u{fffd}\"}"),
            Some(Rule::MetadataRepaired),
        ),
        (
            "metadata_double_encoded",
            with(&[("metadata", s(&double))]),
            |r| r.metadata.as_deref() == Some(r#"{"k":"v"}"#),
            Some(Rule::MetadataUnwrapped),
        ),
        (
            "metadata_not_json",
            with(&[("metadata", s("{"))]),
            |r| r.metadata.is_none(),
            Some(Rule::MetadataInvalid),
        ),
        (
            "metadata_number_out_of_range",
            with(&[("metadata", s(r#"{"n":1e400000}"#))]),
            |r| r.metadata.is_none(),
            Some(Rule::MetadataUnfit),
        ),
        ("metadata_null", with(&[("metadata", Attr::Null)]), |r| r.metadata.is_none(), None),
        (
            "metadata_map_numbers_exact",
            with(&[("metadata", m(&[("n", n("123456789012345678901234567890"))]))]),
            |r| r.metadata.as_deref() == Some(r#"{"n":123456789012345678901234567890}"#),
            None,
        ),
        (
            "count_past_2_64",
            with(&[("stats", m(&[("views", n("18446744073709551616"))]))]),
            |r| r.stats[0].as_deref() == Some("18446744073709551616"),
            None,
        ),
        (
            "count_not_a_number",
            with(&[("stats", m(&[("views", s("n/a"))]))]),
            |r| r.stats[0].is_none(),
            Some(Rule::NumberInvalid),
        ),
        (
            "timestamp_unparseable",
            with(&[("postedAt", s("soon"))]),
            |r| r.posted_at.is_none(),
            Some(Rule::TimestampInvalid),
        ),
        (
            "caption_as_number",
            with(&[("caption", n("42"))]),
            |r| r.caption.as_deref() == Some("42"),
            Some(Rule::TypeCoerced),
        ),
        ("deleted_as_string", with(&[("deleted", s("TRUE"))]), |r| r.deleted, Some(Rule::TypeCoerced)),
        (
            "platform_from_metadata",
            {
                let mut v: Vec<_> = base().into_iter().filter(|(k, _)| *k != "platform").collect();
                v.push(("metadata", s(r#"{"platform":"Reddit"}"#)));
                v
            },
            |r| r.platform == "reddit",
            Some(Rule::MetadataFallback),
        ),
    ];
    for (name, attrs, check, rule) in cases {
        let mut repairs = Repairs::default();
        let mut drift = Drift::default();
        let rec = parse_item(&item(&attrs), "2026-11-26", &mut repairs, &mut drift)
            .unwrap_or_else(|e| panic!("{name}: rejected {e:?}"));
        assert!(check(&rec), "{name}: {rec:?}");
        if let Some(rule) = rule {
            assert!(repairs.get(rule) >= 1, "{name}: rule {} not counted ({repairs:?})", rule.name());
        }
    }
}

#[test]
fn a_known_attribute_with_a_new_type_is_coerced_and_recorded_as_drift() {
    let mut r = Repairs::default();
    let mut d = Drift::default();
    let rec = parse_item(&item(&with(&[("caption", n("42"))])), "", &mut r, &mut d).unwrap();
    assert_eq!(rec.caption.as_deref(), Some("42"));
    assert_eq!(rec.extra, None, "coerced values are not duplicated into extra");
    assert_eq!(d.get(&("caption".to_string(), "N")), Some(&1));
}
