//! Graceful stop through the real binary: SIGTERM or SIGINT mid-run lets the page being
//! written finish, leaves the checkpoint where it was, records the run as `cancelled`, exits
//! 143 / 130 quickly, and the next run converges.

use crate::support::*;
use loadgen::{Generator, Mix, Shape, Stamps};
use scansync::attr::Item;
use scansync::time::Timestamp;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn recent(n: i64, seed: u64) -> Vec<Item> {
    let mut g = Generator::new(
        seed,
        Mix { stamps: Stamps::Utc, update_rate: 0.3, tombstone_rate: 0.05, ..Mix::default() },
        Shape { creators: 50, communities: 10, tags: 30, zipf_s: 1.05 },
    );
    let now = Timestamp::now();
    let span = 6 * 3_600_000_000i64;
    (0..n).map(|i| g.next_record(now.add_micros(-span + i * span / n - 60_000_000)).item).collect()
}

/// Starts `args`, sends `signal` once content rows landed, and returns (exit code, seconds
/// from the signal to the exit).
async fn stop_mid_run(db: &TestDb, args: &[&str], signal: &str) -> (Option<i32>, f64) {
    let mut child = command(&db.url, args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let c = loop {
        if let Ok((c, conn)) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no page committed");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be stopped");
        // (A staged first load's pages land in bulk_content until its fold.)
        let committed =
            "select (select count(*) from scansync.content) + (select count(*) from scansync.bulk_content)";
        if let Ok(r) = c.query_one(committed, &[]).await {
            if r.get::<_, i64>(0) > 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = Instant::now();
    Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    (status.code(), sent.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_sync_keeps_the_checkpoint_records_cancelled_exits_143_and_a_rerun_converges() {
    let table = Table::new().await;
    table.put(&recent(3000, 31)).await;
    let sync = ["sync", "--table", &table.name, "--page-size", "5", "--writers", "1", "--fetchers", "1"];
    let reference = TestDb::new().await;
    assert_exit(&scansync(&reference, &sync).await, 0);
    let want = dump_logical(&reference.client().await, "scansync").await;

    let db = TestDb::new().await;
    let (code, secs) = stop_mid_run(&db, &sync, "-TERM").await;
    assert_eq!(code, Some(143));
    assert!(secs < 30.0, "stopped {secs:.1} s after SIGTERM (bound: --shutdown-timeout 30s)");
    let c = db.client().await;
    let checkpoints: i64 =
        c.query_one("select count(*) from scansync.checkpoints", &[]).await.unwrap().get(0);
    assert_eq!(checkpoints, 0, "a stopped run moves no checkpoint");
    let runs = column(&c, "select status || ': ' || coalesce(error, '') from scansync.sync_runs").await;
    assert_eq!(runs.len(), 1);
    assert!(runs[0].starts_with("cancelled: stopped by a signal"), "{runs:?}");
    // Health reports it plainly, not as a failure.
    let health = scansync(&db, &["health"]).await;
    let h = String::from_utf8_lossy(&health.stdout);
    assert_ne!(health.status.code(), Some(2), "{h}");
    assert!(h.contains("last run: cancelled"), "{h}");

    assert_exit(&scansync(&db, &sync).await, 0);
    assert_eq!(dump_logical(&c, "scansync").await, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_mid_backfill_exits_130_and_the_resumed_job_finishes_its_units() {
    let items = recent(2000, 32);
    let files: Vec<Vec<String>> = items.chunks(250).map(|c| c.iter().map(export_line).collect()).collect();
    let dir = write_export(&files);
    let args = [
        "backfill",
        "--source",
        "export",
        "--export-dir",
        dir.to_str().unwrap(),
        "--page-size",
        "5",
        "--writers",
        "1",
        "--fetchers",
        "1",
    ];
    let db = TestDb::new().await;
    let (code, secs) = stop_mid_run(&db, &args, "-INT").await;
    assert_eq!(code, Some(130));
    assert!(secs < 30.0, "stopped {secs:.1} s after SIGINT");
    let c = db.client().await;
    let runs = column(&c, "select status from scansync.sync_runs").await;
    assert_eq!(runs, ["cancelled"]);
    let done: i64 = c
        .query_one("select count(*) from scansync.backfill_units where state = 'done'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(done < 8, "the stop came before the end");
    assert_exit(&scansync(&db, &args).await, 0);
    let (done, completions): (i64, i64) = {
        let r = c
            .query_one("select count(*) filter (where state = 'done'), sum(completions)::int8 from scansync.backfill_units", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((done, completions), (8, 8));
    std::fs::remove_dir_all(&dir).unwrap();
}
