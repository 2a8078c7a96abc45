//! `api.account-logging`: API Gateway writes a stage's access and execution logs with one
//! role per account and region (`cloudwatchRoleArn` of the account settings). Every API in the
//! account shares it, so tapctl:
//! - leaves an existing setting alone, whoever made it (and reports it as not ours);
//! - only when the account has none, creates `tapctl-apigateway-logs-<region>` (trusting
//!   apigateway.amazonaws.com in the form AWS's own examples use, with AWS's
//!   AmazonAPIGatewayPushToCloudWatchLogs policy) and sets it. The role is the region's, not a
//!   stack's: it carries no suffix, and every tapctl stack of the region uses it. One per region
//!   because the setting is per region and IAM roles are global: a role shared by regions would
//!   be deleted by the last stack of one region while another region's setting still names it,
//!   and that region's access and execution logs (PCI DSS 10.2 evidence) would stop silently.
//!   (The single `tapctl-apigateway-logs` of earlier versions is never deleted by tapctl: any
//!   region may still name it.)
//! - on destroy of any stack, clears the setting and deletes the role only when the setting is
//!   still tapctl's and no REST API is left in the region that could be logging through it —
//!   so the last stack to go takes it, and a stack never pulls it from under another.

use crate::aws::{AlreadyExistsExt, AwsResultExt, NotFoundExt};
use crate::names::tag;
use crate::resources::logs::{self, Group};
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{kms, Change, Ctx, Drift, Input, Resource, Result};
use async_trait::async_trait;
use aws_sdk_apigateway::types::PatchOperation;
use aws_sdk_iam::types::Tag;
use futures::FutureExt;
use serde_json::json;

pub struct AccountLogging;

pub const ID: &str = "api.account-logging";
pub const PUSH_TO_LOGS: &str = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs";

pub struct Observed {
    /// What the account settings name, if anything.
    pub account_role: Option<String>,
    /// Our role, if it exists.
    pub our_role: Option<String>,
    /// `/aws/apigateway/welcome`, which API Gateway writes to when the role is set: made first
    /// by tapctl (key, retention) when tapctl sets the role, and deleted with the role.
    pub welcome: Option<Group>,
}

impl Observed {
    fn ours_in_use(&self) -> bool {
        self.our_role.is_some() && self.account_role == self.our_role
    }
}

async fn account_role(ctx: &Ctx) -> Result<Option<String>> {
    let account = ctx.clients.apigateway.get_account().send().await.aws("apigateway:GetAccount")?;
    Ok(account.cloudwatch_role_arn().filter(|a| !a.is_empty()).map(str::to_string))
}

async fn our_role(ctx: &Ctx) -> Result<Option<String>> {
    let role = ctx
        .clients
        .iam
        .get_role()
        .role_name(ctx.names.api_logging_role())
        .send()
        .await
        .aws("iam:GetRole")
        .ok_if_not_found()?;
    Ok(role.and_then(|r| r.role().map(|r| r.arn().to_string())))
}

async fn no_rest_api_left(ctx: &Ctx) -> Result<bool> {
    let apis = ctx.clients.apigateway.get_rest_apis().limit(1).send().await.aws("apigateway:GetRestApis")?;
    Ok(apis.items().is_empty())
}

