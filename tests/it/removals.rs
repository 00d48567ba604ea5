//! Removals (a DynamoDB item deleted, as an incremental export or a stream delivers it), one
//! rule for every source (docs/contract.md, "Removals"): a removal changes a row only if it
//! removes the record that row holds (or an older one of the same post); the removal of an
//! older scan event of a post whose newer scan still exists changes nothing, whatever the
//! order the records arrive in.

use crate::support::*;
use scansync::attr::{write_item_dynamodb_json, Item};

/// An incremental export's line for the removal of `item` at `micros` (its old image).
pub fn removal_line(item: &Item, micros: i64) -> String {
    let keys: Item = [("scanId".to_string(), item["scanId"].clone())].into_iter().collect();
    let mut s = format!("{{\"Metadata\":{{\"WriteTimestampMicros\":{{\"N\":\"{micros}\"}}}},\"Keys\":");
    write_item_dynamodb_json(&keys, &mut s);
    s.push_str(",\"OldImage\":");
    write_item_dynamodb_json(item, &mut s);
    s.push('}');
    s
}

fn micros(iso: &str) -> i64 {
    scansync::time::Timestamp::parse(iso).unwrap().0
}

#[tokio::test]
async fn the_removal_of_an_older_scan_event_leaves_the_post_alive_and_of_the_newest_deletes_it() {
    // p1: scan-a (Nov 1) and scan-b (Nov 2); p2: scan-c alone. On Nov 21 scan-a and scan-c are
    // removed (what TTL expiries look like in an incremental export).
    let a = record("p1", "scan-a", "2026-11-01T10:00:00Z", "first");
    let b = record("p1", "scan-b", "2026-11-02T10:00:00Z", "second");
    let c = record("p2", "scan-c", "2026-11-01T10:00:00Z", "only");
    let removed = micros("2026-11-21T08:00:00Z");
    let full = vec![export_line(&a), export_line(&b), export_line(&c)];
    let changes = vec![removal_line(&a, removed), removal_line(&c, removed)];
    // Every arrival order: the changes' file read before, after or beside the full export.
    for (files, fetchers) in [
        (vec![full.clone(), changes.clone()], "1"),
        (vec![changes.clone(), full.clone()], "1"),
        (vec![full.clone(), changes.clone()], "4"),
    ] {
        let db = TestDb::new().await;
        let dir = write_export(&files);
        let args = [
            "backfill",
            "--source",
            "export",
            "--export-dir",
            dir.to_str().unwrap(),
            "--fetchers",
            fetchers,
            "--page-size",
            "1",
        ];
        assert_exit(&scansync(&db, &args).await, 0);
        std::fs::remove_dir_all(&dir).unwrap();
        let c = db.client().await;
        let rows = c
            .query(
                "select external_id, source_scan_id, deleted_at is not null, removed_at::text from scansync.content order by 1",
                &[],
            )
            .await
            .unwrap();
        let got: Vec<(String, String, bool, Option<String>)> =
            rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
        assert_eq!(
            got,
            [
                ("p1".into(), "scan-b".into(), false, None),
                ("p2".into(), "scan-c".into(), true, Some("2026-11-21 08:00:00+00".into())),
            ],
            "files {:?}",
            files.iter().map(|f| f.len()).collect::<Vec<_>>()
        );
    }
}
