//! The export source: a DynamoDB export (`manifest-files.json` listing gzip JSON-lines data
//! files), on disk or where AWS writes it in S3 (`s3://bucket/prefix/`, read as a stream,
//! never copied). Full exports hold one `{"Item": {…}}` per line; incremental exports one
//! change per line (`NewImage`, or a delete): the parse stage reads both.
//!
//! Without a manifest, every `*.json` / `*.json.gz` under the directory (or prefix) is read;
//! under a prefix holding several exports (`AWSDynamoDB/<export-id>/`), every manifest is. Files are
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
    location: Location,
    files: Vec<DataFile>,
    page_size: usize,
}

/// Where an export is.
#[derive(Debug, Clone)]
enum Location {
    /// A directory (resolved).
    Local(PathBuf),
    /// An S3 prefix: data files are read as streams.
    S3 { client: aws_sdk_s3::Client, bucket: String, prefix: String },
}

/// One data file of an export, and what its manifest says it holds.
#[derive(Debug, Clone)]
struct DataFile {
    /// The file's path (local) or object key (S3).
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
        Ok(Self { location: Location::Local(root), files, page_size: page_size.max(1) })
    }

    /// Opens an export where AWS writes it: `s3://bucket/prefix/`, the prefix given to the
    /// export (the one holding `AWSDynamoDB/<export-id>/`) or one export's own folder. Every
    /// manifest under the prefix is read (so periodic incremental exports under one prefix
    /// are all applied); data files a manifest lists outside the prefix are refused.
    pub async fn open_s3(url: &str, page_size: usize) -> Result<Self> {
        let (bucket, prefix) = parse_s3_url(url)?;
        let conf = crate::aws::load_config().await?;
        let mut builder = aws_sdk_s3::config::Builder::from(&conf);
        // S3-compatible servers (MinIO, moto, LocalStack) at a custom endpoint serve buckets
        // as paths, not as host names.
        if std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some()
        {
            builder = builder.force_path_style(true);
        }
        let client = aws_sdk_s3::Client::from_conf(builder.build());
        let keys =
            list_keys(&client, &bucket, &prefix).await.map_err(|e| e.context(format!("listing {url}")))?;
        let manifests: Vec<&String> = keys.iter().filter(|k| k.ends_with("manifest-files.json")).collect();
        let mut files = Vec::new();
        if manifests.is_empty() {
            for k in &keys {
                let name = k.rsplit('/').next().unwrap_or(k);
                if (name.ends_with(".json") || name.ends_with(".json.gz")) && !name.starts_with("manifest-") {
                    files.push(DataFile { path: PathBuf::from(k), item_count: None });
                }
            }
        }
        let listed: std::collections::HashSet<&str> = keys.iter().map(String::as_str).collect();
        for m in manifests {
            let text = get_text(&client, &bucket, m).await?;
            let origin = format!("s3://{bucket}/{m}");
            for (key, item_count) in manifest_entries(&text, &origin)? {
                if !key.starts_with(&prefix) {
                    return Err(Error::new(
                        Kind::Io,
                        format!("{origin} lists {key}, which is outside s3://{bucket}/{prefix}; refused"),
                    ));
                }
                if !listed.contains(key.as_str()) {
                    return Err(Error::new(Kind::Io, format!(
                        "{origin} lists {key}, which is not in s3://{bucket}/{prefix}: the export is incomplete"
                    )));
                }
                files.push(DataFile { path: PathBuf::from(key), item_count });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        if files.is_empty() {
            return Err(Error::config(format!(
                "no data files under {url}: expected AWSDynamoDB/<export-id>/manifest-files.json or *.json / *.json.gz objects"
            )));
        }
        Ok(Self { location: Location::S3 { client, bucket, prefix }, files, page_size: page_size.max(1) })
    }

    /// Returns where the export is (its resolved directory, or `s3://bucket/prefix`): a
    /// backfill job's identity.
    pub fn location(&self) -> String {
        match &self.location {
            Location::Local(root) => root.display().to_string(),
            Location::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// Splits `s3://bucket/prefix` into the bucket and the prefix (ending with `/` unless empty).
fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let rest =
        url.strip_prefix("s3://").ok_or_else(|| Error::config(format!("{url:?} is not an s3:// URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::config(format!("{url:?} names no bucket: write s3://bucket/prefix/")));
    }
    let prefix = prefix.trim_start_matches('/');
    let prefix =
        if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
    Ok((bucket.to_string(), prefix))
}

async fn list_keys(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| Error::new(Kind::Aws, crate::aws::describe(&e)))?;
        keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok(keys),
        }
    }
}

async fn get_text(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<String> {
    let out = client.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
        Error::new(Kind::Aws, format!("reading s3://{bucket}/{key}: {}", crate::aws::describe(&e)))
    })?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| Error::new(Kind::Io, format!("reading s3://{bucket}/{key}: {e}")))?
        .into_bytes();
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::new(Kind::Io, format!("s3://{bucket}/{key} is not UTF-8 text")))
}

