//! `iam.roles`: one execution role per function, least privilege. Each role trusts only
//! `lambda.amazonaws.com`, and only on behalf of this account (`aws:SourceAccount`); its one
//! inline policy names exact ARNs — the table and the index it queries, the audit bucket's
//! `audit/` prefix, the topic, the parameter path, each secret, the key (only through the
//! services that use it, `kms:ViaService`). `*` appears only where AWS offers no resource-level
//! permission, each justified beside it.
//!
//! No AWS managed policy is attached: AWSLambdaVPCAccessExecutionRole grants `logs:*` writes on
//! every log group of the account, wider than the function's own group.
//!
//! The master secret is named only by rotate-secret's policy (the migrator: it rotates the
//! secret and owns the schema). process signs in as its own login (`iam.db-connect`) and may
//! invoke exactly rotate-secret's `blue` and `green` aliases, to have the schema migrated. While
//! an alias of process still runs code published before the logins, process keeps reading the
//! master secret ([`db_connect::TRANSITIONAL_SID`]; the transition is described in `db_connect`).

pub mod db_connect;

use crate::aws::{AlreadyExistsExt, AwsResultExt, NotFoundExt};
use crate::names::{FUNCTIONS, MIGRATOR_FUNCTION};
use crate::resources::Outputs;
use crate::resources::{
    each_member, listed, policy_difference, principals, Change, Ctx, Drift, Input, Resource, ResourceError, Result,
};
use crate::traffic::Color;
use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub struct Roles;

pub const ID: &str = "iam.roles";
/// The name of each role's inline policy.
pub const POLICY: &str = "payments-least-privilege";

#[derive(Debug, Clone)]
pub struct Role {
    pub arn: String,
    /// AWS's unique id: a role deleted and made again under the same name keeps its ARN and
    /// gets a new id.
    pub id: String,
    pub trust: Value,
    pub policy: Option<Value>,
    pub attached: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

pub struct Observed {
    /// By function.
    pub roles: BTreeMap<&'static str, Role>,
    /// The aliases of process that run code published before the database logins, in words
    /// (`db_connect::aliases_running_code_before_logins`): while any does, process's role keeps
    /// reading the master secret.
    pub before_logins: Vec<String>,
}

/// A role an AWS service assumes for the stack (Lambda for a function, VPC Flow Logs,
/// CloudTrail, AWS Backup): what it must be. One reconciler for all of them,
/// [`ServiceRole::ensure`], so that least privilege (PCI DSS 7.2.1, 7.2.2) is enforced the same
/// way everywhere: the trust names the one service, the one inline policy is exactly the wanted
/// document, no managed policy is attached beyond `managed`, and the stack's tags are on it.
pub struct ServiceRole<'a> {
    pub name: String,
    pub description: String,
    pub trust: Value,
    /// The one inline policy: its name and document.
    pub inline: Option<(&'a str, Value)>,
    /// The AWS managed policies it must have; any other attached is detached.
    pub managed: &'a [&'a str],
    /// IAM's default (one hour) when None.
    pub max_session_seconds: Option<i32>,
}

