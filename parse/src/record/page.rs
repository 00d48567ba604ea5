//! A page: raw records in, parsed records, rejects and counts out, and the filter that keeps
//! a run's window.

use super::item::parse_item;
use super::rules::{Drift, Reject, RejectReason, Repairs};
use super::{Record, Removal};
use crate::attr::{write_item_dynamodb_json, Attr, Item};
use crate::text::clean_text;
use crate::time::{Day, Timestamp};

/// One raw input record as a source delivers it.
#[derive(Debug, Clone)]
pub enum RawRecord {
    /// A DynamoDB item.
    Item(Item),
    /// An export line the typed path already read into a record.
    Typed(Box<Typed>),
    /// The removal of an item (an incremental export's delete, a stream's REMOVE), with
    /// the item as it was (its old image): read as a tombstone of that version.
    Removal {
        /// The item as it was before the removal.
        item: Item,
        /// When and how it was removed.
        removal: Removal,
    },
    /// An export line that could not be read as an item.
    Unreadable {
        /// Why.
        reason: RejectReason,
        /// The line as read (invalid UTF-8 replaced).
        raw: String,
    },
}

/// A record the typed path read ([`crate::typed`]): exactly what the general path would
/// have made of its line, with the same repairs (and no drift).
#[derive(Debug, Clone, PartialEq)]
pub struct Typed {
    /// The record.
    pub record: Record,
    /// How its `updatedAt` is written.
    pub stamp: crate::time::StampForm,
    /// The repairs made.
    pub repairs: Repairs,
}

/// A page of parsed records, ready for the writer.
#[derive(Debug, Default)]
pub struct ParsedPage {
    /// The partition (or export file) the page came from.
    pub partition: String,
    /// Records inside the window.
    pub records: Vec<Record>,
    /// Records beyond repair.
    pub rejects: Vec<Reject>,
    /// Repairs made.
    pub repairs: Repairs,
    /// Drifted attributes seen.
    pub drift: Drift,
    /// Raw records read.
    pub read: u64,
    /// Records outside the run's window (already synced by an earlier run, or outside a
    /// backfill's days).
    pub skipped: u64,
    /// How the records' `updatedAt` stamps are written, by form.
    pub stamps: StampCounts,
    /// Removals read (kept as tombstones, or left out: TTL expiries, outside the window).
    pub removals: u64,
    /// TTL expiries left out (`Filter::ttl_removals` not set).
    pub ttl_removals_ignored: u64,
}

/// Records read per `updatedAt` form.
pub type StampCounts = std::collections::BTreeMap<crate::time::StampForm, u64>;

/// Which parsed records a run keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Filter {
    /// Keep only records with `updatedAt` strictly after this instant (the exact incremental
    /// filter); `None` keeps every record.
    pub after: Option<Timestamp>,
    /// Keep only records with `updatedAt` at or before this instant (a run whose window is
    /// bounded above, `--max-window`); `None`: no upper bound.
    pub until: Option<Timestamp>,
    /// Keep only records whose partition day lies in this inclusive range (backfill of an
    /// export, which is not indexed by day).
    pub days: Option<(Day, Day)>,
    /// Keep TTL expiries as tombstones (`--ttl-removals tombstone`); otherwise they are
    /// counted and left out.
    pub ttl_removals: bool,
}

impl Filter {
    /// A removal is a change at the time it happened, whatever the version it removed.
    fn keeps(&self, r: &Record) -> bool {
        let at = r.removal.and_then(|x| x.at).unwrap_or(r.updated_at);
        let after_ok = self.after.is_none_or(|l| at > l) && self.until.is_none_or(|u| at <= u);
        let day_ok = self.days.is_none_or(|(from, to)| {
            let d = Day::parse(&r.partition).unwrap_or_else(|| r.updated_at.day());
            from <= d && d <= to
        });
        after_ok && day_ok
    }
}

/// Parses one page and keeps the records `filter` lets through.
pub fn parse_page(partition: &str, raw: Vec<RawRecord>, filter: &Filter) -> ParsedPage {
    let mut page =
        ParsedPage { partition: partition.to_owned(), read: raw.len() as u64, ..ParsedPage::default() };
    for (index, r) in raw.into_iter().enumerate() {
        match r {
            RawRecord::Unreadable { reason, raw } => page.rejects.push(Reject {
                reason,
                scan_id: None,
                partition: partition.to_owned(),
                raw,
                index,
                origin: partition.to_owned(),
            }),
            RawRecord::Typed(t) => {
                let Typed { record, stamp, repairs } = *t;
                *page.stamps.entry(stamp).or_default() += 1;
                page.repairs.merge(&repairs);
                if filter.keeps(&record) {
                    page.records.push(record);
                } else {
                    page.skipped += 1;
                }
            }
            RawRecord::Item(item) => page.item(&item, None, partition, index, filter),
            RawRecord::Removal { item, removal } => page.item(&item, Some(removal), partition, index, filter),
        }
    }
    page
}

impl ParsedPage {
    /// Parses one item (or a removed item's old image) and keeps it if `filter` does.
    fn item(
        &mut self,
        item: &Item,
        removal: Option<Removal>,
        partition: &str,
        index: usize,
        filter: &Filter,
    ) {
        let parsed = parse_item(item, partition, &mut self.repairs, &mut self.drift);
        // Every record whose updatedAt parsed (rejects for other reasons included) counts its
        // stamp form, classified by shape: it was parsed once above.
        let stamp_ok =
            !matches!(parsed, Err(RejectReason::MissingUpdatedAt | RejectReason::UnparseableUpdatedAt));
        if let (true, Some(Attr::S(u) | Attr::N(u))) = (stamp_ok, item.get(super::fields::UPDATED_AT.top[0]))
        {
            *self.stamps.entry(crate::time::StampForm::of_parsed(u)).or_default() += 1;
        }
        match parsed {
            Ok(mut rec) => {
                if let Some(r) = removal {
                    self.removals += 1;
                    if r.by_ttl && !filter.ttl_removals {
                        self.ttl_removals_ignored += 1;
                        return;
                    }
                    rec.deleted = true;
                    rec.updated_at = rec.updated_at.add_micros(1);
                    rec.removal = Some(r);
                }
                if filter.keeps(&rec) {
                    self.records.push(rec);
                } else {
                    self.skipped += 1;
                }
            }
            Err(reason) => self.rejects.push(reject_item(item, reason, partition, index)),
        }
    }
}

pub(crate) fn reject_item(item: &Item, reason: RejectReason, partition: &str, index: usize) -> Reject {
    let mut raw = String::new();
    write_item_dynamodb_json(item, &mut raw);
    let text_of = |name: &str| match item.get(name) {
        Some(Attr::S(s)) | Some(Attr::N(s)) => clean_text(s).0,
        _ => None,
    };
    Reject {
        reason,
        scan_id: text_of("scanId"),
        // The record's own partition when it has one; else where it was read from.
        partition: text_of("datePartition").unwrap_or_else(|| partition.to_owned()),
        raw,
        index,
        origin: partition.to_owned(),
    }
}
