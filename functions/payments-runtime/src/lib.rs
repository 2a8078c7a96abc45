//! payments-runtime: what the payment functions share around payments-core — the AWS clients
//! (built once per container, on first use), configuration from Parameter Store and Secrets
//! Manager cached with a TTL, JSON responses and request parsing that never echo the request,
//! and PostgreSQL over TLS verified against a configured CA bundle, with the migrations runner.
//!
//! Cargo features pick the pieces (`http`, `dynamodb`, `s3`, `sns`, `postgres`): a function turns
//! on what its code uses and links nothing else.
//!
//! Each function reads one environment variable, `PAYMENTS_CONFIG_PREFIX` (`/payments/qa`);
//! everything else it finds under that prefix. `AWS_ENDPOINT_URL` is honoured as the SDK does.

pub mod aws;
pub mod config;
#[cfg(feature = "postgres")]
pub mod db;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod rules;

pub use aws::Clients;
pub use config::{Config, Params, SecretValue};
pub use error::FnError;
pub use payments_core::PaymentRequest;

/// JSON log lines when Lambda asks for them (`AWS_LAMBDA_LOG_FORMAT=JSON`), text otherwise.
/// Nothing logged by the functions holds a card number, a CVV or a secret: they log ids, codes,
/// statuses and the redacted Debug forms of payments-core's types.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}
