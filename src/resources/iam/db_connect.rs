//! `iam.db-connect`: process signs in to Aurora as its own PostgreSQL login
//! (`names::PROCESS_DB_LOGIN`) with an IAM authentication token, never with the master
//! password. One inline policy on process's role, `payments-db-connect`, allows
//! `rds-db:connect` on exactly `arn:aws:rds-db:<region>:<account>:dbuser:<cluster resource
//! id>/payments_process`: no other user, no other cluster. The role itself is `iam.roles`'.
//!
//! Why IAM authentication rather than a secret per login: a token lives 15 minutes and is
//! minted from the function's own role credentials, so there is no password to store, rotate or
//! leak, and the grant is an IAM statement read back and drift-checked like every other. (RDS
//! documents a limit of about 200 new IAM-authenticated connections per second per instance;
//! process holds one connection per execution environment, far below it.)
//!
//! # The move of a stack made before the logins (guaranteed)
//!
//! Code published before the logins reads the master secret; during a blue/green release it may
//! still run on one colour. So:
//! - tapctl marks every version of process it publishes ([`login_marker`] in the version's
//!   description): the code of a marked version signs in as its own login.
//! - Each run reads, from Lambda, the version each alias of process (`blue`, `green`) points to
//!   and that version's description ([`aliases_running_code_before_logins`]). Not tapctl's
//!   state: an alias moved by hand or by `shift` counts as it is.
//! - While any alias runs an unmarked version, process's role keeps `secretsmanager:GetSecretValue`
//!   on the master secret (statement [`TRANSITIONAL_SID`] of `iam.roles`' policy), and this node
//!   outputs the role in `transitional_master_readers`, which the master secret's resource policy
//!   admits. `iam.roles` decides it because it is the node that would otherwise drop the grant,
//!   and it runs before the functions move an alias: the grant never lapses while old code can be
//!   invoked.
//! - The first `up` that finds every alias on a marked version removes the grant from both.
//!   Typically: `up` (the idle colour gets login code), `shift` to it, `up` (the other colour
//!   gets it), `up` (the grant goes) — `plan` names each step.
//! - A stack made with the logins never holds the grant.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::PROCESS_DB_LOGIN;
use crate::resources::{listed, Change, Ctx, Drift, Input, Outputs, Resource, Result};
use crate::traffic::Color;
use async_trait::async_trait;
use serde_json::{json, Value};

pub struct DbConnect;

pub const ID: &str = "iam.db-connect";
/// The inline policy on process's role.
pub const POLICY: &str = "payments-db-connect";
/// The statement of process's `payments-least-privilege` policy that lets code published before
/// the logins read the master secret while an alias still runs it.
pub const TRANSITIONAL_SID: &str = "MasterSecretUntilEveryAliasRunsLoginCode";

/// What tapctl writes into the description of each version of process it publishes: the code of
/// that version signs in as its own login.
pub fn login_marker() -> String {
    format!("signs in as {PROCESS_DB_LOGIN}")
}

/// The description of a version tapctl publishes.
pub fn version_description(function: &str, code: &impl std::fmt::Display) -> String {
    if function == "process" {
        format!("code {code}; {}", login_marker())
    } else {
        format!("code {code}")
    }
}

/// The policy: `rds-db:connect` as process's login on this cluster, nothing else.
pub fn policy(ctx: &Ctx, cluster_resource_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ConnectAsOwnLogin",
            "Effect": "Allow",
            "Action": ["rds-db:connect"],
            "Resource": [ctx.names.db_user_arn(cluster_resource_id, PROCESS_DB_LOGIN)],
        }]
    })
}

