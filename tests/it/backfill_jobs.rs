//! Backfill jobs through the real binary: resumed after kill -9, shared by several workers,
//! beside an hourly sync, read from S3 (moto) as well as from disk, and reported by
//! `backfill status` and `health`.

use crate::support::*;
use loadgen::{Generator, Mix, Shape, Stamps};
use scansync::attr::Item;
use scansync::time::Timestamp;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generated dirty records (updates, tombstones, rejects) stamped over 2026-01-10..12.
pub(crate) fn records(n: u64, seed: u64) -> Vec<Item> {
    let mut g = Generator::new(
        seed,
        Mix { stamps: Stamps::Mixed, update_rate: 0.35, tombstone_rate: 0.1, ..Mix::default() },
        Shape { creators: 80, communities: 20, tags: 40, zipf_s: 1.05 },
    );
    let start = Timestamp::parse("2026-01-10T00:00:00Z").unwrap();
    let step = 3 * 86_400_000_000 / n as i64;
    (0..n).map(|i| g.next_record(start.add_micros(i as i64 * step)).item).collect()
}

/// `records` cut into `files` export files.
pub(crate) fn export_files(items: &[Item], files: usize) -> Vec<Vec<String>> {
    export_files_of_lines(items.iter().map(export_line).collect(), files)
}

/// Starts the binary without waiting (for kill -9 and for workers side by side).
pub(crate) fn spawn(url: &str, args: &[&str]) -> Child {
    command(url, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start scansync")
}

pub(crate) async fn wait(child: Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap()
}

pub(crate) fn export_args<'a>(dir: &'a str, page_size: &'a str) -> Vec<&'a str> {
    export_args_with(dir, page_size, "2", "2")
}

pub(crate) fn export_args_with<'a>(
    dir: &'a str,
    page_size: &'a str,
    fetchers: &'a str,
    writers: &'a str,
) -> Vec<&'a str> {
    vec![
        "backfill",
        "--source",
        "export",
        "--export-dir",
        dir,
        "--page-size",
        page_size,
        "--fetchers",
        fetchers,
        "--writers",
        writers,
        "--progress",
        "log",
    ]
}

