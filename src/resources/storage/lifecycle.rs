//! The one lifecycle rule every bucket of the stack holds: events immediately available for 90
//! days, then in Glacier, expired after the retention period (PCI DSS 10.5.1: 12 months, 3
//! immediately available). Only objects of 128 KB and more go to Glacier
//! (`TransitionDefaultMinimumObjectSize`, sent explicitly: AWS's default since September 2024,
//! set so that no account default decides): a per-transaction event of about 1 KB, or an access
//! log record, costs less in S3 Standard for its whole life than its 40 KB of per-object overhead
//! would in Glacier (8 KB billed at Standard, 32 KB at Glacier).

use crate::resources::{counted, or_none, Drift, ResourceError, Result};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, NoncurrentVersionTransition, Transition,
    TransitionDefaultMinimumObjectSize, TransitionStorageClass,
};

/// Days audit events stay immediately available before moving to Glacier.
pub const HOT_DAYS: i32 = 90;
pub const LIFECYCLE_RULE: &str = "audit-retention";
const ABORT_MULTIPART_DAYS: i32 = 7;

/// Objects under 128 KB never transition: the smallest objects stay where they are cheapest.
pub const TRANSITION_MINIMUM: TransitionDefaultMinimumObjectSize =
    TransitionDefaultMinimumObjectSize::AllStorageClasses128K;

/// The parts of the lifecycle rule tapctl manages, compared as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub enabled: bool,
    pub glacier_after: Option<i32>,
    pub expire_after: Option<i32>,
    pub noncurrent_glacier_after: Option<i32>,
    pub noncurrent_expire_after: Option<i32>,
    pub abort_multipart_after: Option<i32>,
}

impl Retention {
    pub fn wanted(retention_days: i32) -> Retention {
        Retention {
            enabled: true,
            glacier_after: Some(HOT_DAYS),
            expire_after: Some(retention_days),
            noncurrent_glacier_after: Some(HOT_DAYS),
            noncurrent_expire_after: Some(retention_days),
            abort_multipart_after: Some(ABORT_MULTIPART_DAYS),
        }
    }

    pub fn of(rule: &LifecycleRule) -> Retention {
        Retention {
            enabled: rule.status() == &ExpirationStatus::Enabled,
            glacier_after: rule
                .transitions()
                .iter()
                .find(|t| t.storage_class() == Some(&TransitionStorageClass::Glacier))
                .and_then(|t| t.days()),
            expire_after: rule.expiration().and_then(|e| e.days()),
            noncurrent_glacier_after: rule.noncurrent_version_transitions().first().and_then(|t| t.noncurrent_days()),
            noncurrent_expire_after: rule.noncurrent_version_expiration().and_then(|e| e.noncurrent_days()),
            abort_multipart_after: rule.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()),
        }
    }

    /// Its parts in words: `Glacier after 90 days`, `expire after 365 days`.
    pub fn parts(&self) -> [String; 6] {
        let days = |label: &str, n: Option<i32>| format!("{label} {}", or_none(n.map(|n| counted(n.into(), "day"))));
        [
            if self.enabled { "enabled" } else { "disabled" }.to_string(),
            days("Glacier after", self.glacier_after),
            days("expire after", self.expire_after),
            days("old versions to Glacier after", self.noncurrent_glacier_after),
            days("old versions expire after", self.noncurrent_expire_after),
            days("abort incomplete uploads after", self.abort_multipart_after),
        ]
    }

    /// How `have` (None: no such rule) differs from this rule.
    pub fn drift(&self, have: Option<&Retention>) -> Drift {
        let field = format!("lifecycle rule {LIFECYCLE_RULE}");
        let Some(have) = have else { return Drift::missing(field, self.parts().join(", ")) };
        let (current, wanted): (Vec<String>, Vec<String>) =
            have.parts().into_iter().zip(self.parts()).filter(|(h, w)| h != w).unzip();
        Drift::new(field, current.join(", "), wanted.join(", "))
    }
}

/// The lifecycle configuration tapctl puts, the minimum object size always named.
pub fn put_lifecycle(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    retention_days: i32,
) -> Result<
    aws_sdk_s3::operation::put_bucket_lifecycle_configuration::builders::PutBucketLifecycleConfigurationFluentBuilder,
> {
    Ok(s3
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(lifecycle(retention_days)?)
        .transition_default_minimum_object_size(TRANSITION_MINIMUM))
}

/// Whether a lifecycle that exists lets objects under the minimum transition (absent: AWS's
/// default, which is the minimum).
pub fn small_objects_would_transition(retention: Option<&Retention>, minimum: Option<&str>) -> bool {
    retention.is_some() && minimum.is_some_and(|m| m != TRANSITION_MINIMUM.as_str())
}

fn lifecycle(retention_days: i32) -> Result<BucketLifecycleConfiguration> {
    let internal = |e: aws_sdk_s3::error::BuildError| ResourceError::new("Internal", e.to_string());
    let rule = LifecycleRule::builder()
        .id(LIFECYCLE_RULE)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .transitions(Transition::builder().days(HOT_DAYS).storage_class(TransitionStorageClass::Glacier).build())
        .expiration(LifecycleExpiration::builder().days(retention_days).build())
        .noncurrent_version_transitions(
            NoncurrentVersionTransition::builder()
                .noncurrent_days(HOT_DAYS)
                .storage_class(TransitionStorageClass::Glacier)
                .build(),
        )
        .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(retention_days).build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder().days_after_initiation(ABORT_MULTIPART_DAYS).build(),
        )
        .build()
        .map_err(internal)?;
    BucketLifecycleConfiguration::builder().rules(rule).build().map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_client() -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    #[test]
    fn the_lifecycle_request_names_the_minimum_transition_size_and_keeps_small_events_out_of_glacier() {
        let put = put_lifecycle(&offline_client(), "audit-qa", 365).unwrap();
        assert_eq!(put.get_transition_default_minimum_object_size(), &Some(TRANSITION_MINIMUM));
        assert_eq!(TRANSITION_MINIMUM.as_str(), "all_storage_classes_128K");
        let rule = &put.get_lifecycle_configuration().as_ref().unwrap().rules()[0];
        assert_eq!(rule.transitions()[0].days(), Some(HOT_DAYS));
        assert_eq!(rule.expiration().and_then(|e| e.days()), Some(365), "small events still expire");
        let want = Retention::wanted(365);
        assert!(small_objects_would_transition(Some(&want), Some("varies_by_storage_class")));
        assert!(!small_objects_would_transition(Some(&want), Some("all_storage_classes_128K")));
        assert!(!small_objects_would_transition(Some(&want), None), "absent: AWS's default, the minimum");
    }

    #[test]
    fn a_lifecycle_drift_names_only_the_parts_that_differ() {
        let want = Retention::wanted(365);
        let short = Retention { expire_after: Some(30), abort_multipart_after: None, ..want.clone() };
        assert_eq!(
            want.drift(Some(&short)).to_string(),
            "lifecycle rule audit-retention: expire after 30 days, abort incomplete uploads after none → \
             expire after 365 days, abort incomplete uploads after 7 days"
        );
        assert_eq!(
            want.drift(None).to_string(),
            "lifecycle rule audit-retention: missing → enabled, Glacier after 90 days, expire after 365 days, \
             old versions to Glacier after 90 days, old versions expire after 365 days, \
             abort incomplete uploads after 7 days"
        );
    }
}
