//! The follower's logic on twins: an in-memory stream that rolls over, splits, trims and ages
//! shards out, and an in-memory store that applies a page and its position in one step.

use super::*;
use crate::attr::{Attr, Item};
use crate::stream::memory::MemoryStream;
use crate::stream::ChangeKind;
use crate::write::memory::{MemDb, MemPage, MemorySink};
use crate::write::{PageWriter, Sink};
use std::time::Instant;

#[derive(Default)]
struct State {
    arn: Option<String>,
    shards: BTreeMap<String, StoredShard>,
    gaps: Vec<Gap>,
    covers: Option<Timestamp>,
}

/// The store twin: records land in the in-memory sink, and each page moves its shard's
/// position in the same step.
#[derive(Default)]
struct MemFollow {
    state: std::sync::Mutex<State>,
    sink: MemorySink,
}

impl FollowStore for MemFollow {
    type Page = MemPage;

    fn prepare(&self, page: &ParsedPage) -> MemPage {
        self.sink.prepare(page)
    }

    async fn load(&self) -> Result<Followed> {
        let s = self.state.lock().unwrap();
        let last_at = s.shards.values().filter_map(|x| x.last_at).max();
        Ok(Followed { arn: s.arn.clone(), shards: s.shards.clone(), last_at })
    }

    async fn begin_stream(&self, stream: &StreamInfo) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        s.arn = Some(stream.arn.clone());
        s.shards.clear();
        Ok(())
    }

    async fn register(&self, _arn: &str, shards: &[Shard]) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        for sh in shards {
            s.shards.entry(sh.id.clone()).or_insert(StoredShard {
                known: Known { parent: sh.parent.clone(), state: ShardState::Open },
                position: None,
                last_at: None,
            });
        }
        Ok(())
    }

    async fn set_state(&self, _arn: &str, shard: &str, state: ShardState) -> Result<()> {
        if let Some(s) = self.state.lock().unwrap().shards.get_mut(shard) {
            s.known.state = state;
        }
        Ok(())
    }

    async fn apply(&self, _arn: &str, shard: &str, page: &MemPage, to: &Position) -> Result<WriteStats> {
        let forward = |p: &Option<String>| {
            p.as_ref().is_none_or(|p| p.parse::<u64>().unwrap() < to.seq.parse::<u64>().unwrap())
        };
        if !self.state.lock().unwrap().shards.get(shard).is_some_and(|s| forward(&s.position)) {
            return Err(Error::new(Kind::LockLost, "the position did not move forward"));
        }
        // The twin's write never waits, so the page and its position land in one poll: a kill
        // (an aborted task) can fall before both or after both, never between.
        let stats = self.sink.clone().write(page).await?;
        let mut s = self.state.lock().unwrap();
        let entry = s.shards.get_mut(shard).expect("checked above");
        entry.position = Some(to.seq.clone());
        entry.last_at = to.last_at;
        Ok(stats)
    }

    async fn record_gap(&self, _arn: &str, gap: &Gap) -> Result<()> {
        self.state.lock().unwrap().gaps.push(gap.clone());
        Ok(())
    }

    async fn covers_from(&self, _arn: &str, from: Timestamp) -> Result<()> {
        self.state.lock().unwrap().covers.get_or_insert(from);
        Ok(())
    }
}

