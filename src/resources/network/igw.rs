//! `network.igw`: the internet gateway of the public tier, attached to the VPC.

use super::{ensure_tags, missing_tags, owned_filters, single, tag_spec, tags_drift};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{listed, Change, Ctx, Drift, Input, Resource, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{InternetGateway, ResourceType, Tag};
use futures::FutureExt;
use serde_json::json;

pub struct InternetGatewayNode;

pub const ID: &str = "network.igw";

pub struct Observed {
    pub id: String,
    pub tags: Vec<Tag>,
    pub attached_to: Vec<String>,
}

fn from_ec2(g: &InternetGateway) -> Observed {
    Observed {
        id: g.internet_gateway_id().unwrap_or_default().to_string(),
        tags: g.tags().to_vec(),
        attached_to: g.attachments().iter().filter_map(|a| a.vpc_id().map(str::to_string)).collect(),
    }
}

#[async_trait]
impl Resource for InternetGatewayNode {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::vpc::ID, key: "vpc_id" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let ec2 = &ctx.clients.ec2;
        if let Some(id) = ctx.recorded_str("igw_id") {
            let out = ec2
                .describe_internet_gateways()
                .internet_gateway_ids(id)
                .send()
                .await
                .aws("ec2:DescribeInternetGateways")
                .ok_if_not_found()?;
            if let Some(g) = out.as_ref().and_then(|o| o.internet_gateways().first()) {
                return Ok(Some(from_ec2(g)));
            }
        }
        let out = ec2
            .describe_internet_gateways()
            .set_filters(Some(owned_filters(ctx)))
            .send()
            .await
            .aws("ec2:DescribeInternetGateways")?;
        Ok(single(out.internet_gateways().to_vec(), "internet gateway", |g| {
            g.internet_gateway_id().unwrap_or_default().into()
        })?
        .map(|g| from_ec2(&g)))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let vpc_id = ctx.input(super::vpc::ID, "vpc_id")?;
        let mut drifts = Vec::new();
        if !o.attached_to.contains(&vpc_id) {
            drifts.push(Drift::new("attached to", listed(&o.attached_to), vpc_id));
        }
        drifts.extend(tags_drift("tags", &o.tags, &ctx.tags(None, Some(&ctx.names.igw()))));
        Ok(Change::from_drifts(drifts))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("igw_id".into(), json!(o.id))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let ec2 = &ctx.clients.ec2;
        let vpc_id = ctx.input(super::vpc::ID, "vpc_id")?;
        let tags = ctx.tags(None, Some(&ctx.names.igw()));
        let o = match observed {
            Some(o) => o,
            None => {
                ctx.progress.step("creating internet gateway");
                let out = ec2
                    .create_internet_gateway()
                    .tag_specifications(tag_spec(ResourceType::InternetGateway, &tags))
                    .send()
                    .await
                    .aws("ec2:CreateInternetGateway")?;
                out.internet_gateway().map(from_ec2).unwrap_or(Observed {
                    id: String::new(),
                    tags: vec![],
                    attached_to: vec![],
                })
            }
        };
        if !o.attached_to.contains(&vpc_id) {
            ctx.progress.step(&format!("attaching internet gateway {} to VPC {vpc_id}", o.id));
            ctx.retry_while_propagating(
                &catalogue::EC2_NEW_RESOURCE,
                &format!("internet gateway {}, VPC {vpc_id}", o.id),
                || {
                    ec2.attach_internet_gateway()
                        .internet_gateway_id(&o.id)
                        .vpc_id(&vpc_id)
                        .send()
                        .map(|r| r.aws("ec2:AttachInternetGateway"))
                },
            )
            .await?;
        }
        ensure_tags(ctx, &o.id, &missing_tags(&o.tags, &tags)).await?;
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let ec2 = &ctx.clients.ec2;
        for vpc in &o.attached_to {
            ctx.progress.step(&format!("detaching {} from {vpc}", o.id));
            ec2.detach_internet_gateway()
                .internet_gateway_id(&o.id)
                .vpc_id(vpc)
                .send()
                .await
                .aws("ec2:DetachInternetGateway")
                .ok_if_not_found()?;
        }
        ec2.delete_internet_gateway()
            .internet_gateway_id(&o.id)
            .send()
            .await
            .aws("ec2:DeleteInternetGateway")
            .ok_if_not_found()?;
        Ok(())
    }
}
