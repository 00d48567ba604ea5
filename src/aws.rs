//! Loading the AWS SDK configuration the standard way, with a clear error when the region
//! is missing.

use crate::error::{Error, Result};
use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;

/// Loads the shared AWS configuration: region, credentials and endpoint from the standard
/// environment (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, profiles…).
/// The SDK retries throttling and transient errors itself, up to 5 attempts, each bounded
/// in time (a connection that hangs must fail, so the caller's own retries can act);
/// callers retry transient failures further ([`classify`]).
pub async fn load_config() -> Result<aws_config::SdkConfig> {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .operation_attempt_timeout(std::time::Duration::from_secs(30))
        .build();
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .timeout_config(timeouts)
        .load()
        .await;
    if conf.region().is_none() {
        return Err(Error::config(
            "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile region)",
        ));
    }
    Ok(conf)
}

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// What kind of AWS failure an error is, decided by the SDK's error variant and the
/// response's status and error code (never by message text). The one classifier of every
/// AWS client of scansync (DynamoDB, SSM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsFailure {
    /// Throttling, a 5xx, a timeout, a dispatch failure (connection refused or reset), or a
    /// response cut short: retried with backoff.
    Transient,
    /// No credentials could be found or loaded: the operator must configure them.
    Credentials,
    /// Anything else (a missing table, a validation error, a request that cannot be built).
    Permanent,
}

const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "InternalServerError",
    "ServiceUnavailable",
];

/// Classifies an SDK error (see [`AwsFailure`]).
pub fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, HttpResponse>,
) -> AwsFailure {
    match e {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => AwsFailure::Transient,
        SdkError::DispatchFailure(d) if d.is_user() => AwsFailure::Permanent,
        SdkError::DispatchFailure(_) => {
            if has_credentials_error(e) {
                AwsFailure::Credentials
            } else {
                AwsFailure::Transient
            }
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s.err().code().unwrap_or("");
            if status >= 500 || status == 429 || THROTTLING_CODES.contains(&code) {
                AwsFailure::Transient
            } else if matches!(
                code,
                "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException"
            ) {
                AwsFailure::Credentials
            } else {
                AwsFailure::Permanent
            }
        }
        SdkError::ConstructionFailure(_) if has_credentials_error(e) => AwsFailure::Credentials,
        _ => AwsFailure::Permanent,
    }
}

/// Tells whether the error's source chain holds a credentials-provider error (typed, not
/// by text).
fn has_credentials_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Renders an SDK error for an operator: the service's code and message, or what failed
/// on the way, in one line (never a Debug dump), with what to do about credentials.
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, HttpResponse>,
) -> String {
    let what = match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            match (s.err().code(), s.err().message()) {
                (Some(c), Some(m)) => format!("{c}: {m} (HTTP {status})"),
                (Some(c), None) => format!("{c} (HTTP {status})"),
                _ => format!("HTTP {status}"),
            }
        }
        SdkError::TimeoutError(_) => "the request timed out".into(),
        SdkError::DispatchFailure(_) => format!("the request could not be sent ({})", chain(e)),
        SdkError::ResponseError(_) => format!("the response could not be read ({})", chain(e)),
        _ => format!("the request could not be built ({})", chain(e)),
    };
    match classify(e) {
        AwsFailure::Credentials => format!(
            "{what}; no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role"
        ),
        _ => what,
    }
}

/// The messages of an error's sources, joined (Display only).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.contains(&s) {
            parts.push(s);
        }
        cur = err.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}
