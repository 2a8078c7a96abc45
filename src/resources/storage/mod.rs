//! The stack's buckets, one implementation for all (node `storage.<kind>`):
//! - `storage.audit-bucket`: the audit trail of every transaction (PCI DSS 10);
//! - `storage.trail-bucket`: where the stack's CloudTrail trail delivers (PCI DSS 10.2, 10.3);
//! - `storage.access-logs`: S3 server access records of the two (PCI DSS 10.2.1).
//!
//! Every one is versioned, has all public access blocked, ACLs off (bucket owner enforced), a
//! policy refusing any request without TLS or with TLS older than 1.2, and the lifecycle of
//! `lifecycle.rs` (PCI DSS 10.5.1). The kinds differ in name, policy statements, encryption
//! (SSE-KMS with the stack's key and a bucket key, but SSE-S3 for the access-log bucket: S3's log
//! delivery cannot write into a bucket whose default encryption is SSE-KMS) and lock.
//! Destroy empties every version and delete marker first.

pub mod lifecycle;
pub mod policy;

use crate::aws::{AlreadyExistsExt, AwsError, AwsResultExt, NotFoundExt};
use crate::names::Names;
use crate::resources::{policy_difference, Change, Ctx, Drift, Input, Outputs, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete, ObjectIdentifier,
    ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
    VersioningConfiguration,
};
use lifecycle::{put_lifecycle, small_objects_would_transition, Retention, LIFECYCLE_RULE, TRANSITION_MINIMUM};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub use lifecycle::HOT_DAYS;

/// `storage.audit-bucket` (the name other modules know it by).
pub const ID: &str = "storage.audit-bucket";
pub const TRAIL_ID: &str = "storage.trail-bucket";
pub const ACCESS_LOGS_ID: &str = "storage.access-logs";

/// Which bucket of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audit,
    Trail,
    AccessLogs,
}

/// How a bucket encrypts what it receives by default.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Encryption {
    /// SSE-KMS with this key and a bucket key (fewer KMS requests: one data key per bucket and
    /// period, not per object).
    Kms(String),
    /// SSE-S3 (AES256).
    S3,
}

impl std::fmt::Display for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encryption::Kms(key) => write!(f, "SSE-KMS with {key}"),
            Encryption::S3 => f.write_str("SSE-S3"),
        }
    }
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Audit, Kind::Trail, Kind::AccessLogs];

    pub fn id(self) -> &'static str {
        match self {
            Kind::Audit => ID,
            Kind::Trail => TRAIL_ID,
            Kind::AccessLogs => ACCESS_LOGS_ID,
        }
    }

    pub fn bucket(self, names: &Names) -> String {
        match self {
            Kind::Audit => names.audit_bucket(),
            Kind::Trail => names.trail_bucket(),
            Kind::AccessLogs => names.access_log_bucket(),
        }
    }

    fn reads(self) -> &'static [Input] {
        const KEYED: &[Input] = &[Input { node: super::kms::ID, key: "key_arn" }];
        match self {
            Kind::Audit | Kind::Trail => KEYED,
            // SSE-S3: S3's log delivery cannot use a customer key.
            Kind::AccessLogs => &[],
        }
    }

    fn encryption(self, ctx: &Ctx) -> Result<Encryption> {
        match self {
            Kind::Audit | Kind::Trail => Ok(Encryption::Kms(ctx.input(super::kms::ID, "key_arn")?)),
            Kind::AccessLogs => Ok(Encryption::S3),
        }
    }

    /// The bucket's policy: TLS only, plus what the services that write into it need.
    pub fn policy(self, names: &Names) -> Value {
        let bucket = self.bucket(names);
        let mut statements = policy::tls_only(&bucket);
        match self {
            Kind::Audit => {}
            Kind::Trail => statements.extend(policy::cloudtrail(names)),
            Kind::AccessLogs => statements.extend(policy::log_delivery(&bucket, &names.account, &[])),
        }
        policy::document(statements)
    }

    /// The policy in words, for a drift.
    fn policy_purpose(self) -> &'static str {
        match self {
            Kind::Audit => "TLS-only policy (TLS 1.2 or later)",
            Kind::Trail => "TLS-only policy (TLS 1.2 or later) letting the stack's trail deliver",
            Kind::AccessLogs => "TLS-only policy (TLS 1.2 or later) letting S3 deliver the access logs",
        }
    }
}

