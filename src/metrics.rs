//! Prometheus `/metrics`, `/healthz` and `/livez` over HTTP: for `serve`, and for one-shot
//! `sync` and `backfill` runs while they last (`--metrics-addr`). The exposition is
//! prometheus-client's; the server is tiny_http on a thread of its own.
//!
//! No request waits for the database: a background task reads the store's health every
//! [`PROBE_EVERY`] (each read bounded by [`PROBE_TIMEOUT`]) and the endpoints answer from
//! what it read last. `/livez` says only that the process serves (a liveness probe that a
//! database outage must not fail); `/healthz` gives the `health` verdict (a readiness probe,
//! an alarm), and 503 when the store could not be read lately.

use crate::checkpoint::any::AnyCheckpoint;
use crate::config::{CheckpointConfig, MetricsConfig, Target};
use crate::db;
use crate::error::{Kind, Result};
use crate::health::{self, Status};
use crate::run::Outcome;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often the background task reads the store's health.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long one read of the store's health may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

type Labels = Vec<(String, String)>;

/// The metrics of the runs of this process, and of the store (read at each scrape).
pub struct Metrics {
    registry: Mutex<Registry>,
    runs: Family<Labels, Counter>,
    records: Counter,
    rows: Family<Labels, Counter>,
    rejects: Family<Labels, Counter>,
    repairs: Family<Labels, Counter>,
    drift: Counter,
    retries: Counter,
    run_seconds: Histogram,
    page_seconds: Histogram,
    amplification: Gauge<f64, AtomicU64>,
    last_success_age: Gauge<f64, AtomicU64>,
    checkpoint_age: Gauge<f64, AtomicU64>,
    healthy: Gauge,
    /// Wakes the background probe: a run ended, the store's health may have changed.
    refresh: tokio::sync::Notify,
    stream_lag: Family<Labels, Gauge<f64, AtomicU64>>,
    stream_records: Counter,
    stream_open_shards: Gauge,
    stream_gaps: Counter,
    stream_gaps_open: Gauge,
    missed_by_follower: Counter,
    verify_keys: Family<Labels, Gauge>,
    verify_age: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the metrics, registered under the `scansync_` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("scansync");
        let m = Self {
            registry: Mutex::new(Registry::default()),
            runs: Family::default(),
            records: Counter::default(),
            rows: Family::default(),
            rejects: Family::default(),
            repairs: Family::default(),
            drift: Counter::default(),
            retries: Counter::default(),
            run_seconds: Histogram::new(exponential_buckets(0.5, 2.0, 14)),
            page_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            amplification: Gauge::default(),
            last_success_age: Gauge::default(),
            checkpoint_age: Gauge::default(),
            healthy: Gauge::default(),
            refresh: tokio::sync::Notify::new(),
            stream_lag: Family::default(),
            stream_records: Counter::default(),
            stream_open_shards: Gauge::default(),
            stream_gaps: Counter::default(),
            stream_gaps_open: Gauge::default(),
            missed_by_follower: Counter::default(),
            verify_keys: Family::default(),
            verify_age: Gauge::default(),
        };
        r.register("runs", "Runs by kind and outcome (succeeded, failed, cancelled, locked)", m.runs.clone());
        r.register("records_read", "Records read by committed pages", m.records.clone());
        r.register("rows_changed", "Rows inserted or updated, by table", m.rows.clone());
        r.register("rejects", "Records quarantined, by reason", m.rejects.clone());
        r.register("repairs", "Repairs, by rule", m.repairs.clone());
        r.register("drift_records", "Records carrying an attribute outside the contract", m.drift.clone());
        r.register("page_retries", "Page transactions retried after a transient failure", m.retries.clone());
        r.register("run_duration_seconds", "Wall time of a run", m.run_seconds.clone());
        r.register(
            "page_duration_seconds",
            "Time to write and commit one page, retries included",
            m.page_seconds.clone(),
        );
        r.register(
            "read_amplification",
            "Index items read per record in the window, last run (1 reads only what changed)",
            m.amplification.clone(),
        );
        r.register(
            "seconds_since_last_success",
            "Seconds since the last successful incremental run finished (from the ledger)",
            m.last_success_age.clone(),
        );
        r.register(
            "checkpoint_age_seconds",
            "Age of the checkpoint (from the checkpoint store)",
            m.checkpoint_age.clone(),
        );
        r.register("healthy", "1 when `health` says healthy, else 0", m.healthy.clone());
        r.register(
            "stream_lag_seconds",
            "Per open shard: now minus the last applied record's time, 0 while caught up (follow)",
            m.stream_lag.clone(),
        );
        r.register("stream_records_applied", "Stream records applied (follow)", m.stream_records.clone());
        r.register("stream_open_shards", "Open shards being read (follow)", m.stream_open_shards.clone());
        r.register(
            "stream_gaps",
            "Gaps found: time ranges the stream could not give (follow)",
            m.stream_gaps.clone(),
        );
        r.register("stream_gaps_open", "Gaps not healed yet (follow)", m.stream_gaps_open.clone());
        r.register(
            "rows_missed_by_follower",
            "Content rows a sync changed while a follower of the schema was alive",
            m.missed_by_follower.clone(),
        );
        r.register(
            "verify_keys",
            "Keys the last recorded verify found, by kind (missing, stale, diverged, ahead) and unrepaired (from the ledger)",
            m.verify_keys.clone(),
        );
        r.register(
            "seconds_since_last_verify",
            "Seconds since the last recorded verify finished (from the ledger; NaN: none)",
            m.verify_age.clone(),
        );
        *m.registry.lock().expect("registry poisoned") = r;
        m
    }

    /// Counts a finished run (`None`: it could not start, e.g. the lock was held).
    pub fn observe(&self, kind: &str, outcome: Option<&Outcome>, start_error: Option<Kind>) {
        self.refresh.notify_one();
        let label = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let status = match (outcome, start_error) {
            (Some(o), _) => match &o.result {
                Ok(()) => "succeeded",
                Err(e) if e.kind() == Kind::Cancelled => "cancelled",
                Err(_) => "failed",
            },
            (None, Some(Kind::Locked)) => "locked",
            (None, _) => "failed",
        };
        self.runs.get_or_create(&[label("kind", kind), label("outcome", status)].concat()).inc();
        let Some(o) = outcome else { return };
        let s = &o.stats;
        self.records.inc_by(s.read);
        let w = &s.written;
        for (table, n) in [
            ("creators", w.creators),
            ("communities", w.communities),
            ("tags", w.tags),
            ("content", w.content),
            ("content_tags", w.content_tags),
            ("quarantine", w.quarantined),
        ] {
            self.rows.get_or_create(&label("table", table)).inc_by(n);
        }
        for (reason, n) in &s.rejects {
            self.rejects.get_or_create(&label("reason", reason)).inc_by(*n);
        }
        for (rule, n) in s.repairs.fired() {
            self.repairs.get_or_create(&label("rule", rule.name())).inc_by(n);
        }
        self.drift.inc_by(s.drift.values().sum());
        self.retries.inc_by(s.retries);
        self.run_seconds.observe(s.elapsed.as_secs_f64());
        self.missed_by_follower.inc_by(s.missed_by_follower.unwrap_or(0));
        if let Some(a) = s.read_amplification() {
            self.amplification.set(a);
        }
    }

    /// Sets the follower's metrics: the lag of each open shard (the others are dropped), and
    /// the records applied and gaps found so far (totals of this process).
    pub fn set_follow(&self, lags: &[(String, f64)], records: u64, gaps: u64, gaps_open: i64) {
        self.stream_lag.clear();
        for (shard, lag) in lags {
            self.stream_lag.get_or_create(&vec![("shard".to_string(), shard.clone())]).set(*lag);
        }
        self.stream_open_shards.set(lags.len() as i64);
        let bump = |c: &Counter, total: u64| c.inc_by(total.saturating_sub(c.get()));
        bump(&self.stream_records, records);
        bump(&self.stream_gaps, gaps);
        self.stream_gaps_open.set(gaps_open);
    }

    /// Says the store's state changed (a verify recorded itself): the probe reads it again.
    pub fn changed(&self) {
        self.refresh.notify_one();
    }

    /// The histogram a run observes each committed page's write time into.
    pub fn page_seconds(&self) -> Histogram {
        self.page_seconds.clone()
    }

    /// Sets the store's gauges from a health report.
    pub fn set_health(&self, r: &health::Report) {
        let now = r.now;
        self.last_success_age.set(r.last_success.map_or(f64::NAN, |t| (now.0 - t.0) as f64 / 1e6));
        let cp = r.checkpoint.as_ref().ok().copied().flatten();
        self.checkpoint_age.set(cp.map_or(f64::NAN, |t| (now.0 - t.0) as f64 / 1e6));
        self.healthy.set(i64::from(r.status == Status::Healthy));
        self.verify_age.set(r.last_verify.as_ref().map_or(f64::NAN, |v| (now.0 - v.at.0) as f64 / 1e6));
        if let Some(v) = &r.last_verify {
            let c = &v.counts;
            for (kind, n) in [
                ("missing", c.missing),
                ("stale", c.stale),
                ("diverged", c.diverged),
                ("ahead", c.ahead),
                ("unrepaired", c.unrepaired),
            ] {
                self.verify_keys.get_or_create(&vec![("kind".to_string(), kind.to_string())]).set(n as i64);
            }
        }
    }

    /// Renders the Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("registry poisoned");
        let _ = encode(&mut out, &registry);
        out
    }
}

