//! `scansync follow` against AWS's DynamoDB Local of the test's own, under `faketime`: its
//! clock runs 600 times as fast, so a shard rolls over to a child every ~24 s, an iterator
//! expires after ~1.5 s and records are trimmed after ~2.4 minutes. The writers stamp their
//! records on that clock, as writers beside the real service would on theirs.

use crate::follow::{caught_up, kill9, put_line};
use crate::removals::removal_line;
use crate::support::*;
use aws_sdk_dynamodb::types::StreamViewType;
use scansync::attr::{Attr, Item};
use scansync::time::Timestamp;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How much faster the server's clock runs.
const SPEED: i64 = 600;

/// DynamoDB Local under `faketime -f "+0 x600"`, stopped when dropped: in a process group
/// of its own, since `faketime` runs java as its child.
struct FastServer {
    child: Child,
    endpoint: String,
}

impl Drop for FastServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl FastServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::var("SCANSYNC_TEST_DDBLOCAL_DIR").expect("run with scripts/test");
        use std::os::unix::process::CommandExt;
        let child = Command::new("faketime")
            .args(["-f", &format!("+0 x{SPEED}"), "java", "-Djava.library.path=DynamoDBLocal_lib"])
            .args(["-jar", "DynamoDBLocal.jar", "-inMemory", "-port", &port.to_string()])
            .current_dir(dir)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("faketime and java (scripts/test installs them)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "DynamoDB Local under faketime did not listen in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        FastServer { child, endpoint: format!("http://127.0.0.1:{port}") }
    }
}

/// The server's clock: its time at one real instant, and its speed.
struct Clock {
    at: Instant,
    fake: Timestamp,
}

impl Clock {
    /// Read from the creation time of `table`, made just before.
    async fn of(table: &Table) -> Self {
        let d = table.client.describe_table().table_name(&table.name).send().await.unwrap();
        let created = d.table.and_then(|t| t.creation_date_time).expect("a creation time");
        let fake = Timestamp(created.as_secs_f64().mul_add(1e6, 0.0) as i64);
        Clock { at: Instant::now(), fake }
    }

    fn now(&self) -> Timestamp {
        self.fake.add_micros(self.at.elapsed().as_micros() as i64 * SPEED)
    }
}

