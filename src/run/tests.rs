//! Run logic against the in-memory twins: checkpoint-last, retries, convergence.

use super::*;
use crate::attr::{Attr, Item};
use crate::checkpoint::memory::MemoryCheckpoint;
use crate::error::Kind;
use crate::source::memory::MemorySource;
use crate::write::memory::{Fault, MemorySink};

fn item(id: usize, version: usize, at: &str) -> Item {
    let s = |x: String| Attr::S(x);
    [
        ("scanId", s(format!("scan-{id}-{version}"))),
        ("datePartition", s(at[..10].to_string())),
        ("updatedAt", s(at.to_string())),
        ("platform", s("tiktok".into())),
        ("contentId", s(format!("post-{id}"))),
        ("caption", s(format!("v{version}"))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn items() -> Vec<Item> {
    let mut v = Vec::new();
    for id in 0..40 {
        for version in 0..3 {
            let day = 24 + (id % 3);
            v.push(item(id, version, &format!("2026-11-{day}T1{version}:00:00Z")));
        }
    }
    v
}

fn tuning() -> Tuning {
    Tuning { fetchers: 2, writers: 2, ..Tuning::default() }
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-26T20:00:00Z").unwrap()
}

/// One incremental run of `items()` in pages of `page_size`, at `now()`.
async fn run_once(sink: &MemorySink, store: &MemoryCheckpoint, page_size: usize) -> Outcome {
    let source = Arc::new(MemorySource::new(items(), page_size));
    incremental(source, Arc::new(sink.clone()), store, now(), &window(), tuning(), Hooks::default()).await
}

fn window() -> WindowConfig {
    WindowConfig { first_run_window: std::time::Duration::from_secs(5 * 86_400), ..WindowConfig::default() }
}

#[tokio::test]
async fn checkpoint_is_written_only_after_every_page_commits() {
    let store = MemoryCheckpoint::new(None);
    let sink = MemorySink::new();
    let out = run_once(&sink, &store, 7).await;
    out.result.unwrap();
    assert_eq!(store.get(), Some(now()));
    let db = sink.snapshot();
    assert_eq!(db.content.len(), 40);
    assert!(db.content.values().all(|c| c.live.as_ref().unwrap().caption.as_deref() == Some("v2")));
}

#[tokio::test]
async fn checkpoint_is_unchanged_when_a_page_fails_after_others_committed() {
    let before = Timestamp::parse("2026-11-20T00:00:00Z").unwrap();
    let store = MemoryCheckpoint::new(Some(before));
    let sink = MemorySink::failing(Fault { at_write: 4, times: 1, kind: Kind::Database });
    let out = run_once(&sink, &store, 7).await;
    let err = out.result.unwrap_err();
    assert_eq!(err.kind(), Kind::Database);
    assert_eq!(store.get(), Some(before));
    assert!(sink.snapshot().pages >= 3, "pages before the failure committed");
}

#[tokio::test]
async fn the_run_after_a_failure_converges_to_the_unfailed_state() {
    let clean = MemorySink::new();
    let store = MemoryCheckpoint::new(None);
    run_once(&clean, &store, 7).await.result.unwrap();

    let failing = MemorySink::failing(Fault { at_write: 5, times: 1, kind: Kind::Database });
    let store = MemoryCheckpoint::new(None);
    let src = Arc::new(MemorySource::new(items(), 7));
    assert!(incremental(
        src.clone(),
        Arc::new(failing.clone()),
        &store,
        now(),
        &window(),
        tuning(),
        Hooks::default()
    )
    .await
    .result
    .is_err());
    assert_eq!(store.get(), None);
    incremental(src, Arc::new(failing.clone()), &store, now(), &window(), tuning(), Hooks::default())
        .await
        .result
        .unwrap();
    let (mut a, mut b) = (clean.snapshot(), failing.snapshot());
    a.pages = 0;
    b.pages = 0;
    assert_eq!(a, b);
}

#[tokio::test]
async fn transient_page_failures_are_retried_and_the_run_succeeds() {
    let store = MemoryCheckpoint::new(None);
    let sink = MemorySink::failing(Fault { at_write: 2, times: 2, kind: Kind::Conflict });
    let out = run_once(&sink, &store, 7).await;
    out.result.unwrap();
    assert_eq!(out.stats.retries, 2);
    assert_eq!(store.get(), Some(now()));
}

#[tokio::test]
async fn checkpoint_write_is_retried_with_backoff() {
    let store = MemoryCheckpoint::new(None);
    store.fail_next_writes(2);
    let started = std::time::Instant::now();
    write_checkpoint(&store, now()).await.unwrap();
    assert_eq!(store.get(), Some(now()));
    // Two retries wait at least backoff(1) + backoff(2) ≥ 100 + 200 ms: a retry loop without
    // backoff (hammering a throttled SSM) would return at once.
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_millis(300), "waited {waited:?}");
    assert!(waited < std::time::Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn a_checkpoint_write_that_keeps_failing_fails_the_run_and_keeps_the_data() {
    let store = MemoryCheckpoint::new(None);
    store.fail_next_writes(3);
    let sink = MemorySink::new();
    let out = run_once(&sink, &store, 7).await;
    let err = out.result.unwrap_err();
    assert!(err.message().contains("checkpoint write failed"), "{err}");
    assert_eq!(store.get(), None);
    assert_eq!(sink.snapshot().content.len(), 40);
}

#[tokio::test]
async fn records_at_or_before_the_checkpoint_minus_lookback_are_not_written() {
    // Checkpoint 11:15 → after = 11:00: version 0 (10:00) and 1 (11:00) are old.
    let store = MemoryCheckpoint::new(Some(Timestamp::parse("2026-11-26T11:15:00Z").unwrap()));
    let sink = MemorySink::new();
    let out = run_once(&sink, &store, 5).await;
    out.result.unwrap();
    let db = sink.snapshot();
    // Only the 26th's partition has records after 11:00 (v2 at 12:00); ids with id % 3 == 2.
    assert_eq!(db.content.len(), 13);
    // v1 (11:00:00Z, exactly the bound) is read and skipped by the exact comparison; v0
    // (10:00Z) is not even read: a UTC stamp older than the bound is outside the key bounds.
    assert_eq!(out.stats.skipped, 13);
}
