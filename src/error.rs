//! The errors a command can end with, and the exit code each maps to:
//! 0 success, 1 failure, 2 invalid usage or input (nothing was changed), 130 interrupted.
//! (`status` also exits 2 when the stack is unhealthy; `plan --detailed-exitcode` 2 on changes.)

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input, caught before any AWS call.
    #[error("invalid {field}: {rule}")]
    Invalid { field: String, rule: String },

    /// The user must confirm, or the command cannot run in this context.
    #[error("{0}")]
    Refused(String),

    /// Another tapctl process holds the lock of this suffix.
    #[error("{0}")]
    Locked(String),

    /// The state file cannot be read, parsed or written.
    #[error("{message}")]
    State { message: String, hint: Option<String> },

    /// An AWS call made outside the graph walk failed (credentials, account lookup).
    #[error("{0}")]
    Aws(crate::aws::AwsError),

    /// `shift` saw an alarm while baking and put the traffic back as it was.
    #[error("{0}")]
    RolledBack(String),

    /// SIGINT or SIGTERM: what was done and what to run next.
    #[error("{0}")]
    Interrupted(String),

    /// One or more nodes failed; each diagnostic was already printed.
    #[error("{count} resource(s) failed")]
    NodesFailed { count: usize },
}

/// The shell's code for a command ended by SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

impl Error {
    pub fn invalid(field: impl Into<String>, rule: impl fmt::Display) -> Self {
        Error::Invalid { field: field.into(), rule: rule.to_string() }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid { .. } | Error::Refused(_) => 2,
            Error::Interrupted(_) => EXIT_INTERRUPTED,
            _ => 1,
        }
    }

    /// The message shown to the user: what happened, and what to do where we know.
    pub fn render(&self) -> String {
        match self {
            Error::State { message, hint: Some(hint) } => format!("error: {message}\nhint: {hint}"),
            Error::Aws(e) => {
                let mut out = format!("error: {e}");
                if let Some(hint) = e.hint() {
                    out.push_str(&format!("\nhint: {hint}"));
                }
                out
            }
            other => format!("error: {other}"),
        }
    }
}

impl From<crate::aws::AwsError> for Error {
    fn from(e: crate::aws::AwsError) -> Self {
        Error::Aws(e)
    }
}
