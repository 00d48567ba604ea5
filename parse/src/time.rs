//! Instants and UTC days, parsed from every timestamp form the upstream writers use.
//!
//! Writers stamp `updatedAt` with different precisions and offsets (`…59Z`, `…59.051Z`,
//! `…59.051000Z`, `+00:00`, `-05:00`), so string order is not time order. Everything is
//! turned into a [`Timestamp`] (microseconds since the Unix epoch, UTC) before it is
//! compared. Microseconds are PostgreSQL's precision: truncating here means a comparison made
//! in Rust (folding a page) and one made by PostgreSQL (merging across pages) always agree.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

const MICROS_PER_SEC: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;
/// Epoch numbers at or above this magnitude are milliseconds, below it seconds.
/// 1e11 seconds is the year 5138; 1e11 milliseconds is 1973-03-03.
const EPOCH_MILLIS_THRESHOLD: f64 = 1e11;

/// An instant in UTC, in whole microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// A UTC calendar day, the unit of DynamoDB's `datePartition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Timestamp {
    /// Returns the current instant.
    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("system clock is before 1970");
        Timestamp(d.as_micros() as i64)
    }

    /// Returns this instant moved by `micros` (negative moves back).
    pub fn add_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    /// Returns the UTC day this instant falls in.
    pub fn day(self) -> Day {
        Day(self.0.div_euclid(MICROS_PER_DAY))
    }

    /// Parses an ISO 8601 / RFC 3339 timestamp with any fraction precision and offset, a
    /// date alone (midnight UTC), or an epoch number in seconds or milliseconds.
    ///
    /// Returns `None` for anything else; callers count that as an unparseable timestamp.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let b = s.as_bytes();
        if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' {
            return parse_iso(b);
        }
        parse_epoch(s)
    }

    /// Formats the instant as PostgreSQL `timestamptz` input (`YYYY-MM-DD HH:MM:SS.ffffff+00`).
    pub fn to_pg(self) -> String {
        let (days, micros_of_day) = (self.0.div_euclid(MICROS_PER_DAY), self.0.rem_euclid(MICROS_PER_DAY));
        let secs = micros_of_day / MICROS_PER_SEC;
        let frac = micros_of_day % MICROS_PER_SEC;
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return self.to_pg_formatted();
        }
        // Written digit by digit: the writer encodes two or three instants per record, and
        // `format!` was 3 % of its CPU (measured with `perf`).
        let mut out = *b"0000-00-00 00:00:00.000000+00";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, m);
        put(8, 2, d);
        put(11, 2, secs / 3600);
        put(14, 2, secs / 60 % 60);
        put(17, 2, secs % 60);
        put(20, 6, frac);
        String::from_utf8(out.to_vec()).expect("ASCII digits")
    }

    /// [`Timestamp::to_pg`] by `format!`, for years outside 0000–9999.
    fn to_pg_formatted(self) -> String {
        let micros_of_day = self.0.rem_euclid(MICROS_PER_DAY);
        let (secs, frac) = (micros_of_day / MICROS_PER_SEC, micros_of_day % MICROS_PER_SEC);
        format!("{} {:02}:{:02}:{:02}.{:06}+00", self.day(), secs / 3600, secs / 60 % 60, secs % 60, frac)
    }

    /// Formats the instant as ISO 8601 in UTC with millisecond precision (`…T…Z`).
    pub fn to_iso(self) -> String {
        let (date, micros_of_day) = (self.day(), self.0.rem_euclid(MICROS_PER_DAY));
        let secs = micros_of_day / MICROS_PER_SEC;
        let frac = micros_of_day % MICROS_PER_SEC;
        format!("{}T{:02}:{:02}:{:02}.{:06}Z", date, secs / 3600, secs / 60 % 60, secs % 60, frac)
    }

    /// Formats the instant as a zone-less ISO prefix (`YYYY-MM-DDTHH:MM:SS`), for the
    /// lexicographic key condition of a GSI query.
    pub fn to_iso_prefix(self) -> String {
        let iso = self.to_iso();
        iso[..19].to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso())
    }
}

