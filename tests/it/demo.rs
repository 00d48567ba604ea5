//! `scansync demo`, the README's first command.

use crate::support::*;

#[tokio::test]
async fn demo_runs_to_completion_on_the_bundled_sample() {
    let db = TestDb::new().await;
    let out = scansync(&db, &["demo"]).await;
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The line, not a substring ("10 rows changed" contains "0 rows changed").
    assert!(
        stdout.lines().any(|l| l.trim() == "-> 0 rows changed: applying the same records twice is a no-op"),
        "{stdout}"
    );
    assert!(stdout.contains("health: healthy"), "{stdout}");
    let c = db.client().await;
    let r = c
        .query_one(
            "select (select count(*) from scansync_demo.content),
                    (select count(*) from scansync_demo.content where deleted_at is not null),
                    (select count(*) from scansync_demo.quarantine),
                    (select count(*) from scansync_demo.sync_runs where status = 'succeeded')",
            &[],
        )
        .await
        .unwrap();
    let counts: (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
    assert_eq!(counts, (120, 27, 4, 2));
    // And the ledger agrees: the second run changed nothing in any table.
    let second = c
        .query_one(
            "select rows_creators + rows_communities + rows_tags + rows_content + rows_content_tags + quarantined
             from scansync_demo.sync_runs order by id desc limit 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(second.get::<_, i64>(0), 0);
}
