//! A source of records made on the fly by the loadgen generator, for `demo --records N`:
//! the real pipeline on as many dirty records as asked, with nothing to set up.

use super::{Payload, RawPage, Source};
use crate::error::{Error, Result};
use crate::time::{Day, Timestamp};
use loadgen::{Generator, Mix, Shape};

/// `records` generated records, split into `units` streams generated in parallel.
#[derive(Debug, Clone)]
pub struct GeneratedSource {
    records: u64,
    units: u64,
    page_size: usize,
    seed: u64,
    start: Timestamp,
    per_day: u64,
}

impl GeneratedSource {
    /// Creates the source: records stamped from `start`, `per_day` a day.
    pub fn new(
        records: u64,
        units: u64,
        page_size: usize,
        seed: u64,
        start: Timestamp,
        per_day: u64,
    ) -> Self {
        Self {
            records,
            units: units.max(1),
            page_size: page_size.max(1),
            seed,
            start,
            per_day: per_day.max(1),
        }
    }
}

impl Source for GeneratedSource {
    async fn units(&self, _days: &[Day], _bounds: Option<&super::KeyBounds>) -> Result<Vec<String>> {
        Ok((0..self.units).map(|u| u.to_string()).collect())
    }

    async fn fetch(
        &self,
        unit: String,
        _bounds: Option<super::KeyBounds>,
        tx: async_channel::Sender<RawPage>,
    ) -> Result<()> {
        let u: u64 = unit.parse().map_err(|_| Error::internal(format!("bad generated unit {unit}")))?;
        let (per_unit, page_size) = (self.records.div_ceil(self.units), self.page_size);
        let (from, to) = (u * per_unit, ((u + 1) * per_unit).min(self.records));
        let (seed, start, step) = (self.seed + u, self.start, 86_400_000_000 / self.per_day as i64);
        // Generating is CPU work: keep it off the tokio workers.
        tokio::task::spawn_blocking(move || {
            let mut g = Generator::new(seed, Mix::default(), Shape::default());
            let mut items = Vec::with_capacity(page_size);
            for i in from..to {
                items.push(g.next_record(start.add_micros(i as i64 * step)).item);
                if items.len() == page_size || i + 1 == to {
                    let page = RawPage {
                        unit: format!("generated-{u}"),
                        payload: Payload::Items(std::mem::take(&mut items)),
                    };
                    if tx.send_blocking(page).is_err() {
                        break;
                    }
                }
            }
        })
        .await
        .map_err(|e| Error::internal(format!("generator stopped: {e}")))
    }
}
