//! The incremental window against dynalite: every `updatedAt` form is found at the bound,
//! slices cover the key space exactly, the offset margin is the operator's, read
//! amplification is counted, and scan-id ties agree with Rust whatever the collation.

use crate::support::*;
use scansync::attr::{Attr, Item};
use scansync::time::Timestamp;

/// Whole seconds, so stamps can be written at the bound exactly.
fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp(t.0 / 1_000_000 * 1_000_000)
}

/// `t` written with a space separator and `+00:00` (Python's `str(datetime)`).
fn spaced(t: Timestamp) -> String {
    format!("{} {}+00:00", &t.to_iso()[..10], &t.to_iso()[11..26])
}

/// `t` written at a UTC offset of `minutes` (west when negative), `T` or space separated.
fn at_offset(t: Timestamp, minutes: i64, sep: char) -> String {
    let local = t.add_micros(minutes * 60_000_000).to_iso();
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{}{sep}{}{sign}{:02}:{:02}", &local[..10], &local[11..23], m / 60, m % 60)
}

/// A record filed under the UTC day of its instant (what writers do), whatever the stamp.
fn stamped(id: &str, instant: Timestamp, stamp: String) -> Item {
    with(
        record(id, &format!("scan-{id}"), &instant.to_iso(), "x"),
        &[("updatedAt", Attr::S(stamp)), ("datePartition", Attr::S(instant.day().to_string()))],
    )
}

/// Creates the schema and sets the incremental checkpoint.
async fn set_checkpoint(db: &TestDb, at: Timestamp) {
    assert_exit(&scansync(db, &["migrate"]).await, 0);
    db.client()
        .await
        .execute(
            "insert into scansync.checkpoints (name, value) values ('incremental', $1::text::timestamptz)",
            &[&at.to_pg()],
        )
        .await
        .unwrap();
}

fn sync_args<'a>(table: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["sync", "--source", "dynamodb", "--table", table, "--lookback", "0s"];
    v.extend_from_slice(extra);
    v
}

#[tokio::test]
async fn every_stamp_form_after_the_bound_is_synced_and_none_at_or_before_it_with_one_slice_or_many() {
    let table = Table::new().await;
    let c = whole_seconds(Timestamp::now().add_micros(-2 * 3_600_000_000));
    let ms = |n: i64| c.add_micros(n * 1000);
    let s = |n: i64| c.add_micros(n * 1_000_000);
    table
        .put(&[
            stamped("z-after", ms(1), ms(1).to_iso()),
            stamped("space-after", s(1), spaced(s(1))),
            stamped("space-z-after", s(2), spaced(s(2)).replace("+00:00", "Z")),
            stamped("west-after", s(1), at_offset(s(1), -300, 'T')),
            stamped("west-space-after", s(3), at_offset(s(3), -300, ' ')),
            stamped("west-12-after", s(4), at_offset(s(4), -720, 'T')),
            stamped("east-after", s(1), at_offset(s(1), 330, 'T')),
            stamped("plus0-after", s(5), at_offset(s(5), 0, 'T')),
            stamped("z-at", c, c.to_iso()),
            stamped("space-at", c, spaced(c)),
            stamped("west-at", c, at_offset(c, -300, 'T')),
            stamped("z-before", ms(-1), ms(-1).to_iso()),
            stamped("space-before", s(-1), spaced(s(-1))),
            stamped("west-before", s(-1), at_offset(s(-1), -300, ' ')),
            // An epoch number sorts below every date: the index path cannot find it.
            stamped("epoch-after", s(10), (s(10).0 / 1_000_000).to_string()),
        ])
        .await;
    let expected = [
        "east-after",
        "plus0-after",
        "space-after",
        "space-z-after",
        "west-12-after",
        "west-after",
        "west-space-after",
        "z-after",
    ];
    let mut dumps = Vec::new();
    for slices in ["1", "2", "5"] {
        let db = TestDb::new().await;
        set_checkpoint(&db, c).await;
        let out = scansync(
            &db,
            &sync_args(&table.name, &["--slices", slices, "--fetchers", "3", "--page-size", "2"]),
        )
        .await;
        assert_exit(&out, 0);
        let cl = db.client().await;
        assert_eq!(
            column(&cl, "select external_id from scansync.content order by 1").await,
            expected,
            "{slices} slices"
        );
        dumps.push(dump_logical(&cl, "scansync").await);
        let forms: String =
            cl.query_one("select stamp_forms::text from scansync.sync_runs", &[]).await.unwrap().get(0);
        assert!(forms.contains("\"space +00:00\"") && forms.contains("\"-05:00\""), "{forms}");
    }
    assert_eq!(dumps[0], dumps[1], "1 slice vs 2");
    assert_eq!(dumps[0], dumps[2], "1 slice vs 5");
}