/// The store's health as last read by the background task: when, and what.
type Cached = Arc<RwLock<Option<(Instant, std::result::Result<health::Report, String>)>>>;

/// What the background task needs to read the store.
#[derive(Clone)]
pub struct Probe {
    /// The store.
    pub target: Target,
    /// Where the checkpoint lives.
    pub checkpoint: CheckpointConfig,
    /// The staleness threshold of `/healthz`.
    pub max_age: Duration,
    /// The lag beyond which a follower is stale.
    pub max_lag: Duration,
}

impl Probe {
    async fn report(&self, client: &mut Option<Arc<tokio_postgres::Client>>) -> Result<health::Report> {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            *client = Some(Arc::new(db::connect(&self.target.url).await?));
        }
        let c = client.clone().expect("connected above");
        let store = AnyCheckpoint::open(&self.checkpoint, c.clone(), &self.target.schema).await?;
        health::check(&c, &self.target.schema, Some(&store), self.max_age, self.max_lag).await
    }

    /// Reads the store's health every [`PROBE_EVERY`], and at once when a run ends, into
    /// `cache` (and the gauges), each read bounded by [`PROBE_TIMEOUT`], for as long as the
    /// runtime lives.
    fn spawn(self, metrics: Arc<Metrics>, cache: Cached) {
        tokio::spawn(async move {
            let mut client = None;
            loop {
                let read = match tokio::time::timeout(PROBE_TIMEOUT, self.report(&mut client)).await {
                    Ok(Ok(r)) => {
                        metrics.set_health(&r);
                        Ok(r)
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => {
                        client = None;
                        Err(format!("reading the store took more than {} s", PROBE_TIMEOUT.as_secs()))
                    }
                };
                if let Err(e) = &read {
                    tracing::warn!(error = %e, "the health probe could not read the store");
                }
                *cache.write().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), read));
                tokio::select! {
                    _ = tokio::time::sleep(PROBE_EVERY) => {}
                    _ = metrics.refresh.notified() => {}
                }
            }
        });
    }
}

