//! Least privilege: a role that owns only its schema (no CREATE on the database, not a
//! superuser) migrates, syncs, backfills and reports; a role missing a privilege is told
//! which one.

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_role_owning_only_its_schema_runs_everything_and_a_missing_privilege_is_named() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    let (app, other) = (format!("scansync_app_{}", unique()), format!("scansync_nobody_{}", unique()));
    let dbname = db.url.rsplit('/').next().unwrap().to_string();
    admin
        .batch_execute(&format!(
            "create role {app} login; create role {other} login;
             revoke create on database {dbname} from public;
             create schema scansync authorization {app};"
        ))
        .await
        .unwrap();
    let as_role = |role: &str| db.url.replacen("postgres@", &format!("{role}@"), 1);
    let app_url = as_role(&app);

    assert_exit(&scansync_url(&app_url, &["migrate"], &[]).await, 0);
    let lines: Vec<String> = (0..20)
        .map(|i| export_line(&record(&format!("p{i}"), &format!("s{i}"), &hours_ago(2.0), "x")))
        .collect();
    let dir = write_export(&[lines]);
    let out = scansync_url(
        &app_url,
        &["backfill", "--source", "export", "--export-dir", dir.to_str().unwrap()],
        &[],
    )
    .await;
    assert_exit(&out, 0);
    let out =
        scansync_url(&app_url, &["sync", "--source", "export", "--export-dir", dir.to_str().unwrap()], &[])
            .await;
    assert_exit(&out, 0);
    assert_exit(&scansync_url(&app_url, &["backfill", "status"], &[]).await, 0);
    assert_exit(&scansync_url(&app_url, &["health"], &[]).await, 0);
    let n: i64 = admin.query_one("select count(*) from scansync.content", &[]).await.unwrap().get(0);
    assert_eq!(n, 20);

    // Another role, for a schema that does not exist: it may not create it.
    let out = scansync_url(&as_role(&other), &["--schema", "elsewhere", "migrate"], &[]).await;
    assert_exit(&out, 1);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("42501") && text.contains("needs CREATE on the database"), "{text}");
    // ... nor use the app's schema, which it does not own.
    let out = scansync_url(&as_role(&other), &["migrate"], &[]).await;
    assert_exit(&out, 1);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("42501") && text.contains("own schema scansync"), "{text}");

    std::fs::remove_dir_all(&dir).unwrap();
    drop(admin);
    let root = connect(&std::env::var("SCANSYNC_TEST_DATABASE_URL").unwrap()).await;
    drop(db);
    for r in [&app, &other] {
        let _ = root.batch_execute(&format!("drop role if exists {r}")).await;
    }
}
