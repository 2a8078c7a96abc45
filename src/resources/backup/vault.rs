//! `backup.vault`: the AWS Backup vault `payments-<suffix>` in the stack's region, encrypted with
//! the stack's key; with `--backup-copy-region R`, a customer key in R (rotation on, alias
//! `alias/payments-<suffix>-backup`) and a vault of the same name in R encrypted with it (a KMS
//! key is regional: the stack's key cannot encrypt anything in R).
//!
//! Found by name (vaults, the key's alias) and else by tags (the key: a run killed between
//! CreateKey and CreateAlias). A vault's key cannot be changed: another key is a Replace, which
//! tapctl refuses (the vault holds the backups). `destroy` deletes every recovery point of both
//! vaults (DeleteRecoveryPoint is asynchronous: it waits until each vault is empty), the vaults,
//! and schedules the copy key's deletion.

use super::{backup_in, copy_key_alias, kms_in, tag_map, tags_of, vault_name};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::kms::{CustomerKey, WantedKey};
use crate::resources::retry::catalogue;
use crate::resources::{input, Change, Ctx, Drift, Input, Outputs, Resource, ResourceError, Result};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const ID: &str = "backup.vault";

pub struct BackupVault;

/// A vault as AWS Backup describes it.
#[derive(Debug, Clone)]
pub struct Vault {
    pub arn: String,
    pub key_arn: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// What the copy region holds of this stack.
#[derive(Debug, Clone, Default)]
pub struct CopySide {
    pub key: Option<CustomerKey>,
    pub vault: Option<Vault>,
}

pub struct Observed {
    pub primary: Option<Vault>,
    /// The wanted copy region's side, when one is wanted.
    pub copy: Option<(String, CopySide)>,
    /// A copy region recorded by an earlier run that is no longer wanted, and what it still holds.
    pub stale: Option<(String, CopySide)>,
}

/// The copy key's policy: the account administers it through IAM and may use it only through
/// AWS Backup (copies into the vault) and the services that restore from it (RDS, DynamoDB) in
/// that region.
pub fn copy_key_policy(account: &str, region: &str, suffix: &str) -> Value {
    let via: Vec<String> =
        ["backup", "rds", "dynamodb"].iter().map(|s| format!("{s}.{region}.amazonaws.com")).collect();
    json!({
        "Version": "2012-10-17",
        "Id": format!("payments-{suffix}-backup"),
        "Statement": [
            {
                "Sid": "AccountAdministrationThroughIam",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": crate::resources::kms::ADMINISTRATION,
                "Resource": "*"
            },
            {
                "Sid": "UseThroughBackupAndRestoresOnly",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": { "kms:CallerAccount": account },
                    "ForAnyValue:StringEquals": { "kms:ViaService": via }
                }
            }
        ]
    })
}

async fn describe_vault(client: &aws_sdk_backup::Client, name: &str) -> Result<Option<Vault>> {
    let Some(v) = client
        .describe_backup_vault()
        .backup_vault_name(name)
        .send()
        .await
        .aws("backup:DescribeBackupVault")
        .ok_if_not_found()?
    else {
        return Ok(None);
    };
    let arn = v.backup_vault_arn().unwrap_or_default().to_string();
    let tags = client.list_tags().resource_arn(&arn).send().await.aws("backup:ListTags")?;
    Ok(Some(Vault { key_arn: v.encryption_key_arn().map(str::to_string), tags: tags_of(tags.tags()), arn }))
}

/// The copy region's key: used only through AWS Backup and the restoring services there.
fn copy_key(ctx: &Ctx, region: &str) -> WantedKey {
    WantedKey {
        node: ID,
        alias: copy_key_alias(&ctx.names),
        description: format!("tapctl payments stack {}: encrypts the backup copies in {region}", ctx.names.suffix),
        policy: copy_key_policy(&ctx.names.account, region, &ctx.names.suffix),
        what: format!("the backup copy key in {region}"),
    }
}