impl ServiceRole<'_> {
    pub async fn observe(&self, ctx: &Ctx) -> Result<Option<Role>> {
        observe_role(ctx, &self.name, self.inline.as_ref().map(|(name, _)| *name)).await
    }

    /// Creates the role or repairs it in place, from `have` (what `observe` read), and returns
    /// it as it now is. Each step is idempotent: a re-run after a crash at any point repairs
    /// what the crashed run left.
    pub async fn ensure(&self, ctx: &Ctx, have: Option<Role>) -> Result<Role> {
        let iam = &ctx.clients.iam;
        let name = &self.name;
        let tags: Vec<Tag> =
            ctx.tags(None, None).iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
        let role = match have {
            Some(r) => r,
            None => {
                ctx.progress.step(&format!("creating role {name}"));
                let made = iam
                    .create_role()
                    .role_name(name)
                    .description(&self.description)
                    .assume_role_policy_document(self.trust.to_string())
                    .set_max_session_duration(self.max_session_seconds)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .aws("iam:CreateRole")
                    .ok_if_exists()?;
                // The create's own answer, not a GetRole: IAM is eventually consistent, and a read
                // right after a create may not find the role yet.
                match made.as_ref().and_then(|m| m.role()) {
                    Some(r) => Role {
                        arn: r.arn().to_string(),
                        id: r.role_id().to_string(),
                        trust: self.trust.clone(),
                        policy: None,
                        attached: Vec::new(),
                        tags: ctx.tags(None, None).into_iter().collect(),
                    },
                    // Made by a run that crashed before recording it: read what it left.
                    None => self.observe(ctx).await?.ok_or_else(|| {
                        ResourceError::new("NotFound", format!("role {name} exists by its name but cannot be read"))
                    })?,
                }
            }
        };
        if role.trust != self.trust {
            ctx.progress.step(&format!("restoring the trust policy of role {name}"));
            iam.update_assume_role_policy()
                .role_name(name)
                .policy_document(self.trust.to_string())
                .send()
                .await
                .aws("iam:UpdateAssumeRolePolicy")?;
        }
        if let Some((policy, wanted)) = &self.inline {
            if role.policy.as_ref() != Some(wanted) {
                ctx.progress.step(&match &role.policy {
                    None => format!("adding policy {policy} to role {name}"),
                    Some(_) => format!("restoring policy {policy} of role {name}"),
                });
                iam.put_role_policy()
                    .role_name(name)
                    .policy_name(*policy)
                    .policy_document(wanted.to_string())
                    .send()
                    .await
                    .aws("iam:PutRolePolicy")?;
            }
        }
        for arn in self.managed.iter().filter(|p| !role.attached.iter().any(|a| a == *p)) {
            ctx.progress.step(&format!("attaching {arn} to role {name}"));
            iam.attach_role_policy().role_name(name).policy_arn(*arn).send().await.aws("iam:AttachRolePolicy")?;
        }
        for extra in role.attached.iter().filter(|a| !self.managed.contains(&a.as_str())) {
            ctx.progress.step(&format!("detaching {extra} from role {name}"));
            iam.detach_role_policy()
                .role_name(name)
                .policy_arn(extra)
                .send()
                .await
                .aws("iam:DetachRolePolicy")
                .ok_if_not_found()?;
        }
        if let Some(drift) = ctx.tag_drift(&role.tags) {
            ctx.progress.step(&format!("tagging role {name}: {}", drift.wanted));
            iam.tag_role().role_name(name).set_tags(Some(tags)).send().await.aws("iam:TagRole")?;
        }
        Ok(Role {
            trust: self.trust.clone(),
            policy: self.inline.as_ref().map(|(_, doc)| doc.clone()),
            attached: self.managed.iter().map(|p| p.to_string()).collect(),
            tags: ctx.tags(None, None).into_iter().collect(),
            ..role
        })
    }

    /// How `have` differs from this role, in words. `trusted`: who the trust should name, for
    /// people; `grants`: what the inline policy should allow, for people.
    pub fn drifts(&self, ctx: &Ctx, have: Option<&Role>, trusted: &str, grants: &str) -> Vec<Drift> {
        let on = format!("role {}", self.name);
        let Some(r) = have else { return vec![Drift::missing(on, &self.description)] };
        let mut d = Vec::new();
        if r.trust != self.trust {
            let (have, want) = (principals(&r.trust), principals(&self.trust));
            d.push(if have == want {
                Drift::new(format!("{on} trust policy"), "differs", trusted)
            } else {
                Drift::new(format!("{on} trust policy"), listed(have), listed(want))
            });
        }
        if let Some((policy, wanted)) = &self.inline {
            let field = format!("{on} policy {policy}");
            match &r.policy {
                None => d.push(Drift::missing(field, grants)),
                Some(p) if p != wanted => d.push(Drift::new(field, policy_difference(p, wanted), grants)),
                Some(_) => {}
            }
        }
        for missing in self.managed.iter().filter(|p| !r.attached.iter().any(|a| a == *p)) {
            d.push(Drift::missing(format!("{on} managed policy"), *missing));
        }
        for extra in r.attached.iter().filter(|a| !self.managed.contains(&a.as_str())) {
            d.push(Drift::unexpected(format!("{on} managed policy"), extra));
        }
        d.extend(ctx.tag_drift(&r.tags).map(|t| t.on(&on)));
        d
    }
}

