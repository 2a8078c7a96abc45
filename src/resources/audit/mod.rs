//! The audit trail of the account (PCI DSS v4.0.1 requirement 10): `audit.trail`, the CloudTrail
//! trail with its CloudWatch Logs delivery, and `audit.alarms`, the CIS AWS Foundations metric
//! filters and alarms on what it delivers.

pub mod alarms;
pub mod trail;
