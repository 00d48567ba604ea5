//! Planning an incremental run's window, all in UTC, and the `updatedAt` key ranges that
//! read it from the index (docs/run.md, "The window").

use crate::config::WindowConfig;
use crate::time::{Day, Timestamp};
use std::time::Duration;

/// What one incremental run reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The checkpoint read (None on a first run).
    pub checkpoint: Option<Timestamp>,
    /// Records with `updatedAt` strictly after this instant are synced.
    pub after: Timestamp,
    /// With `--max-window`, when the run is further behind than that: records with
    /// `updatedAt` after this instant are left to the next run, and this is the checkpoint
    /// the run writes.
    pub until: Option<Timestamp>,
    /// The `updatedAt` key bounds for the GSI queries.
    pub bounds: KeyBounds,
    /// The UTC day partitions to scan, oldest first.
    pub days: Vec<Day>,
}

fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

/// Plans the window: `after = (checkpoint or now − first_run_window) − lookback`; partitions
/// from `date(after) − overlap` to `date(now)` inclusive.
pub fn plan(checkpoint: Option<Timestamp>, now: Timestamp, cfg: &WindowConfig) -> Plan {
    let base = checkpoint.unwrap_or_else(|| now.add_micros(-micros(cfg.first_run_window)));
    let after = base.add_micros(-micros(cfg.lookback));
    let until = match cfg.max_window {
        Some(w) if now.0.saturating_sub(after.0) > micros(w) => Some(after.add_micros(micros(w))),
        _ => None,
    };
    let first = after.day().plus(-i64::from(cfg.overlap_days));
    let last = until.unwrap_or(now).day().max(first);
    let days = (first.0..=last.0).map(Day).collect();
    let bounds = KeyBounds {
        after,
        margin: micros(cfg.offset_margin),
        until: until.unwrap_or(now),
        cap: until.map(|u| u.add_micros(MAX_EAST_OFFSET + 1_000_000)),
    };
    Plan { checkpoint, after, until, bounds, days }
}

/// Plans an explicit range: records with `updatedAt` in `(after, until]`, read from the index
/// with the margins of `cfg` (a gap healed by the follower, a verify of some days). No
/// checkpoint is involved.
pub fn range(after: Timestamp, until: Timestamp, cfg: &WindowConfig) -> Plan {
    let first = after.day().plus(-i64::from(cfg.overlap_days));
    let last = until.day().max(first);
    let days = (first.0..=last.0).map(Day).collect();
    let bounds = KeyBounds {
        after,
        margin: micros(cfg.offset_margin),
        until,
        cap: Some(until.add_micros(MAX_EAST_OFFSET + 1_000_000)),
    };
    Plan { checkpoint: None, after, until: Some(until), bounds, days }
}

/// The `updatedAt` key bounds of an incremental fetch.
///
/// The index's sort key is a string, and writers stamp `updatedAt` in many forms: `Z` or
/// `+00:00`, any precision, positive or negative offsets, `T` or a space between date and
/// time. Past the window's lower bound written as a zone-less UTC prefix (`utc`), string
/// order admits every later instant written in UTC or at a positive offset. Two forms sort
/// lower than the instant they mean:
/// - a **negative offset** writes a later instant as a smaller string, by up to the offset:
///   the index is read from `low` = lower bound − *offset margin*, and of the stamps
///   between `low` and `utc` only those without `Z`/`+` are kept ([`KeyBounds::admits`]);
/// - a **space** instead of `T` (`2026-11-26 10:30:00+00:00`, Python's `str(datetime)`)
///   sorts before every `T` stamp of the same date: each partition also reads the space
///   stamps of `low`'s date from `low`'s time on (the first [`KeyRange`] of
///   [`KeyBounds::ranges`]). Later dates sort above `low` in either form.
///
/// An `updatedAt` written as an epoch number sorts below every date: no range query finds
/// it, so the index path cannot sync it (it is counted wherever it is seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBounds {
    /// The exact lower bound: records later than this instant are synced.
    pub after: Timestamp,
    /// The offset margin, in microseconds.
    pub margin: i64,
    /// The run's start, or its upper bound: where slices of the window stop being cut.
    pub until: Timestamp,
    /// With an upper bound: the first key not read (the bound plus the largest offset east
    /// of UTC, +14:00, whose stamps sort later than the instant they mean). None: the last
    /// slice is open.
    pub cap: Option<Timestamp>,
}

