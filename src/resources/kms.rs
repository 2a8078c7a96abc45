//! `kms.key`: the customer-managed key that encrypts everything in the stack, with yearly
//! automatic rotation and the alias `alias/payments-<suffix>`.
//!
//! Found by: the key id in the state, else the alias, else its tags (a run killed between
//! CreateKey and CreateAlias). A key pending deletion is never adopted: `destroy` schedules
//! deletion (AWS's minimum wait is 7 days) and a later `up` makes a fresh key.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::tag;
use crate::resources::Outputs;
use crate::resources::{policy_difference, Change, Ctx, Drift, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_kms::types::{KeyMetadata, KeySpec, KeyState, KeyUsageType, Tag};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub struct Key;

pub const ID: &str = "kms.key";

pub struct Observed {
    pub meta: KeyMetadata,
    pub rotation: bool,
    pub policy: Option<Value>,
    pub tags: BTreeMap<String, String>,
    /// The key the alias points at, if the alias exists.
    pub alias_target: Option<String>,
}

impl Observed {
    fn key_id(&self) -> &str {
        self.meta.key_id()
    }
}

fn usable(meta: &KeyMetadata) -> bool {
    matches!(meta.key_state(), Some(KeyState::Enabled | KeyState::Disabled))
}

/// The key policy. The account root statement lets IAM policies govern use (the functions'
/// roles get kms:ViaService-scoped grants); the service statements are the ones AWS requires
/// in the key policy itself.
/// What administering the key takes (AWS's "key administrators" statement, with CreateAlias
/// named instead of `kms:Create*`, which would include CreateGrant, a use of the key).
pub const ADMINISTRATION: [&str; 15] = [
    "kms:CreateAlias",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
];

pub fn key_policy(account: &str, region: &str, suffix: &str) -> Value {
    // cloudtrail: with a Bucket Key on the trail bucket, creating or updating an SSE-KMS trail needs
    // kms:Decrypt for the caller through CloudTrail (CloudTrail guide, "Configure AWS KMS key
    // policies for CloudTrail").
    // backup: the backup vault is encrypted with this key; AWS Backup uses it (CreateGrant, data
    // keys) on behalf of the backup role (AWS Backup developer guide, "Encryption for backups").
    let via: Vec<String> =
        ["logs", "sns", "rds", "dynamodb", "s3", "secretsmanager", "lambda", "ssm", "cloudtrail", "backup"]
            .iter()
            .map(|s| format!("{s}.{region}.amazonaws.com"))
            .collect();
    json!({
        "Version": "2012-10-17",
        "Id": format!("payments-{suffix}"),
        "Statement": [
            // The account administers the key through IAM — including kms:PutKeyPolicy, so that it
            // can never be locked out — but may not use it: no statement gives it Encrypt,
            // Decrypt, GenerateDataKey or CreateGrant except through the stack's services below
            // (with kms:* here, that statement would add nothing).
            {
                "Sid": "AccountAdministrationThroughIam",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": ADMINISTRATION,
                "Resource": "*"
            },
            {
                "Sid": "UseThroughStackServicesOnly",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": { "kms:CallerAccount": account },
                    "ForAnyValue:StringEquals": { "kms:ViaService": via }
                }
            },
            {
                "Sid": "CloudWatchLogsOfThisAccount",
                "Effect": "Allow",
                "Principal": { "Service": format!("logs.{region}.amazonaws.com") },
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {
                    "ArnLike": { "kms:EncryptionContext:aws:logs:arn": format!("arn:aws:logs:{region}:{account}:log-group:*") }
                }
            },
            // The alerts topic is encrypted with this key: whoever publishes to it must be able
            // to make a data key — CloudWatch alarms, EventBridge (security findings) and RDS
            // event subscriptions — and only for this account's resources.
            {
                "Sid": "AlertPublishersToEncryptedTopic",
                "Effect": "Allow",
                "Principal": { "Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com", "events.rds.amazonaws.com"] },
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": { "StringEquals": { "aws:SourceAccount": account } }
            },
            // CloudTrail encrypts the stack's trail's log files (AWS's documented statement,
            // scoped to this account's trails and to the stack's own trail as the source).
            {
                "Sid": "CloudTrailEncryptsTheStackTrail",
                "Effect": "Allow",
                "Principal": { "Service": "cloudtrail.amazonaws.com" },
                "Action": "kms:GenerateDataKey*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": { "aws:SourceArn": crate::names::Names::new(suffix, region, Some(account)).trail_arn() },
                    "StringLike": { "kms:EncryptionContext:aws:cloudtrail:arn": format!("arn:aws:cloudtrail:*:{account}:trail/*") }
                }
            },
            {
                "Sid": "CloudTrailDescribesTheKey",
                "Effect": "Allow",
                "Principal": { "Service": "cloudtrail.amazonaws.com" },
                "Action": "kms:DescribeKey",
                "Resource": "*"
            }
        ]
    })
}