async fn observe_side(ctx: &Ctx, region: &str) -> Result<CopySide> {
    let (kms, backup, name) = (kms_in(ctx, region), backup_in(ctx, region), vault_name(&ctx.names));
    let wanted = copy_key(ctx, region);
    let (key, vault) = futures::try_join!(wanted.observe(ctx, &kms, None), describe_vault(&backup, &name))?;
    let key = key.map(|(_, k)| k);
    Ok(CopySide { key, vault })
}

/// The copy region the last run recorded, when it is not the wanted one.
fn stale_region(ctx: &Ctx) -> Option<String> {
    let recorded = ctx.recorded_str("copy_region").filter(|r| !r.is_empty())?;
    (ctx.config.backup_copy_region.as_deref() != Some(recorded)).then(|| recorded.to_string())
}

fn copy_side_drifts(ctx: &Ctx, region: &str, side: &CopySide) -> Vec<Drift> {
    let mut d = Vec::new();
    let alias = copy_key_alias(&ctx.names);
    match &side.key {
        None => d.push(Drift::missing(format!("key {alias} in {region}"), "a customer key with rotation")),
        Some(k) => {
            let on = format!("copy key in {region}");
            let drifts = copy_key(ctx, region).drifts(ctx, k, "use through AWS Backup, RDS and DynamoDB only");
            d.extend(drifts.into_iter().map(|x| x.on(&on)));
        }
    }
    let name = vault_name(&ctx.names);
    match &side.vault {
        None => d.push(Drift::missing(format!("copy vault {name} in {region}"), "encrypted with the copy key")),
        Some(v) => {
            d.extend(ctx.tag_drift(&v.tags).map(|t| t.on(format!("copy vault {name} in {region}"))));
        }
    }
    d
}

/// Makes the vault `payments-<suffix>` in `client`'s region with `key_arn`, or tags the one
/// there. CreatorRequestId makes a retried create of a killed run idempotent.
async fn ensure_vault(
    ctx: &Ctx,
    client: &aws_sdk_backup::Client,
    where_: &str,
    have: Option<Vault>,
    key_arn: &str,
) -> Result<Vault> {
    let name = vault_name(&ctx.names);
    let tags = ctx.tags(None, None);
    match have {
        Some(v) => {
            if ctx.tag_drift(&v.tags).is_some() {
                ctx.progress.step(&format!("tagging vault {name} ({where_})"));
                client
                    .tag_resource()
                    .resource_arn(&v.arn)
                    .set_tags(Some(tag_map(&tags)))
                    .send()
                    .await
                    .aws("backup:TagResource")?;
            }
            Ok(Vault { tags: tags.into_iter().collect(), ..v })
        }
        None => {
            ctx.progress.step(&format!("creating backup vault {name} ({where_})"));
            let out = client
                .create_backup_vault()
                .backup_vault_name(&name)
                .encryption_key_arn(key_arn)
                .set_backup_vault_tags(Some(tag_map(&tags)))
                .creator_request_id(format!("tapctl-{}-{name}", ctx.names.account))
                .send()
                .await
                .aws("backup:CreateBackupVault");
            let arn = match out {
                Ok(o) => o.backup_vault_arn().unwrap_or_default().to_string(),
                // A killed run made it: adopt it (its key is checked on the next plan).
                Err(e) if e.is_already_exists() => {
                    describe_vault(client, &name).await?.map(|v| v.arn).unwrap_or_default()
                }
                Err(e) => return Err(e.into()),
            };
            Ok(Vault { arn, key_arn: Some(key_arn.to_string()), tags: tags.into_iter().collect() })
        }
    }
}

