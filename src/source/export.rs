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
use std::path::{Component, Path, PathBuf};

/// Reads the data files of a DynamoDB export directory.
///
/// Every file read lies inside the export directory: manifest entries that are absolute or
/// climb out with `..`, and symlinks that resolve outside it, are refused; a symlink loop is
/// walked once. A data file whose line count differs from its manifest `itemCount` fails
/// its unit (a truncated file must never pass as a short one).
#[derive(Debug, Clone)]
pub struct ExportSource {
    root: PathBuf,
    files: Vec<DataFile>,
    page_size: usize,
}

/// One data file of an export, and what its manifest says it holds.
#[derive(Debug, Clone)]
struct DataFile {
    path: PathBuf,
    item_count: Option<u64>,
}

impl ExportSource {
    /// Lists the export's data files. Fails with a clear message when the directory is
    /// missing, a manifest entry points at no file or outside the export, or no data file
    /// is found.
    pub fn open(dir: &Path, page_size: usize) -> Result<Self> {
        if dir.is_file() {
            return Err(Error::config(format!(
                "--export-dir {} is a file, not a directory: pass the folder holding manifest-files.json (or the data files)",
                dir.display()
            )));
        }
        if !dir.is_dir() {
            return Err(Error::config(format!(
                "export directory {} does not exist: pass --export-dir with the folder holding manifest-files.json",
                dir.display()
            )));
        }
        let root = dir
            .canonicalize()
            .map_err(|e| Error::new(Kind::Io, format!("cannot resolve {}: {e}", dir.display())))?;
        let manifest = root.join("manifest-files.json");
        let mut files = if manifest.is_file() {
            read_manifest(&root, &manifest)?
        } else {
            let mut found = Vec::new();
            let mut seen = std::collections::HashSet::new();
            walk(&root, &root, &mut seen, &mut found)?;
            found.retain(|p| {
                let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                (n.ends_with(".json") || n.ends_with(".json.gz")) && !n.starts_with("manifest-")
            });
            found.into_iter().map(|path| DataFile { path, item_count: None }).collect()
        };
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        if files.is_empty() {
            return Err(Error::config(format!(
                "no data files in export directory {}: expected manifest-files.json or *.json / *.json.gz files",
                dir.display()
            )));
        }
        Ok(Self { root, files, page_size: page_size.max(1) })
    }

    /// Returns where the export is (its resolved directory): a backfill job's identity.
    pub fn location(&self) -> String {
        self.root.display().to_string()
    }
}

/// Resolves `path` and checks it stays inside `root` (symlinks included).
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let real = path.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

fn read_manifest(root: &Path, manifest: &Path) -> Result<Vec<DataFile>> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| Error::new(Kind::Io, format!("cannot read {}: {e}", manifest.display())))?;
    let mut files = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::config(format!("{} line {}: not JSON ({e})", manifest.display(), n + 1)))?;
        let key = v.get("dataFileS3Key").and_then(|k| k.as_str()).ok_or_else(|| {
            Error::config(format!("{} line {}: no dataFileS3Key", manifest.display(), n + 1))
        })?;
        let escapes =
            Path::new(key).components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if escapes {
            return Err(Error::config(format!(
                "{} line {}: dataFileS3Key {key:?} points outside the export directory (absolute or with ..); refused",
                manifest.display(),
                n + 1
            )));
        }
        let item_count = match v.get("itemCount") {
            None => None,
            Some(c) => Some(c.as_u64().ok_or_else(|| {
                Error::config(format!("{} line {}: itemCount {c} is not a count", manifest.display(), n + 1))
            })?),
        };
        // The key is relative to the bucket; the export may have been copied with or
        // without its leading folders.
        let direct = root.join(key);
        let base = Path::new(key).file_name().map(|b| root.join("data").join(b));
        let path =
            [Some(direct), base].into_iter().flatten().find(|p| p.symlink_metadata().is_ok()).ok_or_else(
                || {
                    Error::config(format!(
                        "{} lists {key}, which is not under {} (nor in its data/ folder)",
                        manifest.display(),
                        root.display()
                    ))
                },
            )?;
        let path = inside(root, &path).filter(|p| p.is_file()).ok_or_else(|| {
            Error::config(format!(
                "{} lists {key}, which resolves outside the export directory {} (a symlink?) or is not a file; refused",
                manifest.display(),
                root.display()
            ))
        })?;
        files.push(DataFile { path, item_count });
    }
    Ok(files)
}

/// Lists the files under `dir`, following symlinks only while they stay inside `root`, and
/// each real directory once (a symlink loop is walked once).
fn walk(
    root: &Path,
    dir: &Path,
    seen: &mut std::collections::HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    let Some(real) = inside(root, dir) else {
        tracing::warn!(path = %dir.display(), "skipped: resolves outside the export directory");
        return Ok(());
    };
    if !seen.insert(real.clone()) {
        return Ok(());
    }
    for entry in std::fs::read_dir(&real)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, seen, out)?;
        } else if let Some(file) = inside(root, &path) {
            out.push(file);
        } else {
            tracing::warn!(path = %path.display(), "skipped: resolves outside the export directory");
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
    async fn units(&self, _days: &[Day], _bounds: Option<&super::KeyBounds>) -> Result<Vec<String>> {
        // An export is not indexed by day: every file is read and the parse stage keeps
        // the records of the window.
        Ok(self.files.iter().map(|f| f.path.display().to_string()).collect())
    }

    async fn fetch(
        &self,
        unit: String,
        _bounds: Option<super::KeyBounds>,
        tx: async_channel::Sender<RawPage>,
    ) -> Result<()> {
        let page_size = self.page_size;
        let expected =
            self.files.iter().find(|f| f.path.as_os_str() == unit.as_str()).and_then(|f| f.item_count);
        // File reading and gunzip block: keep them off the tokio workers.
        tokio::task::spawn_blocking(move || -> Result<()> {
            let path = PathBuf::from(&unit);
            let label =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| unit.clone());
            let mut reader = open_lines(&path)?;
            let mut lines = Vec::with_capacity(page_size);
            let mut items = 0u64;
            let mut line_no = 0u64;
            loop {
                let mut line = Vec::new();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| Error::new(Kind::Io, format!("reading {}: {e}", path.display())))?;
                if n == 0 {
                    break;
                }
                line_no += 1;
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                lines.push((line_no, line));
                items += 1;
                if lines.len() == page_size {
                    let page =
                        RawPage { unit: label.clone(), payload: Payload::Lines(std::mem::take(&mut lines)) };
                    if tx.send_blocking(page).is_err() {
                        return Ok(());
                    }
                }
            }
            if !lines.is_empty() && tx.send_blocking(RawPage { unit: label.clone(), payload: Payload::Lines(lines) }).is_err() {
                return Ok(());
            }
            match expected {
                Some(n) if n != items => Err(Error::new(
                    Kind::Io,
                    format!(
                        "export file {label} holds {items} items but its manifest itemCount says {n}: the file is truncated or not the one the export wrote; its records were synced, but the run fails so that none goes missing unnoticed"
                    ),
                )),
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| Error::internal(format!("export reader stopped: {e}")))?
    }
}
