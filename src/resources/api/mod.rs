//! The payment API: the REST API itself (`api.rest`) and the account-wide CloudWatch role API
//! Gateway needs to write access and execution logs (`api.account-logging`), the custom domain
//! clients use (`api.domain`); `stage` reads and changes who gets the traffic.

pub mod account_logging;
pub mod domain;
pub mod rest;
pub mod stage;

use crate::aws::AwsResultExt;
use crate::resources::{Ctx, Result};
use aws_sdk_apigateway::types::{Op, PatchOperation};

/// API Gateway's one patch verb tapctl uses to set a value: `replace` at `path` (every Update*
/// call of API Gateway takes a list of these).
pub(crate) fn replace(path: impl Into<String>, value: impl Into<String>) -> PatchOperation {
    PatchOperation::builder().op(Op::Replace).path(path).value(value).build()
}

/// Sets the stack's tags for `name` on an API Gateway resource, named by its path
/// (`/restapis/{id}`, `/domainnames/{name}`): API Gateway's ARNs have no account.
pub(crate) async fn tag(ctx: &Ctx, resource_path: &str, name: &str) -> Result<()> {
    ctx.clients
        .apigateway
        .tag_resource()
        .resource_arn(format!("arn:aws:apigateway:{}::{resource_path}", ctx.names.region))
        .set_tags(Some(ctx.tags(None, Some(name)).into_iter().collect()))
        .send()
        .await
        .aws("apigateway:TagResource")?;
    Ok(())
}
