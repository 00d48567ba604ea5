//! `scansync serve`: the incremental sync on a schedule in one long-running process (a
//! Kubernetes Deployment, a systemd service), with Prometheus `/metrics` and `/healthz`.
//!
//! - Never two runs at once: runs follow one another in this process, and the run lock keeps
//!   out any other process.
//! - A run that overruns its slot is followed at once by the next; missed ticks collapse into
//!   that one run, which covers the whole gap from the checkpoint.
//! - A run bounded by `--max-window` (a backlog) is followed at once by the next window,
//!   until the sync reaches now.
//! - A failed run is retried at the next tick; a run that finds the lock held waits for it.
//! - SIGTERM/SIGINT: the run in progress stops gracefully, and serve exits 143/130.

use crate::cli::{CheckpointArgs, ServeArgs};
use crate::command::{self, AnyCheckpoint, AnySource, RunRequest, Scope};
use crate::error::{Kind, Result};
use crate::health::{self, Status};
use crate::ledger::RunKind;
use crate::run::Outcome;
use crate::window::WindowConfig;
use crate::{db, summary};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Runs the sync every `--every` until a signal stops it; returns the exit status.
pub async fn serve(url: &str, schema: &str, args: &ServeArgs) -> Result<u8> {
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = args.metrics_addr {
        let probe = Probe {
            url: url.to_string(),
            schema: schema.to_string(),
            checkpoint: args.sync.checkpoint.clone(),
            max_age: args.max_age,
        };
        serve_http(addr, metrics.clone(), probe, tokio::runtime::Handle::current())?;
    }
    let w = &args.sync.window;
    let window = WindowConfig {
        lookback: w.lookback,
        overlap_days: w.overlap_days,
        first_run_window: w.first_run_window,
        offset_margin: w.offset_margin,
        max_window: w.max_window,
    };
    let token = crate::shutdown::token();
    let mut next = Instant::now();
    loop {
        let jitter = Duration::from_millis(fastrand::u64(0..=args.jitter.as_millis() as u64));
        let start_at = next + jitter;
        tokio::select! {
            _ = tokio::time::sleep_until(start_at.into()) => {}
            _ = token.cancelled() => break,
        }
        let started = Instant::now();
        let source = AnySource::from_args(&args.sync.source, &args.sync.tuning).await;
        let run = match source {
            Ok(source) => {
                let req = RunRequest {
                    url,
                    schema,
                    kind: RunKind::Sync,
                    scope: Scope::Incremental { window, checkpoint: &args.sync.checkpoint },
                    source,
                    tuning: command::tuning(&args.sync.tuning),
                };
                command::run(req).await
            }
            Err(e) => Err(e),
        };
        let mut again_now = false;
        match &run {
            Ok(outcome) => {
                summary::print("sync", outcome);
                metrics.observe("sync", Some(outcome), None);
                again_now =
                    outcome.result.is_ok() && outcome.plan.as_ref().is_some_and(|p| p.until.is_some());
            }
            Err(e) => {
                tracing::error!(error = %e, "the run could not start; trying again at the next tick");
                metrics.observe("sync", None, Some(e.kind()));
            }
        }
        if token.is_cancelled() {
            break;
        }
        // The next slot; an overrun collapses the missed ticks into one run, now.
        next = if again_now { Instant::now() } else { (started + args.every).max(Instant::now()) };
    }
    Ok(crate::shutdown::exit_code().unwrap_or(command::EXIT_OK))
}
