//! The AWS Lambda entry (`bootstrap`): one invocation is one incremental sync, configured by
//! the same environment variables as `scansync sync` (`DATABASE_URL`, `SCANSYNC_*`; see
//! `docs/flags.md`).
//!
//! - **Before the deadline.** The run is stopped gracefully `SCANSYNC_SHUTDOWN_TIMEOUT`
//!   before the invocation's deadline: the page being written commits, the run records
//!   itself `cancelled` and lets go of its lock. A run killed by the timeout instead would
//!   leave its connection (and the lock with it) to die when PostgreSQL notices, which can
//!   take hours. With `SCANSYNC_MAX_WINDOW`, every run fits and commits progress.
//! - **A lock held elsewhere** is a result, `{"status": "skipped"}`, not an error.
//! - **A failed or cancelled run** is an error: Lambda's `Errors` metric counts it (the
//!   first alarm of `deploy/aws/lambda/template.yaml`).
//! - **Every invocation** prints one CloudWatch embedded-metric-format line (namespace
//!   `scansync`, dimension `Function`): `SuccessfulRuns` feeds the second alarm (no
//!   successful run for 3 hours), beside the records read, rows quarantined and run time.
//! - **A verify invocation**: an event `{"verify": {"days": 3}}` (a schedule of its own;
//!   `"repair": true` to repair) runs `scansync verify --days 3 --record` instead of a sync,
//!   with the same source settings. Divergent keys left fail the invocation
//!   (`VerifyDiverged`), and its metric line carries `DivergentKeys`.

use crate::cli::{Cli, Command};
use crate::config::{LogFormat, SyncConfig, Target, VerifyConfig, VerifyDays};
use crate::error::Kind;
use crate::lifecycle;
use crate::run::Outcome;
use crate::shutdown::Stop;
use crate::summary;
use clap::Parser;
use lambda_runtime::Diagnostic;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The configuration of every invocation, read once at cold start.
pub struct Handler {
    target: Target,
    sync: SyncConfig,
    /// The process's stop (SIGTERM from the Lambda runtime): each invocation's run stops
    /// with it, or at its own deadline.
    pub stop: Stop,
    /// How long before the deadline the run is told to stop.
    pub stop_before: Duration,
    /// The log format (`SCANSYNC_LOG_FORMAT`).
    pub log_format: LogFormat,
}

impl Handler {
    /// Reads the configuration from the environment, as `scansync sync` would (the
    /// database URL from `SCANSYNC_DATABASE_URL_PARAMETER` too): a bad setting fails the
    /// cold start with the same message the CLI gives.
    pub async fn from_env() -> Result<Self, String> {
        let mut cli = Cli::try_parse_from(["scansync", "sync"]).map_err(|e| e.to_string())?;
        cli.resolve_database_url()?;
        cli.fetch_database_url().await.map_err(|e| e.to_string())?;
        let target = cli.target().map_err(|e| e.to_string())?;
        let Command::Sync(sync) = &cli.command else { unreachable!("parsed as sync") };
        let sync = sync.config().map_err(|e| e.to_string())?;
        Ok(Self {
            target,
            sync,
            stop: Stop::new(),
            stop_before: cli.shutdown_timeout.0,
            log_format: cli.log_format,
        })
    }

    /// Runs one invocation of `event` that must end by `deadline_ms` (milliseconds since the
    /// epoch; 0: none), as `function`: a verify when the event asks for one, else a sync.
    pub async fn invoke(&self, event: &Value, deadline_ms: u64, function: &str) -> Result<Value, Diagnostic> {
        match event.get("verify") {
            Some(v) => self.verify(v, deadline_ms, function).await,
            None => self.sync(deadline_ms, function).await,
        }
    }