fn description(ctx: &Ctx) -> String {
    format!("tapctl payments stack {}: encrypts every resource of the stack", ctx.names.suffix)
}

fn kms_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter().filter_map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build().ok()).collect()
}

async fn describe(ctx: &Ctx, key: &str) -> Result<Option<KeyMetadata>> {
    let out = ctx.clients.kms.describe_key().key_id(key).send().await.aws("kms:DescribeKey").ok_if_not_found()?;
    Ok(out.and_then(|o| o.key_metadata().cloned()))
}

async fn tags_of(ctx: &Ctx, key: &str) -> Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    let mut pages = ctx.clients.kms.list_resource_tags().key_id(key).into_paginator().send();
    while let Some(page) = pages.next().await {
        for t in page.aws("kms:ListResourceTags")?.tags() {
            tags.insert(t.tag_key().to_string(), t.tag_value().to_string());
        }
    }
    Ok(tags)
}

/// The oldest usable key tagged for this node and suffix (only when state and alias are lost).
async fn find_by_tags(ctx: &Ctx) -> Result<Option<KeyMetadata>> {
    let mut found: Vec<KeyMetadata> = Vec::new();
    let mut keys = ctx.clients.kms.list_keys().into_paginator().items().send();
    while let Some(entry) = keys.next().await {
        let entry = entry.aws("kms:ListKeys")?;
        let Some(id) = entry.key_id() else { continue };
        let tags = match tags_of(ctx, id).await {
            Ok(t) => t,
            // Keys of other teams may not be readable by this caller: they are not ours anyway.
            Err(e) if e.code.as_deref().is_some_and(|c| c.starts_with("AccessDenied")) => continue,
            Err(e) => return Err(e),
        };
        if tags.get(tag::SUFFIX) == Some(&ctx.names.suffix) && tags.get(tag::RESOURCE).map(String::as_str) == Some(ID) {
            if let Some(meta) = describe(ctx, id).await?.filter(usable) {
                found.push(meta);
            }
        }
    }
    found.sort_by_key(|m| m.creation_date().map(|d| d.secs()).unwrap_or_default());
    Ok(found.into_iter().next())
}