#[tokio::test]
async fn a_west_offset_beyond_the_margin_is_warned_about_in_the_summary_the_ledger_and_health() {
    let (db, table) = (TestDb::new().await, Table::new().await);
    let now = Timestamp::now();
    let c = whole_seconds(now.add_micros(-3 * 3_600_000_000));
    table
        .put(&[
            // Inside a 1 h margin: found.
            stamped("west-30m", c.add_micros(1_000_000), at_offset(c.add_micros(1_000_000), -30, 'T')),
            // Five hours west, stamped ahead of the clock: read (its string lies above the
            // margin), and proof that writers use an offset the margin does not cover.
            // In today's partition: three hours ahead may be tomorrow in UTC (after 21:00),
            // a partition the run does not read yet, and the test failed every evening.
            with(
                stamped(
                    "west-5h-ahead",
                    now.add_micros(3 * 3_600_000_000),
                    at_offset(now.add_micros(3 * 3_600_000_000), -300, 'T'),
                ),
                &[("datePartition", Attr::S(now.day().to_string()))],
            ),
        ])
        .await;
    set_checkpoint(&db, c).await;
    let out = scansync(&db, &sync_args(&table.name, &["--offset-margin", "1h"])).await;
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("WARNING") && stdout.contains("--offset-margin to at least 5h"), "{stdout}");
    let cl = db.client().await;
    assert_eq!(
        column(&cl, "select external_id from scansync.content order by 1").await,
        ["west-30m", "west-5h-ahead"]
    );
    let r = cl
        .query_one("select beyond_margin, offset_margin_seconds from scansync.sync_runs", &[])
        .await
        .unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, Option<i32>>(1)), (1, Some(3600)));
    let health = scansync(&db, &["health", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(json["stamp_warnings"]["beyond_offset_margin_24h"], 1, "{json}");
}

#[tokio::test]
async fn margin_0_reads_only_what_changed_and_the_default_margin_says_what_it_costs() {
    let table = Table::new().await;
    let now = Timestamp::now();
    let c = whole_seconds(now.add_micros(-3_600_000_000));
    let mut items = Vec::new();
    // 40 records changed in the last hour, and 60 older ones in the 12 h before it (all UTC).
    for n in 0..40 {
        let t = c.add_micros(1_000_000 + n * 60_000_000);
        items.push(stamped(&format!("new-{n}"), t, t.to_iso()));
    }
    for n in 0..60 {
        let t = c.add_micros(-(n + 1) * 10 * 60_000_000);
        items.push(stamped(&format!("old-{n}"), t, t.to_iso()));
    }
    table.put(&items).await;

    let db = TestDb::new().await;
    set_checkpoint(&db, c).await;
    assert_exit(&scansync(&db, &sync_args(&table.name, &["--offset-margin", "0s"])).await, 0);
    let cl = db.client().await;
    let r = cl
        .query_one("select index_items, records_read - records_skipped from scansync.sync_runs", &[])
        .await
        .unwrap();
    let (items_read, in_window) = (r.get::<_, Option<i64>>(0).unwrap(), r.get::<_, i64>(1));
    assert_eq!(in_window, 40);
    assert!(items_read as f64 / in_window as f64 <= 1.3, "amplification {items_read}/{in_window}");

    let db = TestDb::new().await;
    set_checkpoint(&db, c).await;
    let out = scansync(&db, &sync_args(&table.name, &[])).await;
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("--offset-margin 0 (every writer stamps UTC) would read only what changed"),
        "{stdout}"
    );
    let cl = db.client().await;
    let r = cl
        .query_one("select index_items, records_read - records_skipped from scansync.sync_runs", &[])
        .await
        .unwrap();
    // 12 h of margin re-read the older records of the same partitions.
    assert!(r.get::<_, Option<i64>>(0).unwrap() > 40, "{:?}", r.get::<_, Option<i64>>(0));
    assert_eq!(r.get::<_, i64>(1), 40);
}