    /// A verify invocation: `{"days": N, "repair": bool}` (days 3 when absent).
    async fn verify(&self, v: &Value, deadline_ms: u64, function: &str) -> Result<Value, Diagnostic> {
        let days = v.get("days").and_then(Value::as_u64).unwrap_or(3);
        let days = u32::try_from(days).ok().filter(|d| (1..=3650).contains(d)).ok_or_else(|| Diagnostic {
            error_type: "BadEvent".into(),
            error_message: format!("verify.days must be 1 to 3650, not {days}"),
        })?;
        let cfg = VerifyConfig {
            source: self.sync.source.clone(),
            days: VerifyDays::Last(days),
            repair: v.get("repair").and_then(Value::as_bool).unwrap_or(false),
            record: true,
            keys: VerifyConfig::DEFAULT_KEYS,
            tuning: self.sync.tuning,
        };
        let stop = self.stop.child();
        let _deadline = stop_time(deadline_ms, self.stop_before).map(|after| stop.stop_after(after));
        tracing::info!(days, repair = cfg.repair, "invocation: a verify");
        let result = Box::pin(crate::verify::verify(&self.target, &cfg, &stop)).await;
        let (status, divergent) = match &result {
            Ok(r) => (if r.unrepaired() == 0 { "succeeded" } else { "diverged" }, r.unrepaired()),
            Err(e) if e.kind() == Kind::Locked => ("skipped", 0),
            Err(_) => ("failed", 0),
        };
        println!("{}", verify_emf_line(function, status, divergent));
        match result {
            Ok(r) if r.unrepaired() == 0 => Ok(serde_json::from_str(&r.to_json()).unwrap_or(Value::Null)),
            Ok(r) => Err(Diagnostic { error_type: "VerifyDiverged".into(), error_message: r.to_text() }),
            Err(e) if e.kind() == Kind::Locked => Ok(json!({"status": "skipped", "reason": e.to_string()})),
            Err(e) => Err(Diagnostic { error_type: "VerifyFailed".into(), error_message: e.to_string() }),
        }
    }

    /// A sync invocation.
    async fn sync(&self, deadline_ms: u64, function: &str) -> Result<Value, Diagnostic> {
        // The invocation's own stop: the process's signal, or this invocation's deadline.
        let stop = self.stop.child();
        let stop_after = stop_time(deadline_ms, self.stop_before);
        tracing::info!(
            deadline_ms,
            stop_after_s = stop_after.map(|d| d.as_secs()),
            "invocation: one incremental sync"
        );
        let _deadline = stop_after.map(|after| stop.stop_after(after));
        // Boxed: the run is a deep future, too deep for the runtime service to lay out inline.
        let result = Box::pin(lifecycle::sync(&self.target, &self.sync, &stop, None)).await;
        let (status, outcome) = match &result {
            Ok(o) if o.result.is_ok() => ("succeeded", Some(o)),
            Ok(o) if o.result.as_ref().is_err_and(|e| e.kind() == Kind::Cancelled) => ("cancelled", Some(o)),
            Ok(o) => ("failed", Some(o)),
            Err(e) if e.kind() == Kind::Locked => ("skipped", None),
            Err(_) => ("failed", None),
        };
        println!("{}", emf_line(function, status, outcome));
        match result {
            Ok(o) => {
                summary::print("sync", &o);
                match &o.result {
                    Ok(()) => Ok(summary::to_json(&o)),
                    Err(e) => Err(Diagnostic {
                        error_type: if status == "cancelled" { "SyncCancelled" } else { "SyncFailed" }.into(),
                        error_message: e.to_string(),
                    }),
                }
            }
            Err(e) if e.kind() == Kind::Locked => {
                tracing::info!(reason = %e, "another run holds the lock: skipped");
                Ok(json!({"status": "skipped", "reason": e.to_string()}))
            }
            Err(e) => Err(Diagnostic { error_type: "SyncNotStarted".into(), error_message: e.to_string() }),
        }
    }
}