/// (units, units done, sum of completions, units whose completions is not 1 or 0); all zero
/// before the first run's migrations created the table (a kill can land that early).
async fn unit_counts(db: &TestDb) -> (i64, i64, i64, i64) {
    let c = db.client().await;
    let created: bool =
        c.query_one("select to_regclass('scansync.backfill_units') is not null", &[]).await.unwrap().get(0);
    if !created {
        return (0, 0, 0, 0);
    }
    let r = c
        .query_one(
            "select count(*), count(*) filter (where state = 'done'), coalesce(sum(completions), 0)::int8,
                    count(*) filter (where completions > 1 or (state = 'done' and completions <> 1))
             from scansync.backfill_units",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

async fn reference(files: &[Vec<String>], page_size: &str) -> Vec<String> {
    let db = TestDb::new().await;
    let dir = write_export(files);
    let out = scansync(&db, &export_args(dir.to_str().unwrap(), page_size)).await;
    assert_exit(&out, 0);
    std::fs::remove_dir_all(&dir).unwrap();
    dump_logical(&db.client().await, "scansync").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_killed_twenty_times_resumes_to_the_tables_of_one_clean_run_and_finishes_no_unit_twice() {
    let files = export_files(&records(3000, 21), 30);
    let want = reference(&files, "25").await;
    let db = TestDb::new().await;
    let dir = write_export(&files);
    let args = export_args(dir.to_str().unwrap(), "25");
    // Time one run to place the kills inside it.
    let probe = TestDb::new().await;
    let t = Instant::now();
    assert_exit(&scansync(&probe, &args).await, 0);
    let run_ms = t.elapsed().as_millis() as u64;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut partial = 0;
    // Units done so far; none before the first run created the table.
    let watch = db.client().await;
    let units_done = || async {
        watch
            .query_one("select count(*) from scansync.backfill_units where state = 'done'", &[])
            .await
            .map_or(0, |r| r.get::<_, i64>(0))
    };
    for kill in 0..20 {
        let after_a_unit = kill % 2 == 1;
        let done_before = units_done().await;
        let mut child = spawn(&db.url, &args);
        if after_a_unit {
            // Every other kill lands just after this run finished a unit of its own: with
            // fast pages, a share of a probe run is mostly the process's start, and the kills
            // placed only that way landed while units were left too rarely. Each run may
            // finish only a few units, or the job is done after a few kills and the rest
            // test nothing (2 of 20 landed while units were left when this waited up to a
            // tenth of a run).
            let deadline = Instant::now() + Duration::from_millis(2 * run_ms);
            while units_done().await <= done_before
                && Instant::now() < deadline
                && child.try_wait().unwrap().is_none()
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let within = if after_a_unit { 5 } else { (run_ms / 4).max(20) };
        tokio::time::sleep(Duration::from_millis(rng.u64(0..within))).await;
        let _ = child.kill(); // SIGKILL (the run may have finished)
        let _ = wait(child).await;
        let (total, done, _, twice) = unit_counts(&db).await;
        assert_eq!(twice, 0, "a unit was finished twice");
        if total > 0 && done > 0 && done < total {
            partial += 1;
        }
    }
    assert!(
        partial >= 3,
        "only {partial} of 20 kills landed while units were left: the test is not testing resume"
    );
    let out = scansync(&db, &args).await;
    assert_exit(&out, 0);
    let (total, done, completions, twice) = unit_counts(&db).await;
    assert_eq!((total, done, completions, twice), (30, 30, 30, 0), "every unit done exactly once");
    assert_eq!(dump_logical(&db.client().await, "scansync").await, want);
    // Every killed worker's run row was marked abandoned by a later worker.
    let running =
        column(&db.client().await, "select id::text from scansync.sync_runs where status = 'running'").await;
    assert!(running.is_empty(), "runs left running: {running:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_share_one_job_every_unit_done_once_with_the_tables_of_one_worker() {
    let files = export_files(&records(2400, 22), 24);
    let want = reference(&files, "20").await;
    let db = TestDb::new().await;
    let dir = write_export(&files);
    let args = export_args_with(dir.to_str().unwrap(), "20", "1", "2");
    // Create the schema first so the three start on an equal footing.
    assert_exit(&scansync(&db, &["migrate"]).await, 0);
    let workers: Vec<Child> = (0..3).map(|_| spawn(&db.url, &args)).collect();
    for w in workers {
        assert_exit(&wait(w).await, 0);
    }
    let (total, done, completions, twice) = unit_counts(&db).await;
    assert_eq!((total, done, completions, twice), (24, 24, 24, 0));
    let c = db.client().await;
    let attempts: i64 =
        c.query_one("select max(attempts)::int8 from scansync.backfill_units", &[]).await.unwrap().get(0);
    assert_eq!(attempts, 1, "no unit was claimed twice");
    let by: i64 = c
        .query_one("select count(distinct worker_id) from scansync.backfill_units", &[])
        .await
        .unwrap()
        .get(0);
    assert!(by >= 2, "the units were done by {by} worker(s): the workers did not share the job");
    assert_eq!(dump_logical(&c, "scansync").await, want);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_unit_gives_its_unit_back_and_another_worker_finishes_it() {
    // Few big units, small pages: a unit takes long enough to be killed inside.
    let files = export_files(&records(2000, 23), 4);
    let want = reference(&files, "10").await;
    let db = TestDb::new().await;
    let dir = write_export(&files);
    let args = export_args_with(dir.to_str().unwrap(), "10", "1", "1");
    let mut first = spawn(&db.url, &args);
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Kill once a unit is running and has committed some pages (its records are partly in).
    let unit: String = loop {
        assert!(Instant::now() < deadline, "the first worker never claimed a unit");
        let running = c
            .query_opt(
                "select u.unit from scansync.backfill_units u where u.state = 'running'
                 and (exists (select 1 from scansync.content) or exists (select 1 from scansync.bulk_content))",
                &[],
            )
            .await;
        if let Ok(Some(r)) = running {
            break r.get(0);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    first.kill().unwrap();
    let _ = wait(first).await;
    let killed: String = c
        .query_one("select worker from scansync.backfill_units where unit = $1", &[&unit])
        .await
        .unwrap()
        .get(0);
    let state: String = c
        .query_one("select state from scansync.backfill_units where unit = $1", &[&unit])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "running", "the killed worker's unit is still claimed by it (abandoned)");
    // backfill status shows it as abandoned, not running.
    let status = scansync(&db, &["backfill", "status", "--json"]).await;
    assert_exit(&status, 0);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["jobs"][0]["units"]["abandoned"], 1, "{v}");
    assert_eq!(v["jobs"][0]["state"], "interrupted", "{v}");

    assert_exit(&scansync(&db, &args).await, 0);
    let r = c
        .query_one(
            "select state, attempts, worker, completions from scansync.backfill_units where unit = $1",
            &[&unit],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "done");
    assert_eq!(r.get::<_, i32>(1), 2, "claimed twice: by the killed worker, then taken over");
    assert_ne!(r.get::<_, String>(2), killed, "finished by another worker");
    assert_eq!(r.get::<_, i32>(3), 1);
    assert_eq!(dump_logical(&c, "scansync").await, want);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh table of 1500 records of the last 40 hours, with many versions (the sync's
/// window and a backfill's partitions hold the same keys), and the backfill's day range.
pub(crate) async fn two_day_history(seed: u64) -> (Table, String, String) {
    let table = Table::new().await;
    let mut g = Generator::new(
        seed,
        Mix { stamps: Stamps::Utc, update_rate: 0.5, tombstone_rate: 0.1, ..Mix::default() },
        Shape { creators: 40, communities: 10, tags: 30, zipf_s: 1.05 },
    );
    let now = Timestamp::now();
    let n = 1500i64;
    let span = 40 * 3_600_000_000i64;
    let items: Vec<Item> =
        (0..n).map(|i| g.next_record(now.add_micros(-span + i * span / n - 60_000_000)).item).collect();
    table.put(&items).await;
    (table, now.day().plus(-2).to_string(), now.day().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_hourly_sync_during_a_running_backfill_succeeds_and_the_tables_match_the_sequential_order() {
    let (table, from, to) = two_day_history(24).await;
    let backfill = [
        "backfill",
        "--table",
        &table.name,
        "--from",
        &from,
        "--to",
        &to,
        // Small pages keep the load running while the sync beside it runs: a staged page into
        // the empty store costs little, and pages of 5 let the load end before the sync.
        "--page-size",
        "2",
        "--fetchers",
        "1",
        "--writers",
        "1",
        "--slices",
        "2",
        "--progress",
        "off",
    ];
    let sync = ["sync", "--table", &table.name, "--first-run-window", "3d", "--page-size", "100"];

    let sequential = TestDb::new().await;
    assert_exit(&scansync(&sequential, &backfill).await, 0);
    assert_exit(&scansync(&sequential, &sync).await, 0);
    let want = dump_logical(&sequential.client().await, "scansync").await;

    let db = TestDb::new().await;
    assert_exit(&scansync(&db, &["migrate"]).await, 0);
    let mut bf = spawn(&db.url, &backfill);
    // Start the sync once the backfill has committed pages.
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the backfill never committed a page");
        // Into an empty store the load is staged: its pages are in bulk_content until the fold.
        let n: i64 = c
            .query_one(
                "select (select count(*) from scansync.content) + (select count(*) from scansync.bulk_content)",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = scansync(&db, &sync).await;
    assert_exit(&out, 0);
    assert!(
        bf.try_wait().unwrap().is_none(),
        "the backfill ended before the sync did: nothing was interleaved"
    );
    assert_exit(&wait(bf).await, 0);
    assert_eq!(dump_logical(&c, "scansync").await, want);
    // The backfill left the checkpoint to the sync: it is the sync's.
    let runs = column(&c, "select kind || ' ' || status from scansync.sync_runs order by id").await;
    assert_eq!(runs, ["backfill succeeded", "sync succeeded"]);
    let checkpoints: i64 =
        c.query_one("select count(*) from scansync.checkpoints", &[]).await.unwrap().get(0);
    assert_eq!(checkpoints, 1, "the sync's checkpoint, and no other");
}

/// Writes `files` as an AWS export would lay them out under `prefix/AWSDynamoDB/<id>/`.
fn aws_layout(export_id: &str, files: &[Vec<String>]) -> Vec<(String, Vec<u8>)> {
    use std::io::Write;
    let mut objects = Vec::new();
    let mut manifest = String::new();
    for (n, lines) in files.iter().enumerate() {
        let key = format!("exports/AWSDynamoDB/{export_id}/data/{n:04}.json.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for l in lines {
            gz.write_all(l.as_bytes()).unwrap();
            gz.write_all(b"\n").unwrap();
        }
        manifest.push_str(&format!("{{\"itemCount\":{},\"dataFileS3Key\":\"{key}\"}}\n", lines.len()));
        objects.push((key, gz.finish().unwrap()));
    }
    objects.push((format!("exports/AWSDynamoDB/{export_id}/manifest-files.json"), manifest.into_bytes()));
    objects.push((
        format!("exports/AWSDynamoDB/{export_id}/manifest-summary.json"),
        b"{\"exportType\":\"X\"}".to_vec(),
    ));
    objects
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_read_from_s3_full_and_incremental_gives_the_tables_of_the_same_files_on_disk() {
    let items = records(600, 25);
    let full = export_files(&items[..400], 3);
    // An incremental export: new images of later records, and deletes carrying old images.
    let mut changes: Vec<String> = items[400..]
        .iter()
        .map(|it| {
            let mut s = String::from("{\"Metadata\":{\"WriteTimestampMicros\":{\"N\":\"1768000000000000\"}},\"Keys\":{\"scanId\":{\"S\":\"k\"}},\"NewImage\":");
            scansync::attr::write_item_dynamodb_json(it, &mut s);
            s.push('}');
            s
        })
        .collect();
    for it in items[..400].iter().step_by(50) {
        let mut s = String::from("{\"Metadata\":{\"WriteTimestampMicros\":{\"N\":\"1769000000000000\"}},\"Keys\":{\"scanId\":{\"S\":\"k\"}},\"OldImage\":");
        scansync::attr::write_item_dynamodb_json(it, &mut s);
        s.push('}');
        changes.push(s);
    }
    changes.push("{\"Metadata\":{\"WriteTimestampMicros\":{\"N\":\"1769000000000000\"}},\"Keys\":{\"scanId\":{\"S\":\"gone\"}}}".into());
    let mut objects = aws_layout("01700000000000-aaaaaaaa", &full);
    objects.extend(aws_layout("01700000000001-bbbbbbbb", &export_files_of_lines(changes, 2)));

    // On disk, the same layout.
    let dir = std::env::temp_dir().join(format!("scansync-test-s3-{}", unique()));
    for (key, body) in &objects {
        let p = dir.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let local = TestDb::new().await;
    let local_dir = dir.join("exports");
    let out = scansync(&local, &export_args(local_dir.to_str().unwrap(), "100")).await;
    assert_exit(&out, 0);

    // In S3 (moto).
    let s3_url = std::env::var("SCANSYNC_TEST_S3_URL").expect("run with scripts/test");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(&s3_url)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "test"))
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    let bucket = format!("exports-{}", unique().replace('_', "-"));
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for (key, body) in &objects {
        s3.put_object().bucket(&bucket).key(key).body(body.clone().into()).send().await.unwrap();
    }
    let remote = TestDb::new().await;
    let url = format!("s3://{bucket}/exports/");
    let out =
        scansync_env(&remote, &export_args(&url, "100"), &[("AWS_ENDPOINT_URL_S3", s3_url.clone())]).await;
    assert_exit(&out, 0);

    let (a, b) = (local.client().await, remote.client().await);
    let want = dump_logical(&a, "scansync").await;
    assert_eq!(dump_logical(&b, "scansync").await, want);
    // The incremental export's deletes are removals: read and counted, and each tombstones
    // a row only where it removed the version the row holds (never a post whose newer scan
    // is alive); the keyless delete is quarantined.
    let removals: i64 =
        b.query_one("select sum(removals)::int8 from scansync.sync_runs", &[]).await.unwrap().get(0);
    assert_eq!(removals, 8, "the removals of the incremental export");
    let (applied, wrong): (i64, i64) = b
        .query_one(
            "select count(*), count(*) filter (where source_scan_id <> deleted_scan_id)
             from scansync.content where removed_at >= '2026-01-21'",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(applied >= 1, "some removal removed the newest scan of its post");
    assert_eq!(wrong, 0, "a removal tombstoned a post whose newer scan is alive");
    let reasons =
        column(&b, "select reason from scansync.quarantine where reason = 'delete_without_old_image'").await;
    assert_eq!(reasons, ["delete_without_old_image"]);
    // Both runs are one job each, found by their location.
    let key = column(&b, "select job_key from scansync.backfill_jobs").await;
    assert_eq!(key, [format!("export:{url}:all")]);
    // A manifest entry outside the prefix is refused.
    s3.put_object()
        .bucket(&bucket)
        .key("exports/AWSDynamoDB/x/manifest-files.json")
        .body(b"{\"itemCount\":1,\"dataFileS3Key\":\"elsewhere/secret.json.gz\"}\n".to_vec().into())
        .send()
        .await
        .unwrap();
    let out = scansync_env(&remote, &export_args(&url, "100"), &[("AWS_ENDPOINT_URL_S3", s3_url)]).await;
    assert_exit(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outside s3://"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn export_files_of_lines(lines: Vec<String>, files: usize) -> Vec<Vec<String>> {
    let per = lines.len().div_ceil(files);
    lines.chunks(per).map(|c| c.to_vec()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_and_status_are_plain_lines_and_a_failed_unit_is_named_by_status_and_health() {
    let mut files = export_files(&records(300, 26), 3);
    files.push((0..20).map(|i| format!("\u{1}garbage line {i}")).collect());
    let db = TestDb::new().await;
    let dir = write_export(&files);
    let mut args = export_args(dir.to_str().unwrap(), "50");
    args.retain(|a| *a != "--progress" && *a != "log");
    args.extend(["--progress-every", "1s"]);
    let out = scansync(&db, &args).await;
    // The garbage file fails alone; the worker says so and exits 1.
    assert_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("backfill progress") && stderr.contains("units_done=3 units_total=4"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}') && !stderr.contains('\r'), "no terminal, no colours or bar: {stderr}");
    assert!(stderr.contains("1 units of backfill job 1 failed (first: "), "{stderr}");

    let status = scansync(&db, &["backfill", "status"]).await;
    assert_exit(&status, 0);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("3 units done of 4") && text.contains("— failed"), "{text}");
    assert!(
        text.contains("failed ") && text.contains("file-03.json.gz") && text.contains("not DynamoDB JSON"),
        "{text}"
    );
    let json = scansync(&db, &["backfill", "status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["jobs"][0]["failed_units"][0]["attempts"], 1, "{v}");

    let health = scansync(&db, &["health", "--json"]).await;
    assert_exit(&health, 2);
    let h: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(h["backfill_jobs"][0]["state"], "failed", "{h}");

    // A resume retries only the failed unit (which fails again, alone).
    let again = scansync(&db, &args).await;
    assert_exit(&again, 1);
    let attempts = column(
        &db.client().await,
        "select unit || ' ' || attempts from scansync.backfill_units order by ordinal",
    )
    .await;
    assert!(
        attempts.iter().filter(|a| a.ends_with(" 1")).count() == 3 && attempts[3].ends_with(" 2"),
        "{attempts:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn many_small_files_share_pages_and_transactions_while_each_file_is_its_own_unit() {
    let items = records(600, 27);
    let one_file = vec![items.iter().map(export_line).collect::<Vec<_>>()];
    let want = reference(&one_file, "100").await;
    // 300 files of 2 records.
    let files = export_files(&items, 300);
    let db = TestDb::new().await;
    let dir = write_export(&files);
    let out = scansync(&db, &export_args(dir.to_str().unwrap(), "100")).await;
    assert_exit(&out, 0);
    let (total, done, completions, twice) = unit_counts(&db).await;
    assert_eq!((total, done, completions, twice), (300, 300, 300, 0));
    let c = db.client().await;
    let pages: i64 = c.query_one("select pages from scansync.sync_runs", &[]).await.unwrap().get(0);
    assert!(
        pages <= 12,
        "{pages} page transactions for 600 records at 100 a page: small files were not batched"
    );
    assert_eq!(dump_logical(&c, "scansync").await, want);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_small_file_fails_its_shared_page_and_the_resume_retries_the_others_one_by_one() {
    let items = records(40, 28);
    let mut files = export_files(&items, 20);
    files.insert(7, (0..2).map(|i| format!("\u{1}garbage {i}")).collect());
    let db = TestDb::new().await;
    let dir = write_export(&files);
    let args = export_args_with(dir.to_str().unwrap(), "100", "1", "1");
    let out = scansync(&db, &args).await;
    assert_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("file-07.json.gz: 2 of 2 lines are not DynamoDB JSON items"), "{stderr}");
    let out = scansync(&db, &args).await;
    assert_exit(&out, 1);
    let c = db.client().await;
    let failed = column(&c, "select unit from scansync.backfill_units where state <> 'done'").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].ends_with("file-07.json.gz"), "{failed:?}");
    let content: i64 = c.query_one("select count(*) from scansync.content", &[]).await.unwrap().get(0);
    assert!(content > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_the_backfill_draws_a_progress_bar_of_units() {
    // `script` (util-linux) gives the binary a pseudo-terminal, as a person's shell would.
    if Command::new("script").arg("--version").output().is_err() {
        panic!("the `script` command (util-linux) is needed to give the binary a terminal");
    }
    let files = export_files(&records(200, 29), 4);
    let db = TestDb::new().await;
    let dir = write_export(&files);
    let cmd = format!(
        "{} backfill --source export --export-dir {} --page-size 20",
        env!("CARGO_BIN_EXE_scansync"),
        dir.display()
    );
    let out = tokio::task::spawn_blocking({
        let url = db.url.clone();
        move || {
            Command::new("script")
                .args(["-qec", &cmd, "/dev/null"])
                .env("DATABASE_URL", url)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_exit(&out, 0);
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("backfill [") && tty.contains("4/4 units"), "no bar on the terminal: {tty}");
    assert!(!tty.contains("backfill progress"), "a terminal gets the bar, not log lines: {tty}");
    std::fs::remove_dir_all(&dir).unwrap();
}
