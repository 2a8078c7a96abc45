//! Events to the team (PCI DSS v4.0.1 10.4.1, 10.7.2, 11.5.1, 12.10.5): what goes wrong in the
//! database and what GuardDuty and Security Hub find reaches the alerts topic, where people are.
//!
//! - `events.db-subscriptions`: RDS event subscriptions for the Aurora cluster and its instances.
//! - `events.security-findings`: an EventBridge rule for HIGH and CRITICAL findings.
//!
//! The alerts topic's policy (`alerts.rs`) lets exactly these publishers (and CloudWatch alarms)
//! publish; it names them by ARN, computed here, so that the topic needs no edge to this family.

pub mod db_subscriptions;
pub mod security_findings;
