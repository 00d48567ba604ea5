//! The `scansync` binary: parses flags, sets up logging, runs a subcommand.

use clap::Parser;
use scansync::cli::{BackfillAction, Cli, Command, SourceArgs, TuningArgs};
use scansync::command::{self, AnyCheckpoint, AnySource, RunRequest, Scope};
use scansync::ledger::RunKind;
use scansync::window::WindowConfig;
use scansync::{backfill, db, demo, health, schema, summary, Error, Kind, Result};
use std::process::ExitCode;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(path) = &cli.database_url_file {
        match std::fs::read_to_string(path) {
            Ok(url) => cli.database_url = url.trim().to_string(),
            Err(e) => {
                eprintln!(
                    "scansync: cannot read --database-url-file {}: {e}; give a file holding the database URL",
                    path.display()
                );
                return ExitCode::from(2);
            }
        }
    }
    // Before anything can print: every message and log line is scrubbed of the password.
    db::register_secrets(&cli.database_url);
    let level = match cli.command {
        Command::Demo(_) => "error",
        Command::Health(_) | Command::Migrate => "warn",
        _ => "scansync=info,warn",
    };
    scansync::logging::init(cli.log_format, level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scansync: cannot start the async runtime: {e}");
            return ExitCode::from(command::EXIT_FAILED);
        }
    };
    let timeout = cli.shutdown_timeout;
    ExitCode::from(runtime.block_on(async move {
        scansync::shutdown::install(timeout);
        dispatch(cli).await
    }))
}

/// Runs the subcommand; every error that ends it prints here, once.
async fn dispatch(cli: Cli) -> u8 {
    match subcommand(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scansync: {e}");
            match e.kind() {
                Kind::Locked => command::EXIT_LOCKED,
                Kind::Cancelled => scansync::shutdown::exit_code().unwrap_or(command::EXIT_FAILED),
                _ => command::EXIT_FAILED,
            }
        }
    }
}

async fn subcommand(cli: Cli) -> Result<u8> {
    let url = cli.database_url.as_str();
    let schema_name = cli.schema.as_str();
    schema::quoted_schema(schema_name)?;
    match cli.command {
        Command::Migrate => {
            let mut client = db::connect(url).await?;
            let n = schema::migrate(&mut client, schema_name).await?;
            println!("schema {schema_name} is current ({n} migrations applied)");
            Ok(command::EXIT_OK)
        }
        Command::Sync(args) => {
            let window = WindowConfig {
                lookback: args.window.lookback,
                overlap_days: args.window.overlap_days,
                first_run_window: args.window.first_run_window,
                offset_margin: args.window.offset_margin,
                max_window: args.window.max_window,
            };
            check_max_window(&args.window)?;
            let scope = Scope::Incremental { window, checkpoint: &args.checkpoint };
            run(url, schema_name, RunKind::Sync, scope, &args.source, &args.tuning).await
        }
        Command::Backfill(args) => match args.action {
            Some(BackfillAction::Status(status)) => {
                let client = db::connect(url).await?;
                let jobs = backfill::status::all(&client, schema_name).await?;
                if status.json {
                    let list: Vec<_> = jobs.iter().map(|j| j.to_json()).collect();
                    println!("{}", serde_json::json!({ "jobs": list }));
                } else if jobs.is_empty() {
                    println!("no backfill jobs in schema {schema_name}");
                } else {
                    for j in &jobs {
                        println!("{}", j.to_text());
                    }
                }
                Ok(command::EXIT_OK)
            }
            None => {
                let days = match (args.from, args.to) {
                    (Some(from), Some(to)) if from > to => {
                        return Err(Error::config(format!("--from {from} is after --to {to}: swap them")))
                    }
                    (Some(from), Some(to)) => Some((from, to)),
                    _ => None,
                };
                let report = backfill::run(backfill::Request {
                    url,
                    schema: schema_name,
                    days,
                    source: &args.source,
                    tuning: &args.tuning,
                    restart: args.restart,
                    progress: args.progress,
                    progress_every: args.progress_every,
                })
                .await?;
                let code = match &report.outcome {
                    Some(outcome) => {
                        summary::print("backfill", outcome);
                        summary::exit_status(outcome)
                    }
                    None => {
                        println!("backfill job {} has no unit left to do ({} done): nothing to do; --restart runs it again", report.job.id, report.job.units.done);
                        command::EXIT_OK
                    }
                };
                println!("{}", report.job.to_text());
                Ok(code)
            }
        },
        Command::Health(args) => {
            let result = async {
                let client = Arc::new(db::connect(url).await?);
                let store = AnyCheckpoint::from_args(&args.checkpoint, client.clone(), schema_name).await?;
                health::check(&client, schema_name, Some(&store), args.max_age).await
            }
            .await;
            Ok(match result {
                Ok(report) => {
                    if args.json {
                        println!("{}", report.to_json());
                    } else {
                        println!("{}", report.to_text());
                    }
                    report.status.exit_code()
                }
                Err(e) => {
                    // Unable to tell: report it as a failure so an alarm fires.
                    if args.json {
                        println!(
                            "{}",
                            serde_json::json!({"status": "error", "exit_code": 2, "error": e.to_string()})
                        );
                    } else {
                        eprintln!("scansync: health check failed: {e}");
                    }
                    2
                }
            })
        }
        Command::Serve(args) => {
            if args.jitter >= args.every {
                return Err(Error::config("--jitter must be shorter than --every"));
            }
            check_max_window(&args.sync.window)?;
            scansync::serve::serve(url, schema_name, &args).await
        }
        Command::Demo(args) => {
            demo::demo(url, schema_name, &args).await.map_err(|e| e.context("demo failed"))
        }
    }
}

/// A bounded window must be longer than the lookback, or a run makes no progress.
fn check_max_window(w: &scansync::cli::WindowArgs) -> Result<()> {
    match w.max_window {
        Some(m) if m <= w.lookback => Err(Error::config(format!(
            "--max-window {}s is not longer than --lookback {}s: a run would make no progress; make the window longer than the lookback",
            m.as_secs(),
            w.lookback.as_secs()
        ))),
        _ => Ok(()),
    }
}

/// Sync and backfill: one path from flags to exit status.
async fn run(
    url: &str,
    schema: &str,
    kind: RunKind,
    scope: Scope<'_>,
    source: &SourceArgs,
    tuning: &TuningArgs,
) -> Result<u8> {
    let source = AnySource::from_args(source, tuning).await?;
    let req = RunRequest { url, schema, kind, scope, source, tuning: command::tuning(tuning) };
    let outcome = command::run(req).await?;
    summary::print(kind.as_str(), &outcome);
    Ok(summary::exit_status(&outcome))
}
