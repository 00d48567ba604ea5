//! An in-memory source for unit tests: items grouped by day partition, served in pages.

use super::{Payload, RawPage, Source};
use crate::attr::{Attr, Item};
use crate::error::Result;
use crate::time::Day;
use std::collections::BTreeMap;

/// Items by partition, paged like a DynamoDB query (with the same key bounds).
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    /// Partition (`YYYY-MM-DD`) → items, in sort-key order.
    pub partitions: BTreeMap<String, Vec<Item>>,
    /// Items per page.
    pub page_size: usize,
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
        Self { partitions, page_size: page_size.max(1) }
    }
}

impl Source for MemorySource {
    async fn units(&self, days: &[Day]) -> Result<Vec<String>> {
        Ok(days.iter().map(Day::to_string).collect())
    }

    async fn fetch(
        &self,
        unit: String,
        bounds: Option<super::KeyBounds>,
        tx: async_channel::Sender<RawPage>,
    ) -> Result<()> {
        let items: Vec<Item> = self
            .partitions
            .get(&unit)
            .into_iter()
            .flatten()
            .filter(|i| match (&bounds, i.get("updatedAt")) {
                (Some(b), Some(Attr::S(u))) => b.admits(u),
                _ => true,
            })
            .cloned()
            .collect();
        for chunk in items.chunks(self.page_size) {
            let page = RawPage { unit: unit.clone(), payload: Payload::Items(chunk.to_vec()) };
            if tx.send(page).await.is_err() {
                break;
            }
        }
        Ok(())
    }
}