/// What a policy allows, in words: `rds-db:connect on dbuser:cluster-X/payments_process`.
fn grants(doc: &Value) -> Vec<String> {
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => vec![],
        }
    };
    let statements = match &doc["Statement"] {
        Value::Array(s) => s.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    };
    let mut out = Vec::new();
    for s in statements {
        let effect = if s["Effect"] == "Allow" { "" } else { "denies " };
        // The ARN's prefix is the same for every user of the account and region: the part that
        // names the cluster and the user is what a person compares.
        let on: Vec<String> = strings(&s["Resource"])
            .iter()
            .map(|r| r.split_once(":dbuser:").map_or(r.clone(), |(_, u)| format!("dbuser:{u}")))
            .collect();
        let conditions = if s.get("Condition").is_some() { " (with conditions)" } else { "" };
        out.push(format!("{effect}{} on {}{conditions}", listed(strings(&s["Action"])), listed(on)));
    }
    out
}

/// The aliases of process whose version predates the logins, in words (`blue runs version 3`):
/// read from Lambda, never from the state. Empty when process does not exist yet.
pub async fn aliases_running_code_before_logins(ctx: &Ctx) -> Result<Vec<String>> {
    let lambda = &ctx.clients.lambda;
    let name = ctx.names.function("process");
    let marker = login_marker();
    let mut old = Vec::new();
    for c in Color::BOTH {
        let Some(alias) = lambda
            .get_alias()
            .function_name(&name)
            .name(c.as_str())
            .send()
            .await
            .aws("lambda:GetAlias")
            .ok_if_not_found()?
        else {
            continue;
        };
        // A weighted alias sends some invocations to a second version: both run.
        let mut versions: Vec<String> = alias.function_version().map(str::to_string).into_iter().collect();
        if let Some(weights) = alias.routing_config().and_then(|r| r.additional_version_weights()) {
            versions.extend(weights.keys().cloned());
        }
        for v in versions {
            let config = lambda
                .get_function_configuration()
                .function_name(&name)
                .qualifier(&v)
                .send()
                .await
                .aws("lambda:GetFunctionConfiguration")
                .ok_if_not_found()?;
            let marked = config.as_ref().and_then(|c| c.description()).is_some_and(|d| d.contains(&marker));
            if config.is_some() && !marked {
                old.push(format!("{c} runs version {v}"));
            }
        }
    }
    Ok(old)
}

pub struct Observed {
    /// The policy as IAM holds it.
    pub policy: Value,
}

