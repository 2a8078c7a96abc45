//! One SdkConfig per container and the clients built from it, on first use (cold starts pay for
//! nothing they do not need). Every call has timeouts and standard retries with backoff: a
//! payment request must fail fast rather than hang until the Lambda timeout.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use std::time::Duration;
use tokio::sync::OnceCell;

#[derive(Clone, Debug)]
pub struct Clients {
    pub ssm: aws_sdk_ssm::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
}

static CLIENTS: OnceCell<Clients> = OnceCell::const_new();

impl Clients {
    /// The container's clients, built on the first call.
    pub async fn get() -> &'static Clients {
        CLIENTS.get_or_init(Clients::build).await
    }

    async fn build() -> Clients {
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
        // With an endpoint override (tests, VPC endpoints by URL) bucket names are not resolvable
        // host names: use path-style addressing.
        let s3_config = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(sdk.endpoint_url().is_some()).build();
        Clients {
            ssm: aws_sdk_ssm::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            sns: aws_sdk_sns::Client::new(&sdk),
        }
    }
}
