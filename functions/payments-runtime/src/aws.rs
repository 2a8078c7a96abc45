//! One SdkConfig per container and each client built from it on its first use: a cold start pays
//! for nothing it does not need, and a function's binary references — so links — only the
//! clients its code calls, even when a joint build of the workspace turned on every feature of
//! payments-runtime (tests/integration/packaging.rs reads the shipped bootstraps to check).
//! Every call has timeouts and standard retries with backoff: a payment request must fail fast
//! rather than hang until the Lambda timeout.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::OnceCell;

#[derive(Debug)]
pub struct Clients {
    sdk: SdkConfig,
    ssm: OnceLock<aws_sdk_ssm::Client>,
    secrets: OnceLock<aws_sdk_secretsmanager::Client>,
    #[cfg(feature = "dynamodb")]
    dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    #[cfg(feature = "s3")]
    s3: OnceLock<aws_sdk_s3::Client>,
    #[cfg(feature = "sns")]
    sns: OnceLock<aws_sdk_sns::Client>,
    #[cfg(feature = "lambda")]
    lambda: OnceLock<aws_sdk_lambda::Client>,
}

static CLIENTS: OnceCell<Clients> = OnceCell::const_new();

impl Clients {
    /// The container's clients, their shared configuration loaded on the first call.
    pub async fn get() -> &'static Clients {
        CLIENTS.get_or_init(Clients::load).await
    }

    async fn load() -> Clients {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(3))
                    .operation_timeout(Duration::from_secs(8))
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(50)))
            .load()
            .await;
        Clients {
            sdk,
            ssm: OnceLock::new(),
            secrets: OnceLock::new(),
            #[cfg(feature = "dynamodb")]
            dynamodb: OnceLock::new(),
            #[cfg(feature = "s3")]
            s3: OnceLock::new(),
            #[cfg(feature = "sns")]
            sns: OnceLock::new(),
            #[cfg(feature = "lambda")]
            lambda: OnceLock::new(),
        }
    }

    /// The shared configuration: credentials and region (a database auth token is signed with them).
    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    pub fn ssm(&self) -> &aws_sdk_ssm::Client {
        self.ssm.get_or_init(|| aws_sdk_ssm::Client::new(&self.sdk))
    }

    pub fn secrets(&self) -> &aws_sdk_secretsmanager::Client {
        self.secrets.get_or_init(|| aws_sdk_secretsmanager::Client::new(&self.sdk))
    }

    #[cfg(feature = "dynamodb")]
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        self.dynamodb.get_or_init(|| aws_sdk_dynamodb::Client::new(&self.sdk))
    }

    /// With an endpoint override (tests, VPC endpoints by URL) bucket names are not resolvable
    /// host names: path-style addressing then.
    #[cfg(feature = "s3")]
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3.get_or_init(|| {
            let path_style = self.sdk.endpoint_url().is_some();
            aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&self.sdk).force_path_style(path_style).build(),
            )
        })
    }

    #[cfg(feature = "sns")]
    pub fn sns(&self) -> &aws_sdk_sns::Client {
        self.sns.get_or_init(|| aws_sdk_sns::Client::new(&self.sdk))
    }

    /// Lambda, for a synchronous call of another function (the migrator) that may take longer
    /// than the other clients' 3 s attempts (migrations under a lock), yet ends well before the
    /// caller's own timeout: one attempt and one retry on a throttle, 15 s in all.
    #[cfg(feature = "lambda")]
    pub fn lambda(&self) -> &aws_sdk_lambda::Client {
        self.lambda.get_or_init(|| {
            aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(&self.sdk)
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(2))
                            .operation_attempt_timeout(Duration::from_secs(15))
                            .operation_timeout(Duration::from_secs(15))
                            .build(),
                    )
                    .retry_config(RetryConfig::standard().with_max_attempts(2))
                    .build(),
            )
        })
    }
}
