//! The subcommands, from a parsed command line to an exit status. [`Invocation::check`]
//! turns the flags into configuration and refuses a mistake (exit 2) before anything is
//! done; [`run`] does the work and prints every error that ends a command, once.

use crate::checkpoint::any::AnyCheckpoint;
use crate::cli::{BackfillAction, Cli, Command};
use crate::config::{BackfillConfig, CheckpointConfig, LogFormat, SyncConfig, Target, VerifyConfig};
use crate::demo::DemoConfig;
use crate::error::{Error, Kind, Result, EXIT_FAILED, EXIT_OK};
use crate::serve::ServeConfig;
use crate::shutdown::Stop;
use crate::{backfill, db, demo, health, lifecycle, metrics, plan, schema, summary};
use clap::CommandFactory;
use std::sync::Arc;
use std::time::Duration;

/// A subcommand with its configuration checked.
#[derive(Debug)]
pub enum Checked {
    /// `migrate`.
    Migrate,
    /// `sync` (`plan`: only say what it would read).
    Sync {
        /// The sync.
        cfg: SyncConfig,
        /// `--plan`.
        plan: bool,
    },
    /// `backfill`.
    Backfill(BackfillConfig),
    /// `backfill status`.
    BackfillStatus {
        /// `--json`.
        json: bool,
    },
    /// `health`.
    Health {
        /// Where the checkpoint lives.
        checkpoint: CheckpointConfig,
        /// The staleness threshold.
        max_age: Duration,
        /// The lag beyond which a follower is stale.
        max_lag: Duration,
        /// `--json`.
        json: bool,
    },
    /// `serve`.
    Serve(ServeConfig),
    /// `follow`.
    Follow(Box<crate::follow::FollowConfig>),
    /// `verify`.
    Verify {
        /// The verify.
        cfg: VerifyConfig,
        /// `--json`.
        json: bool,
    },
    /// `demo`.
    Demo(DemoConfig),
    /// `completions SHELL`.
    Completions(clap_complete::Shell),
    /// `man`.
    Man,
}

/// A command line, checked: what to do, on which store, and how to log and stop.
#[derive(Debug)]
pub struct Invocation {
    /// The store.
    pub target: Target,
    /// The SSM parameter to read the database URL from at start, if any.
    pub url_parameter: Option<String>,
    /// The log format.
    pub log_format: LogFormat,
    /// How long a stopped run may take to wind down.
    pub shutdown_timeout: Duration,
    /// The subcommand.
    pub command: Checked,
}

impl Invocation {
    /// Checks the command line: every configuration mistake is an [`Error::config`] here,
    /// before any connection is opened.
    pub fn check(cli: Cli) -> Result<Self> {
        let target = cli.target()?;
        let command = match &cli.command {
            Command::Migrate => Checked::Migrate,
            Command::Sync(args) => Checked::Sync { cfg: args.config()?, plan: args.plan },
            Command::Backfill(args) => match &args.action {
                Some(BackfillAction::Status(s)) => Checked::BackfillStatus { json: s.json },
                None => Checked::Backfill(args.config()?),
            },
            Command::Health(args) => Checked::Health {
                checkpoint: args.checkpoint.config()?,
                max_age: args.max_age.0,
                max_lag: args.max_lag.0,
                json: args.json,
            },
            Command::Follow(args) => Checked::Follow(Box::new(args.config()?)),
            Command::Serve(args) => Checked::Serve(args.config()?),
            Command::Verify(args) => Checked::Verify { cfg: args.config()?, json: args.json },
            Command::Demo(args) => Checked::Demo(DemoConfig {
                records: args.records,
                seed: args.seed,
                tuning: args.tuning.config(),
            }),
            Command::Completions(args) => Checked::Completions(args.shell),
            Command::Man => Checked::Man,
        };
        Ok(Self {
            target,
            url_parameter: cli.database_url_parameter.clone(),
            log_format: cli.log_format,
            shutdown_timeout: cli.shutdown_timeout.0,
            command,
        })
    }

    /// The default log level of the subcommand (`RUST_LOG` overrides it).
    pub fn log_level(&self) -> &'static str {
        match self.command {
            Checked::Demo(_) => "error",
            Checked::Health { .. } | Checked::Migrate | Checked::BackfillStatus { .. } => "warn",
            // A page "committed" by a verify is a page compared: its log line says nothing.
            Checked::Verify { .. } => "scansync::pipeline=warn,scansync=info,warn",
            Checked::Completions(_) | Checked::Man => "error",
            _ => "scansync=info,warn",
        }
    }
}

