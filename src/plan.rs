//! `scansync sync --plan`: what the next sync would read, and nothing else. The checkpoint is
//! read (never written), no lock is taken, nothing is migrated; for DynamoDB the index items
//! of each key range are counted (`Select=COUNT`), for an export the records its manifests
//! announce.

use crate::checkpoint::any::AnyCheckpoint;
use crate::checkpoint::CheckpointStore;
use crate::config::{CheckpointConfig, SyncConfig, Target};
use crate::error::{Result, EXIT_OK};
use crate::schema::quoted_schema;
use crate::source::any::AnySource;
use crate::source::{partition_ranges, Source};
use crate::time::Timestamp;
use crate::{db, window};
use std::sync::Arc;

/// Prints the plan of the next sync; returns the exit status.
pub async fn show(target: &Target, cfg: &SyncConfig) -> Result<u8> {
    let client = Arc::new(db::connect(&target.url).await?);
    let checkpoints = format!("{}.checkpoints", quoted_schema(&target.schema)?);
    let has_table: bool =
        client.query_one("select to_regclass($1) is not null", &[&checkpoints]).await?.get(0);
    let checkpoint = match (&cfg.checkpoint, has_table) {
        // No schema yet: the first run's window.
        (CheckpointConfig::Postgres, false) => None,
        _ => AnyCheckpoint::open(&cfg.checkpoint, client.clone(), &target.schema).await?.read().await?,
    };
    let now = Timestamp::now();
    let plan = window::plan(checkpoint, now, &cfg.window);
    println!("plan of the next sync (nothing is written, no lock is taken):");
    match checkpoint {
        Some(c) => println!("  checkpoint: {c}"),
        None => println!("  checkpoint: none yet: the first run reaches back --first-run-window"),
    }
    let until = plan.until.map(|u| format!(", up to {u} (--max-window)")).unwrap_or_default();
    println!("  window: updatedAt after {}{until}", plan.after);
    println!(
        "  partitions: {} .. {} ({} UTC days)",
        plan.days[0],
        plan.days[plan.days.len() - 1],
        plan.days.len()
    );
    let source = AnySource::open(&cfg.source, &cfg.tuning).await?;
    match &source {
        AnySource::Dynamo(d) => {
            println!(
                "  index key ranges (offset margin {} s, {} slices a partition):",
                plan.bounds.margin / 1_000_000,
                d.slices()
            );
            let mut total = 0;
            for day in &plan.days {
                let ranges = partition_ranges(*day, Some(&plan.bounds), d.slices());
                let mut items = 0;
                for (i, r) in ranges.iter().enumerate() {
                    items += d.count(&format!("{day}#{i}"), Some(&plan.bounds)).await?;
                    let from = r.from.as_deref().unwrap_or("(start)");
                    let to = r.to.as_deref().unwrap_or("(end)");
                    println!("    {day} #{i}: updatedAt from {from:?} to {to:?}");
                }
                println!("    {day}: {items} index items");
                total += items;
            }
            println!(
                "  would read: {total} index items (counted with Select=COUNT, which costs the read capacity of reading them; the run then keeps those updatedAt after the lower bound)"
            );
        }
        other => {
            let units = other.units(&plan.days, Some(&plan.bounds)).await?;
            let hints = other.size_hints(&units);
            let known: u64 = hints.iter().flatten().sum();
            let unknown = hints.iter().filter(|h| h.is_none()).count();
            let more = if unknown > 0 {
                format!(" ({unknown} files without a manifest count)")
            } else {
                String::new()
            };
            println!(
                "  would read: {} export files, {known} records by their manifests{more}; the run keeps those updatedAt after the lower bound",
                units.len()
            );
        }
    }
    Ok(EXIT_OK)
}
