//! What the parse benchmark (`parse.rs`) and the instruction count
//! (`examples/parse_count.rs`, `scripts/parse-instructions`) share: the lines, and the work.

use loadgen::{export_line, Generator, Mix, Shape};
use scansync_parse::time::Timestamp;
use scansync_parse::{parse_item, Drift, RawRecord, Repairs};

/// The lines both parse: realistic ~1 KB export lines of `loadgen`'s mix (seed 42).
pub const RECORDS: usize = 20_000;

/// [`RECORDS`] export lines of `loadgen`'s default mix.
pub fn lines() -> Vec<Vec<u8>> {
    let mut g = Generator::new(42, Mix::default(), Shape::default());
    let start = Timestamp::parse("2026-11-01T00:00:00Z").expect("a valid stamp");
    (0..RECORDS)
        .map(|i| {
            let mut line = String::with_capacity(1200);
            export_line(&g.next_record(start.add_micros(i as i64 * 1000)).item, &mut line);
            line.into_bytes()
        })
        .collect()
}

/// Every rule, each line read by `read` and its item (if any) parsed: with
/// `read_export_line` as the pipeline reads an export (the typed path for lines of the
/// common shape, the general path for the rest), with `decode_export_line` every line through
/// the general path. Returns the records read.
pub fn parse_all(lines: Vec<Vec<u8>>, read: fn(Vec<u8>) -> RawRecord) -> usize {
    let (mut repairs, mut drift) = (Repairs::default(), Drift::default());
    lines
        .into_iter()
        .map(|l| match read(l) {
            RawRecord::Typed(_) => 1,
            RawRecord::Item(item) => usize::from(parse_item(&item, "", &mut repairs, &mut drift).is_ok()),
            RawRecord::Removal { .. } => 1,
            RawRecord::Unreadable { .. } => 0,
        })
        .sum()
}
