//! `backup.plan`: the role AWS Backup assumes (`payments-backup-<suffix>`, AWS's managed service
//! role policies for backup and for restores), the plan `payments-<suffix>` with one daily rule
//! (05:00 UTC, recovery points kept `--backup-retention-days`, copied to the copy region's vault
//! with the same retention when there is one), and the selection of exactly the Aurora cluster
//! and the transactions table.
//!
//! Found by name (role, plan, selection) — the plan id recorded first. A selection cannot be
//! changed in place (AWS Backup has no UpdateBackupSelection): one that lost a resource is
//! deleted and made again. `plan` also names DynamoDB's advanced backup while it is off in the
//! region (an operator's prerequisite: see the module docs of `backup`).

use super::{
    plan_name, role_name, selection_name, tag_map, tags_of, COMPLETION_WINDOW_MINUTES, MANAGED_POLICIES, RULE,
    SCHEDULE, SCHEDULE_TIMEZONE, START_WINDOW_MINUTES,
};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::iam::{Role, ServiceRole};
use crate::resources::retry::catalogue;
use crate::resources::{
    counted, input, listed, or_none, Change, Ctx, Drift, Input, Outputs, Resource, ResourceError, Result,
};
use async_trait::async_trait;
use aws_sdk_backup::types::{BackupPlanInput, BackupRuleInput, BackupSelection, CopyAction, Lifecycle};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

pub const ID: &str = "backup.plan";

pub struct BackupPlan;

/// One rule as AWS Backup holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub vault: String,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub delete_after_days: Option<i64>,
    pub cold_after_days: Option<i64>,
    pub continuous: bool,
    /// Destination vault ARN → its DeleteAfterDays.
    pub copies: BTreeMap<String, Option<i64>>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub arn: String,
    pub rules: Vec<Rule>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Selection {
    pub id: String,
    pub role_arn: String,
    pub resources: BTreeSet<String>,
}

pub struct Observed {
    pub role: Option<Role>,
    pub plan: Option<Plan>,
    pub selection: Option<Selection>,
    /// DescribeRegionSettings' ResourceTypeManagementPreference["DynamoDB"], when read.
    pub dynamodb_advanced: Option<bool>,
}

/// AWS Backup's documented trust (the default service role's): the service, nothing else.
pub fn trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "backup.amazonaws.com" },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// The rule the stack wants, given the copy vault's ARN (empty: no copy).
pub fn wanted_rule(ctx: &Ctx, vault: &str, copy_vault_arn: &str) -> Rule {
    let days = i64::from(ctx.config.backup_retention_days);
    Rule {
        name: RULE.to_string(),
        vault: vault.to_string(),
        schedule: Some(SCHEDULE.to_string()),
        timezone: Some(SCHEDULE_TIMEZONE.to_string()),
        delete_after_days: Some(days),
        cold_after_days: None,
        continuous: false,
        copies: if copy_vault_arn.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([(copy_vault_arn.to_string(), Some(days))])
        },
    }
}

/// Where an ARN of a vault lives, for people: `us-west-2`.
fn region_of(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or(arn)
}

/// A selected resource as a person names it: `Aurora cluster payments-qa`, `table transactions-qa`.
pub fn described(arn: &str) -> String {
    if let Some(id) = arn.split(":cluster:").nth(1) {
        format!("Aurora cluster {id}")
    } else if let Some(name) = arn.split(":table/").nth(1) {
        format!("table {name}")
    } else {
        arn.to_string()
    }
}

fn days(d: Option<i64>) -> String {
    d.map_or_else(|| "never".to_string(), |d| counted(d, "day"))
}

