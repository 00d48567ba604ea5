//! Hostile and broken input, bad flags and faults, through the real binary: each test pins
//! a defect that once let a record go missing silently, leaked a secret, or left a wrong
//! state behind.

use crate::support::*;
use std::path::Path;

fn export_args(dir: &Path) -> Vec<String> {
    ["sync", "--source", "export", "--export-dir", dir.to_str().unwrap(), "--first-run-window", "48h"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

async fn run(db: &TestDb, args: &[String]) -> std::process::Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    scansync(db, &a).await
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn lines(n: usize) -> Vec<String> {
    (0..n).map(|i| export_line(&record(&format!("p{i}"), &format!("s{i}"), &hours_ago(1.0), "ok"))).collect()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

async fn health_code(db: &TestDb) -> (i32, serde_json::Value) {
    let out = scansync(db, &["health", "--json"]).await;
    (out.status.code().unwrap(), serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test]
async fn a_manifest_entry_outside_the_export_directory_is_refused_and_nothing_is_read() {
    let db = TestDb::new().await;
    for key in ["../../../../etc/passwd", "/etc/passwd", "data/../../escape.json"] {
        let dir = write_export(&[lines(2)]);
        let manifest = dir.join("manifest-files.json");
        let mut m = std::fs::read_to_string(&manifest).unwrap();
        m.push_str(&format!("{{\"itemCount\":1,\"dataFileS3Key\":\"{key}\"}}\n"));
        std::fs::write(&manifest, m).unwrap();
        let out = run(&db, &export_args(&dir)).await;
        assert_exit(&out, 1);
        assert!(text(&out).contains("outside the export directory"), "{key}: {}", text(&out));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // A data file that is a symlink out of the export is refused too.
    let dir = write_export(&[lines(2)]);
    std::os::unix::fs::symlink("/etc/passwd", dir.join("data/evil.json.gz")).unwrap();
    let manifest = dir.join("manifest-files.json");
    let mut m = std::fs::read_to_string(&manifest).unwrap();
    m.push_str("{\"itemCount\":1,\"dataFileS3Key\":\"data/evil.json.gz\"}\n");
    std::fs::write(&manifest, m).unwrap();
    let out = run(&db, &export_args(&dir)).await;
    assert_exit(&out, 1);
    assert!(text(&out).contains("resolves outside the export directory"), "{}", text(&out));
    std::fs::remove_dir_all(&dir).unwrap();
    let quarantined = db.client().await.query_opt("select 1 from scansync.quarantine", &[]).await;
    assert!(quarantined.map(|r| r.is_none()).unwrap_or(true), "nothing of /etc/passwd was read");
}

#[tokio::test]
async fn a_symlink_loop_in_an_export_without_manifest_reads_each_file_once() {
    let db = TestDb::new().await;
    let dir = write_export(&[lines(5)]);
    std::fs::remove_file(dir.join("manifest-files.json")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("data/loop")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("data/out")).unwrap();
    let out = run(&db, &export_args(&dir)).await;
    assert_exit(&out, 0);
    assert_eq!(count(&db, "select records_read from scansync.sync_runs").await, 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_data_file_shorter_than_its_manifest_item_count_fails_the_run_and_health() {
    let db = TestDb::new().await;
    let dir = write_export(&[lines(10)]);
    let manifest = dir.join("manifest-files.json");
    let m = std::fs::read_to_string(&manifest).unwrap().replace("\"itemCount\":10", "\"itemCount\":18");
    std::fs::write(&manifest, m).unwrap();
    let out = run(&db, &export_args(&dir)).await;
    assert_exit(&out, 1);
    assert!(text(&out).contains("holds 10 items but its manifest itemCount says 18"), "{}", text(&out));
    // What the file holds is synced; the run says the rest is missing.
    assert_eq!(count(&db, "select count(*) from scansync.content").await, 10);
    assert_eq!(count(&db, "select count(*) from scansync.checkpoints").await, 0);
    let (code, json) = health_code(&db).await;
    assert_eq!((code, json["status"].as_str()), (2, Some("failed")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_file_of_garbage_fails_the_run_instead_of_filling_the_quarantine() {
    let db = TestDb::new().await;
    let mut garbage: Vec<Vec<u8>> = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..50 {
        garbage.push((0..80).map(|_| rng.u8(..)).filter(|b| *b != b'\n').collect());
    }
    let dir = write_export(&[garbage]);
    let manifest = dir.join("manifest-files.json");
    let m = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, m.replace(r#""itemCount":50,"#, "")).unwrap();
    let out = run(&db, &export_args(&dir)).await;
    assert_exit(&out, 1);
    assert!(text(&out).contains("the input is broken, not dirty"), "{}", text(&out));
    assert_eq!(count(&db, "select count(*) from scansync.quarantine").await, 0);
    let (code, _) = health_code(&db).await;
    assert_eq!(code, 2);
    // The threshold is the operator's: at 100 the same file is quarantined line by line.
    let mut args = export_args(&dir);
    args.extend(["--max-unreadable-percent".into(), "100".into()]);
    assert_exit(&run(&db, &args).await, 0);
    assert!(count(&db, "select count(*) from scansync.quarantine").await > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_killed_run_shows_as_abandoned_not_in_progress_and_the_next_run_closes_it() {
    let db = TestDb::new().await;
    assert_exit(&scansync(&db, &["migrate"]).await, 0);
    // What a run killed with -9 leaves: a running row, and no lock held.
    db.client()
        .await
        .execute("insert into scansync.sync_runs (kind, status, started_at) values ('sync', 'running', now() - interval '2 hours')", &[])
        .await
        .unwrap();
    let (code, json) = health_code(&db).await;
    assert_eq!(code, 2, "{json}");
    assert_eq!(json["last_run"]["status"], "abandoned", "{json}");
    assert!(json["running_since"].is_null(), "{json}");
    let human = scansync(&db, &["health"]).await;
    assert!(!String::from_utf8_lossy(&human.stdout).contains("in progress"));

    let dir = write_export(&[lines(3)]);
    assert_exit(&run(&db, &export_args(&dir)).await, 0);
    let statuses: Vec<String> =
        column(&db.client().await, "select status from scansync.sync_runs order by id").await;
    assert_eq!(statuses, ["abandoned", "succeeded"]);
    assert_eq!(health_code(&db).await.0, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn flag_values_out_of_range_are_refused_up_front_without_a_panic_or_any_work() {
    let db = TestDb::new().await;
    let dir = write_export(&[lines(1)]);
    let d = dir.to_str().unwrap();
    for args in [
        vec!["health", "--max-age", "99999999999999999d"],
        vec!["sync", "--source", "export", "--export-dir", d, "--overlap-days", "4000000000"],
        vec!["sync", "--source", "export", "--export-dir", d, "--lookback", "1000000000d"],
        vec!["sync", "--source", "export", "--export-dir", d, "--offset-margin", "30h"],
        vec!["sync", "--source", "export", "--export-dir", d, "--retry-budget", "99999999999999999999s"],
    ] {
        let out = scansync(&db, &args).await;
        assert_exit(&out, 2);
        let t = text(&out);
        assert!(!t.contains("panicked") && t.contains("invalid value"), "{args:?}: {t}");
    }
    let schema = db
        .client()
        .await
        .query_opt("select 1 from pg_namespace where nspname = 'scansync'", &[])
        .await
        .unwrap();
    assert!(schema.is_none(), "nothing was done");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn system_schemas_and_overlong_names_are_refused_with_the_rule() {
    let db = TestDb::new().await;
    for schema in ["information_schema", "pg_catalog", "pg_temp_1"] {
        let out = scansync(&db, &["migrate", "--schema", schema]).await;
        // A setting to correct, refused before anything is done.
        assert_exit(&out, 2);
        assert!(text(&out).contains("belongs to PostgreSQL"), "{schema}: {}", text(&out));
    }
    let long = "s".repeat(64);
    let out = scansync(&db, &["migrate", "--schema", &long]).await;
    assert_exit(&out, 2);
    assert!(text(&out).contains("at most 63"), "{}", text(&out));
}

#[tokio::test]
async fn quarantine_rows_of_an_export_name_the_file_and_the_line() {
    let db = TestDb::new().await;
    let mut l = lines(4);
    l.insert(2, "not json".into());
    l.push(String::new()); // a blank line is skipped, but counted as a line
    l.push("{\"Item\": [1]}".into());
    let dir = write_export(&[l]);
    let manifest = dir.join("manifest-files.json");
    let m = std::fs::read_to_string(&manifest).unwrap().replace(r#""itemCount":7,"#, r#""itemCount":6,"#);
    std::fs::write(&manifest, m).unwrap();
    assert_exit(&run(&db, &export_args(&dir)).await, 0);
    let origins = column(&db.client().await, "select origin from scansync.quarantine order by origin").await;
    assert_eq!(origins, ["file-00.json.gz:3", "file-00.json.gz:7"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_schema_named_like_a_keyword_works_because_every_name_is_quoted() {
    let db = TestDb::new().await;
    let dir = write_export(&[lines(2)]);
    let mut args: Vec<String> = vec!["--schema".into(), "select".into()];
    args.extend(export_args(&dir));
    assert_exit(&run(&db, &args).await, 0);
    assert_eq!(count(&db, "select count(*) from \"select\".content").await, 2);
    assert_exit(&scansync(&db, &["--schema", "select", "health"]).await, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_export_dir_that_is_a_file_says_so() {
    let db = TestDb::new().await;
    let file = std::env::temp_dir().join(format!("scansync-test-file-{}", unique()));
    std::fs::write(&file, "x").unwrap();
    let out = scansync(&db, &["sync", "--source", "export", "--export-dir", file.to_str().unwrap()]).await;
    // A flag to correct: exit 2, and nothing was done.
    assert_exit(&out, 2);
    assert!(text(&out).contains("is a file, not a directory"), "{}", text(&out));
    std::fs::remove_file(&file).unwrap();
}

/// A random password of every printable ASCII character, quotes, spaces and `@/?#%`.
fn random_password(rng: &mut fastrand::Rng) -> String {
    let special = "'\" @/?#%\\=&:;";
    let len = rng.usize(10..24);
    let mut p: String = (0..len)
        .map(|_| {
            if rng.bool() {
                rng.char(' '..='~')
            } else {
                special.chars().nth(rng.usize(..special.len())).unwrap()
            }
        })
        .collect();
    // Never short enough to occur by chance in the output, never all spaces.
    p.push_str(&format!("Zq{}", rng.u32(..)));
    p
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test]
async fn random_passwords_never_appear_in_any_output_log_or_ledger_row() {
    let db = TestDb::new().await;
    let dir = write_export(&[lines(3)]);
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let mut rng = fastrand::Rng::with_seed(2026);
    for _ in 0..6 {
        let pw = random_password(&mut rng);
        let quoted = format!("'{}'", pw.replace('\\', "\\\\").replace('\'', "\\'"));
        let urls = [
            format!("postgres://postgres:{}@127.0.0.1:5432/{name}", percent_encode(&pw)),
            format!("host=127.0.0.1 port=5432 user=postgres password={quoted} dbname={name}"),
            // Failure paths: nothing listens on port 1.
            format!("postgres://postgres:{}@127.0.0.1:1/{name}", percent_encode(&pw)),
            format!("host=127.0.0.1 port=1 user=postgres password = {quoted} dbname={name}"),
        ];
        for url in &urls {
            for format in ["text", "json"] {
                let env = [
                    ("DATABASE_URL", url.clone()),
                    ("RUST_LOG", "trace".to_string()),
                    ("SCANSYNC_LOG_FORMAT", format.to_string()),
                ];
                for args in
                    [export_args(&dir), vec!["health".into(), "--json".into()], vec!["migrate".into()]]
                {
                    let a: Vec<&str> = args.iter().map(String::as_str).collect();
                    let out = scansync_env(&db, &a, &env).await;
                    let t = text(&out);
                    for secret in [pw.clone(), percent_encode(&pw), quoted.clone()] {
                        assert!(!t.contains(&secret), "{args:?} with {url:?} printed the password:\n{t}");
                    }
                }
            }
        }
        let ledger: Vec<String> = column(
            &db.client().await,
            "select coalesce(string_agg(r::text, ' '), '') from scansync.sync_runs r",
        )
        .await;
        assert!(!ledger[0].contains(&pw), "the ledger holds the password");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn deadlocks_and_serialization_failures_raised_by_postgres_are_retried_and_counted() {
    let db = TestDb::new().await;
    assert_exit(&scansync(&db, &["migrate"]).await, 0);
    db.client()
        .await
        .batch_execute(
            "create sequence scansync.injected;
             create function scansync.flaky() returns trigger language plpgsql as $$
             begin
               case nextval('scansync.injected')
                 when 1, 2 then raise exception 'injected deadlock' using errcode = '40P01';
                 when 3 then raise exception 'injected serialization failure' using errcode = '40001';
                 else return new;
               end case;
             end $$;
             create trigger flaky before insert on scansync.content
             for each row execute function scansync.flaky();",
        )
        .await
        .unwrap();
    let dir = write_export(&[lines(4)]);
    let mut args = export_args(&dir);
    args.extend(["--writers".into(), "1".into()]);
    let out = run(&db, &args).await;
    assert_exit(&out, 0);
    assert_eq!(count(&db, "select page_retries from scansync.sync_runs").await, 3);
    assert_eq!(count(&db, "select count(*) from scansync.content").await, 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_run_that_loses_its_lock_to_a_restart_stops_before_the_checkpoint_and_says_why() {
    let cluster = Cluster::start();
    let admin = connect(&cluster.url("postgres")).await;
    admin.batch_execute("create database t").await.unwrap();
    let url = cluster.url("t");
    let dir = write_export(&[lines(30_000)]);
    let mut args = export_args(&dir);
    args.extend(["--page-size", "100", "--writers", "1"].map(String::from));
    let child = {
        let (url, args) = (url.clone(), args.clone());
        tokio::spawn(async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            scansync_url(&url, &a, &[]).await
        })
    };
    // Restart once pages are committing.
    let c = connect(&url).await;
    for _ in 0..200 {
        let n: Option<i64> =
            c.query_one("select count(*) from scansync.content", &[]).await.ok().map(|r| r.get(0));
        if n.is_some_and(|n| n > 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let committed: i64 = c.query_one("select count(*) from scansync.content", &[]).await.unwrap().get(0);
    assert!(committed > 0 && committed < 30_000, "the restart must come mid-run ({committed} rows)");
    cluster.restart();
    let out = child.await.unwrap();
    assert_exit(&out, 1);
    let t = text(&out);
    assert!(t.contains("lost the run lock") && t.contains("committed before the failure"), "{t}");
    let c = connect(&url).await;
    let r = c
        .query_one("select status, error from scansync.sync_runs order by id desc limit 1", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "failed");
    assert!(r.get::<_, String>(1).contains("lost the run lock"));
    let cp: i64 = c.query_one("select count(*) from scansync.checkpoints", &[]).await.unwrap().get(0);
    assert_eq!(cp, 0, "the checkpoint did not move");
    // The operator's recovery: run again.
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = scansync_url(&url, &a, &[]).await;
    assert_exit(&out, 0);
    let n: i64 = c.query_one("select count(*) from scansync.content", &[]).await.unwrap().get(0);
    assert_eq!(n, 30_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A TCP proxy in front of the test PostgreSQL that closes its `drop`-th connection (0-based)
/// as soon as it is accepted and forwards every other one.
async fn dropping_proxy(drop: usize) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = std::env::var("SCANSYNC_TEST_DATABASE_URL").unwrap();
    let upstream = url.split('@').nth(1).unwrap().split('/').next().unwrap().to_string();
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((mut down, _)) = listener.accept().await else { return };
            if n == drop {
                continue; // dropped: closed before the startup packet is answered
            }
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_connection_lost_while_a_run_starts_is_retried_and_the_run_recorded() {
    let db = TestDb::new().await;
    let dir = write_export(&[lines(20)]);
    // Connection 0 takes the run lock, connection 1 checks for a transaction pooler,
    // connection 2 is the run's own (migrations, ledger).
    let port = dropping_proxy(2).await;
    let (head, tail) = db.url.split_once('@').unwrap();
    let path = tail.split_once('/').unwrap().1;
    let url = format!("{head}@127.0.0.1:{port}/{path}");
    let owned = export_args(&dir);
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    let out = scansync_url(&url, &args, &[]).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_exit(&out, 0);
    let t = text(&out);
    assert!(t.contains("retrying"), "the lost connection is reported as retried:\n{t}");
    assert_eq!(count(&db, "select count(*) from scansync.content").await, 20);
    assert_eq!(
        count(&db, "select count(*) from scansync.sync_runs where status = 'succeeded'").await,
        1,
        "the run is in the ledger"
    );
}
