//! `scansync verify` through the real binary: what the index path misses is found and
//! repaired, hand edits and deletions are found, a clean store verifies as 0 on every
//! source, a store newer than the range is ahead, and verify alone never writes.

use crate::backfill_jobs::{export_files, records, two_day_history};
use crate::support::*;
use scansync::attr::Attr;
use scansync::time::Timestamp;
use serde_json::Value;

/// Runs `verify` with `args` and `--json`; returns its exit status and its report.
async fn verify(db: &TestDb, args: &[&str], extra: &[(&str, String)]) -> (i32, Value) {
    let out = scansync_env(db, &[&["verify", "--json"][..], args].concat(), extra).await;
    let code = out.status.code().unwrap_or(-1);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}); exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report)
}

/// Yesterday and today (UTC): the days that hold records stamped in the last hours.
fn recent_days() -> (String, String) {
    let today = Timestamp::now().day();
    (today.plus(-1).to_string(), today.to_string())
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn late_visible_writes_that_the_next_sync_misses_are_found_missing_and_repaired() {
    let table = Table::new().await;
    let db = TestDb::new().await;
    let first: Vec<_> =
        (0..100).map(|i| record(&format!("p{i:03}"), &format!("s{i}"), &hours_ago(0.5), "on time")).collect();
    table.put(&first).await;
    let sync = ["sync", "--table", &table.name, "--offset-margin", "0s", "--first-run-window", "1d"];
    assert_exit(&scansync(&db, &sync).await, 0);
    // Stamped 45 minutes ago, written now: before the checkpoint minus the 15m lookback.
    let late: Vec<_> =
        (100..140).map(|i| record(&format!("p{i:03}"), &format!("s{i}"), &hours_ago(0.75), "late")).collect();
    table.put(&late).await;
    assert_exit(&scansync(&db, &sync).await, 0);
    assert_eq!(count(&db, "select count(*) from scansync.content").await, 100, "the sync missed them");

    let (from, to) = recent_days();
    let args = ["--table", &table.name, "--from", &from, "--to", &to];
    let (code, r) = verify(&db, &args, &[]).await;
    assert_eq!(code, 1, "{r}");
    assert_eq!(
        (r["content"]["missing"].as_u64(), r["content"]["same"].as_u64()),
        (Some(40), Some(100)),
        "{r}"
    );
    let first_missing: Vec<&str> =
        r["first"]["content"]["missing"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(first_missing, (100..110).map(|i| format!("tiktok/p{i:03}")).collect::<Vec<_>>());

    let (code, r) = verify(&db, &[&args[..], &["--repair"]].concat(), &[]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["repair"]["records"].as_u64(), Some(40), "{r}");
    assert_eq!(r["repair"]["after"]["divergent"].as_u64(), Some(0), "{r}");
    assert_eq!(count(&db, "select count(*) from scansync.content where caption = 'late'").await, 40);
    let (code, r) = verify(&db, &args, &[]).await;
    assert_eq!((code, r["content"]["same"].as_u64()), (0, Some(140)), "{r}");
    let ledger = db
        .client()
        .await
        .query_one(
            "select status, verify_missing, verify_unrepaired, rows_content, first_partition::text
             from scansync.sync_runs where kind = 'verify'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(ledger.get::<_, String>(0), "succeeded");
    assert_eq!((ledger.get::<_, i64>(1), ledger.get::<_, i64>(2), ledger.get::<_, i64>(3)), (40, 0, 40));
    assert_eq!(ledger.get::<_, String>(4), from);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_stamped_west_of_the_offset_margin_is_found_missing_and_repaired() {
    let table = Table::new().await;
    let db = TestDb::new().await;
    table.put(&[record("east", "s1", &hours_ago(0.5), "utc")]).await;
    let sync = ["sync", "--table", &table.name, "--offset-margin", "0s", "--first-run-window", "1d"];
    assert_exit(&scansync(&db, &sync).await, 0);
    // Written now by a writer at UTC-05:00: its stamp sorts below the window's UTC bound.
    let now = Timestamp::now().add_micros(-5 * 3_600_000_000).to_iso();
    let west = format!("{}-05:00", now.trim_end_matches('Z'));
    table.put(&[record("west", "s2", &west, "new york")]).await;
    assert_exit(&scansync(&db, &sync).await, 0);
    assert_eq!(count(&db, "select count(*) from scansync.content").await, 1, "the index path missed it");

    let (from, to) = recent_days();
    let args = ["--table", &table.name, "--from", &from, "--to", &to];
    let (code, r) = verify(&db, &args, &[]).await;
    assert_eq!((code, r["content"]["missing"].as_u64()), (1, Some(1)), "{r}");
    assert_eq!(r["first"]["content"]["missing"][0], "tiktok/west");
    let (code, _) = verify(&db, &[&args[..], &["--repair"]].concat(), &[]).await;
    assert_eq!(code, 0);
    assert_eq!(count(&db, "select count(*) from scansync.content where caption = 'new york'").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_edited_or_deleted_by_hand_are_diverged_or_missing_verify_alone_writes_nothing_and_repair_restores_them(
) {
    let (table, from, to) = two_day_history(41).await;
    let backfill = ["backfill", "--table", &table.name, "--from", &from, "--to", &to, "--progress", "off"];
    let clean = TestDb::new().await;
    assert_exit(&scansync(&clean, &backfill).await, 0);
    let want = dump_logical(&clean.client().await, "scansync").await;
    let db = TestDb::new().await;
    assert_exit(&scansync(&db, &backfill).await, 0);
    let c = db.client().await;
    let live = column(
        &c,
        "select platform || '/' || external_id from scansync.content
         where deleted_at is null and creator_id is not null order by 1 limit 2",
    )
    .await;
    let (edited, deleted) = (&live[0], &live[1]);
    let by_key = "platform || '/' || external_id = $1";
    c.execute(&format!("update scansync.content set caption = 'edited by hand' where {by_key}"), &[edited])
        .await
        .unwrap();
    c.execute(&format!("delete from scansync.content where {by_key}"), &[deleted]).await.unwrap();
    let creator = column(&c, "select external_id from scansync.creators order by 1 limit 1").await;
    c.execute("update scansync.creators set handle = 'renamed' where external_id = $1", &[&creator[0]])
        .await
        .unwrap();
    let before = [
        dump_exact(&c, "scansync").await,
        column(&c, "select row(r.*)::text from scansync.sync_runs r").await,
    ];

    let args = ["--table", &table.name, "--from", &from, "--to", &to];
    let (code, r) = verify(&db, &args, &[]).await;
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["first"]["content"]["diverged"], serde_json::json!([edited]), "{r}");
    assert_eq!(r["first"]["content"]["missing"], serde_json::json!([deleted]), "{r}");
    assert_eq!(r["creators"]["diverged"].as_u64(), Some(1), "{r}");
    assert_eq!(r["divergent"].as_u64(), Some(3), "{r}");
    let after = [
        dump_exact(&c, "scansync").await,
        column(&c, "select row(r.*)::text from scansync.sync_runs r").await,
    ];
    assert_eq!(before, after, "verify without --repair changed the database");

    let (code, r) = verify(&db, &[&args[..], &["--repair"]].concat(), &[]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["repair"]["diverged_rewritten"].as_u64(), Some(2), "the edited row and the creator: {r}");
    assert_same_rows(&dump_logical(&c, "scansync").await, &want, "the repaired store against a clean load");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_store_verifies_as_zero_divergent_from_dynamodb_a_local_export_and_an_s3_export() {
    // DynamoDB, through the index.
    let (table, from, to) = two_day_history(43).await;
    let db = TestDb::new().await;
    let backfill = ["backfill", "--table", &table.name, "--from", &from, "--to", &to, "--progress", "off"];
    assert_exit(&scansync(&db, &backfill).await, 0);
    let (code, r) = verify(&db, &["--table", &table.name, "--from", &from, "--to", &to], &[]).await;
    assert_eq!((code, r["divergent"].as_u64()), (0, Some(0)), "{r}");
    assert!(r["content"]["same"].as_u64().unwrap() > 500, "{r}");
    assert!(r["creators"]["same"].as_u64().unwrap() > 10, "{r}");
    assert!(r["read_cost"]["index_items"].as_u64().unwrap() >= 1500, "{r}");

    // An export of dirty records (rejects, mixed stamps, tombstones), on disk and in S3.
    let files = export_files(&records(600, 47), 3);
    let dir = write_export(&files);
    let local = TestDb::new().await;
    let export = ["--source", "export", "--export-dir", dir.to_str().unwrap()];
    assert_exit(&scansync(&local, &[&["backfill", "--progress", "off"][..], &export].concat()).await, 0);
    let (code, r) = verify(&local, &export, &[]).await;
    assert_eq!((code, r["divergent"].as_u64()), (0, Some(0)), "{r}");
    assert!(r["rejected"].as_u64().unwrap() > 0, "the dirty export has records no one can parse: {r}");

    let s3_url = std::env::var("SCANSYNC_TEST_S3_URL").expect("run with scripts/test");
    let bucket = format!("verify-{}", unique().replace('_', "-"));
    let s3 = s3_client(&s3_url);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for entry in walk(&dir) {
        let key = format!("exports/{}", entry.strip_prefix(&dir).unwrap().to_str().unwrap());
        let mut body = std::fs::read(&entry).unwrap();
        if key.ends_with("manifest-files.json") {
            // In S3 a manifest names its data files by their whole key.
            let text = String::from_utf8(body).unwrap();
            body =
                text.replace("\"dataFileS3Key\":\"data/", "\"dataFileS3Key\":\"exports/data/").into_bytes();
        }
        s3.put_object().bucket(&bucket).key(key).body(body.into()).send().await.unwrap();
    }
    let url = format!("s3://{bucket}/exports/");
    let (code, r) =
        verify(&local, &["--source", "export", "--export-dir", &url], &[("AWS_ENDPOINT_URL_S3", s3_url)])
            .await;
    assert_eq!((code, r["divergent"].as_u64()), (0, Some(0)), "{r}");
    assert_eq!(
        r["content"]["keys"],
        serde_json::json!(count(&local, "select count(*) from scansync.content").await)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tombstone_in_the_store_newer_than_the_range_is_ahead_not_stale_and_repair_leaves_it() {
    let table = Table::new().await;
    let db = TestDb::new().await;
    let dead = with(record("p1", "scan-b", "2026-11-02T10:00:00Z", ""), &[("deleted", Attr::Bool(true))]);
    table
        .put(&[
            record("p1", "scan-a", "2026-11-01T10:00:00Z", "alive on the first"),
            dead,
            record("p2", "scan-c", "2026-11-01T11:00:00Z", "only"),
        ])
        .await;
    let backfill = [
        "backfill",
        "--table",
        &table.name,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-02",
        "--progress",
        "off",
    ];
    assert_exit(&scansync(&db, &backfill).await, 0);
    let c = db.client().await;
    c.execute("delete from scansync.content where external_id = 'p2'", &[]).await.unwrap();

    let args = ["--table", &table.name, "--from", "2026-11-01", "--to", "2026-11-01"];
    let (code, r) = verify(&db, &args, &[]).await;
    assert_eq!(code, 1, "p2 is missing: {r}");
    assert_eq!((r["content"]["ahead"].as_u64(), r["content"]["stale"].as_u64()), (Some(1), Some(0)), "{r}");
    let (code, r) = verify(&db, &[&args[..], &["--repair"]].concat(), &[]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["repair"]["records"].as_u64(), Some(1), "only p2 is written: {r}");
    let p1 = column(&c, "select deleted_scan_id from scansync.content where external_id = 'p1'").await;
    assert_eq!(p1, ["scan-b"], "the newer tombstone stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_refuses_bad_flags_and_a_store_that_is_not_there_with_exit_2_and_creates_nothing() {
    let db = TestDb::new().await;
    for args in [
        &["verify", "--table", "scans"][..],
        &["verify", "--table", "scans", "--from", "2026-11-02", "--to", "2026-11-01"],
        &["verify", "--source", "export"],
        &["verify", "--table", "scans", "--days", "0"],
    ] {
        assert_exit(&scansync(&db, args).await, 2);
    }
    let out = scansync(&db, &["verify", "--table", "scans", "--days", "1"]).await;
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no scansync store"));
    let schemas = count(&db, "select count(*) from pg_namespace where nspname = 'scansync'").await;
    assert_eq!(schemas, 0, "verify created nothing");
}

fn s3_client(url: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
