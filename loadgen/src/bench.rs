//! The side-by-side benchmark, all in one run on one database:
//! (a) raw `COPY` of the same records into an unindexed table: the ceiling;
//! (b) a row-by-row `INSERT … ON CONFLICT` writer: the floor;
//! (c) the real `scansync` binary, end to end from an export: first load, then a re-run
//!     with 10 % of the records updated;
//! (d) the model ceiling: the final rows of (c)'s first load COPYed into the same indexed
//!     schema, with its foreign keys and without them. No engine that lands this model can
//!     beat it: scansync's ratio to it is the merge engine's own overhead.
//! (e) the re-run's export once more (a replay: the store already holds every record), and
//!     `scansync verify` of that export against the store: both read and compare everything,
//!     one to write nothing, the other to prove nothing needs writing.
//! Every figure is also given as a ratio to (a), which holds whatever the machine's speed.
//! Every path starts on a server at rest ([`settle`]).

use crate::export::{write_export, ExportSpec, ExportStats};
use loadgen::Mix;
use scansync_parse::export::decode_export_line;
use scansync_parse::{parse_item, Drift, RawRecord, Record, Repairs};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

mod peers;

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// Records in the export.
    pub records: u64,
    /// Records for the row-by-row writer (it is slow; its rate does not depend on size).
    pub row_by_row_records: u64,
    /// The database, on the ceiling's plaintext transport (the flag's parser, [`plaintext`],
    /// made it so: every tool is given this URL).
    pub database_url: String,
    /// The scansync binary.
    pub scansync: PathBuf,
    /// Where exports are written.
    pub work_dir: PathBuf,
    /// Seed.
    pub seed: u64,
    /// scansync tuning passed through.
    pub writers: u32,
    /// Page size passed to scansync.
    pub page_size: u32,
    /// Also run the peers (dlt, sling) on the same export, in a virtualenv made here.
    pub peers: Option<PathBuf>,
}

/// One measured path.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Name.
    pub name: &'static str,
    /// Records (rows) landed.
    pub rows: u64,
    /// Wall time.
    pub secs: f64,
    /// Peak RSS of the process measured, bytes (scansync runs only).
    pub peak_rss: Option<u64>,
    /// Why the path failed (a peer that failed is reported, not dropped).
    pub error: Option<String>,
}

/// The figures' names, to find them by.
pub mod names {
    /// (a)
    pub const COPY: &str = "raw COPY (ceiling)";
    /// (b)
    pub const ROWS: &str = "row-by-row INSERT … ON CONFLICT (floor)";
    /// (c)
    pub const FIRST: &str = "scansync first load";
    /// (c)
    pub const RERUN: &str = "scansync re-run, 10 % updated";
    /// (d)
    pub const MODEL: &str = "model ceiling (final rows COPYed, with FKs)";
    /// (d)
    pub const MODEL_NO_FK: &str = "model ceiling without FKs";
    /// (d)
    pub const EMPTY: &str = "empty-store limit (no index while loading, all built after)";
    /// (e)
    pub const REPLAY: &str = "scansync replay (store holds every record)";
    /// (e)
    pub const VERIFY: &str = "scansync verify (store holds every record)";
    /// (f)
    pub const DLT: &str = "dlt 1.31.0 merge on the key (one table + tags)";
    /// (f)
    pub const SLING: &str = "sling 1.4.11 incremental merge on the key";
}

/// The figure named `name`.
pub fn get<'a>(figures: &'a [Figure], name: &str) -> &'a Figure {
    figures.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no figure {name:?}"))
}

impl Figure {
    /// Rows per second.
    pub fn rate(&self) -> f64 {
        self.rows as f64 / self.secs.max(1e-9)
    }
}

