//! `scansync health` exit statuses, from the real run ledger.

use crate::support::*;

async fn health(db: &TestDb, max_age: &str) -> (i32, serde_json::Value) {
    let out = scansync(db, &["health", "--max-age", max_age, "--json"]).await;
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), json)
}

#[tokio::test]
async fn health_is_1_before_any_run_0_when_fresh_1_when_stale_and_2_after_a_failure() {
    let db = TestDb::new().await;
    let (code, json) = health(&db, "3h").await;
    assert_eq!((code, json["status"].as_str()), (1, Some("never_ran")));

    let dir = write_export(&[vec![export_line(&record("p1", "s1", &hours_ago(1.0), "hi"))]]);
    let sync = ["sync", "--source", "export", "--export-dir", dir.to_str().unwrap()];
    assert_exit(&scansync(&db, &sync).await, 0);
    let (code, json) = health(&db, "3h").await;
    assert_eq!((code, json["status"].as_str()), (0, Some("healthy")));
    assert!(json["checkpoint"].is_string());
    assert!(json["minutes_since_last_success"].as_f64().unwrap() < 1.0);

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (code, json) = health(&db, "1s").await;
    assert_eq!((code, json["status"].as_str()), (1, Some("stale")));

    // The next run fails: PostgreSQL refuses every content row.
    refuse_content(&db).await;
    assert_exit(&scansync(&db, &sync).await, 1);
    let (code, json) = health(&db, "3h").await;
    assert_eq!((code, json["status"].as_str()), (2, Some("failed")));
    assert!(json["last_run"]["error"].as_str().unwrap().contains("refused by test"));
    let text = scansync(&db, &["health"]).await;
    assert_exit(&text, 2);
    assert!(String::from_utf8_lossy(&text.stdout).starts_with("failed"));
    std::fs::remove_dir_all(&dir).unwrap();
}