/// Starts `/metrics`, `/healthz` and `/livez` when the configuration asks for them; returns
/// the metrics the runs are counted in.
pub fn start(
    cfg: &MetricsConfig,
    target: &Target,
    checkpoint: &CheckpointConfig,
) -> Result<Option<Arc<Metrics>>> {
    let Some(addr) = cfg.addr else { return Ok(None) };
    let metrics = Arc::new(Metrics::new());
    let probe = Probe {
        target: target.clone(),
        checkpoint: checkpoint.clone(),
        max_age: cfg.max_age,
        max_lag: cfg.max_lag,
    };
    serve_http(addr, metrics.clone(), probe)?;
    Ok(Some(metrics))
}

/// The answer of `/healthz` from what the probe read last.
fn healthz(cache: &Cached) -> (u16, String) {
    let error = |e: String| (503, serde_json::json!({"status": "error", "error": e}).to_string());
    match &*cache.read().unwrap_or_else(|e| e.into_inner()) {
        None => error("the store has not been read yet: starting".into()),
        Some((at, _)) if at.elapsed() > PROBE_EVERY * 3 + PROBE_TIMEOUT => {
            error(format!("the store was last read {} s ago: the probe is stuck", at.elapsed().as_secs()))
        }
        Some((_, Ok(r))) => (if r.status == Status::Healthy { 200 } else { 503 }, r.to_json()),
        Some((_, Err(e))) => error(e.clone()),
    }
}

/// Serves `/metrics`, `/healthz` and `/livez` on `addr` from a thread of its own, answered
/// from what the background probe (on the current runtime) read last.
pub fn serve_http(addr: SocketAddr, metrics: Arc<Metrics>, probe: Probe) -> Result<()> {
    let server = tiny_http::Server::http(addr).map_err(|e| {
        crate::Error::config(format!("cannot listen on --metrics-addr {addr}: {e}; choose a free address"))
    })?;
    let cache: Cached = Arc::default();
    probe.spawn(metrics.clone(), cache.clone());
    tracing::info!(%addr, "serving /metrics, /healthz and /livez");
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let path = req.url().split('?').next().unwrap_or("").to_string();
            let (code, body, kind) = match path.as_str() {
                "/metrics" => {
                    (200, metrics.encode(), "application/openmetrics-text; version=1.0.0; charset=utf-8")
                }
                "/healthz" => {
                    let (code, body) = healthz(&cache);
                    (code, body, "application/json")
                }
                "/livez" => (200, "ok\n".to_string(), "text/plain"),
                _ => (404, "not found: /metrics, /healthz or /livez\n".to_string(), "text/plain"),
            };
            let header =
                tiny_http::Header::from_bytes(&b"Content-Type"[..], kind.as_bytes()).expect("valid header");
            let _ = req
                .respond(tiny_http::Response::from_string(body).with_status_code(code).with_header(header));
        }
    });
    Ok(())
}
