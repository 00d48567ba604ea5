//! Latency-bound reading, measured: one partition of changed items read by `scansync sync`
//! through a proxy that adds DynamoDB-like latency to every request, with 1 slice and with
//! N, in the same run; then the tables of each run are compared.
//!
//! The proxy delays every chunk the client sends by `delay` before forwarding it. A Query
//! request is one small chunk, so each request costs about `delay` more, as a round trip to
//! real DynamoDB does (tens of milliseconds), while the server's own time is unchanged.

use crate::dynamo;
use loadgen::{Generator, Mix, Shape, Stamps};
use scansync_parse::time::Timestamp;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// Settings of the measurement.
#[derive(Debug, Clone)]
pub struct SlicesSpec {
    /// Changed items in the partition.
    pub items: u64,
    /// Latency added to each request.
    pub delay: Duration,
    /// Slice counts to compare (the first is the baseline).
    pub slices: Vec<u16>,
    /// scansync --page-size (the DynamoDB query Limit).
    pub page_size: u32,
    /// DynamoDB table (created).
    pub table: String,
    /// The GSI.
    pub index: String,
    /// PostgreSQL.
    pub database_url: String,
    /// The scansync binary.
    pub scansync: PathBuf,
    /// The DynamoDB endpoint the proxy forwards to (`http://host:port`).
    pub upstream: String,
}

/// What one scansync run took.
#[derive(Debug, Clone)]
pub struct SliceRun {
    /// Slices per partition.
    pub slices: u16,
    /// Wall time of the scansync process (a first load: read and write).
    pub seconds: f64,
    /// Wall time of the same window again (a replay writes almost nothing: reading,
    /// decoding and parsing dominate).
    pub replay_seconds: f64,
    /// Records read.
    pub read: i64,
    /// A fingerprint of every canonical table (natural keys, no ids).
    pub fingerprint: String,
}

/// Runs the measurement; returns one result per slice count.
pub async fn run(spec: &SlicesSpec) -> Result<Vec<SliceRun>, String> {
    let client = dynamo::client().await?;
    dynamo::create_table(&client, &spec.table, &spec.index).await?;
    // Every item changed in the last hour, stamped in UTC: an hourly-shaped window. The
    // run starts after the write, so the window is the hour before the first item on.
    let first = Timestamp::now().add_micros(-3_600_000_000);
    let step = 3_600_000_000 / spec.items.max(1) as i64;
    let mut g = Generator::new(7, Mix { stamps: Stamps::Utc, ..Mix::default() }, Shape::default());
    let started = Instant::now();
    let mut batch = Vec::with_capacity(5000);
    for i in 0..spec.items {
        batch.push(g.next_record(first.add_micros(i as i64 * step)).item);
        if batch.len() == 5000 || i + 1 == spec.items {
            dynamo::write_items(&client, &spec.table, std::mem::take(&mut batch), 8).await?;
        }
    }
    eprintln!("loadgen slices: wrote {} items in {:.0} s", spec.items, started.elapsed().as_secs_f64());

    let upstream: SocketAddr = spec
        .upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| format!("upstream {}: {e} (expected http://127.0.0.1:PORT)", spec.upstream))?;
    let proxy = crate::proxy::TcpProxy::start(upstream, spec.delay).await?;
    let proxy_url = format!("http://{}", proxy.addr);

    let (pg, conn) = tokio_postgres::connect(&spec.database_url, NoTls).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let checkpoint = first.add_micros(-1_000_000);
    let mut out = Vec::new();
    for &slices in &spec.slices {
        let schema = format!("slices_{slices}");
        pg.batch_execute(&format!("drop schema if exists {schema} cascade"))
            .await
            .map_err(|e| e.to_string())?;
        let bin = spec.scansync.clone();
        let run = |args: Vec<String>| {
            let out = std::process::Command::new(&bin)
                .args(&args)
                .env("DATABASE_URL", &spec.database_url)
                .env("AWS_ENDPOINT_URL_DYNAMODB", &proxy_url)
                .env("RUST_LOG", "warn")
                .output()
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
            if !out.status.success() {
                return Err(format!("scansync {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
            Ok(())
        };
        run(vec!["--schema".into(), schema.clone(), "migrate".into()])?;
        pg.execute(
            &format!("insert into {schema}.checkpoints (name, value) values ('incremental', $1::text::timestamptz)"),
            &[&checkpoint.to_pg()],
        )
        .await
        .map_err(|e| e.to_string())?;
        let n = slices.to_string();
        let page_size = spec.page_size.to_string();
        let args: Vec<String> = [
            "--schema",
            &schema,
            "sync",
            "--table",
            &spec.table,
            "--index",
            &spec.index,
            "--lookback",
            "0s",
            "--offset-margin",
            "0s",
            "--slices",
            &n,
            "--page-size",
            &page_size,
            "--fetchers",
            &n,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every run starts from the same state: no dirty buffers or pending autovacuum left
        // by the run before (a checkpoint during a run slowed it 5x here).
        pg.batch_execute("checkpoint").await.map_err(|e| e.to_string())?;
        let t = Instant::now();
        tokio::task::block_in_place(|| run(args.clone()))?;
        let seconds = t.elapsed().as_secs_f64();
        pg.execute(
            &format!("update {schema}.checkpoints set value = $1::text::timestamptz"),
            &[&checkpoint.to_pg()],
        )
        .await
        .map_err(|e| e.to_string())?;
        pg.batch_execute("checkpoint").await.map_err(|e| e.to_string())?;
        let t = Instant::now();
        tokio::task::block_in_place(|| run(args))?;
        let replay_seconds = t.elapsed().as_secs_f64();
        let read: i64 = pg
            .query_one(&format!("select records_read from {schema}.sync_runs order by id limit 1"), &[])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        let fingerprint = fingerprint(&pg, &schema).await?;
        eprintln!("loadgen slices: {slices} slices: first load {seconds:.1} s, replay {replay_seconds:.1} s, {read} records");
        out.push(SliceRun { slices, seconds, replay_seconds, read, fingerprint });
    }
    Ok(out)
}

/// An md5 of every canonical table's rows by natural keys (no surrogate ids, no synced_at).
pub async fn fingerprint(pg: &tokio_postgres::Client, schema: &str) -> Result<String, String> {
    let q = format!(
        "select md5(string_agg(x, '|' order by x)) from (
           select 'cr' || row(platform, external_id, handle, display_name, follower_count, source_updated_at, source_scan_id, deleted_at)::text x from {s}.creators
           union all select 'cm' || row(platform, external_id, name, source_updated_at, source_scan_id)::text from {s}.communities
           union all select 't' || name from {s}.tags
           union all select 'c' || row(c.platform, c.external_id, c.url, c.caption, cr.external_id, cm.external_id, c.view_count, c.like_count,
                  c.comment_count, c.share_count, c.posted_at, c.source_updated_at, c.source_scan_id, c.metadata, c.extra, c.deleted_at, c.deleted_scan_id)::text
             from {s}.content c left join {s}.creators cr on cr.id = c.creator_id left join {s}.communities cm on cm.id = c.community_id
           union all select 'e' || row(c.platform, c.external_id, t.name)::text
             from {s}.content_tags ct join {s}.content c on c.id = ct.content_id join {s}.tags t on t.id = ct.tag_id
         ) rows",
        s = schema
    );
    let r = pg.query_one(&q, &[]).await.map_err(|e| e.to_string())?;
    Ok(r.get::<_, Option<String>>(0).unwrap_or_default())
}
