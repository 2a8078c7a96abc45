//! `storage.audit-bucket`: the audit trail of every transaction (PCI DSS 10). Versioned,
//! SSE-KMS with the stack's key and a bucket key, all public access blocked, ACLs off (bucket
//! owner enforced), a policy refusing any request without TLS or with TLS older than 1.2, and a
//! lifecycle that keeps events immediately available for 90 days, then in Glacier, and expires
//! them after the retention period (PCI DSS 10.5.1: 12 months, 3 immediately available).
//! Only objects of 128 KB and more go to Glacier (`TransitionDefaultMinimumObjectSize`, sent
//! explicitly: AWS's default since September 2024, set so that no account default decides): a
//! per-transaction event of about 1 KB costs less in S3 Standard for its whole life than its
//! 40 KB of per-object overhead would in Glacier (8 KB billed at Standard, 32 KB at Glacier).
//! Destroy empties every version and delete marker first.

use crate::aws::{AlreadyExistsExt, AwsError, AwsResultExt, NotFoundExt};
use crate::resources::Outputs;
use crate::resources::{counted, or_none, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, NoncurrentVersionTransition, ObjectIdentifier, ObjectOwnership, OwnershipControls,
    OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, Transition, TransitionStorageClass,
    VersioningConfiguration,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub struct AuditBucket;

pub const ID: &str = "storage.audit-bucket";
/// Days audit events stay immediately available before moving to Glacier.
pub const HOT_DAYS: i32 = 90;
const LIFECYCLE_RULE: &str = "audit-retention";
const ABORT_MULTIPART_DAYS: i32 = 7;

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

    fn of(rule: &LifecycleRule) -> Retention {
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
    fn parts(&self) -> [String; 6] {
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
    fn drift(&self, have: Option<&Retention>) -> Drift {
        let field = format!("lifecycle rule {LIFECYCLE_RULE}");
        let Some(have) = have else { return Drift::missing(field, self.parts().join(", ")) };
        let (current, wanted): (Vec<String>, Vec<String>) =
            have.parts().into_iter().zip(self.parts()).filter(|(h, w)| h != w).unzip();
        Drift::new(field, current.join(", "), wanted.join(", "))
    }
}

pub struct Observed {
    pub versioning: bool,
    pub kms_key: Option<String>,
    pub bucket_key: bool,
    pub public_access_blocked: bool,
    pub owner_enforced: bool,
    pub policy: Option<Value>,
    pub retention: Option<Retention>,
    /// `TransitionDefaultMinimumObjectSize` of the lifecycle configuration, as AWS reports it.
    pub transition_minimum: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Objects under 128 KB never transition: the smallest objects stay where they are cheapest.
pub const TRANSITION_MINIMUM: aws_sdk_s3::types::TransitionDefaultMinimumObjectSize =
    aws_sdk_s3::types::TransitionDefaultMinimumObjectSize::AllStorageClasses128K;

/// The lifecycle configuration tapctl puts, the minimum object size always named.
fn put_lifecycle(
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

/// Deny anything not over TLS, and TLS older than 1.2.
pub fn bucket_policy(bucket: &str) -> Value {
    let resources = json!([format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]);
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": resources,
                "Condition": { "Bool": { "aws:SecureTransport": "false" } }
            },
            {
                "Sid": "DenyTlsOlderThan12",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": resources,
                "Condition": { "NumericLessThan": { "s3:TlsVersion": "1.2" } }
            }
        ]
    })
}