/// How the rule AWS holds differs from the wanted one, in words.
pub fn rule_drifts(have: Option<&Rule>, want: &Rule) -> Vec<Drift> {
    let on = format!("rule {}", want.name);
    let Some(have) = have else {
        return vec![Drift::missing(on, format!("daily at 05:00 UTC, kept {}", days(want.delete_after_days)))];
    };
    let mut d = Vec::new();
    if have.schedule != want.schedule || have.timezone.as_deref().unwrap_or(SCHEDULE_TIMEZONE) != SCHEDULE_TIMEZONE {
        let tz = have.timezone.as_deref().unwrap_or(SCHEDULE_TIMEZONE);
        d.push(
            Drift::new(
                "schedule",
                format!("{} {tz}", or_none(have.schedule.as_deref())),
                format!("{SCHEDULE} {SCHEDULE_TIMEZONE}"),
            )
            .on(&on),
        );
    }
    if have.vault != want.vault {
        d.push(Drift::new("vault", &have.vault, &want.vault).on(&on));
    }
    if have.delete_after_days != want.delete_after_days {
        d.push(Drift::new("retention", days(have.delete_after_days), days(want.delete_after_days)).on(&on));
    }
    if have.cold_after_days.is_some() {
        d.push(Drift::new("cold storage", days(have.cold_after_days), "none").on(&on));
    }
    if have.continuous {
        d.push(Drift::new("continuous backup", "on", "off (the services' own point-in-time recovery)").on(&on));
    }
    for (arn, keep) in &want.copies {
        match have.copies.get(arn) {
            None => d.push(Drift::missing(format!("copy to {}", region_of(arn)), arn).on(&on)),
            Some(k) if k != keep => {
                d.push(Drift::new(format!("copy to {} retention", region_of(arn)), days(*k), days(*keep)).on(&on))
            }
            Some(_) => {}
        }
    }
    for arn in have.copies.keys().filter(|a| !want.copies.contains_key(*a)) {
        d.push(Drift::unexpected(format!("copy to {}", region_of(arn)), arn).on(&on));
    }
    d
}

fn rule_input(rule: &Rule) -> Result<BackupRuleInput> {
    let mut b = BackupRuleInput::builder()
        .rule_name(&rule.name)
        .target_backup_vault_name(&rule.vault)
        .set_schedule_expression(rule.schedule.clone())
        .set_schedule_expression_timezone(rule.timezone.clone())
        .start_window_minutes(START_WINDOW_MINUTES)
        .completion_window_minutes(COMPLETION_WINDOW_MINUTES)
        .enable_continuous_backup(false)
        .lifecycle(Lifecycle::builder().set_delete_after_days(rule.delete_after_days).build());
    for (arn, keep) in &rule.copies {
        b = b.copy_actions(
            CopyAction::builder()
                .destination_backup_vault_arn(arn)
                .lifecycle(Lifecycle::builder().set_delete_after_days(*keep).build())
                .build()
                .map_err(|e| ResourceError::new("InvalidRequest", e.to_string()))?,
        );
    }
    b.build().map_err(|e| ResourceError::new("InvalidRequest", e.to_string()))
}

fn plan_input(ctx: &Ctx, rule: &Rule) -> Result<BackupPlanInput> {
    BackupPlanInput::builder()
        .backup_plan_name(plan_name(&ctx.names))
        .rules(rule_input(rule)?)
        .build()
        .map_err(|e| ResourceError::new("InvalidRequest", e.to_string()))
}

/// The role AWS Backup assumes: AWS's managed service policies for backup and restore, nothing
/// else attached, no inline policy.
fn service_role(ctx: &Ctx) -> ServiceRole<'static> {
    ServiceRole {
        name: role_name(&ctx.names),
        description: format!("AWS Backup backs up and restores the payments stack {}", ctx.names.suffix),
        trust: trust_policy(),
        inline: None,
        managed: &MANAGED_POLICIES,
        max_session_seconds: None,
    }
}

fn rule_of(r: &aws_sdk_backup::types::BackupRule) -> Rule {
    Rule {
        name: r.rule_name().to_string(),
        vault: r.target_backup_vault_name().to_string(),
        schedule: r.schedule_expression().map(str::to_string),
        timezone: r.schedule_expression_timezone().map(str::to_string),
        delete_after_days: r.lifecycle().and_then(|l| l.delete_after_days()),
        cold_after_days: r.lifecycle().and_then(|l| l.move_to_cold_storage_after_days()),
        continuous: r.enable_continuous_backup() == Some(true),
        copies: r
            .copy_actions()
            .iter()
            .map(|c| (c.destination_backup_vault_arn().to_string(), c.lifecycle().and_then(|l| l.delete_after_days())))
            .collect(),
    }
}

