//! Planning an incremental run's window (DESIGN §1.3), all in UTC.

use crate::source::KeyBounds;
use crate::time::{Day, Timestamp};
use std::time::Duration;

/// The largest UTC offset in use (+14:00), plus margin: a coarse string key this far below
/// the lower bound lets every later instant through whatever offset it is written with.
const COARSE_MARGIN_MICROS: i64 = 14 * 3600 * 1_000_000;

/// The window settings of an incremental run.
#[derive(Debug, Clone, Copy)]
pub struct WindowConfig {
    /// Subtracted from the checkpoint: covers GSI propagation lag and writer clock skew.
    pub lookback: Duration,
    /// Extra day partitions scanned before the lower bound's day.
    pub overlap_days: u32,
    /// How far back the first run (no checkpoint yet) reaches.
    pub first_run_window: Duration,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            lookback: Duration::from_secs(15 * 60),
            overlap_days: 1,
            first_run_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// What one incremental run reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The checkpoint read (None on a first run).
    pub checkpoint: Option<Timestamp>,
    /// Records with `updatedAt` strictly after this instant are synced.
    pub after: Timestamp,
    /// The `updatedAt` key bounds for the GSI queries.
    pub bounds: KeyBounds,
    /// The UTC day partitions to scan, oldest first.
    pub days: Vec<Day>,
}

/// Plans the window: `after = (checkpoint or now − first_run_window) − lookback`; partitions
/// from `date(after) − overlap` to `date(now)` inclusive.
pub fn plan(checkpoint: Option<Timestamp>, now: Timestamp, cfg: &WindowConfig) -> Plan {
    let micros = |d: Duration| d.as_micros().min(i64::MAX as u128) as i64;
    let base = checkpoint.unwrap_or_else(|| now.add_micros(-micros(cfg.first_run_window)));
    let after = base.add_micros(-micros(cfg.lookback));
    let first = after.day().plus(-i64::from(cfg.overlap_days));
    let last = now.day().max(first);
    let days = (first.0..=last.0).map(Day).collect();
    let bounds = KeyBounds {
        utc: after.to_iso_prefix(),
        any_offset: after.add_micros(-COARSE_MARGIN_MICROS).to_iso_prefix(),
    };
    Plan { checkpoint, after, bounds, days }
}

/// Parses a duration flag: a number with a unit `s`, `m`, `h` or `d` (`15m`, `24h`, `90s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write a number and a unit, e.g. 15m, 3h, 1d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m, h or d (e.g. 15m)")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn first_run_reaches_back_24_hours_plus_lookback() {
        let now = ts("2026-11-26T10:00:00Z");
        let p = plan(None, now, &WindowConfig::default());
        assert_eq!(p.after, ts("2026-11-25T09:45:00Z"));
        let days: Vec<String> = p.days.iter().map(|d| d.to_string()).collect();
        assert_eq!(days, ["2026-11-24", "2026-11-25", "2026-11-26"]);
    }

    #[test]
    fn partitions_are_utc_days_and_include_the_overlap_day() {
        // 00:10 UTC: the lookback crosses midnight, and the overlap adds one more day.
        let p = plan(Some(ts("2026-03-29T00:10:00Z")), ts("2026-03-29T01:10:00Z"), &WindowConfig::default());
        let days: Vec<String> = p.days.iter().map(|d| d.to_string()).collect();
        assert_eq!(days, ["2026-03-27", "2026-03-28", "2026-03-29"]);
    }

    #[test]
    fn key_bounds_let_every_form_of_a_later_instant_through_and_keep_older_z_stamps_out() {
        let p = plan(Some(ts("2026-11-26T10:00:00Z")), ts("2026-11-26T11:00:00Z"), &WindowConfig::default());
        // The same instant just after the bound, written at the most negative offset.
        let stamp = "2026-11-25T21:45:01-12:00";
        assert!(ts(stamp) > p.after);
        assert!(p.bounds.admits(stamp), "{stamp} vs {:?}", p.bounds);
        for later in [
            "2026-11-26T09:45:00.001Z",
            "2026-11-26T09:45:01+00:00",
            "2026-11-26T15:15:01+05:30",
            "2026-11-26T04:45:01-05:00",
        ] {
            assert!(ts(later) > p.after);
            assert!(p.bounds.admits(later), "{later}");
        }
        // An older UTC stamp inside the 14 h margin is not read again.
        assert!(!p.bounds.admits("2026-11-26T01:00:00.000Z"));
        assert!(!p.bounds.admits("2026-11-26T01:00:00+02:00"));
    }

    #[test]
    fn durations_parse_with_units_and_refuse_garbage() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
