//! The merge rules of docs/contract.md against real PostgreSQL: newest wins whatever the order,
//! duplicates fold, tag edges follow the winner, tombstones and revivals.

use crate::support::*;
use scansync::attr::{Attr, Item};

fn version(content: &str, scan: &str, at: &str, caption: &str, tags: &[&str], handle: &str) -> Item {
    let mut it = record(content, scan, at, caption);
    it.insert("tags".into(), Attr::L(tags.iter().map(|t| Attr::S(t.to_string())).collect()));
    it.insert(
        "creator".into(),
        // Only the "multi" versions describe creator c1; the other posts share c0.
        Attr::M(
            [
                ("id".to_string(), Attr::S(if handle == "h0" { "c0" } else { "c1" }.into())),
                ("handle".to_string(), Attr::S(handle.into())),
            ]
            .into_iter()
            .collect(),
        ),
    );
    it
}

fn tomb(content: &str, scan: &str, at: &str) -> Item {
    with(
        record(content, scan, at, "ignored: a tombstone's values are not kept"),
        &[("deleted", Attr::Bool(true))],
    )
}

/// Every case of the rules, as records spread over three days.
fn history() -> Vec<Item> {
    vec![
        version("multi", "m1", "2026-01-10T10:00:00Z", "v1", &["#A", "b"], "h1"),
        version("multi", "m2", "2026-01-10T11:00:00Z", "v2", &["b", "c"], "h2"),
        version("multi", "m3", "2026-01-11T10:00:00Z", "v3", &["c", "#D"], "h3"),
        version("multi", "m4", "2026-01-12T10:00:00Z", "v4", &["d"], "h4"),
        version("dup", "s1", "2026-01-10T12:00:00Z", "low", &[], "h0"),
        version("dup", "s2", "2026-01-10T12:00:00Z", "high", &[], "h0"),
        version("revived", "r1", "2026-01-10T10:00:00Z", "alive1", &["x"], "h0"),
        tomb("revived", "r2", "2026-01-11T10:00:00Z"),
        version("revived", "r3", "2026-01-12T10:00:00Z", "alive2", &["y"], "h0"),
        version("dead", "d1", "2026-01-10T10:00:00Z", "last words", &["z"], "h0"),
        tomb("dead", "d2", "2026-01-11T10:00:00Z"),
        tomb("dead-first", "f2", "2026-01-12T10:00:00Z"),
        version("dead-first", "f1", "2026-01-10T10:00:00Z", "before", &[], "h0"),
        version("frac", "z", "2026-01-10T08:00:00Z", "older", &[], "h0"),
        version("frac", "a", "2026-01-10T08:00:00.5Z", "newer", &[], "h0"),
        version("offset", "o1", "2026-01-10T09:00:00-05:00", "later", &[], "h0"),
        version("offset", "o2", "2026-01-10T13:00:00Z", "earlier", &[], "h0"),
    ]
}