/// The plan: by the recorded id, else by name (a run killed after CreateBackupPlan).
async fn observe_plan(ctx: &Ctx) -> Result<Option<Plan>> {
    let backup = &ctx.clients.backup;
    let mut id = None;
    if let Some(recorded) = ctx.recorded_str("plan_id") {
        let found = backup.get_backup_plan().backup_plan_id(recorded).send().await.aws("backup:GetBackupPlan");
        // A deleted plan still answers GetBackupPlan, with its DeletionDate.
        if let Some(p) = found.ok_if_not_found()? {
            if p.deletion_date().is_none() {
                id = Some(recorded.to_string());
            }
        }
    }
    if id.is_none() {
        let name = plan_name(&ctx.names);
        let mut pages = backup.list_backup_plans().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.aws("backup:ListBackupPlans")?;
            if let Some(p) = page
                .backup_plans_list()
                .iter()
                .find(|p| p.backup_plan_name() == Some(name.as_str()) && p.deletion_date().is_none())
            {
                id = p.backup_plan_id().map(str::to_string);
                break;
            }
        }
    }
    let Some(id) = id else { return Ok(None) };
    let Some(out) =
        backup.get_backup_plan().backup_plan_id(&id).send().await.aws("backup:GetBackupPlan").ok_if_not_found()?
    else {
        return Ok(None);
    };
    let arn = out.backup_plan_arn().unwrap_or_default().to_string();
    let tags = backup.list_tags().resource_arn(&arn).send().await.aws("backup:ListTags")?;
    Ok(Some(Plan {
        id,
        arn,
        rules: out.backup_plan().map(|p| p.rules().iter().map(rule_of).collect()).unwrap_or_default(),
        tags: tags_of(tags.tags()),
    }))
}

/// The selections of the plan: (id, name).
async fn selections(ctx: &Ctx, plan_id: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut pages = ctx.clients.backup.list_backup_selections().backup_plan_id(plan_id).into_paginator().send();
    while let Some(page) = pages.next().await {
        let Some(page) = page.aws("backup:ListBackupSelections").ok_if_not_found()? else { break };
        out.extend(
            page.backup_selections_list().iter().filter_map(|s| {
                Some((s.selection_id()?.to_string(), s.selection_name().unwrap_or_default().to_string()))
            }),
        );
    }
    Ok(out)
}

async fn observe_selection(ctx: &Ctx, plan_id: &str) -> Result<Option<Selection>> {
    let name = selection_name(&ctx.names);
    let Some((id, _)) = selections(ctx, plan_id).await?.into_iter().find(|(_, n)| *n == name) else {
        return Ok(None);
    };
    let Some(out) = ctx
        .clients
        .backup
        .get_backup_selection()
        .backup_plan_id(plan_id)
        .selection_id(&id)
        .send()
        .await
        .aws("backup:GetBackupSelection")
        .ok_if_not_found()?
    else {
        return Ok(None);
    };
    let Some(s) = out.backup_selection() else { return Ok(None) };
    Ok(Some(Selection {
        id,
        role_arn: s.iam_role_arn().to_string(),
        resources: s.resources().iter().cloned().collect(),
    }))
}

