//! `scansync follow` through the real binary, against AWS's DynamoDB Local (which implements
//! Streams as the service does) and PostgreSQL.

use crate::backfill_jobs::records;
use crate::removals::removal_line;
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use scansync::attr::{write_item_dynamodb_json, Attr, Item};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const QUICK: &[&str] = &["--poll", "20ms", "--max-poll", "200ms", "--discover-every", "1s"];

pub(crate) fn follower(table: &Table, db: &TestDb, extra: &[&str]) -> Running {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("scansync-follow-{}.log", unique())))
        .unwrap();
    table
        .command(&db.url, &[&["follow", "--table", &table.name][..], QUICK, extra].concat())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(|c| Running(Some(c)))
        .unwrap()
}

pub(crate) fn kill9(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// An incremental export's line for a write of `item` (its new image).
pub(crate) fn put_line(item: &Item, micros: i64) -> String {
    let scan = match &item["scanId"] {
        Attr::S(s) => s.clone(),
        _ => unreachable!(),
    };
    let mut s = format!(
        "{{\"Metadata\":{{\"WriteTimestampMicros\":{{\"N\":\"{micros}\"}}}},\"Keys\":{{\"scanId\":{{\"S\":{scan:?}}}}},\"NewImage\":"
    );
    write_item_dynamodb_json(item, &mut s);
    s.push('}');
    s
}

/// Waits until the `n`th follower (`child`) has opened its ledger row. One that started
/// while the killed one's backend still held the follower's lock exits 75 without a row
/// (one follower per table), as it should: it is started again.
async fn runs_opened(table: &Table, db: &TestDb, n: i64, child: &mut Running) {
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(75), "follower {n} exited before opening its ledger row");
            *child = follower(table, db, &[]);
        }
        let opened = c
            .query_one("select count(*) from scansync.sync_runs where kind = 'follow'", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        if opened >= n {
            return;
        }
        assert!(Instant::now() < deadline, "follower {n} did not open its ledger row: {opened} rows");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the follower's tables equal `want` (the canonical tables by natural keys).
pub(crate) async fn caught_up(db: &TestDb, want: &[String], limit: Duration) -> Vec<String> {
    let c = db.client().await;
    let deadline = Instant::now() + limit;
    loop {
        let has: bool =
            c.query_one("select to_regclass('scansync.content') is not null", &[]).await.unwrap().get(0);
        let got = if has { dump_logical(&c, "scansync").await } else { Vec::new() };
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streams_puts_updates_soft_deletes_and_removals_land_as_the_same_changes_through_an_incremental_export_with_the_follower_killed_on_the_way(
) {
    let table = Table::streamed(Some(StreamViewType::NewAndOldImages)).await;
    let (followed, exported) = (TestDb::new().await, TestDb::new().await);
    let mut rng = fastrand::Rng::with_seed(31);
    let mut lines = Vec::new();
    let mut current: Vec<Item> = Vec::new();
    let now = scansync::time::Timestamp::now().0;
    let mut child = follower(&table, &followed, &[]);
    // Puts of new scan events, then updates of some (MODIFY), soft deletes (deleted: true)
    // and removals (DeleteItem), in batches; the follower is killed -9 at random moments.
    let fresh = records(240, 5);
    for (round, batch) in fresh.chunks(40).enumerate() {
        table.put(batch).await;
        lines.extend(batch.iter().map(|i| put_line(i, now)));
        current.extend(batch.iter().cloned());
        let mut changed = Vec::new();
        for k in 0..8 {
            let i = rng.usize(..current.len());
            let at = format!("2026-01-{:02}T10:00:{:02}.{:06}Z", 20 + round, k, i);
            let item = with(
                current[i].clone(),
                &[("updatedAt", Attr::S(at)), ("caption", Attr::S(format!("edited {round}")))],
            );
            let item = if k % 4 == 3 { with(item, &[("deleted", Attr::Bool(true))]) } else { item };
            current[i] = item.clone();
            changed.push(item);
        }
        // One item, one change per batch: a BatchWriteItem holding one key twice is refused.
        changed.sort_by_key(|i| format!("{:?}", i["scanId"]));
        changed.dedup_by_key(|i| format!("{:?}", i["scanId"]));
        table.put(&changed).await;
        lines.extend(changed.iter().map(|i| put_line(i, now)));
        for _ in 0..3 {
            let i = rng.usize(..current.len());
            let gone = current.remove(i);
            if let Attr::S(scan) = &gone["scanId"] {
                table.delete(scan).await;
            }
            lines.push(removal_line(&gone, now));
        }
        // Killed at a random moment of its work: once it has opened its ledger row (a follower
        // killed before that leaves no row, and the count below would depend on the machine).
        runs_opened(&table, &followed, round as i64 + 1, &mut child).await;
        tokio::time::sleep(Duration::from_millis(rng.u64(50..600))).await;
        kill9(&mut child);
        child = follower(&table, &followed, &[]);
    }

    // The same changes, as an incremental export, through the export path.
    let dir = write_export(&[lines]);
    let args = ["backfill", "--source", "export", "--export-dir", dir.to_str().unwrap()];
    assert_exit(&scansync(&exported, &args).await, 0);
    std::fs::remove_dir_all(&dir).unwrap();
    let want = dump_logical(&exported.client().await, "scansync").await;
    assert!(want.len() > 200, "the changes hold rows: {}", want.len());

    let got = caught_up(&followed, &want, Duration::from_secs(60)).await;
    assert_same_rows(&got, &want, "the follower's tables against the export's");
    // SIGTERM: the page in flight finishes, the run is recorded cancelled, exit 143.
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let mut child = child.take();
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap().code()).await.unwrap();
    assert_eq!(code, Some(143));
    let c = followed.client().await;
    let statuses =
        column(&c, "select status from scansync.sync_runs where kind = 'follow' order by id").await;
    let mut want_statuses = vec!["abandoned"; fresh.chunks(40).count()];
    want_statuses.push("cancelled");
    assert_eq!(statuses, want_statuses, "each killed follower shows as abandoned, the last as cancelled");
    let positions: i64 = c
        .query_one("select count(*) from scansync.stream_shards where position is not null", &[])
        .await
        .unwrap()
        .get(0);
    assert!(positions >= 1, "the shard's position is in PostgreSQL");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_without_a_stream_or_with_keys_only_is_refused_with_how_to_enable_one() {
    for view in [None, Some(StreamViewType::KeysOnly)] {
        let table = Table::streamed(view.clone()).await;
        let db = TestDb::new().await;
        let out = table.command(&db.url, &["follow", "--table", &table.name]).output().unwrap();
        assert_exit(&out, 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("StreamViewType=NEW_AND_OLD_IMAGES"), "{view:?}: {err}");
        let c = db.client().await;
        let schema: bool = c
            .query_one("select exists (select 1 from pg_namespace where nspname = 'scansync')", &[])
            .await
            .unwrap()
            .get(0);
        assert!(!schema, "nothing was done");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_follower_of_the_same_table_exits_75() {
    let table = Table::streamed(Some(StreamViewType::NewAndOldImages)).await;
    let db = TestDb::new().await;
    table.put(&[record("p1", "s1", &hours_ago(1.0), "x")]).await;
    let mut first = follower(&table, &db, &[]);
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = c
            .query_one("select count(*) from scansync.content", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the first follower did not apply the record");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = table.command(&db.url, &["follow", "--table", &table.name]).output().unwrap();
    assert_exit(&out, 75);
    assert!(String::from_utf8_lossy(&out.stderr).contains("another follower"));
    kill9(&mut first);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_removal_of_an_older_scan_event_leaves_the_post_alive() {
    let table = Table::streamed(Some(StreamViewType::NewAndOldImages)).await;
    let db = TestDb::new().await;
    table
        .put(&[
            record("p1", "scan-a", "2026-11-01T10:00:00Z", "first"),
            record("p1", "scan-b", "2026-11-02T10:00:00Z", "second"),
        ])
        .await;
    table.put(&[record("p2", "scan-c", "2026-11-01T10:00:00Z", "only")]).await;
    table.delete("scan-a").await;
    table.delete("scan-c").await;
    let mut child = follower(&table, &db, &[]);
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let sql = "select external_id || ' ' || source_scan_id || ' ' || (deleted_at is not null)::text || ' ' || (removed_at is not null)::text
               from scansync.content order by 1";
    let want = ["p1 scan-b false false", "p2 scan-c true true"];
    loop {
        let got = match c.query(sql, &[]).await {
            Ok(rows) => rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(),
            Err(_) => Vec::new(),
        };
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "got {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let removals: i64 = {
        kill9(&mut child);
        c.query_one("select count(*) from scansync.content where removed_at is not null", &[])
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(removals, 1);
}

/// Waits until the store holds `n` content rows.
async fn content_rows(db: &TestDb, n: i64) {
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = c
            .query_one("select count(*) from scansync.content", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        if got == n {
            return;
        }
        assert!(Instant::now() < deadline, "the store holds {got} content rows, not {n}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_beside_a_live_follower_counts_the_content_rows_it_still_changed_as_missed_by_the_follower() {
    let table = Table::streamed(Some(StreamViewType::NewAndOldImages)).await;
    let db = TestDb::new().await;
    let sync = |db: &TestDb| {
        let out = table
            .command(&db.url, &["sync", "--table", &table.name, "--first-run-window", "1d"])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let missed = |db: &TestDb| {
        let url = db.url.clone();
        async move {
            let c = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(c.1);
            let sql = "select missed_by_follower from scansync.sync_runs where kind = 'sync' order by id desc limit 1";
            c.0.query_one(sql, &[]).await.unwrap().get::<_, Option<i64>>(0)
        }
    };
    // No follower ever: nothing is counted.
    table.put(&[record("p1", "s1", &hours_ago(1.0), "a"), record("p2", "s2", &hours_ago(1.0), "b")]).await;
    let lone = TestDb::new().await;
    assert!(!sync(&lone).contains("missed by the follower"));
    assert_eq!(missed(&lone).await, None);

    // A follower that applied everything: the sync changes nothing it missed.
    let mut child = follower(&table, &db, &[]);
    content_rows(&db, 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // its heartbeat (every 2 s)
    let out = sync(&db);
    assert!(out.contains("rows missed by the follower: 0"), "{out}");
    assert_eq!(missed(&db).await, Some(0));

    // Writes the follower never applied (it died a moment ago; its heartbeat is still fresh).
    kill9(&mut child);
    table.put(&[record("p3", "s3", &hours_ago(0.0), "c"), record("p4", "s4", &hours_ago(0.0), "d")]).await;
    let out = sync(&db);
    assert!(out.contains("rows missed by the follower: 2"), "{out}");
    assert_eq!(missed(&db).await, Some(2));
}
