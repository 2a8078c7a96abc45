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
use aws_sdk_kms::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub struct Key;

pub const ID: &str = "kms.key";

pub struct Observed {
    pub meta: KeyMetadata,
    pub key: CustomerKey,
}

/// A customer-managed key as AWS holds it: what tapctl reconciles on each of its keys (the
/// stack's, the backup copy key of another region).
#[derive(Debug, Clone)]
pub struct CustomerKey {
    pub id: String,
    pub arn: String,
    pub disabled: bool,
    pub rotation: bool,
    pub policy: Option<Value>,
    pub tags: BTreeMap<String, String>,
    /// The key the alias points at, if the alias exists.
    pub alias_target: Option<String>,
}

/// What one of tapctl's keys must be: symmetric, enabled, rotated yearly, exactly `policy`, the
/// stack's tags, and `alias` naming it. Found by a recorded id, else the alias, else the tags of
/// `node` and the suffix (a run killed between CreateKey and CreateAlias); a key pending
/// deletion is never adopted. One reconciler for every key, so that each is kept the same way
/// (PCI DSS 3.6.1, 3.7.4: key custody and yearly rotation).
pub struct WantedKey {
    /// Which node's key: its `tapctl:resource` tag.
    pub node: &'static str,
    pub alias: String,
    pub description: String,
    pub policy: Value,
    /// For people: "the stack's key", "the backup copy key in eu-west-1".
    pub what: String,
}

impl WantedKey {
    async fn describe(&self, kms: &Client, key: &str) -> Result<Option<KeyMetadata>> {
        let out = kms.describe_key().key_id(key).send().await.aws("kms:DescribeKey").ok_if_not_found()?;
        Ok(out.and_then(|o| o.key_metadata().cloned()))
    }

    async fn tags_of(&self, kms: &Client, key: &str) -> Result<BTreeMap<String, String>> {
        let mut tags = BTreeMap::new();
        let mut pages = kms.list_resource_tags().key_id(key).into_paginator().send();
        while let Some(page) = pages.next().await {
            for t in page.aws("kms:ListResourceTags")?.tags() {
                tags.insert(t.tag_key().to_string(), t.tag_value().to_string());
            }
        }
        Ok(tags)
    }

    /// The oldest usable key tagged for this node and suffix (only when state and alias are lost).
    async fn find_by_tags(&self, ctx: &Ctx, kms: &Client) -> Result<Option<KeyMetadata>> {
        let mut found: Vec<KeyMetadata> = Vec::new();
        let mut keys = kms.list_keys().into_paginator().items().send();
        while let Some(entry) = keys.next().await {
            let entry = entry.aws("kms:ListKeys")?;
            let Some(id) = entry.key_id() else { continue };
            let tags = match self.tags_of(kms, id).await {
                Ok(t) => t,
                // Keys of other teams may not be readable by this caller: they are not ours anyway.
                Err(e) if e.code.as_deref().is_some_and(|c| c.starts_with("AccessDenied")) => continue,
                Err(e) => return Err(e),
            };
            if tags.get(tag::SUFFIX) == Some(&ctx.names.suffix)
                && tags.get(tag::RESOURCE).map(String::as_str) == Some(self.node)
            {
                if let Some(meta) = self.describe(kms, id).await?.filter(usable) {
                    found.push(meta);
                }
            }
        }
        found.sort_by_key(|m| m.creation_date().map(|d| d.secs()).unwrap_or_default());
        Ok(found.into_iter().next())
    }

