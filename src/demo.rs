//! `scansync demo`: the README's first command, self-contained on the local PostgreSQL.
//!
//! Writes the bundled sample export (embedded in the binary) to a temporary folder, syncs
//! it into a fresh demo schema, syncs it again to show that nothing changes, and ends with
//! `health`. The sample is made by `sample/generate.py`.

use crate::checkpoint::postgres::PgCheckpoint;
use crate::config::{Target, Tuning};
use crate::db;
use crate::error::{Error, Result, EXIT_OK};
use crate::health;
use crate::ledger::RunKind;
use crate::lifecycle::{self, RunRequest, Scope};
use crate::pipeline::Hooks;
use crate::schema::quoted_schema;
use crate::shutdown::Stop;
use crate::source::any::AnySource;
use crate::source::export::ExportSource;
use crate::source::generated::GeneratedSource;
use crate::summary;
use crate::time::Timestamp;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SAMPLE: &[(&str, &[u8])] = &[
    ("manifest-files.json", include_bytes!("../sample/export/manifest-files.json")),
    ("data/part-00.json.gz", include_bytes!("../sample/export/data/part-00.json.gz")),
    ("data/part-01.json.gz", include_bytes!("../sample/export/data/part-01.json.gz")),
];

/// Returns the demo schema for a base schema name.
pub fn demo_schema(base: &str) -> String {
    format!("{base}_demo")
}

/// What the demo syncs: the bundled sample, or `records` generated records.
#[derive(Debug, Clone, Copy)]
pub struct DemoConfig {
    /// Generated records instead of the sample.
    pub records: Option<u64>,
    /// Their seed.
    pub seed: u64,
    /// Parallelism and page size (generated records only).
    pub tuning: Tuning,
}

/// Returns a fresh temporary directory path under the system temp dir.
fn temp_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), fastrand::u64(..)))
}

/// Runs the demo against `target.url`, in the schema `<target.schema>_demo`; returns the
/// exit status.
pub async fn demo(target: &Target, cfg: &DemoConfig, stop: &Stop) -> Result<u8> {
    let (url, base_schema) = (target.url.as_str(), target.schema.as_str());
    if let Some(n) = cfg.records {
        return generated(url, base_schema, n, cfg, stop).await;
    }
    let schema = demo_schema(base_schema);
    let q = quoted_schema(&schema)?;
    let demo_target = Target { url: url.to_string(), schema: schema.clone() };
    let dir = temp_dir("scansync-demo");
    for (name, bytes) in SAMPLE {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("sample paths have a parent"))?;
        std::fs::write(&path, bytes)?;
    }
    let admin = db::connect(url).await?;
    admin
        .batch_execute(&format!("drop schema if exists {q} cascade"))
        .await
        .map_err(|e| Error::from(e).context(format!("resetting the demo schema {schema}")))?;
    println!("scansync demo: bundled sample export -> schema {schema} on {}\n", db::redact(url));

    let tuning = Tuning { fetchers: 2, writers: 2, ..Tuning::default() };
    let mut status = EXIT_OK;
    for (n, label) in ["first run", "second run (same records again)"].iter().enumerate() {
        let req = RunRequest {
            target: &demo_target,
            kind: RunKind::Demo,
            scope: Scope::Days(None),
            source: AnySource::Export(ExportSource::open(&dir, 100)?),
            tuning,
            hooks: Hooks { stop: stop.clone(), ..Hooks::default() },
        };
        let o = lifecycle::run(req).await?;
        summary::print(label, &o);
        let code = summary::exit_status(&o, stop);
        if n == 1 && o.result.is_ok() {
            let w = &o.stats.written;
            let changed = w.creators + w.communities + w.tags + w.content + w.content_tags + w.quarantined;
            println!("  -> {changed} rows changed: applying the same records twice is a no-op");
        }
        println!();
        status = status.max(code);
        if code != EXIT_OK {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    let counts = admin
        .query_one(
            &format!(
                "select (select count(*) from {q}.content), (select count(*) from {q}.content where deleted_at is not null),
                        (select count(*) from {q}.creators), (select count(*) from {q}.communities),
                        (select count(*) from {q}.tags), (select count(*) from {q}.content_tags),
                        (select count(*) from {q}.quarantine), (select count(*) from {q}.schema_drift)"
            ),
            &[],
        )
        .await?;
    let c = |i: usize| counts.get::<_, i64>(i);
    println!(
        "tables in {schema}: content {} ({} tombstoned), creators {}, communities {}, tags {}, content_tags {}, quarantine {}, schema_drift {}",
        c(0), c(1), c(2), c(3), c(4), c(5), c(6), c(7)
    );
    let report = health::check(
        &admin,
        &schema,
        None::<&PgCheckpoint>,
        crate::config::MetricsConfig::DEFAULT_MAX_AGE,
        crate::config::MetricsConfig::DEFAULT_MAX_LAG,
    )
    .await?;
    println!("health: {}", report.to_text());
    println!("\nlook around: psql {} -c 'select platform, external_id, caption, view_count from {schema}.content limit 5'", db::redact(url));
    Ok(status.max(report.status.exit_code()))
}

/// `demo --records N`: N generated dirty records through the real pipeline, with a
/// progress bar when stderr is a terminal, then the throughput.
async fn generated(url: &str, base_schema: &str, records: u64, cfg: &DemoConfig, stop: &Stop) -> Result<u8> {
    let schema = demo_schema(base_schema);
    let q = quoted_schema(&schema)?;
    let admin = db::connect(url).await?;
    admin
        .batch_execute(&format!("drop schema if exists {q} cascade"))
        .await
        .map_err(|e| Error::from(e).context(format!("resetting the demo schema {schema}")))?;
    println!("scansync demo: {records} generated dirty records -> schema {schema} on {}", db::redact(url));
    let progress = Arc::new(AtomicU64::new(0));
    let tuning = cfg.tuning;
    let start = Timestamp::parse("2026-01-01T00:00:00Z").expect("valid timestamp");
    let source =
        GeneratedSource::new(records, tuning.fetchers as u64, tuning.page_size, cfg.seed, start, 100_000);
    let bar = std::io::stderr().is_terminal().then(|| {
        let progress = progress.clone();
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let done = progress.load(Ordering::Relaxed).min(records);
                let filled = (done * 30 / records) as usize;
                let rate = done as f64 / t.elapsed().as_secs_f64();
                eprint!(
                    "\r[{}{}] {:>3}% {done}/{records} records, {rate:.0} records/s ",
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    done * 100 / records
                );
                let _ = std::io::stderr().flush();
            }
        })
    });
    let demo_target = Target { url: url.to_string(), schema: schema.clone() };
    let req = RunRequest {
        target: &demo_target,
        kind: RunKind::Demo,
        scope: Scope::Days(None),
        source: AnySource::Generated(source),
        tuning,
        hooks: Hooks { stop: stop.clone(), progress: Some(progress.clone()), ..Hooks::default() },
    };
    let outcome = lifecycle::run(req).await;
    if let Some(bar) = bar {
        bar.abort();
        eprint!("\r{}\r", " ".repeat(80));
    }
    let o = outcome?;
    summary::print("run", &o);
    Ok(summary::exit_status(&o, stop))
}
