//! The `scansync` binary: parses flags, sets up logging, runs a subcommand.

use clap::Parser;
use scansync::cli::{BackfillAction, Cli, Command};
use scansync::command::{self, AnyCheckpoint};
use scansync::{backfill, db, demo, health, schema, summary, Error, Kind, Result};
use std::process::ExitCode;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // Before anything can print: every message and log line is scrubbed of the password.
    if let Err(e) = cli.resolve_database_url() {
        eprintln!("scansync: {e}");
        return ExitCode::from(2);
    }
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
async fn dispatch(mut cli: Cli) -> u8 {
    let result = match cli.fetch_database_url().await {
        Ok(()) => subcommand(cli).await,
        Err(e) => Err(e),
    };
    match result {
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
            if scansync::bulk::repair(&client, schema_name).await? {
                println!("restored the foreign keys and the index a bulk load had dropped");
            }
            println!("schema {schema_name} is current ({n} migrations applied)");
            Ok(command::EXIT_OK)
        }
        Command::Sync(args) => {
            let metrics = scansync::metrics::start(&args.metrics, url, schema_name, &args.checkpoint)?;
            let outcome = command::sync(url, schema_name, &args, metrics.as_deref()).await?;
            summary::print("sync", &outcome);
            Ok(summary::exit_status(&outcome))
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
                let checkpoint = scansync::cli::CheckpointArgs::default();
                let metrics = scansync::metrics::start(&args.metrics, url, schema_name, &checkpoint)?;
                let report = backfill::run(backfill::Request {
                    url,
                    schema: schema_name,
                    days,
                    source: &args.source,
                    tuning: &args.tuning,
                    restart: args.restart,
                    progress: args.progress,
                    progress_every: args.progress_every,
                    metrics: metrics.as_deref(),
                    bulk: args.bulk,
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
            if args.jitter >= args.every && args.cron.is_none() {
                return Err(Error::config("--jitter must be shorter than --every"));
            }
            scansync::serve::serve(url, schema_name, &args).await
        }
        Command::Demo(args) => {
            demo::demo(url, schema_name, &args).await.map_err(|e| e.context("demo failed"))
        }
    }
}
