//! One incremental run from DynamoDB, end to end (docs/run.md).

use crate::support::*;
use scansync::attr::{Attr, Item};
use scansync::time::Timestamp;

const SMALL_PAGES: &[&str] = &["--page-size", "5", "--fetchers", "3", "--writers", "2"];

fn sync_args<'a>(table: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["sync", "--source", "dynamodb", "--table", table];
    v.extend_from_slice(extra);
    v
}

/// 40 posts, 3 versions each, 24 h apart (so three distinct UTC days), plus records
/// older than the window that must not land.
fn three_day_history() -> Vec<Item> {
    let mut items = Vec::new();
    for p in 0..40 {
        for (v, hours) in [60.0, 36.0, 12.0].iter().enumerate() {
            let mut it = record(
                &format!("post-{p}"),
                &format!("s-{p}-{v}"),
                &hours_ago(hours + p as f64 * 0.01),
                &format!("p{p} v{v}"),
            );
            it.insert(
                "creator".into(),
                Attr::M(
                    [
                        ("id".to_string(), Attr::S(format!("c{}", p % 7))),
                        ("handle".to_string(), Attr::S(format!("h{}v{v}", p % 7))),
                        ("followers".to_string(), Attr::N(format!("1844674407370955161{v}"))),
                    ]
                    .into_iter()
                    .collect(),
                ),
            );
            it.insert(
                "stats".into(),
                Attr::M(
                    [("views".to_string(), Attr::N(format!("1234567890123456789012{v}")))]
                        .into_iter()
                        .collect(),
                ),
            );
            it.insert("tags".into(), Attr::Ss(vec![format!("#T{v}"), "#Common".into()]));
            items.push(it);
        }
    }
    for p in 0..5 {
        items.push(record(&format!("old-{p}"), &format!("old-{p}"), &hours_ago(80.0), "too old"));
    }
    items
}

