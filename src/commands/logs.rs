//! `tapctl logs <function>`: the function's CloudWatch Logs events, rendered from JSON lines.

use crate::cli::LogsArgs;
use crate::error::Error;

pub async fn run(args: &LogsArgs) -> Result<u8, Error> {
    Err(Error::Refused(format!("tapctl logs {} is being built", args.function)))
}
