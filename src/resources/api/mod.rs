//! The payment API: the REST API itself (`api.rest`) and the account-wide CloudWatch role API
//! Gateway needs to write access and execution logs (`api.account-logging`), the custom domain
//! clients use (`api.domain`); `stage` reads and changes who gets the traffic.

pub mod account_logging;
pub mod domain;
pub mod rest;
pub mod stage;
