//! `scansync serve` through the real binary against dynalite and PostgreSQL: runs on its
//! interval and never two at once, /metrics shows the runs' counts, /healthz follows the
//! health verdict (503 when the last run failed, and when stale), SIGTERM stops it.

use crate::support::*;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// GET over plain HTTP/1.0: (status, body); (0, "") while nothing listens.
fn get(addr: &str, path: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// The value of a sample line of the exposition (`name{labels} value`).
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn serve(db: &TestDb, table: &str, extra: &[&str]) -> Child {
    command(&db.url, &[&["serve", "--table", table][..], extra].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// GETs `path` until `want` holds for the answer (the endpoints answer from a store read
/// made in the background, at most a probe interval old), or 15 s have passed; returns the
/// last answer.
async fn get_until(addr: &str, path: &'static str, want: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = addr.to_string();
        let (code, body) = tokio::task::spawn_blocking(move || get(&a, path)).await.unwrap();
        if want(code, &body) || Instant::now() > deadline {
            return (code, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stop(child: Child, signal: &str) -> Option<i32> {
    Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    let mut child = child;
    tokio::task::spawn_blocking(move || child.wait().unwrap().code()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_every_interval_one_at_a_time_and_its_metrics_and_healthz_follow_the_runs() {
    let table = recent_table(50).await;
    let db = TestDb::new().await;
    let addr = free_addr();
    let child = serve(&db, &table.name, &["--every", "2s", "--metrics-addr", &addr]);
    let c = db.client().await;
    let runs = |status: &'static str| {
        let c = &c;
        async move {
            c.query_one(&format!("select count(*) from scansync.sync_runs where status = '{status}'"), &[])
                .await
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0)
        }
    };
    wait_for("three successful runs", || async { runs("succeeded").await >= 3 }).await;
    let (code, metrics) =
        get_until(&addr, "/metrics", |_, m| sample(m, "scansync_healthy") == Some(1.0)).await;
    assert_eq!(code, 200);
    let ok = sample(&metrics, "scansync_runs_total{kind=\"sync\",outcome=\"succeeded\"}").unwrap();
    assert!(ok >= 3.0, "{metrics}");
    // The first run read the 50 records; the later windows (checkpoint − 15m) hold none.
    assert_eq!(sample(&metrics, "scansync_records_read_total"), Some(50.0), "{metrics}");
    assert_eq!(sample(&metrics, "scansync_rows_changed_total{table=\"content\"}"), Some(50.0), "{metrics}");
    assert_eq!(sample(&metrics, "scansync_healthy"), Some(1.0), "{metrics}");
    assert!(sample(&metrics, "scansync_seconds_since_last_success").unwrap() < 60.0, "{metrics}");
    let (code, body) = get_until(&addr, "/healthz", |code, _| code == 200).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"status\":\"healthy\""), "{body}");

    // The next runs fail: /healthz turns 503 with the reason.
    c.batch_execute(
        "create function scansync.poison() returns trigger language plpgsql as $$
         begin if new.external_id = 'poison' then raise exception 'poisoned row'; end if; return new; end $$;
         create trigger poison before insert or update on scansync.content for each row execute function scansync.poison();",
    )
    .await
    .unwrap();
    table.put(&[record("poison", "s-poison", &hours_ago(0.01), "boom")]).await;
    wait_for("a failed run", || async { runs("failed").await >= 1 }).await;
    let (code, body) = get_until(&addr, "/healthz", |code, _| code == 503).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"status\":\"failed\"") && body.contains("poisoned row"), "{body}");

    assert_eq!(stop(child, "-TERM").await, Some(143));
    // One at a time: no two runs overlap, none is left running.
    let overlaps: i64 = c
        .query_one(
            "select count(*) from scansync.sync_runs a join scansync.sync_runs b on a.id < b.id
             where a.started_at < coalesce(b.finished_at, now()) and b.started_at < coalesce(a.finished_at, now())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(overlaps, 0);
    assert_eq!(runs("running").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_turns_503_when_the_last_success_is_older_than_max_age() {
    let table = Table::new().await;
    table.put(&[record("p1", "s1", &hours_ago(1.0), "x")]).await;
    let db = TestDb::new().await;
    let addr = free_addr();
    let child = serve(&db, &table.name, &["--every", "1h", "--max-age", "3s", "--metrics-addr", &addr]);
    let c = db.client().await;
    wait_for("the first run", || async {
        c.query_one("select count(*) from scansync.sync_runs where status = 'succeeded'", &[])
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) == 1)
    })
    .await;
    let (code, body) = get_until(&addr, "/healthz", |code, _| code == 200).await;
    assert_eq!(code, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (code, body) = get_until(&addr, "/healthz", |code, _| code == 503).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"status\":\"stale\""), "{body}");
    assert_eq!(stop(child, "-INT").await, Some(130));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_a_cron_expression_starts_runs_at_its_times_and_times_each_page() {
    let table = recent_table(30).await;
    let db = TestDb::new().await;
    let addr = free_addr();
    // Six fields, seconds first: at seconds 0, 3, 6, … of each minute.
    let child =
        serve(&db, &table.name, &["--cron", "*/3 * * * * *", "--metrics-addr", &addr, "--page-size", "10"]);
    let c = db.client().await;
    wait_for("three successful runs", || async {
        c.query_one("select count(*) from scansync.sync_runs where status = 'succeeded'", &[])
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) >= 3)
    })
    .await;
    let (code, metrics) = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || get(&addr, "/metrics")
    })
    .await
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(stop(child, "-TERM").await, Some(143));
    // Every run started just after a multiple of 3 s (the cron times), never between.
    let offsets: Vec<f64> = c
        .query("select extract(epoch from started_at)::float8 from scansync.sync_runs order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, f64>(0) % 3.0)
        .collect();
    assert!(offsets.len() >= 3);
    assert!(offsets.iter().all(|o| *o < 1.5), "runs started off the cron times: {offsets:?}");
    // 30 records in pages of 10: three pages timed by the first run.
    let pages = sample(&metrics, "scansync_page_duration_seconds_count").unwrap();
    assert!(pages >= 3.0, "{metrics}");
}

