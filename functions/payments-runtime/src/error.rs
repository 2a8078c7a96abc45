//! Errors of the functions. Their Display never holds a secret, a card number or a CVV: AWS
//! errors keep the operation and the error code (never the message, which can quote input), and
//! database errors keep the SQLSTATE and a fixed description.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum FnError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("{operation} failed: {code}")]
    Aws { operation: &'static str, code: String },
    #[error("database {what}: {detail}")]
    Db { what: &'static str, detail: String },
}

impl FnError {
    pub fn aws<E, R>(operation: &'static str, err: aws_sdk_ssm::error::SdkError<E, R>) -> FnError
    where
        E: aws_sdk_ssm::error::ProvideErrorMetadata,
    {
        use aws_sdk_ssm::error::SdkError;
        let code = match &err {
            SdkError::ServiceError(e) => e.err().code().unwrap_or("ServiceError").to_string(),
            SdkError::TimeoutError(_) => "Timeout".to_string(),
            SdkError::DispatchFailure(_) => "DispatchFailure".to_string(),
            SdkError::ResponseError(_) => "ResponseError".to_string(),
            _ => "ConstructionFailure".to_string(),
        };
        FnError::Aws { operation, code }
    }

    /// Whether the error is the service saying "not here" (for idempotent reads).
    pub fn is_code(&self, wanted: &str) -> bool {
        matches!(self, FnError::Aws { code, .. } if code == wanted)
    }

    #[cfg(feature = "postgres")]
    pub fn db(what: &'static str, err: &tokio_postgres::Error) -> FnError {
        let detail = match err.code() {
            // The SQLSTATE names the problem without quoting values (messages can: a failed
            // constraint repeats the row).
            Some(state) => format!("SQLSTATE {}", state.code()),
            None if err.is_closed() => "connection closed".to_string(),
            None => "connection or protocol failure".to_string(),
        };
        FnError::Db { what, detail }
    }
}
