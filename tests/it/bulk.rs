//! The bulk path (`backfill --bulk`): the foreign keys of `content` and `content_tags`, and
//! the index of `content_tags` by tag, are off during the load; the keys are validated and
//! the index built at its end. Killed midway, the next run puts them
//! back; the tables come out as a plain load's; an hourly sync beside a bulk load leaves
//! the tables of the sequential order.

use crate::backfill_jobs::{export_args_with, export_files, records, spawn, two_day_history, wait};
use crate::support::*;
use std::time::{Duration, Instant};

/// The four foreign keys, then the index by tag: present and valid?
async fn keys(c: &tokio_postgres::Client) -> Vec<Option<bool>> {
    scansync::bulk::states(c, "scansync").await.unwrap().into_iter().map(|(_, s)| s).collect()
}

const VALIDATED: [Option<bool>; 5] = [Some(true); 5];
const ABSENT: [Option<bool>; 5] = [None; 5];

async fn wait_for_content(c: &tokio_postgres::Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the load never committed a page");
        let n: i64 =
            c.query_one("select count(*) from scansync.content", &[]).await.map(|r| r.get(0)).unwrap_or(0);
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_load_killed_midway_is_repaired_by_the_next_run_and_ends_with_the_tables_of_a_plain_load() {
    let files = export_files(&records(6000, 31), 12);
    let dir = write_export(&files);
    let d = dir.to_str().unwrap();
    let with = |bulk: &'static str| {
        let mut a = export_args_with(d, "50", "1", "1");
        a.extend(["--bulk", bulk]);
        a
    };

    let plain = TestDb::new().await;
    let out = scansync(&plain, &with("off")).await;
    assert_exit(&out, 0);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("bulk load"), "--bulk off took the bulk path");
    let pc = plain.client().await;
    assert_eq!(keys(&pc).await, VALIDATED);
    let want = dump_logical(&pc, "scansync").await;

    let db = TestDb::new().await;
    let c = db.client().await;
    let mut child = spawn(&db.url, &with("on"));
    wait_for_content(&c).await;
    assert_eq!(keys(&c).await, ABSENT, "the foreign keys are off during a bulk load");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(keys(&c).await, ABSENT, "the killed load left them off");
    // The next run of anything puts them back, validated.
    let out = scansync(&db, &["migrate"]).await;
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("restored the foreign keys"));
    assert_eq!(keys(&c).await, VALIDATED);
    // The load resumed (bulk again) finishes with them validated and a plain load's tables.
    let out = scansync(&db, &with("on")).await;
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bulk load"));
    assert_eq!(keys(&c).await, VALIDATED);
    assert_eq!(dump_logical(&c, "scansync").await, want);

    // auto: a small export into a populated store keeps the per-row checks.
    let small = write_export(&export_files(&records(200, 32), 2));
    let mut args = export_args_with(small.to_str().unwrap(), "50", "1", "1");
    args.extend(["--bulk", "auto"]);
    let out = scansync(&db, &args).await;
    assert_exit(&out, 0);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("bulk load"), "auto chose bulk for a small job");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&small).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_left_invalid_by_a_killed_build_is_built_again_by_the_next_run() {
    let db = TestDb::new().await;
    assert_exit(&scansync(&db, &["migrate"]).await, 0);
    let c = db.client().await;
    // What a `CREATE INDEX CONCURRENTLY` killed midway leaves: the index in the catalog,
    // not valid (so `create index … if not exists` alone would keep it as it is).
    c.batch_execute(
        "update pg_index set indisvalid = false where indexrelid = 'scansync.content_tags_tag_id'::regclass",
    )
    .await
    .unwrap();
    assert_eq!(keys(&c).await[scansync::bulk::FOREIGN_KEYS.len()], Some(false), "the index, after the keys");
    let out = scansync(&db, &["migrate"]).await;
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("restored the foreign keys and the index"));
    assert_eq!(keys(&c).await, VALIDATED);
    let n: i64 = c
        .query_one(
            "select count(*) from pg_indexes where schemaname = 'scansync' and indexname = 'content_tags_tag_id'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "one index, built again in the place of the invalid one");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_hourly_sync_during_a_bulk_backfill_leaves_the_keys_off_until_the_end_and_the_tables_of_the_sequential_order(
) {
    let (table, from, to) = two_day_history(25).await;
    let backfill = |bulk: &'static str| {
        vec![
            "backfill".to_string(),
            "--table".into(),
            table.name.clone(),
            "--from".into(),
            from.clone(),
            "--to".into(),
            to.clone(),
            "--page-size".into(),
            "5".into(),
            "--fetchers".into(),
            "1".into(),
            "--writers".into(),
            "1".into(),
            "--progress".into(),
            "off".into(),
            "--bulk".into(),
            bulk.into(),
        ]
    };
    let sync = ["sync", "--table", &table.name, "--first-run-window", "3d", "--page-size", "100"];

    let sequential = TestDb::new().await;
    let plain = backfill("off");
    assert_exit(&scansync(&sequential, &plain.iter().map(String::as_str).collect::<Vec<_>>()).await, 0);
    assert_exit(&scansync(&sequential, &sync).await, 0);
    let want = dump_logical(&sequential.client().await, "scansync").await;

    let db = TestDb::new().await;
    assert_exit(&scansync(&db, &["migrate"]).await, 0);
    let bulk = backfill("on");
    let mut bf = spawn(&db.url, &bulk.iter().map(String::as_str).collect::<Vec<_>>());
    let c = db.client().await;
    wait_for_content(&c).await;
    let out = scansync(&db, &sync).await;
    assert_exit(&out, 0);
    // The sync did not put the keys back under the running load.
    assert_eq!(keys(&c).await, ABSENT);
    assert!(
        bf.try_wait().unwrap().is_none(),
        "the backfill ended before the sync did: nothing was interleaved"
    );
    assert_exit(&wait(bf).await, 0);
    assert_eq!(keys(&c).await, VALIDATED, "the bulk load's end validates them");
    assert_eq!(dump_logical(&c, "scansync").await, want);
}