/// The largest offset east of UTC in use (+14:00), in microseconds.
const MAX_EAST_OFFSET: i64 = 14 * 3_600_000_000;

/// A contiguous range of sort-key strings: `from` inclusive (none: from the start),
/// `to` exclusive (none: to the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// The first key of the range, inclusive.
    pub from: Option<String>,
    /// The first key after the range (exclusive).
    pub to: Option<String>,
}

impl KeyRange {
    /// Tells whether a key lies in the range.
    pub fn contains(&self, key: &str) -> bool {
        self.from.as_deref().is_none_or(|f| key >= f) && self.to.as_deref().is_none_or(|t| key < t)
    }
}

/// Replaces a space (or a lowercase `t`) between date and time by `T`, so both forms
/// compare with the bounds alike.
fn with_t(stamp: &str) -> std::borrow::Cow<'_, str> {
    match stamp.as_bytes().get(10) {
        Some(b' ' | b't') if stamp.is_char_boundary(10) && stamp.is_char_boundary(11) => {
            std::borrow::Cow::Owned(format!("{}T{}", &stamp[..10], &stamp[11..]))
        }
        _ => std::borrow::Cow::Borrowed(stamp),
    }
}

impl KeyBounds {
    /// The lower bound as a zone-less UTC prefix (`YYYY-MM-DDTHH:MM:SS`).
    pub fn utc(&self) -> String {
        self.after.to_iso_prefix()
    }

    /// The lowest key read: the lower bound minus the offset margin.
    pub fn low(&self) -> String {
        self.after.add_micros(-self.margin).to_iso_prefix()
    }

    /// Tells whether a stamp returned by the key ranges may be later than the lower bound
    /// (the exact comparison of instants happens after parsing). Stamps between `low` and
    /// `utc` are kept only if they may carry a negative offset.
    pub fn admits(&self, updated_at: &str) -> bool {
        let s = with_t(updated_at);
        let zone_is_utc_or_east = s.get(10..).is_some_and(|t| t.contains(['Z', 'z', '+']));
        s.as_ref() > self.utc().as_str() || (s.as_ref() >= self.low().as_str() && !zone_is_utc_or_east)
    }

    /// The key ranges that read partition `day` for an incremental run, in key order:
    /// the space-separated stamps of `low`'s date from `low` on, then everything from `low`
    /// up, cut into `slices` contiguous slices. Together they cover exactly the keys
    /// `>= low` in either form, each key in one range.
    pub fn ranges(&self, day: Day, slices: usize) -> Vec<KeyRange> {
        let low = self.low();
        let mut spaced = low.clone();
        spaced.replace_range(10..11, " ");
        let mut out = vec![KeyRange { from: Some(spaced), to: Some(format!("{}T", &low[..10])) }];
        let start = self.after.add_micros(-self.margin).max(day.start());
        let end = self.until.min(day.plus(1).start());
        out.extend(slice(Some(low), start, end, slices));
        if let (Some(cap), Some(last)) = (self.cap, out.last_mut()) {
            let cap = cap.to_iso_prefix();
            if last.from.as_deref().is_none_or(|f| f < cap.as_str()) {
                last.to = Some(cap);
            }
        }
        out
    }
}

/// The key ranges that read a whole partition (a backfill), cut into `slices` slices.
pub fn whole_partition(day: Day, slices: usize) -> Vec<KeyRange> {
    slice(None, day.start(), day.plus(1).start(), slices)
}

