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
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const MAX_ATTEMPTS: u32 = 8;
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);
/// The first call's budget (`Clients::account_id`): enough for a blip, short for a wrong endpoint.
pub const REACH_ATTEMPTS: u32 = 2;
pub const REACH_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

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

/// How many AWS operations a run made and how many attempts they took: the difference is the
/// retries (throttling, 5xx, dropped connections) the SDK absorbed, reported at the end of a run.
#[derive(Debug, Default)]
pub struct CallStats {
    pub operations: AtomicU64,
    pub attempts: AtomicU64,
}

impl CallStats {
    pub fn retries(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed).saturating_sub(self.operations.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Clone)]
struct CountCalls(Arc<CallStats>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "tapctl::CountCalls"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.operations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The clients of one run, all built from the same SdkConfig.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub rds: aws_sdk_rds::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sns: aws_sdk_sns::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub iam: aws_sdk_iam::Client,
    pub kms: aws_sdk_kms::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
    pub wafv2: aws_sdk_wafv2::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub backup: aws_sdk_backup::Client,
    pub guardduty: aws_sdk_guardduty::Client,
    pub securityhub: aws_sdk_securityhub::Client,
    /// AWS Config (the recorder and delivery channel).
    pub config: aws_sdk_config::Client,
    pub stats: Arc<CallStats>,
}

impl Clients {
    /// `path_style`: S3 addressed as endpoint/bucket/key, needed for a local endpoint whose
    /// virtual-host names do not resolve (testing.md).
    pub fn new(config: &SdkConfig, path_style: bool) -> Self {
        let stats = Arc::new(CallStats::default());
        let count = CountCalls(stats.clone());
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            logs: aws_sdk_cloudwatchlogs::Client::from_conf(
                aws_sdk_cloudwatchlogs::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            rds: aws_sdk_rds::Client::from_conf(
                aws_sdk_rds::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            secrets: aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            ssm: aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            lambda: aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            apigateway: aws_sdk_apigateway::Client::from_conf(
                aws_sdk_apigateway::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(config)
                    .force_path_style(path_style)
                    .interceptor(count.clone())
                    .build(),
            ),
            wafv2: aws_sdk_wafv2::Client::from_conf(
                aws_sdk_wafv2::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            cloudtrail: aws_sdk_cloudtrail::Client::from_conf(
                aws_sdk_cloudtrail::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            backup: aws_sdk_backup::Client::from_conf(
                aws_sdk_backup::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            guardduty: aws_sdk_guardduty::Client::from_conf(
                aws_sdk_guardduty::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            securityhub: aws_sdk_securityhub::Client::from_conf(
                aws_sdk_securityhub::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            config: aws_sdk_config::Client::from_conf(
                aws_sdk_config::config::Builder::from(config).interceptor(count.clone()).build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(aws_sdk_sts::config::Builder::from(config).interceptor(count).build()),
            stats,
        }
    }

    /// The first call of a run, so also the check that AWS (or the emulator) answers at all: two
    /// attempts of at most 3 s to connect, so that a wrong or unreachable endpoint is named
    /// within seconds rather than after the SDK's full retry budget.
    pub async fn account_id(&self) -> Result<String, AwsError> {
        let out = self
            .sts
            .get_caller_identity()
            .customize()
            .config_override(
                aws_sdk_sts::config::Builder::default()
                    .retry_config(RetryConfig::standard().with_max_attempts(REACH_ATTEMPTS))
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(REACH_CONNECT_TIMEOUT)
                            .operation_attempt_timeout(Duration::from_secs(10))
                            .build(),
                    ),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sts:GetCallerIdentity", e))?;
        out.account().map(str::to_string).ok_or_else(|| AwsError {
            operation: "sts:GetCallerIdentity".into(),
            code: None,
            message: "the response named no account".into(),
            transient: false,
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
    /// Worth trying again later: throttling, a 5xx, a timeout or a dropped connection that
    /// outlasted the SDK's own retries.
    pub transient: bool,
}

impl AwsError {
    pub fn from_sdk<E>(operation: &str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let transient = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(e) => {
                e.raw().status().is_server_error()
                    || e.raw().status().as_u16() == 429
                    || code.as_deref().is_some_and(is_throttling_code)
            }
            _ => false,
        };
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
                        format!("the request could not be sent: {}", aws_smithy_error_context(&err))
                    }
                }
                // Never the raw response: a body can carry anything, secrets included.
                SdkError::ServiceError(e) => {
                    format!("the response (HTTP {}) could not be understood", e.raw().status().as_u16())
                }
                SdkError::ResponseError(e) => {
                    format!("the response (HTTP {}) could not be read", e.raw().status().as_u16())
                }
                _ => aws_smithy_error_context(&err),
            },
        };
        AwsError { operation: operation.to_string(), code, message, transient }
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
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
                "the AWS session expired: log in again (aws sso login)"
            }
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

pub fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "SlowDown"
            | "RequestThrottled"
            | "PriorRequestNotComplete"
            | "EC2ThrottledException"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
    )
}

pub fn is_not_found_code(code: &str) -> bool {
    // EC2: InvalidVpcID.NotFound; RDS: DBClusterNotFoundFault, DBInstanceNotFound; S3: NoSuchKey.
    code.contains("NotFound")
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

impl<T, E> AwsResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
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

/// For creates that a killed run may already have made: "already exists" is success (the
/// caller adopts it). Lambda says so with ResourceConflictException ("Function already exist",
/// "Alias already exists", "The statement id … provided already exists"), which otherwise means
/// an update in progress: only the message tells them apart.
pub trait AlreadyExistsExt<T> {
    fn ok_if_exists(self) -> Result<Option<T>, AwsError>;
}

impl AwsError {
    pub fn is_already_exists(&self) -> bool {
        match self.code.as_deref() {
            Some(
                "EntityAlreadyExists"
                | "BucketAlreadyOwnedByYou"
                | "ResourceAlreadyExistsException"
                | "ParameterAlreadyExists"
                | "AlreadyExistsException",
            ) => true,
            Some("ResourceConflictException") => self.message.contains("already exist"),
            _ => false,
        }
    }
}

impl<T> AlreadyExistsExt<T> for Result<T, AwsError> {
    fn ok_if_exists(self) -> Result<Option<T>, AwsError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_already_exists() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod already_exists_tests {
    use super::*;

    fn err(code: &str, message: &str) -> AwsError {
        AwsError { operation: "x:Create".into(), code: Some(code.into()), message: message.into(), transient: false }
    }

    #[test]
    fn lambda_conflicts_count_as_existing_only_when_they_say_so() {
        assert!(err("ResourceConflictException", "Function already exist: payment-validate-qa").is_already_exists());
        assert!(err("ResourceConflictException", "Alias already exists: blue").is_already_exists());
        assert!(!err("ResourceConflictException", "An update is in progress for resource").is_already_exists());
        assert!(err("EntityAlreadyExists", "Role with name x already exists.").is_already_exists());
        assert!(!err("AccessDenied", "already exists").is_already_exists());
    }
}
