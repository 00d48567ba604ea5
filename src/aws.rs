//! Loading the AWS SDK configuration the standard way, with a clear error when the region
//! is missing.

use crate::error::{Error, Result};
use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;

/// Loads the shared AWS configuration: region, credentials and endpoint from the standard
/// environment (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, profiles…).
/// The SDK retries throttling and transient errors itself, up to 5 attempts.
pub async fn load_config() -> Result<aws_config::SdkConfig> {
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .load()
        .await;
    if conf.region().is_none() {
        return Err(Error::config(
            "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile region)",
        ));
    }
    Ok(conf)
}
