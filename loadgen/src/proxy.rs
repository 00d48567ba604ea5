//! Proxies for measuring and fault injection, on loopback only.
//!
//! - [`TcpProxy`]: forwards TCP (PostgreSQL, DynamoDB), optionally delaying every chunk the
//!   client sends (DynamoDB-like latency), and can reset every live connection at once (a
//!   network cut in the middle of a transaction).
//! - [`HttpFaultProxy`]: forwards HTTP/1.1 requests to an AWS API server (dynalite, moto) and,
//!   while a fault is switched on, answers throttling errors or 500s, or holds the request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy: latency on the client's side, and a switch that cuts every connection.
#[derive(Clone)]
pub struct TcpProxy {
    /// The address clients connect to.
    pub addr: SocketAddr,
    generation: Arc<AtomicU64>,
}

impl TcpProxy {
    /// Starts a proxy to `upstream`, delaying each client chunk by `delay`.
    pub async fn start(upstream: SocketAddr, delay: Duration) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let generation = Arc::new(AtomicU64::new(0));
        let gen = generation.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let gen = gen.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let born = gen.load(Ordering::SeqCst);
                    pipe(client, server, delay, gen, born).await;
                });
            }
        });
        Ok(Self { addr, generation })
    }

    /// Resets every connection open now (RST to both sides); later ones pass.
    pub fn reset_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

async fn pipe(client: TcpStream, server: TcpStream, delay: Duration, gen: Arc<AtomicU64>, born: u64) {
    let (client, server) = (Arc::new(client), Arc::new(server));
    let cut = {
        let gen = gen.clone();
        async move {
            while gen.load(Ordering::SeqCst) == born {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let up = copy(client.clone(), server.clone(), delay);
    let down = copy(server.clone(), client.clone(), Duration::ZERO);
    tokio::select! {
        _ = cut => {
            // Linger 0: closing sends RST, as a dropped network path or a failover does.
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
        _ = async { tokio::join!(up, down) } => {}
    }
}

async fn copy(from: Arc<TcpStream>, to: Arc<TcpStream>, delay: Duration) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if from.readable().await.is_err() {
            return;
        }
        let n = match from.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut off = 0;
        while off < n {
            if to.writable().await.is_err() {
                return;
            }
            match to.try_write(&buf[off..n]) {
                Ok(w) => off += w,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
    }
}

/// What the HTTP fault proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum HttpFault {
    /// Forward it.
    Pass = 0,
    /// Answer `400 ThrottlingException` (DynamoDB's and SSM's throttling answer).
    Throttle = 1,
    /// Answer `500 InternalServerError`.
    ServerError = 2,
    /// Hold the request until the fault is switched off, then forward it (a stalled server).
    Stall = 3,
    /// Answer the next `GetRecords` with `ExpiredIteratorException` (once; other requests
    /// pass), as the service does for an iterator older than 15 minutes.
    ExpiredIterator = 4,
    /// Answer the next `GetRecords`, and `GetShardIterator` calls that ask for a position, with
    /// `TrimmedDataAccessException` until one `TRIM_HORIZON` iterator was asked for (as the
    /// service does once the records after a position are trimmed).
    Trimmed = 5,
}

/// An HTTP/1.1 proxy in front of an AWS API server, with a fault switch.
#[derive(Clone)]
pub struct HttpFaultProxy {
    /// The address clients connect to (`http://{addr}` as the endpoint).
    pub addr: SocketAddr,
    fault: Arc<AtomicU8>,
    /// Requests answered with a fault, by kind.
    pub injected: Arc<Mutex<[u64; 6]>>,
}

impl HttpFaultProxy {
    /// Starts a proxy to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let proxy = Self { addr, fault: Arc::new(AtomicU8::new(0)), injected: Arc::default() };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let p = p.clone();
                tokio::spawn(async move {
                    let _ = p.serve(client, upstream).await;
                });
            }
        });
        Ok(proxy)
    }

    /// Switches the fault on (or off with [`HttpFault::Pass`]).
    pub fn set(&self, fault: HttpFault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    fn current(&self) -> HttpFault {
        match self.fault.load(Ordering::SeqCst) {
            1 => HttpFault::Throttle,
            2 => HttpFault::ServerError,
            3 => HttpFault::Stall,
            4 => HttpFault::ExpiredIterator,
            5 => HttpFault::Trimmed,
            _ => HttpFault::Pass,
        }
    }

    /// Serves one client connection, request by request (keep-alive).
    async fn serve(&self, mut client: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
        let mut server: Option<TcpStream> = None;
        loop {
            let Some(request) = read_message(&mut client).await? else { return Ok(()) };
            let mut fault = self.current();
            while fault == HttpFault::Stall {
                self.injected.lock().expect("counts")[3] += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                fault = self.current();
            }
            let target = {
                let head = String::from_utf8_lossy(&request[..find(&request, b"\r\n\r\n").unwrap_or(0)])
                    .to_ascii_lowercase();
                head.lines()
                    .find_map(|l| l.strip_prefix("x-amz-target:").map(|t| t.trim().to_string()))
                    .unwrap_or_default()
            };
            let body_text = String::from_utf8_lossy(&request);
            let fault = match fault {
                HttpFault::ExpiredIterator if target.ends_with(".getrecords") => {
                    self.set(HttpFault::Pass);
                    fault
                }
                HttpFault::Trimmed
                    if target.ends_with(".getsharditerator") && body_text.contains("TRIM_HORIZON") =>
                {
                    self.set(HttpFault::Pass);
                    HttpFault::Pass
                }
                HttpFault::Trimmed
                    if target.ends_with(".getrecords") || target.ends_with(".getsharditerator") =>
                {
                    fault
                }
                HttpFault::ExpiredIterator | HttpFault::Trimmed => HttpFault::Pass,
                other => other,
            };
            if fault != HttpFault::Pass {
                self.injected.lock().expect("counts")[fault as usize] += 1;
                let (status, kind, message) = match fault {
                    HttpFault::Throttle => (
                        "400 Bad Request",
                        "ThrottlingException",
                        "Rate of requests exceeds the allowed throughput.",
                    ),
                    HttpFault::ExpiredIterator => {
                        ("400 Bad Request", "ExpiredIteratorException", "Iterator expired (injected)")
                    }
                    HttpFault::Trimmed => (
                        "400 Bad Request",
                        "TrimmedDataAccessException",
                        "The records are trimmed (injected)",
                    ),
                    _ => (
                        "500 Internal Server Error",
                        "InternalServerError",
                        "Internal server error (injected)",
                    ),
                };
                // DynamoDB Streams answers in DynamoDB's error namespace too.
                let body = format!(
                    r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"{message}"}}"#
                );
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-ErrorType: {kind}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                client.write_all(head.as_bytes()).await?;
                client.write_all(body.as_bytes()).await?;
                continue;
            }
            if server.is_none() {
                server = Some(TcpStream::connect(upstream).await?);
            }
            let s = server.as_mut().expect("connected above");
            s.write_all(&request).await?;
            match read_message(s).await? {
                Some(response) => client.write_all(&response).await?,
                None => return Ok(()),
            }
        }
    }
}

/// Reads one HTTP/1.1 message (head and a Content-Length body; chunked bodies are read to
/// the terminating chunk). `None` at a clean end of stream.
async fn read_message(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(4096);
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) };
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    loop {
        let done = match (length, chunked) {
            (Some(n), _) => buf.len() >= head_end + n,
            (None, true) => find(&buf[head_end..], b"0\r\n\r\n").is_some(),
            (None, false) => true,
        };
        if done {
            return Ok(Some(buf));
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
