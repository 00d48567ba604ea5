//! The same dirty records through the in-memory twin and through PostgreSQL, in different
//! orders and page splits: every table must come out the same. The twin restates the merge
//! rules from their definitions and shares no code with the PostgreSQL path, so a
//! difference is a bug in one of them.

use crate::support::*;
use loadgen::{Generator, Mix, Shape, Stamps};
use scansync::attr::Item;
use scansync::config::Tuning;
use scansync::pipeline::Hooks;
use scansync::run::full;
use scansync::source::memory::MemorySource;
use scansync::time::{Day, Timestamp};
use scansync::write::memory::MemorySink;
use scansync::write::postgres::PgSink;
use std::sync::Arc;

fn records(n: u64) -> (Vec<Item>, Day, Day) {
    let mut g = Generator::new(
        11,
        Mix { stamps: Stamps::Mixed, update_rate: 0.35, tombstone_rate: 0.1, ..Mix::default() },
        Shape { creators: 60, communities: 20, tags: 40, zipf_s: 1.05 },
    );
    let start = Timestamp::parse("2026-01-10T00:00:00Z").unwrap();
    let step = 3 * 86_400_000_000 / n as i64;
    let items: Vec<Item> = (0..n).map(|i| g.next_record(start.add_micros(i as i64 * step)).item).collect();
    (items, start.day().plus(-1), start.day().plus(3))
}

fn opt(s: &Option<String>) -> Option<&str> {
    s.as_deref()
}

