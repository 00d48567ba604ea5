//! Claims of the docs that no other test pins: health precedence, a checkpoint that never
//! moves backwards, a lock per schema that a crash releases, migrations that race safely.

use crate::support::*;
use scansync::checkpoint::postgres::{PgCheckpoint, INCREMENTAL};
use scansync::checkpoint::CheckpointStore;
use scansync::time::Timestamp;
use std::sync::Arc;

fn export_of(n: usize) -> std::path::PathBuf {
    write_export(&[(0..n)
        .map(|i| export_line(&record(&format!("p{i}"), &format!("s{i}"), &hours_ago(1.0), "x")))
        .collect::<Vec<_>>()])
}

#[tokio::test]
async fn health_says_failed_before_stale_when_both_hold() {
    let db = TestDb::new().await;
    let dir = export_of(2);
    let sync = ["sync", "--source", "export", "--export-dir", dir.to_str().unwrap()];
    assert_exit(&scansync(&db, &sync).await, 0);
    // The next run fails: PostgreSQL refuses every content row.
    refuse_content(&db).await;
    assert_exit(&scansync(&db, &sync).await, 1);
    std::fs::remove_dir_all(&dir).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let out = scansync(&db, &["health", "--max-age", "1s", "--json"]).await;
    assert_exit(&out, 2);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "failed", "{json}");
}

#[tokio::test]
async fn the_postgres_checkpoint_never_moves_backwards() {
    let db = TestDb::new().await;
    assert_exit(&scansync(&db, &["migrate"]).await, 0);
    let store = PgCheckpoint::new(Arc::new(db.client().await), "scansync", INCREMENTAL).unwrap();
    let later = Timestamp::parse("2026-11-26T12:00:00Z").unwrap();
    store.write(later).await.unwrap();
    store.write(Timestamp::parse("2026-11-26T11:00:00Z").unwrap()).await.unwrap();
    assert_eq!(store.read().await.unwrap(), Some(later));
}