/// Deletes every recovery point of the vault `name` and waits until AWS reports none
/// (DeleteRecoveryPoint only starts the deletion: the point stays, status DELETING, for a while).
pub async fn empty_vault(ctx: &Ctx, client: &aws_sdk_backup::Client, name: &str, where_: &str) -> Result<()> {
    let points = |client: aws_sdk_backup::Client| async move {
        let mut arns = Vec::new();
        let mut pages = client.list_recovery_points_by_backup_vault().backup_vault_name(name).into_paginator().send();
        while let Some(page) = pages.next().await {
            let Some(page) = page.aws("backup:ListRecoveryPointsByBackupVault").ok_if_not_found()? else {
                return Ok::<_, ResourceError>(vec![]);
            };
            arns.extend(page.recovery_points().iter().filter_map(|p| p.recovery_point_arn().map(str::to_string)));
        }
        Ok(arns)
    };
    let first = points(client.clone()).await?;
    if first.is_empty() {
        return Ok(());
    }
    ctx.progress.step(&format!("deleting {} recovery points of vault {name} ({where_})", first.len()));
    for arn in &first {
        client
            .delete_recovery_point()
            .backup_vault_name(name)
            .recovery_point_arn(arn)
            .send()
            .await
            .aws("backup:DeleteRecoveryPoint")
            .ok_if_not_found()?;
    }
    ctx.until_gone(&format!("the recovery points of vault {name} ({where_})"), ctx.waits.table, || {
        let client = client.clone();
        async move {
            let left = points(client.clone()).await?;
            // A point a late job wrote after the first listing is deleted too.
            for arn in &left {
                client
                    .delete_recovery_point()
                    .backup_vault_name(name)
                    .recovery_point_arn(arn)
                    .send()
                    .await
                    .aws("backup:DeleteRecoveryPoint")
                    .ok_if_not_found()?;
            }
            Ok((!left.is_empty()).then(|| format!("{} recovery points left", left.len())))
        }
    })
    .await
}

/// Empties and deletes the vault `name` in `client`'s region; absent is success.
async fn delete_vault(ctx: &Ctx, client: &aws_sdk_backup::Client, where_: &str) -> Result<()> {
    let name = vault_name(&ctx.names);
    empty_vault(ctx, client, &name, where_).await?;
    ctx.progress.step(&format!("deleting backup vault {name} ({where_})"));
    ctx.retry_while_propagating(&catalogue::BACKUP_VAULT_EMPTYING, &format!("vault {name}"), || async {
        client
            .delete_backup_vault()
            .backup_vault_name(&name)
            .send()
            .await
            .aws("backup:DeleteBackupVault")
            .ok_if_not_found()
    })
    .await?;
    Ok(())
}

async fn delete_side(ctx: &Ctx, region: &str, side: CopySide) -> Result<()> {
    if side.vault.is_some() {
        delete_vault(ctx, &backup_in(ctx, region), region).await?;
    }
    if let Some(k) = side.key {
        let kms = kms_in(ctx, region);
        copy_key(ctx, region).schedule_deletion(ctx, &kms, &k).await?;
    }
    Ok(())
}

const READS: &[Input] = &[input(crate::resources::kms::ID, "key_arn")];

