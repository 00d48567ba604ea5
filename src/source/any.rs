//! The source chosen on the command line, built from its flags.

use super::dynamodb::DynamoSource;
use super::export::ExportSource;
use super::{KeyBounds, RawPage, Source};
use crate::cli::{SourceArgs, SourceKind, TuningArgs};
use crate::error::{Error, Result};
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
    /// Builds the source the flags describe, or says which flag is missing.
    pub async fn from_args(a: &SourceArgs, t: &TuningArgs) -> Result<Self> {
        let page_size = t.page_size as usize;
        match a.source {
            SourceKind::Dynamodb => {
                let table = a.table.as_deref().ok_or_else(|| {
                    Error::config("--source dynamodb needs --table NAME (or SCANSYNC_TABLE)")
                })?;
                let slices = usize::from(t.slices.unwrap_or(t.fetchers));
                let source = DynamoSource::from_env(table, &a.index, page_size, slices).await?;
                Ok(AnySource::Dynamo(source.with_retry_budget(t.retry_budget)))
            }
            SourceKind::Export => {
                let dir = a.export_dir.as_deref().ok_or_else(|| {
                    Error::config("--source export needs --export-dir DIR or s3://bucket/prefix/ (or SCANSYNC_EXPORT_DIR)")
                })?;
                match dir.to_str().filter(|d| d.starts_with("s3://")) {
                    Some(url) => Ok(AnySource::Export(ExportSource::open_s3(url, page_size).await?)),
                    None => Ok(AnySource::Export(ExportSource::open(dir, page_size)?)),
                }
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
}