#[tokio::test]
async fn the_run_lock_is_per_schema() {
    let db = TestDb::new().await;
    let dir = export_of(2);
    let holder = db.client().await;
    holder.execute("select pg_advisory_lock(hashtextextended('scansync:a', 0))", &[]).await.unwrap();
    let args = |schema: &'static str| {
        ["--schema", schema, "sync", "--source", "export", "--export-dir", dir.to_str().unwrap()]
    };
    assert_exit(&scansync(&db, &args("a")).await, 75);
    assert_exit(&scansync(&db, &args("b")).await, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_run_killed_with_sigkill_releases_its_lock() {
    let db = TestDb::new().await;
    let dir = export_of(20_000);
    let args = [
        "sync",
        "--source",
        "export",
        "--export-dir",
        dir.to_str().unwrap(),
        "--page-size",
        "50",
        "--writers",
        "1",
    ];
    let mut child = command(&db.url, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it holds the lock and is writing.
    let c = db.client().await;
    let mut writing = false;
    for _ in 0..500 {
        let n: Option<i64> =
            c.query_one("select count(*) from scansync.content", &[]).await.ok().map(|r| r.get(0));
        if n.is_some_and(|n| n > 0) {
            writing = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(writing, "the run never started writing");
    child.kill().unwrap();
    child.wait().unwrap();
    // The kernel closes its sockets; PostgreSQL ends the session and frees the lock.
    let mut out = scansync(&db, &args).await;
    for _ in 0..20 {
        if out.status.code() != Some(75) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        out = scansync(&db, &args).await;
    }
    assert_exit(&out, 0);
    let statuses = column(&c, "select status from scansync.sync_runs order by id").await;
    assert_eq!(statuses, ["abandoned", "succeeded"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn migrations_started_at_once_all_succeed_and_apply_once() {
    let db = TestDb::new().await;
    let runs: Vec<_> = (0..4).map(|_| scansync(&db, &["migrate"])).collect();
    for out in futures_util::future::join_all(runs).await {
        assert_exit(&out, 0);
    }
    let versions =
        column(&db.client().await, "select version::text from scansync.schema_migrations order by 1").await;
    let all: Vec<String> = scansync::schema::MIGRATIONS.iter().map(|(v, _)| v.to_string()).collect();
    assert_eq!(versions, all);
}

fn with_creator(item: scansync::attr::Item, deleted: Option<bool>) -> scansync::attr::Item {
    use scansync::attr::Attr;
    let mut m = vec![("id".to_string(), Attr::S("c1".into())), ("handle".to_string(), Attr::S("h".into()))];
    if let Some(d) = deleted {
        m.push(("deleted".into(), Attr::Bool(d)));
    }
    with(item, &[("creator", Attr::M(m.into_iter().collect()))])
}

#[tokio::test]
async fn creator_deleted_at_follows_only_the_creators_own_flag_and_communities_take_the_newest() {
    use scansync::attr::Attr;
    let db = TestDb::new().await;
    let (t1, t2, t3) = (hours_ago(3.0), hours_ago(2.0), hours_ago(1.0));
    let rec = |id: &str, scan: &str, at: &str, deleted_creator: Option<bool>, community: &str| {
        let mut it = with_creator(record(id, scan, at, "x"), deleted_creator);
        it.insert(
            "community".into(),
            Attr::M(
                [("id".to_string(), Attr::S("g1".into())), ("name".to_string(), Attr::S(community.into()))]
                    .into_iter()
                    .collect(),
            ),
        );
        it
    };
    let lines = vec![
        // A content tombstone does not say the account is gone.
        export_line(&with(rec("p1", "s1", &t1, None, "old name"), &[("deleted", Attr::Bool(true))])),
        export_line(&rec("p2", "s2", &t3, None, "new name")),
        export_line(&rec("p3", "s3", &t2, None, "middle name")),
    ];
    let dir = write_export(&[lines]);
    let sync = [
        "sync",
        "--source",
        "export",
        "--export-dir",
        dir.to_str().unwrap(),
        "--page-size",
        "1",
        "--writers",
        "1",
    ];
    assert_exit(&scansync(&db, &sync).await, 0);
    let c = db.client().await;
    let r = c
        .query_one("select deleted_at is null from scansync.creators where external_id = 'c1'", &[])
        .await
        .unwrap();
    assert!(r.get::<_, bool>(0), "a content tombstone left the creator alone");
    let name: String = c
        .query_one("select name from scansync.communities where external_id = 'g1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "new name", "the community takes its newest record's name, whatever the order");
    std::fs::remove_dir_all(&dir).unwrap();

    // The creator's own flag, in a newer record, sets deleted_at to that record's time.
    let t4 = hours_ago(0.5);
    let dir = write_export(&[vec![export_line(&rec("p4", "s4", &t4, Some(true), "new name"))]]);
    let sync = ["sync", "--source", "export", "--export-dir", dir.to_str().unwrap()];
    c.batch_execute("delete from scansync.checkpoints").await.unwrap();
    assert_exit(&scansync(&db, &sync).await, 0);
    let set: bool = c
        .query_one(
            "select deleted_at = $1::text::timestamptz from scansync.creators where external_id = 'c1'",
            &[&Timestamp::parse(&t4).unwrap().to_pg()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(set, "the creator's own deleted flag sets deleted_at to the record's time");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_export_backfill_keeps_only_the_days_asked_for() {
    let db = TestDb::new().await;
    let lines: Vec<String> =
        ["2026-01-09T12:00:00Z", "2026-01-10T12:00:00Z", "2026-01-11T12:00:00Z", "2026-01-12T12:00:00Z"]
            .iter()
            .enumerate()
            .map(|(i, at)| export_line(&record(&format!("d{i}"), &format!("s{i}"), at, "x")))
            .collect();
    let dir = write_export(&[lines]);
    let out = scansync(
        &db,
        &[
            "backfill",
            "--from",
            "2026-01-10",
            "--to",
            "2026-01-11",
            "--source",
            "export",
            "--export-dir",
            dir.to_str().unwrap(),
        ],
    )
    .await;
    assert_exit(&out, 0);
    let c = db.client().await;
    assert_eq!(column(&c, "select external_id from scansync.content order by 1").await, ["d1", "d2"]);
    let r = c.query_one("select records_read, records_skipped from scansync.sync_runs", &[]).await.unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (4, 2));
    std::fs::remove_dir_all(&dir).unwrap();
}
