//! Page transactions commit without waiting for the WAL flush (`synchronous_commit = off`);
//! the run flushes once before the checkpoint. Proven against a PostgreSQL crash on a
//! throwaway cluster: its WAL writer is frozen before the run (so nothing but the run's own
//! flush writes the last WAL out of PostgreSQL's buffers), the run dies right after the
//! checkpoint moved, and the WAL writer is then killed, which makes PostgreSQL drop its
//! shared memory and recover from the WAL on disk, as after a crash. Every page the
//! checkpoint passed must still be there.

use crate::support::*;
use std::time::{Duration, Instant};

fn signal(sig: &str, pid: i32) {
    let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_crash_right_after_the_checkpoint_moved_loses_no_page_it_passed() {
    let cluster = Cluster::start_with(|data| {
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        // Only the WAL writer and the run itself would write out unflushed commits: keep
        // the background writer from flushing WAL ahead of the data pages it writes.
        text.push_str("\nbgwriter_lru_maxpages = 0\nwal_writer_delay = 10s\n");
        std::fs::write(conf, text).unwrap();
    });
    let url = cluster.url("postgres");
    let admin = connect_retrying(&url).await;
    let walwriter: i32 = admin
        .query_one("select pid from pg_stat_activity where backend_type = 'walwriter'", &[])
        .await
        .unwrap()
        .get(0);
    drop(admin);
    let table = recent_table(300).await;
    let checkpoint = format!("/scansync/{}/checkpoint", table.name);
    // The checkpoint outside PostgreSQL (in SSM), so that no later write in the database
    // flushes the WAL for the run.
    let args = [
        "sync",
        "--table",
        &table.name,
        "--checkpoint",
        "ssm",
        "--ssm-parameter",
        &checkpoint,
        "--page-size",
        "50",
    ];
    let mut cmd = command(&url, &args);
    cmd.env("SCANSYNC_TEST_BREAK", "exit-after-checkpoint");
    signal("-STOP", walwriter);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    // The crash: a server process killed makes PostgreSQL reset and recover from disk.
    signal("-KILL", walwriter);
    assert_eq!(out.status.code(), Some(99), "{}", String::from_utf8_lossy(&out.stderr));

    let ssm = crate::ssm::client(&crate::ssm::moto());
    let stored = ssm.get_parameter().name(&checkpoint).send().await.unwrap();
    assert!(stored.parameter.and_then(|p| p.value).is_some(), "the checkpoint moved");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = connect_retrying(&url).await;
    let n: i64 = c.query_one("select count(*) from scansync.content", &[]).await.unwrap().get(0);
    assert_eq!(n, 300, "pages the checkpoint passed were lost in the crash");
}

async fn connect_retrying(url: &str) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((c, conn)) => {
                tokio::spawn(conn);
                if c.simple_query("select 1").await.is_ok() {
                    return c;
                }
            }
            Err(e) => assert!(Instant::now() < deadline, "the cluster did not come back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