#[test]
fn serve_refuses_a_cron_expression_it_cannot_read_and_both_schedules_at_once() {
    let out = command("postgres://x@127.0.0.1:1/db", &["serve", "--cron", "every hour"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a cron expression") && err.contains("5 * * * *"), "{err}");
    let out = command("postgres://x@127.0.0.1:1/db", &["serve", "--cron", "5 * * * *", "--every", "1h"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_shot_sync_serves_metrics_while_it_lasts() {
    let table = Table::new().await;
    table.put(&[record("p1", "s1", &hours_ago(1.0), "x")]).await;
    let db = TestDb::new().await;
    let out = scansync(&db, &["migrate"]).await;
    assert_exit(&out, 0);
    // A transaction holding content keeps the run's first page waiting.
    let holder = db.client().await;
    holder.batch_execute("begin; lock table scansync.content in exclusive mode").await.unwrap();
    let addr = free_addr();
    let mut child = command(&db.url, &["sync", "--table", &table.name, "--metrics-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let a = addr.clone();
    let (code, metrics) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = get(&a, "/metrics");
            if got.0 != 0 || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 200, "the run serves /metrics while it lasts");
    assert!(metrics.contains("scansync_page_duration_seconds"), "{metrics}");
    holder.batch_execute("commit").await.unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0));
    // Gone with the run.
    assert_eq!(get(&addr, "/metrics").0, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn livez_and_healthz_answer_at_once_while_the_database_does_not() {
    // A server that accepts connections and never answers: every connect hangs until its
    // timeout, as a database behind a dead network path does.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("postgres://postgres@{}/nowhere", hang.local_addr().unwrap());
    let addr = free_addr();
    let child = command(&url, &["serve", "--table", "t", "--every", "1h", "--metrics-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let a = addr.clone();
    wait_for("/livez", move || {
        let a = a.clone();
        async move { tokio::task::spawn_blocking(move || get(&a, "/livez")).await.unwrap().0 == 200 }
    })
    .await;
    for _ in 0..3 {
        let a = addr.clone();
        let started = Instant::now();
        let (code, body) = tokio::task::spawn_blocking(move || get(&a, "/healthz")).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "/healthz waited for the database");
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("\"status\":\"error\""), "{body}");
        let a = addr.clone();
        assert_eq!(tokio::task::spawn_blocking(move || get(&a, "/livez")).await.unwrap().0, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop(child, "-KILL").await;
    drop(hang);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_verifies_on_its_own_schedule_and_a_divergent_store_turns_health_and_healthz_to_diverged() {
    let table = recent_table(30).await;
    let db = TestDb::new().await;
    assert_exit(&scansync(&db, &["sync", "--table", &table.name]).await, 0);
    // A row lost behind the checkpoint: no later sync reads it again.
    let c = db.client().await;
    c.execute("delete from scansync.content where external_id = 'p3'", &[]).await.unwrap();
    let addr = free_addr();
    let args = ["--every", "1h", "--verify-every", "1h", "--verify-days", "2", "--metrics-addr", &addr];
    let child = serve(&db, &table.name, &args);
    let (code, body) =
        get_until(&addr, "/healthz", |code, body| code == 503 && body.contains("diverged")).await;
    assert_eq!(code, 503, "{body}");
    let (_, metrics) =
        get_until(&addr, "/metrics", |_, m| m.contains("scansync_verify_keys{kind=\"missing\"} 1")).await;
    assert!(metrics.contains("scansync_verify_keys{kind=\"missing\"} 1"), "{metrics}");
    assert!(sample(&metrics, "scansync_seconds_since_last_verify").is_some_and(|a| a < 60.0), "{metrics}");
    let out = scansync(&db, &["health"]).await;
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stdout).contains("DIVERGED: 1 missing"), "{out:?}");
    assert_eq!(stop(child, "-TERM").await, Some(143));

    // Repaired by hand: health is healthy again.
    let repair = ["verify", "--table", &table.name, "--days", "2", "--repair"];
    assert_exit(&scansync(&db, &repair).await, 0);
    assert_exit(&scansync(&db, &["health"]).await, 0);
}
