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
    prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

#[test]
fn metadata_from_arbitrary_strings_is_accepted_by_postgres_jsonb() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    let client = rt.block_on(db.client());
    let mut runner = TestRunner::new(Config::with_cases(300));
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
            for it in [item, twice] {
                let rec = parse_item(&it, "", &mut Repairs::default(), &mut Drift::default()).unwrap();
                let row = rt.block_on(client.query_one(
                    "select $1::text::jsonb is not distinct from $1::text::jsonb,
                            $2::text::jsonb is not null, $3::text is not distinct from $3::text",
                    &[&rec.metadata, &rec.extra, &rec.caption],
                ));
                prop_assert!(
                    row.is_ok(),
                    "postgres refused {:?} / {:?}: {:?}",
                    rec.metadata,
                    rec.caption,
                    row.err()
                );
            }
            Ok(())
        })
        .unwrap();
}
