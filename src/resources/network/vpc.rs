//! `network.vpc`: the VPC, with DNS support and DNS host names (needed by the interface and
//! gateway endpoints and by RDS endpoints resolving inside the VPC).

use super::{ensure_tags, filter, missing_tags, owned_filters, single, tag_spec, tags_drift};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{Change, Ctx, Drift, Resource, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Tag, VpcAttributeName};
use futures::FutureExt;
use serde_json::json;

pub struct Vpc;

pub const ID: &str = "network.vpc";

pub struct Observed {
    pub id: String,
    pub cidr: String,
    pub tags: Vec<Tag>,
    pub dns_support: bool,
    pub dns_hostnames: bool,
}

async fn attribute(ctx: &Ctx, id: &str, attr: VpcAttributeName) -> Result<bool> {
    let out = ctx
        .clients
        .ec2
        .describe_vpc_attribute()
        .vpc_id(id)
        .attribute(attr.clone())
        .send()
        .await
        .aws("ec2:DescribeVpcAttribute")?;
    let v = match attr {
        VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
        _ => out.enable_dns_hostnames(),
    };
    Ok(v.and_then(|b| b.value()).unwrap_or(false))
}

#[async_trait]
impl Resource for Vpc {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let ec2 = &ctx.clients.ec2;
        let mut found = None;
        if let Some(id) = ctx.recorded_str("vpc_id") {
            let out = ec2.describe_vpcs().vpc_ids(id).send().await.aws("ec2:DescribeVpcs").ok_if_not_found()?;
            found = out.and_then(|o| o.vpcs().first().cloned());
        }
        if found.is_none() {
            let out = ec2.describe_vpcs().set_filters(Some(owned_filters(ctx))).send().await.aws("ec2:DescribeVpcs")?;
            found = single(out.vpcs().to_vec(), "VPC", |v| v.vpc_id().unwrap_or_default().to_string())?;
        }
        let Some(vpc) = found else { return Ok(None) };
        let id = vpc.vpc_id().unwrap_or_default().to_string();
        Ok(Some(Observed {
            dns_support: attribute(ctx, &id, VpcAttributeName::EnableDnsSupport).await?,
            dns_hostnames: attribute(ctx, &id, VpcAttributeName::EnableDnsHostnames).await?,
            cidr: vpc.cidr_block().unwrap_or_default().to_string(),
            tags: vpc.tags().to_vec(),
            id,
        }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let want = ctx.config.vpc_cidr.to_string();
        if o.cidr != want {
            return Ok(Change::Replace(Drift::new("VPC CIDR", &o.cidr, want)));
        }
        let mut drifts = Vec::new();
        if !o.dns_support {
            drifts.push(Drift::new("DNS support", "off", "on"));
        }
        if !o.dns_hostnames {
            drifts.push(Drift::new("DNS host names", "off", "on"));
        }
        drifts.extend(tags_drift("tags", &o.tags, &ctx.tags(None, Some(&ctx.names.vpc()))));
        Ok(Change::from_drifts(drifts))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("vpc_id".into(), json!(o.id)), ("vpc_cidr".into(), json!(o.cidr))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let ec2 = &ctx.clients.ec2;
        let tags = ctx.tags(None, Some(&ctx.names.vpc()));
        let o = match observed {
            Some(o) => o,
            None => {
                ctx.progress.step(&format!("creating VPC {}", ctx.config.vpc_cidr));
                let out = ec2
                    .create_vpc()
                    .cidr_block(ctx.config.vpc_cidr.to_string())
                    .tag_specifications(tag_spec(ResourceType::Vpc, &tags))
                    .send()
                    .await
                    .aws("ec2:CreateVpc")?;
                let vpc = out.vpc();
                Observed {
                    id: vpc.and_then(|v| v.vpc_id()).unwrap_or_default().to_string(),
                    cidr: ctx.config.vpc_cidr.to_string(),
                    tags: vpc.map(|v| v.tags().to_vec()).unwrap_or_default(),
                    dns_support: true, // AWS's default for a new VPC
                    dns_hostnames: false,
                }
            }
        };
        let on = || AttributeBooleanValue::builder().value(true).build();
        // AWS takes one attribute per ModifyVpcAttribute call.
        if !o.dns_support {
            ctx.progress.step("turning on DNS support");
            ctx.retry_while_propagating(&catalogue::EC2_NEW_RESOURCE, &format!("VPC {}", o.id), || {
                ec2.modify_vpc_attribute()
                    .vpc_id(&o.id)
                    .enable_dns_support(on())
                    .send()
                    .map(|r| r.aws("ec2:ModifyVpcAttribute"))
            })
            .await?;
        }
        if !o.dns_hostnames {
            ctx.progress.step("turning on DNS host names");
            ctx.retry_while_propagating(&catalogue::EC2_NEW_RESOURCE, &format!("VPC {}", o.id), || {
                ec2.modify_vpc_attribute()
                    .vpc_id(&o.id)
                    .enable_dns_hostnames(on())
                    .send()
                    .map(|r| r.aws("ec2:ModifyVpcAttribute"))
            })
            .await?;
        }
        ensure_tags(ctx, &o.id, &missing_tags(&o.tags, &tags)).await?;
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        ctx.progress.step(&format!("deleting VPC {}", o.id));
        ctx.clients.ec2.delete_vpc().vpc_id(&o.id).send().await.aws("ec2:DeleteVpc").ok_if_not_found()?;
        Ok(())
    }
}

/// The VPC id for lookups that run without inputs (destroy): from the tags.
pub async fn find_vpc_id(ctx: &Ctx) -> Result<Option<String>> {
    if let Ok(id) = ctx.input(ID, "vpc_id") {
        return Ok(Some(id));
    }
    let out = ctx
        .clients
        .ec2
        .describe_vpcs()
        .filters(filter(&format!("tag:{}", crate::names::tag::SUFFIX), [ctx.names.suffix.clone()]))
        .filters(filter(&format!("tag:{}", crate::names::tag::RESOURCE), [ID]))
        .send()
        .await
        .aws("ec2:DescribeVpcs")?;
    Ok(out.vpcs().first().and_then(|v| v.vpc_id()).map(str::to_string))
}