fn follower(table: &Table, db: &TestDb, extra: &[&str]) -> (Running, PathBuf) {
    let log = std::env::temp_dir().join(format!("scansync-follow-clock-{}.log", unique()));
    let args =
        [&["follow", "--table", &table.name, "--poll", "20ms", "--discover-every", "1s"][..], extra].concat();
    let child = table
        .command(&db.url, &args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (Running(Some(child)), log)
}

/// The changes so far, as an incremental export, through the export path: the state the
/// follower must reach.
async fn expected(lines: &[String]) -> Vec<String> {
    let db = TestDb::new().await;
    let dir = write_export(&[lines.to_vec()]);
    let args = ["backfill", "--source", "export", "--export-dir", dir.to_str().unwrap(), "--progress", "off"];
    assert_exit(&scansync(&db, &args).await, 0);
    std::fs::remove_dir_all(&dir).unwrap();
    dump_logical(&db.client().await, "scansync").await
}

/// A batch of new posts `from..to`, stamped now on the server's clock.
fn posts(clock: &Clock, from: usize, to: usize, caption: &str) -> Vec<Item> {
    (from..to)
        .map(|i| record(&format!("p{i:04}"), &format!("s{i}"), &clock.now().to_iso(), caption))
        .collect()
}

async fn shards(db: &TestDb) -> Vec<(String, Option<String>, String)> {
    let c = db.client().await;
    let rows = c
        .query("select shard_id, parent_shard_id, state from scansync.stream_shards order by shard_id", &[])
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn under_a_fast_clock_the_follower_reads_every_rollover_renews_expired_iterators_and_survives_kills() {
    let server = FastServer::start();
    let table = Table::create(&server.endpoint, Some(StreamViewType::NewAndOldImages)).await;
    let clock = Clock::of(&table).await;
    let db = TestDb::new().await;
    // Idle reads wait up to 3 s: longer than an iterator lives on this clock (15 min, 1.5 s).
    let flags = ["--max-poll", "3s"];
    let (mut child, mut log) = follower(&table, &db, &flags);
    let mut rng = fastrand::Rng::with_seed(61);
    let (mut lines, mut live): (Vec<String>, Vec<Item>) = (Vec::new(), Vec::new());
    let started = Instant::now();
    let mut logs = Vec::new();
    // About 60 s: 10 hours of the server's clock, two or three rollovers.
    for round in 0..10 {
        let batch = posts(&clock, round * 20, round * 20 + 20, "new");
        table.put(&batch).await;
        let ack = Timestamp::now().0;
        lines.extend(batch.iter().map(|i| put_line(i, ack)));
        live.extend(batch);
        // Newer versions of older posts (the same items, modified), and removals.
        let mut changed = Vec::new();
        for _ in 0..6 {
            let i = rng.usize(..live.len());
            let item = with(
                live[i].clone(),
                &[
                    ("updatedAt", Attr::S(clock.now().to_iso())),
                    ("caption", Attr::S(format!("round {round}"))),
                ],
            );
            if !changed.iter().any(|c: &Item| c["scanId"] == item["scanId"]) {
                live[i] = item.clone();
                changed.push(item);
            }
        }
        table.put(&changed).await;
        lines.extend(changed.iter().map(|i| put_line(i, ack)));
        let gone = live.remove(rng.usize(..live.len()));
        if let Attr::S(scan) = &gone["scanId"] {
            table.delete(scan).await;
        }
        lines.push(removal_line(&gone, ack));
        tokio::time::sleep(Duration::from_millis(rng.u64(2000..8000))).await;
        if round % 3 == 1 {
            kill9(&mut child);
            logs.push(log);
            (child, log) = follower(&table, &db, &flags);
        }
    }
    let want = expected(&lines).await;
    let got = caught_up(&db, &want, Duration::from_secs(90)).await;
    assert_same_rows(&got, &want, "the follower's tables against the same changes through an export");
    kill9(&mut child);
    logs.push(log);
    eprintln!("{} s of the server's clock passed", (clock.now().0 - clock.fake.0) / 1_000_000);
    assert!(started.elapsed() > Duration::from_secs(40));

    // Every rollover was followed: a chain of shards, each parent finished before its child.
    let shards = shards(&db).await;
    assert!(shards.len() >= 3, "two rollovers at least: {shards:?}");
    for (id, parent, state) in &shards {
        if let Some(p) = parent {
            let parent = shards.iter().find(|s| &s.0 == p);
            assert_eq!(parent.map(|s| s.2.as_str()), Some("finished"), "the parent of {id}: {shards:?}");
        }
        assert_ne!(state, "lost", "{shards:?}");
    }
    let c = db.client().await;
    let gaps: i64 = c.query_one("select count(*) from scansync.stream_gaps", &[]).await.unwrap().get(0);
    assert_eq!(gaps, 0, "nothing was trimmed: no gap");
    let text: String = logs.iter().map(|l| std::fs::read_to_string(l).unwrap_or_default()).collect();
    assert!(text.contains("the shard iterator expired"), "an idle wait outlived an iterator: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_down_for_more_than_a_day_of_the_streams_clock_records_the_gap_and_heals_it_through_the_index(
) {
    let server = FastServer::start();
    let table = Table::create(&server.endpoint, Some(StreamViewType::NewAndOldImages)).await;
    let clock = Clock::of(&table).await;
    let db = TestDb::new().await;
    let (mut child, log) = follower(&table, &db, &[]);
    let mut lines = Vec::new();
    let first = posts(&clock, 0, 20, "before");
    table.put(&first).await;
    lines.extend(first.iter().map(|i| put_line(i, 0)));
    let want = expected(&lines).await;
    assert_same_rows(&caught_up(&db, &want, Duration::from_secs(60)).await, &want, "before the outage");
    kill9(&mut child);

    // Written while the follower is down, then more than a day passes on the stream's
    // clock: these records are trimmed before any follower reads them.
    let during = posts(&clock, 20, 40, "during");
    table.put(&during).await;
    lines.extend(during.iter().map(|i| put_line(i, 0)));
    let down = Instant::now();
    while clock.now().0 - clock.fake.0 < 26 * 3_600_000_000 || down.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let after = posts(&clock, 40, 60, "after");
    table.put(&after).await;
    lines.extend(after.iter().map(|i| put_line(i, 0)));

    let (mut child, log2) = follower(&table, &db, &[]);
    let want = expected(&lines).await;
    let got = caught_up(&db, &want, Duration::from_secs(120)).await;
    let text = [&log, &log2].map(|l| std::fs::read_to_string(l).unwrap_or_default()).concat();
    assert_same_rows(&got, &want, &format!("after the outage, healed (the follower's log: {text})"));
    let c = db.client().await;
    // The rows can be caught up (by an earlier gap's heal) before a later gap's own heal has
    // run: every gap is waited for, up to a minute, then each must be healed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let gaps = loop {
        let gaps = c
            .query(
                "select reason, healed_at is not null, heal_error from scansync.stream_gaps order by id",
                &[],
            )
            .await
            .unwrap();
        if gaps.iter().all(|g| g.get::<_, bool>(1)) || Instant::now() > deadline {
            break gaps;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(!gaps.is_empty(), "the outage is a gap");
    for g in &gaps {
        assert!(
            g.get::<_, bool>(1),
            "every gap healed: {:?} {:?}",
            g.get::<_, String>(0),
            g.get::<_, Option<String>>(2)
        );
    }
    let heals: i64 = c
        .query_one(
            "select count(*) from scansync.sync_runs where kind = 'heal' and status = 'succeeded'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(heals >= 1, "a heal through the index ran");
    kill9(&mut child);
}
