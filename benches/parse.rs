//! The parse stage on realistic ~1 KB records with metadata and the dirty mix of
//! `loadgen` (20 % dirty, 2 % drift, updates and tombstones), every rule on.
//!
//! Reports records/s and bytes/s on one core and on all cores, next to a plain simd-json
//! DOM parse of the same lines (the record and its metadata) measured in the same run, so
//! the cost of hardening is a ratio, not a number that depends on the machine's mood; and
//! the same work with every line sent through the general path, so the typed path's gain is
//! one too.
//!
//! `cargo bench -p scansync-bench --bench parse`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rayon::prelude::*;
use scansync_bench::{lines, parse_all, RECORDS};
use scansync_parse::export::{decode_export_line, read_export_line};
use scansync_parse::{parse_page, Filter};
use std::time::Duration;

// The scansync binary runs on mimalloc; so does this benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The baseline: parse the line and its metadata string with simd-json, nothing else.
fn baseline(lines: Vec<Vec<u8>>) -> usize {
    let mut n = 0;
    for mut line in lines {
        let v = simd_json::to_borrowed_value(&mut line).expect("generated lines are JSON");
        if let Some(simd_json::BorrowedValue::String(meta)) =
            simd_json::derived::ValueObjectAccess::get(&v, "Item")
                .and_then(|i| simd_json::derived::ValueObjectAccess::get(i, "metadata"))
                .and_then(|m| simd_json::derived::ValueObjectAccess::get(m, "S"))
        {
            let mut inner = meta.as_bytes().to_vec();
            n += usize::from(simd_json::to_borrowed_value(&mut inner).is_ok());
        }
        n += 1;
    }
    n
}

/// All cores: pages of 1000 lines parsed in parallel, as the pipeline does.
fn full_parallel(lines: Vec<Vec<u8>>) -> usize {
    let pages: Vec<Vec<Vec<u8>>> = lines.chunks(1000).map(|c| c.to_vec()).collect();
    pages
        .into_par_iter()
        .map(|p| {
            let raw = p.into_iter().map(read_export_line).collect();
            parse_page("bench", raw, &Filter::default()).records.len()
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    println!(
        "{} records, {:.0} bytes on average, rayon threads: {}",
        lines.len(),
        bytes as f64 / lines.len() as f64,
        rayon::current_num_threads()
    );
    for (unit, throughput) in
        [("records", Throughput::Elements(RECORDS as u64)), ("bytes", Throughput::Bytes(bytes as u64))]
    {
        let mut g = c.benchmark_group(format!("parse_{unit}"));
        g.throughput(throughput).sample_size(20).measurement_time(Duration::from_secs(6));
        g.bench_function("simd_json_baseline_one_core", |b| {
            b.iter_batched(|| lines.clone(), baseline, BatchSize::LargeInput)
        });
        g.bench_function("scansync_every_rule_one_core", |b| {
            b.iter_batched(|| lines.clone(), |l| parse_all(l, read_export_line), BatchSize::LargeInput)
        });
        g.bench_function("scansync_general_path_only_one_core", |b| {
            b.iter_batched(|| lines.clone(), |l| parse_all(l, decode_export_line), BatchSize::LargeInput)
        });
        g.bench_function("scansync_every_rule_all_cores", |b| {
            b.iter_batched(|| lines.clone(), full_parallel, BatchSize::LargeInput)
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
