use super::values::*;
use super::*;
use clap::CommandFactory;
use proptest::prelude::*;
use std::time::Duration;

#[test]
fn durations_parse_in_every_form_the_docs_show() {
    for (text, secs) in [
        ("0", 0),
        ("0s", 0),
        ("90s", 90),
        ("15m", 900),
        ("3h30m", 12_600),
        ("1d12h", 129_600),
        ("1d", 86_400),
    ] {
        assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)), "{text}");
    }
    assert!(parse_duration("15").unwrap_err().contains("e.g. 0, 90s"));
    assert!(parse_duration("abc").is_err());
    assert!(parse_duration("99999999999999999d").is_err());
}

#[test]
fn a_duration_is_shown_as_it_is_typed_and_reads_back_to_itself() {
    for secs in [0, 1, 59, 60, 90, 900, 3600, 12_600, 43_200, 86_400, 129_600, 864_000, 30 * 86_400] {
        let shown = Span(Duration::from_secs(secs)).to_string();
        assert_eq!(parse_duration(&shown), Ok(Duration::from_secs(secs)), "{shown}");
    }
    assert_eq!(Span(Duration::from_secs(12_600)).to_string(), "3h30m");
    assert_eq!(Span(Duration::from_secs(86_400)).to_string(), "24h");
    assert_eq!(Span(Duration::from_secs(7 * 86_400)).to_string(), "7d");
}

#[test]
fn out_of_range_values_are_refused_with_what_to_do() {
    assert!(lookback("1000000000d").unwrap_err().contains("backfill"));
    assert!(offset_margin("25h").is_err());
    assert_eq!(offset_margin("0"), Ok(Span(Duration::ZERO)));
    assert!(every("0s").unwrap_err().contains("at least 1s"));
    assert!(max_window("30s").unwrap_err().contains("at least 1m"));
    for args in [
        vec!["scansync", "health", "--max-age", "99999999999999999d"],
        vec!["scansync", "sync", "--overlap-days", "4000000000"],
        vec!["scansync", "sync", "--lookback", "1000000000d"],
        vec!["scansync", "sync", "--slices", "0"],
    ] {
        let e = Cli::try_parse_from(&args).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{args:?}: {e}");
    }
}

/// Every default `--help` shows is a value the flag accepts.
#[test]
fn every_default_parses_with_its_own_flag() {
    let cmd = Cli::command();
    for sub in cmd.get_subcommands() {
        let mut args = vec!["scansync".to_string(), sub.get_name().to_string()];
        match sub.get_name() {
            "completions" => args.push("bash".into()),
            // --verify-days and --verify-repair tune the scheduled verify: they need it on.
            "serve" => args.push("--verify-every=24h".into()),
            _ => {}
        }
        for a in sub.get_arguments().chain(cmd.get_arguments()) {
            for d in a.get_default_values() {
                if let Some(long) = a.get_long() {
                    args.push(format!("--{long}={}", d.to_string_lossy()));
                }
            }
        }
        if let Err(e) = Cli::try_parse_from(&args) {
            panic!("{args:?}: {e}");
        }
    }
}

/// "Every flag has an environment variable": the ones that do not are positional, or
/// clap's own `--help`/`--version` (docs/flags.md says so).
#[test]
fn every_flag_has_an_environment_variable() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let own = matches!(a.get_id().as_str(), "help" | "version");
            if a.is_positional() || own {
                continue;
            }
            if a.get_env().is_none() {
                missing.push(format!("{path} --{}", a.get_long().unwrap_or(a.get_id().as_str())));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&Cli::command(), "scansync", &mut missing);
    assert!(missing.is_empty(), "flags without an environment variable: {missing:?}");
}

fn config_error(args: &[&str]) -> Error {
    let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let target = cli.target();
    let err = match (&cli.command, target) {
        (_, Err(e)) => e,
        (Command::Sync(s), Ok(_)) => s.config().unwrap_err(),
        (Command::Backfill(b), Ok(_)) => b.config().unwrap_err(),
        (Command::Serve(s), Ok(_)) => s.config().map(|_| ()).unwrap_err(),
        (other, Ok(_)) => panic!("{other:?} has no config to check"),
    };
    assert_eq!(err.kind(), crate::Kind::Config, "{args:?}: {err}");
    err
}

#[test]
fn configuration_mistakes_are_config_errors_that_say_what_to_type() {
    for (args, says) in [
        (vec!["scansync", "--schema", "Bad-Name", "sync", "--table", "t"], "lowercase letters"),
        (vec!["scansync", "sync"], "--table NAME"),
        (vec!["scansync", "sync", "--source", "export"], "--export-dir"),
        (vec!["scansync", "sync", "--table", "t", "--checkpoint", "ssm"], "--ssm-parameter"),
        (
            vec!["scansync", "sync", "--table", "t", "--max-window", "10m", "--lookback", "15m"],
            "longer than the lookback",
        ),
        (
            vec!["scansync", "backfill", "--table", "t", "--from", "2026-02-01", "--to", "2026-01-01"],
            "swap them",
        ),
        (vec!["scansync", "backfill", "--table", "t"], "--from and --to"),
        (
            vec!["scansync", "serve", "--table", "t", "--every", "1m", "--jitter", "2m"],
            "shorter than --every",
        ),
    ] {
        let e = config_error(&args);
        assert!(e.message().contains(says), "{args:?}: {e}");
    }
}

const VALUE_FLAGS: &[(&str, &str)] = &[
    ("health", "--max-age"),
    ("sync", "--lookback"),
    ("sync", "--first-run-window"),
    ("sync", "--offset-margin"),
    ("sync", "--overlap-days"),
    ("sync", "--fetchers"),
    ("sync", "--slices"),
    ("sync", "--page-size"),
    ("sync", "--writers"),
    ("sync", "--max-unreadable-percent"),
    ("sync", "--retry-budget"),
    ("sync", "--max-window"),
    ("serve", "--every"),
    ("serve", "--jitter"),
    ("serve", "--cron"),
    ("backfill", "--from"),
    ("backfill", "--progress-every"),
];

proptest! {
    #[test]
    fn no_flag_value_panics(value in "\\PC{0,30}|[0-9]{1,40}[smhdwMy]?|([0-9]{1,4}[smhd]){1,4}", flag in 0..VALUE_FLAGS.len()) {
        let (cmd, name) = VALUE_FLAGS[flag];
        let _ = Cli::try_parse_from(["scansync", cmd, name, value.as_str()]);
        let _ = parse_duration(&value);
    }
}
