//! Shared set-up of the AWS SDK clients: configuration from the SDK's own environment
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials), path-style S3 addressing when an
//! endpoint is overridden (LocalStack, moto), and a counter of requests sent, which the
//! benchmarks and `/metrics` read.

use aws_config::BehaviorVersion;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};

use super::StorageError;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts requests handed to the transport (each retry counts again).
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(Arc<AtomicU64>);

impl RequestCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "lethe-request-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The SDK configuration from the environment, logging which endpoint is in use.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    match config.endpoint_url() {
        Some(endpoint) => tracing::info!(endpoint, "AWS endpoint overridden"),
        None => tracing::info!(region = ?config.region(), "using AWS endpoints"),
    }
    config
}

pub fn s3_client(config: &aws_config::SdkConfig, counter: &RequestCounter) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        // Emulators serve buckets by path, not by virtual host.
        .force_path_style(config.endpoint_url().is_some())
        .interceptor(counter.clone())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

pub fn dynamodb_client(
    config: &aws_config::SdkConfig,
    counter: &RequestCounter,
) -> aws_sdk_dynamodb::Client {
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(counter.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(dynamodb)
}

/// Maps an SDK error of `backend`: transport failures and timeouts are `Unavailable`,
/// the rest `Other`, with the SDK's full context as the source.
pub fn sdk_error<E, R>(backend: &'static str, error: SdkError<E, R>) -> StorageError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let unavailable = matches!(
        error,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    );
    let source: super::BoxError = DisplayErrorContext(error).to_string().into();
    if unavailable {
        StorageError::Unavailable { backend, source }
    } else {
        StorageError::Other { backend, source }
    }
}
