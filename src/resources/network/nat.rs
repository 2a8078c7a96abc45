//! `network.nat`: one NAT gateway in the first public subnet, giving the private tier (the
//! functions) outbound access. One, not three, by design: cost over AZ-independence of egress.
//! On AWS it takes a few minutes to become available; the wait is shown and bounded.

use super::{ensure_tags, is_owned, missing_tags, tag_spec, tags_drift};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::Tier;
use crate::resources::retry::{catalogue, Readiness};
use crate::resources::Outputs;
use crate::resources::{or_none, After, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{NatGateway, NatGatewayState, ResourceType, Tag};
use futures::FutureExt;
use serde_json::json;

pub struct NatGatewayNode;

pub const ID: &str = "network.nat";

pub struct Observed {
    pub id: String,
    pub state: NatGatewayState,
    pub subnet_id: String,
    pub allocation_id: Option<String>,
    pub tags: Vec<Tag>,
}

fn from_ec2(g: &NatGateway) -> Observed {
    Observed {
        id: g.nat_gateway_id().unwrap_or_default().to_string(),
        state: g.state().cloned().unwrap_or(NatGatewayState::Pending),
        subnet_id: g.subnet_id().unwrap_or_default().to_string(),
        allocation_id: g.nat_gateway_addresses().first().and_then(|a| a.allocation_id()).map(str::to_string),
        tags: g.tags().to_vec(),
    }
}

/// NAT gateways that still count: a deleted or failed one stays visible for an hour on AWS.
fn live(g: &NatGateway) -> bool {
    matches!(g.state(), Some(NatGatewayState::Pending | NatGatewayState::Available))
}

async fn describe(ctx: &Ctx, id: &str) -> Result<Option<NatGateway>> {
    let out = ctx
        .clients
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(id)
        .send()
        .await
        .aws("ec2:DescribeNatGateways")
        .ok_if_not_found()?;
    Ok(out.and_then(|o| o.nat_gateways().first().cloned()))
}

/// NAT gateway states (API NatGateway.State): available is ready; failed and anything on its
/// way out ends the wait; a state this build does not know is not ready.
fn readiness(g: &NatGateway) -> Readiness<()> {
    match g.state() {
        Some(NatGatewayState::Available) => Readiness::Ready(()),
        Some(NatGatewayState::Pending) => Readiness::Pending("state pending".into()),
        Some(NatGatewayState::Failed) => Readiness::Failed(g.failure_message().unwrap_or("no reason given").into()),
        Some(s @ (NatGatewayState::Deleting | NatGatewayState::Deleted)) => {
            Readiness::Failed(format!("state {}: it is being deleted", s.as_str()))
        }
        Some(other) => Readiness::Pending(format!("state {}", other.as_str())),
        None => Readiness::Pending("no state reported".into()),
    }
}

async fn wait_available(ctx: &Ctx, id: &str) -> Result<()> {
    ctx.until_ready(&format!("NAT gateway {id}"), ctx.waits.nat_gateway, || async move {
        Ok(describe(ctx, id).await?.map_or(Readiness::Absent, |g| readiness(&g)))
    })
    .await
}

#[async_trait]
impl Resource for NatGatewayNode {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: super::subnets::ID, key: "public_subnet_ids" },
            Input { node: super::eip::ID, key: "allocation_id" },
        ]
    }
    fn after(&self) -> &'static [After] {
        &[After {
            node: super::igw::ID,
            why: "a public NAT gateway fails in a VPC without an attached internet gateway",
        }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        if let Some(id) = ctx.recorded_str("nat_gateway_id") {
            if let Some(g) = describe(ctx, id).await?.filter(live) {
                return Ok(Some(from_ec2(&g)));
            }
        }
        // Not every endpoint filters NAT gateways by tag, so filter by state and check tags here.
        let mut found = Vec::new();
        let mut pages = ctx
            .clients
            .ec2
            .describe_nat_gateways()
            .filter(super::filter("state", ["pending", "available"]))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.aws("ec2:DescribeNatGateways")?;
            found.extend(page.nat_gateways().iter().filter(|g| live(g) && is_owned(g.tags(), ctx)).cloned());
        }
        Ok(super::single(found, "NAT gateway", |g| g.nat_gateway_id().unwrap_or_default().into())?
            .map(|g| from_ec2(&g)))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let subnet = super::subnets::tier_ids(ctx, Tier::Public)?.into_iter().next().unwrap_or_default();
        let eip = ctx.input(super::eip::ID, "allocation_id")?;
        if o.subnet_id != subnet {
            return Ok(Change::Replace(Drift::new("NAT gateway subnet", &o.subnet_id, subnet)));
        }
        if o.allocation_id.as_deref() != Some(eip.as_str()) {
            return Ok(Change::Replace(Drift::new("NAT gateway Elastic IP", or_none(o.allocation_id.as_ref()), eip)));
        }
        let mut drifts = Vec::new();
        if o.state == NatGatewayState::Pending {
            drifts.push(Drift::new("state", "pending", "available"));
        }
        drifts.extend(tags_drift("tags", &o.tags, &ctx.tags(None, Some(&ctx.names.nat()))));
        Ok(Change::from_drifts(drifts))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("nat_gateway_id".into(), json!(o.id))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let tags = ctx.tags(None, Some(&ctx.names.nat()));
        let o = match observed {
            Some(o) => {
                ensure_tags(ctx, &o.id, &missing_tags(&o.tags, &tags)).await?;
                o
            }
            None => {
                let subnet = super::subnets::tier_ids(ctx, Tier::Public)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| ResourceError::new("MissingInput", "no public subnet to put the NAT gateway in"))?;
                let eip = ctx.input(super::eip::ID, "allocation_id")?;
                ctx.progress.step(&format!("creating NAT gateway in subnet {subnet} with Elastic IP {eip}"));
                // No fixed client token: the SDK sets a fresh one per call and reuses it across its
                // own retries. A fixed one would make AWS hand back a deleted gateway after an
                // out-of-band delete. A run killed mid-create is covered by the tags instead.
                let out = ctx
                    .retry_while_propagating(
                        &catalogue::EC2_NEW_RESOURCE,
                        &format!("subnet {subnet}, address {eip}"),
                        || {
                            ctx.clients
                                .ec2
                                .create_nat_gateway()
                                .subnet_id(&subnet)
                                .allocation_id(&eip)
                                .tag_specifications(tag_spec(ResourceType::Natgateway, &tags))
                                .send()
                                .map(|r| r.aws("ec2:CreateNatGateway"))
                        },
                    )
                    .await?;
                let created = out
                    .nat_gateway()
                    .map(from_ec2)
                    .ok_or_else(|| ResourceError::new("EmptyResponse", "CreateNatGateway returned no gateway"))?;
                // A new gateway is never usable at once, whatever the create response says:
                // the route tables need it available.
                Observed { state: NatGatewayState::Pending, ..created }
            }
        };
        if o.state != NatGatewayState::Available {
            wait_available(ctx, &o.id).await?;
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        ctx.progress.step(&format!("deleting NAT gateway {}", o.id));
        ctx.clients
            .ec2
            .delete_nat_gateway()
            .nat_gateway_id(&o.id)
            .send()
            .await
            .aws("ec2:DeleteNatGateway")
            .ok_if_not_found()?;
        // The Elastic IP cannot be released until the gateway is fully gone.
        let id = o.id.as_str();
        ctx.until_gone(&format!("NAT gateway {id}"), ctx.waits.nat_gateway, || async move {
            Ok(match describe(ctx, id).await?.and_then(|g| g.state().cloned()) {
                None | Some(NatGatewayState::Deleted | NatGatewayState::Failed) => None,
                Some(s) => Some(format!("state {}", s.as_str())),
            })
        })
        .await
    }
}