/// `url` for every tool the benchmark runs (scansync, the peers), on the transport of its
/// own connections, which measure the ceiling: plaintext. A URL that names no `sslmode`
/// gets `sslmode=disable`: libpq's default (`prefer`, scansync's too) would encrypt every
/// tool's connections but the ceiling's, on a server with TLS on (measured here: TLS cost
/// scansync's client about 5 % of its CPU). A URL that asks for TLS is refused. Both of
/// libpq's forms are taken: a URL (`postgres://…?sslmode=…`) and `key=value` words.
pub fn plaintext(url: &str) -> Result<String, String> {
    let is_url = url.contains("://");
    let params = if is_url { url.split_once('?').map_or("", |(_, q)| q) } else { url };
    let sep = |c: char| if is_url { c == '&' } else { c.is_whitespace() };
    match params.split(sep).find_map(|kv| kv.strip_prefix("sslmode=")) {
        None if !is_url => Ok(format!("{url} sslmode=disable")),
        None if params.is_empty() => Ok(format!("{url}?sslmode=disable")),
        None => Ok(format!("{url}&sslmode=disable")),
        Some("disable") => Ok(url.to_owned()),
        Some(mode) => Err(format!(
            "--database-url asks for sslmode={mode}, but the benchmark's ceiling (raw COPY) connects without TLS: \
             give a URL with sslmode=disable (or none) so that every path is measured on the same transport"
        )),
    }
}

async fn connect(url: &str) -> Result<Client, String> {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(conn);
    Ok(c)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Brings the server to rest before a measured path, so that no path pays for the writes of
/// the one before it: no autovacuum worker busy in this database (waited for, up to two
/// minutes), the benchmark's own tables vacuumed and analyzed (what autovacuum would do to
/// them next; not an empty one: a freshly made table has never been analyzed, and statistics
/// saying it is empty made the row-by-row floor's plans seq-scan as it grew), and every dirty
/// buffer written by a checkpoint. A store at rest is what an hourly run meets; without this
/// the re-run followed the model ceilings' three copies of the store and paid for their
/// checkpoint and vacuums (measured at 1M: 41.8k records/s in the benchmark, 53.8k
/// standalone on the same store).
pub(crate) async fn settle(c: &Client) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let busy: i64 = c
            .query_one(
                "select count(*) from pg_stat_activity
                 where backend_type = 'autovacuum worker' and datname = current_database()",
                &[],
            )
            .await
            .map_err(err)?
            .get(0);
        if busy == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let tables: Vec<String> = c
        .query(
            "select format('%I.%I', schemaname, tablename) from pg_tables
             where schemaname like 'bench\\_%'
               and pg_relation_size(format('%I.%I', schemaname, tablename)::regclass) > 0",
            &[],
        )
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !tables.is_empty() {
        c.batch_execute(&format!("vacuum (analyze) {}", tables.join(", "))).await.map_err(err)?;
    }
    c.batch_execute("checkpoint")
        .await
        .map_err(|e| format!("checkpoint (the benchmark's user needs pg_checkpoint): {e}"))
}

/// Streams the records of an export's data files, parsed by scansync's own parser.
fn for_each_record(
    dir: &Path,
    limit: u64,
    mut f: impl FnMut(Record) -> Result<(), String>,
) -> Result<(), String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join("data"))
        .map_err(err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    paths.sort();
    let mut n = 0;
    for p in paths {
        let r = BufReader::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(&p).map_err(err)?));
        for line in r.split(b'\n') {
            if n >= limit {
                return Ok(());
            }
            if let RawRecord::Item(item) = decode_export_line(line.map_err(err)?) {
                if let Ok(rec) = parse_item(&item, "", &mut Repairs::default(), &mut Drift::default()) {
                    f(rec)?;
                    n += 1;
                }
            }
        }
    }
    Ok(())
}

fn csv(out: &mut String, v: Option<&str>) {
    if let Some(v) = v {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    }
    out.push(',');
}

