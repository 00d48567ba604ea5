//! The SSM Parameter Store checkpoint against moto.

use crate::support::*;
use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
use scansync::checkpoint::ssm::SsmCheckpoint;
use scansync::checkpoint::CheckpointStore;
use scansync::time::Timestamp;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub(crate) fn client(endpoint: &str) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        // One attempt per call: the retries under test are scansync's own.
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

pub(crate) fn moto() -> String {
    std::env::var("SCANSYNC_TEST_SSM_URL").expect("run the tests with scripts/test")
}

#[tokio::test]
async fn ssm_checkpoint_round_trips_against_moto() {
    let store = SsmCheckpoint::new(client(&moto()), &format!("/scansync/test/{}", unique()));
    assert_eq!(store.read().await.unwrap(), None);
    let t = Timestamp::parse("2026-11-26T10:11:12.345678Z").unwrap();
    store.write(t).await.unwrap();
    assert_eq!(store.read().await.unwrap(), Some(t));
    let later = t.add_micros(3_600_000_000);
    store.write(later).await.unwrap();
    assert_eq!(store.read().await.unwrap(), Some(later));
}

/// A proxy in front of moto that answers the first `fail` connections with a
/// ThrottlingException, then forwards.
async fn throttling_proxy(fail: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = moto().trim_start_matches("http://").to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if n < fail {
                    read_request(&mut conn).await;
                    let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
                    let resp = format!(
                        "HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: ThrottlingException\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                    let _ = conn.shutdown().await;
                } else {
                    let mut up = TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

async fn read_request(conn: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return;
            }
        }
    }
}

#[tokio::test]
async fn ssm_checkpoint_write_is_retried_after_throttling() {
    let (endpoint, seen) = throttling_proxy(2).await;
    let name = format!("/scansync/test/{}", unique());
    let store = SsmCheckpoint::new(client(&endpoint), &name);
    let t = Timestamp::parse("2026-11-26T12:00:00Z").unwrap();
    scansync::run::write_checkpoint(&store, t).await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 3, "two throttled attempts, then the write");
    let direct = SsmCheckpoint::new(client(&moto()), &name);
    assert_eq!(direct.read().await.unwrap(), Some(t));
}

#[tokio::test]
async fn ssm_checkpoint_write_gives_up_after_three_attempts() {
    let (endpoint, seen) = throttling_proxy(usize::MAX).await;
    let store = SsmCheckpoint::new(client(&endpoint), &format!("/scansync/test/{}", unique()));
    let err = scansync::run::write_checkpoint(&store, Timestamp::now()).await.unwrap_err();
    assert!(err.message().contains("the next run will re-process this window"), "{err}");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_sync_with_the_ssm_checkpoint_stores_the_run_start_in_the_parameter() {
    let db = TestDb::new().await;
    let dir = write_export(&[vec![export_line(&record("p1", "s1", &hours_ago(1.0), "hi"))]]);
    let name = format!("/scansync/test/{}", unique());
    let out = scansync(
        &db,
        &[
            "sync",
            "--source",
            "export",
            "--export-dir",
            dir.to_str().unwrap(),
            "--checkpoint",
            "ssm",
            "--ssm-parameter",
            &name,
        ],
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_exit(&out, 0);
    let stored = SsmCheckpoint::new(client(&moto()), &name).read().await.unwrap().expect("parameter written");
    let c = db.client().await;
    let started: String = c
        .query_one("select to_char(started_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') from scansync.sync_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, Timestamp::parse(&started).unwrap());
    let rows: i64 = c.query_one("select count(*) from scansync.checkpoints", &[]).await.unwrap().get(0);
    assert_eq!(rows, 0, "the PostgreSQL checkpoint is not used");
}
