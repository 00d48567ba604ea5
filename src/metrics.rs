//! Prometheus `/metrics` and `/healthz` over HTTP: for `serve`, and for one-shot `sync` and
//! `backfill` runs while they last (`--metrics-addr`). The exposition is prometheus-client's;
//! the server is tiny_http on a thread of its own.

use crate::cli::{CheckpointArgs, MetricsArgs};
use crate::command::AnyCheckpoint;
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
        *m.registry.lock().expect("registry poisoned") = r;
        m
    }

    /// Counts a finished run (`None`: it could not start, e.g. the lock was held).
    pub fn observe(&self, kind: &str, outcome: Option<&Outcome>, start_error: Option<Kind>) {
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
        let s = &o.summary;
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
        if let Some(a) = s.read_amplification() {
            self.amplification.set(a);
        }
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
    }

    /// Renders the Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("registry poisoned");
        let _ = encode(&mut out, &registry);
        out
    }
}

/// What the HTTP endpoints need to read the store.
#[derive(Clone)]
pub struct Probe {
    /// The database URL.
    pub url: String,
    /// The schema.
    pub schema: String,
    /// Checkpoint flags.
    pub checkpoint: CheckpointArgs,
    /// The staleness threshold of `/healthz`.
    pub max_age: Duration,
}

impl Probe {
    async fn report(&self) -> Result<health::Report> {
        let client = Arc::new(db::connect(&self.url).await?);
        let store = AnyCheckpoint::from_args(&self.checkpoint, client.clone(), &self.schema).await?;
        health::check(&client, &self.schema, Some(&store), self.max_age).await
    }
}

/// Starts `/metrics` and `/healthz` when `--metrics-addr` is given; returns the metrics the
/// runs are counted in.
pub fn start(
    args: &MetricsArgs,
    url: &str,
    schema: &str,
    checkpoint: &CheckpointArgs,
) -> Result<Option<Arc<Metrics>>> {
    let Some(addr) = args.metrics_addr else { return Ok(None) };
    let metrics = Arc::new(Metrics::new());
    let probe = Probe {
        url: url.to_string(),
        schema: schema.to_string(),
        checkpoint: checkpoint.clone(),
        max_age: args.max_age,
    };
    serve_http(addr, metrics.clone(), probe, tokio::runtime::Handle::current())?;
    Ok(Some(metrics))
}

/// Serves `/metrics` and `/healthz` on `addr` from a thread of its own; the store is read on
/// the runtime of `handle` at each request.
pub fn serve_http(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    probe: Probe,
    handle: tokio::runtime::Handle,
) -> Result<()> {
    let server = tiny_http::Server::http(addr).map_err(|e| {
        crate::Error::config(format!("cannot listen on --metrics-addr {addr}: {e}; choose a free address"))
    })?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let path = req.url().split('?').next().unwrap_or("").to_string();
            let (code, body, kind) = match path.as_str() {
                "/metrics" | "/healthz" => {
                    let report = handle.block_on(probe.report());
                    if let Ok(r) = &report {
                        metrics.set_health(r);
                    }
                    if path == "/metrics" {
                        (200, metrics.encode(), "application/openmetrics-text; version=1.0.0; charset=utf-8")
                    } else {
                        match report {
                            Ok(r) => {
                                let code = if r.status == Status::Healthy { 200 } else { 503 };
                                (code, r.to_json(), "application/json")
                            }
                            Err(e) => (
                                503,
                                serde_json::json!({"status": "error", "error": e.to_string()}).to_string(),
                                "application/json",
                            ),
                        }
                    }
                }
                _ => (404, "not found: /metrics or /healthz\n".to_string(), "text/plain"),
            };
            let header =
                tiny_http::Header::from_bytes(&b"Content-Type"[..], kind.as_bytes()).expect("valid header");
            let _ = req
                .respond(tiny_http::Response::from_string(body).with_status_code(code).with_header(header));
        }
    });
    Ok(())
}
