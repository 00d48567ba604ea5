//! Run statistics, as data: what a run (or a page) read, changed, repaired and rejected.
//! The pipeline fills them, the ledger stores them, `summary` prints them, `metrics` counts
//! them.

use crate::parse::{Repairs, StampCounts};
use crate::time::StampForm;
use std::collections::BTreeMap;
use std::time::Duration;

/// Rows changed by one page (or a whole run), per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// Creator rows inserted or updated.
    pub creators: u64,
    /// Community rows inserted or updated.
    pub communities: u64,
    /// Tag rows inserted.
    pub tags: u64,
    /// Content rows inserted or updated (live values or tombstones).
    pub content: u64,
    /// Tag edges added plus removed.
    pub content_tags: u64,
    /// Quarantine rows added (a record seen again adds none).
    pub quarantined: u64,
    /// Content rows of the pages that the store already held in that version or newer:
    /// found stale from their keys and versions alone, and never copied.
    pub unchanged: u64,
    /// Content rows a removal tombstoned (counted within `content` too).
    pub removals_applied: u64,
    /// Content rows appended to the staging tables of a staged load (folded at its end).
    pub staged: u64,
}

impl WriteStats {
    /// Adds another page's counts.
    pub fn merge(&mut self, o: &WriteStats) {
        self.creators += o.creators;
        self.communities += o.communities;
        self.tags += o.tags;
        self.content += o.content;
        self.content_tags += o.content_tags;
        self.quarantined += o.quarantined;
        self.unchanged += o.unchanged;
        self.removals_applied += o.removals_applied;
        self.staged += o.staged;
    }
}

/// What a run did. Counts cover committed pages only.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    /// Pages committed.
    pub pages: u64,
    /// Raw records read in committed pages.
    pub read: u64,
    /// Records outside the window.
    pub skipped: u64,
    /// Rejected records by reason code.
    pub rejects: BTreeMap<&'static str, u64>,
    /// Repairs by rule.
    pub repairs: Repairs,
    /// Drift observed: (attribute, type) → records.
    pub drift: BTreeMap<(String, &'static str), u64>,
    /// Rows written per table.
    pub written: WriteStats,
    /// Page transactions retried.
    pub retries: u64,
    /// Records read per `updatedAt` form (committed pages).
    pub stamps: StampCounts,
    /// Removals read (incremental exports' deletes, streams' REMOVEs).
    pub removals: u64,
    /// TTL expiries left out (`--ttl-removals ignore`).
    pub ttl_removals_ignored: u64,
    /// Items the source's index returned, before any trim (None: the source has no index).
    pub index_items: Option<u64>,
    /// Read capacity units the source reported consumed (DynamoDB queries).
    pub capacity_units: Option<f64>,
    /// Content rows an index-path sync changed while a follower of the schema was alive:
    /// writes the follower had not applied (None: no follower was alive).
    pub missed_by_follower: Option<u64>,
    /// Wall time, from the first page to the end of whatever the run did after its last one.
    pub elapsed: Duration,
    /// What a backfill worker did after its last page, within `elapsed`: the staged rows
    /// folded into the tables, the bulk load's keys restored and validated.
    pub after_pages: Option<Duration>,
}

impl RunStats {
    /// Adds a committed page: what it read (`page`) and what it changed (`written`).
    pub fn add_page(&mut self, page: &crate::parse::ParsedPage, written: &WriteStats) {
        self.pages += 1;
        self.read += page.read;
        self.skipped += page.skipped;
        self.removals += page.removals;
        self.ttl_removals_ignored += page.ttl_removals_ignored;
        for r in &page.rejects {
            *self.rejects.entry(r.reason.code()).or_default() += 1;
        }
        self.repairs.merge(&page.repairs);
        for (k, n) in &page.drift {
            *self.drift.entry(k.clone()).or_default() += n;
        }
        for (f, n) in &page.stamps {
            *self.stamps.entry(*f).or_default() += n;
        }
        self.written.merge(written);
    }

    /// Returns the reject counts as a JSON object text.
    pub fn rejects_json(&self) -> String {
        let m: serde_json::Map<String, serde_json::Value> =
            self.rejects.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
        serde_json::Value::Object(m).to_string()
    }

    /// Returns the repair counts as a JSON object text.
    pub fn repairs_json(&self) -> String {
        let m: serde_json::Map<String, serde_json::Value> =
            self.repairs.fired().map(|(r, n)| (r.name().to_string(), n.into())).collect();
        serde_json::Value::Object(m).to_string()
    }

    /// Returns the number of records rejected.
    pub fn rejected(&self) -> u64 {
        self.rejects.values().sum()
    }

    /// Returns the records inside the window: what the run was for.
    pub fn in_window(&self) -> u64 {
        self.read.saturating_sub(self.skipped)
    }

    /// Returns the read amplification: items the index returned ÷ records inside the window
    /// (1.0 reads only what changed). None when the source has no index or nothing changed.
    pub fn read_amplification(&self) -> Option<f64> {
        let items = self.index_items?;
        (self.in_window() > 0).then(|| items as f64 / self.in_window() as f64)
    }

    /// Returns the stamp counts as a JSON object text (form label → records).
    pub fn stamps_json(&self) -> String {
        let m: serde_json::Map<String, serde_json::Value> =
            self.stamps.iter().map(|(k, v)| (k.label(), (*v).into())).collect();
        serde_json::Value::Object(m).to_string()
    }

    /// Returns the records stamped further west of UTC than `margin_minutes`, and the
    /// largest such offset in minutes: records that the index query may miss.
    pub fn beyond_margin(&self, margin_minutes: u32) -> (u64, u32) {
        self.stamps
            .iter()
            .filter(|(f, _)| f.west_minutes() > margin_minutes)
            .fold((0, 0), |(n, w), (f, c)| (n + c, w.max(f.west_minutes())))
    }

    /// Returns the records whose `updatedAt` is an epoch number (never found by the index).
    pub fn epoch_stamps(&self) -> u64 {
        self.stamps.get(&StampForm::Epoch).copied().unwrap_or(0)
    }

    /// Adds work done after the last page (`after_pages`), which the run's wall time covers.
    pub fn add_after_pages(&mut self, d: Duration) {
        self.elapsed += d;
        self.after_pages = Some(self.after_pages.unwrap_or_default() + d);
    }

    /// Returns records read per second of wall time.
    pub fn records_per_sec(&self) -> f64 {
        self.read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_after_the_last_page_counts_in_the_wall_time_and_the_rate() {
        let mut s = RunStats { read: 1000, elapsed: Duration::from_secs(2), ..Default::default() };
        s.add_after_pages(Duration::from_secs(3));
        s.add_after_pages(Duration::from_secs(5));
        assert_eq!(s.elapsed, Duration::from_secs(10));
        assert_eq!(s.after_pages, Some(Duration::from_secs(8)));
        assert_eq!(s.records_per_sec(), 100.0);
    }
}
