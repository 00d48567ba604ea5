//! The source chosen on the command line, built from its flags.

use super::dynamodb::DynamoSource;
use super::export::ExportSource;
use super::{KeyBounds, RawPage, Source};
use crate::config::{SourceConfig, Tuning};
use crate::error::Result;
use crate::time::Day;

/// A source chosen on the command line.
pub enum AnySource {
    /// DynamoDB.
    Dynamo(DynamoSource),
    /// An export directory.
    Export(ExportSource),
    /// Records made on the fly by the loadgen generator (`demo --records N`).
    Generated(crate::source::generated::GeneratedSource),
}

impl AnySource {
    /// Builds the source a configuration describes.
    pub async fn open(source: &SourceConfig, t: &Tuning) -> Result<Self> {
        match source {
            SourceConfig::Dynamodb { table, index } => {
                let source = DynamoSource::from_env(table, index, t.page_size, t.slices()).await?;
                Ok(AnySource::Dynamo(source.with_retry_budget(t.retry_budget)))
            }
            SourceConfig::Export { location } if location.starts_with("s3://") => {
                Ok(AnySource::Export(ExportSource::open_s3(location, t.page_size).await?))
            }
            SourceConfig::Export { location } => {
                Ok(AnySource::Export(ExportSource::open(std::path::Path::new(location), t.page_size)?))
            }
        }
    }
}

impl Source for AnySource {
    async fn units(&self, days: &[Day], bounds: Option<&KeyBounds>) -> Result<Vec<String>> {
        match self {
            AnySource::Dynamo(s) => s.units(days, bounds).await,
            AnySource::Export(s) => s.units(days, bounds).await,
            AnySource::Generated(s) => s.units(days, bounds).await,
        }
    }

    async fn fetch(
        &self,
        unit: String,
        bounds: Option<KeyBounds>,
        tx: async_channel::Sender<RawPage>,
    ) -> Result<()> {
        match self {
            AnySource::Dynamo(s) => s.fetch(unit, bounds, tx).await,
            AnySource::Export(s) => s.fetch(unit, bounds, tx).await,
            AnySource::Generated(s) => s.fetch(unit, bounds, tx).await,
        }
    }

    fn size_hints(&self, units: &[String]) -> Vec<Option<u64>> {
        match self {
            AnySource::Dynamo(s) => s.size_hints(units),
            AnySource::Export(s) => s.size_hints(units),
            AnySource::Generated(s) => s.size_hints(units),
        }
    }

    fn items_returned(&self) -> Option<u64> {
        match self {
            AnySource::Dynamo(s) => s.items_returned(),
            AnySource::Export(s) => s.items_returned(),
            AnySource::Generated(s) => s.items_returned(),
        }
    }

    fn capacity_units(&self) -> Option<f64> {
        match self {
            AnySource::Dynamo(s) => s.capacity_units(),
            AnySource::Export(s) => s.capacity_units(),
            AnySource::Generated(s) => s.capacity_units(),
        }
    }
}
