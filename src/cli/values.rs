//! Flag values: durations (parsed by humantime, shown compactly, range-checked), UTC days,
//! cron expressions, and the choices of [`crate::config::Choice`].

use crate::config::Choice;
use crate::time::Day;
use clap::builder::{PossibleValue, TypedValueParser};
use std::time::Duration;

/// A duration flag's value: parsed by humantime (`0`, `90s`, `15m`, `3h30m`, `1d12h`),
/// shown compactly (`15m`, `3h30m`, `1d`), so that every default and every piece of advice
/// the binary prints parses back to itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0.as_secs();
        let millis = self.0.subsec_millis();
        if secs == 0 && millis == 0 {
            return f.write_str("0s");
        }
        // Days from two on (`24h` reads better than `1d`).
        let days = if secs >= 2 * 86_400 { secs / 86_400 } else { 0 };
        let rest = secs - days * 86_400;
        let parts = [(days, "d"), (rest / 3600, "h"), (rest % 3600 / 60, "m"), (rest % 60, "s")];
        for (n, unit) in parts {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        if millis > 0 {
            write!(f, "{millis}ms")?;
        }
        Ok(())
    }
}

impl From<Span> for Duration {
    fn from(s: Span) -> Self {
        s.0
    }
}

/// Parses a duration: a number and a unit, or several (`15m`, `3h30m`, `1d12h`, `90s`), or
/// `0`; at most 100 years. Never panics, whatever the input.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    match humantime::parse_duration(t) {
        Ok(d) if d <= Duration::from_secs(36_500 * 86_400) => Ok(d),
        Ok(_) => Err(format!("{t:?} {TOO_LONG}")),
        Err(e) => Err(format!(
            "{t:?} is not a duration ({e}): write a number and a unit, e.g. 0, 90s, 15m, 3h30m, 1d12h"
        )),
    }
}

const TOO_LONG: &str = "is too long: at most 36500d";

/// A duration no longer than `max`; beyond it, `why` says what to do instead.
pub fn bounded(s: &str, max: Duration, why: &str) -> Result<Span, String> {
    let over = || format!("{} is more than {}: {why}", s.trim(), Span(max));
    match parse_duration(s) {
        Ok(d) if d <= max => Ok(Span(d)),
        Ok(_) => Err(over()),
        Err(e) if e.ends_with(TOO_LONG) => Err(over()),
        Err(e) => Err(e),
    }
}

/// A duration of at least 1 s and at most `max`.
pub fn positive(s: &str, max: Duration, why: &str) -> Result<Span, String> {
    match bounded(s, max, why)? {
        d if d.0 < Duration::from_secs(1) => Err(format!("{}: must be at least 1s", s.trim())),
        d => Ok(d),
    }
}

