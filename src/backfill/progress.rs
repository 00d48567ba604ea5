//! A backfill's progress for a person: a bar on a terminal (units done of the job, this
//! worker's records/s, the job's ETA), a log line at a steady interval otherwise.

use super::status;
use crate::config::ProgressMode as Mode;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// The running display; [`Shown::finish`] stops it.
pub struct Shown {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<tokio::sync::Notify>,
}

impl Shown {
    /// Stops the display (a last line or the bar's final state first).
    pub async fn finish(mut self) {
        self.stop.notify_one();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Starts showing the progress of `job` (read from the database every tick), with this
/// worker's committed records counted in `records`.
pub fn spawn(
    mode: Mode,
    every: Duration,
    client: Arc<Client>,
    schema: &str,
    job: i64,
    records: Arc<AtomicU64>,
) -> Shown {
    let stop = Arc::new(tokio::sync::Notify::new());
    let bar = match mode {
        Mode::Off => return Shown { task: None, stop },
        Mode::Bar => true,
        Mode::Log => false,
        Mode::Auto => std::io::stderr().is_terminal(),
    };
    let schema = schema.to_string();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let mut first_done: Option<i64> = None;
        let pb = bar.then(|| {
            let pb = indicatif::ProgressBar::new(0);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} backfill [{bar:30}] {pos}/{len} units  {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            pb
        });
        let tick = if bar { Duration::from_secs(1) } else { every };
        loop {
            let stopped = tokio::select! {
                _ = s.notified() => true,
                _ = tokio::time::sleep(tick) => false,
            };
            if let Ok(j) = status::job(&client, &schema, job).await {
                let done = j.units.done;
                let base = *first_done.get_or_insert(done);
                let elapsed = started.elapsed().as_secs_f64().max(1e-3);
                let rate = records.load(Ordering::Relaxed) as f64 / elapsed;
                let units_rate = (done - base) as f64 / elapsed;
                let left = (j.units.total - done).max(0);
                let eta = (units_rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / units_rate));
                let eta_text = eta.map_or("unknown".to_string(), |d| format!("{}s", d.as_secs()));
                match &pb {
                    Some(pb) => {
                        pb.set_length(j.units.total as u64);
                        pb.set_position(done as u64);
                        pb.set_message(format!(
                            "{rate:.0} records/s  ETA {eta_text}  {} failed  {} workers",
                            j.units.failed,
                            j.workers.len()
                        ));
                    }
                    None => tracing::info!(
                        job,
                        units_done = done,
                        units_total = j.units.total,
                        units_failed = j.units.failed,
                        workers = j.workers.len(),
                        records = records.load(Ordering::Relaxed),
                        records_per_sec = rate.round() as u64,
                        eta = %eta_text,
                        "backfill progress"
                    ),
                }
            }
            if stopped {
                if let Some(pb) = pb {
                    pb.finish();
                }
                return;
            }
        }
    });
    Shown { task: Some(task), stop }
}
