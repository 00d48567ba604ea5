//! Writing generated records into DynamoDB (dynalite here) at a steady rate.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ProvisionedThroughput, PutRequest, ScalarAttributeType, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use scansync_parse::attr::sdk::to_sdk;
use scansync_parse::attr::Item;
use std::time::Duration;

/// Builds a client from the SDK's standard configuration (`AWS_ENDPOINT_URL_DYNAMODB` …).
pub async fn client() -> Result<Client, String> {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    if conf.region().is_none() {
        return Err("no AWS region configured: set AWS_REGION".into());
    }
    Ok(Client::new(&conf))
}

/// A client for the DynamoDB API at `url` (the rest of the configuration standard).
pub async fn client_at(url: &str) -> Result<Client, String> {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(url).load().await;
    if conf.region().is_none() {
        return Err("no AWS region configured: set AWS_REGION".into());
    }
    Ok(Client::new(&conf))
}

/// Creates the table and its date-partition GSI unless it exists; waits until active.
pub async fn create_table(client: &Client, table: &str, index: &str) -> Result<(), String> {
    create(client, table, index, false).await
}

/// [`create_table`] with a stream of view type `NEW_AND_OLD_IMAGES` (for `scansync follow`;
/// DynamoDB Local implements streams, dynalite does not).
pub async fn create_streamed_table(client: &Client, table: &str, index: &str) -> Result<(), String> {
    create(client, table, index, true).await
}

async fn create(client: &Client, table: &str, index: &str, stream: bool) -> Result<(), String> {
    if client.describe_table().table_name(table).send().await.is_ok() {
        return Ok(());
    }
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("valid")
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder().attribute_name(n).key_type(t).build().expect("valid")
    };
    let tp = ProvisionedThroughput::builder()
        .read_capacity_units(10_000)
        .write_capacity_units(10_000)
        .build()
        .expect("valid");
    client
        .create_table()
        .table_name(table)
        .attribute_definitions(attr("scanId"))
        .attribute_definitions(attr("datePartition"))
        .attribute_definitions(attr("updatedAt"))
        .key_schema(key("scanId", KeyType::Hash))
        .provisioned_throughput(tp.clone())
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key("datePartition", KeyType::Hash))
                .key_schema(key("updatedAt", KeyType::Range))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .provisioned_throughput(tp)
                .build()
                .expect("valid"),
        )
        .set_stream_specification(stream.then(|| {
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                .build()
                .expect("valid")
        }))
        .send()
        .await
        .map_err(|e| format!("create table {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
    for _ in 0..200 {
        let d = client.describe_table().table_name(table).send().await.map_err(|e| e.to_string())?;
        if d.table.and_then(|t| t.table_status).is_some_and(|s| s.as_str() == "ACTIVE") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("table {table} did not become active"))
}

/// Writes items with BatchWriteItem (25 a call, `concurrency` calls at once), retrying
/// `UnprocessedItems` with exponential backoff. Returns the number of retried batches.
pub async fn write_items(
    client: &Client,
    table: &str,
    items: Vec<Item>,
    concurrency: usize,
) -> Result<u64, String> {
    let batches: Vec<Vec<WriteRequest>> = items
        .chunks(25)
        .map(|c| {
            c.iter()
                .map(|i| {
                    let item = i.iter().map(|(k, v)| (k.clone(), to_sdk(v.clone()))).collect();
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().expect("item set"))
                        .build()
                })
                .collect()
        })
        .collect();
    // `concurrency` lanes, each writing its share of the batches in turn.
    let lanes = concurrency.max(1);
    let mut groups: Vec<Vec<Vec<WriteRequest>>> = vec![Vec::new(); lanes];
    for (i, b) in batches.into_iter().enumerate() {
        groups[i % lanes].push(b);
    }
    let mut retries = 0;
    let results = futures_util::future::join_all(groups.into_iter().map(|group| async move {
        let mut retries = 0u64;
        for mut requests in group {
            let mut attempt = 0u32;
            while !requests.is_empty() {
                let out =
                    client.batch_write_item().request_items(table, requests).send().await.map_err(|e| {
                        format!("batch write: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))
                    })?;
                requests = out.unprocessed_items.and_then(|mut m| m.remove(table)).unwrap_or_default();
                if !requests.is_empty() {
                    attempt += 1;
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(20u64 << attempt.min(8))).await;
                }
            }
        }
        Ok::<u64, String>(retries)
    }))
    .await;
    for r in results {
        retries += r?;
    }
    Ok(retries)
}

/// Tells whether the GSI returns the item `scan` under (`partition`, `stamp`): the soak's
/// test of whether a record the sync did not land was ever findable.
pub async fn index_has(
    client: &Client,
    table: &str,
    index: &str,
    partition: &str,
    stamp: &str,
    scan: &str,
) -> Result<bool, String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#p = :p AND #u = :u")
            .expression_attribute_names("#p", "datePartition")
            .expression_attribute_names("#u", "updatedAt")
            .expression_attribute_values(":p", AttributeValue::S(partition.into()))
            .expression_attribute_values(":u", AttributeValue::S(stamp.into()))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| format!("index query: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        let found = out
            .items
            .unwrap_or_default()
            .iter()
            .any(|i| matches!(i.get("scanId"), Some(AttributeValue::S(s)) if s == scan));
        if found {
            return Ok(true);
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(false),
        }
    }
}
