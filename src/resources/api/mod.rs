//! The payment API: the REST API itself (`api.rest`) and the account-wide CloudWatch role API
//! Gateway needs to write access and execution logs (`api.account-logging`); `stage` reads and
//! changes who gets the traffic.

pub mod account_logging;
pub mod rest;
pub mod stage;
