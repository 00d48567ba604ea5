//! Where records come from: the [`Source`] boundary and its implementations. Sources
//! deliver raw payloads: turning them into items (JSON parsing, SDK value conversion) is CPU
//! work and happens on the rayon pool, in [`Payload::into_raw`].

pub mod any;
pub mod dynamodb;
pub mod export;
pub mod generated;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

use crate::attr::Item;
use crate::error::{Error, Result};
use crate::parse::export::read_export_line;
use crate::parse::RawRecord;
use crate::time::Day;
pub use crate::window::{KeyBounds, KeyRange};
use std::collections::HashMap;
use std::future::Future;

/// A page of raw records from one unit (a day partition, an export file).
#[derive(Debug)]
pub struct RawPage {
    /// The unit's label (`2026-11-26`, a file name): used in logs and the quarantine.
    pub unit: String,
    /// The records, not yet decoded.
    pub payload: Payload,
}

/// Raw records as a source has them.
#[derive(Debug)]
pub enum Payload {
    /// Items already in the shared model.
    Items(Vec<Item>),
    /// DynamoDB SDK items.
    Sdk(Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>),
    /// Export lines (`{"Item": {…}}` in DynamoDB JSON), undecoded, with their line numbers
    /// in the file (1-based).
    Lines(Lines),
    /// The lines of several small files sharing one page (a backfill job's small units):
    /// (file label, its lines).
    Files(Vec<(String, Lines)>),
}

/// Export lines with their line numbers in the file (1-based).
pub type Lines = Vec<(u64, Vec<u8>)>;

/// Where each record of a decoded page was read: its file and line.
#[derive(Debug, Default)]
pub struct Origins {
    numbers: Vec<u64>,
    /// (index of the file's first record, the file's label); empty: the page's unit.
    files: Vec<(usize, String)>,
}

impl Origins {
    /// Returns `file:line` of record `index`, with `unit` as the file when the page is one
    /// file.
    pub fn of(&self, index: usize, unit: &str) -> String {
        let file = match self.files.partition_point(|(start, _)| *start <= index) {
            0 => unit,
            i => &self.files[i - 1].1,
        };
        format!("{file}:{}", self.numbers[index])
    }

    /// Returns the files of the page with their record index ranges (none for one file).
    pub fn files(&self) -> impl Iterator<Item = (&str, std::ops::Range<usize>)> {
        self.files.iter().enumerate().map(|(i, (start, label))| {
            let end = self.files.get(i + 1).map_or(self.numbers.len(), |(s, _)| *s);
            (label.as_str(), *start..end)
        })
    }
}

impl Payload {
    /// Returns how many raw records the payload holds.
    pub fn len(&self) -> usize {
        match self {
            Payload::Items(x) => x.len(),
            Payload::Sdk(x) => x.len(),
            Payload::Lines(x) => x.len(),
            Payload::Files(f) => f.iter().map(|(_, l)| l.len()).sum(),
        }
    }

    /// Tells whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes the payload into raw records, and where each was read when the source has
    /// lines. CPU work: call it on the rayon pool.
    pub fn into_raw(self) -> (Vec<RawRecord>, Option<Origins>) {
        match self {
            Payload::Items(items) => (items.into_iter().map(RawRecord::Item).collect(), None),
            Payload::Sdk(items) => (
                items
                    .into_iter()
                    .map(|m| {
                        RawRecord::Item(
                            m.into_iter().map(|(k, v)| (k, crate::attr::sdk::from_sdk(v))).collect(),
                        )
                    })
                    .collect(),
                None,
            ),
            Payload::Lines(lines) => {
                let numbers = lines.iter().map(|(n, _)| *n).collect();
                let raw = lines.into_iter().map(|(_, l)| read_export_line(l)).collect();
                (raw, Some(Origins { numbers, files: Vec::new() }))
            }
            Payload::Files(files) => {
                let mut origins = Origins::default();
                let mut raw = Vec::new();
                for (label, lines) in files {
                    origins.files.push((raw.len(), label));
                    for (n, l) in lines {
                        origins.numbers.push(n);
                        raw.push(read_export_line(l));
                    }
                }
                (raw, Some(origins))
            }
        }
    }
}

/// The key ranges of one partition: the incremental window's (with `bounds`), or the whole
/// partition's, cut into `slices` slices.
pub fn partition_ranges(day: Day, bounds: Option<&KeyBounds>, slices: usize) -> Vec<KeyRange> {
    match bounds {
        Some(b) => b.ranges(day, slices),
        None => crate::window::whole_partition(day, slices),
    }
}

/// The units of a sliced, partitioned source: `DAY#i` for each key range `i` of each day.
pub fn slice_units(days: &[Day], bounds: Option<&KeyBounds>, slices: usize) -> Vec<String> {
    days.iter()
        .flat_map(|d| (0..partition_ranges(*d, bounds, slices).len()).map(move |i| format!("{d}#{i}")))
        .collect()
}

/// Reads a unit made by [`slice_units`] back into its day and key range.
pub fn slice_of(unit: &str, bounds: Option<&KeyBounds>, slices: usize) -> Result<(Day, KeyRange)> {
    let bad = || Error::internal(format!("unit {unit:?} is not DAY#SLICE"));
    let (day, i) = unit.split_once('#').ok_or_else(bad)?;
    let day = Day::parse(day).ok_or_else(bad)?;
    let i: usize = i.parse().map_err(|_| bad())?;
    let range = partition_ranges(day, bounds, slices).into_iter().nth(i).ok_or_else(bad)?;
    Ok((day, range))
}

/// A source of raw scan records.
///
/// Guarantee: **at-least-once**. A source delivers every record of the units it is asked
/// for that its key bounds admit, possibly more than once and in any order; the sink's
/// idempotent, monotonic merges make that safe. A unit it cannot read completely (a file
/// shorter than its manifest, a query that keeps failing) is an error, never a short unit.
pub trait Source: Send + Sync + 'static {
    /// Lists the units to fetch (in parallel) to cover these UTC day partitions, read with
    /// these key bounds (none: whole partitions).
    fn units(
        &self,
        days: &[Day],
        bounds: Option<&KeyBounds>,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Fetches one unit to its end, sending non-empty pages to `tx`. `bounds` are key bounds
    /// on `updatedAt` the source may use as a pre-filter (they never drop a record whose
    /// instant is later than the window's lower bound). Returns `Ok` early when `tx` is closed.
    fn fetch(
        &self,
        unit: String,
        bounds: Option<KeyBounds>,
        tx: async_channel::Sender<RawPage>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Returns the records each unit is expected to hold, when the source knows (an export
    /// manifest's `itemCount`): a backfill job reads small units together.
    fn size_hints(&self, units: &[String]) -> Vec<Option<u64>> {
        vec![None; units.len()]
    }

    /// Returns how many items the source's index returned so far, before any trim by the
    /// key bounds: the numerator of the read amplification. `None` when the source has no
    /// index (an export, generated records): everything it reads is what it delivers.
    fn items_returned(&self) -> Option<u64> {
        None
    }

    /// Returns the read capacity units the source's queries consumed so far, as the
    /// service reported them (`ReturnConsumedCapacity`); `None` when it has no such cost or
    /// did not say.
    fn capacity_units(&self) -> Option<f64> {
        None
    }
}