/// (a) Raw COPY: the records as flat rows into an unindexed table. The CSV is encoded to
/// a file before the clock starts, so only PostgreSQL's landing of rows is timed, and
/// memory stays flat at any size.
async fn raw_copy(c: &Client, export: &Path, work: &Path) -> Result<Figure, String> {
    use futures_util::SinkExt;
    use std::io::{Read, Write};
    c.batch_execute(
        "drop schema if exists bench_copy cascade; create schema bench_copy;
         create table bench_copy.raw (platform text, external_id text, url text, caption text,
             creator text, handle text, community text, views numeric, likes numeric, comments numeric,
             shares numeric, posted_at timestamptz, updated_at timestamptz, scan_id text, metadata jsonb, tags text)",
    )
    .await
    .map_err(err)?;
    let csv_path = work.join("raw.csv");
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&csv_path).map_err(err)?);
    let mut buf = String::with_capacity(4096);
    for_each_record(export, u64::MAX, |r| {
        buf.clear();
        csv(&mut buf, Some(&r.platform));
        csv(&mut buf, Some(&r.external_id));
        csv(&mut buf, r.url.as_deref());
        csv(&mut buf, r.caption.as_deref());
        csv(&mut buf, r.creator.as_ref().map(|c| c.external_id.as_str()));
        csv(&mut buf, r.creator.as_ref().and_then(|c| c.handle.as_deref()));
        csv(&mut buf, r.community.as_ref().map(|c| c.external_id.as_str()));
        for s in &r.stats {
            csv(&mut buf, s.as_deref());
        }
        csv(&mut buf, r.posted_at.map(|t| t.to_pg()).as_deref());
        csv(&mut buf, Some(&r.updated_at.to_pg()));
        csv(&mut buf, Some(&r.scan_id));
        csv(&mut buf, r.metadata.as_deref());
        buf.push('"');
        buf.push_str(&r.tags.join(",").replace('"', "\"\""));
        buf.push_str("\"\n");
        file.write_all(buf.as_bytes()).map_err(err)
    })?;
    file.flush().map_err(err)?;
    drop(file);
    let mut input = std::fs::File::open(&csv_path).map_err(err)?;
    settle(c).await?;
    let t = Instant::now();
    let sink = c
        .copy_in::<_, bytes::Bytes>("copy bench_copy.raw from stdin with (format csv)")
        .await
        .map_err(err)?;
    futures_util::pin_mut!(sink);
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut chunk).map_err(err)?;
        if n == 0 {
            break;
        }
        sink.send(bytes::Bytes::copy_from_slice(&chunk[..n])).await.map_err(err)?;
    }
    let rows = sink.finish().await.map_err(err)?;
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&csv_path);
    Ok(Figure { name: names::COPY, rows, secs, peak_rss: None, error: None })
}

