//! [`StreamApi`] on AWS's own clients: `DescribeTable` (aws-sdk-dynamodb) finds the stream,
//! aws-sdk-dynamodbstreams reads it. Endpoints come from the SDK's standard settings
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`).
//!
//! `DescribeStream` may be called 10 times a second per stream, `GetRecords` 5 times a second
//! per shard; throttling (`LimitExceededException`), 5xx and timeouts are transient
//! ([`crate::aws::classify`]) and retried by the caller.

use super::{Change, ChangeKind, ReadFailure, Records, Shard, StartAt, StreamApi, StreamInfo, ViewType};
use crate::attr::{Attr, Item};
use crate::aws::{classify, describe, AwsFailure};
use crate::error::{Error, Kind};
use crate::time::Timestamp;
use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, ShardIteratorType, StreamViewType};
use std::collections::HashMap;

/// The stream API of one AWS account and region.
#[derive(Debug, Clone)]
pub struct AwsStreams {
    tables: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
}

impl AwsStreams {
    /// The clients, from the SDK's standard configuration.
    pub async fn from_env() -> Result<Self, Error> {
        let conf = crate::aws::load_config().await?;
        Ok(Self {
            tables: aws_sdk_dynamodb::Client::new(&conf),
            streams: aws_sdk_dynamodbstreams::Client::new(&conf),
        })
    }
}

/// An SDK error as ours: transient failures are [`Kind::Connection`] (retried).
fn error<E>(
    what: &str,
    e: &aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Error
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let kind = if classify(e) == AwsFailure::Transient { Kind::Connection } else { Kind::Aws };
    Error::new(kind, format!("{what} failed: {}", describe(e)))
}

fn timestamp(t: &aws_sdk_dynamodbstreams::primitives::DateTime) -> Option<Timestamp> {
    let micros = t.secs().checked_mul(1_000_000)?.checked_add(i64::from(t.subsec_nanos() / 1000))?;
    Some(Timestamp(micros))
}

/// A stream's attribute value in the shared item model.
fn attr(v: AttributeValue) -> Attr {
    let b64 = |b: aws_sdk_dynamodbstreams::primitives::Blob| crate::attr::encode_base64(b.as_ref());
    match v {
        AttributeValue::S(s) => Attr::S(s),
        AttributeValue::N(n) => Attr::N(n),
        AttributeValue::B(b) => Attr::B(b64(b)),
        AttributeValue::Bool(b) => Attr::Bool(b),
        AttributeValue::Null(_) => Attr::Null,
        AttributeValue::M(m) => Attr::M(m.into_iter().map(|(k, v)| (k, attr(v))).collect()),
        AttributeValue::L(l) => Attr::L(l.into_iter().map(attr).collect()),
        AttributeValue::Ss(s) => Attr::Ss(s),
        AttributeValue::Ns(n) => Attr::Ns(n),
        AttributeValue::Bs(b) => Attr::Bs(b.into_iter().map(b64).collect()),
        // A type newer than this SDK: keep that it was there rather than fail the page.
        _ => Attr::Null,
    }
}

fn item(m: HashMap<String, AttributeValue>) -> Item {
    m.into_iter().map(|(k, v)| (k, attr(v))).collect()
}

/// The principal DynamoDB names in a TTL expiry's `userIdentity`.
const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

fn change(r: aws_sdk_dynamodbstreams::types::Record) -> Option<Change> {
    let by_ttl = r
        .user_identity
        .as_ref()
        .is_some_and(|u| u.r#type() == Some("Service") && u.principal_id() == Some(TTL_PRINCIPAL));
    let d = r.dynamodb?;
    let seq = d.sequence_number?;
    let at = d.approximate_creation_date_time.as_ref().and_then(timestamp);
    let kind = match r.event_name? {
        OperationType::Insert | OperationType::Modify => ChangeKind::Put(item(d.new_image?)),
        OperationType::Remove => ChangeKind::Remove {
            old: d.old_image.map(item),
            keys: d.keys.map(item).unwrap_or_default(),
            by_ttl,
        },
        _ => return None,
    };
    Some(Change { seq, at, kind })
}

impl StreamApi for AwsStreams {
    async fn stream_of(&self, table: &str) -> Result<Option<StreamInfo>, Error> {
        let out = self
            .tables
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| error(&format!("describing table {table}"), &e))?;
        let Some(t) = out.table else { return Ok(None) };
        let enabled = t.stream_specification.as_ref().is_some_and(|s| s.stream_enabled);
        let (Some(arn), true) = (t.latest_stream_arn, enabled) else { return Ok(None) };
        let view = match t.stream_specification.and_then(|s| s.stream_view_type) {
            Some(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages) => ViewType::NewAndOldImages,
            Some(aws_sdk_dynamodb::types::StreamViewType::NewImage) => ViewType::NewImage,
            Some(aws_sdk_dynamodb::types::StreamViewType::OldImage) => ViewType::OldImage,
            _ => ViewType::KeysOnly,
        };
        let created = match self.streams.describe_stream().stream_arn(&arn).limit(1).send().await {
            Ok(d) => {
                d.stream_description.and_then(|d| d.creation_request_date_time).as_ref().and_then(timestamp)
            }
            Err(_) => None,
        };
        Ok(Some(StreamInfo { arn, view, created }))
    }

    async fn shards(&self, arn: &str) -> Result<Vec<Shard>, Error> {
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let d = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| error(&format!("describing stream {arn}"), &e))?;
            let Some(d) = d.stream_description else { return Ok(out) };
            if d.stream_view_type.as_ref().is_some_and(|v| *v == StreamViewType::KeysOnly) {
                return Err(Error::config(format!("stream {arn} carries keys only: nothing to follow")));
            }
            for s in d.shards.unwrap_or_default() {
                let Some(id) = s.shard_id else { continue };
                let closed =
                    s.sequence_number_range.as_ref().is_some_and(|r| r.ending_sequence_number.is_some());
                out.push(Shard { id, parent: s.parent_shard_id, closed });
            }
            match d.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return Ok(out),
            }
        }
    }

    async fn iterator(&self, arn: &str, shard: &str, from: &StartAt) -> Result<String, ReadFailure> {
        let mut q = self.streams.get_shard_iterator().stream_arn(arn).shard_id(shard);
        q = match from {
            StartAt::Oldest => q.shard_iterator_type(ShardIteratorType::TrimHorizon),
            StartAt::After(seq) => {
                q.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq)
            }
        };
        match q.send().await {
            Ok(out) => out.shard_iterator.ok_or_else(|| {
                ReadFailure::Other(Error::new(Kind::Aws, format!("no iterator for shard {shard}")))
            }),
            Err(e) => Err(match e.as_service_error() {
                Some(s) if s.is_trimmed_data_access_exception() => ReadFailure::Trimmed,
                Some(s) if s.is_resource_not_found_exception() => ReadFailure::Gone,
                _ => ReadFailure::Other(error(&format!("GetShardIterator of shard {shard}"), &e)),
            }),
        }
    }

    async fn records(&self, iterator: &str, limit: i32) -> Result<Records, ReadFailure> {
        match self.streams.get_records().shard_iterator(iterator).limit(limit.clamp(1, 1000)).send().await {
            Ok(out) => Ok(Records {
                changes: out.records.unwrap_or_default().into_iter().filter_map(change).collect(),
                next: out.next_shard_iterator,
            }),
            Err(e) => Err(match e.as_service_error() {
                Some(s) if s.is_expired_iterator_exception() => ReadFailure::Expired,
                Some(s) if s.is_trimmed_data_access_exception() => ReadFailure::Trimmed,
                Some(s) if s.is_resource_not_found_exception() => ReadFailure::Gone,
                _ => ReadFailure::Other(error("GetRecords", &e)),
            }),
        }
    }
}