/// IAM returns policy documents URL-encoded.
pub fn decode(doc: &str) -> Value {
    let text = percent_encoding::percent_decode_str(doc).decode_utf8_lossy().into_owned();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// The execution role of function `f`, its policy as it must be while `before_logins` (the
/// aliases of process still running code from before the database logins) run.
fn function_role(ctx: &Ctx, f: &str, before_logins: &[String]) -> Result<ServiceRole<'static>> {
    Ok(ServiceRole {
        name: ctx.names.role(f),
        description: format!("Execution role of payment-{f} (least privilege)"),
        trust: trust_policy(ctx),
        inline: Some((POLICY, policy_during(ctx, f, before_logins)?)),
        // AWSLambdaVPCAccessExecutionRole would grant logs writes on every group (see above).
        managed: &[],
        max_session_seconds: Some(3600),
    })
}

pub fn trust_policy(ctx: &Ctx) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "lambda.amazonaws.com" },
            "Action": "sts:AssumeRole",
            // Confused-deputy guard: Lambda may assume the role only for this account's functions.
            "Condition": { "StringEquals": { "aws:SourceAccount": ctx.names.account } }
        }]
    })
}

fn via(ctx: &Ctx, services: &[&str]) -> Value {
    json!(services.iter().map(|s| format!("{s}.{}.amazonaws.com", ctx.names.region)).collect::<Vec<_>>())
}

/// The inline policy of a function's role, once every alias of process runs login code.
pub fn policy(ctx: &Ctx, function: &str) -> Result<Value> {
    policy_during(ctx, function, &[])
}