#[tokio::test]
async fn the_index_returns_both_items_that_share_a_partition_and_a_stamp() {
    // dynalite keys GSI entries by 24 bits of the table key unless scripts/test patched it;
    // these two scan ids collide there (the later put would hide the earlier).
    let table = Table::new().await;
    let stamp = "2026-11-26T10:00:00.000Z";
    table
        .put(&[
            with(record("a", "scan-000000302685", stamp, "x"), &[]),
            with(record("b", "scan-000000302700", stamp, "x"), &[]),
        ])
        .await;
    let out = table
        .client
        .query()
        .table_name(&table.name)
        .index_name(INDEX)
        .key_condition_expression("datePartition = :d")
        .expression_attribute_values(":d", aws_sdk_dynamodb::types::AttributeValue::S("2026-11-26".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.items.unwrap_or_default().len(), 2);
}

#[tokio::test]
async fn scan_id_ties_converge_on_an_icu_database_whatever_the_page_split() {
    // In ICU's order 'scan-a' < 'scan-B'; byte by byte (Rust's fold, the contract) 'scan-B' <
    // 'scan-a'. Two versions sharing an instant must give one winner in one page or two.
    let at = hours_ago(1.0);
    let items: Vec<Item> = ["scan-a", "scan-B", "scan-c", "scan-C"]
        .iter()
        .map(|scan| record("post", scan, &at, &format!("from {scan}")))
        .collect();
    let mut dumps = Vec::new();
    for (order, page) in [([0, 1, 2, 3], "10"), ([0, 1, 2, 3], "1"), ([3, 2, 1, 0], "1"), ([1, 3, 0, 2], "2")]
    {
        let db = TestDb::new_icu().await;
        let lines: Vec<String> = order.iter().map(|i| export_line(&items[*i])).collect();
        let dir = write_export(&[lines]);
        let out = scansync(
            &db,
            &[
                "sync",
                "--source",
                "export",
                "--export-dir",
                dir.to_str().unwrap(),
                "--page-size",
                page,
                "--writers",
                "1",
            ],
        )
        .await;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_exit(&out, 0);
        let cl = db.client().await;
        let caption: String = cl.query_one("select caption from scansync.content", &[]).await.unwrap().get(0);
        assert_eq!(caption, "from scan-c", "the byte-greatest scan id wins ({order:?}, pages of {page})");
        dumps.push(dump_logical(&cl, "scansync").await);
    }
    assert!(dumps.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn epoch_stamps_are_synced_by_an_export_and_counted_and_warned_about() {
    let db = TestDb::new().await;
    let t = Timestamp::now().add_micros(-3_600_000_000);
    let lines = vec![
        export_line(&stamped("epoch", t, (t.0 / 1_000_000).to_string())),
        export_line(&stamped("iso", t, t.to_iso())),
    ];
    let dir = write_export(&[lines]);
    let out = scansync(&db, &["sync", "--source", "export", "--export-dir", dir.to_str().unwrap()]).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 records have an updatedAt written as an epoch number"), "{stdout}");
    let cl = db.client().await;
    assert_eq!(column(&cl, "select external_id from scansync.content order by 1").await, ["epoch", "iso"]);
    let n: i64 = cl.query_one("select epoch_stamps from scansync.sync_runs", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    let health = scansync(&db, &["health", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(json["stamp_warnings"]["epoch_stamps_24h"], 1, "{json}");
}

#[tokio::test]
async fn items_exactly_at_a_slice_cut_are_read_once_in_every_form() {
    // A backfill of 2026-01-10 in 4 slices cuts at 06:00:00, 12:00:00 and 18:00:00 (zone-less
    // prefixes): BETWEEN is inclusive at both ends, so a key equal to a cut would be read
    // twice without the trim, and a stamp just around it could fall between two slices.
    let table = Table::new().await;
    let day = "2026-01-10";
    let stamps = [
        "2026-01-10T06:00:00",
        "2026-01-10T06:00:00Z",
        "2026-01-10T06:00:00.000Z",
        "2026-01-10 06:00:00+00:00",
        "2026-01-10T05:59:59.999999Z",
        "2026-01-10T06:00:00.000001Z",
        "2026-01-10T12:00:00",
        "2026-01-10T12:00:00-05:00",
        "2026-01-10 12:00:00Z",
        "2026-01-10T18:00:00+00:00",
        "2026-01-10T17:59:59Z",
        "2026-01-09T23:00:00-05:00",
        "2026-01-10T00:00:00Z",
        "2026-01-10T23:59:59.999Z",
    ];
    let items: Vec<Item> = stamps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            with(
                record(&format!("c{i}"), &format!("s{i}"), "2026-01-10T10:00:00Z", "x"),
                &[("updatedAt", Attr::S(s.to_string())), ("datePartition", Attr::S(day.into()))],
            )
        })
        .collect();
    table.put(&items).await;
    let db = TestDb::new().await;
    let out = scansync(
        &db,
        &[
            "backfill",
            "--from",
            day,
            "--to",
            day,
            "--table",
            &table.name,
            "--slices",
            "4",
            "--page-size",
            "2",
        ],
    )
    .await;
    assert_exit(&out, 0);
    let c = db.client().await;
    let n: i64 = c.query_one("select count(*) from scansync.content", &[]).await.unwrap().get(0);
    assert_eq!(n as usize, stamps.len(), "every item landed");
    let r = c.query_one("select index_items, records_read from scansync.sync_runs", &[]).await.unwrap();
    // The key equal to the middle cut (12:00:00) is returned by two queries (BETWEEN …
    // 12:00:00 is inclusive, the next slice starts there); the trim keeps one of them.
    assert_eq!(r.get::<_, Option<i64>>(0), Some(stamps.len() as i64 + 1), "items the index returned");
    assert_eq!(r.get::<_, i64>(1), stamps.len() as i64, "records read once each");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_day_backlog_catches_up_in_bounded_runs_to_the_tables_of_one_big_run() {
    use loadgen::{Generator, Mix, Shape, Stamps};
    let table = Table::new().await;
    let mut g = Generator::new(
        41,
        Mix { stamps: Stamps::Mixed, update_rate: 0.3, tombstone_rate: 0.05, ..Mix::default() },
        Shape { creators: 50, communities: 10, tags: 30, zipf_s: 1.05 },
    );
    let now = Timestamp::now();
    let (n, span) = (1200i64, 3 * 86_400_000_000i64);
    let items: Vec<_> =
        (0..n).map(|i| g.next_record(now.add_micros(-span + i * span / n - 60_000_000)).item).collect();
    table.put(&items).await;
    let args = ["sync", "--table", &table.name, "--first-run-window", "4d"];
    let big = TestDb::new().await;
    assert_exit(&scansync(&big, &args).await, 0);
    let want = dump_logical(&big.client().await, "scansync").await;

    let db = TestDb::new().await;
    let mut bounded = 0;
    for run in 1.. {
        assert!(run <= 20, "no catch-up after 20 runs");
        let out = scansync(&db, &[&args[..], &["--max-window", "12h"]].concat()).await;
        assert_exit(&out, 0);
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !text.contains("--max-window bounded this run") {
            break;
        }
        bounded += 1;
    }
    assert!(bounded >= 6, "a 4-day window in steps of 12h: {bounded} bounded runs");
    let c = db.client().await;
    assert_eq!(dump_logical(&c, "scansync").await, want);
    // Each bounded run moved the checkpoint to its upper bound: the bounds climb.
    let bounds = column(&c, "select coalesce(window_until::text, 'open') from scansync.sync_runs where status = 'succeeded' order by id").await;
    assert_eq!(bounds.len(), bounded + 1);
    assert_eq!(bounds.last().unwrap(), "open");
    let mut sorted = bounds[..bounded].to_vec();
    sorted.sort();
    assert_eq!(sorted, bounds[..bounded].to_vec());
}
