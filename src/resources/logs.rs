//! `logs.groups`: the log groups the functions, the API and Aurora write to — one per function,
//! one for API access logs, and `/aws/rds/cluster/<cluster>/postgresql` for Aurora's log export —
//! created before anything writes, so retention and encryption with the stack's key hold from
//! the first line (the service would otherwise create them unencrypted and kept forever). The
//! helpers below make the groups other nodes own the same way: API Gateway's execution logs
//! (`api.rest`) and its welcome group (`api.account-logging`).

use crate::aws::{AlreadyExistsExt, AwsResultExt, NotFoundExt};
use crate::names::FUNCTIONS;
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{counted, each_member, list, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use futures::FutureExt;
use serde_json::json;
use std::collections::BTreeMap;

pub struct LogGroups;

pub const ID: &str = "logs.groups";

#[derive(Debug, Clone)]
pub struct Group {
    pub arn: String,
    pub retention: Option<i32>,
    pub kms_key: Option<String>,
    pub tags: BTreeMap<String, String>,
}

pub struct Observed {
    /// By log group name.
    pub groups: BTreeMap<String, Group>,
}

pub fn group_names(ctx: &Ctx) -> Vec<String> {
    let mut v: Vec<String> = FUNCTIONS.iter().map(|f| ctx.names.function_log_group(f)).collect();
    v.push(ctx.names.api_log_group());
    // A canary's access log goes to the stage's group name + "/Canary" (API Gateway developer
    // guide, "Set up an API Gateway canary release deployment"): `shift` makes canaries.
    v.push(ctx.names.canary_log_group(&ctx.names.api_log_group()));
    v.push(ctx.names.db_log_group());
    v
}

/// A log group as CloudWatch Logs holds it, if it exists.
pub async fn observe_group(ctx: &Ctx, name: &str) -> Result<Option<Group>> {
    let logs = &ctx.clients.logs;
    let out = logs.describe_log_groups().log_group_name_prefix(name).send().await.aws("logs:DescribeLogGroups")?;
    let Some(g) = out.log_groups().iter().find(|g| g.log_group_name() == Some(name)) else { return Ok(None) };
    let arn = g.arn().unwrap_or_default().trim_end_matches(":*").to_string();
    let tags = logs.list_tags_for_resource().resource_arn(&arn).send().await.aws("logs:ListTagsForResource")?;
    Ok(Some(Group {
        arn,
        retention: g.retention_in_days(),
        kms_key: g.kms_key_id().map(str::to_string),
        tags: tags.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
    }))
}

/// A retention in words: `365 days`, or `forever` when the group has none.
fn retention_words(days: Option<i32>) -> String {
    days.map_or_else(|| "forever".to_string(), |n| counted(n.into(), "day"))
}

/// How a group differs from one made with `key`, the stack's retention and the node's tags.
pub fn group_drifts(ctx: &Ctx, name: &str, g: Option<&Group>, key: &str) -> Vec<Drift> {
    let retention = ctx.config.log_retention_days;
    let Some(g) = g else {
        let wanted = format!("kept {}, encrypted with {key}", retention_words(Some(retention)));
        return vec![Drift::missing(format!("log group {name}"), wanted)];
    };
    let mut d = Vec::new();
    if g.retention != Some(retention) {
        d.push(Drift::new(
            format!("log group {name} retention"),
            retention_words(g.retention),
            retention_words(Some(retention)),
        ));
    }
    if g.kms_key.as_deref() != Some(key) {
        let have = g.kms_key.as_deref().unwrap_or("none (CloudWatch Logs' own encryption)");
        d.push(Drift::new(format!("log group {name} encryption key"), have, key));
    }
    d.extend(ctx.tag_drift(&g.tags).map(|t| t.on(format!("log group {name}"))));
    d
}

/// Makes the group, or repairs it, with `key`, the stack's retention and the node's tags. Every
/// group a service writes to is made this way *before* it writes: otherwise the service makes it
/// on its first write, unencrypted and kept forever (Lambda's function groups, API Gateway's
/// execution logs and its welcome message, Aurora's log export).
pub async fn ensure_group(
    ctx: &Ctx,
    name: &str,
    have: Option<&Group>,
    key: &str,
    tags: &[(String, String)],
) -> Result<Group> {
    let logs = &ctx.clients.logs;
    let tags: std::collections::HashMap<String, String> = tags.iter().cloned().collect();
    let g = match have {
        Some(g) => g.clone(),
        None => {
            ctx.progress.step(&format!("creating log group {name}"));
            ctx.retry_while_propagating(&catalogue::LOGS_NEW_KEY, &format!("key {key}"), || {
                logs.create_log_group()
                    .log_group_name(name)
                    .kms_key_id(key)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .map(|r| r.aws("logs:CreateLogGroup").ok_if_exists())
            })
            .await?;
            observe_group(ctx, name)
                .await?
                .ok_or_else(|| ResourceError::new("NotFound", format!("log group {name} vanished after its create")))?
        }
    };
    if g.retention != Some(ctx.config.log_retention_days) {
        let days = retention_words(Some(ctx.config.log_retention_days));
        ctx.progress.step(&format!("setting the retention of log group {name} to {days}"));
        logs.put_retention_policy()
            .log_group_name(name)
            .retention_in_days(ctx.config.log_retention_days)
            .send()
            .await
            .aws("logs:PutRetentionPolicy")?;
    }
    if g.kms_key.as_deref() != Some(key) {
        ctx.progress.step(&format!("encrypting log group {name} with {key}"));
        logs.associate_kms_key().log_group_name(name).kms_key_id(key).send().await.aws("logs:AssociateKmsKey")?;
    }
    if tags.iter().any(|(k, v)| g.tags.get(k) != Some(v)) {
        ctx.progress.step(&format!("tagging log group {name}"));
        logs.tag_resource().resource_arn(&g.arn).set_tags(Some(tags.clone())).send().await.aws("logs:TagResource")?;
    }
    Ok(Group {
        retention: Some(ctx.config.log_retention_days),
        kms_key: Some(key.to_string()),
        tags: tags.into_iter().collect(),
        ..g
    })
}

/// Deletes a group; absent is fine.
pub async fn delete_group(ctx: &Ctx, name: &str) -> Result<()> {
    ctx.progress.step(&format!("deleting log group {name}"));
    ctx.clients
        .logs
        .delete_log_group()
        .log_group_name(name)
        .send()
        .await
        .aws("logs:DeleteLogGroup")
        .ok_if_not_found()?;
    Ok(())
}

#[async_trait]
impl Resource for LogGroups {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::kms::ID, key: "key_arn" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let names = group_names(ctx);
        let found = futures::future::try_join_all(names.iter().map(|name| observe_group(ctx, name))).await?;
        let groups: BTreeMap<String, Group> =
            names.into_iter().zip(found).filter_map(|(name, g)| Some((name, g?))).collect();
        Ok((!groups.is_empty()).then_some(Observed { groups }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let d = group_names(ctx).iter().flat_map(|name| group_drifts(ctx, name, o.groups.get(name), &key)).collect();
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        let arns: serde_json::Map<String, serde_json::Value> =
            o.groups.iter().map(|(n, g)| (n.clone(), json!(g.arn))).collect();
        Outputs::from([
            ("log_groups".into(), list(o.groups.keys().cloned())),
            ("log_group_arns".into(), serde_json::Value::Object(arns)),
        ])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let mut o = observed.unwrap_or(Observed { groups: BTreeMap::new() });
        let (key, have) = (&key, &o);
        let groups = each_member("log group", group_names(ctx), |name| async move {
            let g = ensure_group(ctx, &name, have.groups.get(&name), key, &ctx.tags(None, None)).await?;
            Ok((name, g))
        })
        .await?;
        o.groups.extend(groups);
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        each_member("log group", o.groups.keys(), |name| delete_group(ctx, name)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::ctx;

    #[test]
    fn a_group_drift_says_forever_and_names_the_keys() {
        let ctx = ctx(ID, LogGroups.reads(), &[]);
        let g = Group { arn: "arn".into(), retention: None, kms_key: None, tags: BTreeMap::new() };
        let drifts: Vec<String> =
            group_drifts(&ctx, "/aws/x", Some(&g), "key-1").iter().map(|d| d.to_string()).collect();
        assert_eq!(drifts[0], "log group /aws/x retention: forever → 365 days");
        assert_eq!(drifts[1], "log group /aws/x encryption key: none (CloudWatch Logs' own encryption) → key-1");
        assert!(drifts[2].starts_with("log group /aws/x tags: missing → "), "{}", drifts[2]);
        let missing = group_drifts(&ctx, "/aws/x", None, "key-1");
        assert_eq!(missing[0].to_string(), "log group /aws/x: missing → kept 365 days, encrypted with key-1");
    }
}
