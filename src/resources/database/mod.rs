//! The database layer: Aurora PostgreSQL Serverless v2 for customers, merchants and the ledger.

pub mod cluster;
pub mod instances;
pub mod parameter_group;
pub mod subnet_group;

use crate::aws::AwsResultExt;
use crate::resources::{Ctx, Result};
use aws_sdk_rds::types::Tag;
use std::collections::BTreeMap;

pub const ENGINE: &str = "aurora-postgresql";

pub fn rds_tags(ctx: &Ctx) -> Vec<Tag> {
    ctx.tags(None, None).iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

pub async fn tags_of(ctx: &Ctx, arn: &str) -> Result<BTreeMap<String, String>> {
    let out =
        ctx.clients.rds.list_tags_for_resource().resource_name(arn).send().await.aws("rds:ListTagsForResource")?;
    Ok(out.tag_list().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect())
}

pub async fn ensure_tags(ctx: &Ctx, arn: &str, have: &BTreeMap<String, String>) -> Result<()> {
    if ctx.tag_drift(have).is_some() {
        ctx.clients
            .rds
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(rds_tags(ctx)))
            .send()
            .await
            .aws("rds:AddTagsToResource")?;
    }
    Ok(())
}
