//! `scansync demo`: the README's first command, self-contained on the local PostgreSQL.
//!
//! Writes the bundled sample export (embedded in the binary) to a temporary folder, syncs
//! it into a fresh demo schema, syncs it again to show that nothing changes, and ends with
//! `health`. The sample is made by `sample/generate.py`.

use crate::cli::DemoArgs;
use crate::command::{self, AnySource, RunRequest, Scope};
use crate::error::{Error, Result};
use crate::health;
use crate::ledger::RunKind;
use crate::run::Tuning;
use crate::schema::quoted_schema;
use crate::source::export::ExportSource;
use crate::source::generated::GeneratedSource;
use crate::summary;
use crate::time::Timestamp;
use crate::{checkpoint::memory::MemoryCheckpoint, db};
use std::io::{IsTerminal, Write};
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

/// Runs the demo; returns the exit status.
pub async fn demo(url: &str, base_schema: &str, args: &DemoArgs) -> Result<u8> {
    if let Some(n) = args.records {
        return generated(url, base_schema, n, args).await;
    }
    let schema = demo_schema(base_schema);
    let q = quoted_schema(&schema)?;
    let dir = command::temp_dir("scansync-demo");
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
    let mut status = command::EXIT_OK;
    for (n, label) in ["first run", "second run (same records again)"].iter().enumerate() {
        let req = RunRequest {
            url,
            schema: &schema,
            kind: RunKind::Demo,
            scope: Scope::Days(None),
            source: AnySource::Export(ExportSource::open(&dir, 100)?),
            tuning: tuning.clone(),
        };
        let o = command::run(req).await?;
        summary::print(label, &o);
        let code = summary::exit_status(&o);
        if n == 1 && o.result.is_ok() {
            let w = &o.summary.written;
            let changed = w.creators + w.communities + w.tags + w.content + w.content_tags + w.quarantined;
            println!("  -> {changed} rows changed: applying the same records twice is a no-op");
        }
        println!();
        status = status.max(code);
        if code != command::EXIT_OK {
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
    let report =
        health::check::<MemoryCheckpoint>(&admin, &schema, None, Duration::from_secs(3 * 3600)).await?;
    println!("health: {}", report.to_text());
    println!("\nlook around: psql {} -c 'select platform, external_id, caption, view_count from {schema}.content limit 5'", db::redact(url));
    Ok(status.max(report.status.exit_code()))
}

/// `demo --records N`: N generated dirty records through the real pipeline, with a
/// progress bar when stderr is a terminal, then the throughput.
async fn generated(url: &str, base_schema: &str, records: u64, args: &DemoArgs) -> Result<u8> {
    let schema = demo_schema(base_schema);
    let q = quoted_schema(&schema)?;
    let admin = db::connect(url).await?;
    admin
        .batch_execute(&format!("drop schema if exists {q} cascade"))
        .await
        .map_err(|e| Error::from(e).context(format!("resetting the demo schema {schema}")))?;
    println!("scansync demo: {records} generated dirty records -> schema {schema} on {}", db::redact(url));
    let progress = Arc::new(AtomicU64::new(0));
    let mut tuning = command::tuning(&args.tuning);
    tuning.progress = Some(progress.clone());
    let start = Timestamp::parse("2026-01-01T00:00:00Z").expect("valid timestamp");
    let source = GeneratedSource::new(
        records,
        tuning.fetchers as u64,
        args.tuning.page_size as usize,
        args.seed,
        start,
        100_000,
    );
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
    let req = RunRequest {
        url,
        schema: &schema,
        kind: RunKind::Demo,
        scope: Scope::Days(None),
        source: AnySource::Generated(source),
        tuning,
    };
    let outcome = command::run(req).await;
    if let Some(bar) = bar {
        bar.abort();
        eprint!("\r{}\r", " ".repeat(80));
    }
    let o = outcome?;
    summary::print("run", &o);
    Ok(summary::exit_status(&o))
}
