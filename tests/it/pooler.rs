//! A database URL that leads to a transaction-pooling PgBouncer is refused before any work
//! (its session advisory locks and temp tables would be shared between clients); one in
//! session mode works as a direct connection does.

use crate::support::*;

fn export() -> std::path::PathBuf {
    let lines: Vec<String> = (0..20)
        .map(|i| export_line(&record(&format!("p{i}"), &format!("s{i}"), &hours_ago(1.0), "x")))
        .collect();
    write_export(&[lines])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_pooler_is_refused_before_any_work_and_a_session_pooler_works() {
    let db = TestDb::new().await;
    let dir = export();
    let args = ["sync", "--source", "export", "--export-dir", dir.to_str().unwrap()];
    let pooler = Pooler::start(&db, "transaction");
    let out = scansync_url(&pooler.url(&db), &args, &[]).await;
    assert_exit(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("transaction mode") && stderr.contains("pool_mode = session"), "{stderr}");
    let c = db.client().await;
    let schema: bool = c
        .query_one("select exists (select 1 from pg_namespace where nspname = 'scansync')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!schema, "nothing was done: no migration");
    drop(pooler);

    let pooler = Pooler::start(&db, "session");
    let out = scansync_url(&pooler.url(&db), &args, &[]).await;
    assert_exit(&out, 0);
    let n: i64 = c.query_one("select count(*) from scansync.content", &[]).await.unwrap().get(0);
    assert_eq!(n, 20);
}