/// Counts rows in one relation and not the other (both ways), and shows a few.
async fn differ(c: &tokio_postgres::Client, twin: &str, pg: &str) -> i64 {
    let sql = format!("(table {twin} except all {pg}) union all ({pg} except all table {twin})");
    let rows = c.query(&format!("select x::text from ({sql}) x limit 5"), &[]).await.unwrap();
    for r in &rows {
        eprintln!("  differs: {}", r.get::<_, String>(0));
    }
    c.query_one(&format!("select count(*) from ({sql}) x"), &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn the_twin_and_postgres_agree_on_every_table_for_the_same_dirty_records() {
    let (items, from, to) = records(3000);
    let twin = Arc::new(MemorySink::new());
    let mut src = MemorySource::new(items.clone(), 37);
    src.slices = 3;
    let out = full(Arc::new(src), twin.clone(), Some((from, to)), Tuning::default(), Hooks::default()).await;
    out.result.unwrap();

    let t = twin.snapshot();
    assert!(
        t.content.len() > 1000 && !t.creators.is_empty() && !t.communities.is_empty() && !t.edges.is_empty()
    );
    assert!(
        t.content.values().any(|c| c.deleted.is_some()) && !t.quarantine.is_empty(),
        "the records cover tombstones and rejects"
    );
    // The writer as a sync runs it (asking which creators and communities are newer first),
    // and as a bulk load runs it (upserting them without asking): the same tables.
    for bulk in [false, true] {
        let db = TestDb::new().await;
        let mut admin = db.client().await;
        scansync::schema::migrate(&mut admin, "scansync").await.unwrap();
        let mut reversed = items.clone();
        reversed.reverse();
        let src = MemorySource::new(reversed, 53);
        let sink = Arc::new(PgSink::new(&db.url, "scansync", None).unwrap().bulk(bulk));
        let out = full(
            Arc::new(src),
            sink,
            Some((from, to)),
            Tuning { writers: 2, ..Tuning::default() },
            Hooks::default(),
        )
        .await;
        out.result.unwrap();
        assert_eq!(agree(&admin, &t).await, 0, "the twin and PostgreSQL disagree (rows above; bulk: {bulk})");
    }
}

/// Loads the twin's tables next to the store's and counts the rows that differ.
async fn agree(admin: &tokio_postgres::Client, t: &scansync::write::memory::MemDb) -> i64 {
    admin
        .batch_execute(
            r#"create temp table twin_content (platform text, external_id text, url text, caption text, creator text,
                 community text, views numeric, likes numeric, comments numeric, shares numeric, posted_at timestamptz,
                 source_updated_at timestamptz, source_scan_id text collate "C", metadata jsonb, extra jsonb,
                 deleted_at timestamptz, deleted_scan_id text collate "C");
               create temp table twin_creators (platform text, external_id text, handle text, display_name text,
                 follower_count numeric, source_updated_at timestamptz, source_scan_id text collate "C", deleted_at timestamptz);
               create temp table twin_communities (platform text, external_id text, name text,
                 source_updated_at timestamptz, source_scan_id text collate "C");
               create temp table twin_tags (name text);
               create temp table twin_edges (platform text, external_id text, tag text);
               create temp table twin_quarantine (reason text, raw text);"#,
        )
        .await
        .unwrap();
    let ts = |t: Option<Timestamp>| t.map(|t| t.to_pg());
    let scan = |v: &[u8]| String::from_utf8(v.to_vec()).unwrap();
    for ((platform, id), row) in &t.content {
        let l = row.live.as_ref();
        let s = |i: usize| l.and_then(|l| l.stats[i].clone());
        admin
            .execute(
                "insert into twin_content values ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8::text::numeric,
                   $9::text::numeric, $10::text::numeric, $11::text::timestamptz, $12::text::timestamptz, $13,
                   $14::text::jsonb, $15::text::jsonb, $16::text::timestamptz, $17)",
                &[
                    platform,
                    id,
                    &l.and_then(|l| opt(&l.url)),
                    &l.and_then(|l| opt(&l.caption)),
                    &l.and_then(|l| l.creator.as_ref().map(|c| c.external_id.as_str())),
                    &l.and_then(|l| l.community.as_ref().map(|c| c.external_id.as_str())),
                    &s(0),
                    &s(1),
                    &s(2),
                    &s(3),
                    &ts(l.and_then(|l| l.posted_at)),
                    &ts(l.map(|l| l.updated_at)),
                    &l.map(|l| l.scan_id.as_str()),
                    &l.and_then(|l| opt(&l.metadata)),
                    &l.and_then(|l| opt(&l.extra)),
                    &ts(row.deleted.as_ref().map(|d| d.0)),
                    &row.deleted.as_ref().map(|d| scan(&d.1)),
                ],
            )
            .await
            .unwrap();
    }
    for ((platform, id), c) in &t.creators {
        admin
            .execute(
                "insert into twin_creators values ($1, $2, $3, $4, $5::text::numeric, $6::text::timestamptz, $7, $8::text::timestamptz)",
                &[platform, id, &c.handle, &c.display_name, &c.followers, &c.version.0.to_pg(), &scan(&c.version.1), &ts(c.deleted_at)],
            )
            .await
            .unwrap();
    }
    for ((platform, id), c) in &t.communities {
        admin
            .execute(
                "insert into twin_communities values ($1, $2, $3, $4::text::timestamptz, $5)",
                &[platform, id, &c.name, &c.version.0.to_pg(), &scan(&c.version.1)],
            )
            .await
            .unwrap();
    }
    for name in &t.tags {
        admin.execute("insert into twin_tags values ($1)", &[name]).await.unwrap();
    }
    for (platform, id, tag) in &t.edges {
        admin.execute("insert into twin_edges values ($1, $2, $3)", &[platform, id, tag]).await.unwrap();
    }
    for (reason, raw) in &t.quarantine {
        admin
            .execute("insert into twin_quarantine values ($1, $2)", &[reason, &raw.replace('\0', "\\u0000")])
            .await
            .unwrap();
    }
    let pairs = [
        (
            "twin_content",
            "select c.platform, c.external_id, c.url, c.caption, cr.external_id, cm.external_id, c.view_count, c.like_count,
                    c.comment_count, c.share_count, c.posted_at, c.source_updated_at, c.source_scan_id, c.metadata, c.extra,
                    c.deleted_at, c.deleted_scan_id
             from scansync.content c left join scansync.creators cr on cr.id = c.creator_id
             left join scansync.communities cm on cm.id = c.community_id",
        ),
        (
            "twin_creators",
            "select platform, external_id, handle, display_name, follower_count, source_updated_at, source_scan_id, deleted_at from scansync.creators",
        ),
        ("twin_communities", "select platform, external_id, name, source_updated_at, source_scan_id from scansync.communities"),
        ("twin_tags", "select name from scansync.tags"),
        (
            "twin_edges",
            "select c.platform, c.external_id, t.name from scansync.content_tags ct
             join scansync.content c on c.id = ct.content_id join scansync.tags t on t.id = ct.tag_id",
        ),
        ("twin_quarantine", "select reason, raw from scansync.quarantine"),
    ];
    let mut total = 0;
    for (twin_table, pg) in pairs {
        let n = differ(admin, twin_table, pg).await;
        if n > 0 {
            eprintln!("{twin_table}: {n} rows differ");
        }
        total += n;
    }
    total
}