/// Runs the subcommand; every error that ends it prints here, once. Returns the exit status.
pub async fn run(mut inv: Invocation, stop: Stop) -> u8 {
    if let Some(name) = inv.url_parameter.take() {
        match crate::checkpoint::ssm::read_secret(&name).await {
            Ok(url) => {
                db::register_secrets(&url);
                inv.target.url = url;
            }
            Err(e) => {
                eprintln!("scansync: {}", e.context("reading --database-url-parameter"));
                return EXIT_FAILED;
            }
        }
    }
    match subcommand(inv, &stop).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scansync: {e}");
            match e.kind() {
                Kind::Cancelled => stop.exit_code().unwrap_or(EXIT_FAILED),
                _ => e.exit_code(),
            }
        }
    }
}

async fn subcommand(inv: Invocation, stop: &Stop) -> Result<u8> {
    let target = &inv.target;
    match inv.command {
        Checked::Migrate => {
            let mut client = db::connect(&target.url).await?;
            let n = schema::migrate(&mut client, &target.schema).await?;
            if crate::bulk::repair(&client, &target.schema).await? {
                println!("restored the foreign keys and the index a bulk load had dropped");
            }
            println!("schema {} is current ({n} migrations applied)", target.schema);
            Ok(EXIT_OK)
        }
        Checked::Sync { cfg, plan: true } => plan::show(target, &cfg).await,
        Checked::Sync { cfg, plan: false } => {
            let metrics = metrics::start(&cfg.metrics, target, &cfg.checkpoint)?;
            let outcome = lifecycle::sync(target, &cfg, stop, metrics.as_deref()).await?;
            summary::print("sync", &outcome);
            Ok(summary::exit_status(&outcome, stop))
        }
        Checked::BackfillStatus { json } => {
            let client = db::connect(&target.url).await?;
            let jobs = backfill::status::all(&client, &target.schema).await?;
            if json {
                let list: Vec<_> = jobs.iter().map(|j| j.to_json()).collect();
                println!("{}", serde_json::json!({ "jobs": list }));
            } else if jobs.is_empty() {
                println!("no backfill jobs in schema {}", target.schema);
            } else {
                for j in &jobs {
                    println!("{}", j.to_text());
                }
            }
            Ok(EXIT_OK)
        }
        Checked::Backfill(cfg) => {
            let metrics = metrics::start(&cfg.metrics, target, &CheckpointConfig::Postgres)?;
            let report = backfill::run(target, &cfg, stop, metrics.as_deref()).await?;
            let code = match &report.outcome {
                Some(outcome) => {
                    summary::print("backfill", outcome);
                    summary::exit_status(outcome, stop)
                }
                None => {
                    println!(
                        "backfill job {} has no unit left to do ({} done): nothing to do; --restart runs it again",
                        report.job.id, report.job.units.done
                    );
                    EXIT_OK
                }
            };
            println!("{}", report.job.to_text());
            Ok(code)
        }
        Checked::Health { checkpoint, max_age, max_lag, json } => {
            let result = async {
                let client = Arc::new(db::connect(&target.url).await?);
                let store = AnyCheckpoint::open(&checkpoint, client.clone(), &target.schema).await?;
                health::check(&client, &target.schema, Some(&store), max_age, max_lag).await
            }
            .await;
            Ok(match result {
                Ok(report) => {
                    if json {
                        println!("{}", report.to_json());
                    } else {
                        println!("{}", report.to_text());
                    }
                    report.status.exit_code()
                }
                Err(e) => {
                    // Unable to tell: report it as a failure so an alarm fires.
                    if json {
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
        Checked::Serve(cfg) => crate::serve::serve(target, &cfg, stop).await,
        Checked::Follow(cfg) => crate::follow::follow(target, &cfg, stop).await,
        Checked::Verify { cfg, json } => {
            let report = crate::verify::verify(target, &cfg, stop).await?;
            println!("{}", if json { report.to_json() } else { report.to_text() });
            Ok(report.exit_code())
        }
        Checked::Demo(cfg) => demo::demo(target, &cfg, stop).await.map_err(|e| e.context("demo failed")),
        Checked::Completions(shell) => {
            clap_complete::generate(shell, &mut Cli::command(), "scansync", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Checked::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| Error::new(Kind::Io, format!("writing the manual page: {e}")))?;
            Ok(EXIT_OK)
        }
    }
}