/// A bucket of the stack; its kind says which.
pub struct Bucket {
    pub kind: Kind,
}

pub struct Observed {
    pub versioning: bool,
    /// The default encryption algorithm (`aws:kms`, `AES256`…), None when there is none.
    pub sse_algorithm: Option<String>,
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

impl Observed {
    /// A bucket just made: nothing set yet.
    fn new_bucket() -> Observed {
        Observed {
            versioning: false,
            sse_algorithm: None,
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

    fn encryption_is(&self, want: &Encryption) -> bool {
        match want {
            Encryption::Kms(key) => {
                self.sse_algorithm.as_deref() == Some(ServerSideEncryption::AwsKms.as_str())
                    && self.kms_key.as_deref() == Some(key.as_str())
                    && self.bucket_key
            }
            Encryption::S3 => self.sse_algorithm.as_deref() == Some(ServerSideEncryption::Aes256.as_str()),
        }
    }

    /// The default encryption in words.
    fn encryption(&self) -> String {
        match self.sse_algorithm.as_deref() {
            None => "none".to_string(),
            Some("aws:kms") => {
                let key = self.kms_key.as_deref().unwrap_or("the AWS managed key");
                let bucket_key = if self.bucket_key { "" } else { ", no bucket key" };
                format!("SSE-KMS with {key}{bucket_key}")
            }
            Some("AES256") => "SSE-S3".to_string(),
            Some(other) => other.to_string(),
        }
    }
}

/// A lookup whose "not configured" answer is an error code: None instead.
fn unless_absent<T>(r: std::result::Result<T, AwsError>, absent: &[&str]) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code.as_deref().is_some_and(|c| absent.contains(&c)) || e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn internal(e: aws_sdk_s3::error::BuildError) -> ResourceError {
    ResourceError::new("Internal", e.to_string())
}

/// Reads everything tapctl manages on bucket `b`; None when there is no such bucket.
async fn observe_bucket(s3: &aws_sdk_s3::Client, b: &str) -> Result<Option<Observed>> {
    if unless_absent(s3.head_bucket().bucket(b).send().await.aws("s3:HeadBucket"), &["NotFound", "NoSuchBucket"])?
        .is_none()
    {
        return Ok(None);
    }
    // Independent reads of one bucket, made at once.
    let versioning = async {
        Ok::<_, ResourceError>(s3.get_bucket_versioning().bucket(b).send().await.aws("s3:GetBucketVersioning")?)
    };
    let encryption = async {
        unless_absent(
            s3.get_bucket_encryption().bucket(b).send().await.aws("s3:GetBucketEncryption"),
            &["ServerSideEncryptionConfigurationNotFoundError"],
        )
    };
    let pab = async {
        unless_absent(
            s3.get_public_access_block().bucket(b).send().await.aws("s3:GetPublicAccessBlock"),
            &["NoSuchPublicAccessBlockConfiguration"],
        )
    };
    let ownership = async {
        unless_absent(
            s3.get_bucket_ownership_controls().bucket(b).send().await.aws("s3:GetBucketOwnershipControls"),
            &["OwnershipControlsNotFoundError"],
        )
    };
    let policy = async {
        unless_absent(s3.get_bucket_policy().bucket(b).send().await.aws("s3:GetBucketPolicy"), &["NoSuchBucketPolicy"])
    };
    let lifecycle = async {
        unless_absent(
            s3.get_bucket_lifecycle_configuration().bucket(b).send().await.aws("s3:GetBucketLifecycleConfiguration"),
            &["NoSuchLifecycleConfiguration"],
        )
    };
    let tagging = async {
        unless_absent(s3.get_bucket_tagging().bucket(b).send().await.aws("s3:GetBucketTagging"), &["NoSuchTagSet"])
    };
    let (versioning, encryption, pab, ownership, policy, lifecycle, tagging) =
        futures::try_join!(versioning, encryption, pab, ownership, policy, lifecycle, tagging)?;
    let rule = encryption
        .as_ref()
        .and_then(|e| e.server_side_encryption_configuration())
        .and_then(|c| c.rules().first().cloned());
    let default = rule.as_ref().and_then(|r| r.apply_server_side_encryption_by_default());
    let pab = pab.as_ref().and_then(|p| p.public_access_block_configuration());
    Ok(Some(Observed {
        versioning: versioning.status() == Some(&BucketVersioningStatus::Enabled),
        sse_algorithm: default.map(|d| d.sse_algorithm().as_str().to_string()),
        kms_key: default.and_then(|d| d.kms_master_key_id().map(str::to_string)),
        bucket_key: rule.as_ref().and_then(|r| r.bucket_key_enabled()) == Some(true),
        public_access_blocked: pab.is_some_and(|p| {
            p.block_public_acls() == Some(true)
                && p.ignore_public_acls() == Some(true)
                && p.block_public_policy() == Some(true)
                && p.restrict_public_buckets() == Some(true)
        }),
        owner_enforced: ownership
            .as_ref()
            .and_then(|o| o.ownership_controls())
            .is_some_and(|c| c.rules().iter().any(|r| r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced)),
        policy: policy.and_then(|p| p.policy().and_then(|t| serde_json::from_str(t).ok())),
        transition_minimum: lifecycle
            .as_ref()
            .and_then(|l| l.transition_default_minimum_object_size())
            .map(|m| m.as_str().to_string()),
        retention: lifecycle.and_then(|l| l.rules().iter().find(|r| r.id() == Some(LIFECYCLE_RULE)).map(Retention::of)),
        tags: tagging
            .map(|t| t.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
            .unwrap_or_default(),
    }))
}

#[async_trait]
impl Resource for Bucket {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        self.kind.id()
    }
    fn reads(&self) -> &'static [Input] {
        self.kind.reads()
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        observe_bucket(&ctx.clients.s3, &self.kind.bucket(&ctx.names)).await
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let encryption = self.kind.encryption(ctx)?;
        let mut d = Vec::new();
        if !o.versioning {
            d.push(Drift::new("versioning", "off", "on"));
        }
        if !o.encryption_is(&encryption) {
            d.push(Drift::new("default encryption", o.encryption(), encryption));
        }
        if !o.public_access_blocked {
            d.push(Drift::new("public access", "not fully blocked", "blocked"));
        }
        if !o.owner_enforced {
            d.push(Drift::new("object ownership", "ACLs on", "bucket owner enforced (ACLs off)"));
        }
        let want = self.kind.policy(&ctx.names);
        if o.policy.as_ref() != Some(&want) {
            let have = o.policy.as_ref().map_or_else(|| "missing".to_string(), |p| policy_difference(p, &want));
            d.push(Drift::new("bucket policy", have, self.kind.policy_purpose()));
        }
        let want = Retention::wanted(ctx.config.audit_retention_days);
        if o.retention.as_ref() != Some(&want) {
            d.push(want.drift(o.retention.as_ref()));
        }
        if small_objects_would_transition(o.retention.as_ref(), o.transition_minimum.as_deref()) {
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
        let b = self.kind.bucket(&ctx.names);
        Outputs::from([("bucket_name".into(), json!(b)), ("bucket_arn".into(), json!(policy::arn(&b)))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let s3 = &ctx.clients.s3;
        let b = self.kind.bucket(&ctx.names);
        let encryption = self.kind.encryption(ctx)?;
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
                Observed::new_bucket()
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
        if !o.encryption_is(&encryption) {
            ctx.progress.step(&format!("setting default encryption to {encryption}"));
            let default = match &encryption {
                Encryption::Kms(key) => ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::AwsKms)
                    .kms_master_key_id(key),
                Encryption::S3 => ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256),
            };
            s3.put_bucket_encryption()
                .bucket(&b)
                .server_side_encryption_configuration(
                    ServerSideEncryptionConfiguration::builder()
                        .rules(
                            ServerSideEncryptionRule::builder()
                                .apply_server_side_encryption_by_default(default.build().map_err(internal)?)
                                .bucket_key_enabled(matches!(encryption, Encryption::Kms(_)))
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
        let policy = self.kind.policy(&ctx.names);
        if o.policy.as_ref() != Some(&policy) {
            ctx.progress.step(&format!("setting the bucket policy: {}", self.kind.policy_purpose()));
            s3.put_bucket_policy().bucket(&b).policy(policy.to_string()).send().await.aws("s3:PutBucketPolicy")?;
        }
        let retention = Retention::wanted(ctx.config.audit_retention_days);
        if o.retention.as_ref() != Some(&retention)
            || small_objects_would_transition(o.retention.as_ref(), o.transition_minimum.as_deref())
        {
            ctx.progress.step(&format!("setting lifecycle rule {LIFECYCLE_RULE}: {}", retention.parts().join(", ")));
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
        let b = self.kind.bucket(&ctx.names);
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
                                .map_err(internal)?,
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
                    .delete(Delete::builder().set_objects(Some(chunk.to_vec())).quiet(true).build().map_err(internal)?)
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
    use crate::resources::testing;

    const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/k";

    fn clean(kind: Kind, ctx: &Ctx) -> Observed {
        let encryption = kind.encryption(ctx).unwrap();
        Observed {
            versioning: true,
            sse_algorithm: Some(
                match encryption {
                    Encryption::Kms(_) => ServerSideEncryption::AwsKms,
                    Encryption::S3 => ServerSideEncryption::Aes256,
                }
                .as_str()
                .to_string(),
            ),
            kms_key: match &encryption {
                Encryption::Kms(k) => Some(k.clone()),
                Encryption::S3 => None,
            },
            bucket_key: matches!(encryption, Encryption::Kms(_)),
            public_access_blocked: true,
            owner_enforced: true,
            policy: Some(kind.policy(&ctx.names)),
            retention: Some(Retention::wanted(ctx.config.audit_retention_days)),
            transition_minimum: Some(TRANSITION_MINIMUM.as_str().to_string()),
            tags: ctx.tags(None, None).into_iter().collect(),
        }
    }

    fn ctx(kind: Kind) -> Ctx {
        testing::ctx(kind.id(), kind.reads(), &[("kms.key", "key_arn", json!(KEY))])
    }

    #[test]
    fn every_kind_wants_what_it_holds_when_clean_and_names_each_drift_plainly() {
        for kind in Kind::ALL {
            let ctx = ctx(kind);
            let clean = clean(kind, &ctx);
            assert_eq!(Bucket { kind }.diff(&ctx, &clean).unwrap(), Change::NoOp, "{kind:?}");
            let broken = Observed {
                versioning: false,
                sse_algorithm: None,
                bucket_key: false,
                policy: Some(policy::document(policy::tls_only("x"))),
                ..clean
            };
            let change = Bucket { kind }.diff(&ctx, &broken).unwrap();
            testing::assert_plain(&change.drifts());
            let text: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
            assert!(text.contains(&"versioning: off → on".to_string()), "{text:?}");
            assert!(text.iter().any(|t| t.starts_with("default encryption: none → SSE-")), "{text:?}");
        }
    }

    #[test]
    fn the_access_log_bucket_is_sse_s3_and_the_others_use_the_stack_key() {
        assert_eq!(Kind::AccessLogs.encryption(&ctx(Kind::AccessLogs)).unwrap(), Encryption::S3);
        assert_eq!(Kind::Trail.encryption(&ctx(Kind::Trail)).unwrap(), Encryption::Kms(KEY.into()));
        let ctx = ctx(Kind::Audit);
        let kms_without_bucket_key = Observed { bucket_key: false, ..clean(Kind::Audit, &ctx) };
        let change = Bucket { kind: Kind::Audit }.diff(&ctx, &kms_without_bucket_key).unwrap();
        assert_eq!(
            change.drifts()[0].to_string(),
            format!("default encryption: SSE-KMS with {KEY}, no bucket key → SSE-KMS with {KEY}")
        );
    }

    #[test]
    fn the_trail_bucket_policy_adds_cloudtrail_to_the_tls_rules() {
        let names = Names::new("qa", "us-east-1", Some("123456789012"));
        let policy = Kind::Trail.policy(&names);
        let sids: Vec<&str> =
            policy["Statement"].as_array().unwrap().iter().filter_map(|s| s["Sid"].as_str()).collect();
        assert_eq!(
            sids,
            ["DenyInsecureTransport", "DenyTlsOlderThan12", "AWSCloudTrailAclCheck", "AWSCloudTrailWrite"]
        );
        assert_eq!(Kind::Audit.policy(&names)["Statement"].as_array().unwrap().len(), 2);
    }
}
