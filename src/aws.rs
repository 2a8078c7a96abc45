//! One SdkConfig for the run, the clients built from it, the retry policy, and the
//! classification of AWS errors into what the user sees.
//!
//! Retry policy: the SDK's standard mode (exponential backoff with jitter, for throttling,
//! 5xx and transient network errors), up to `MAX_ATTEMPTS` attempts per call, each attempt
//! bounded by `ATTEMPT_TIMEOUT` and each call by `OPERATION_TIMEOUT`. Eventual consistency
//! (a just-created thing not yet visible) is retried by the resources through
//! `engine::wait`, with a visible reason.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use std::fmt;
use std::time::Duration;

pub const MAX_ATTEMPTS: u32 = 8;
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn sdk_config(region: &str, endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The clients of one run, all built from the same SdkConfig.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub kms: aws_sdk_kms::Client,
    pub sts: aws_sdk_sts::Client,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Clients {
            ec2: aws_sdk_ec2::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
        }
    }

    pub async fn account_id(&self) -> Result<String, AwsError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sts:GetCallerIdentity", e))?;
        out.account().map(str::to_string).ok_or_else(|| AwsError {
            operation: "sts:GetCallerIdentity".into(),
            code: None,
            message: "the response named no account".into(),
        })
    }
}

/// An AWS call that failed, reduced to what the user needs: which call, the AWS error code,
/// and AWS's message. Never carries request parameters (they may hold secrets).
#[derive(Debug, Clone)]
pub struct AwsError {
    pub operation: String,
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    pub fn from_sdk<E, R>(operation: &str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug,
    {
        let code = err.code().map(str::to_string);
        let message = match err.message() {
            Some(m) => m.to_string(),
            None => match &err {
                SdkError::TimeoutError(_) => "the call timed out".to_string(),
                SdkError::DispatchFailure(d) => {
                    if d.is_io() {
                        "could not reach the endpoint (connection failed)".to_string()
                    } else if d.is_timeout() {
                        "the connection timed out".to_string()
                    } else {
                        format!(
                            "the request could not be sent: {}",
                            aws_smithy_error_context(&err)
                        )
                    }
                }
                _ => aws_smithy_error_context(&err),
            },
        };
        AwsError {
            operation: operation.to_string(),
            code,
            message,
        }
    }

    /// True when the error says the thing does not exist (idempotent deletes and lookups).
    pub fn is_not_found(&self) -> bool {
        self.code.as_deref().is_some_and(is_not_found_code)
    }

    pub fn code_is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// What to do about it, where we know.
    pub fn hint(&self) -> Option<&'static str> {
        let code = self.code.as_deref()?;
        Some(match code {
            "UnrecognizedClientException" | "InvalidClientTokenId" | "AuthFailure" | "SignatureDoesNotMatch" => {
                "the AWS credentials were rejected: check AWS_PROFILE / AWS_ACCESS_KEY_ID and the region"
            }
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => "the AWS session expired: log in again (aws sso login)",
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
                "the caller lacks an IAM permission for this call: see the README's permissions section"
            }
            "VpcLimitExceeded" | "AddressLimitExceeded" | "NatGatewayLimitExceeded" | "LimitExceededException" => {
                "an account quota is reached: request an increase in Service Quotas, or destroy unused stacks"
            }
            "DependencyViolation" => "something outside tapctl still uses this resource: remove it, then re-run",
            "WaitTimeout" => "AWS is still working on it: re-run the same command; it resumes where it stopped",
            "ReplaceRefused" => "the change needs the resource replaced; run `tapctl plan` to see why",
            _ => return None,
        })
    }
}

fn aws_smithy_error_context<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: fmt::Debug,
{
    format!("{}", aws_sdk_ec2::error::DisplayErrorContext(err))
}

pub fn is_not_found_code(code: &str) -> bool {
    code.ends_with(".NotFound")
        || code.ends_with("NotFound")
        || code == "NotFoundException"
        || code == "NoSuchEntity"
        || code == "ResourceNotFoundException"
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(c) => write!(f, "{} failed: {c}: {}", self.operation, self.message),
            None => write!(f, "{} failed: {}", self.operation, self.message),
        }
    }
}

impl std::error::Error for AwsError {}

/// `call.send().await.aws("ec2:CreateVpc")?`: name the call when it fails.
pub trait AwsResultExt<T> {
    fn aws(self, operation: &str) -> Result<T, AwsError>;
}

impl<T, E, R> AwsResultExt<T> for Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug,
{
    fn aws(self, operation: &str) -> Result<T, AwsError> {
        self.map_err(|e| AwsError::from_sdk(operation, e))
    }
}

/// For lookups and deletes: "not found" is an answer, not a failure.
pub trait NotFoundExt<T> {
    fn ok_if_not_found(self) -> Result<Option<T>, AwsError>;
}

impl<T> NotFoundExt<T> for Result<T, AwsError> {
    fn ok_if_not_found(self) -> Result<Option<T>, AwsError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
