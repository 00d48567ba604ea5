//! The Lambda entry (`bootstrap`, on `lambda_runtime`) through a real Lambda runtime
//! emulator: `cargo lambda watch --only-lambda-apis` serves the Runtime API, the test starts
//! the real `bootstrap` against it (as Lambda would, configured by environment variables
//! only) and invokes it with `cargo lambda invoke`, against dynalite and PostgreSQL.

use crate::support::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The emulator, stopped (with its function) when dropped.
struct Emulator {
    port: u16,
    children: Vec<Child>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Emulator {
    fn start() -> Self {
        let port = free_port();
        let emulator = Command::new("cargo")
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo lambda (pip install cargo-lambda; scripts/with-servers installs it)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the Lambda emulator did not listen on {port} in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Emulator { port, children: vec![emulator] }
    }

    /// Starts `bootstrap` against the emulator's Runtime API, as Lambda starts a function.
    fn function(&mut self, url: &str, env: &[(&str, &str)], stdout: &std::path::Path) {
        let mut cmd = command_of(env!("CARGO_BIN_EXE_bootstrap"), url, &[]);
        cmd.env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{}/.rt", self.port))
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .stdout(std::fs::File::create(stdout).unwrap())
            .stderr(std::fs::File::create(stdout.with_extension("log")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.children.push(cmd.spawn().unwrap());
    }

    /// One invocation through the emulator: (succeeded, what `cargo lambda invoke` printed).
    async fn invoke(&self, event: &str) -> (bool, String) {
        let (port, event) = (self.port.to_string(), event.to_string());
        let out = tokio::task::spawn_blocking(move || {
            Command::new("cargo")
                .args(["lambda", "invoke", "-A", "127.0.0.1", "-P", &port, "--data-ascii", &event, "_"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}

/// The embedded-metric-format lines the function printed.
fn metric_lines(stdout: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(stdout)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lambda_entry_syncs_once_per_invocation_verifies_on_a_verify_event_skips_a_held_lock_and_fails_a_failed_run(
) {
    let table = recent_table(50).await;
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!("scansync-lambda-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let stdout = dir.join("function.out");
    // As deploy/aws/lambda/template.yaml configures it: the database URL in an SSM
    // SecureString (the DATABASE_URL it is also given points nowhere), the checkpoint in SSM.
    let ssm = crate::ssm::client(&crate::ssm::moto());
    let (url_param, checkpoint) =
        (format!("/scansync/{}/database-url", table.name), format!("/scansync/{}/checkpoint", table.name));
    ssm.put_parameter()
        .name(&url_param)
        .value(&db.url)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let mut emulator = Emulator::start();
    emulator.function(
        "postgres://nobody@127.0.0.1:1/nowhere",
        &[
            ("SCANSYNC_DATABASE_URL_PARAMETER", &url_param),
            ("SCANSYNC_CHECKPOINT", "ssm"),
            ("SCANSYNC_SSM_PARAMETER", &checkpoint),
            ("SCANSYNC_SOURCE", "dynamodb"),
            ("SCANSYNC_TABLE", &table.name),
            ("SCANSYNC_LOG_FORMAT", "json"),
        ],
        &stdout,
    );

    // 1. An EventBridge scheduled event: one sync.
    let (ok, text) = emulator.invoke(r#"{"source":"aws.events","detail-type":"Scheduled Event"}"#).await;
    assert!(ok, "{text} (the function's log: {})", stdout.with_extension("log").display());
    let response: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("{text}"));
    assert_eq!(response["status"], "succeeded", "{text}");
    assert_eq!(response["records_read"], 50, "{text}");
    assert_eq!(response["rows_changed"]["content"], 50, "{text}");
    let c = db.client().await;
    let count = |sql: &str| {
        let (c, sql) = (&c, sql.to_string());
        async move { c.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("select count(*) from scansync.content").await, 50);
    let stored = ssm.get_parameter().name(&checkpoint).send().await.unwrap();
    assert!(stored.parameter.and_then(|p| p.value).is_some(), "the run moved the SSM checkpoint");

    // 2. A verify event: the same source's last 2 days compared and recorded; divergent keys
    //    fail the invocation, and a verify with "repair" writes them.
    let (ok, text) = emulator.invoke(r#"{"verify":{"days":2}}"#).await;
    assert!(ok, "{text}");
    let response: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("{text}"));
    assert_eq!((response["divergent"].as_u64(), response["content"]["same"].as_u64()), (Some(0), Some(50)));
    c.execute("delete from scansync.content where external_id = 'p7'", &[]).await.unwrap();
    let (ok, text) = emulator.invoke(r#"{"verify":{"days":2}}"#).await;
    assert!(!ok && text.contains("VerifyDiverged"), "{text}");
    let (ok, text) = emulator.invoke(r#"{"verify":{"days":2,"repair":true}}"#).await;
    assert!(ok, "{text}");
    assert_eq!(count("select count(*) from scansync.content").await, 50);

    // 3. Another run holds the lock: a result that says skipped, not an error.
    let holder = db.client().await;
    let name = scansync::lock::lock_name("scansync");
    holder.execute("select pg_advisory_lock(hashtextextended($1, 0))", &[&name]).await.unwrap();
    let (ok, text) = emulator.invoke("{}").await;
    assert!(ok, "a held lock is not an error: {text}");
    assert!(text.contains(r#""status":"skipped""#), "{text}");
    holder.execute("select pg_advisory_unlock(hashtextextended($1, 0))", &[&name]).await.unwrap();

    // 4. A run that fails (its table is gone) is an error of the invocation: Lambda's
    //    Errors metric counts it, and the first alarm fires.
    table.client.delete_table().table_name(&table.name).send().await.unwrap();
    let (ok, text) = emulator.invoke("{}").await;
    assert!(!ok, "a failed run must fail the invocation: {text}");
    assert!(text.contains("SyncFailed") || text.contains("SyncNotStarted"), "{text}");

    let runs = "select count(*) from scansync.sync_runs where kind = 'sync' and status =";
    assert_eq!(count(&format!("{runs} 'succeeded'")).await, 1);
    assert_eq!(count(&format!("{runs} 'failed'")).await, 1);
    let verifies = "select count(*) from scansync.sync_runs where kind = 'verify' and verify_unrepaired = 0";
    assert_eq!(count(verifies).await, 2, "the clean verify and the repair");
    // One metric line per invocation, in order; the verifies' have metrics of their own.
    let (verify_lines, lines): (Vec<_>, Vec<_>) =
        metric_lines(&stdout).into_iter().partition(|l| l.get("Verifies").is_some());
    let divergent: Vec<_> = verify_lines.iter().map(|l| l["DivergentKeys"].as_u64().unwrap()).collect();
    assert_eq!(divergent, [0, 1, 0], "{verify_lines:?}");
    let statuses: Vec<_> = lines.iter().map(|l| l["Status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses, ["succeeded", "skipped", "failed"], "{lines:?}");
    assert_eq!(lines[0]["SuccessfulRuns"], 1);
    assert_eq!(lines[0]["RecordsRead"], 50);
    assert_eq!(lines[1]["SkippedRuns"], 1);
    assert_eq!(lines[2]["FailedRuns"], 1);
    assert_eq!(lines[0]["Function"], "_");
}

#[test]
fn a_bad_setting_fails_the_cold_start_with_the_clis_message() {
    let out = command_of(env!("CARGO_BIN_EXE_bootstrap"), "postgres://x@127.0.0.1:1/db", &[])
        .env("SCANSYNC_TABLE", "scans")
        .env("SCANSYNC_MAX_WINDOW", "5m")
        .env("SCANSYNC_LOOKBACK", "15m")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-window 5m is not longer than --lookback 15m"), "{err}");
}
