//! The `scansync` binary: parses and checks the flags, sets up logging and the stop on
//! signals, runs the subcommand (`scansync::commands`).

use clap::Parser;
use scansync::cli::Cli;
use scansync::commands::{self, Invocation};
use scansync::error::EXIT_CONFIG;
use scansync::shutdown::Stop;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // Before anything can print: every message and log line is scrubbed of the password.
    if let Err(e) = cli.resolve_database_url() {
        eprintln!("scansync: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    // Every configuration mistake ends here, before any work: exit 2, saying what to type.
    let invocation = match Invocation::check(cli) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("scansync: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    scansync::logging::init(invocation.log_format, invocation.log_level());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scansync: cannot start the async runtime: {e}");
            return ExitCode::from(scansync::error::EXIT_FAILED);
        }
    };
    let stop = Stop::new();
    ExitCode::from(runtime.block_on(async move {
        stop.on_signals(invocation.shutdown_timeout);
        commands::run(invocation, stop).await
    }))
}