/// Whether AWS Backup fully manages DynamoDB backups in the region (advanced backup); None when
/// the caller may not read the setting (then `plan` says nothing of it).
pub async fn dynamodb_advanced(client: &aws_sdk_backup::Client) -> Result<Option<bool>> {
    match client.describe_region_settings().send().await.aws("backup:DescribeRegionSettings") {
        Ok(s) => {
            Ok(Some(s.resource_type_management_preference().and_then(|m| m.get("DynamoDB").copied()).unwrap_or(false)))
        }
        Err(e) if e.code.as_deref().is_some_and(|c| c.starts_with("AccessDenied")) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The resources the selection must cover: exactly the cluster and the table.
fn wanted_resources(ctx: &Ctx) -> Result<BTreeSet<String>> {
    Ok(BTreeSet::from([
        ctx.input(crate::resources::database::cluster::ID, "cluster_arn")?,
        ctx.input(crate::resources::tables::ID, "table_arn")?,
    ]))
}

fn role_drifts(ctx: &Ctx, role: Option<&Role>) -> Vec<Drift> {
    service_role(ctx).drifts(ctx, role, "AWS Backup", "")
}

/// What the selection lacks or holds beyond `want`, in words.
pub fn selection_drifts(
    ctx: &Ctx,
    have: Option<&Selection>,
    want: &BTreeSet<String>,
    role_arn: Option<&str>,
) -> Vec<Drift> {
    let on = format!("selection {}", selection_name(&ctx.names));
    let names = |arns: &BTreeSet<String>| {
        let mut n: Vec<String> = arns.iter().map(|a| described(a)).collect();
        n.sort();
        listed(n)
    };
    let wanted = names(want);
    let Some(s) = have else { return vec![Drift::missing(on, wanted)] };
    let mut d = Vec::new();
    if &s.resources != want {
        d.push(Drift::new("resources", names(&s.resources), wanted).on(&on));
    }
    if let Some(role) = role_arn {
        if s.role_arn != role {
            d.push(Drift::new("role", &s.role_arn, role).on(&on));
        }
    }
    d
}

const READS: &[Input] = &[
    input(super::vault::ID, "vault_name"),
    input(super::vault::ID, "copy_vault_arn"),
    input(crate::resources::database::cluster::ID, "cluster_arn"),
    input(crate::resources::tables::ID, "table_arn"),
];

#[async_trait]
impl Resource for BackupPlan {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    fn reads(&self) -> &'static [Input] {
        READS
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let role = service_role(ctx);
        let (role, plan) = futures::try_join!(role.observe(ctx), observe_plan(ctx))?;
        let selection = match &plan {
            Some(p) => observe_selection(ctx, &p.id).await?,
            None => None,
        };
        if role.is_none() && plan.is_none() {
            return Ok(None);
        }
        let dynamodb_advanced = dynamodb_advanced(&ctx.clients.backup).await?;
        Ok(Some(Observed { role, plan, selection, dynamodb_advanced }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let mut d = role_drifts(ctx, o.role.as_ref());
        let name = plan_name(&ctx.names);
        match &o.plan {
            None => d.push(Drift::missing(format!("plan {name}"), "a daily rule")),
            Some(p) => {
                let want = wanted_rule(
                    ctx,
                    &ctx.input(super::vault::ID, "vault_name")?,
                    &ctx.input(super::vault::ID, "copy_vault_arn")?,
                );
                let have = p.rules.iter().find(|r| r.name == RULE);
                d.extend(rule_drifts(have, &want).into_iter().map(|x| x.on(format!("plan {name}"))));
                for other in p.rules.iter().filter(|r| r.name != RULE) {
                    d.push(Drift::unexpected(format!("plan {name} rule {}", other.name), "exists"));
                }
                d.extend(ctx.tag_drift(&p.tags).map(|t| t.on(format!("plan {name}"))));
                d.extend(selection_drifts(
                    ctx,
                    o.selection.as_ref(),
                    &wanted_resources(ctx)?,
                    o.role.as_ref().map(|r| r.arn.as_str()),
                ));
            }
        }
        if o.dynamodb_advanced == Some(false) {
            d.push(Drift::new("DynamoDB advanced backup in this region (account-wide)", "off", "on").waiting(
                "an operator's decision, as it changes every DynamoDB backup of the account in the region: \
                     `aws backup update-region-settings --resource-type-management-preference DynamoDB=true`; \
                     until then the table's recovery points use the table's key and are not copied",
            ));
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([
            ("plan_id".into(), json!(o.plan.as_ref().map(|p| p.id.clone()).unwrap_or_default())),
            ("plan_arn".into(), json!(o.plan.as_ref().map(|p| p.arn.clone()).unwrap_or_default())),
            ("selection_id".into(), json!(o.selection.as_ref().map(|s| s.id.clone()).unwrap_or_default())),
            ("role_arn".into(), json!(o.role.as_ref().map(|r| r.arn.clone()).unwrap_or_default())),
        ])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let o = observed.unwrap_or(Observed { role: None, plan: None, selection: None, dynamodb_advanced: None });
        let role = service_role(ctx).ensure(ctx, o.role).await?;
        let backup = &ctx.clients.backup;
        let want = wanted_rule(
            ctx,
            &ctx.input(super::vault::ID, "vault_name")?,
            &ctx.input(super::vault::ID, "copy_vault_arn")?,
        );
        let tags = ctx.tags(None, None);
        let name = plan_name(&ctx.names);
        let plan = match o.plan {
            None => {
                ctx.progress.step(&format!("creating backup plan {name}"));
                let out = backup
                    .create_backup_plan()
                    .backup_plan(plan_input(ctx, &want)?)
                    .set_backup_plan_tags(Some(tag_map(&tags)))
                    .creator_request_id(format!("tapctl-{}-{name}", ctx.names.account))
                    .send()
                    .await
                    .aws("backup:CreateBackupPlan")?;
                Plan {
                    id: out.backup_plan_id().unwrap_or_default().to_string(),
                    arn: out.backup_plan_arn().unwrap_or_default().to_string(),
                    rules: vec![want.clone()],
                    tags: tags.iter().cloned().collect(),
                }
            }
            Some(p) => {
                let have = p.rules.iter().find(|r| r.name == RULE);
                if !rule_drifts(have, &want).is_empty() || p.rules.len() != 1 {
                    ctx.progress.step(&format!("updating backup plan {name}"));
                    backup
                        .update_backup_plan()
                        .backup_plan_id(&p.id)
                        .backup_plan(plan_input(ctx, &want)?)
                        .send()
                        .await
                        .aws("backup:UpdateBackupPlan")?;
                }
                if ctx.tag_drift(&p.tags).is_some() {
                    backup
                        .tag_resource()
                        .resource_arn(&p.arn)
                        .set_tags(Some(tag_map(&tags)))
                        .send()
                        .await
                        .aws("backup:TagResource")?;
                }
                Plan { rules: vec![want.clone()], tags: tags.iter().cloned().collect(), ..p }
            }
        };
        let resources = wanted_resources(ctx)?;
        let selection = match o.selection {
            Some(s) if selection_drifts(ctx, Some(&s), &resources, Some(&role.arn)).is_empty() => s,
            stale => {
                if let Some(s) = stale {
                    // No UpdateBackupSelection: the changed selection goes, a new one is made.
                    ctx.progress.step(&format!("replacing selection {} (it changed)", selection_name(&ctx.names)));
                    backup
                        .delete_backup_selection()
                        .backup_plan_id(&plan.id)
                        .selection_id(&s.id)
                        .send()
                        .await
                        .aws("backup:DeleteBackupSelection")
                        .ok_if_not_found()?;
                }
                ctx.progress.step(&format!("selecting {} for backup", listed(resources.iter().map(|a| described(a)))));
                let selection = BackupSelection::builder()
                    .selection_name(selection_name(&ctx.names))
                    .iam_role_arn(&role.arn)
                    .set_resources(Some(resources.iter().cloned().collect()))
                    .build()
                    .map_err(|e| ResourceError::new("InvalidRequest", e.to_string()))?;
                let out = ctx
                    .retry_while_propagating(
                        &catalogue::BACKUP_SELECTION_ROLE,
                        &format!("role {}", role.arn),
                        || async {
                            backup
                                .create_backup_selection()
                                .backup_plan_id(&plan.id)
                                .backup_selection(selection.clone())
                                .send()
                                .await
                                .aws("backup:CreateBackupSelection")
                        },
                    )
                    .await;
                let id = match out {
                    Ok(o) => o.selection_id().unwrap_or_default().to_string(),
                    Err(e) if e.code.as_deref() == Some("AlreadyExistsException") => {
                        observe_selection(ctx, &plan.id).await?.map(|s| s.id).unwrap_or_default()
                    }
                    Err(e) => return Err(e),
                };
                Selection { id, role_arn: role.arn.clone(), resources }
            }
        };
        Ok(self.outputs(
            ctx,
            &Observed { role: Some(role), plan: Some(plan), selection: Some(selection), dynamodb_advanced: None },
        ))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let backup = &ctx.clients.backup;
        if let Some(p) = &o.plan {
            // AWS Backup refuses to delete a plan that still has selections: every one goes first.
            for (id, name) in selections(ctx, &p.id).await? {
                ctx.progress.step(&format!("deleting selection {name}"));
                backup
                    .delete_backup_selection()
                    .backup_plan_id(&p.id)
                    .selection_id(&id)
                    .send()
                    .await
                    .aws("backup:DeleteBackupSelection")
                    .ok_if_not_found()?;
            }
            ctx.progress.step(&format!("deleting backup plan {}", plan_name(&ctx.names)));
            backup
                .delete_backup_plan()
                .backup_plan_id(&p.id)
                .send()
                .await
                .aws("backup:DeleteBackupPlan")
                .ok_if_not_found()?;
        }
        if o.role.is_some() {
            ctx.progress.step(&format!("deleting role {}", role_name(&ctx.names)));
            crate::resources::iam::delete_role(ctx, &role_name(&ctx.names)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing;

    fn ctx() -> Ctx {
        testing::ctx(ID, READS, &[])
    }

    #[test]
    fn the_wanted_rule_keeps_points_the_retention_and_copies_them_for_as_long() {
        let c = ctx();
        let r = wanted_rule(&c, "payments-qa", "arn:aws:backup:us-west-2:123456789012:backup-vault:payments-qa");
        assert_eq!(r.delete_after_days, Some(35));
        assert_eq!(r.schedule.as_deref(), Some("cron(0 5 ? * * *)"));
        assert_eq!(r.copies.values().collect::<Vec<_>>(), vec![&Some(35)]);
        assert!(wanted_rule(&c, "payments-qa", "").copies.is_empty());
        assert!(!r.continuous && r.cold_after_days.is_none());
    }

    #[test]
    fn rule_drifts_read_as_an_operator_writes_them() {
        let c = ctx();
        let copy = "arn:aws:backup:us-west-2:123456789012:backup-vault:payments-qa";
        let want = wanted_rule(&c, "payments-qa", copy);
        let mut have = want.clone();
        have.delete_after_days = Some(7);
        have.copies.clear();
        let d = rule_drifts(Some(&have), &want);
        let text: Vec<String> = d.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "rule daily retention: 7 days → 35 days".to_string(),
                format!("rule daily copy to us-west-2: missing → {copy}"),
            ]
        );
        testing::assert_plain(&d.iter().collect::<Vec<_>>());
        assert!(rule_drifts(Some(&want), &want).is_empty());
        assert_eq!(rule_drifts(None, &want)[0].to_string(), "rule daily: missing → daily at 05:00 UTC, kept 35 days");
    }

    #[test]
    fn a_selection_that_lost_a_resource_names_it() {
        let c = ctx();
        let cluster = "arn:aws:rds:us-east-1:123456789012:cluster:payments-qa".to_string();
        let table = "arn:aws:dynamodb:us-east-1:123456789012:table/transactions-qa".to_string();
        let want = BTreeSet::from([cluster.clone(), table.clone()]);
        let have = Selection { id: "s".into(), role_arn: "r".into(), resources: BTreeSet::from([table]) };
        let d = selection_drifts(&c, Some(&have), &want, Some("r"));
        assert_eq!(
            d[0].to_string(),
            "selection payments-qa resources: table transactions-qa → Aurora cluster payments-qa, table transactions-qa"
        );
        assert_eq!(
            selection_drifts(&c, None, &want, None)[0].to_string(),
            "selection payments-qa: missing → Aurora cluster payments-qa, table transactions-qa"
        );
    }
}
