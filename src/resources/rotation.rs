//! `rotation.db-master`: the Aurora master secret rotates every 30 days through the
//! rotate-secret function (PCI DSS 8.3.9 asks for changes at least every 90 days).
//!
//! Secrets Manager invokes the function's unqualified ARN: rotate-secret is not on the payment
//! path, so it has no blue/green; new code reaches it at the next rotation after `up`.
//! Turning rotation on does not rotate at once (RotateImmediately=false): the secret already
//! holds the password Secrets Manager generated for the new cluster; Secrets Manager only runs
//! the function's testSecret step to check the wiring.

use crate::aws::{AlreadyExistsExt, AwsResultExt, NotFoundExt};
use crate::resources::functions::permission;
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{counted, or_none, After, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_secretsmanager::types::RotationRulesType;
use futures::FutureExt;
use serde_json::{json, Value};

pub struct DbMasterRotation;

pub const ID: &str = "rotation.db-master";
pub const DAYS: i64 = 30;
/// The statement of rotate-secret's resource policy that lets Secrets Manager invoke it.
pub const PERMISSION: &str = "secretsmanager-rotates-db-master";

pub struct Observed {
    pub secret_arn: String,
    pub enabled: bool,
    pub lambda_arn: Option<String>,
    pub days: Option<i64>,
    pub permission: Option<Value>,
}

fn function_arn(ctx: &Ctx) -> Result<String> {
    ctx.input_value(super::functions::ROTATE_SECRET, "function_arn")?.as_str().map(str::to_string).ok_or_else(|| {
        ResourceError::new("MissingInput", format!("{} did not provide its ARN", super::functions::ROTATE_SECRET))
    })
}

#[async_trait]
impl Resource for DbMasterRotation {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: super::functions::ROTATE_SECRET, key: "function_arn" },
            Input { node: super::secrets::DB_MASTER, key: "secret_arn" },
        ]
    }
    fn after(&self) -> &'static [After] {
        &[After { node: super::database::instances::ID, why: "the first rotation connects to the database" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let Some(s) = ctx
            .clients
            .secrets
            .describe_secret()
            .secret_id(ctx.names.db_secret())
            .send()
            .await
            .aws("secretsmanager:DescribeSecret")
            .ok_if_not_found()?
        else {
            return Ok(None);
        };
        let enabled = s.rotation_enabled().unwrap_or(false);
        let lambda_arn = s.rotation_lambda_arn().filter(|a| !a.is_empty()).map(str::to_string);
        if !enabled && lambda_arn.is_none() {
            return Ok(None);
        }
        let function = ctx.names.function("rotate-secret");
        Ok(Some(Observed {
            secret_arn: s.arn().unwrap_or_default().to_string(),
            enabled,
            lambda_arn,
            days: s.rotation_rules().and_then(|r| r.automatically_after_days()),
            permission: permission(ctx, &function, None, PERMISSION).await?,
        }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let mut d = Vec::new();
        if !o.enabled {
            d.push(Drift::new("rotation", "off", "on"));
        }
        let function = function_arn(ctx)?;
        if o.lambda_arn.as_deref() != Some(function.as_str()) {
            d.push(Drift::new("rotation function", or_none(o.lambda_arn.as_ref()), function));
        }
        if o.days != Some(DAYS) {
            let every = |days: i64| format!("every {}", counted(days, "day"));
            d.push(Drift::new("rotation schedule", or_none(o.days.map(every)), every(DAYS)));
        }
        if o.permission.is_none() {
            d.push(Drift::missing("Secrets Manager's permission to invoke rotate-secret", "for this secret only"));
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("rotation_lambda_arn".into(), json!(o.lambda_arn)), ("rotation_days".into(), json!(o.days))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let secret = ctx.input(super::secrets::DB_MASTER, "secret_arn")?;
        let function = ctx.names.function("rotate-secret");
        let lambda_arn = function_arn(ctx)?;
        if observed.as_ref().and_then(|o| o.permission.as_ref()).is_none() {
            ctx.progress.step("letting Secrets Manager invoke rotate-secret for this secret only");
            ctx.clients
                .lambda
                .add_permission()
                .function_name(&function)
                .statement_id(PERMISSION)
                .action("lambda:InvokeFunction")
                .principal("secretsmanager.amazonaws.com")
                .source_arn(&secret)
                .source_account(&ctx.names.account)
                .send()
                .await
                .aws("lambda:AddPermission")
                .ok_if_exists()?;
        }
        let configured = observed
            .as_ref()
            .is_some_and(|o| o.enabled && o.lambda_arn.as_deref() == Some(lambda_arn.as_str()) && o.days == Some(DAYS));
        if !configured {
            ctx.progress.step(&format!("rotating {} every {DAYS} days", ctx.names.db_secret()));
            ctx.retry_while_propagating(&catalogue::SECRETS_ROTATION, &format!("function {function}"), || {
                ctx.clients
                    .secrets
                    .rotate_secret()
                    .secret_id(&secret)
                    .rotation_lambda_arn(&lambda_arn)
                    .rotation_rules(RotationRulesType::builder().automatically_after_days(DAYS).build())
                    .rotate_immediately(false)
                    .send()
                    .map(|r| r.aws("secretsmanager:RotateSecret"))
            })
            .await?;
        }
        Ok(Outputs::from([("rotation_lambda_arn".into(), json!(lambda_arn)), ("rotation_days".into(), json!(DAYS))]))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        ctx.progress.step("turning rotation off");
        ctx.clients
            .secrets
            .cancel_rotate_secret()
            .secret_id(ctx.names.db_secret())
            .send()
            .await
            .aws("secretsmanager:CancelRotateSecret")
            .ok_if_not_found()?;
        ctx.clients
            .lambda
            .remove_permission()
            .function_name(ctx.names.function("rotate-secret"))
            .statement_id(PERMISSION)
            .send()
            .await
            .aws("lambda:RemovePermission")
            .ok_if_not_found()?;
        Ok(())
    }
}