#[async_trait]
impl Resource for Key {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let alias = ctx.names.kms_alias();
        let alias_meta = describe(ctx, &alias).await?;
        let alias_target = alias_meta.as_ref().map(|m| m.key_id().to_string());
        let mut meta = None;
        if let Some(id) = ctx.recorded_str("key_id") {
            meta = describe(ctx, id).await?.filter(usable);
        }
        if meta.is_none() {
            meta = alias_meta.filter(usable);
        }
        if meta.is_none() {
            meta = find_by_tags(ctx).await?;
        }
        let Some(meta) = meta else { return Ok(None) };
        let key = meta.key_id().to_string();
        let kms = &ctx.clients.kms;
        let rotation = kms
            .get_key_rotation_status()
            .key_id(&key)
            .send()
            .await
            .aws("kms:GetKeyRotationStatus")?
            .key_rotation_enabled();
        let policy = kms.get_key_policy().key_id(&key).policy_name("default").send().await.aws("kms:GetKeyPolicy")?;
        let policy = policy.policy().and_then(|p| serde_json::from_str(p).ok());
        Ok(Some(Observed { tags: tags_of(ctx, &key).await?, meta, rotation, policy, alias_target }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        if o.meta.key_spec() != Some(&KeySpec::SymmetricDefault)
            || o.meta.key_usage() != Some(&KeyUsageType::EncryptDecrypt)
        {
            let kind = |spec: Option<&KeySpec>, usage: Option<&KeyUsageType>| {
                format!(
                    "{} {}",
                    spec.map_or("unknown spec", |s| s.as_str()),
                    usage.map_or("unknown usage", |u| u.as_str())
                )
            };
            return Ok(Change::Replace(Drift::new(
                "key spec and usage",
                kind(o.meta.key_spec(), o.meta.key_usage()),
                kind(Some(&KeySpec::SymmetricDefault), Some(&KeyUsageType::EncryptDecrypt)),
            )));
        }
        let mut drifts = Vec::new();
        if o.meta.key_state() == Some(&KeyState::Disabled) {
            drifts.push(Drift::new("key state", "disabled", "enabled"));
        }
        if !o.rotation {
            drifts.push(Drift::new("automatic rotation", "off", "on"));
        }
        let policy = key_policy(&ctx.names.account, &ctx.config.region, &ctx.names.suffix);
        if o.policy.as_ref() != Some(&policy) {
            let have = o.policy.as_ref().map_or_else(|| "missing".to_string(), |p| policy_difference(p, &policy));
            drifts.push(Drift::new("key policy", have, "the stack's key policy"));
        }
        if o.alias_target.as_deref() != Some(o.key_id()) {
            let have = o.alias_target.as_ref().map_or_else(|| "missing".to_string(), |k| format!("key {k}"));
            drifts.push(Drift::new(format!("alias {}", ctx.names.kms_alias()), have, format!("key {}", o.key_id())));
        }
        drifts.extend(ctx.tag_drift(&o.tags));
        Ok(Change::from_drifts(drifts))
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([
            ("key_id".into(), json!(o.key_id())),
            ("key_arn".into(), json!(o.meta.arn().unwrap_or_default())),
            ("alias".into(), json!(ctx.names.kms_alias())),
        ])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let kms = &ctx.clients.kms;
        let policy = key_policy(&ctx.names.account, &ctx.config.region, &ctx.names.suffix);
        let tags = ctx.tags(None, None);
        let o = match observed {
            Some(o) => o,
            None => {
                ctx.progress.step(&format!("creating the stack's KMS key ({})", ctx.names.kms_alias()));
                let out = kms
                    .create_key()
                    .description(description(ctx))
                    .key_usage(KeyUsageType::EncryptDecrypt)
                    .key_spec(KeySpec::SymmetricDefault)
                    .policy(policy.to_string())
                    .set_tags(Some(kms_tags(&tags)))
                    .send()
                    .await
                    .aws("kms:CreateKey")?;
                let meta = out
                    .key_metadata()
                    .cloned()
                    .ok_or_else(|| ResourceError::new("EmptyResponse", "CreateKey returned no key"))?;
                Observed {
                    meta,
                    rotation: false,
                    policy: Some(policy.clone()),
                    tags: tags.iter().cloned().collect(),
                    alias_target: describe(ctx, &ctx.names.kms_alias()).await?.map(|m| m.key_id().to_string()),
                }
            }
        };
        let key = o.key_id().to_string();
        if o.meta.key_state() == Some(&KeyState::Disabled) {
            ctx.progress.step(&format!("enabling key {key}"));
            kms.enable_key().key_id(&key).send().await.aws("kms:EnableKey")?;
        }
        if !o.rotation {
            ctx.progress.step("turning on automatic key rotation");
            kms.enable_key_rotation().key_id(&key).send().await.aws("kms:EnableKeyRotation")?;
        }
        if o.policy.as_ref() != Some(&policy) {
            ctx.progress.step("restoring the stack's key policy");
            kms.put_key_policy()
                .key_id(&key)
                .policy_name("default")
                .policy(policy.to_string())
                .send()
                .await
                .aws("kms:PutKeyPolicy")?;
        }
        let missing: Vec<(String, String)> = tags.iter().filter(|(k, v)| o.tags.get(k) != Some(v)).cloned().collect();
        if !missing.is_empty() {
            ctx.progress.step(&format!("tagging key {key}"));
            kms.tag_resource().key_id(&key).set_tags(Some(kms_tags(&missing))).send().await.aws("kms:TagResource")?;
        }
        let alias = ctx.names.kms_alias();
        match o.alias_target.as_deref() {
            Some(t) if t == key => {}
            Some(other) => {
                ctx.progress.step(&format!("pointing alias {alias} at key {key} (it named {other})"));
                kms.update_alias().alias_name(&alias).target_key_id(&key).send().await.aws("kms:UpdateAlias")?;
            }
            None => {
                ctx.progress.step(&format!("creating alias {alias} → key {key}"));
                kms.create_alias().alias_name(&alias).target_key_id(&key).send().await.aws("kms:CreateAlias")?;
            }
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let kms = &ctx.clients.kms;
        if o.alias_target.as_deref() == Some(o.key_id()) {
            kms.delete_alias()
                .alias_name(ctx.names.kms_alias())
                .send()
                .await
                .aws("kms:DeleteAlias")
                .ok_if_not_found()?;
        }
        ctx.progress.step(&format!(
            "scheduling deletion of key {} in {} days",
            o.key_id(),
            ctx.config.kms_deletion_window_days
        ));
        kms.schedule_key_deletion()
            .key_id(o.key_id())
            .pending_window_in_days(ctx.config.kms_deletion_window_days)
            .send()
            .await
            .aws("kms:ScheduleKeyDeletion")
            .ok_if_not_found()?;
        Ok(())
    }
}
