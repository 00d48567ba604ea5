//! For arbitrary metadata strings, the parser's output is accepted by PostgreSQL's `jsonb`
//! (or is null), and every text it produces by `text`: checked by the server itself.

use crate::support::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use scansync::attr::{Attr, Item};
use scansync::parse::{parse_item, Drift, Repairs};

fn nasty_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        Just("\u{0}".to_string()),
        Just("\\u0000".to_string()),
        Just("\\ud83d".to_string()),
        Just("\\udfff\\ud800".to_string()),
        Just("\u{feff}".to_string()),
        Just("\\\"".to_string()),
        Just("{\"k\":\"".to_string()),
        Just("\"}".to_string()),
        Just("[1e308,".to_string()),
        Just("123456789012345678901234567890".to_string()),
        Just("1e131072".to_string()),
        Just("-0.0e-400".to_string()),
    ];
    let concat = prop::collection::vec(piece, 0..16).prop_map(|v| v.concat());
    // Valid JSON objects and arrays holding nasty text (escaped control characters, NUL
    // escapes, non-BMP characters) and exact big numbers: the values that must survive as is.
    let object = (concat.clone(), any::<u64>()).prop_map(|(t, n)| {
        format!(
            "{{\"caption\": {}, \"n\": 123456789012345678901234567890{n}, \"a\": [true, null]}}",
            serde_json::to_string(&t).unwrap()
        )
    });
    let array = concat.clone().prop_map(|t| format!("[{}, 1.5e3, {{}}]", serde_json::to_string(&t).unwrap()));
    prop_oneof![2 => concat, 1 => object, 1 => array]
}

#[test]
fn metadata_from_arbitrary_strings_is_accepted_by_postgres_jsonb() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    let client = rt.block_on(db.client());
    let mut runner = TestRunner::new(Config::with_cases(300));
    let kept = std::cell::Cell::new(0u32);
    runner
        .run(&nasty_string(), |s| {
            let item: Item = [
                ("updatedAt", Attr::S("2026-11-26T00:00:00Z".into())),
                ("platform", Attr::S("x".into())),
                ("contentId", Attr::S("1".into())),
                ("caption", Attr::S(s.clone())),
                // Both as a JSON string and wrapped once more (double encoding).
                ("metadata", Attr::S(s.clone())),
                ("mood", Attr::S(s.clone())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let mut twice = item.clone();
            twice.insert("metadata".into(), Attr::S(serde_json::to_string(&s).unwrap()));
            // What PostgreSQL itself makes of the input: an object or array it accepts as is
            // must come out of the parser as exactly that value (not null, not altered).
            let pg_value: Option<String> = rt
                .block_on(client.query_one(
                    "select case when jsonb_typeof(j) in ('object', 'array') then j::text end
                     from (select $1::text::jsonb as j) x",
                    &[&s],
                ))
                .ok()
                .and_then(|r| r.get(0));
            for it in [item, twice] {
                let rec = parse_item(&it, "", &mut Repairs::default(), &mut Drift::default()).unwrap();
                // The casts are the check: PostgreSQL raises an error for anything it refuses.
                let row = rt.block_on(client.query_one(
                    "select $1::text::jsonb::text, $2::text::jsonb is not null, length($3::text)",
                    &[&rec.metadata, &rec.extra, &rec.caption],
                ));
                prop_assert!(
                    row.is_ok(),
                    "postgres refused {:?} / {:?}: {:?}",
                    rec.metadata,
                    rec.caption,
                    row.err()
                );
                if let Some(expected) = &pg_value {
                    let got: Option<String> = row.unwrap().get(0);
                    prop_assert_eq!(got.as_deref(), Some(expected.as_str()), "metadata {:?}", s);
                    kept.set(kept.get() + 1);
                }
            }
            Ok(())
        })
        .unwrap();
    // The property is not vacuous: some inputs were valid objects or arrays, kept exactly.
    assert!(kept.get() > 0, "no input was a valid JSON object or array: the strategy tests nothing");
}