/// (b) Row-by-row: one upsert per creator, community, tag, content and edge, a
/// transaction per 1000 records, into the canonical tables (made by `scansync migrate`).
async fn row_by_row(c: &mut Client, records: &[Record]) -> Result<Figure, String> {
    let creator = c
        .prepare(
            "insert into bench_rows.creators (platform, external_id, handle, display_name, follower_count, source_updated_at, source_scan_id)
             values ($1, $2, $3, $4, $5::text::numeric, $6::text::timestamptz, $7)
             on conflict (platform, external_id) do update set handle = excluded.handle, display_name = excluded.display_name,
                 follower_count = excluded.follower_count, source_updated_at = excluded.source_updated_at,
                 source_scan_id = excluded.source_scan_id
             returning id",
        )
        .await
        .map_err(err)?;
    let community = c
        .prepare(
            "insert into bench_rows.communities (platform, external_id, name, source_updated_at, source_scan_id)
             values ($1, $2, $3, $4::text::timestamptz, $5)
             on conflict (platform, external_id) do update set name = excluded.name, source_updated_at = excluded.source_updated_at
             returning id",
        )
        .await
        .map_err(err)?;
    let tag = c
        .prepare("insert into bench_rows.tags (name) values ($1) on conflict (name) do update set name = excluded.name returning id")
        .await
        .map_err(err)?;
    let content = c
        .prepare(
            "insert into bench_rows.content (platform, external_id, url, caption, creator_id, community_id, view_count, like_count,
                 comment_count, share_count, posted_at, source_updated_at, source_scan_id, metadata)
             values ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8::text::numeric, $9::text::numeric, $10::text::numeric,
                     $11::text::timestamptz, $12::text::timestamptz, $13, $14::text::jsonb)
             on conflict (platform, external_id) do update set url = excluded.url, caption = excluded.caption,
                 creator_id = excluded.creator_id, community_id = excluded.community_id, view_count = excluded.view_count,
                 like_count = excluded.like_count, comment_count = excluded.comment_count, share_count = excluded.share_count,
                 posted_at = excluded.posted_at, source_updated_at = excluded.source_updated_at,
                 source_scan_id = excluded.source_scan_id, metadata = excluded.metadata
             where bench_rows.content.source_updated_at < excluded.source_updated_at
             returning id",
        )
        .await
        .map_err(err)?;
    let clear = c.prepare("delete from bench_rows.content_tags where content_id = $1").await.map_err(err)?;
    let edge = c
        .prepare(
            "insert into bench_rows.content_tags (content_id, tag_id) values ($1, $2) on conflict do nothing",
        )
        .await
        .map_err(err)?;
    let t = Instant::now();
    for chunk in records.chunks(1000) {
        let tx = c.transaction().await.map_err(err)?;
        for r in chunk {
            let at = r.updated_at.to_pg();
            let creator_id: Option<i64> = match &r.creator {
                Some(cr) => Some(
                    tx.query_one(
                        &creator,
                        &[
                            &r.platform,
                            &cr.external_id,
                            &cr.handle,
                            &cr.display_name,
                            &cr.followers,
                            &at,
                            &r.scan_id,
                        ],
                    )
                    .await
                    .map_err(err)?
                    .get(0),
                ),
                None => None,
            };
            let community_id: Option<i64> = match &r.community {
                Some(cm) => Some(
                    tx.query_one(&community, &[&r.platform, &cm.external_id, &cm.name, &at, &r.scan_id])
                        .await
                        .map_err(err)?
                        .get(0),
                ),
                None => None,
            };
            let posted = r.posted_at.map(|p| p.to_pg());
            let row = tx
                .query_opt(
                    &content,
                    &[
                        &r.platform,
                        &r.external_id,
                        &r.url,
                        &r.caption,
                        &creator_id,
                        &community_id,
                        &r.stats[0],
                        &r.stats[1],
                        &r.stats[2],
                        &r.stats[3],
                        &posted,
                        &at,
                        &r.scan_id,
                        &r.metadata,
                    ],
                )
                .await
                .map_err(err)?;
            if let Some(row) = row {
                let id: i64 = row.get(0);
                tx.execute(&clear, &[&id]).await.map_err(err)?;
                for name in &r.tags {
                    let tag_id: i64 = tx.query_one(&tag, &[name]).await.map_err(err)?.get(0);
                    tx.execute(&edge, &[&id, &tag_id]).await.map_err(err)?;
                }
            }
        }
        tx.commit().await.map_err(err)?;
    }
    Ok(Figure {
        name: names::ROWS,
        rows: records.len() as u64,
        secs: t.elapsed().as_secs_f64(),
        peak_rss: None,
        error: None,
    })
}

/// The canonical tables, parents first.
const MODEL_TABLES: [&str; 5] = ["creators", "communities", "tags", "content", "content_tags"];

/// (d) The model ceiling: the rows scansync's first load left in `bench_scansync`, dumped,
/// then COPYed (timed) into a fresh schema made by `scansync migrate` (every index), with
/// its foreign keys or with them dropped. `records` is the export's size, so that the rate
/// compares with scansync's source records per second.
/// How the model's final rows are landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    /// Into the indexed tables with their foreign keys.
    WithKeys,
    /// Into the indexed tables without foreign keys.
    NoForeignKeys,
    /// The empty-store limit: into the tables with no index, key or constraint at all, every
    /// one of them built (and the foreign keys validated) afterwards, inside the clock.
    EmptyStore,
}

