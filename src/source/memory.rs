//! An in-memory source for unit tests: items grouped by day partition, served in pages,
//! with the key semantics of the DynamoDB source (the same slices, the same trim).

use super::{slice_of, slice_units, KeyBounds, Payload, RawPage, Source};
use crate::attr::{Attr, Item};
use crate::error::Result;
use crate::time::Day;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Items by partition, paged like a DynamoDB query (with the same key bounds).
#[derive(Debug, Default)]
pub struct MemorySource {
    /// Partition (`YYYY-MM-DD`) → items.
    pub partitions: BTreeMap<String, Vec<Item>>,
    /// Items per page.
    pub page_size: usize,
    /// Key slices per partition.
    pub slices: usize,
    returned: AtomicU64,
}

impl MemorySource {
    /// Creates a source serving `items`, placed by their `datePartition`.
    pub fn new(items: Vec<Item>, page_size: usize) -> Self {
        let mut partitions: BTreeMap<String, Vec<Item>> = BTreeMap::new();
        for item in items {
            let day = match item.get("datePartition") {
                Some(Attr::S(d)) => d.clone(),
                _ => String::new(),
            };
            partitions.entry(day).or_default().push(item);
        }
        Self { partitions, page_size: page_size.max(1), slices: 1, returned: AtomicU64::new(0) }
    }
}

fn sort_key(i: &Item) -> &str {
    match i.get("updatedAt") {
        Some(Attr::S(u)) => u,
        _ => "",
    }
}

impl Source for MemorySource {
    async fn units(&self, days: &[Day], bounds: Option<&KeyBounds>) -> Result<Vec<String>> {
        Ok(slice_units(days, bounds, self.slices))
    }

    async fn fetch(
        &self,
        unit: String,
        bounds: Option<KeyBounds>,
        tx: async_channel::Sender<RawPage>,
    ) -> Result<()> {
        let (day, range) = slice_of(&unit, bounds.as_ref(), self.slices)?;
        let partition = day.to_string();
        // An item without a string sort key is not in the index at all.
        let mut items: Vec<&Item> = self
            .partitions
            .get(&partition)
            .into_iter()
            .flatten()
            .filter(|i| matches!(i.get("updatedAt"), Some(Attr::S(_))) && range.contains(sort_key(i)))
            .collect();
        items.sort_by(|a, b| sort_key(a).cmp(sort_key(b)));
        self.returned.fetch_add(items.len() as u64, Ordering::Relaxed);
        let items: Vec<Item> = items
            .into_iter()
            .filter(|i| bounds.as_ref().is_none_or(|b| b.admits(sort_key(i))))
            .cloned()
            .collect();
        for chunk in items.chunks(self.page_size) {
            let page = RawPage { unit: partition.clone(), payload: Payload::Items(chunk.to_vec()) };
            if tx.send(page).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    fn items_returned(&self) -> Option<u64> {
        Some(self.returned.load(Ordering::Relaxed))
    }
}
