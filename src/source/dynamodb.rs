//! The DynamoDB source: one GSI query per day partition, followed to the last page.
//!
//! The key condition `datePartition = :day AND updatedAt > L − 14 h` is only a coarse,
//! lexicographic pre-filter (see DESIGN §1.4 and [`KeyBounds`]); stamps that cannot be
//! later than `L` are dropped as each page arrives, and the exact comparison of instants
//! happens after parsing. Empty pages, with or without a `LastEvaluatedKey`, are normal.

use super::{KeyBounds, Payload, RawPage, Source};
use crate::error::{Error, Kind, Result};
use crate::time::Day;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

/// Reads scan records from a DynamoDB table through its date-partition GSI.
#[derive(Debug, Clone)]
pub struct DynamoSource {
    client: Client,
    table: String,
    index: String,
    page_size: i32,
}

impl DynamoSource {
    /// Creates the source from the AWS SDK's standard configuration (region, credentials,
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB`).
    pub async fn from_env(table: &str, index: &str, page_size: usize) -> Result<Self> {
        let conf = crate::aws::load_config().await?;
        Ok(Self::new(Client::new(&conf), table, index, page_size))
    }

    /// Creates the source from a client.
    pub fn new(client: Client, table: &str, index: &str, page_size: usize) -> Self {
        Self {
            client,
            table: table.to_owned(),
            index: index.to_owned(),
            page_size: page_size.clamp(1, i32::MAX as usize) as i32,
        }
    }
}

impl Source for DynamoSource {
    async fn units(&self, days: &[Day]) -> Result<Vec<String>> {
        Ok(days.iter().map(Day::to_string).collect())
    }

    async fn fetch(
        &self,
        unit: String,
        bounds: Option<KeyBounds>,
        tx: async_channel::Sender<RawPage>,
    ) -> Result<()> {
        let mut start_key = None;
        let mut pages = 0u64;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(&self.index)
                .limit(self.page_size)
                .expression_attribute_names("#p", "datePartition")
                .expression_attribute_values(":day", AttributeValue::S(unit.clone()))
                .set_exclusive_start_key(start_key.take());
            // DynamoDB refuses a FilterExpression on a key attribute (updatedAt is the GSI's
            // range key), so the negative-offset rule of KeyBounds is applied here, to each
            // page as it arrives, before anything is decoded.
            q = match &bounds {
                Some(b) => q
                    .key_condition_expression("#p = :day AND #u > :lo")
                    .expression_attribute_names("#u", "updatedAt")
                    .expression_attribute_values(":lo", AttributeValue::S(b.any_offset.clone())),
                None => q.key_condition_expression("#p = :day"),
            };
            let out = q.send().await.map_err(|e| {
                Error::new(
                    Kind::Aws,
                    format!(
                        "dynamodb query of table {} index {} partition {unit} failed: {}; check --table, --index, the region and AWS_ENDPOINT_URL",
                        self.table,
                        self.index,
                        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                    ),
                )
            })?;
            pages += 1;
            let mut items = out.items.unwrap_or_default();
            if let Some(b) = &bounds {
                items.retain(|i| match i.get("updatedAt") {
                    Some(AttributeValue::S(u)) => b.admits(u),
                    _ => true,
                });
            }
            // Empty pages (with or without a key) are normal.
            if !items.is_empty() {
                let page = RawPage { unit: unit.clone(), payload: Payload::Sdk(items) };
                if tx.send(page).await.is_err() {
                    return Ok(());
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start_key = Some(k),
                _ => break,
            }
        }
        tracing::debug!(partition = %unit, pages, "partition fetched");
        Ok(())
    }
}