async fn assert_expected_state(db: &TestDb) {
    let c = db.client().await;
    let rows = c
        .query(
            "select external_id, caption, deleted_at::text,
                    array(select t.name from scansync.content_tags ct join scansync.tags t on t.id = ct.tag_id
                          where ct.content_id = c.id order by 1)::text
             from scansync.content c order by 1",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, Option<String>, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    let want = |id: &str, caption: &str, deleted: Option<&str>, tags: &str| {
        (id.to_string(), caption.to_string(), deleted.map(str::to_string), tags.to_string())
    };
    assert_eq!(
        got,
        vec![
            want("dead", "last words", Some("2026-01-11 10:00:00+00"), "{z}"),
            want("dead-first", "before", Some("2026-01-12 10:00:00+00"), "{}"),
            want("dup", "high", None, "{}"),
            want("frac", "newer", None, "{}"),
            want("multi", "v4", None, "{d}"),
            want("offset", "later", None, "{}"),
            want("revived", "alive2", None, "{y}"),
        ]
    );
    let handle: String = c
        .query_one("select handle from scansync.creators where external_id = 'c1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(handle, "h4", "creators follow the newest record too");
}

async fn backfill_export(db: &TestDb, files: &[Vec<String>], page_size: &str) {
    let dir = write_export(files);
    let out = scansync(
        db,
        &[
            "backfill",
            "--from",
            "2026-01-09",
            "--to",
            "2026-01-13",
            "--source",
            "export",
            "--export-dir",
            dir.to_str().unwrap(),
            "--page-size",
            page_size,
            "--writers",
            "2",
        ],
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_exit(&out, 0);
}

#[tokio::test]
async fn newest_version_wins_whatever_the_arrival_order() {
    let lines: Vec<String> = history().iter().map(export_line).collect();
    let mut orders = vec![lines.clone(), lines.iter().rev().cloned().collect()];
    for seed in 1..=3 {
        let mut l = lines.clone();
        fastrand::Rng::with_seed(seed).shuffle(&mut l);
        orders.push(l);
    }
    let mut reference = None;
    for order in orders {
        // Across pages (2 per page) and files, and all within one page.
        for (page_size, split) in [("2", order.len() / 2), ("100", order.len())] {
            let db = TestDb::new().await;
            let files = vec![order[..split].to_vec(), order[split..].to_vec()];
            backfill_export(&db, &files, page_size).await;
            assert_expected_state(&db).await;
            let dump = dump_logical(&db.client().await, "scansync").await;
            match &reference {
                None => reference = Some(dump),
                Some(r) => assert_eq!(&dump, r, "page size {page_size}"),
            }
        }
    }
}

#[tokio::test]
async fn older_versions_arriving_in_a_later_run_change_nothing() {
    let db = TestDb::new().await;
    let items = history();
    let newest: Vec<String> = ["m4", "s2", "r3", "d2", "f2", "a", "o1"]
        .iter()
        .map(|scan| export_line(items.iter().find(|i| i["scanId"] == Attr::S(scan.to_string())).unwrap()))
        .collect();
    backfill_export(&db, std::slice::from_ref(&newest), "3").await;
    let c = db.client().await;
    let before = column(&c, "select external_id || ' ' || c::text from scansync.content c order by 1").await;
    // Everything again, older versions included, late: only the missing facts may change
    // (dead-first's live values arrive; dead's live values arrive under its tombstone).
    let all: Vec<String> = items.iter().map(export_line).collect();
    backfill_export(&db, &[all], "3").await;
    assert_expected_state(&db).await;
    let after = column(&c, "select external_id || ' ' || c::text from scansync.content c order by 1").await;
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| b.split(' ').next().unwrap())
        .collect();
    assert_eq!(changed, ["dead", "dead-first"], "rows whose newest version was already there are untouched");
    let second: i64 = c
        .query_one("select rows_content from scansync.sync_runs order by id desc limit 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(second, 2, "the late run changed exactly the two rows that lacked live values");
}

#[tokio::test]
async fn a_rerun_copies_only_the_rows_newer_than_the_store() {
    let db = TestDb::new().await;
    let posts = ["p1", "p2", "p3", "p4", "p5"];
    let first: Vec<String> = posts
        .iter()
        .map(|p| export_line(&version(p, &format!("{p}-a"), "2026-01-10T10:00:00Z", "first", &["t"], "h0")))
        .collect();
    let mut second = first.clone();
    // p2 changes; p4 gets a tombstone; p5 arrives in an older version (stale).
    second[1] = export_line(&version("p2", "p2-b", "2026-01-11T10:00:00Z", "second", &["u"], "h0"));
    second[3] = export_line(&tomb("p4", "p4-b", "2026-01-11T10:00:00Z"));
    second[4] = export_line(&version("p5", "p5-0", "2026-01-09T10:00:00Z", "older", &[], "h0"));
    let run = |files: Vec<String>| {
        let db = &db;
        async move {
            let dir = write_export(&[files]);
            let out = scansync(
                db,
                &["backfill", "--from", "2026-01-09", "--to", "2026-01-13", "--source", "export"]
                    .into_iter()
                    .chain(["--export-dir", dir.to_str().unwrap(), "--page-size", "100", "--writers", "1"])
                    .collect::<Vec<_>>(),
            )
            .await;
            std::fs::remove_dir_all(&dir).unwrap();
            assert_exit(&out, 0);
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let current = |stdout: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("content rows already current: "))
            .map(|rest| rest.split(' ').next().unwrap().parse::<u64>().unwrap())
            .unwrap_or(0)
    };
    let out = run(first.clone()).await;
    assert_eq!(current(&out), 0, "a first load finds nothing current:\n{out}");
    let out = run(second).await;
    assert_eq!(current(&out), 3, "p1, p3 and p5 are already current, p2 and p4 are copied:\n{out}");
    let c = db.client().await;
    let rows = column(
        &c,
        "select external_id || ' ' || caption || ' ' || (deleted_at is not null)::text from scansync.content order by 1",
    )
    .await;
    assert_eq!(
        rows,
        ["p1 first false", "p2 second false", "p3 first false", "p4 first true", "p5 first false"]
    );
    let tags = column(
        &c,
        "select c.external_id || ' ' || t.name from scansync.content_tags ct
         join scansync.content c on c.id = ct.content_id join scansync.tags t on t.id = ct.tag_id order by 1",
    )
    .await;
    assert_eq!(tags, ["p1 t", "p2 u", "p3 t", "p4 t", "p5 t"], "the copied row's tag edges follow it");
    let out = run(first).await;
    assert_eq!(current(&out), 5, "the same records again: nothing is copied:\n{out}");
}

#[tokio::test]
async fn dynamodb_backfill_converges_to_the_same_state_as_an_export() {
    let (db, table) = (TestDb::new().await, Table::new().await);
    table.put(&history()).await;
    let out = scansync(
        &db,
        &[
            "backfill",
            "--from",
            "2026-01-09",
            "--to",
            "2026-01-13",
            "--source",
            "dynamodb",
            "--table",
            &table.name,
            "--page-size",
            "2",
            "--fetchers",
            "3",
        ],
    )
    .await;
    assert_exit(&out, 0);
    assert_expected_state(&db).await;
    // The same records from an export: the same tables.
    let from_export = TestDb::new().await;
    backfill_export(&from_export, &[history().iter().map(export_line).collect()], "2").await;
    assert_eq!(
        dump_logical(&db.client().await, "scansync").await,
        dump_logical(&from_export.client().await, "scansync").await
    );
    // A backfill never touches the incremental checkpoint.
    let c = db.client().await;
    let n: i64 = c.query_one("select count(*) from scansync.checkpoints", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
}

/// A writer of a migrated database and one prepared page of `items`.
async fn writer_and_page(
    db: &TestDb,
    items: Vec<Item>,
) -> (scansync::write::postgres::PgWriter, scansync::write::postgres::PgPage) {
    use scansync::parse::{parse_page, Filter, RawRecord};
    use scansync::write::postgres::PgSink;
    use scansync::write::Sink;

    let mut admin = db.client().await;
    scansync::schema::migrate(&mut admin, "scansync").await.unwrap();
    let sink = PgSink::new(&db.url, "scansync", None).unwrap();
    let page = sink.prepare(&parse_page(
        "2026-01-10",
        items.into_iter().map(RawRecord::Item).collect(),
        &Filter::default(),
    ));
    (sink.writer().await.unwrap(), page)
}

/// Commits `tx` once a statement like `query` (an `ilike` pattern) waits for a lock: the
/// other session's rows were in the way of the page's statement until then.
async fn commit_once_waited_on(db: &TestDb, tx: tokio_postgres::Transaction<'_>, query: &str) {
    let watch = db.client().await;
    loop {
        let waiting: i64 = watch
            .query_one(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and wait_event_type = 'Lock' and query ilike $1",
                &[&query],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tx.commit().await.unwrap();
}

/// A new content row is COPYed straight into `content` when the first phase found its key
/// absent. If another session inserts that key in between, the COPY fails on the unique
/// key: the page must then be merged instead, so the newest version wins and nothing of
/// the page is lost.
#[tokio::test]
async fn a_new_row_another_session_inserted_meanwhile_is_merged_not_lost() {
    use scansync::write::PageWriter;

    let db = TestDb::new().await;
    let items = vec![
        version("p1", "s1", "2026-01-10T00:00:01Z", "one", &["a"], "h0"),
        version("p2", "s2", "2026-01-10T00:00:02Z", "two, newer", &["a", "b"], "h0"),
        version("p3", "s3", "2026-01-10T00:00:03Z", "three", &[], "h0"),
    ];
    let (mut writer, page) = writer_and_page(&db, items).await;

    // Another session inserts an older version of p2, with an edge the page's version does
    // not have, and holds it uncommitted: the first phase finds p2 absent.
    let mut other = db.client().await;
    let tx = other.transaction().await.unwrap();
    tx.batch_execute(
        "insert into scansync.tags (name) values ('old');
         insert into scansync.content (platform, external_id, caption, source_updated_at, source_scan_id)
           values ('tiktok', 'p2', 'two, older', '2026-01-10T00:00:00Z', 's0');
         insert into scansync.content_tags
           select c.id, t.id from scansync.content c, scansync.tags t where c.external_id = 'p2' and t.name = 'old'",
    )
    .await
    .unwrap();
    // The page's COPY waits for the other session's row; then the row commits.
    let (written, ()) = tokio::join!(writer.write(&page), commit_once_waited_on(&db, tx, "copy content %"));
    let stats = written.expect("the page is merged after its COPY met the other session's row");
    assert_eq!(stats.content, 3, "three content rows written");

    let c = db.client().await;
    assert_eq!(
        column(
            &c,
            "select c.external_id || ': ' || c.caption || ' [' || coalesce(string_agg(t.name, ',' order by t.name), '') || ']'
             from scansync.content c left join scansync.content_tags ct on ct.content_id = c.id
             left join scansync.tags t on t.id = ct.tag_id group by c.external_id, c.caption order by 1"
        )
        .await,
        ["p1: one [a]", "p2: two, newer [a,b]", "p3: three []"],
        "the newest version of p2 won, with its own tags only"
    );
}

/// New content rows take their creator's and tags' ids from the entity inserts; a creator
/// and a tag another session inserted meanwhile (a newer creator version, so this page's
/// upsert writes and returns nothing) are looked up instead of left NULL or edgeless.
#[tokio::test]
async fn new_rows_reference_a_creator_and_tag_another_session_inserted_meanwhile() {
    use scansync::write::PageWriter;

    let db = TestDb::new().await;
    let items = vec![
        version("p1", "s1", "2026-01-10T00:00:01Z", "one", &["a"], "h0"),
        version("p2", "s2", "2026-01-10T00:00:02Z", "two", &["a", "b"], "h0"),
    ];
    let (mut writer, page) = writer_and_page(&db, items).await;

    // Another session inserts creator c0 in a newer version, and tag "a", and holds them
    // uncommitted: the first phase finds neither.
    let mut other = db.client().await;
    let tx = other.transaction().await.unwrap();
    tx.batch_execute(
        "insert into scansync.creators (platform, external_id, handle, source_updated_at, source_scan_id)
           values ('tiktok', 'c0', 'newer', '2026-01-11T00:00:00Z', 'z9');
         insert into scansync.tags (name) values ('a')",
    )
    .await
    .unwrap();
    // The page's creator upsert waits for the other session's row; then it commits.
    let (written, ()) =
        tokio::join!(writer.write(&page), commit_once_waited_on(&db, tx, "%insert into creators%"));
    let stats = written.expect("the page is written");
    assert_eq!(stats.creators, 0, "the store's creator is newer: the page writes none");

    let c = db.client().await;
    assert_eq!(
        column(
            &c,
            "select c.external_id || ': ' || coalesce(cr.handle, 'no creator') || ' ['
                    || coalesce(string_agg(t.name, ',' order by t.name), '') || ']'
             from scansync.content c left join scansync.creators cr on cr.id = c.creator_id
             left join scansync.content_tags ct on ct.content_id = c.id
             left join scansync.tags t on t.id = ct.tag_id group by c.external_id, cr.handle order by 1"
        )
        .await,
        ["p1: newer [a]", "p2: newer [a,b]"],
        "both rows reference the other session's creator and tag"
    );
}

/// Each content row's caption, its scan id and its tags, as `p1: v2 (s2) [a,b]`.
async fn rows_with_tags(db: &TestDb) -> Vec<String> {
    column(
        &db.client().await,
        "select c.external_id || ': ' || c.caption || ' (' || c.source_scan_id || ') ['
                || coalesce(string_agg(t.name, ',' order by t.name), '') || ']'
         from scansync.content c left join scansync.content_tags ct on ct.content_id = c.id
         left join scansync.tags t on t.id = ct.tag_id
         group by c.external_id, c.caption, c.source_scan_id order by 1",
    )
    .await
}

/// A store holding p1 (version s1, tag "old"), and a writer with a page of p1's newer
/// version s3 (tags "a" and "b").
async fn p1_held_and_a_newer_page(
    db: &TestDb,
) -> (scansync::write::postgres::PgWriter, scansync::write::postgres::PgPage) {
    use scansync::write::PageWriter;

    let (mut writer, first) =
        writer_and_page(db, vec![version("p1", "s1", "2026-01-10T00:00:01Z", "one", &["old"], "h0")]).await;
    writer.write(&first).await.expect("the first page");
    let (_, second) =
        writer_and_page(db, vec![version("p1", "s3", "2026-01-10T00:00:03Z", "three", &["a", "b"], "h0")])
            .await;
    (writer, second)
}

/// In `tx` (held open by the caller), moves p1 to version (`at`, `scan`) with one tag,
/// "theirs", in place of its edges.
async fn move_p1(tx: &tokio_postgres::Transaction<'_>, at: &str, scan: &str) {
    tx.execute(
        "update scansync.content set caption = 'theirs', source_updated_at = $1::text::timestamptz,
                source_scan_id = $2
         where external_id = 'p1'",
        &[&at, &scan],
    )
    .await
    .unwrap();
    tx.batch_execute(
        "insert into scansync.tags (name) values ('theirs');
         delete from scansync.content_tags where content_id = (select id from scansync.content where external_id = 'p1');
         insert into scansync.content_tags
           select c.id, t.id from scansync.content c, scansync.tags t where c.external_id = 'p1' and t.name = 'theirs'",
    )
    .await
    .unwrap();
}

/// A row the store holds is updated by the id the first phase found it under. When another
/// session moves it to a version newer than the page's meanwhile, the update waits for that
/// session's lock, then leaves the row, and its edges, to the newer version.
#[tokio::test]
async fn a_row_another_session_made_newer_meanwhile_keeps_that_version_and_its_edges() {
    use scansync::write::PageWriter;

    let db = TestDb::new().await;
    let (mut writer, page) = p1_held_and_a_newer_page(&db).await;
    // The page's first phase does not see the other session's change: it finds p1 older
    // than the page's version.
    let mut other = db.client().await;
    let tx = other.transaction().await.unwrap();
    move_p1(&tx, "2026-01-10T00:00:04Z", "s4").await;
    let (written, ()) = tokio::join!(writer.write(&page), commit_once_waited_on(&db, tx, "%content%"));
    let stats = written.expect("the page is written");
    assert_eq!((stats.content, stats.content_tags), (0, 0), "the page changed nothing");
    assert_eq!(rows_with_tags(&db).await, ["p1: theirs (s4) [theirs]"]);
}

/// As above, but the other session's version is older than the page's: once its lock is
/// released the page's update goes ahead, and its edges replace the ones the other session
/// committed while the update waited (each edge statement sees what committed before it).
#[tokio::test]
async fn a_row_another_session_changed_meanwhile_to_an_older_version_takes_the_pages_version_and_edges() {
    use scansync::write::PageWriter;

    let db = TestDb::new().await;
    let (mut writer, page) = p1_held_and_a_newer_page(&db).await;
    let mut other = db.client().await;
    let tx = other.transaction().await.unwrap();
    move_p1(&tx, "2026-01-10T00:00:02Z", "s2").await;
    let (written, ()) = tokio::join!(writer.write(&page), commit_once_waited_on(&db, tx, "%content%"));
    let stats = written.expect("the page is written");
    assert_eq!((stats.content, stats.content_tags), (1, 3), "p1 updated: one edge removed, two added");
    assert_eq!(rows_with_tags(&db).await, ["p1: three (s3) [a,b]"]);
}
