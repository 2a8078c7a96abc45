//! S3 Object Lock on the audit and trail buckets (PCI DSS 10.3.2–10.3.4: audit logs protected
//! from modification and deletion). Every object version they receive gets the bucket's default
//! retention: `--audit-lock governance` (the default) lets a principal allowed
//! `s3:BypassGovernanceRetention` remove it early, which is how `destroy` empties a
//! non-production stack; `--audit-lock compliance` lets nobody, not even the account's root user,
//! until the retention ends. The retention is `--audit-retention-days`, as long as the lifecycle
//! keeps the events (PCI DSS 10.5.1).
//!
//! A bucket made before this lock existed (versioned, no Object Lock) gets it in place:
//! PutObjectLockConfiguration with ObjectLockEnabled=Enabled on a versioned bucket, which AWS
//! allows since November 2023 (S3 User Guide, "Enable Object Lock on an existing S3 bucket").
//! Once on, Object Lock cannot be turned off, nor versioning suspended.

use crate::config::AuditLock;
use crate::resources::{counted, Drift};
use aws_sdk_s3::types::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
};

/// A bucket's Object Lock as S3 reports it (GetObjectLockConfiguration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The default retention's mode as S3 spells it (`GOVERNANCE`, `COMPLIANCE`); None: no
    /// default retention (objects are not locked unless their writer asks).
    pub mode: Option<String>,
    pub days: Option<i32>,
    pub years: Option<i32>,
}

/// What the stack wants: the mode of `--audit-lock` for `--audit-retention-days`.
pub fn wanted(mode: AuditLock, days: i32) -> Lock {
    Lock { mode: Some(retention_mode(mode).as_str().to_string()), days: Some(days), years: None }
}

pub fn retention_mode(mode: AuditLock) -> ObjectLockRetentionMode {
    match mode {
        AuditLock::Governance => ObjectLockRetentionMode::Governance,
        AuditLock::Compliance => ObjectLockRetentionMode::Compliance,
    }
}

impl Lock {
    pub fn of(c: &ObjectLockConfiguration) -> Option<Lock> {
        if c.object_lock_enabled() != Some(&ObjectLockEnabled::Enabled) {
            return None;
        }
        let retention = c.rule().and_then(|r| r.default_retention());
        Some(Lock {
            mode: retention.and_then(|r| r.mode()).map(|m| m.as_str().to_string()),
            // S3 reports an unset period as absent; moto as 0.
            days: retention.and_then(|r| r.days()).filter(|d| *d > 0),
            years: retention.and_then(|r| r.years()).filter(|y| *y > 0),
        })
    }

    /// `governance, 365 days`, or `no default retention`.
    pub fn describe(&self) -> String {
        let Some(mode) = &self.mode else { return "no default retention".to_string() };
        let period = match (self.days, self.years) {
            (Some(d), _) => counted(d.into(), "day"),
            (None, Some(y)) => counted(y.into(), "year"),
            (None, None) => "no period".to_string(),
        };
        format!("{}, {period}", mode.to_lowercase())
    }

    /// The configuration that makes it so; ObjectLockEnabled is always sent (the API refuses a
    /// configuration without it, and it is what turns the lock on for an existing bucket).
    pub fn configuration(&self) -> ObjectLockConfiguration {
        let retention = DefaultRetention::builder()
            .set_mode(self.mode.as_deref().map(ObjectLockRetentionMode::from))
            .set_days(self.days)
            .set_years(self.years)
            .build();
        ObjectLockConfiguration::builder()
            .object_lock_enabled(ObjectLockEnabled::Enabled)
            .rule(ObjectLockRule::builder().default_retention(retention).build())
            .build()
    }
}

/// How `have` (None: Object Lock off) differs from `want`.
pub fn drift(have: Option<&Lock>, want: &Lock) -> Option<Drift> {
    match have {
        None => Some(Drift::new("Object Lock", "off", format!("on, default retention {}", want.describe()))),
        Some(have) if have != want => {
            Some(Drift::new("Object Lock default retention", have.describe(), want.describe()))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_drift_names_the_mode_and_period_as_they_are_and_as_wanted() {
        let want = wanted(AuditLock::Governance, 365);
        assert_eq!(drift(Some(&want), &want), None);
        assert_eq!(
            drift(None, &want).unwrap().to_string(),
            "Object Lock: off → on, default retention governance, 365 days"
        );
        let short = Lock { days: Some(1), ..want.clone() };
        assert_eq!(
            drift(Some(&short), &want).unwrap().to_string(),
            "Object Lock default retention: governance, 1 day → governance, 365 days"
        );
        let compliance = wanted(AuditLock::Compliance, 365);
        assert_eq!(
            drift(Some(&want), &compliance).unwrap().to_string(),
            "Object Lock default retention: governance, 365 days → compliance, 365 days"
        );
        let none = Lock { mode: None, days: None, years: None };
        assert_eq!(
            drift(Some(&none), &want).unwrap().to_string(),
            "Object Lock default retention: no default retention → governance, 365 days"
        );
    }

    #[test]
    fn the_configuration_turns_the_lock_on_with_the_wanted_retention() {
        let c = wanted(AuditLock::Compliance, 400).configuration();
        assert_eq!(c.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
        let r = c.rule().and_then(|r| r.default_retention()).unwrap();
        assert_eq!((r.mode(), r.days(), r.years()), (Some(&ObjectLockRetentionMode::Compliance), Some(400), None));
        assert_eq!(Lock::of(&c), Some(wanted(AuditLock::Compliance, 400)));
    }
}
