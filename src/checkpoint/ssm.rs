//! The checkpoint in AWS SSM Parameter Store: an ISO-8601 UTC string parameter.
//!
//! PutParameter is throttled under load. The SDK client here makes a single attempt per
//! call; the run's checkpoint writer retries with exponential backoff (3 attempts), so the
//! retry policy lives in one place.

use super::CheckpointStore;
use crate::error::{Error, Kind, Result};
use crate::time::Timestamp;
use aws_sdk_ssm::types::ParameterType;
use aws_sdk_ssm::Client;

/// Reads and writes one SSM parameter.
#[derive(Debug, Clone)]
pub struct SsmCheckpoint {
    client: Client,
    name: String,
}

impl SsmCheckpoint {
    /// Creates the store from the AWS SDK's standard configuration (`AWS_ENDPOINT_URL_SSM`
    /// or `AWS_ENDPOINT_URL` for a local endpoint).
    pub async fn from_env(name: &str) -> Result<Self> {
        let conf = crate::aws::load_config().await?;
        let ssm_conf = aws_sdk_ssm::config::Builder::from(&conf)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .build();
        Ok(Self::new(Client::from_conf(ssm_conf), name))
    }

    /// Creates the store from a client.
    pub fn new(client: Client, name: &str) -> Self {
        Self { client, name: name.to_owned() }
    }
}

/// Reads a SecureString (or String) parameter, decrypted: the database URL kept out of
/// the process's environment (`--database-url-parameter`).
pub async fn read_secret(name: &str) -> Result<String> {
    let conf = crate::aws::load_config().await?;
    let client = Client::new(&conf);
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| ssm_error("read", name, e))?;
    out.parameter
        .and_then(|p| p.value)
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_string())
        .ok_or_else(|| Error::config(format!("ssm parameter {name} is empty: store the database URL in it")))
}

fn ssm_error<E>(
    what: &str,
    name: &str,
    e: aws_sdk_ssm::error::SdkError<E, aws_sdk_ssm::config::http::HttpResponse>,
) -> Error
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    // Throttling, dispatch (network) failures, timeouts and 5xx are worth a retry (the
    // checkpoint writer's); the rest is not. Decided by the SDK's error variant.
    let kind = match crate::aws::classify(&e) {
        crate::aws::AwsFailure::Transient => Kind::Connection,
        _ => Kind::Aws,
    };
    Error::new(kind, format!("ssm {what} of parameter {name} failed: {}", crate::aws::describe(&e)))
}

impl CheckpointStore for SsmCheckpoint {
    async fn read(&self) -> Result<Option<Timestamp>> {
        let out = match self.client.get_parameter().name(&self.name).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) => return Ok(None),
            Err(e) => return Err(ssm_error("read", &self.name, e)),
        };
        let value = out.parameter.and_then(|p| p.value).unwrap_or_default();
        Timestamp::parse(&value).map(Some).ok_or_else(|| {
            Error::config(format!(
                "ssm parameter {} holds {value:?}, not an ISO-8601 timestamp: fix or delete it",
                self.name
            ))
        })
    }

    async fn write(&self, at: Timestamp) -> Result<()> {
        self.client
            .put_parameter()
            .name(&self.name)
            .value(at.to_iso())
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| ssm_error("write", &self.name, e))?;
        Ok(())
    }
}