fn item(post: usize, version: usize) -> Item {
    let at = Timestamp::parse("2026-11-01T00:00:00Z")
        .unwrap()
        .add_micros((version * 60 + post) as i64 * 1_000_000);
    [
        ("scanId", format!("scan-{post}-{version}")),
        ("updatedAt", at.to_iso()),
        ("platform", "x".to_string()),
        ("contentId", format!("p{post}")),
        ("caption", format!("v{version}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Attr::S(v)))
    .collect()
}

fn tuning() -> FollowTuning {
    FollowTuning {
        poll: Duration::from_millis(1),
        max_poll: Duration::from_millis(5),
        limit: 7,
        discover_every: Duration::from_millis(10),
        ..FollowTuning::default()
    }
}

/// The tables every change of `stream` gives when applied at once, in any order.
async fn expected(changes: &[ChangeKind]) -> MemDb {
    let sink = MemorySink::new();
    let raw = changes
        .iter()
        .map(|k| {
            crate::stream::records::raw_record(&Change {
                seq: "0".into(),
                at: Timestamp::parse("2026-11-20T00:00:00Z"),
                kind: k.clone(),
            })
        })
        .collect();
    let page = parse_page("", raw, &Filter::default());
    sink.clone().write(&sink.prepare(&page)).await.unwrap();
    sink.snapshot()
}

/// Runs a follower until every change is applied and every closed shard finished, or 10 s.
async fn follow_to_the_end(stream: &Arc<MemoryStream>, store: &Arc<MemFollow>, want: &MemDb) {
    let stop = Stop::new();
    let f = Follower::new(stream.clone(), store.clone(), "t", tuning(), stop.clone());
    let info = f.open().await.unwrap();
    let run = tokio::spawn(async move { f.run(&info).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.sink.snapshot().content != want.content {
        assert!(Instant::now() < deadline, "the follower did not catch up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.request();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn killed_at_random_moments_across_rollovers_and_splits_the_follower_loses_nothing_and_reads_children_after_parents(
) {
    let stream = Arc::new(MemoryStream::new());
    let store = Arc::new(MemFollow::default());
    let mut changes = Vec::new();
    let mut rng = fastrand::Rng::with_seed(23);
    let mut kills = fastrand::Rng::with_seed(29);
    let mut write = |stream: &MemoryStream, n: usize, changes: &mut Vec<ChangeKind>| {
        for _ in 0..n {
            let (post, version) = (rng.usize(0..40), rng.usize(0..20));
            let kind = if rng.u8(0..10) == 0 {
                let old = item(post, version);
                let keys = [("scanId".to_string(), old["scanId"].clone())].into_iter().collect();
                ChangeKind::Remove { old: Some(old), keys, by_ttl: false }
            } else {
                ChangeKind::Put(item(post, version))
            };
            stream.write(kind.clone(), Timestamp::parse("2026-11-20T00:00:00Z"));
            changes.push(kind);
        }
    };
    for round in 0..8 {
        write(&stream, 60, &mut changes);
        // Rollovers (one child) and splits (two), as the service makes them.
        stream.roll(if round % 3 == 0 { 2 } else { 1 });
        // Kills: a follower stopped at once (an aborted task) at a random moment.
        for _ in 0..3 {
            let f = Follower::new(stream.clone(), store.clone(), "t", tuning(), Stop::new());
            let info = f.open().await.unwrap();
            let h = tokio::spawn(async move { f.run(&info).await });
            tokio::time::sleep(Duration::from_micros(kills.u64(0..4000))).await;
            h.abort();
            let _ = h.await;
        }
    }
    write(&stream, 40, &mut changes);
    let want = expected(&changes).await;
    follow_to_the_end(&stream, &store, &want).await;
    assert_eq!(store.sink.snapshot().content, want.content, "the store holds what every change gives");
    assert!(store.state.lock().unwrap().gaps.is_empty(), "nothing was trimmed: no gap");

    // Lineage: no read of a child before its parent's last change was read.
    let topology = stream.topology();
    let reads = stream.reads();
    let mut children_read = 0;
    for (id, parent, _, _) in &topology {
        let (Some(parent), Some(first)) = (parent, reads.iter().position(|(s, _)| s == id)) else { continue };
        let Some(last) = topology.iter().find(|t| &t.0 == parent).and_then(|t| t.3.clone()) else { continue };
        let done = reads[..first].iter().any(|(s, seqs)| s == parent && seqs.contains(&last));
        assert!(done, "{id} was read before its parent {parent} was read to its end");
        children_read += 1;
    }
    assert!(children_read >= 8, "the test must read children: {children_read}");
}

/// A one-shard stream of `n` puts stamped a second apart from 2026-11-20T00:00:00Z, and a
/// store that has applied its first `applied` (position and last record time set).
async fn applied_up_to(
    n: usize,
    applied: usize,
) -> (Arc<MemoryStream>, Arc<MemFollow>, Vec<ChangeKind>, String) {
    let stream = Arc::new(MemoryStream::new());
    let store = Arc::new(MemFollow::default());
    let mut changes = Vec::new();
    for v in 0..n {
        let kind = ChangeKind::Put(item(v, v));
        stream.write(kind.clone(), Timestamp::parse(&format!("2026-11-20T00:00:{v:02}Z")));
        changes.push(kind);
    }
    let shard = stream.topology()[0].0.clone();
    store.state.lock().unwrap().arn = Some(crate::stream::memory::ARN.into());
    store
        .register(crate::stream::memory::ARN, &[Shard { id: shard.clone(), parent: None, closed: false }])
        .await
        .unwrap();
    {
        let mut s = store.state.lock().unwrap();
        let e = s.shards.get_mut(&shard).unwrap();
        e.position = Some(format!("{applied:021}"));
        e.last_at = Timestamp::parse(&format!("2026-11-20T00:00:{:02}Z", applied - 1));
    }
    (stream, store, changes, shard)
}

#[tokio::test]
async fn records_trimmed_before_they_were_read_are_a_gap_up_to_the_first_record_left_and_the_rest_is_read() {
    // A follower applied the first two changes, then was down while the shard's oldest six
    // were trimmed.
    let (stream, store, changes, shard) = applied_up_to(10, 2).await;
    stream.trim(&shard, 6);
    let want = expected(&changes[6..]).await;
    follow_to_the_end(&stream, &store, &want).await;
    let gaps = store.state.lock().unwrap().gaps.clone();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0].reason, gaps[0].shard.as_deref()), ("trimmed", Some(shard.as_str())));
    // The gap ends where the stream still has records: the heal reads no more than that.
    assert_eq!(gaps[0].to, Timestamp::parse("2026-11-20T00:00:06Z"));
}

#[tokio::test]
async fn a_trimmed_answer_for_records_still_kept_reapplies_nothing_before_the_position() {
    // Applied up to the third change; the stream then says "trimmed" though it keeps all.
    let (stream, store, changes, _) = applied_up_to(10, 3).await;
    stream.answer_trimmed_once();
    let want = expected(&changes[3..]).await;
    follow_to_the_end(&stream, &store, &want).await;
    // Posts 0-2 were not applied again (the store would hold them: `want` has 3-9 only),
    // and the twin refuses a position that does not move forward.
    let gaps = store.state.lock().unwrap().gaps.clone();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].from, Timestamp::parse("2026-11-20T00:00:02Z"));
    assert_eq!(
        gaps[0].to,
        Timestamp::parse("2026-11-20T00:00:03Z"),
        "the gap ends at the first record after the position"
    );
}

#[tokio::test]
async fn a_shard_that_ages_out_unread_is_lost_and_recorded_as_a_gap_while_its_child_is_read() {
    let stream = Arc::new(MemoryStream::new());
    let store = Arc::new(MemFollow::default());
    stream.write(ChangeKind::Put(item(1, 1)), None);
    let parent = stream.topology()[0].0.clone();
    store.state.lock().unwrap().arn = Some(crate::stream::memory::ARN.into());
    store
        .register(crate::stream::memory::ARN, &[Shard { id: parent.clone(), parent: None, closed: false }])
        .await
        .unwrap();
    stream.roll(1);
    stream.age_out(&parent);
    let child_change = ChangeKind::Put(item(2, 2));
    stream.write(child_change.clone(), None);
    let want = expected(&[child_change]).await;
    follow_to_the_end(&stream, &store, &want).await;
    let s = store.state.lock().unwrap();
    assert_eq!(s.shards[&parent].known.state, ShardState::Lost);
    assert_eq!(s.gaps.iter().map(|g| g.reason).collect::<Vec<_>>(), ["lost"]);
}

#[test]
fn sequence_numbers_compare_as_numbers_whatever_their_padding() {
    use super::seq_after;
    assert!(seq_after("000000000000000001000", "999"));
    assert!(seq_after(
        "49668042116394826524580547034520817046290937049542262786",
        "4966804211639482652458054703452081704629093704954226278"
    ));
    assert!(!seq_after("000000000000000000999", "1000"));
    assert!(!seq_after("42", "00042"), "equal is not after");
}

#[tokio::test]
async fn a_trim_with_nothing_after_the_position_is_a_gap_until_now() {
    // Everything applied; then a trim is answered, and the shard has nothing after it.
    let (stream, store, _, _) = applied_up_to(3, 3).await;
    stream.answer_trimmed_once();
    let stop = Stop::new();
    let f = Follower::new(stream.clone(), store.clone(), "t", tuning(), stop.clone());
    let info = f.open().await.unwrap();
    let run = tokio::spawn(async move { f.run(&info).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.state.lock().unwrap().gaps.is_empty() {
        assert!(Instant::now() < deadline, "no gap was recorded");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.request();
    run.await.unwrap().unwrap();
    let gaps = store.state.lock().unwrap().gaps.clone();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0].from, gaps[0].to), (Timestamp::parse("2026-11-20T00:00:02Z"), None));
    assert!(store.sink.snapshot().content.is_empty(), "nothing before the position was applied again");
}