/// Reads a manifest's entries: (dataFileS3Key, itemCount).
fn manifest_entries(text: &str, origin: &str) -> Result<Vec<(String, Option<u64>)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::new(Kind::Io, format!("{origin} line {}: not JSON ({e})", n + 1)))?;
        let key = v
            .get("dataFileS3Key")
            .and_then(|k| k.as_str())
            .ok_or_else(|| Error::new(Kind::Io, format!("{origin} line {}: no dataFileS3Key", n + 1)))?;
        let item_count = match v.get("itemCount") {
            None => None,
            Some(c) => Some(c.as_u64().ok_or_else(|| {
                Error::new(Kind::Io, format!("{origin} line {}: itemCount {c} is not a count", n + 1))
            })?),
        };
        out.push((key.to_string(), item_count));
    }
    Ok(out)
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
    for (n, (key, item_count)) in
        manifest_entries(&text, &manifest.display().to_string())?.into_iter().enumerate()
    {
        let key = key.as_str();
        let escapes =
            Path::new(key).components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if escapes {
            return Err(Error::new(Kind::Io, format!(
                "{} entry {}: dataFileS3Key {key:?} points outside the export directory (absolute or with ..); refused",
                manifest.display(),
                n + 1
            )));
        }
        // The key is relative to the bucket; the export may have been copied with or
        // without its leading folders.
        let direct = root.join(key);
        let base = Path::new(key).file_name().map(|b| root.join("data").join(b));
        let path =
            [Some(direct), base].into_iter().flatten().find(|p| p.symlink_metadata().is_ok()).ok_or_else(
                || {
                    Error::new(
                        Kind::Io,
                        format!(
                            "{} lists {key}, which is not under {} (nor in its data/ folder)",
                            manifest.display(),
                            root.display()
                        ),
                    )
                },
            )?;
        let path = inside(root, &path).filter(|p| p.is_file()).ok_or_else(|| {
            Error::new(Kind::Io, format!(
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
    let f = std::fs::File::open(path)
        .map_err(|e| Error::new(Kind::Io, format!("cannot open {}: {e}", path.display())))?;
    lines_of(Box::new(f)).map_err(|e| Error::new(Kind::Io, format!("reading {}: {e}", path.display())))
}

/// Wraps a byte stream in a line reader, gunzipping it when it starts with gzip's magic.
fn lines_of(r: Box<dyn Read + Send>) -> Result<Box<dyn BufRead + Send>> {
    let mut r = BufReader::with_capacity(256 * 1024, r);
    let gz = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz { Box::new(BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(r))) } else { Box::new(r) })
}

/// Reads a data file's lines into pages of `page_size`, checking the manifest's count.
fn read_pages(
    mut reader: Box<dyn BufRead + Send>,
    label: &str,
    expected: Option<u64>,
    page_size: usize,
    tx: &async_channel::Sender<RawPage>,
) -> Result<()> {
    let mut lines = Vec::with_capacity(page_size);
    let mut items = 0u64;
    let mut line_no = 0u64;
    loop {
        let mut line = Vec::new();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::new(Kind::Io, format!("reading {label}: {e}")))?;
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
                RawPage { unit: label.to_string(), payload: Payload::Lines(std::mem::take(&mut lines)) };
            if tx.send_blocking(page).is_err() {
                return Ok(());
            }
        }
    }
    if !lines.is_empty()
        && tx.send_blocking(RawPage { unit: label.to_string(), payload: Payload::Lines(lines) }).is_err()
    {
        return Ok(());
    }
    match expected {
        Some(n) if n != items => Err(Error::new(
            Kind::Io,
            format!(
                "export file {label} holds {items} items but its manifest itemCount says {n}: the file is truncated or not the one the export wrote; its records were synced, but the unit fails so that none goes missing unnoticed"
            ),
        )),
        _ => Ok(()),
    }
}

impl Source for ExportSource {
    async fn units(&self, _days: &[Day], _bounds: Option<&super::KeyBounds>) -> Result<Vec<String>> {
        // An export is not indexed by day: every file is read and the parse stage keeps
        // the records of the window.
        Ok(self.files.iter().map(|f| f.path.display().to_string()).collect())
    }

    fn size_hints(&self, units: &[String]) -> Vec<Option<u64>> {
        let counts: std::collections::HashMap<String, Option<u64>> =
            self.files.iter().map(|f| (f.path.display().to_string(), f.item_count)).collect();
        units.iter().map(|u| counts.get(u).copied().flatten()).collect()
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
        let path = PathBuf::from(&unit);
        let label =
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| unit.clone());
        // An S3 object is streamed: the SDK's body, bridged to a blocking reader.
        let stream: Option<Box<dyn Read + Send>> = match &self.location {
            Location::Local(_) => None,
            Location::S3 { client, bucket, .. } => {
                let out = client.get_object().bucket(bucket).key(&unit).send().await.map_err(|e| {
                    Error::new(
                        Kind::Aws,
                        format!("reading s3://{bucket}/{unit}: {}", crate::aws::describe(&e)),
                    )
                })?;
                Some(Box::new(tokio_util::io::SyncIoBridge::new(out.body.into_async_read())))
            }
        };
        // File reading and gunzip block: keep them off the tokio workers.
        tokio::task::spawn_blocking(move || -> Result<()> {
            let reader = match stream {
                Some(s) => lines_of(s).map_err(|e| Error::new(Kind::Io, format!("reading {label}: {e}")))?,
                None => open_lines(&path)?,
            };
            read_pages(reader, &label, expected, page_size, &tx)
        })
        .await
        .map_err(|e| Error::internal(format!("export reader stopped: {e}")))?
    }
}
