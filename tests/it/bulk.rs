//! The bulk path (`backfill --bulk`): the foreign keys of `content` and `content_tags`, and
//! the index of `content_tags` by tag, are off during the load; the keys are validated and
//! the index built at its end. Killed midway, the next run puts them
//! back; the tables come out as a plain load's; an hourly sync beside a bulk load leaves
//! the tables of the sequential order. A bulk load into an empty store is staged (its rows
//! folded into the tables at its end): the same tables as the merged load, killed at any
//! step (staging, before the fold, between its edges and its content) or losing its staged rows to a PostgreSQL crash.

use crate::backfill_jobs::{export_args_with, export_files, records, spawn, two_day_history, wait};
use crate::support::*;
use std::time::{Duration, Instant};

/// The four foreign keys, then the index by tag: present and valid?
async fn keys(c: &tokio_postgres::Client) -> Vec<Option<bool>> {
    scansync::bulk::states(c, "scansync").await.unwrap().into_iter().map(|(_, s)| s).collect()
}

const VALIDATED: [Option<bool>; 5] = [Some(true); 5];
const ABSENT: [Option<bool>; 5] = [None; 5];

/// Waits until the load committed a page: into `content`, or into the staging tables of a
/// staged first load.
async fn wait_for_content(c: &tokio_postgres::Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the load never committed a page");
        let sql =
            "select (select count(*) from scansync.content) + (select count(*) from scansync.bulk_content)";
        let n: i64 = c.query_one(sql, &[]).await.map(|r| r.get(0)).unwrap_or(0);
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
            // Small pages keep the load running while the sync beside it runs, even on a busy machine.
            "2".into(),
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

/// The job's staged and folded flags.
async fn staged(c: &tokio_postgres::Client) -> (bool, bool) {
    let r = c
        .query_one(
            "select staged, folded_at is not null from scansync.backfill_jobs order by id desc limit 1",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staged_first_load_ends_with_the_tables_of_a_merged_load_and_verifies_clean() {
    // Many versions per post, tombstones, rejects, mixed stamps; pages of 50 in 12 files, two
    // workers' worth of writers: keys meet across pages, files and writers.
    let dir = write_export(&export_files(&records(6000, 33), 12));
    let d = dir.to_str().unwrap();
    let plain = TestDb::new().await;
    let mut off = export_args_with(d, "50", "2", "2");
    off.extend(["--bulk", "off"]);
    assert_exit(&scansync(&plain, &off).await, 0);
    let pc = plain.client().await;
    let want = dump_logical(&pc, "scansync").await;
    let want_q = column(&pc, "select reason || md5(raw) from scansync.quarantine order by 1").await;
    assert_eq!(staged(&pc).await, (false, false), "--bulk off never stages");

    let db = TestDb::new().await;
    let out = scansync(&db, &export_args_with(d, "50", "2", "2")).await;
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("content rows staged"), "{text}");
    let seconds = |prefix: &str| -> f64 {
        let line = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix}: {text}"));
        line.split_once(" s").and_then(|(n, _)| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
    };
    let (wall, after) = (seconds("backfill succeeded in "), seconds("after the last page: "));
    assert!(after > 0.0 && wall >= after, "the run's time covers its fold: {text}");
    let c = db.client().await;
    assert_eq!(staged(&c).await, (true, true), "auto stages a first load into an empty store, and folds it");
    assert_same_rows(&dump_logical(&c, "scansync").await, &want, "staged against merged");
    assert_eq!(column(&c, "select reason || md5(raw) from scansync.quarantine order by 1").await, want_q);
    assert_eq!(keys(&c).await, VALIDATED);
    let left: i64 = c.query_one("select count(*) from scansync.bulk_content", &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "the fold empties the staging tables");
    let verify = scansync(&db, &["verify", "--source", "export", "--export-dir", d]).await;
    assert_exit(&verify, 0);
    // The same export again: the store is not empty now, so the merged path, which changes nothing.
    let again = scansync(&db, &[&export_args_with(d, "50", "2", "2")[..], &["--restart"]].concat()).await;
    assert_exit(&again, 0);
    assert_eq!(staged(&c).await, (false, false));
    assert_same_rows(&dump_logical(&c, "scansync").await, &want, "a replay of the staged load");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tables of the `scansync` schema the planner holds statistics for, of the five a load
/// fills.
async fn analyzed(c: &tokio_postgres::Client) -> Vec<String> {
    column(
        c,
        "select distinct tablename::text from pg_stats where schemaname = 'scansync'
           and tablename in ('content', 'content_tags', 'creators', 'communities', 'tags') order by 1",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_load_leaves_the_planner_statistics_of_the_tables_it_filled() {
    // Without them the next run's page statements are planned on defaults (a probe of the
    // unique key estimated at rows/40000 rows), whose cost grows with the store until
    // every page pays for a JIT compilation.
    let dir = write_export(&export_files(&records(3000, 35), 6));
    let d = dir.to_str().unwrap();
    let db = TestDb::new().await;
    let c = db.client().await;
    assert_exit(&scansync(&db, &export_args_with(d, "50", "2", "2")).await, 0);
    assert_eq!(staged(&c).await, (true, true), "a staged first load");
    assert_eq!(analyzed(&c).await, ["communities", "content", "content_tags", "creators", "tags"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staged_load_killed_while_staging_or_before_its_fold_ends_with_the_tables_of_a_clean_load() {
    let dir = write_export(&export_files(&records(6000, 34), 12));
    let d = dir.to_str().unwrap();
    let args = export_args_with(d, "50", "1", "1");
    let clean = TestDb::new().await;
    assert_exit(&scansync(&clean, &args).await, 0);
    let want = dump_logical(&clean.client().await, "scansync").await;

    let db = TestDb::new().await;
    let c = db.client().await;
    let mut child = spawn(&db.url, &args);
    wait_for_content(&c).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(staged(&c).await, (true, false));
    // Resumed, then stopped just before its fold: every unit done, nothing in the tables.
    let out = scansync_env(&db, &args, &[("SCANSYNC_TEST_BREAK", "exit-before-fold".into())]).await;
    assert_eq!(out.status.code(), Some(99), "{out:?}");
    let content: i64 = c.query_one("select count(*) from scansync.content", &[]).await.unwrap().get(0);
    assert_eq!(content, 0, "nothing folded yet");
    let status = scansync(&db, &["backfill", "status"]).await;
    assert!(String::from_utf8_lossy(&status.stdout).contains("interrupted"), "{status:?}");
    // The same command again: nothing to claim, the fold left to do.
    let out = scansync(&db, &args).await;
    assert_exit(&out, 0);
    assert_eq!(staged(&c).await, (true, true));
    assert_same_rows(&dump_logical(&c, "scansync").await, &want, "killed, resumed, folded");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Edges whose content row does not exist.
async fn orphan_edges(c: &tokio_postgres::Client) -> i64 {
    let sql = "select count(*) from scansync.content_tags ct
               where not exists (select 1 from scansync.content e where e.id = ct.content_id)";
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fold_killed_between_its_edges_and_its_content_leaves_edges_the_next_fold_removes() {
    let dir = write_export(&export_files(&records(4000, 36), 8));
    let d = dir.to_str().unwrap();
    let args = export_args_with(d, "50", "1", "1");
    let clean = TestDb::new().await;
    assert_exit(&scansync(&clean, &args).await, 0);
    let cc = clean.client().await;
    let want = dump_logical(&cc, "scansync").await;
    // A key of the load whose newest record is live: written meanwhile, below.
    let key = cc
        .query_one(
            "select platform, external_id from scansync.content where deleted_at is null order by 1, 2 limit 1",
            &[],
        )
        .await
        .unwrap();
    let (platform, external_id): (String, String) = (key.get(0), key.get(1));

    // Into the store left empty, and into one someone wrote an older version to meanwhile
    // (the fold then merges): either way no edge is left without its content.
    for written_meanwhile in [false, true] {
        let db = TestDb::new().await;
        let c = db.client().await;
        let out = scansync_env(&db, &args, &[("SCANSYNC_TEST_BREAK", "exit-after-fold-edges".into())]).await;
        assert_eq!(out.status.code(), Some(99), "{out:?}");
        let content: i64 = c.query_one("select count(*) from scansync.content", &[]).await.unwrap().get(0);
        assert_eq!(content, 0, "the content was not committed");
        assert!(orphan_edges(&c).await > 0, "the edges were committed first");
        assert_eq!(staged(&c).await, (true, false));
        if written_meanwhile {
            c.execute(
                "insert into scansync.content (platform, external_id, source_updated_at, source_scan_id)
                 values ($1, $2, '2001-01-01', 'older')",
                &[&platform, &external_id],
            )
            .await
            .unwrap();
        }
        let out = scansync(&db, &args).await;
        assert_exit(&out, 0);
        assert_eq!(staged(&c).await, (true, true));
        assert_eq!(orphan_edges(&c).await, 0, "written meanwhile: {written_meanwhile}");
        assert_eq!(keys(&c).await, VALIDATED, "the edges' foreign key holds");
        assert_same_rows(&dump_logical(&c, "scansync").await, &want, "killed in the fold, folded again");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn staged_rows_lost_to_a_postgresql_crash_are_loaded_again() {
    let dir = write_export(&export_files(&records(4000, 35), 8));
    let d = dir.to_str().unwrap();
    let args = export_args_with(d, "50", "1", "1");
    let clean = TestDb::new().await;
    assert_exit(&scansync(&clean, &args).await, 0);
    let want = dump_logical(&clean.client().await, "scansync").await;

    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    // Stopped before the fold: every unit done, its rows only in the unlogged tables.
    let out = scansync_url(&url, &args, &[("SCANSYNC_TEST_BREAK", "exit-before-fold".into())]).await;
    assert_eq!(out.status.code(), Some(99), "{out:?}");
    // A crash: PostgreSQL empties unlogged tables when it recovers.
    cluster.crash();
    let c = connect(&url).await;
    let staged_rows: i64 =
        c.query_one("select count(*) from scansync.bulk_content", &[]).await.unwrap().get(0);
    assert_eq!(staged_rows, 0, "the crash emptied the staging tables");
    let out = scansync_url(&url, &args, &[]).await;
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("loading its done units again"), "{out:?}");
    assert_same_rows(&dump_logical(&c, "scansync").await, &want, "after the crash, loaded again");
    std::fs::remove_dir_all(&dir).unwrap();
}
