//! The `scansync` binary: parses flags, sets up logging, runs a subcommand.

use clap::Parser;
use scansync::cli::{Cli, Command, SourceArgs, TuningArgs};
use scansync::command::{self, AnyCheckpoint, AnySource, RunRequest, Scope};
use scansync::ledger::RunKind;
use scansync::window::WindowConfig;
use scansync::{db, demo, health, schema, summary, Error, Kind, Result};
use std::process::ExitCode;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    ExitCode::from(runtime.block_on(dispatch(cli)))
}

/// Runs the subcommand; every error that ends it prints here, once.
async fn dispatch(cli: Cli) -> u8 {
    match subcommand(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scansync: {e}");
            if e.kind() == Kind::Locked {
                command::EXIT_LOCKED
            } else {
                command::EXIT_FAILED
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
            };
            let scope = Scope::Incremental { window, checkpoint: &args.checkpoint };
            run(url, schema_name, RunKind::Sync, scope, &args.source, &args.tuning).await
        }
        Command::Backfill(args) => {
            if args.from > args.to {
                return Err(Error::config(format!(
                    "--from {} is after --to {}: swap them",
                    args.from, args.to
                )));
            }
            let scope = Scope::Days(Some((args.from, args.to)));
            run(url, schema_name, RunKind::Backfill, scope, &args.source, &args.tuning).await
        }
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
        Command::Demo(args) => {
            demo::demo(url, schema_name, &args).await.map_err(|e| e.context("demo failed"))
        }
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