/// The inline policy of a function's role. `before_logins`: the aliases of process still running
/// code that reads the master secret (empty once every alias runs login code).
pub fn policy_during(ctx: &Ctx, function: &str, before_logins: &[String]) -> Result<Value> {
    let (region, account) = (&ctx.names.region, &ctx.names.account);
    let key = ctx.input(super::kms::ID, "key_arn")?;
    let log_group = format!("arn:aws:logs:{region}:{account}:log-group:{}", ctx.names.function_log_group(function));
    let prefix = ctx.names.parameter_prefix();
    let parameters = [
        format!("arn:aws:ssm:{region}:{account}:parameter{prefix}"),
        format!("arn:aws:ssm:{region}:{account}:parameter{prefix}/*"),
    ];
    let table = ctx.input(super::tables::ID, "table_arn")?;
    let bucket = ctx.input(super::storage::ID, "bucket_arn")?;
    let topic = ctx.input(super::alerts::ID, "topic_arn")?;
    let db_secret = ctx.input(super::secrets::DB_MASTER, "secret_arn")?;
    let fingerprint = ctx.input(super::secrets::CARD_FINGERPRINT_KEY, "secret_arn")?;

    let mut s = vec![
        json!({ "Sid": "WriteOwnLogs", "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [format!("{log_group}:log-stream:*")] }),
        // "*" by necessity: Lambda creates and removes the function's network interfaces in the
        // VPC, and these EC2 actions support no resource-level permissions for that use
        // (Describe* never does; Create/Delete act on interfaces that do not exist yet or whose
        // ids Lambda chooses). The actions of AWS's own AWSLambdaVPCAccessExecutionRole, which
        // gained ec2:DescribeSubnets in January 2024 (Lambda reads the subnets it places
        // interfaces in).
        json!({ "Sid": "VpcNetworkInterfaces", "Effect": "Allow",
                "Action": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
                           "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                           "ec2:UnassignPrivateIpAddresses"],
                "Resource": "*" }),
        // "*" by necessity: X-Ray's PutTraceSegments and PutTelemetryRecords have no resource types.
        json!({ "Sid": "Tracing", "Effect": "Allow",
                "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*" }),
        json!({ "Sid": "ReadConfiguration", "Effect": "Allow",
                "Action": ["ssm:GetParametersByPath", "ssm:GetParameters", "ssm:GetParameter"],
                "Resource": parameters }),
    ];
    let mut key_use: Vec<&str> = vec!["ssm", "secretsmanager", "lambda"];
    let mut key_actions = vec!["kms:Decrypt"];
    match function {
        "validate" => {}
        "fraud-check" => {
            s.push(json!({ "Sid": "CardVelocity", "Effect": "Allow", "Action": ["dynamodb:Query"],
                           "Resource": [format!("{table}/index/by-card")] }));
            key_use.push("dynamodb");
        }
        "process" => {
            s.push(json!({ "Sid": "TransactionRecords", "Effect": "Allow",
                           "Action": ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
                           "Resource": [table.clone()] }));
            s.push(json!({ "Sid": "CardVelocity", "Effect": "Allow", "Action": ["dynamodb:Query"],
                           "Resource": [format!("{table}/index/by-card")] }));
            s.push(json!({ "Sid": "AuditEvents", "Effect": "Allow", "Action": ["s3:PutObject"],
                           "Resource": [format!("{bucket}/audit/*")] }));
            s.push(json!({ "Sid": "Alerts", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": [topic] }));
            // The migration runs as rotate-secret, the one function that reads the master
            // secret; process asks it through its aliases (derived: the roles never wait for
            // the functions), the same colour process itself runs.
            let migrator: Vec<String> =
                Color::BOTH.iter().map(|c| ctx.names.function_alias_arn(MIGRATOR_FUNCTION, c.as_str())).collect();
            s.push(json!({ "Sid": "InvokeMigrator", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
                           "Resource": migrator }));
            if !before_logins.is_empty() {
                s.push(json!({ "Sid": db_connect::TRANSITIONAL_SID, "Effect": "Allow",
                               "Action": ["secretsmanager:GetSecretValue"], "Resource": [db_secret.clone()] }));
            }
            key_use.extend(["dynamodb", "s3", "sns"]);
            key_actions.push("kms:GenerateDataKey");
        }
        "rotate-secret" => {
            s.push(json!({ "Sid": "RotateDatabaseCredentials", "Effect": "Allow",
                           "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                                      "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
                           "Resource": [db_secret.clone()] }));
            // "*" by necessity: GetRandomPassword acts on no resource.
            s.push(json!({ "Sid": "GeneratePasswords", "Effect": "Allow",
                           "Action": ["secretsmanager:GetRandomPassword"], "Resource": "*" }));
            key_actions.push("kms:GenerateDataKey");
        }
        other => {
            return Err(crate::resources::ResourceError::new("UnknownFunction", format!("no policy for {other}")));
        }
    }
    if function != "rotate-secret" {
        s.push(json!({ "Sid": "FingerprintKey", "Effect": "Allow",
                       "Action": ["secretsmanager:GetSecretValue"], "Resource": [fingerprint] }));
    }
    s.push(json!({ "Sid": "StackKeyThroughItsServices", "Effect": "Allow", "Action": key_actions,
                   "Resource": [key], "Condition": { "StringEquals": { "kms:ViaService": via(ctx, &key_use) } } }));
    Ok(json!({ "Version": "2012-10-17", "Statement": s }))
}

/// The statements of a policy other than the transitional master-secret read.
fn without_transition(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Some(s) = doc.get_mut("Statement").and_then(Value::as_array_mut) {
        s.retain(|st| st["Sid"] != db_connect::TRANSITIONAL_SID);
    }
    doc
}

fn has_transition(doc: &Value) -> bool {
    doc["Statement"].as_array().is_some_and(|s| s.iter().any(|st| st["Sid"] == db_connect::TRANSITIONAL_SID))
}

/// When the policy differs only by the transitional master-secret read: that, in words.
fn transition_drift(have: &Value, want: &Value, before_logins: &[String]) -> Option<Drift> {
    if without_transition(have) != without_transition(want) {
        return None;
    }
    let field = "master secret read";
    match (has_transition(have), has_transition(want)) {
        (true, false) => Some(Drift::new(
            field,
            "kept for code before the database logins",
            "absent: every alias of process runs login code",
        )),
        (false, true) => Some(Drift::missing(
            field,
            format!("kept while {} (code before the database logins)", listed(before_logins)),
        )),
        _ => None,
    }
}

/// A role as IAM holds it: its trust, the inline policy `inline` names (if any), its managed
/// policies and tags. None when there is no such role.
pub async fn observe_role(ctx: &Ctx, name: &str, inline: Option<&str>) -> Result<Option<Role>> {
    let iam = &ctx.clients.iam;
    let Some(out) = iam.get_role().role_name(name).send().await.aws("iam:GetRole").ok_if_not_found()? else {
        return Ok(None);
    };
    let Some(r) = out.role() else { return Ok(None) };
    let policy = async {
        let Some(inline) = inline else { return Ok::<_, ResourceError>(None) };
        Ok(iam
            .get_role_policy()
            .role_name(name)
            .policy_name(inline)
            .send()
            .await
            .aws("iam:GetRolePolicy")
            .ok_if_not_found()?
            .map(|p| decode(p.policy_document())))
    };
    let attached = async {
        Ok::<_, ResourceError>(
            iam.list_attached_role_policies()
                .role_name(name)
                .send()
                .await
                .aws("iam:ListAttachedRolePolicies")?
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string))
                .collect::<Vec<_>>(),
        )
    };
    let tags =
        async { Ok::<_, ResourceError>(iam.list_role_tags().role_name(name).send().await.aws("iam:ListRoleTags")?) };
    let (policy, attached, tags) = futures::try_join!(policy, attached, tags)?;
    Ok(Some(Role {
        arn: r.arn().to_string(),
        id: r.role_id().to_string(),
        trust: r.assume_role_policy_document().map(decode).unwrap_or(Value::Null),
        policy,
        attached,
        tags: tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
    }))
}

#[async_trait]
impl Resource for Roles {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: super::kms::ID, key: "key_arn" },
            Input { node: super::tables::ID, key: "table_arn" },
            Input { node: super::storage::ID, key: "bucket_arn" },
            Input { node: super::alerts::ID, key: "topic_arn" },
            Input { node: super::secrets::DB_MASTER, key: "secret_arn" },
            Input { node: super::secrets::CARD_FINGERPRINT_KEY, key: "secret_arn" },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let found = futures::future::try_join_all(FUNCTIONS.map(|f| async move {
            Ok::<_, ResourceError>((f, observe_role(ctx, &ctx.names.role(f), Some(POLICY)).await?))
        }));
        let (found, before_logins) = futures::try_join!(found, db_connect::aliases_running_code_before_logins(ctx))?;
        let roles: BTreeMap<_, _> = found.into_iter().filter_map(|(f, r)| Some((f, r?))).collect();
        Ok((!roles.is_empty()).then_some(Observed { roles, before_logins }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let mut d = Vec::new();
        for f in FUNCTIONS {
            let role = function_role(ctx, f, &o.before_logins)?;
            let have = o.roles.get(f);
            let policy_field = format!("role {} policy {POLICY}", role.name);
            for drift in role.drifts(ctx, have, "Lambda, for this account only", "least privilege") {
                // The move to database logins is named as such, not as a policy difference.
                let transition = have
                    .and_then(|r| r.policy.as_ref())
                    .zip(role.inline.as_ref())
                    .filter(|_| drift.field == policy_field)
                    .and_then(|(p, (_, wanted))| transition_drift(p, wanted, &o.before_logins));
                d.push(transition.map_or(drift, |t| t.on(&policy_field)));
            }
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        let arns: serde_json::Map<String, Value> = o.roles.iter().map(|(f, r)| (f.to_string(), json!(r.arn))).collect();
        let ids: serde_json::Map<String, Value> = o.roles.iter().map(|(f, r)| (f.to_string(), json!(r.id))).collect();
        // The roles whose policy still reads the master secret for code before the logins.
        let transitional = o.roles.get("process").filter(|_| !o.before_logins.is_empty()).map(|r| r.arn.clone());
        Outputs::from([
            ("role_arns".into(), Value::Object(arns)),
            ("role_ids".into(), Value::Object(ids)),
            ("transitional_master_readers".into(), crate::resources::list(transitional)),
        ])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let mut o = match observed {
            Some(o) => o,
            // No role yet, but process may exist (its roles deleted out of band): its aliases
            // decide all the same.
            None => Observed {
                roles: BTreeMap::new(),
                before_logins: db_connect::aliases_running_code_before_logins(ctx).await?,
            },
        };
        let have = &o;
        let roles = each_member("role", FUNCTIONS, |f| async move {
            let role = function_role(ctx, f, &have.before_logins)?;
            Ok((f, role.ensure(ctx, have.roles.get(f).cloned()).await?))
        })
        .await?;
        o.roles.extend(roles);
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        each_member("role", o.roles.keys().copied(), |f| async move {
            let name = ctx.names.role(f);
            ctx.progress.step(&format!("deleting role {name}"));
            delete_role(ctx, &name).await
        })
        .await?;
        Ok(())
    }
}

/// Deletes a role and, first, what IAM requires gone before it: its inline policies and every
/// managed policy attached to it — read here, so that one attached out of band never blocks a
/// destroy (DeleteConflict). Absent is success.
pub async fn delete_role(ctx: &Ctx, name: &str) -> Result<()> {
    let iam = &ctx.clients.iam;
    let inline = iam.list_role_policies().role_name(name).send().await.aws("iam:ListRolePolicies").ok_if_not_found()?;
    for p in inline.iter().flat_map(|l| l.policy_names()) {
        iam.delete_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
            .aws("iam:DeleteRolePolicy")
            .ok_if_not_found()?;
    }
    let mut attached = Vec::new();
    let mut pages = iam.list_attached_role_policies().role_name(name).into_paginator().send();
    while let Some(page) = pages.next().await {
        let Some(page) = page.aws("iam:ListAttachedRolePolicies").ok_if_not_found()? else { return Ok(()) };
        attached.extend(page.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)));
    }
    for arn in &attached {
        iam.detach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .aws("iam:DetachRolePolicy")
            .ok_if_not_found()?;
    }
    iam.delete_role().role_name(name).send().await.aws("iam:DeleteRole").ok_if_not_found()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};

    const MASTER: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:payments/qa/db-master-AbCdEf";

    fn roles_ctx() -> Ctx {
        ctx(
            ID,
            Roles.reads(),
            &[
                (super::super::kms::ID, "key_arn", json!("arn:aws:kms:us-east-1:123456789012:key/k")),
                (super::super::tables::ID, "table_arn", json!("arn:aws:dynamodb:us-east-1:123456789012:table/t")),
                (super::super::storage::ID, "bucket_arn", json!("arn:aws:s3:::b")),
                (super::super::alerts::ID, "topic_arn", json!("arn:aws:sns:us-east-1:123456789012:t")),
                (super::super::secrets::DB_MASTER, "secret_arn", json!(MASTER)),
                (super::super::secrets::CARD_FINGERPRINT_KEY, "secret_arn", json!("arn:aws:secretsmanager:fp")),
            ],
        )
    }

    fn names_master(p: &Value) -> bool {
        p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Resource"].as_array().is_some_and(|r| r.contains(&json!(MASTER))))
    }

    #[test]
    fn only_the_migrator_names_the_master_secret_and_process_invokes_exactly_its_aliases() {
        let ctx = roles_ctx();
        for f in FUNCTIONS {
            assert_eq!(names_master(&policy(&ctx, f).unwrap()), f == MIGRATOR_FUNCTION, "{f}");
        }
        let process = policy(&ctx, "process").unwrap();
        let invoke: Vec<&Value> = process["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Action"].as_array().unwrap().iter().any(|a| a.as_str().unwrap().starts_with("lambda:")))
            .collect();
        assert_eq!(
            invoke,
            [&json!({ "Sid": "InvokeMigrator", "Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": [
                "arn:aws:lambda:us-east-1:123456789012:function:payment-rotate-secret-qa:blue",
                "arn:aws:lambda:us-east-1:123456789012:function:payment-rotate-secret-qa:green"] })]
        );
    }

    #[test]
    fn process_keeps_the_master_secret_only_while_an_alias_runs_code_before_the_logins() {
        let ctx = roles_ctx();
        let old = vec!["blue runs version 3".to_string()];
        let during = policy_during(&ctx, "process", &old).unwrap();
        let settled = policy(&ctx, "process").unwrap();
        assert!(names_master(&during) && !names_master(&settled));
        for f in ["validate", "fraud-check", "rotate-secret"] {
            assert_eq!(policy_during(&ctx, f, &old).unwrap(), policy(&ctx, f).unwrap(), "{f}: untouched");
        }
        let gone = transition_drift(&during, &settled, &[]).unwrap().on("role r policy p");
        assert_eq!(
            gone.to_string(),
            "role r policy p master secret read: kept for code before the database logins → \
             absent: every alias of process runs login code"
        );
        let kept = transition_drift(&settled, &during, &old).unwrap();
        assert_eq!(
            kept.to_string(),
            "master secret read: missing → kept while blue runs version 3 (code before the database logins)"
        );
        assert_plain(&[&gone, &kept]);
        // Any other difference is the general one.
        let mut wide = settled.clone();
        wide["Statement"].as_array_mut().unwrap().push(json!({ "Effect": "Allow", "Action": "*", "Resource": "*" }));
        assert_eq!(transition_drift(&wide, &during, &old), None);
    }

    #[test]
    fn a_service_role_names_each_way_it_strays_from_least_privilege() {
        let ctx = roles_ctx();
        let backup = "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup";
        let want = ServiceRole {
            name: "payments-svc-qa".into(),
            description: "assumed by a service".into(),
            trust: trust_policy(&ctx),
            inline: Some(("own", json!({ "Statement": [{ "Effect": "Allow", "Action": "logs:PutLogEvents" }] }))),
            managed: &[backup],
            max_session_seconds: None,
        };
        let exact = Role {
            arn: "arn:aws:iam::123456789012:role/payments-svc-qa".into(),
            id: "AROA1".into(),
            trust: want.trust.clone(),
            policy: want.inline.as_ref().map(|(_, p)| p.clone()),
            attached: vec![backup.into()],
            tags: ctx.tags(None, None).into_iter().collect(),
        };
        assert!(want.drifts(&ctx, Some(&exact), "the service", "writes").is_empty());
        let mut wide = exact.clone();
        wide.trust["Statement"][0]["Principal"]["Service"] = json!("ec2.amazonaws.com");
        wide.policy = None;
        wide.attached = vec!["arn:aws:iam::aws:policy/AdministratorAccess".into()];
        let d: Vec<String> =
            want.drifts(&ctx, Some(&wide), "the service", "writes").iter().map(|d| d.to_string()).collect();
        assert_eq!(
            d,
            [
                "role payments-svc-qa trust policy: ec2.amazonaws.com → lambda.amazonaws.com",
                "role payments-svc-qa policy own: missing → writes",
                &format!("role payments-svc-qa managed policy: missing → {backup}"),
                "role payments-svc-qa managed policy: arn:aws:iam::aws:policy/AdministratorAccess → absent",
            ]
        );
        assert_eq!(
            want.drifts(&ctx, None, "the service", "writes").iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            ["role payments-svc-qa: missing → assumed by a service"]
        );
    }
}