/// A lookup whose "not configured" answer is an error code: None instead.
fn unless_absent<T>(r: std::result::Result<T, AwsError>, absent: &[&str]) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code.as_deref().is_some_and(|c| absent.contains(&c)) || e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether a lifecycle that exists lets objects under the minimum transition (absent: AWS's
/// default, which is the minimum).
fn small_objects_would_transition(o: &Observed) -> bool {
    o.retention.is_some() && o.transition_minimum.as_deref().is_some_and(|m| m != TRANSITION_MINIMUM.as_str())
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

#[async_trait]
impl Resource for AuditBucket {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::kms::ID, key: "key_arn" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let s3 = &ctx.clients.s3;
        let b = ctx.names.audit_bucket();
        if unless_absent(s3.head_bucket().bucket(&b).send().await.aws("s3:HeadBucket"), &["NotFound", "NoSuchBucket"])?
            .is_none()
        {
            return Ok(None);
        }
        // Independent reads of one bucket, made at once.
        let versioning = async {
            Ok::<_, ResourceError>(s3.get_bucket_versioning().bucket(&b).send().await.aws("s3:GetBucketVersioning")?)
        };
        let encryption = async {
            unless_absent(
                s3.get_bucket_encryption().bucket(&b).send().await.aws("s3:GetBucketEncryption"),
                &["ServerSideEncryptionConfigurationNotFoundError"],
            )
        };
        let pab = async {
            unless_absent(
                s3.get_public_access_block().bucket(&b).send().await.aws("s3:GetPublicAccessBlock"),
                &["NoSuchPublicAccessBlockConfiguration"],
            )
        };
        let ownership = async {
            unless_absent(
                s3.get_bucket_ownership_controls().bucket(&b).send().await.aws("s3:GetBucketOwnershipControls"),
                &["OwnershipControlsNotFoundError"],
            )
        };
        let policy = async {
            unless_absent(
                s3.get_bucket_policy().bucket(&b).send().await.aws("s3:GetBucketPolicy"),
                &["NoSuchBucketPolicy"],
            )
        };
        let lifecycle = async {
            unless_absent(
                s3.get_bucket_lifecycle_configuration()
                    .bucket(&b)
                    .send()
                    .await
                    .aws("s3:GetBucketLifecycleConfiguration"),
                &["NoSuchLifecycleConfiguration"],
            )
        };
        let tagging = async {
            unless_absent(s3.get_bucket_tagging().bucket(&b).send().await.aws("s3:GetBucketTagging"), &["NoSuchTagSet"])
        };
        let (versioning, encryption, pab, ownership, policy, lifecycle, tagging) =
            futures::try_join!(versioning, encryption, pab, ownership, policy, lifecycle, tagging)?;
        let rule = encryption
            .as_ref()
            .and_then(|e| e.server_side_encryption_configuration())
            .and_then(|c| c.rules().first().cloned());
        let pab = pab.as_ref().and_then(|p| p.public_access_block_configuration());
        Ok(Some(Observed {
            versioning: versioning.status() == Some(&BucketVersioningStatus::Enabled),
            kms_key: rule
                .as_ref()
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .filter(|d| d.sse_algorithm() == &ServerSideEncryption::AwsKms)
                .and_then(|d| d.kms_master_key_id().map(str::to_string)),
            bucket_key: rule.as_ref().and_then(|r| r.bucket_key_enabled()) == Some(true),
            public_access_blocked: pab.is_some_and(|p| {
                p.block_public_acls() == Some(true)
                    && p.ignore_public_acls() == Some(true)
                    && p.block_public_policy() == Some(true)
                    && p.restrict_public_buckets() == Some(true)
            }),
            owner_enforced: ownership.as_ref().and_then(|o| o.ownership_controls()).is_some_and(|c| {
                c.rules().iter().any(|r| r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced)
            }),
            policy: policy.and_then(|p| p.policy().and_then(|t| serde_json::from_str(t).ok())),
            transition_minimum: lifecycle
                .as_ref()
                .and_then(|l| l.transition_default_minimum_object_size())
                .map(|m| m.as_str().to_string()),
            retention: lifecycle
                .and_then(|l| l.rules().iter().find(|r| r.id() == Some(LIFECYCLE_RULE)).map(Retention::of)),
            tags: tagging
                .map(|t| t.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
                .unwrap_or_default(),
        }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let mut d = Vec::new();
        if !o.versioning {
            d.push(Drift::new("versioning", "off", "on"));
        }
        if o.kms_key.as_deref() != Some(key.as_str()) {
            let have = o.kms_key.as_ref().map_or_else(|| "not SSE-KMS".to_string(), |k| format!("SSE-KMS with {k}"));
            d.push(Drift::new("default encryption", have, format!("SSE-KMS with {key}")));
        }
        if !o.bucket_key {
            d.push(Drift::new("bucket key", "off", "on"));
        }
        if !o.public_access_blocked {
            d.push(Drift::new("public access", "not fully blocked", "blocked"));
        }
        if !o.owner_enforced {
            d.push(Drift::new("object ownership", "ACLs on", "bucket owner enforced (ACLs off)"));
        }
        if o.policy.as_ref() != Some(&bucket_policy(&ctx.names.audit_bucket())) {
            let have = if o.policy.is_some() { "differs" } else { "missing" };
            d.push(Drift::new("bucket policy", have, "TLS-only policy (TLS 1.2 or later)"));
        }
        let want = Retention::wanted(ctx.config.audit_retention_days);
        if o.retention.as_ref() != Some(&want) {
            d.push(want.drift(o.retention.as_ref()));
        }
        if small_objects_would_transition(o) {
            // Smaller events would go to Glacier at a loss.
            d.push(Drift::new(
                "lifecycle minimum transition size",
                o.transition_minimum.as_deref().unwrap_or_default(),
                TRANSITION_MINIMUM.as_str(),
            ));
        }
        d.extend(ctx.tag_drift(&o.tags));
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, ctx: &Ctx, _o: &Observed) -> Outputs {
        let b = ctx.names.audit_bucket();
        Outputs::from([("bucket_name".into(), json!(b)), ("bucket_arn".into(), json!(format!("arn:aws:s3:::{b}")))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let s3 = &ctx.clients.s3;
        let b = ctx.names.audit_bucket();
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let internal = |e: aws_sdk_s3::error::BuildError| ResourceError::new("Internal", e.to_string());
        let o = match observed {
            Some(o) => o,
            None => {
                ctx.progress.step(&format!("creating bucket {b}"));
                let mut create = s3.create_bucket().bucket(&b).object_ownership(ObjectOwnership::BucketOwnerEnforced);
                if ctx.config.region != "us-east-1" {
                    create = create.create_bucket_configuration(
                        CreateBucketConfiguration::builder()
                            .location_constraint(BucketLocationConstraint::from(ctx.config.region.as_str()))
                            .build(),
                    );
                }
                // A run killed after CreateBucket: the bucket is ours already.
                create.send().await.aws("s3:CreateBucket").ok_if_exists()?;
                Observed {
                    versioning: false,
                    kms_key: None,
                    bucket_key: false,
                    public_access_blocked: false,
                    owner_enforced: false,
                    policy: None,
                    retention: None,
                    transition_minimum: None,
                    tags: BTreeMap::new(),
                }
            }
        };
        if !o.public_access_blocked {
            ctx.progress.step("blocking all public access");
            s3.put_public_access_block()
                .bucket(&b)
                .public_access_block_configuration(
                    PublicAccessBlockConfiguration::builder()
                        .block_public_acls(true)
                        .ignore_public_acls(true)
                        .block_public_policy(true)
                        .restrict_public_buckets(true)
                        .build(),
                )
                .send()
                .await
                .aws("s3:PutPublicAccessBlock")?;
        }
        if !o.owner_enforced {
            ctx.progress.step("turning ACLs off (bucket owner enforced)");
            s3.put_bucket_ownership_controls()
                .bucket(&b)
                .ownership_controls(
                    OwnershipControls::builder()
                        .rules(
                            OwnershipControlsRule::builder()
                                .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                                .build()
                                .map_err(internal)?,
                        )
                        .build()
                        .map_err(internal)?,
                )
                .send()
                .await
                .aws("s3:PutBucketOwnershipControls")?;
        }
        if o.kms_key.as_deref() != Some(key.as_str()) || !o.bucket_key {
            ctx.progress.step(&format!("setting default encryption to SSE-KMS with {key}"));
            s3.put_bucket_encryption()
                .bucket(&b)
                .server_side_encryption_configuration(
                    ServerSideEncryptionConfiguration::builder()
                        .rules(
                            ServerSideEncryptionRule::builder()
                                .apply_server_side_encryption_by_default(
                                    ServerSideEncryptionByDefault::builder()
                                        .sse_algorithm(ServerSideEncryption::AwsKms)
                                        .kms_master_key_id(&key)
                                        .build()
                                        .map_err(internal)?,
                                )
                                .bucket_key_enabled(true)
                                .build(),
                        )
                        .build()
                        .map_err(internal)?,
                )
                .send()
                .await
                .aws("s3:PutBucketEncryption")?;
        }
        if !o.versioning {
            ctx.progress.step("turning on versioning");
            s3.put_bucket_versioning()
                .bucket(&b)
                .versioning_configuration(
                    VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
                )
                .send()
                .await
                .aws("s3:PutBucketVersioning")?;
        }
        let policy = bucket_policy(&b);
        if o.policy.as_ref() != Some(&policy) {
            ctx.progress.step("setting the TLS-only bucket policy");
            s3.put_bucket_policy().bucket(&b).policy(policy.to_string()).send().await.aws("s3:PutBucketPolicy")?;
        }
        if o.retention.as_ref() != Some(&Retention::wanted(ctx.config.audit_retention_days))
            || small_objects_would_transition(&o)
        {
            ctx.progress.step(&format!(
                "setting lifecycle rule {LIFECYCLE_RULE}: {}",
                Retention::wanted(ctx.config.audit_retention_days).parts().join(", ")
            ));
            put_lifecycle(s3, &b, ctx.config.audit_retention_days)?
                .send()
                .await
                .aws("s3:PutBucketLifecycleConfiguration")?;
        }
        let wanted = ctx.tags(None, None);
        if wanted.iter().any(|(k, v)| o.tags.get(k) != Some(v)) {
            ctx.progress.step("tagging the bucket");
            // PutBucketTagging replaces the set: keep tags others put there.
            let mut all = o.tags.clone();
            all.extend(wanted);
            let set: Vec<Tag> = all.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
            s3.put_bucket_tagging()
                .bucket(&b)
                .tagging(Tagging::builder().set_tag_set(Some(set)).build().map_err(internal)?)
                .send()
                .await
                .aws("s3:PutBucketTagging")?;
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        let s3 = &ctx.clients.s3;
        let b = ctx.names.audit_bucket();
        let mut removed = 0usize;
        // Every version and delete marker, 1,000 per DeleteObjects call, until none is left.
        loop {
            // Each round lists from the start: what the last round deleted is gone.
            let mut batch: Vec<ObjectIdentifier> = Vec::new();
            {
                let page =
                    s3.list_object_versions().bucket(&b).max_keys(1000).send().await.aws("s3:ListObjectVersions")?;
                for (key, version) in page
                    .versions()
                    .iter()
                    .map(|v| (v.key(), v.version_id()))
                    .chain(page.delete_markers().iter().map(|m| (m.key(), m.version_id())))
                {
                    if let Some(key) = key {
                        batch.push(
                            ObjectIdentifier::builder()
                                .key(key)
                                .set_version_id(version.map(str::to_string))
                                .build()
                                .map_err(|e| ResourceError::new("Internal", e.to_string()))?,
                        );
                    }
                }
            }
            if batch.is_empty() {
                break;
            }
            for chunk in batch.chunks(1000) {
                ctx.progress.step(&format!("emptying {b}: {removed} versions removed"));
                s3.delete_objects()
                    .bucket(&b)
                    .delete(
                        Delete::builder()
                            .set_objects(Some(chunk.to_vec()))
                            .quiet(true)
                            .build()
                            .map_err(|e| ResourceError::new("Internal", e.to_string()))?,
                    )
                    .send()
                    .await
                    .aws("s3:DeleteObjects")?;
                removed += chunk.len();
            }
        }
        ctx.progress.step(&format!("deleting bucket {b} ({removed} versions removed)"));
        s3.delete_bucket().bucket(&b).send().await.aws("s3:DeleteBucket").ok_if_not_found()?;
        Ok(())
    }
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
        let observed = |minimum: Option<&str>| Observed {
            versioning: true,
            kms_key: None,
            bucket_key: true,
            public_access_blocked: true,
            owner_enforced: true,
            policy: None,
            retention: Some(Retention::wanted(365)),
            transition_minimum: minimum.map(str::to_string),
            tags: BTreeMap::new(),
        };
        assert!(small_objects_would_transition(&observed(Some("varies_by_storage_class"))));
        assert!(!small_objects_would_transition(&observed(Some("all_storage_classes_128K"))));
        assert!(!small_objects_would_transition(&observed(None)), "absent: AWS's default, the minimum");
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