macro_rules! duration_flag {
    ($(#[$doc:meta])* $name:ident, $max:expr, $why:literal) => {
        $(#[$doc])*
        pub fn $name(s: &str) -> Result<Span, String> {
            bounded(s, $max, $why)
        }
    };
    ($(#[$doc:meta])* $name:ident, at least 1s, $max:expr, $why:literal) => {
        $(#[$doc])*
        pub fn $name(s: &str) -> Result<Span, String> {
            positive(s, $max, $why)
        }
    };
}

const DAY: u64 = 86_400;

duration_flag!(
    /// `--lookback`: at most 7 days.
    lookback, Duration::from_secs(7 * DAY), "load older history with `scansync backfill`"
);
duration_flag!(
    /// `--first-run-window`: at most 3650 days.
    first_run_window, Duration::from_secs(3650 * DAY), "load older history with `scansync backfill`"
);
duration_flag!(
    /// `--offset-margin`: at most 24 hours.
    offset_margin, Duration::from_secs(24 * 3600), "no UTC offset is more than 12h west (use 12h to be safe)"
);
duration_flag!(
    /// `--retry-budget`: at most a day.
    retry_budget, Duration::from_secs(DAY), "a run that cannot reach its database for a day should fail and alert"
);
duration_flag!(
    /// `--max-age`: at most a year.
    max_age, Duration::from_secs(365 * DAY), "a freshness threshold is hours, rarely days"
);
duration_flag!(
    /// `--jitter`: at most a day (and below `--every`, checked with it).
    jitter, Duration::from_secs(DAY), "the jitter must stay below --every"
);
duration_flag!(
    /// `--every`: 1 s to a day.
    every, at least 1s, Duration::from_secs(DAY), "a schedule longer than a day is a cron job's"
);
duration_flag!(
    /// `--shutdown-timeout`: 1 s to 10 minutes.
    shutdown_timeout, at least 1s, Duration::from_secs(600), "a stop must be bounded; use 1s to 10m"
);
duration_flag!(
    /// `--progress-every`: 1 s to an hour.
    progress_every, at least 1s, Duration::from_secs(3600), "progress lines are for people; use 1s to 1h"
);

/// A duration between `min` and `max`.
fn between(s: &str, min: Duration, max: Duration, why: &str) -> Result<Span, String> {
    match bounded(s, max, why)? {
        d if d.0 < min => Err(format!("{}: must be at least {}", s.trim(), Span(min))),
        d => Ok(d),
    }
}

/// `--poll`: 10 ms to 10 s.
pub fn poll(s: &str) -> Result<Span, String> {
    between(s, Duration::from_millis(10), Duration::from_secs(10), "a follower polls within seconds")
}

/// `--max-poll`: 10 ms to a minute.
pub fn max_poll(s: &str) -> Result<Span, String> {
    between(
        s,
        Duration::from_millis(10),
        Duration::from_secs(60),
        "an idle shard is read at least every minute",
    )
}

/// `--discover-every`: 1 s to 10 minutes.
pub fn discover_every(s: &str) -> Result<Span, String> {
    between(
        s,
        Duration::from_secs(1),
        Duration::from_secs(600),
        "new shards appear every 4 hours at least; use 1s to 10m",
    )
}

/// `--verify-every`: 1 minute to 30 days.
pub fn verify_every(s: &str) -> Result<Span, String> {
    between(
        s,
        Duration::from_secs(60),
        Duration::from_secs(30 * DAY),
        "a verify of the last days runs daily or so",
    )
}

/// `--max-window`: 1 minute to 30 days.
pub fn max_window(s: &str) -> Result<Span, String> {
    match bounded(s, Duration::from_secs(30 * DAY), "history beyond that is loaded with `scansync backfill`")?
    {
        d if d.0 < Duration::from_secs(60) => Err(format!("{}: the window must be at least 1m", s.trim())),
        d => Ok(d),
    }
}

/// A UTC day, `YYYY-MM-DD`.
pub fn day(s: &str) -> Result<Day, String> {
    Day::parse(s).ok_or_else(|| format!("{s:?} is not a date: write YYYY-MM-DD (a UTC day), e.g. 2026-01-31"))
}

/// A cron expression of five fields (or six, seconds first), in UTC.
pub fn cron(s: &str) -> Result<Box<croner::Cron>, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(s)
        .map(Box::new)
        .map_err(|e| format!("{s:?} is not a cron expression ({e}); give five fields, e.g. \"5 * * * *\" (5 past each hour, UTC)"))
}

/// The value parser of a [`Choice`]: its names, each with its help in `--help`.
pub fn choice<T: Choice>() -> impl TypedValueParser<Value = T> {
    clap::builder::PossibleValuesParser::new(
        T::ALL.iter().map(|v| PossibleValue::new(v.name()).help(v.help())),
    )
    .map(|name| *T::ALL.iter().find(|v| v.name() == name).expect("a listed name"))
}

/// The name of a choice's value, for `default_value`.
pub fn name_of<T: Choice>(v: T) -> &'static str {
    v.name()
}