/// The region's, not a stack's (like the role): no suffix or stack tag.
fn region_tags() -> Vec<(String, String)> {
    [(tag::PROJECT, "payments"), (tag::MANAGED_BY, "tapctl"), (tag::RESOURCE, ID)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The welcome group's drifts, when tapctl set the role (else the group is whoever set it's).
/// The group is the region's, shared like the role by every stack there: any customer key and
/// retention will do — demanding this stack's would have the stacks of a region take it from
/// each other on every `up`, and the destroy of one would be drift in the others. Its key may be
/// the destroyed stack's, scheduled for deletion: that only makes unreadable the one message API
/// Gateway writes there when the role is set (no request data ever goes to it). Missing,
/// unencrypted or kept forever is drift.
fn welcome_drifts(ctx: &Ctx, o: &Observed) -> Result<Vec<Drift>> {
    let name = ctx.names.api_welcome_log_group();
    Ok(match &o.welcome {
        None => vec![Drift::missing(format!("log group {name}"), "encrypted with a customer key, events expire")],
        Some(g) => {
            let mut d = Vec::new();
            if g.kms_key.is_none() {
                d.push(Drift::new(
                    format!("log group {name} encryption key"),
                    "none (CloudWatch Logs' own encryption)",
                    "a customer key",
                ));
            }
            if g.retention.is_none() {
                let days = crate::resources::counted(ctx.config.log_retention_days.into(), "day");
                d.push(Drift::new(format!("log group {name} retention"), "forever", days));
            }
            d
        }
    })
}

fn set_account_role(value: &str) -> PatchOperation {
    super::replace("/cloudwatchRoleArn", value)
}

#[async_trait]
impl Resource for AccountLogging {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: kms::ID, key: "key_arn" }]
    }

    /// The node is this stack's use of the account setting: it exists once the stack recorded
    /// it. Without a record (a lost state, `destroy --discover`) it exists only where this
    /// stack alone could act on it: tapctl's role set and no REST API left to log through it.
    /// So a second destroy of one stack is a no-op while another stack still uses the role.
    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let welcome = ctx.names.api_welcome_log_group();
        let (account_role, our_role, welcome) =
            futures::try_join!(account_role(ctx), our_role(ctx), logs::observe_group(ctx, &welcome))?;
        let o = Observed { account_role, our_role, welcome };
        if ctx.recorded.is_some() {
            return Ok(Some(o));
        }
        Ok((o.ours_in_use() && no_rest_api_left(ctx).await?).then_some(o))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        Ok(match &o.account_role {
            None => Change::from_drifts(vec![Drift::missing(
                "the account's CloudWatch role for API Gateway",
                ctx.names.api_logging_role(),
            )]),
            Some(_) if o.ours_in_use() => Change::from_drifts(welcome_drifts(ctx, o)?),
            Some(_) => Change::NoOp,
        })
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([
            ("cloudwatch_role_arn".into(), json!(o.account_role)),
            ("created_by_tapctl".into(), json!(o.ours_in_use())),
        ])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let mut o = match observed {
            Some(o) => o,
            None => Observed {
                account_role: account_role(ctx).await?,
                our_role: our_role(ctx).await?,
                welcome: logs::observe_group(ctx, &ctx.names.api_welcome_log_group()).await?,
            },
        };
        if o.account_role.is_some() {
            if o.ours_in_use() && !welcome_drifts(ctx, &o)?.is_empty() {
                let key = ctx.input(kms::ID, "key_arn")?;
                o.welcome = Some(
                    logs::ensure_group(
                        ctx,
                        &ctx.names.api_welcome_log_group(),
                        o.welcome.as_ref(),
                        &key,
                        &region_tags(),
                    )
                    .await?,
                );
            }
            return Ok(self.outputs(ctx, &o));
        }
        let iam = &ctx.clients.iam;
        let name = ctx.names.api_logging_role();
        let arn = match o.our_role.clone() {
            Some(arn) => arn,
            None => {
                ctx.progress.step(&format!("creating role {name} for API Gateway's logs"));
                // AWS's documented form (API Gateway developer guide, "Set up CloudWatch logging";
                // AWS::ApiGateway::Account's example): no aws:SourceAccount condition, which AWS
                // does not document API Gateway as sending when it assumes this role.
                let trust = json!({
                    "Version": "2012-10-17",
                    "Statement": [{ "Effect": "Allow", "Principal": { "Service": "apigateway.amazonaws.com" },
                                    "Action": "sts:AssumeRole" }]
                });
                // The account's, not this stack's: no suffix or stack tag.
                let tags: Vec<Tag> =
                    region_tags().iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
                iam.create_role()
                    .role_name(&name)
                    .description("API Gateway writes access and execution logs to CloudWatch (account-wide setting)")
                    .assume_role_policy_document(trust.to_string())
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .aws("iam:CreateRole")
                    .ok_if_exists()?;
                our_role(ctx).await?.unwrap_or_default()
            }
        };
        ctx.progress.step(&format!("attaching AmazonAPIGatewayPushToCloudWatchLogs to {name}"));
        iam.attach_role_policy().role_name(&name).policy_arn(PUSH_TO_LOGS).send().await.aws("iam:AttachRolePolicy")?;
        // Setting the role makes API Gateway write to this group, creating it unencrypted and
        // kept forever unless it exists.
        let key = ctx.input(kms::ID, "key_arn")?;
        o.welcome = Some(
            logs::ensure_group(ctx, &ctx.names.api_welcome_log_group(), o.welcome.as_ref(), &key, &region_tags())
                .await?,
        );
        // API Gateway checks that it can assume the role; a new role takes a few seconds to be.
        let apigw = &ctx.clients.apigateway;
        ctx.progress.step(&format!("setting {name} as the account's CloudWatch role for API Gateway"));
        ctx.retry_while_propagating(&catalogue::APIGATEWAY_ACCOUNT_ROLE, &format!("role {name}"), || {
            apigw
                .update_account()
                .patch_operations(set_account_role(&arn))
                .send()
                .map(|r| r.aws("apigateway:UpdateAccount"))
        })
        .await?;
        o.account_role = Some(arn.clone());
        o.our_role = Some(arn);
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        if o.our_role.is_none() {
            return Ok(());
        }
        if o.ours_in_use() {
            if !no_rest_api_left(ctx).await? {
                ctx.progress.step("keeping the account's API Gateway logging role: other REST APIs may log through it");
                return Ok(());
            }
            ctx.progress.step("clearing the account's API Gateway logging role (tapctl set it)");
            ctx.clients
                .apigateway
                .update_account()
                .patch_operations(set_account_role(""))
                .send()
                .await
                .aws("apigateway:UpdateAccount")?;
        }
        // With the role goes the group its setting made API Gateway write to — also when a run
        // killed after clearing the setting left only the role to delete.
        if o.account_role.is_none() || o.ours_in_use() {
            logs::delete_group(ctx, &ctx.names.api_welcome_log_group()).await?;
        }
        crate::resources::iam::delete_role(ctx, &ctx.names.api_logging_role()).await
    }
}
