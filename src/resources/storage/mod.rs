//! The stack's buckets, one implementation for all (node `storage.<kind>`):
//! - `storage.audit-bucket`: the audit trail of every transaction (PCI DSS 10);
//! - `storage.trail-bucket`: where the stack's CloudTrail trail delivers (PCI DSS 10.2, 10.3);
//! - `storage.access-logs`: S3 server access records of the two (PCI DSS 10.2.1).
//!
//! Every one is versioned, has all public access blocked, ACLs off (bucket owner enforced), a
//! policy refusing any request without TLS or with TLS older than 1.2, and the lifecycle of
//! `lifecycle.rs` (PCI DSS 10.5.1). The kinds differ in name, policy statements, encryption
//! (SSE-KMS with the stack's key and a bucket key, but SSE-S3 for the access-log bucket: S3's log
//! delivery cannot write into a bucket whose default encryption is SSE-KMS) and lock (`lock.rs`:
//! the audit and trail buckets only; a bucket with Object Lock cannot receive access logs). The
//! audit and trail buckets send their server access logs to the access-log bucket, each under
//! its own prefix. Destroy empties every version and delete marker first (`empty.rs`).

pub mod empty;
pub mod lifecycle;
pub mod lock;
pub mod policy;

use crate::aws::{AlreadyExistsExt, AwsError, AwsResultExt, NotFoundExt};
use crate::names::Names;
use crate::resources::retry::catalogue;
use crate::resources::{policy_difference, Change, Ctx, Drift, Input, Outputs, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketLoggingStatus, BucketVersioningStatus, CreateBucketConfiguration, LoggingEnabled,
    ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
    VersioningConfiguration,
};
use lifecycle::{put_lifecycle, small_objects_would_transition, Retention, LIFECYCLE_RULE, TRANSITION_MINIMUM};
use lock::Lock;
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
        const LOCKED: &[Input] =
            &[Input { node: super::kms::ID, key: "key_arn" }, Input { node: ACCESS_LOGS_ID, key: "bucket_name" }];
        match self {
            Kind::Audit | Kind::Trail => LOCKED,
            // SSE-S3: S3's log delivery cannot use a customer key.
            Kind::AccessLogs => &[],
        }
    }

    /// The Object Lock default retention the bucket wants; None for a bucket without Object Lock.
    fn lock(self, ctx: &Ctx) -> Option<Lock> {
        match self {
            Kind::Audit | Kind::Trail => Some(lock::wanted(ctx.config.audit_lock, ctx.config.audit_retention_days)),
            Kind::AccessLogs => None,
        }
    }

    /// Where, in the access-log bucket, S3 writes this bucket's server access logs.
    pub fn log_prefix(self) -> Option<&'static str> {
        match self {
            Kind::Audit => Some("audit-bucket/"),
            Kind::Trail => Some("trail-bucket/"),
            Kind::AccessLogs => None,
        }
    }

    /// The server access logging the bucket wants: (target bucket, prefix).
    fn logging(self, ctx: &Ctx) -> Result<Option<(String, String)>> {
        match self.log_prefix() {
            Some(prefix) => Ok(Some((ctx.input(ACCESS_LOGS_ID, "bucket_name")?, prefix.to_string()))),
            None => Ok(None),
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
            Kind::AccessLogs => {
                let sources: Vec<(String, &str)> =
                    Kind::ALL.iter().filter_map(|k| Some((k.bucket(names), k.log_prefix()?))).collect();
                statements.extend(policy::log_delivery(&bucket, &names.account, &sources))
            }
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
    /// None: Object Lock is off.
    pub lock: Option<Lock>,
    /// Server access logging: (target bucket, prefix); None when off.
    pub logging: Option<(String, String)>,
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
            lock: None,
            logging: None,
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

/// Server access logging in words: `into <bucket>/<prefix>`, or `off`.
fn logging_words(l: Option<&(String, String)>) -> String {
    l.map_or_else(|| "off".to_string(), |(bucket, prefix)| format!("into {bucket}/{prefix}"))
}

/// One configuration call on bucket `b`. Right after this run created the bucket, S3 may answer
/// NoSuchBucket for a while (`catalogue::S3_NEW_BUCKET`); on a bucket that was there, that answer
/// is believed.
async fn configure<T, F, Fut>(ctx: &Ctx, created: bool, b: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, AwsError>>,
{
    if created {
        ctx.retry_while_propagating(&catalogue::S3_NEW_BUCKET, b, call).await
    } else {
        Ok(call().await?)
    }
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
    let lock = async {
        unless_absent(
            s3.get_object_lock_configuration().bucket(b).send().await.aws("s3:GetObjectLockConfiguration"),
            &["ObjectLockConfigurationNotFoundError"],
        )
    };
    let logging =
        async { Ok::<_, ResourceError>(s3.get_bucket_logging().bucket(b).send().await.aws("s3:GetBucketLogging")?) };
    let (versioning, encryption, pab, ownership, policy, lifecycle, tagging, lock, logging) =
        futures::try_join!(versioning, encryption, pab, ownership, policy, lifecycle, tagging, lock, logging)?;
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
        lock: lock.as_ref().and_then(|l| l.object_lock_configuration()).and_then(Lock::of),
        logging: logging.logging_enabled().map(|l| (l.target_bucket().to_string(), l.target_prefix().to_string())),
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
        if let Some(want) = self.kind.lock(ctx) {
            d.extend(lock::drift(o.lock.as_ref(), &want));
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
        let logging = self.kind.logging(ctx)?;
        if o.logging != logging {
            d.push(Drift::new(
                "server access logging",
                logging_words(o.logging.as_ref()),
                logging_words(logging.as_ref()),
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
        let lock = self.kind.lock(ctx);
        let logging = self.kind.logging(ctx)?;
        let created = observed.is_none();
        let o = match observed {
            Some(o) => o,
            None => {
                ctx.progress.step(&format!("creating bucket {b}"));
                // Object Lock from the start where it is wanted (S3 turns versioning on with it).
                let mut create = s3
                    .create_bucket()
                    .bucket(&b)
                    .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                    .object_lock_enabled_for_bucket(lock.is_some());
                if ctx.config.region != "us-east-1" {
                    create = create.create_bucket_configuration(
                        CreateBucketConfiguration::builder()
                            .location_constraint(BucketLocationConstraint::from(ctx.config.region.as_str()))
                            .build(),
                    );
                }
                // A run killed after CreateBucket: the bucket is ours already, and observed
                // again by the next run, which repairs what this one did not set.
                create.send().await.aws("s3:CreateBucket").ok_if_exists()?;
                Observed::new_bucket()
            }
        };
        if !o.public_access_blocked {
            ctx.progress.step("blocking all public access");
            let pab = PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build();
            configure(ctx, created, &b, || async {
                s3.put_public_access_block()
                    .bucket(&b)
                    .public_access_block_configuration(pab.clone())
                    .send()
                    .await
                    .aws("s3:PutPublicAccessBlock")
            })
            .await?;
        }
        if !o.owner_enforced {
            ctx.progress.step("turning ACLs off (bucket owner enforced)");
            let controls = OwnershipControls::builder()
                .rules(
                    OwnershipControlsRule::builder()
                        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                        .build()
                        .map_err(internal)?,
                )
                .build()
                .map_err(internal)?;
            configure(ctx, created, &b, || async {
                s3.put_bucket_ownership_controls()
                    .bucket(&b)
                    .ownership_controls(controls.clone())
                    .send()
                    .await
                    .aws("s3:PutBucketOwnershipControls")
            })
            .await?;
        }
        if !o.encryption_is(&encryption) {
            ctx.progress.step(&format!("setting default encryption to {encryption}"));
            let default = match &encryption {
                Encryption::Kms(key) => ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::AwsKms)
                    .kms_master_key_id(key),
                Encryption::S3 => ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256),
            };
            let config = ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(default.build().map_err(internal)?)
                        .bucket_key_enabled(matches!(encryption, Encryption::Kms(_)))
                        .build(),
                )
                .build()
                .map_err(internal)?;
            configure(ctx, created, &b, || async {
                s3.put_bucket_encryption()
                    .bucket(&b)
                    .server_side_encryption_configuration(config.clone())
                    .send()
                    .await
                    .aws("s3:PutBucketEncryption")
            })
            .await?;
        }
        // Versioning before Object Lock: S3 turns the lock on only for a versioned bucket. A
        // bucket created with Object Lock is versioned already.
        let versioned = o.versioning || (created && lock.is_some());
        if !versioned {
            ctx.progress.step("turning on versioning");
            configure(ctx, created, &b, || async {
                s3.put_bucket_versioning()
                    .bucket(&b)
                    .versioning_configuration(
                        VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
                    )
                    .send()
                    .await
                    .aws("s3:PutBucketVersioning")
            })
            .await?;
        }
        if let Some(want) = &lock {
            if o.lock.as_ref() != Some(want) {
                let what = if o.lock.is_none() && !created {
                    "turning Object Lock on in place"
                } else {
                    "setting Object Lock"
                };
                ctx.progress.step(&format!("{what}: default retention {}", want.describe()));
                configure(ctx, created, &b, || async {
                    s3.put_object_lock_configuration()
                        .bucket(&b)
                        .object_lock_configuration(want.configuration())
                        .send()
                        .await
                        .aws("s3:PutObjectLockConfiguration")
                })
                .await?;
            }
        }
        let policy = self.kind.policy(&ctx.names);
        if o.policy.as_ref() != Some(&policy) {
            ctx.progress.step(&format!("setting the bucket policy: {}", self.kind.policy_purpose()));
            configure(ctx, created, &b, || async {
                s3.put_bucket_policy().bucket(&b).policy(policy.to_string()).send().await.aws("s3:PutBucketPolicy")
            })
            .await?;
        }
        let retention = Retention::wanted(ctx.config.audit_retention_days);
        if o.retention.as_ref() != Some(&retention)
            || small_objects_would_transition(o.retention.as_ref(), o.transition_minimum.as_deref())
        {
            ctx.progress.step(&format!("setting lifecycle rule {LIFECYCLE_RULE}: {}", retention.parts().join(", ")));
            let put = put_lifecycle(s3, &b, ctx.config.audit_retention_days)?;
            configure(ctx, created, &b, || async {
                put.clone().send().await.aws("s3:PutBucketLifecycleConfiguration")
            })
            .await?;
        }
        if o.logging != logging {
            ctx.progress.step(&format!("server access logging {}", logging_words(logging.as_ref())));
            let status = match &logging {
                Some((target, prefix)) => BucketLoggingStatus::builder()
                    .logging_enabled(
                        LoggingEnabled::builder()
                            .target_bucket(target)
                            .target_prefix(prefix)
                            .build()
                            .map_err(internal)?,
                    )
                    .build(),
                None => BucketLoggingStatus::builder().build(),
            };
            configure(ctx, created, &b, || async {
                s3.put_bucket_logging()
                    .bucket(&b)
                    .bucket_logging_status(status.clone())
                    .send()
                    .await
                    .aws("s3:PutBucketLogging")
            })
            .await?;
        }
        let wanted = ctx.tags(None, None);
        if wanted.iter().any(|(k, v)| o.tags.get(k) != Some(v)) {
            ctx.progress.step("tagging the bucket");
            // PutBucketTagging replaces the set: keep tags others put there.
            let mut all = o.tags.clone();
            all.extend(wanted);
            let set: Vec<Tag> = all.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
            let tagging = Tagging::builder().set_tag_set(Some(set)).build().map_err(internal)?;
            configure(ctx, created, &b, || async {
                s3.put_bucket_tagging().bucket(&b).tagging(tagging.clone()).send().await.aws("s3:PutBucketTagging")
            })
            .await?;
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let s3 = &ctx.clients.s3;
        let b = self.kind.bucket(&ctx.names);
        // Versions under GOVERNANCE retention go with the bypass; COMPLIANCE ones stay (empty.rs).
        let bypass = o.lock.is_some();
        let mut removed = 0usize;
        // Writes may still arrive while the bucket is emptied (S3 delivers access logs minutes to
        // hours late): DeleteBucket answers BucketNotEmpty, and the bucket is emptied again
        // (terraform's force_destroy does the same).
        for round in 1..=EMPTY_ROUNDS {
            removed += empty::empty(ctx, &b, bypass).await?;
            ctx.progress.step(&format!("deleting bucket {b} ({removed} versions removed)"));
            match s3.delete_bucket().bucket(&b).send().await.aws("s3:DeleteBucket").ok_if_not_found() {
                Ok(_) => return Ok(()),
                Err(e) if e.code.as_deref() == Some("BucketNotEmpty") && round < EMPTY_ROUNDS => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// The warning `plan` and `up` give when `--audit-lock compliance` is wanted: what the lock
/// means for the buckets' end, with the retention, before anything is locked.
pub fn compliance_warning(config: &crate::config::StackConfig, names: &Names) -> Option<String> {
    if config.audit_lock != crate::config::AuditLock::Compliance {
        return None;
    }
    let days = crate::resources::counted(config.audit_retention_days.into(), "day");
    Some(format!(
        "--audit-lock compliance: every object version the audit bucket {} and the trail bucket {} receive is \
         locked for {days} in COMPLIANCE mode. Nobody, not even the account's root user, can delete it or shorten \
         its retention, so `destroy` cannot remove these buckets (nor the KMS key their objects are encrypted \
         with) until {days} after their newest object was written",
        names.audit_bucket(),
        names.trail_bucket()
    ))
}

/// How many times a destroy empties a bucket that keeps receiving writes before it gives up.
const EMPTY_ROUNDS: usize = 5;

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
            lock: kind.lock(ctx),
            logging: kind.logging(ctx).unwrap(),
            tags: ctx.tags(None, None).into_iter().collect(),
        }
    }

    fn ctx(kind: Kind) -> Ctx {
        testing::ctx(
            kind.id(),
            kind.reads(),
            &[("kms.key", "key_arn", json!(KEY)), (ACCESS_LOGS_ID, "bucket_name", json!("logs-qa"))],
        )
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
    fn the_audit_and_trail_buckets_are_locked_and_log_to_the_access_log_bucket_each_under_its_prefix() {
        for (kind, prefix) in [(Kind::Audit, "audit-bucket/"), (Kind::Trail, "trail-bucket/")] {
            let ctx = ctx(kind);
            let o = Observed { lock: None, logging: None, ..clean(kind, &ctx) };
            let text: Vec<String> =
                Bucket { kind }.diff(&ctx, &o).unwrap().drifts().iter().map(|d| d.to_string()).collect();
            assert_eq!(
                text,
                [
                    "Object Lock: off → on, default retention governance, 365 days".to_string(),
                    format!("server access logging: off → into logs-qa/{prefix}"),
                ]
            );
        }
        let ctx = ctx(Kind::AccessLogs);
        assert_eq!(Kind::AccessLogs.lock(&ctx), None, "S3 cannot deliver access logs into a locked bucket");
        let logged = Observed { logging: Some(("elsewhere".into(), "x/".into())), ..clean(Kind::AccessLogs, &ctx) };
        let change = Bucket { kind: Kind::AccessLogs }.diff(&ctx, &logged).unwrap();
        assert_eq!(change.drifts()[0].to_string(), "server access logging: into elsewhere/x/ → off");
    }

    #[test]
    fn the_access_log_bucket_admits_log_delivery_from_exactly_the_audit_and_trail_buckets() {
        let names = Names::new("qa", "us-east-1", Some("123456789012"));
        let policy = Kind::AccessLogs.policy(&names);
        let delivery: Vec<&Value> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Principal"]["Service"] == policy::LOG_DELIVERY)
            .collect();
        let logs = names.access_log_bucket();
        let sources: Vec<(String, String)> = delivery
            .iter()
            .map(|s| {
                (
                    s["Condition"]["ArnLike"]["aws:SourceArn"].as_str().unwrap().to_string(),
                    s["Resource"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            sources,
            [
                (format!("arn:aws:s3:::{}", names.audit_bucket()), format!("arn:aws:s3:::{logs}/audit-bucket/*")),
                (format!("arn:aws:s3:::{}", names.trail_bucket()), format!("arn:aws:s3:::{logs}/trail-bucket/*")),
            ]
        );
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