    /// The key and its metadata, or None when no usable key of this node exists.
    pub async fn observe(
        &self,
        ctx: &Ctx,
        kms: &Client,
        recorded: Option<&str>,
    ) -> Result<Option<(KeyMetadata, CustomerKey)>> {
        let alias_meta = self.describe(kms, &self.alias).await?;
        let alias_target = alias_meta.as_ref().map(|m| m.key_id().to_string());
        let mut meta = None;
        if let Some(id) = recorded {
            meta = self.describe(kms, id).await?.filter(usable);
        }
        if meta.is_none() {
            meta = alias_meta.filter(usable);
        }
        if meta.is_none() {
            meta = self.find_by_tags(ctx, kms).await?;
        }
        let Some(meta) = meta else { return Ok(None) };
        let id = meta.key_id().to_string();
        let rotation = kms
            .get_key_rotation_status()
            .key_id(&id)
            .send()
            .await
            .aws("kms:GetKeyRotationStatus")?
            .key_rotation_enabled();
        let policy = kms.get_key_policy().key_id(&id).policy_name("default").send().await.aws("kms:GetKeyPolicy")?;
        let key = CustomerKey {
            arn: meta.arn().unwrap_or_default().to_string(),
            disabled: meta.key_state() == Some(&KeyState::Disabled),
            rotation,
            policy: policy.policy().and_then(|p| serde_json::from_str(p).ok()),
            tags: self.tags_of(kms, &id).await?,
            alias_target,
            id,
        };
        Ok(Some((meta, key)))
    }

    /// How `k` differs from this key, in words; `allows` says what the policy allows, for people.
    pub fn drifts(&self, ctx: &Ctx, k: &CustomerKey, allows: &str) -> Vec<Drift> {
        let mut d = Vec::new();
        if k.disabled {
            d.push(Drift::new("key state", "disabled", "enabled"));
        }
        if !k.rotation {
            d.push(Drift::new("automatic rotation", "off", "on"));
        }
        if k.policy.as_ref() != Some(&self.policy) {
            let have = k.policy.as_ref().map_or_else(|| "missing".to_string(), |p| policy_difference(p, &self.policy));
            d.push(Drift::new("key policy", have, allows));
        }
        if k.alias_target.as_deref() != Some(k.id.as_str()) {
            let have = k.alias_target.as_ref().map_or_else(|| "missing".to_string(), |t| format!("key {t}"));
            d.push(Drift::new(format!("alias {}", self.alias), have, format!("key {}", k.id)));
        }
        d.extend(ctx.tag_drift(&k.tags));
        d
    }

    /// Creates the key or repairs it in place from `have`, and returns it as it now is.
    pub async fn ensure(&self, ctx: &Ctx, kms: &Client, have: Option<CustomerKey>) -> Result<CustomerKey> {
        let tags = ctx.tags(None, None);
        let mut key = match have {
            Some(k) => k,
            None => {
                ctx.progress.step(&format!("creating {} ({})", self.what, self.alias));
                let out = kms
                    .create_key()
                    .description(&self.description)
                    .key_usage(KeyUsageType::EncryptDecrypt)
                    .key_spec(KeySpec::SymmetricDefault)
                    .policy(self.policy.to_string())
                    .set_tags(Some(kms_tags(&tags)))
                    .send()
                    .await
                    .aws("kms:CreateKey")?;
                let meta = out
                    .key_metadata()
                    .ok_or_else(|| ResourceError::new("EmptyResponse", "CreateKey returned no key"))?;
                CustomerKey {
                    id: meta.key_id().to_string(),
                    arn: meta.arn().unwrap_or_default().to_string(),
                    disabled: false,
                    rotation: false,
                    policy: Some(self.policy.clone()),
                    tags: tags.iter().cloned().collect(),
                    // The alias may still name a key pending deletion (a destroy, then an up).
                    alias_target: self.describe(kms, &self.alias).await?.map(|m| m.key_id().to_string()),
                }
            }
        };
        let id = key.id.clone();
        if key.disabled {
            ctx.progress.step(&format!("enabling {} {id}", self.what));
            kms.enable_key().key_id(&id).send().await.aws("kms:EnableKey")?;
        }
        if !key.rotation {
            ctx.progress.step(&format!("turning on automatic rotation of {}", self.what));
            kms.enable_key_rotation().key_id(&id).send().await.aws("kms:EnableKeyRotation")?;
        }
        if key.policy.as_ref() != Some(&self.policy) {
            ctx.progress.step(&format!("restoring the policy of {}", self.what));
            kms.put_key_policy()
                .key_id(&id)
                .policy_name("default")
                .policy(self.policy.to_string())
                .send()
                .await
                .aws("kms:PutKeyPolicy")?;
        }
        let missing: Vec<(String, String)> = tags.iter().filter(|(k, v)| key.tags.get(k) != Some(v)).cloned().collect();
        if !missing.is_empty() {
            ctx.progress.step(&format!("tagging {} {id}", self.what));
            kms.tag_resource().key_id(&id).set_tags(Some(kms_tags(&missing))).send().await.aws("kms:TagResource")?;
        }
        let alias = &self.alias;
        match key.alias_target.as_deref() {
            Some(t) if t == id => {}
            Some(other) => {
                ctx.progress.step(&format!("pointing alias {alias} at key {id} (it named {other})"));
                kms.update_alias().alias_name(alias).target_key_id(&id).send().await.aws("kms:UpdateAlias")?;
            }
            None => {
                ctx.progress.step(&format!("creating alias {alias} → key {id}"));
                kms.create_alias().alias_name(alias).target_key_id(&id).send().await.aws("kms:CreateAlias")?;
            }
        }
        key.disabled = false;
        key.rotation = true;
        key.policy = Some(self.policy.clone());
        key.tags.extend(tags);
        key.alias_target = Some(id);
        Ok(key)
    }

