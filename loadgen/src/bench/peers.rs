//! `loadgen bench --peers`: dlt and sling, installed from PyPI into a virtualenv the
//! benchmark makes, fed the same records flattened to one row per post (the newest version
//! of each, as scansync's parser reads them), each merging on the post's key; timed beside
//! scansync in the same run, their landed rows counted.

use super::{err, for_each_record, names, settle, BenchSpec, Figure};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio_postgres::Client;

/// The peers' pinned versions, installed into the benchmark's virtualenv.
const PEERS: &[&str] = &["dlt[postgres]==1.31.0", "sling-linux-amd64==1.4.11"];

/// The dlt pipeline: the flattened rows (JSON lines), merged on the post's key into one table
/// (dlt adds a child table for the tags list).
const DLT_SCRIPT: &str = r#"
import json, sys, dlt
from urllib.parse import urlsplit, urlunsplit
url, path = sys.argv[1], sys.argv[2]
# dlt refuses credentials without a password (its PostgresCredentials requires one), even
# where the server trusts the connection and ignores it: give it one it will not need.
u = urlsplit(url)
if u.password is None:
    host = u.hostname + (f":{u.port}" if u.port else "")
    u = u._replace(scheme="postgresql", netloc=f"{u.username or 'postgres'}:unused@{host}")
url = urlunsplit(u)

@dlt.resource(name="content", write_disposition="merge", primary_key=["platform", "external_id"])
def rows():
    with open(path) as f:
        for line in f:
            yield json.loads(line)

pipeline = dlt.pipeline(pipeline_name="scansync_bench", destination=dlt.destinations.postgres(credentials=url),
                        dataset_name="bench_dlt", pipelines_dir=sys.argv[3])
pipeline.run(rows())
"#;

