//! The export source and dirty input through a real run: every value we produce must be
//! accepted by PostgreSQL's `text`, `jsonb` and `numeric`, and bad lines must not stop the
//! lines after them.

use crate::support::*;
use scansync::attr::{Attr, Item};

async fn sync_export<L: AsRef<[u8]>>(db: &TestDb, files: &[Vec<L>]) -> std::process::Output {
    let dir = write_export(files);
    let out = scansync(
        db,
        &["sync", "--source", "export", "--export-dir", dir.to_str().unwrap(), "--first-run-window", "48h"],
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

#[tokio::test]
async fn a_bad_line_is_quarantined_and_the_lines_after_it_land() {
    let db = TestDb::new().await;
    let good = |id: &str| export_line(&record(id, id, &hours_ago(1.0), "ok"));
    let no_platform = {
        let mut it = record("np", "s-np", &hours_ago(1.0), "x");
        it.remove("platform");
        export_line(&it)
    };
    let lines = vec![
        good("before"),
        "{\"Item\": {\"scanId\": {\"S\": \"cut\"}".to_string(),
        "not json at all \u{0}".to_string(),
        "{\"Item\": [1, 2]}".to_string(),
        no_platform,
        good("after"),
    ];
    let out = sync_export(&db, std::slice::from_ref(&lines)).await;
    assert_exit(&out, 0);
    let c = db.client().await;
    let ids: Vec<String> = column(&c, "select external_id from scansync.content order by 1").await;
    assert_eq!(ids, ["after", "before"]);
    let reasons: Vec<String> = column(&c, "select reason from scansync.quarantine order by 1").await;
    assert_eq!(reasons, ["missing_platform", "not_a_map", "not_json", "not_json"]);
    let run = c.query_one("select quarantined, rejects::text from scansync.sync_runs", &[]).await.unwrap();
    assert_eq!(run.get::<_, i64>(0), 4);
    assert_eq!(run.get::<_, String>(1), r#"{"not_json": 2, "not_a_map": 1, "missing_platform": 1}"#);

    // Seen again: no duplicate quarantine rows.
    c.execute("delete from scansync.checkpoints", &[]).await.unwrap();
    assert_exit(&sync_export(&db, &[lines]).await, 0);
    let n: i64 = c.query_one("select count(*) from scansync.quarantine", &[]).await.unwrap().get(0);
    assert_eq!(n, 4);
}

fn case(id: &str, attrs: &[(&str, Attr)]) -> Item {
    with(record(id, id, &hours_ago(1.0), "plain"), attrs)
}

fn s(x: &str) -> Attr {
    Attr::S(x.into())
}

#[tokio::test]
async fn every_dirty_value_is_repaired_into_something_postgres_accepts() {
    let meta = r#"{"k":"v","n":123456789012345678901234567890}"#;
    let double = serde_json::to_string(meta).unwrap();
    let cases: Vec<(Item, &str, &str)> = vec![
        (case("nul_caption", &[("caption", s("a\u{0}b"))]), "caption", "ab"),
        (case("control_chars", &[("caption", s("a\u{7}b\r\nc\u{1b}"))]), "caption", "ab\nc"),
        (case("non_nfc", &[("caption", s("Cafe\u{301}"))]), "caption", "Caf\u{e9}"),
        (case("escaped_lone_surrogate", &[("caption", s(r"x\ud83dy"))]), "caption", "x\u{fffd}y"),
        (case("blank_caption", &[("caption", s(" \u{0}\t "))]), "coalesce(caption, 'NULL')", "NULL"),
        (case("bom_metadata", &[("metadata", s(&format!("\u{feff}{meta}")))]), "metadata->>'k'", "v"),
        (case("double_encoded_metadata", &[("metadata", s(&double))]), "metadata->>'n'", "123456789012345678901234567890"),
        (case("nul_escape_metadata", &[("metadata", s(r#"{"k":"a\u0000b"}"#))]), "metadata->>'k'", "ab"),
        (case("lone_surrogate_metadata", &[("metadata", s(r#"{"k":"\ud83d!"}"#))]), "metadata->>'k'", "\u{fffd}!"),
        (case("huge_metadata_number", &[("metadata", s(r#"{"n":1e999999}"#))]), "coalesce(metadata::text, 'NULL')", "NULL"),
        (case("not_json_metadata", &[("metadata", s("{nope"))]), "coalesce(metadata::text, 'NULL')", "NULL"),
        (
            case("big_count", &[("stats", Attr::M([("views".to_string(), Attr::N("12345678901234567890123".into()))].into_iter().collect()))]),
            "view_count::text",
            "12345678901234567890123",
        ),
        (
            case("count_not_a_number", &[("stats", Attr::M([("views".to_string(), s("n/a"))].into_iter().collect()))]),
            "coalesce(view_count::text, 'NULL')",
            "NULL",
        ),
        (case("epoch_millis", &[("postedAt", Attr::N("1764151200000".into()))]), "posted_at::text", "2025-11-26 10:00:00+00"),
        (case("bad_timestamp", &[("postedAt", s("last tuesday"))]), "coalesce(posted_at::text, 'NULL')", "NULL"),
        (case("drift", &[("mood", Attr::M([("x".to_string(), Attr::N("1.50".into()))].into_iter().collect()))]), "extra::text", r#"{"mood": {"x": 1.50}}"#),
        (
            case("tags_as_json_string", &[("tags", s(r##"["#Rust", "rust", " DATA "]"##))]),
            "array(select t.name from scansync.content_tags ct join scansync.tags t on t.id = ct.tag_id where ct.content_id = content.id order by 1)::text",
            "{data,rust}",
        ),
    ];
    let mut lines: Vec<Vec<u8>> = cases.iter().map(|(item, _, _)| export_line(item).into_bytes()).collect();
    // Raw bytes no JSON encoder would write: invalid UTF-8 and a raw NUL inside a string.
    let mut raw = export_line(&case("invalid_utf8", &[("caption", s("a@b"))])).into_bytes();
    let at = raw.iter().position(|b| *b == b'@').unwrap();
    raw[at] = 0xff;
    let mut raw_nul = export_line(&case("raw_nul_in_line", &[("caption", s("c@d"))])).into_bytes();
    let at = raw_nul.iter().position(|b| *b == b'@').unwrap();
    raw_nul[at] = 0;
    lines.push(raw);
    lines.push(raw_nul);

    let db = TestDb::new().await;
    let out = sync_export(&db, &[lines]).await;
    assert_exit(&out, 0);
    let c = db.client().await;
    for (item, expr, want) in &cases {
        let id = match &item["contentId"] {
            Attr::S(s) => s.clone(),
            _ => unreachable!(),
        };
        let got: String = c
            .query_one(&format!("select {expr} from scansync.content where external_id = $1"), &[&id])
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"))
            .get(0);
        assert_eq!(&got, want, "{id}");
    }
    let caption = |id: &'static str| {
        let c = &c;
        async move {
            c.query_one("select caption from scansync.content where external_id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(caption("invalid_utf8").await, "a\u{fffd}b");
    assert_eq!(caption("raw_nul_in_line").await, "cd");
    let drift: i64 = c
        .query_one(
            "select count from scansync.schema_drift where attribute = 'mood' and observed_type = 'M'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(drift, 1);
}