    /// Deletes the alias if it names `k`, and schedules `k`'s deletion (AWS's wait: 7 to 30 days).
    pub async fn schedule_deletion(&self, ctx: &Ctx, kms: &Client, k: &CustomerKey) -> Result<()> {
        if k.alias_target.as_deref() == Some(k.id.as_str()) {
            kms.delete_alias().alias_name(&self.alias).send().await.aws("kms:DeleteAlias").ok_if_not_found()?;
        }
        let days = ctx.config.kms_deletion_window_days;
        ctx.progress.step(&format!("scheduling deletion of {} {} in {days} days", self.what, k.id));
        kms.schedule_key_deletion()
            .key_id(&k.id)
            .pending_window_in_days(days)
            .send()
            .await
            .aws("kms:ScheduleKeyDeletion")
            .ok_if_not_found()?;
        Ok(())
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

fn outputs_of(ctx: &Ctx, key: &CustomerKey) -> Outputs {
    Outputs::from([
        ("key_id".into(), json!(key.id)),
        ("key_arn".into(), json!(key.arn)),
        ("alias".into(), json!(ctx.names.kms_alias())),
    ])
}

/// The stack's key.
fn wanted(ctx: &Ctx) -> WantedKey {
    WantedKey {
        node: ID,
        alias: ctx.names.kms_alias(),
        description: description(ctx),
        policy: key_policy(&ctx.names.account, &ctx.config.region, &ctx.names.suffix),
        what: "the stack's KMS key".into(),
    }
}

#[async_trait]
impl Resource for Key {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let found = wanted(ctx).observe(ctx, &ctx.clients.kms, ctx.recorded_str("key_id")).await?;
        Ok(found.map(|(meta, key)| Observed { meta, key }))
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
        let drifts = wanted(ctx).drifts(ctx, &o.key, "the stack's key policy");
        Ok(Change::from_drifts(drifts))
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        outputs_of(ctx, &o.key)
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let key = wanted(ctx).ensure(ctx, &ctx.clients.kms, observed.map(|o| o.key)).await?;
        Ok(outputs_of(ctx, &key))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        wanted(ctx).schedule_deletion(ctx, &ctx.clients.kms, &o.key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};

    #[test]
    fn a_key_that_strays_is_named_in_words_and_one_as_wanted_is_not() {
        let ctx = ctx(ID, &[], &[]);
        let want = wanted(&ctx);
        let exact = CustomerKey {
            id: "k-1".into(),
            arn: "arn:aws:kms:us-east-1:123456789012:key/k-1".into(),
            disabled: false,
            rotation: true,
            policy: Some(want.policy.clone()),
            tags: ctx.tags(None, None).into_iter().collect(),
            alias_target: Some("k-1".into()),
        };
        assert!(want.drifts(&ctx, &exact, "the stack's key policy").is_empty());
        let strayed =
            CustomerKey { disabled: true, rotation: false, policy: None, alias_target: Some("k-0".into()), ..exact };
        let d = want.drifts(&ctx, &strayed, "the stack's key policy");
        assert_eq!(
            d.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            [
                "key state: disabled → enabled",
                "automatic rotation: off → on",
                "key policy: missing → the stack's key policy",
                "alias alias/payments-qa: key k-0 → key k-1",
            ]
        );
        assert_plain(&d.iter().collect::<Vec<_>>());
    }
}
