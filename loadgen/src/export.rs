//! Writing a DynamoDB export (manifest + gzip JSON lines) of generated records.

use loadgen::{export_line, Generator, Mix, Shape};
use scansync_parse::attr::Attr;
use scansync_parse::time::Timestamp;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// Records in all.
    pub records: u64,
    /// Generator seed.
    pub seed: u64,
    /// `updatedAt` of the first record; later ones follow at `per_day` records a day.
    pub start: Timestamp,
    /// Records per UTC day.
    pub per_day: u64,
    /// Data files.
    pub files: u64,
    /// The mix of records.
    pub mix: Mix,
    /// Make every `k`-th record a newer version of itself (the "re-run with updates" input).
    pub bump_every: Option<u64>,
}

/// What was written.
#[derive(Debug, Clone, Copy)]
pub struct ExportStats {
    /// Records written.
    pub records: u64,
    /// Uncompressed bytes.
    pub bytes: u64,
    /// First and last `updatedAt`.
    pub first: Timestamp,
    /// Last `updatedAt`.
    pub last: Timestamp,
}

/// Returns the `updatedAt` of record `i`.
pub fn stamp_of(spec: &ExportSpec, i: u64) -> Timestamp {
    let step = 86_400_000_000 / spec.per_day.max(1) as i64;
    spec.start.add_micros(i as i64 * step)
}

/// Writes the export into `dir` (created; existing data files are replaced).
pub fn write_export(dir: &Path, spec: &ExportSpec) -> std::io::Result<ExportStats> {
    std::fs::create_dir_all(dir.join("data"))?;
    let mut g = Generator::new(spec.seed, spec.mix, Shape::default());
    let per_file = spec.records.div_ceil(spec.files.max(1)).max(1);
    let mut manifest = String::new();
    let mut bytes = 0u64;
    let mut line = String::with_capacity(2048);
    let mut i = 0u64;
    let mut file_no = 0;
    while i < spec.records {
        let key = format!("data/part-{file_no:05}.json.gz");
        let path: PathBuf = dir.join(&key);
        let f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let end = (i + per_file).min(spec.records);
        let count = end - i;
        while i < end {
            let at = stamp_of(spec, i);
            let mut r = g.next_record(at);
            if spec.bump_every.is_some_and(|k| i % k == 0) {
                let later = at.add_micros(3_600_000_000);
                r.item.insert("updatedAt".into(), Attr::S(later.to_iso()));
                r.item.insert("datePartition".into(), Attr::S(later.day().to_string()));
                r.item.insert("scanId".into(), Attr::S(format!("{}-u", r.scan_id)));
                r.item.insert(
                    "stats".into(),
                    Attr::M([("views".to_string(), Attr::N(format!("{}", i * 7 + 1)))].into_iter().collect()),
                );
            }
            line.clear();
            export_line(&r.item, &mut line);
            line.push('\n');
            bytes += line.len() as u64;
            gz.write_all(line.as_bytes())?;
            i += 1;
        }
        gz.finish()?.flush()?;
        manifest.push_str(&format!("{{\"itemCount\":{count},\"dataFileS3Key\":\"{key}\"}}\n"));
        file_no += 1;
    }
    std::fs::write(dir.join("manifest-files.json"), manifest)?;
    Ok(ExportStats {
        records: spec.records,
        bytes,
        first: stamp_of(spec, 0),
        last: stamp_of(spec, spec.records.saturating_sub(1)),
    })
}