impl Day {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.trim().as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let y = digits(&b[0..4])?;
        let m = digits(&b[5..7])?;
        let d = digits(&b[8..10])?;
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
            return None;
        }
        Some(Day(days_from_civil(y, m, d)))
    }

    /// Returns the first instant of the day.
    pub fn start(self) -> Timestamp {
        Timestamp(self.0 * MICROS_PER_DAY)
    }

    /// Returns the day `n` days later (earlier when negative).
    pub fn plus(self, n: i64) -> Self {
        Day(self.0 + n)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |acc, c| acc * 10 + i64::from(c - b'0')))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn parse_iso(b: &[u8]) -> Option<Timestamp> {
    let day = Day::parse(std::str::from_utf8(&b[..10]).ok()?)?;
    let mut micros = day.0 * MICROS_PER_DAY;
    let rest = &b[10..];
    if rest.is_empty() {
        return Some(Timestamp(micros));
    }
    if rest[0] != b'T' && rest[0] != b't' && rest[0] != b' ' {
        return None;
    }
    let rest = &rest[1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let h = digits(&rest[0..2])?;
    let mi = digits(&rest[3..5])?;
    let mut i = 5;
    let mut sec = 0;
    if rest.len() >= 8 && rest[5] == b':' {
        sec = digits(&rest[6..8])?;
        i = 8;
    }
    if h > 24 || mi > 59 || sec > 60 || (h == 24 && (mi != 0 || sec != 0)) {
        return None;
    }
    // A leap second (`:60`) is folded into the next second, as PostgreSQL does.
    micros += (h * 3600 + mi * 60 + sec) * MICROS_PER_SEC;
    if i < rest.len() && (rest[i] == b'.' || rest[i] == b',') {
        i += 1;
        let start = i;
        let mut frac = 0i64;
        while i < rest.len() && rest[i].is_ascii_digit() {
            // Digits past the sixth are truncated: microseconds are the precision compared.
            if i - start < 6 {
                frac = frac * 10 + i64::from(rest[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            frac *= 10;
        }
        micros += frac;
    }
    let zone = &rest[i..];
    let offset_minutes = match zone {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (hh, mm) = match tail {
                [a, b] => (digits(&[*a, *b])?, 0),
                [a, b, b':', c, d] | [a, b, c, d] => (digits(&[*a, *b])?, digits(&[*c, *d])?),
                _ => return None,
            };
            if hh > 14 || mm > 59 {
                return None;
            }
            let total = hh * 60 + mm;
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    Some(Timestamp(micros - offset_minutes * 60 * MICROS_PER_SEC))
}

fn parse_epoch(s: &str) -> Option<Timestamp> {
    let bytes = s.as_bytes();
    let body = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if body.is_empty()
        || !body.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        || body.iter().filter(|c| **c == b'.').count() > 1
    {
        return None;
    }
    let value: f64 = s.parse().ok()?;
    // f64 is exact for epoch microseconds well past the year 2200 (< 2^53).
    let micros = if value.abs() >= EPOCH_MILLIS_THRESHOLD { value * 1_000.0 } else { value * 1_000_000.0 };
    if !micros.is_finite() || micros.abs() > 2e17 {
        return None;
    }
    Some(Timestamp(micros.trunc() as i64))
}

/// How an `updatedAt` is written: what decides whether a range query on the index's string
/// sort key can find it. Counted per run, so an operator can see which forms the writers
/// use and set the offset margin from evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StampForm {
    /// ISO 8601 with `Z`; `space` when a space separates date and time.
    Z {
        /// A space instead of `T`.
        space: bool,
    },
    /// ISO 8601 with an explicit offset, in minutes east of UTC (`+00:00` is 0).
    Offset {
        /// Minutes east of UTC (negative: west).
        minutes: i16,
        /// A space instead of `T`.
        space: bool,
    },
    /// ISO 8601 without a zone (read as UTC).
    NoZone {
        /// A space instead of `T`.
        space: bool,
    },
    /// A date alone (midnight UTC).
    DateOnly,
    /// An epoch number (seconds or milliseconds), as a string or a number: it sorts below
    /// every date, so no range query on the index finds it.
    Epoch,
}

impl StampForm {
    /// Classifies a stamp that [`Timestamp::parse`] accepts; `None` for one it refuses.
    pub fn of(s: &str) -> Option<StampForm> {
        Timestamp::parse(s)?;
        Some(Self::of_parsed(s))
    }

    /// Classifies a stamp already known to parse (by its shape alone: no second parse on
    /// the hot path).
    pub fn of_parsed(s: &str) -> StampForm {
        let b = s.trim().as_bytes();
        if !(b.len() >= 10 && b[4] == b'-' && b[7] == b'-') {
            return StampForm::Epoch;
        }
        if b.len() == 10 {
            return StampForm::DateOnly;
        }
        let space = b[10] == b' ';
        let Some(z) = b[11..].iter().position(|c| matches!(c, b'Z' | b'z' | b'+' | b'-')).map(|i| i + 11)
        else {
            return StampForm::NoZone { space };
        };
        if matches!(b[z], b'Z' | b'z') {
            return StampForm::Z { space };
        }
        // The offset's digits (`hh`, `hhmm` or `hh:mm`), without allocating.
        let (mut d, mut n) = ([0i16; 4], 0);
        for c in b[z + 1..].iter().filter(|c| c.is_ascii_digit()) {
            if n == 4 {
                return StampForm::NoZone { space };
            }
            d[n] = i16::from(c - b'0');
            n += 1;
        }
        let (hh, mm) = match n {
            2 => (d[0] * 10 + d[1], 0),
            4 => (d[0] * 10 + d[1], d[2] * 10 + d[3]),
            _ => return StampForm::NoZone { space },
        };
        let minutes = hh * 60 + mm;
        StampForm::Offset { minutes: if b[z] == b'-' { -minutes } else { minutes }, space }
    }

    /// Returns the form's name as the run ledger stores it: `Z`, `+00:00`, `-05:00`,
    /// `space Z`, `space +00:00`, `no zone`, `date`, `epoch`.
    pub fn label(self) -> String {
        let sp = |space: bool| if space { "space " } else { "" };
        match self {
            StampForm::Z { space } => format!("{}Z", sp(space)),
            StampForm::Offset { minutes, space } => {
                let sign = if minutes < 0 { '-' } else { '+' };
                let m = minutes.unsigned_abs();
                format!("{}{sign}{:02}:{:02}", sp(space), m / 60, m % 60)
            }
            StampForm::NoZone { space } => format!("{}no zone", sp(space)),
            StampForm::DateOnly => "date".into(),
            StampForm::Epoch => "epoch".into(),
        }
    }

    /// Returns how far west of UTC the stamp is written, in minutes (0 for UTC and east).
    pub fn west_minutes(self) -> u32 {
        match self {
            StampForm::Offset { minutes, .. } if minutes < 0 => u32::from(minutes.unsigned_abs()),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn whole_second_is_older_than_half_second_whatever_the_string_order() {
        assert!(ts("2026-11-26T10:00:00Z") < ts("2026-11-26T10:00:00.500Z"));
        // As strings, "…00Z" > "…00.500Z" ('Z' sorts after '.'): the reason to parse.
        assert!("2026-11-26T10:00:00Z" > "2026-11-26T10:00:00.500Z");
    }

    #[test]
    fn precisions_and_offsets_of_one_instant_are_equal() {
        let a = ts("2026-11-26T10:00:59.051Z");
        assert_eq!(a, ts("2026-11-26T10:00:59.051000Z"));
        assert_eq!(a, ts("2026-11-26T10:00:59.051+00:00"));
        assert_eq!(a, ts("2026-11-26T05:00:59.051-05:00"));
        assert_eq!(a, ts("2026-11-26T15:30:59.051+0530"));
        assert_eq!(a, ts("2026-11-26 10:00:59.0510009Z"));
    }

    #[test]
    fn epoch_seconds_and_milliseconds_are_told_apart() {
        let s = ts("1764151200");
        assert_eq!(s, ts("1764151200000"));
        assert_eq!(s, ts("2025-11-26T10:00:00Z"));
        assert_eq!(ts("1764151200.5"), ts("2025-11-26T10:00:00.5Z"));
    }

    #[test]
    fn garbage_does_not_parse() {
        for s in
            ["", "n/a", "2026-13-01", "2026-02-30T00:00:00Z", "2026-11-26T25:00Z", "2026-11-26Tfoo", "1e9"]
        {
            assert_eq!(Timestamp::parse(s), None, "{s}");
        }
    }

    #[test]
    fn to_pg_writes_what_format_writes_for_any_instant() {
        let mut rng_state = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            rng_state
        };
        let year = 365 * MICROS_PER_DAY;
        let edges = [0, -1, 1, MICROS_PER_DAY - 1, -1970 * year, -1971 * year, 8029 * year, 8031 * year];
        for t in edges.into_iter().chain((0..10_000).map(|_| (next() as i64) % (9000 * year))) {
            assert_eq!(Timestamp(t).to_pg(), Timestamp(t).to_pg_formatted(), "{t}");
        }
    }

    #[test]
    fn days_are_utc_and_round_trip() {
        assert_eq!(ts("2026-03-29T00:30:00+01:00").day().to_string(), "2026-03-28");
        let d = Day::parse("2024-02-29").unwrap();
        assert_eq!(d.to_string(), "2024-02-29");
        assert_eq!(d.plus(1).to_string(), "2024-03-01");
        assert_eq!(Day::parse("1970-01-01").unwrap().0, 0);
    }

    #[test]
    fn stamp_forms_are_told_apart_by_zone_separator_and_kind() {
        let label = |s: &str| StampForm::of(s).map(StampForm::label);
        assert_eq!(label("2026-11-26T10:00:00Z").as_deref(), Some("Z"));
        assert_eq!(label("2026-11-26T10:00:00.5+00:00").as_deref(), Some("+00:00"));
        assert_eq!(label("2026-11-26T05:00:00-05:00").as_deref(), Some("-05:00"));
        assert_eq!(label("2026-11-26T15:30:00+0530").as_deref(), Some("+05:30"));
        assert_eq!(label("2026-11-26 10:30:00+00:00").as_deref(), Some("space +00:00"));
        assert_eq!(label("2026-11-26 10:30:00").as_deref(), Some("space no zone"));
        assert_eq!(label("2026-11-26").as_deref(), Some("date"));
        assert_eq!(label("1764151200").as_deref(), Some("epoch"));
        assert_eq!(label("garbage"), None);
        assert_eq!(StampForm::of("2026-11-26T00:00:00-12:00").unwrap().west_minutes(), 720);
        assert_eq!(StampForm::of("2026-11-26T00:00:00+12:00").unwrap().west_minutes(), 0);
    }

    #[test]
    fn pg_format_is_utc_with_microseconds() {
        assert_eq!(ts("2026-11-26T05:00:59.051-05:00").to_pg(), "2026-11-26 10:00:59.051000+00");
        assert_eq!(ts("1969-12-31T23:59:59.5Z").to_pg(), "1969-12-31 23:59:59.500000+00");
    }
}
