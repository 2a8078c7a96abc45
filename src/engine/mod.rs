//! The generic engine: a dependency graph, a bounded parallel walk over it, progress display
//! and waiting. It knows nothing of AWS or payments (Terraform's `internal/dag` is the model).

pub mod graph;
pub mod progress;
pub mod wait;
pub mod walk;

pub use graph::{Graph, GraphError};
pub use progress::Progress;
pub use walk::{walk, Direction, Outcome, RetryPolicy};

use std::fmt;

/// One failure, reported at the end of a run rather than thrown at the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub node: String,
    pub code: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// The walker visits the node again (with backoff) when this is set: throttling, 5xx and
    /// dropped connections that outlasted the SDK's own retries.
    pub retryable: bool,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.node)?;
        if let Some(c) = &self.code {
            write!(f, "[{c}] ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {h}")?;
        }
        Ok(())
    }
}