async fn model_ceiling(c: &Client, spec: &BenchSpec, records: u64, model: Model) -> Result<Figure, String> {
    use futures_util::{SinkExt, TryStreamExt};
    let schema = match model {
        Model::WithKeys => "bench_model",
        Model::NoForeignKeys => "bench_model_nofk",
        Model::EmptyStore => "bench_model_empty",
    };
    c.batch_execute(&format!("drop schema if exists {schema} cascade")).await.map_err(err)?;
    run_scansync(&spec.scansync, &spec.database_url, &["--schema", schema, "migrate"])?;
    let tables: Vec<String> = MODEL_TABLES.iter().map(|t| format!("{schema}.{t}")).collect();
    // Constraints (foreign keys first) and the indexes no constraint owns, as DDL.
    let constraints = c
        .query(
            "select conname::text, conrelid::regclass::text, pg_get_constraintdef(oid), contype::text
             from pg_constraint where connamespace = (select oid from pg_namespace where nspname = $1)
               and contype in ('f', 'p', 'u') and conrelid::regclass::text = any($2)
             order by contype = 'f' desc",
            &[&schema, &tables],
        )
        .await
        .map_err(err)?;
    let indexes = c
        .query(
            "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) from pg_index i
             where i.indrelid::regclass::text = any($1)
               and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)",
            &[&tables],
        )
        .await
        .map_err(err)?;
    match model {
        Model::WithKeys => {}
        Model::NoForeignKeys | Model::EmptyStore => {
            let only_foreign = model == Model::NoForeignKeys;
            let mut sql = String::new();
            for r in constraints.iter().filter(|r| !only_foreign || r.get::<_, String>(3) == "f") {
                sql.push_str(&format!(
                    "alter table {} drop constraint \"{}\";",
                    r.get::<_, String>(1),
                    r.get::<_, String>(0)
                ));
            }
            if model == Model::EmptyStore {
                for r in &indexes {
                    sql.push_str(&format!("drop index {};", r.get::<_, String>(0)));
                }
            }
            c.batch_execute(&sql).await.map_err(err)?;
        }
    }
    let mut dumps = Vec::new();
    for t in MODEL_TABLES {
        let stream = c.copy_out(&format!("copy bench_scansync.{t} to stdout")).await.map_err(err)?;
        let chunks: Vec<bytes::Bytes> = stream.try_collect().await.map_err(err)?;
        dumps.push((t, chunks));
    }
    settle(c).await?;
    let t = Instant::now();
    for (table, chunks) in dumps {
        let sink =
            c.copy_in::<_, bytes::Bytes>(&format!("copy {schema}.{table} from stdin")).await.map_err(err)?;
        futures_util::pin_mut!(sink);
        for chunk in chunks {
            sink.send(chunk).await.map_err(err)?;
        }
        sink.finish().await.map_err(err)?;
    }
    if model == Model::EmptyStore {
        // Keys and indexes built after the load, foreign keys last (validated as they are added).
        let mut sql = String::new();
        for r in constraints.iter().rev() {
            sql.push_str(&format!(
                "alter table {} add constraint \"{}\" {};",
                r.get::<_, String>(1),
                r.get::<_, String>(0),
                r.get::<_, String>(2)
            ));
        }
        for r in &indexes {
            sql.push_str(&format!("{};", r.get::<_, String>(1)));
        }
        c.batch_execute(&sql).await.map_err(err)?;
    }
    let secs = t.elapsed().as_secs_f64();
    c.batch_execute(&format!("drop schema {schema} cascade")).await.map_err(err)?;
    let name = match model {
        Model::WithKeys => names::MODEL,
        Model::NoForeignKeys => names::MODEL_NO_FK,
        Model::EmptyStore => names::EMPTY,
    };
    Ok(Figure { name, rows: records, secs, peak_rss: None, error: None })
}

