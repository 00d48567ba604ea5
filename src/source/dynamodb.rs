//! The DynamoDB source: GSI queries per day partition and key slice, each followed to its
//! last page.
//!
//! A partition's sort-key range is cut into contiguous slices ([`KeyBounds::ranges`]) read
//! concurrently, so `--fetchers` are all busy even when the window lies in one partition
//! (one chain of `LastEvaluatedKey` pages is latency-bound). The key conditions are only a
//! lexicographic pre-filter: stamps that cannot be later than the window's lower bound are
//! dropped as each page arrives, and the exact comparison of instants happens after
//! parsing. Empty pages, with or without a `LastEvaluatedKey`, are normal.

use super::{slice_of, slice_units, KeyBounds, KeyRange, Payload, RawPage, Source};
use crate::error::{Error, Kind, Result};
use crate::retry::Retry;
use crate::time::Day;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Reads scan records from a DynamoDB table through its date-partition GSI.
#[derive(Debug, Clone)]
pub struct DynamoSource {
    client: Client,
    table: String,
    index: String,
    page_size: i32,
    slices: usize,
    retry_budget: Duration,
    returned: Arc<AtomicU64>,
    /// Read capacity consumed, in millionths of a unit (as reported per query).
    capacity: Arc<AtomicU64>,
}

