//! The `scansync` binary: parses flags, sets up logging, runs a subcommand.

use clap::Parser;
use scansync::cli::{Cli, Command};
use scansync::command::{self, AnyCheckpoint, AnySource, RunRequest, Scope};
use scansync::ledger::RunKind;
use scansync::window::WindowConfig;
use scansync::{db, demo, health, schema};
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

async fn dispatch(cli: Cli) -> u8 {
    let url = cli.database_url.as_str();
    let schema_name = cli.schema.as_str();
    if let Err(e) = schema::quoted_schema(schema_name) {
        eprintln!("scansync: {e}");
        return command::EXIT_FAILED;
    }
    match cli.command {
        Command::Migrate => {
            let result = async {
                let mut client = db::connect(url).await?;
                schema::migrate(&mut client, schema_name).await
            }
            .await;
            match result {
                Ok(n) => {
                    println!("schema {schema_name} is current ({n} migrations applied)");
                    command::EXIT_OK
                }
                Err(e) => {
                    eprintln!("scansync: {e}");
                    command::EXIT_FAILED
                }
            }
        }
        Command::Sync(args) => {
            let source = match AnySource::from_args(&args.source, &args.tuning).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("scansync: {e}");
                    return command::EXIT_FAILED;
                }
            };
            let window = WindowConfig {
                lookback: args.window.lookback,
                overlap_days: args.window.overlap_days,
                first_run_window: args.window.first_run_window,
                offset_margin: args.window.offset_margin,
            };
            let req = RunRequest {
                url,
                schema: schema_name,
                kind: RunKind::Sync,
                scope: Scope::Incremental { window, checkpoint: &args.checkpoint },
                source,
                tuning: command::tuning(&args.tuning),
            };
            let outcome = command::run(req).await;
            if let Ok(o) = &outcome {
                command::print_summary("sync", o);
            }
            command::exit_status(&outcome)
        }
        Command::Backfill(args) => {
            if args.from > args.to {
                eprintln!("scansync: --from {} is after --to {}: swap them", args.from, args.to);
                return command::EXIT_FAILED;
            }
            let source = match AnySource::from_args(&args.source, &args.tuning).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("scansync: {e}");
                    return command::EXIT_FAILED;
                }
            };
            let req = RunRequest {
                url,
                schema: schema_name,
                kind: RunKind::Backfill,
                scope: Scope::Days(Some((args.from, args.to))),
                source,
                tuning: command::tuning(&args.tuning),
            };
            let outcome = command::run(req).await;
            if let Ok(o) = &outcome {
                command::print_summary("backfill", o);
            }
            command::exit_status(&outcome)
        }
        Command::Health(args) => {
            let result = async {
                let client = Arc::new(db::connect(url).await?);
                let store = AnyCheckpoint::from_args(&args.checkpoint, client.clone(), schema_name).await?;
                health::check(&client, schema_name, Some(&store), args.max_age).await
            }
            .await;
            match result {
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
            }
        }
        Command::Demo(args) => match demo::demo(url, schema_name, &args).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("scansync: demo failed: {e}");
                command::EXIT_FAILED
            }
        },
    }
}