/// Deadlines below this (2001-09-09) are not instants: `cargo lambda watch` sends the
/// function's timeout (600000) where Lambda sends the epoch milliseconds of the deadline.
const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;

/// How long the run may go before it is told to stop: `stop_before` ahead of the deadline,
/// or half the time left when less than that is left. None without a deadline.
fn stop_time(deadline_ms: u64, stop_before: Duration) -> Option<Duration> {
    if deadline_ms == 0 {
        return None;
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let left = if deadline_ms < EPOCH_MS_FLOOR {
        Duration::from_millis(deadline_ms)
    } else {
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    };
    Some(left.checked_sub(stop_before).unwrap_or(left / 2))
}

/// One line of CloudWatch's embedded metric format: CloudWatch turns it into metrics in
/// the `scansync` namespace when Lambda ships the function's output.
pub fn emf_line(function: &str, status: &str, outcome: Option<&Outcome>) -> Value {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let s = outcome.map(|o| &o.stats);
    let metric = |name: &str, unit: &str| json!({"Name": name, "Unit": unit});
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "scansync",
                "Dimensions": [["Function"]],
                "Metrics": [
                    metric("SuccessfulRuns", "Count"),
                    metric("FailedRuns", "Count"),
                    metric("SkippedRuns", "Count"),
                    metric("RecordsRead", "Count"),
                    metric("Quarantined", "Count"),
                    metric("RunSeconds", "Seconds"),
                ],
            }],
        },
        "Function": function,
        "Status": status,
        "SuccessfulRuns": u8::from(status == "succeeded"),
        "FailedRuns": u8::from(status == "failed" || status == "cancelled"),
        "SkippedRuns": u8::from(status == "skipped"),
        "RecordsRead": s.map_or(0, |s| s.read),
        "Quarantined": s.map_or(0, |s| s.written.quarantined),
        "RunSeconds": s.map_or(0.0, |s| s.elapsed.as_secs_f64()),
    })
}

/// The metric line of a verify invocation: its own metrics (`Verifies`, `DivergentKeys`,
/// `FailedVerifies`), so that a verify never counts as a successful sync for alarm 2.
pub fn verify_emf_line(function: &str, status: &str, divergent: u64) -> Value {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let metric = |name: &str| json!({"Name": name, "Unit": "Count"});
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "scansync",
                "Dimensions": [["Function"]],
                "Metrics": [metric("Verifies"), metric("DivergentKeys"), metric("FailedVerifies")],
            }],
        },
        "Function": function,
        "Status": status,
        "Verifies": u8::from(status == "succeeded" || status == "diverged"),
        "DivergentKeys": divergent,
        "FailedVerifies": u8::from(status == "failed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_stops_the_shutdown_timeout_before_the_deadline() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let after = stop_time(now + 900_000, Duration::from_secs(30)).unwrap();
        assert!(after <= Duration::from_secs(870) && after > Duration::from_secs(865), "{after:?}");
        // Less time left than the shutdown timeout: half of what is left.
        let after = stop_time(now + 20_000, Duration::from_secs(30)).unwrap();
        assert!(after <= Duration::from_secs(10) && after > Duration::from_secs(8), "{after:?}");
        assert_eq!(stop_time(0, Duration::from_secs(30)), None);
        // A timeout where the deadline belongs (the emulator): read as time left.
        assert_eq!(stop_time(600_000, Duration::from_secs(30)), Some(Duration::from_secs(570)));
    }

    #[test]
    fn the_metric_line_counts_a_skipped_run_as_neither_success_nor_failure() {
        let line = emf_line("scansync-sync", "skipped", None);
        assert_eq!(line["SkippedRuns"], 1);
        assert_eq!(line["SuccessfulRuns"], 0);
        assert_eq!(line["FailedRuns"], 0);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "scansync");
        // Every metric named in the directive is a member of the line.
        for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap() {
            assert!(line.get(m["Name"].as_str().unwrap()).is_some(), "{m}");
        }
    }
}