/// IAM returns policy documents URL-encoded.
fn decode(doc: &str) -> Value {
    let text = percent_encoding::percent_decode_str(doc).decode_utf8_lossy().into_owned();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

const READS: &[Input] = &[
    Input { node: super::ID, key: "role_arns" },
    Input { node: super::ID, key: "transitional_master_readers" },
    Input { node: crate::resources::database::cluster::ID, key: "cluster_resource_id" },
];

impl DbConnect {
    fn wanted(&self, ctx: &Ctx) -> Result<Value> {
        let resource_id = ctx.input(crate::resources::database::cluster::ID, "cluster_resource_id")?;
        if resource_id.is_empty() {
            return Err(crate::resources::ResourceError::new(
                "MissingInput",
                "the cluster reported no resource id (DbClusterResourceId)",
            ));
        }
        Ok(policy(ctx, &resource_id))
    }
}

#[async_trait]
impl Resource for DbConnect {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        READS
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        // The policy is the whole resource: absent (or its role absent: NoSuchEntity either
        // way) is a create, which `plan` shows as such.
        let policy = ctx
            .clients
            .iam
            .get_role_policy()
            .role_name(ctx.names.role("process"))
            .policy_name(POLICY)
            .send()
            .await
            .aws("iam:GetRolePolicy")
            .ok_if_not_found()?;
        Ok(policy.map(|p| Observed { policy: decode(p.policy_document()) }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let wanted = self.wanted(ctx)?;
        let field = format!("role {} policy {POLICY}", ctx.names.role("process"));
        if o.policy == wanted {
            return Ok(Change::NoOp);
        }
        let (have, want) = (grants(&o.policy), grants(&wanted));
        let have = if have == want { "the same grant on other terms".to_string() } else { listed(have) };
        Ok(Change::Update(vec![Drift::new(field, have, listed(want))]))
    }

    fn outputs(&self, ctx: &Ctx, _o: &Observed) -> Outputs {
        // Passed on as iam.roles decided it (see the module docs): the two never disagree.
        let readers = ctx.input_value(super::ID, "transitional_master_readers").cloned().unwrap_or(json!([]));
        Outputs::from([
            ("db_login".into(), json!(PROCESS_DB_LOGIN)),
            ("policy_name".into(), json!(POLICY)),
            ("transitional_master_readers".into(), readers),
        ])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let wanted = self.wanted(ctx)?;
        let role = ctx.names.role("process");
        let current = observed.map(|o| o.policy);
        if current.as_ref() != Some(&wanted) {
            ctx.progress.step(&match current {
                None => format!("letting {role} sign in as {PROCESS_DB_LOGIN} ({POLICY})"),
                Some(_) => format!("restoring policy {POLICY} of {role}"),
            });
            ctx.clients
                .iam
                .put_role_policy()
                .role_name(&role)
                .policy_name(POLICY)
                .policy_document(wanted.to_string())
                .send()
                .await
                .aws("iam:PutRolePolicy")?;
        }
        Ok(self.outputs(ctx, &Observed { policy: wanted }))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        let role = ctx.names.role("process");
        ctx.progress.step(&format!("removing policy {POLICY} from {role}"));
        ctx.clients
            .iam
            .delete_role_policy()
            .role_name(&role)
            .policy_name(POLICY)
            .send()
            .await
            .aws("iam:DeleteRolePolicy")
            .ok_if_not_found()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};

    fn node_ctx() -> Ctx {
        ctx(
            ID,
            READS,
            &[
                (
                    super::super::ID,
                    "role_arns",
                    json!({ "process": "arn:aws:iam::123456789012:role/payment-process-role-qa" }),
                ),
                (super::super::ID, "transitional_master_readers", json!([])),
                (crate::resources::database::cluster::ID, "cluster_resource_id", json!("cluster-ABC")),
            ],
        )
    }

    #[test]
    fn the_policy_names_exactly_the_login_on_the_cluster() {
        let ctx = node_ctx();
        assert_eq!(
            DbConnect.wanted(&ctx).unwrap(),
            json!({ "Version": "2012-10-17", "Statement": [{
                "Sid": "ConnectAsOwnLogin", "Effect": "Allow", "Action": ["rds-db:connect"],
                "Resource": ["arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABC/payments_process"] }] })
        );
    }

    #[test]
    fn a_widened_policy_is_named_in_words() {
        let ctx = node_ctx();
        let wide = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "rds-db:connect",
            "Resource": "arn:aws:rds-db:us-east-1:123456789012:dbuser:*/*" }] });
        let widened = DbConnect.diff(&ctx, &Observed { policy: wide }).unwrap();
        assert_eq!(
            widened.drifts()[0].to_string(),
            "role payment-process-role-qa policy payments-db-connect: rds-db:connect on dbuser:*/* → \
             rds-db:connect on dbuser:cluster-ABC/payments_process"
        );
        assert_plain(&widened.drifts());
        let wanted = DbConnect.wanted(&ctx).unwrap();
        assert_eq!(DbConnect.diff(&ctx, &Observed { policy: wanted }).unwrap(), Change::NoOp);
    }

    #[test]
    fn only_versions_of_process_carry_the_login_marker() {
        let code = "c0de (arm64)";
        assert_eq!(version_description("process", &code), "code c0de (arm64); signs in as payments_process");
        assert_eq!(version_description("validate", &code), "code c0de (arm64)");
        assert!(version_description("process", &code).len() <= 256, "Lambda's limit for a description");
    }

    #[test]
    fn the_outputs_pass_on_the_transitional_readers_iam_roles_decided() {
        let role = "arn:aws:iam::123456789012:role/payment-process-role-qa";
        let mut ctx = node_ctx();
        ctx.inputs.get_mut(super::super::ID).unwrap().insert("transitional_master_readers".into(), json!([role]));
        let out = DbConnect.outputs(&ctx, &Observed { policy: json!({}) });
        assert_eq!(out["transitional_master_readers"], json!([role]));
        assert_eq!(out["db_login"], json!("payments_process"));
    }
}