impl DynamoSource {
    /// Creates the source from the AWS SDK's standard configuration (region, credentials,
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB`).
    pub async fn from_env(table: &str, index: &str, page_size: usize, slices: usize) -> Result<Self> {
        let conf = crate::aws::load_config().await?;
        Ok(Self::new(Client::new(&conf), table, index, page_size, slices))
    }

    /// Creates the source from a client; each partition is read in `slices` key slices.
    pub fn new(client: Client, table: &str, index: &str, page_size: usize, slices: usize) -> Self {
        Self {
            client,
            table: table.to_owned(),
            index: index.to_owned(),
            page_size: page_size.clamp(1, i32::MAX as usize) as i32,
            slices: slices.max(1),
            retry_budget: crate::config::Tuning::DEFAULT.retry_budget,
            returned: Arc::default(),
            capacity: Arc::default(),
        }
    }

    /// Returns `table/index`: what the source reads (a backfill job's identity).
    pub fn target(&self) -> String {
        format!("{}/{}", self.table, self.index)
    }

    /// Returns the number of key slices each partition is cut into.
    pub fn slices(&self) -> usize {
        self.slices
    }

    /// Sets how long a query is retried through transient failures (throttling, 5xx,
    /// timeouts, connection failures), beyond the SDK's own attempts.
    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = budget;
        self
    }
}

impl DynamoSource {
    /// The GSI query of one key range of `partition`, from `start_key`. One condition on the
    /// sort key at most: BETWEEN is inclusive, so a key equal to the range's (exclusive) end
    /// is dropped by the caller; the next slice starts there.
    fn query(
        &self,
        partition: &str,
        range: &KeyRange,
        start_key: Option<std::collections::HashMap<String, AttributeValue>>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let cond = match (&range.from, &range.to) {
            (Some(_), Some(_)) => "#p = :day AND #u BETWEEN :lo AND :hi",
            (Some(_), None) => "#p = :day AND #u >= :lo",
            (None, Some(_)) => "#p = :day AND #u < :hi",
            (None, None) => "#p = :day",
        };
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(&self.index)
            .limit(self.page_size)
            .expression_attribute_names("#p", "datePartition")
            .expression_attribute_values(":day", AttributeValue::S(partition.to_string()))
            .set_exclusive_start_key(start_key)
            .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
            .key_condition_expression(cond);
        if range.from.is_some() || range.to.is_some() {
            q = q.expression_attribute_names("#u", "updatedAt");
        }
        if let Some(lo) = &range.from {
            q = q.expression_attribute_values(":lo", AttributeValue::S(lo.clone()));
        }
        if let Some(hi) = &range.to {
            q = q.expression_attribute_values(":hi", AttributeValue::S(hi.clone()));
        }
        q
    }

    /// A failed query as an error: transient failures (throttling, 5xx, timeouts) are
    /// [`Kind::Connection`], retried; the rest say what to check.
    fn error<E>(
        &self,
        partition: &str,
        e: aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    ) -> Error
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let transient = crate::aws::classify(&e) == crate::aws::AwsFailure::Transient;
        Error::new(
            if transient { Kind::Connection } else { Kind::Aws },
            format!(
                "dynamodb query of table {} index {} partition {partition} failed: {}; check --table, --index, the region and AWS_ENDPOINT_URL",
                self.table,
                self.index,
                crate::aws::describe(&e)
            ),
        )
    }

    /// Counts the index items of one unit's key range (`Select=COUNT`: nothing is returned,
    /// but DynamoDB charges the read capacity of reading them). The count is before the
    /// trim of [`KeyBounds::admits`], as the run's `index_items` is.
    pub async fn count(&self, unit: &str, bounds: Option<&KeyBounds>) -> Result<u64> {
        let (day, range) = slice_of(unit, bounds, self.slices)?;
        let partition = day.to_string();
        let mut start_key = None;
        let mut n = 0u64;
        loop {
            let query = || {
                let q = self
                    .query(&partition, &range, start_key.clone())
                    .limit(i32::MAX)
                    .select(aws_sdk_dynamodb::types::Select::Count);
                let partition = &partition;
                async move { q.send().await.map_err(|e| self.error(partition, e)) }
            };
            let out = Retry::within(self.retry_budget).run(query, |_, _, _| {}).await?;
            n += out.count.max(0) as u64;
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start_key = Some(k),
                _ => return Ok(n),
            }
        }
    }
}

impl Source for DynamoSource {
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
        let mut start_key: Option<std::collections::HashMap<String, AttributeValue>> = None;
        let mut pages = 0u64;
        loop {
            // Each page is retried on its own budget; a retry asks for the same page again.
            let query = || {
                let q = self.query(&partition, &range, start_key.clone());
                let partition = &partition;
                async move { q.send().await.map_err(|e| self.error(partition, e)) }
            };
            let out = Retry::within(self.retry_budget)
                .run(query, |err, attempt, wait| {
                    tracing::warn!(partition = %partition, slice = %unit, attempt, error = %err, wait_ms = wait.as_millis() as u64, "query failed, retrying");
                })
                .await?;
            pages += 1;
            if let Some(units) = out.consumed_capacity.as_ref().and_then(|c| c.capacity_units) {
                self.capacity.fetch_add((units * 1e6).round() as u64, Ordering::Relaxed);
            }
            let mut items = out.items.unwrap_or_default();
            self.returned.fetch_add(items.len() as u64, Ordering::Relaxed);
            // DynamoDB refuses a FilterExpression on a key attribute (updatedAt is the GSI's
            // range key), so the range's exclusive end and the negative-offset rule of
            // KeyBounds are applied here, to each page as it arrives, before decoding.
            items.retain(|i| match i.get("updatedAt") {
                Some(AttributeValue::S(u)) => {
                    range.to.as_deref().is_none_or(|hi| u.as_str() < hi)
                        && bounds.as_ref().is_none_or(|b| b.admits(u))
                }
                _ => true,
            });
            if !items.is_empty() {
                let page = RawPage { unit: partition.clone(), payload: Payload::Sdk(items) };
                if tx.send(page).await.is_err() {
                    return Ok(());
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start_key = Some(k),
                _ => break,
            }
        }
        tracing::debug!(partition = %partition, slice = %unit, pages, "slice fetched");
        Ok(())
    }

    fn items_returned(&self) -> Option<u64> {
        Some(self.returned.load(Ordering::Relaxed))
    }

    fn capacity_units(&self) -> Option<f64> {
        let micro = self.capacity.load(Ordering::Relaxed);
        (micro > 0).then(|| micro as f64 / 1e6)
    }
}