#[async_trait]
impl Resource for BackupVault {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    fn reads(&self) -> &'static [Input] {
        READS
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let primary = describe_vault(&ctx.clients.backup, &vault_name(&ctx.names)).await?;
        let copy = match &ctx.config.backup_copy_region {
            Some(r) => Some((r.clone(), observe_side(ctx, r).await?)),
            None => None,
        };
        let stale = match stale_region(ctx) {
            Some(r) => Some((r.clone(), observe_side(ctx, &r).await?)),
            None => None,
        };
        let nothing_in = |s: &Option<(String, CopySide)>| {
            s.as_ref().is_none_or(|(_, side)| side.key.is_none() && side.vault.is_none())
        };
        if primary.is_none() && nothing_in(&copy) && nothing_in(&stale) {
            return Ok(None);
        }
        Ok(Some(Observed { primary, copy, stale }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let name = vault_name(&ctx.names);
        let mut d = Vec::new();
        match &o.primary {
            None => d.push(Drift::missing(format!("vault {name}"), "encrypted with the stack's key")),
            Some(v) => {
                // Read as an input when the key node ran in this run; `destroy` has no inputs.
                if let Ok(key) = ctx.input(crate::resources::kms::ID, "key_arn") {
                    if v.key_arn.as_deref() != Some(key.as_str()) {
                        return Ok(Change::Replace(Drift::new(
                            format!("vault {name} encryption key"),
                            v.key_arn.as_deref().unwrap_or("AWS Backup's own key"),
                            format!("the stack's key {key}"),
                        )));
                    }
                }
                d.extend(ctx.tag_drift(&v.tags).map(|t| t.on(format!("vault {name}"))));
            }
        }
        match (&ctx.config.backup_copy_region, &o.copy) {
            (Some(r), Some((_, side))) => d.extend(copy_side_drifts(ctx, r, side)),
            (Some(r), None) => {
                d.push(Drift::missing(format!("copy vault {name} in {r}"), "encrypted with a key there"))
            }
            (None, _) => {}
        }
        if let Some((r, side)) = &o.stale {
            if side.vault.is_some() {
                d.push(Drift::unexpected(format!("copy vault {name} in {r}"), "exists (no --backup-copy-region)"));
            }
            if side.key.is_some() {
                d.push(Drift::unexpected(format!("key {} in {r}", copy_key_alias(&ctx.names)), "exists"));
            }
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        let copy = o.copy.as_ref();
        Outputs::from([
            ("vault_name".into(), json!(vault_name(&ctx.names))),
            ("vault_arn".into(), json!(o.primary.as_ref().map(|v| v.arn.clone()).unwrap_or_default())),
            ("copy_region".into(), json!(ctx.config.backup_copy_region.clone().unwrap_or_default())),
            (
                "copy_vault_arn".into(),
                json!(copy.and_then(|(_, s)| s.vault.as_ref()).map(|v| v.arn.clone()).unwrap_or_default()),
            ),
            (
                "copy_key_arn".into(),
                json!(copy.and_then(|(_, s)| s.key.as_ref()).map(|k| k.arn.clone()).unwrap_or_default()),
            ),
        ])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let o = observed.unwrap_or(Observed { primary: None, copy: None, stale: None });
        let key = ctx.input(crate::resources::kms::ID, "key_arn")?;
        let primary = ensure_vault(ctx, &ctx.clients.backup, &ctx.config.region, o.primary, &key).await?;
        let copy = match &ctx.config.backup_copy_region {
            Some(r) => {
                let side = o.copy.map(|(_, s)| s).unwrap_or_default();
                let kms = kms_in(ctx, r);
                let k = copy_key(ctx, r).ensure(ctx, &kms, side.key).await?;
                let vault = match side.vault {
                    Some(v) if v.key_arn.as_deref().is_some_and(|a| a != k.arn) => {
                        return Err(ResourceError::new(
                            "ReplaceRefused",
                            format!(
                                "the copy vault {} in {r} is encrypted with {}, not the copy key {}: a vault's key \
                                 cannot change, and it holds backups",
                                vault_name(&ctx.names),
                                v.key_arn.unwrap_or_default(),
                                k.arn
                            ),
                        ));
                    }
                    v => ensure_vault(ctx, &backup_in(ctx, r), r, v, &k.arn).await?,
                };
                Some((r.clone(), CopySide { key: Some(k), vault: Some(vault) }))
            }
            None => None,
        };
        if let Some((r, side)) = o.stale {
            // The copies stopped (--backup-copy-region removed or changed): what tapctl made there
            // goes, as a destroy would remove it.
            delete_side(ctx, &r, side).await?;
        }
        Ok(self.outputs(ctx, &Observed { primary: Some(primary), copy, stale: None }))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        if o.primary.is_some() {
            delete_vault(ctx, &ctx.clients.backup, &ctx.config.region).await?;
        }
        for (r, side) in o.copy.into_iter().chain(o.stale) {
            delete_side(ctx, &r, side).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_key_is_used_only_through_backup_and_the_restoring_services_of_its_region() {
        let p = copy_key_policy("123456789012", "us-west-2", "qa");
        let use_statement = &p["Statement"][1];
        assert_eq!(
            use_statement["Condition"]["ForAnyValue:StringEquals"]["kms:ViaService"],
            json!([
                "backup.us-west-2.amazonaws.com",
                "rds.us-west-2.amazonaws.com",
                "dynamodb.us-west-2.amazonaws.com"
            ])
        );
        assert_eq!(p["Statement"][0]["Action"].as_array().map(|a| a.len()), Some(15));
        assert!(!p.to_string().contains("\"kms:*\""));
    }
}