/// Cuts the keys from `from` up into `n` contiguous ranges at instants spread evenly over
/// `[start, end)` (where a partition's UTC stamps lie); the last range is open. Cuts are
/// zone-less prefixes, so a stamp equal to a cut in its first 19 characters falls in the
/// range that starts there: no key lies in two ranges, none in none.
fn slice(from: Option<String>, start: Timestamp, end: Timestamp, n: usize) -> Vec<KeyRange> {
    let mut cuts: Vec<String> = Vec::new();
    if end > start {
        let span = (end.0 - start.0) as i128;
        for k in 1..n.max(1) {
            let at = Timestamp(start.0 + (span * k as i128 / n as i128) as i64).to_iso_prefix();
            let above_from = from.as_deref().is_none_or(|f| at.as_str() > f);
            if above_from && cuts.last().is_none_or(|c| at > *c) {
                cuts.push(at);
            }
        }
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut lo = from;
    for c in cuts {
        out.push(KeyRange { from: lo, to: Some(c.clone()) });
        lo = Some(c);
    }
    out.push(KeyRange { from: lo, to: None });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn cfg(margin_hours: u64) -> WindowConfig {
        WindowConfig { offset_margin: Duration::from_secs(margin_hours * 3600), ..WindowConfig::default() }
    }

    /// What the index returns for a stamp in partition `day`: in exactly one range, and
    /// kept by `admits`.
    fn found(b: &KeyBounds, day: Day, slices: usize, stamp: &str) -> bool {
        let hits = b.ranges(day, slices).iter().filter(|r| r.contains(stamp)).count();
        assert!(hits <= 1, "{stamp} lies in {hits} ranges");
        hits == 1 && b.admits(stamp)
    }

    #[test]
    fn a_run_further_behind_than_the_max_window_reads_a_bounded_window_and_caps_its_keys() {
        let cfg = WindowConfig { max_window: Some(Duration::from_secs(6 * 3600)), ..WindowConfig::default() };
        let now = ts("2026-11-26T10:00:00Z");
        let p = plan(Some(ts("2026-11-23T00:00:00Z")), now, &cfg);
        assert_eq!(p.after, ts("2026-11-22T23:45:00Z"));
        assert_eq!(p.until, Some(ts("2026-11-23T05:45:00Z")));
        let days: Vec<String> = p.days.iter().map(|d| d.to_string()).collect();
        assert_eq!(days, ["2026-11-21", "2026-11-22", "2026-11-23"]);
        // A stamp of an instant inside the window at +14:00 is still read; later keys not.
        let day = Day::parse("2026-11-23").unwrap();
        assert!(found(&p.bounds, day, 4, "2026-11-23T19:44:59.999+14:00"));
        let last = p.bounds.ranges(day, 4).last().unwrap().clone();
        assert_eq!(last.to.as_deref(), Some("2026-11-23T19:45:01"));
        // Close enough to now: no bound.
        let p = plan(Some(ts("2026-11-26T06:00:00Z")), now, &cfg);
        assert_eq!(p.until, None);
        assert!(p.bounds.ranges(day, 4).last().unwrap().to.is_none());
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
    fn every_form_of_a_later_instant_is_found_and_older_utc_stamps_are_not() {
        let p = plan(Some(ts("2026-11-26T10:00:00Z")), ts("2026-11-26T11:00:00Z"), &WindowConfig::default());
        let day = p.after.day();
        for slices in [1, 4, 7] {
            for later in [
                "2026-11-25T21:45:01-12:00",
                "2026-11-26T09:45:00.001Z",
                "2026-11-26T09:45:01+00:00",
                "2026-11-26T15:15:01+05:30",
                "2026-11-26T04:45:01-05:00",
                "2026-11-26 09:45:01+00:00",
                "2026-11-26 09:45:00.5Z",
                "2026-11-26 04:45:01-05:00",
                "2026-11-25 21:45:01-12:00",
                "2026-11-26t09:45:01Z",
                "2026-11-26T10:59:59.999999Z",
                "2026-11-27 01:00:00+00:00",
            ] {
                assert!(ts(later) > p.after);
                assert!(found(&p.bounds, day, slices, later), "{later} with {slices} slices");
            }
            // Older UTC stamps inside the margin are not read again.
            for older in ["2026-11-26T01:00:00.000Z", "2026-11-26T01:00:00+02:00", "2026-11-26 01:00:00Z"] {
                assert!(!found(&p.bounds, day, slices, older), "{older}");
            }
        }
    }

    #[test]
    fn with_margin_0_a_negative_offset_stamp_is_not_found_and_utc_stamps_at_the_bound_are() {
        let p = plan(Some(ts("2026-11-26T10:00:00Z")), ts("2026-11-26T11:00:00Z"), &cfg(0));
        let day = p.after.day();
        assert_eq!(p.bounds.low(), p.bounds.utc());
        assert!(!found(&p.bounds, day, 4, "2026-11-26T04:45:01-05:00"));
        // At the bound, and just after it, in each UTC form.
        for s in ["2026-11-26T09:45:00Z", "2026-11-26T09:45:00.000001Z", "2026-11-26 09:45:00+00:00"] {
            assert!(found(&p.bounds, day, 4, s), "{s}");
        }
        // Just before the bound.
        assert!(!found(&p.bounds, day, 4, "2026-11-26T09:44:59.999Z"));
        assert!(!found(&p.bounds, day, 4, "2026-11-26 09:44:59Z"));
    }

    #[test]
    fn a_negative_offset_at_the_margin_is_found_and_one_beyond_it_is_not() {
        let p = plan(Some(ts("2026-11-26T10:00:00Z")), ts("2026-11-26T11:00:00Z"), &cfg(5));
        let day = p.after.day();
        // After = 09:45Z. 09:45:01Z written at -05:00 is 04:45:01: inside a 5 h margin.
        assert!(found(&p.bounds, day, 3, "2026-11-26T04:45:01-05:00"));
        // The same instant at -06:00 sorts below the margin: the case the run warns about.
        assert!(!found(&p.bounds, day, 3, "2026-11-26T03:45:01-06:00"));
    }

    #[test]
    fn slices_are_contiguous_ordered_and_cover_the_key_space_from_low() {
        let p = plan(Some(ts("2026-11-26T10:00:00Z")), ts("2026-11-26T18:00:00Z"), &cfg(0));
        let r = p.bounds.ranges(p.after.day(), 4);
        assert_eq!(r.len(), 5, "the space range and 4 slices: {r:?}");
        assert_eq!(r[1].from.as_deref(), Some("2026-11-26T09:45:00"));
        for w in r[1..].windows(2) {
            assert_eq!(w[0].to, w[1].from, "{r:?}");
        }
        assert_eq!(r[4].to, None);
        // A stamp equal to a cut in its first 19 characters lies in the slice starting there.
        let cut = r[2].from.clone().unwrap();
        assert!(r[2].contains(&format!("{cut}Z")) && !r[1].contains(&format!("{cut}Z")));
        assert!(r[2].contains(&cut) && !r[1].contains(&cut));
    }

    #[test]
    fn a_backfill_partition_slices_cover_every_key() {
        let day = Day::parse("2026-11-26").unwrap();
        let r = whole_partition(day, 4);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].from, None);
        for k in [
            "",
            "1764152400",
            "2026-11-25T23:00:00-05:00",
            "2026-11-26 12:00:00Z",
            "2026-11-26T23:59:59Z",
            "~",
        ] {
            assert_eq!(r.iter().filter(|x| x.contains(k)).count(), 1, "{k}");
        }
    }
}
