//! The export source: a DynamoDB export on disk (`manifest-files.json` listing gzip
//! JSON-lines data files, one `{"Item": {…}}` per line).
//!
//! Without a manifest, every `*.json` / `*.json.gz` under the directory is read. Files are
//! the unit of parallelism; lines are decoded later, on the rayon pool. A line that cannot
//! be decoded is quarantined there, and the lines after it are read as usual.

use super::{Payload, RawPage, Source};
use crate::error::{Error, Kind, Result};
use crate::time::Day;
use flate2::read::MultiGzDecoder;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Reads the data files of a DynamoDB export directory.
#[derive(Debug, Clone)]
pub struct ExportSource {
    files: Vec<PathBuf>,
    page_size: usize,
}

impl ExportSource {
    /// Lists the export's data files. Fails with a clear message when the directory is
    /// missing, a manifest entry points at no file, or no data file is found.
    pub fn open(dir: &Path, page_size: usize) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::config(format!(
                "export directory {} does not exist: pass --export-dir with the folder holding manifest-files.json",
                dir.display()
            )));
        }
        let manifest = dir.join("manifest-files.json");
        let mut files = if manifest.is_file() {
            read_manifest(dir, &manifest)?
        } else {
            let mut found = Vec::new();
            walk(dir, &mut found)?;
            found.retain(|p| {
                let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                (n.ends_with(".json") || n.ends_with(".json.gz")) && !n.starts_with("manifest-")
            });
            found
        };
        files.sort();
        if files.is_empty() {
            return Err(Error::config(format!(
                "no data files in export directory {}: expected manifest-files.json or *.json / *.json.gz files",
                dir.display()
            )));
        }
        Ok(Self { files, page_size: page_size.max(1) })
    }

    /// Returns the data files, in the order they are read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

fn read_manifest(dir: &Path, manifest: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| Error::new(Kind::Io, format!("cannot read {}: {e}", manifest.display())))?;
    let mut files = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::config(format!("{} line {}: not JSON ({e})", manifest.display(), n + 1)))?;
        let key = v.get("dataFileS3Key").and_then(|k| k.as_str()).ok_or_else(|| {
            Error::config(format!("{} line {}: no dataFileS3Key", manifest.display(), n + 1))
        })?;
        // The key is relative to the bucket; the export may have been copied with or
        // without its leading folders.
        let direct = dir.join(key);
        let base = Path::new(key).file_name().map(|b| dir.join("data").join(b));
        let path = if direct.is_file() {
            direct
        } else if let Some(b) = base.filter(|b| b.is_file()) {
            b
        } else {
            return Err(Error::config(format!(
                "{} lists {key}, which is not under {} (nor in its data/ folder)",
                manifest.display(),
                dir.display()
            )));
        };
        files.push(path);
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn open_lines(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::new(Kind::Io, format!("cannot open {}: {e}", path.display())))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic)?;
    let f = std::fs::File::open(path)?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::with_capacity(256 * 1024, f))
    })
}

impl Source for ExportSource {
    async fn units(&self, _days: &[Day]) -> Result<Vec<String>> {
        // An export is not indexed by day: every file is read and the parse stage keeps
        // the records of the window.
        Ok(self.files.iter().map(|p| p.display().to_string()).collect())
    }

    async fn fetch(
        &self,
        unit: String,
        _bounds: Option<super::KeyBounds>,
        tx: async_channel::Sender<RawPage>,
    ) -> Result<()> {
        let page_size = self.page_size;
        // File reading and gunzip block: keep them off the tokio workers.
        tokio::task::spawn_blocking(move || -> Result<()> {
            let path = PathBuf::from(&unit);
            let label =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| unit.clone());
            let mut reader = open_lines(&path)?;
            let mut lines = Vec::with_capacity(page_size);
            loop {
                let mut line = Vec::new();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| Error::new(Kind::Io, format!("reading {}: {e}", path.display())))?;
                if n == 0 {
                    break;
                }
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                lines.push(line);
                if lines.len() == page_size {
                    let page =
                        RawPage { unit: label.clone(), payload: Payload::Lines(std::mem::take(&mut lines)) };
                    if tx.send_blocking(page).is_err() {
                        return Ok(());
                    }
                }
            }
            if !lines.is_empty() {
                let _ = tx.send_blocking(RawPage { unit: label, payload: Payload::Lines(lines) });
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::internal(format!("export reader stopped: {e}")))?
    }
}