/// (f) The peers on the same export: every record parsed by scansync's parser, the newest
/// version of each post kept (they have no version rule of their own), flattened to one row
/// (the fairest shape each accepts: JSON lines for dlt, CSV for sling), written to files
/// before the clock starts; each then merges it into PostgreSQL on the post's key. The venv
/// is made (or reused) at `venv` with [`PEERS`]; a peer that fails is reported with its error.
pub async fn run(spec: &BenchSpec, c: &Client, venv: &Path, export: &Path) -> Vec<Figure> {
    let fail = |name: &'static str, e: String| Figure {
        name,
        rows: 0,
        secs: f64::NAN,
        peak_rss: None,
        error: Some(e),
    };
    if let Err(e) = make_venv(venv) {
        return vec![fail(names::DLT, e.clone()), fail(names::SLING, e)];
    }
    let work = spec.work_dir.join("peers");
    let flat = match flatten(export, &work) {
        Ok(f) => f,
        Err(e) => return vec![fail(names::DLT, e.clone()), fail(names::SLING, e)],
    };
    let mut out = Vec::new();
    let _ = c.batch_execute("drop schema if exists bench_dlt cascade; drop schema if exists bench_dlt_staging cascade; drop schema if exists bench_sling cascade; create schema bench_sling").await;
    // dlt
    let settled = settle(c).await;
    let script = work.join("dlt_bench.py");
    let figure = (|| {
        std::fs::write(&script, DLT_SCRIPT).map_err(err)?;
        settled?;
        let t = Instant::now();
        let o = std::process::Command::new(venv.join("bin/python"))
            .arg(&script)
            .arg(&spec.database_url)
            .arg(&flat.jsonl)
            .arg(work.join("dlt-pipelines"))
            .env("RUNTIME__LOG_LEVEL", "WARNING")
            .output()
            .map_err(err)?;
        if !o.status.success() {
            return Err(format!("dlt exited {}: {}", o.status, tail(&o.stderr)));
        }
        Ok(t.elapsed().as_secs_f64())
    })();
    out.push(match figure {
        Ok(secs) => Figure { name: names::DLT, rows: spec.records, secs, peak_rss: None, error: None },
        Err(e) => fail(names::DLT, e),
    });
    // sling
    let settled = settle(c).await;
    let figure = (|| {
        settled?;
        let bin = sling_binary(venv)?;
        let t = Instant::now();
        let o = std::process::Command::new(bin)
            .args(["run", "--src-stream", &format!("file://{}", flat.csv.display())])
            .args(["--tgt-conn", "BENCH_PG", "--tgt-object", "bench_sling.content"])
            .args(["--mode", "incremental", "--primary-key", "platform,external_id"])
            .env("BENCH_PG", &spec.database_url)
            .env("SLING_HOME_DIR", work.join("sling"))
            .env("SLING_DISABLE_TELEMETRY", "true")
            .output()
            .map_err(err)?;
        if !o.status.success() {
            return Err(format!("sling exited {}: {}", o.status, tail(&o.stdout)));
        }
        Ok(t.elapsed().as_secs_f64())
    })();
    out.push(match figure {
        Ok(secs) => Figure { name: names::SLING, rows: spec.records, secs, peak_rss: None, error: None },
        Err(e) => fail(names::SLING, e),
    });
    // What each landed: one row per post, or the figure is not a load.
    for (f, table) in out.iter_mut().zip(["bench_dlt.content", "bench_sling.content"]) {
        if f.error.is_some() {
            continue;
        }
        match c.query_one(&format!("select count(*) from {table}"), &[]).await {
            Ok(r) if r.get::<_, i64>(0) as u64 == flat.rows => {}
            Ok(r) => f.error = Some(format!("landed {} rows for {} posts", r.get::<_, i64>(0), flat.rows)),
            Err(e) => f.error = Some(format!("{table}: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    out
}

/// The last lines of a peer's output, led by its first exception line (a Python traceback
/// ends in hints that would push the cause out of the last lines).
fn tail(b: &[u8]) -> String {
    let t = String::from_utf8_lossy(b);
    let lines: Vec<&str> = t.lines().collect();
    let cause = lines.iter().find(|l| l.contains("Exception: ") || l.contains("Error: "));
    let last = lines[lines.len().saturating_sub(8)..].join(" | ");
    match cause {
        Some(c) if !last.contains(c) => format!("{} | … | {last}", c.trim()),
        _ => last,
    }
}

/// Makes the peers' virtualenv unless it holds them already.
fn make_venv(venv: &Path) -> Result<(), String> {
    let python = venv.join("bin/python");
    let have = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", "import dlt, sling_linux_amd64; assert dlt.__version__ == '1.31.0'"])
            .status()
            .is_ok_and(|s| s.success());
    if have {
        return Ok(());
    }
    eprintln!("loadgen bench: installing the peers into {} ({})", venv.display(), PEERS.join(", "));
    let ok = std::process::Command::new("python3").args(["-m", "venv"]).arg(venv).status().map_err(err)?;
    if !ok.success() {
        return Err(format!("python3 -m venv {} failed", venv.display()));
    }
    let o = std::process::Command::new(venv.join("bin/pip"))
        .args(["install", "-q"])
        .args(PEERS)
        .output()
        .map_err(err)?;
    if !o.status.success() {
        return Err(format!("pip install {}: {}", PEERS.join(" "), tail(&o.stderr)));
    }
    Ok(())
}

/// The sling binary inside the venv (the `sling-linux-amd64` wheel ships it; the `sling`
/// wheel would download it at first run, which needs GitHub).
fn sling_binary(venv: &Path) -> Result<PathBuf, String> {
    for entry in std::fs::read_dir(venv.join("lib")).map_err(err)? {
        let p = entry.map_err(err)?.path().join("site-packages/sling_linux_amd64/bin/sling-linux-amd64");
        if p.exists() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            return Ok(p);
        }
    }
    Err(format!("no sling binary in {}", venv.display()))
}

/// The flattened, de-duplicated rows, as files.
struct Flat {
    jsonl: PathBuf,
    csv: PathBuf,
    rows: u64,
}

/// One row per post: the newest version (instant, then scan id) of every record the parser
/// accepts, with the post's own columns, its creator's and community's ids and handle, and
/// its tags.
fn flatten(export: &Path, work: &Path) -> Result<Flat, String> {
    use std::collections::HashMap;
    use std::io::Write;
    std::fs::create_dir_all(work).map_err(err)?;
    let mut newest: HashMap<(String, String), ((i64, String), serde_json::Value)> = HashMap::new();
    for_each_record(export, u64::MAX, |r| {
        let version = (r.updated_at.0, r.scan_id.clone());
        let key = (r.platform.clone(), r.external_id.clone());
        if newest.get(&key).is_some_and(|(v, _)| *v >= version) {
            return Ok(());
        }
        let row = serde_json::json!({
            "platform": r.platform, "external_id": r.external_id, "url": r.url, "caption": r.caption,
            "creator": r.creator.as_ref().map(|c| &c.external_id),
            "handle": r.creator.as_ref().and_then(|c| c.handle.as_ref()),
            "community": r.community.as_ref().map(|c| &c.external_id),
            "views": r.stats[0], "likes": r.stats[1], "comments": r.stats[2], "shares": r.stats[3],
            "posted_at": r.posted_at.map(|t| t.to_iso()), "updated_at": r.updated_at.to_iso(),
            "scan_id": r.scan_id, "deleted": r.deleted, "metadata": r.metadata, "tags": r.tags,
        });
        newest.insert(key, (version, row));
        Ok(())
    })?;
    let (jsonl, csv_path) = (work.join("rows.jsonl"), work.join("rows.csv"));
    let mut j = std::io::BufWriter::new(std::fs::File::create(&jsonl).map_err(err)?);
    let mut c = std::io::BufWriter::new(std::fs::File::create(&csv_path).map_err(err)?);
    let cols = [
        "platform",
        "external_id",
        "url",
        "caption",
        "creator",
        "handle",
        "community",
        "views",
        "likes",
        "comments",
        "shares",
        "posted_at",
        "updated_at",
        "scan_id",
        "deleted",
        "metadata",
        "tags",
    ];
    writeln!(c, "{}", cols.join(",")).map_err(err)?;
    let mut line = String::new();
    for (_, row) in newest.values() {
        writeln!(j, "{row}").map_err(err)?;
        line.clear();
        for (i, col) in cols.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            let v = &row[*col];
            let text = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Array(a) => {
                    Some(a.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>().join("|"))
                }
                other => Some(other.to_string()),
            };
            if let Some(t) = text {
                line.push('"');
                line.push_str(&t.replace('"', "\"\""));
                line.push('"');
            }
        }
        writeln!(c, "{line}").map_err(err)?;
    }
    j.flush().map_err(err)?;
    c.flush().map_err(err)?;
    Ok(Flat { jsonl, csv: csv_path, rows: newest.len() as u64 })
}