/// Runs the scansync binary, timing it and sampling its peak RSS (VmHWM).
pub fn run_scansync(bin: &Path, url: &str, args: &[&str]) -> Result<(Duration, u64, String), String> {
    let t = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e} (build it: cargo build --release)", bin.display()))?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb * 1024);
            }
        }
        if let Some(st) = child.try_wait().map_err(err)? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = t.elapsed();
    let out = child.wait_with_output().map_err(err)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !status.success() {
        return Err(format!(
            "scansync {args:?} failed ({status}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((elapsed, peak, stdout))
}

/// The whole benchmark. Returns the figures: ceiling, floor, first load, re-run, model
/// ceiling with foreign keys, model ceiling without, replay, verify.
pub async fn run(spec: &BenchSpec) -> Result<Vec<Figure>, String> {
    let per_day = (spec.records / 10).max(1000);
    let start = scansync_parse::time::Timestamp::parse("2026-01-01T00:00:00Z").expect("valid");
    let export = |dir: &Path, bump: Option<u64>| -> Result<ExportStats, String> {
        let s = ExportSpec {
            records: spec.records,
            seed: spec.seed,
            start,
            per_day,
            files: 8,
            mix: Mix::default(),
            bump_every: bump,
        };
        write_export(dir, &s).map_err(|e| format!("writing export {}: {e}", dir.display()))
    };
    let first_dir = spec.work_dir.join("first");
    let rerun_dir = spec.work_dir.join("rerun");
    let _ = std::fs::remove_dir_all(&spec.work_dir);
    let stats = export(&first_dir, None)?;
    export(&rerun_dir, Some(10))?;
    eprintln!(
        "loadgen bench: {} records ({:.0} bytes each), {} .. {}",
        stats.records,
        stats.bytes as f64 / stats.records as f64,
        stats.first,
        stats.last
    );

    let mut c = connect(&spec.database_url).await?;
    let ceiling = raw_copy(&c, &first_dir, &spec.work_dir).await?;
    eprintln!("  (a) {:>9.0} rows/s  {}", ceiling.rate(), ceiling.name);

    let (from, to) = (stats.first.day().to_string(), stats.last.add_micros(3_600_000_000).day().to_string());
    let url = spec.database_url.as_str();
    c.batch_execute("drop schema if exists bench_rows cascade; drop schema if exists bench_scansync cascade")
        .await
        .map_err(err)?;
    run_scansync(&spec.scansync, url, &["--schema", "bench_rows", "migrate"])?;
    let mut records = Vec::new();
    for_each_record(&first_dir, spec.row_by_row_records, |r| {
        records.push(r);
        Ok(())
    })?;
    settle(&c).await?;
    let floor = row_by_row(&mut c, &records).await?;
    eprintln!("  (b) {:>9.0} rows/s  {}", floor.rate(), floor.name);
    drop(records);

    let writers = spec.writers.to_string();
    let page = spec.page_size.to_string();
    let mut figures = vec![ceiling, floor];
    let mut model = Vec::new();
    for (name, dir) in [(names::FIRST, &first_dir), (names::RERUN, &rerun_dir)] {
        let d = dir.to_str().ok_or("work dir is not UTF-8")?;
        let args = [
            "--schema",
            "bench_scansync",
            "backfill",
            "--source",
            "export",
            "--export-dir",
            d,
            "--from",
            &from,
            "--to",
            &to,
            "--writers",
            &writers,
            "--page-size",
            &page,
            "--fetchers",
            "2",
        ];
        settle(&c).await?;
        let (elapsed, rss, _) = run_scansync(&spec.scansync, url, &args)?;
        // A run is measured by what landed, not by what it was given: an engine that drops
        // records must not look faster. Every post of the export is one content row.
        let landed: i64 =
            c.query_one("select count(*) from bench_scansync.content", &[]).await.map_err(err)?.get(0);
        let expected: i64 = c
            .query_one(
                "select count(*) from (select distinct platform, external_id from bench_copy.raw) s",
                &[],
            )
            .await
            .map_err(err)?
            .get(0);
        if landed != expected {
            return Err(format!(
                "{name}: scansync landed {landed} content rows for the {expected} posts of the export: records were lost"
            ));
        }
        let f = Figure {
            name,
            rows: spec.records,
            secs: elapsed.as_secs_f64(),
            peak_rss: Some(rss),
            error: None,
        };
        eprintln!("  (c) {:>9.0} rows/s  {}  (peak RSS {} MB)", f.rate(), f.name, rss >> 20);
        figures.push(f);
        if figures.len() == 3 {
            // The first load's final rows, before the re-run changes them.
            for m in [Model::WithKeys, Model::NoForeignKeys, Model::EmptyStore] {
                let m = model_ceiling(&c, spec, spec.records, m).await?;
                eprintln!("  (d) {:>9.0} rows/s  {}", m.rate(), m.name);
                model.push(m);
            }
        }
    }
    figures.extend(model);
    let d = rerun_dir.to_str().ok_or("work dir is not UTF-8")?;
    let common = ["--source", "export", "--export-dir", d, "--from", &from, "--to", &to];
    let tuning = ["--writers", &writers, "--page-size", &page, "--fetchers", "2"];
    for (name, command) in [(names::REPLAY, &["backfill", "--restart"][..]), (names::VERIFY, &["verify"][..])]
    {
        let args = [&["--schema", "bench_scansync"][..], command, &common, &tuning].concat();
        settle(&c).await?;
        // verify exits 1 when a key differs: run_scansync then fails the benchmark.
        let (elapsed, rss, _) = run_scansync(&spec.scansync, url, &args)?;
        let f = Figure {
            name,
            rows: spec.records,
            secs: elapsed.as_secs_f64(),
            peak_rss: Some(rss),
            error: None,
        };
        eprintln!("  (e) {:>9.0} rows/s  {}  (peak RSS {} MB)", f.rate(), f.name, rss >> 20);
        figures.push(f);
    }
    if let Some(venv) = &spec.peers {
        for f in peers::run(spec, &c, venv, &first_dir).await {
            match &f.error {
                None => eprintln!("  (f) {:>9.0} rows/s  {}", f.rate(), f.name),
                Some(e) => eprintln!("  (f) FAILED  {}: {e}", f.name),
            }
            figures.push(f);
        }
    }
    let _ = std::fs::remove_dir_all(&spec.work_dir);
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::plaintext;

    #[test]
    fn every_tool_is_given_the_ceilings_plaintext_transport_unless_the_url_names_one() {
        let base = "postgres://postgres@127.0.0.1:5432/db";
        assert_eq!(plaintext(base).unwrap(), format!("{base}?sslmode=disable"));
        assert_eq!(
            plaintext(&format!("{base}?connect_timeout=5")).unwrap(),
            format!("{base}?connect_timeout=5&sslmode=disable")
        );
        assert_eq!(plaintext(&format!("{base}?sslmode=disable")).unwrap(), format!("{base}?sslmode=disable"));
        assert_eq!(
            plaintext("host=127.0.0.1 user=postgres").unwrap(),
            "host=127.0.0.1 user=postgres sslmode=disable"
        );
    }

    #[test]
    fn a_url_asking_for_tls_is_refused_with_what_to_give_instead() {
        let e = plaintext("postgres://h/db?sslmode=require").unwrap_err();
        assert!(e.contains("sslmode=require") && e.contains("sslmode=disable"), "{e}");
        assert!(plaintext("host=h sslmode=verify-full").unwrap_err().contains("sslmode=verify-full"));
    }
}