#[tokio::test]
async fn incremental_run_over_several_partitions_with_small_pages_lands_exactly_the_expected_rows() {
    let (db, table) = (TestDb::new().await, Table::new().await);
    table.put(&three_day_history()).await;
    let out =
        scansync(&db, &sync_args(&table.name, &[&["--first-run-window", "72h"], SMALL_PAGES].concat())).await;
    assert_exit(&out, 0);

    let c = db.client().await;
    let rows = c
        .query(
            "select c.external_id, c.caption, c.view_count::text, cr.external_id, cr.handle, cr.follower_count::text,
                    array(select t.name from scansync.content_tags ct join scansync.tags t on t.id = ct.tag_id
                          where ct.content_id = c.id order by 1)::text
             from scansync.content c left join scansync.creators cr on cr.id = c.creator_id order by 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 40, "every post once, nothing older than the window");
    for r in &rows {
        let id: String = r.get(0);
        let p: usize = id.trim_start_matches("post-").parse().unwrap();
        assert_eq!(r.get::<_, String>(1), format!("p{p} v2"));
        assert_eq!(r.get::<_, String>(2), "12345678901234567890122");
        assert_eq!(r.get::<_, String>(3), format!("c{}", p % 7));
        assert_eq!(r.get::<_, String>(6), "{common,t2}");
    }
    let creators = c
        .query("select handle, follower_count::text from scansync.creators order by external_id", &[])
        .await
        .unwrap();
    assert_eq!(creators.len(), 7);
    for r in &creators {
        assert!(r.get::<_, String>(0).ends_with("v2"));
        assert_eq!(r.get::<_, String>(1), "18446744073709551612");
    }
    let run = c
        .query_one(
            "select status, pages, records_read, records_skipped, rows_content, index_items from scansync.sync_runs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(run.get::<_, String>(0), "succeeded");
    assert!(run.get::<_, i64>(1) >= 24, "pages of 5 records: {}", run.get::<_, i64>(1));
    // 120 versions in the window were read; the 5 older records lie inside the 12 h offset
    // margin, so the index returned them, and they were dropped before decoding (UTC stamps
    // older than the bound): read amplification 125/120.
    assert_eq!((run.get::<_, i64>(2), run.get::<_, i64>(3)), (120, 0), "records read, skipped");
    // Row changes: at least one per post, at most one per version (a version arriving after a
    // newer one changes nothing; three fetchers interleave the partitions).
    let changed = run.get::<_, i64>(4);
    assert!((40..=120).contains(&changed), "content rows changed: {changed}");
    assert_eq!(run.get::<_, Option<i64>>(5), Some(125), "index items");
}

#[tokio::test]
async fn running_the_same_window_again_changes_no_row() {
    let (db, table) = (TestDb::new().await, Table::new().await);
    table.put(&three_day_history()).await;
    let args = sync_args(&table.name, &[&["--first-run-window", "72h"], SMALL_PAGES].concat());
    assert_exit(&scansync(&db, &args).await, 0);
    let c = db.client().await;
    let before = dump_exact(&c, "scansync").await;
    // Forget the checkpoint: the next run reads exactly the same window again.
    c.execute("delete from scansync.checkpoints", &[]).await.unwrap();
    let out = scansync(&db, &args).await;
    assert_exit(&out, 0);
    assert_eq!(dump_exact(&c, "scansync").await, before);
    let changed: i64 = c
        .query_one(
            "select rows_creators + rows_communities + rows_tags + rows_content + rows_content_tags
             from scansync.sync_runs order by id desc limit 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(changed, 0);
}

async fn poison(c: &tokio_postgres::Client) {
    c.batch_execute(
        "create function scansync.poison() returns trigger language plpgsql as $$
         begin
             if new.external_id = 'poison' then raise exception 'poisoned row'; end if;
             return new;
         end $$;
         create trigger poison before insert or update on scansync.content
             for each row execute function scansync.poison();",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_page_failing_after_others_committed_leaves_the_checkpoint_and_the_next_run_converges() {
    let table = Table::new().await;
    let mut items = three_day_history();
    // The poisoned post sorts first in the newest partition (older than its v2 records);
    // one fetcher and one writer take partitions and pages in order.
    items.push(record("poison", "s-poison", &hours_ago(12.5), "boom"));
    table.put(&items).await;
    let args = sync_args(&table.name, &["--page-size", "5", "--fetchers", "1", "--writers", "1"]);
    let checkpoint = Timestamp::now().add_micros(-72 * 3_600_000_000);

    let (failing, reference) = (TestDb::new().await, TestDb::new().await);
    for db in [&failing, &reference] {
        assert_exit(&scansync(db, &["migrate"]).await, 0);
        db.client()
            .await
            .execute(
                "insert into scansync.checkpoints (name, value) values ('incremental', to_timestamp($1::float8 / 1e6))",
                &[&(checkpoint.0 as f64)],
            )
            .await
            .unwrap();
    }
    let c = failing.client().await;
    poison(&c).await;

    let out = scansync(&failing, &args).await;
    assert_exit(&out, 1);
    assert!(String::from_utf8_lossy(&out.stdout).contains("poisoned row"));
    let (cp, landed): (f64, i64) = {
        let r = c
            .query_one(
                "select extract(epoch from value)::float8 * 1e6,
                        (select count(*) from scansync.content where caption like '% v2')
                 from scansync.checkpoints",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(cp as i64 / 1000, checkpoint.0 / 1000, "checkpoint unchanged");
    // The poisoned page is the first of the newest partition. Pages are parsed in parallel
    // (rayon: one per thread, plus one), so the pages parsed beside it may reach the one
    // writer before it and commit; nothing fetched after them can. A run that skipped the
    // failed page and carried on would land 36 of the 40 newest versions.
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let overtaking = 5 * (parallel + 1);
    assert!(
        landed <= overtaking && landed < 36,
        "{landed} of the 40 newest versions landed: the run went on after the failed page"
    );
    let absent: (i64, i64) = {
        let r = c
            .query_one(
                "select (select count(*) from scansync.content where external_id = 'poison'),
                        (select count(*) from scansync.content_tags ct join scansync.tags t on t.id = ct.tag_id
                         where t.name = 't2')",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(absent, (0, 0), "the failed page's content row and tag edges were rolled back");
    let older: i64 = c.query_one("select count(*) from scansync.content", &[]).await.unwrap().get(0);
    assert_eq!(older, 40, "pages of the earlier partitions committed");
    let run: (String, Option<String>) = {
        let r = c.query_one("select status, error from scansync.sync_runs", &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(run.0, "failed");
    assert!(run.1.unwrap().contains("poisoned row"));

    c.batch_execute("drop trigger poison on scansync.content").await.unwrap();
    assert_exit(&scansync(&failing, &args).await, 0);
    assert_exit(&scansync(&reference, &args).await, 0);
    let rc = reference.client().await;
    assert_eq!(dump_logical(&c, "scansync").await, dump_logical(&rc, "scansync").await);
}

#[tokio::test]
async fn a_second_run_exits_75_while_the_lock_is_held_and_writes_nothing() {
    let (db, table) = (TestDb::new().await, Table::new().await);
    table.put(&three_day_history()).await;
    let holder = db.client().await;
    let got: bool = holder
        .query_one(
            "select pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&scansync::lock::lock_name("scansync")],
        )
        .await
        .unwrap()
        .get(0);
    assert!(got);
    let out = scansync(&db, &sync_args(&table.name, &[])).await;
    assert_exit(&out, 75);
    assert!(String::from_utf8_lossy(&out.stderr).contains("another scansync run holds the lock"));
    let schema_exists: bool = holder
        .query_one("select exists (select 1 from pg_namespace where nspname = 'scansync')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!schema_exists, "the locked-out run did no work at all");
    // Releasing is explicit, not a dropped connection (which the server notices later).
    holder
        .execute(
            "select pg_advisory_unlock(hashtextextended($1, 0))",
            &[&scansync::lock::lock_name("scansync")],
        )
        .await
        .unwrap();
    assert_exit(&scansync(&db, &sync_args(&table.name, &[])).await, 0);
}

/// The instant `t` written in New York winter time (`…-05:00`).
fn minus_five(t: Timestamp) -> String {
    format!("{}-05:00", &t.add_micros(-5 * 3_600_000_000).to_iso()[..23])
}

#[tokio::test]
async fn first_run_reads_24_hours_back_in_utc_days_with_the_overlap_day() {
    let (db, table) = (TestDb::new().await, Table::new().await);
    let now = Timestamp::now();
    let after = now.add_micros(-(24 * 60 + 15) * 60_000_000);
    let day = |d: i64| after.day().plus(d).to_string();
    let in_partition = |item: Item, p: String| with(item, &[("datePartition", Attr::S(p))]);
    // Whole seconds, so the two stamps below differ only by their fraction.
    let base = Timestamp((now.0 - 7_200_000_000) / 1_000_000 * 1_000_000);
    let whole = base.to_iso().replace(".000000Z", "Z");
    let half = base.add_micros(500_000).to_iso();
    table
        .put(&[
            record("in-window", "w", &hours_ago(23.0), "x"),
            record("in-lookback", "l", &hours_ago(24.1), "x"),
            record("too-old", "o", &hours_ago(24.5), "x"),
            // A record filed under an earlier day than its stamp (index lag, clock skew):
            // the overlap day catches it; two days back is outside the scan.
            in_partition(record("overlap-day", "od", &hours_ago(1.0), "x"), day(-1)),
            in_partition(record("beyond-overlap", "bo", &hours_ago(1.0), "x"), day(-2)),
            // Just after the bound, written at -05:00: as a string it sorts ~5 h below the
            // bound, so only the negative-offset query finds it. The older one must not land.
            record("negative-offset", "no", &minus_five(now.add_micros(-(24 * 60 + 5) * 60_000_000)), "x"),
            record(
                "negative-offset-too-old",
                "nt",
                &minus_five(now.add_micros(-(24 * 60 + 25) * 60_000_000)),
                "x",
            ),
            // `…:00Z` sorts after `…:00.500000Z` as a string but is the older instant.
            record("instants", "z", &whole, "older"),
            record("instants", "a", &half, "newer"),
        ])
        .await;
    let out = scansync(&db, &sync_args(&table.name, &[])).await;
    assert_exit(&out, 0);
    let c = db.client().await;
    let ids = column(&c, "select external_id from scansync.content order by 1").await;
    assert_eq!(ids, ["in-lookback", "in-window", "instants", "negative-offset", "overlap-day"]);
    let caption: String = c
        .query_one("select caption from scansync.content where external_id = 'instants'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(caption, "newer");
    let r = c
        .query_one(
            "select extract(epoch from r.started_at - r.window_after)::float8, r.first_partition::text,
                    r.last_partition::text, k.value = r.started_at,
                    (extract(epoch from r.started_at) * 1e6)::int8
             from scansync.sync_runs r, scansync.checkpoints k",
            &[],
        )
        .await
        .unwrap();
    assert!((r.get::<_, f64>(0) - 87_300.0).abs() < 1.0, "now − 24 h − 15 min: {}", r.get::<_, f64>(0));
    // Expected days from the run's own start (not the test's clock: they may straddle 00:00 UTC).
    let started = Timestamp(r.get::<_, i64>(4));
    let after = started.add_micros(-(24 * 60 + 15) * 60_000_000);
    assert_eq!(r.get::<_, String>(1), after.day().plus(-1).to_string());
    assert_eq!(r.get::<_, String>(2), started.day().to_string());
    assert!(r.get::<_, bool>(3), "the checkpoint is the run's start time");
}

#[tokio::test]
async fn a_missing_table_fails_the_run_with_a_message_that_names_it() {
    let db = TestDb::new().await;
    let out = scansync(&db, &sync_args("no_such_table", &[])).await;
    assert_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_table") && stderr.contains("check --table"), "{stderr}");
    let c = db.client().await;
    let r = c.query_one("select status, error from scansync.sync_runs", &[]).await.unwrap();
    assert_eq!(r.get::<_, String>(0), "failed");
    let cp: i64 = c.query_one("select count(*) from scansync.checkpoints", &[]).await.unwrap().get(0);
    assert_eq!(cp, 0);
}

#[tokio::test]
async fn a_database_password_never_appears_in_any_output() {
    let db = TestDb::new().await;
    let secret = "hunter2-do-not-print";
    let url = format!("postgres://app:{secret}@127.0.0.1:1/x");
    for args in [
        vec!["migrate"],
        vec!["sync", "--source", "export", "--export-dir", "/nonexistent"],
        vec!["health"],
        vec!["demo"],
    ] {
        let out = scansync_env(&db, &args, &[("DATABASE_URL", url.clone())]).await;
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains(secret), "{args:?} printed the password: {text}");
    }
    let out = scansync_env(&db, &["migrate"], &[("DATABASE_URL", url)]).await;
    // The target is shown rebuilt from what the driver parsed: there is no password field.
    assert!(String::from_utf8_lossy(&out.stderr).contains("postgres://app@127.0.0.1:1/x"));
}
