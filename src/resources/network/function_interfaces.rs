//! `network.function-interfaces`: the network interfaces Lambda puts in the private subnets for
//! the functions (one per subnet and security group). Lambda creates and removes them itself;
//! tapctl never makes one. The node exists for `destroy`: after the functions are deleted, AWS
//! takes a while — often 20 minutes or more — to release their interfaces, and until then the
//! subnets and the security group cannot be deleted. So this node sits between the functions
//! and the network: it waits, with the interfaces still held shown, while every node that does
//! not depend on the network (roles, keys, tables, the API…) is deleted in the meantime.
//! An interface Lambda left detached ("available") is deleted here rather than waited for.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::tag;
use crate::resources::network::filter;
use crate::resources::Outputs;
use crate::resources::{list, After, Change, Ctx, Resource, Result};
use async_trait::async_trait;

pub struct FunctionInterfaces;

pub const ID: &str = "network.function-interfaces";
/// How Lambda describes the interfaces it creates.
pub const LAMBDA_DESCRIPTION: &str = "AWS Lambda VPC ENI";

#[derive(Debug, Clone)]
pub struct Interface {
    pub id: String,
    pub status: String,
    pub description: String,
}

pub struct Observed {
    pub interfaces: Vec<Interface>,
}

/// The functions' security group of this suffix, found by its tags (destroy runs without inputs).
async fn functions_group(ctx: &Ctx) -> Result<Option<String>> {
    let out = ctx
        .clients
        .ec2
        .describe_security_groups()
        .filters(filter(&format!("tag:{}", tag::SUFFIX), [ctx.names.suffix.clone()]))
        .filters(filter(&format!("tag:{}", tag::RESOURCE), [super::security_groups::ID]))
        .filters(filter(&format!("tag:{}", tag::MEMBER), [super::security_groups::FUNCTIONS]))
        .send()
        .await
        .aws("ec2:DescribeSecurityGroups")?;
    Ok(out.security_groups().first().and_then(|g| g.group_id()).map(str::to_string))
}

pub async fn interfaces(ctx: &Ctx) -> Result<Vec<Interface>> {
    let Some(group) = functions_group(ctx).await? else { return Ok(vec![]) };
    let mut found = Vec::new();
    let mut pages = ctx
        .clients
        .ec2
        .describe_network_interfaces()
        .filters(filter("group-id", [group]))
        .into_paginator()
        .items()
        .send();
    while let Some(i) = pages.next().await {
        let i = i.aws("ec2:DescribeNetworkInterfaces")?;
        found.push(Interface {
            id: i.network_interface_id().unwrap_or_default().to_string(),
            status: i.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            description: i.description().unwrap_or_default().to_string(),
        });
    }
    Ok(found)
}

#[async_trait]
impl Resource for FunctionInterfaces {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn after(&self) -> &'static [After] {
        &[
            After {
                node: super::subnets::ID,
                why: "Lambda's interfaces live in the private subnets: released before they go",
            },
            After {
                node: super::security_groups::ID,
                why: "Lambda's interfaces carry the functions' group: released before it goes",
            },
        ]
    }

    /// Exists once recorded (or while interfaces are held): Lambda owns the interfaces, so
    /// "creating" this node only records that it watches them.
    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let interfaces = interfaces(ctx).await?;
        Ok((ctx.recorded.is_some() || !interfaces.is_empty()).then_some(Observed { interfaces }))
    }

    fn diff(&self, _ctx: &Ctx, _o: &Observed) -> Result<Change> {
        Ok(Change::NoOp)
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("network_interface_ids".into(), list(o.interfaces.iter().map(|i| i.id.clone())))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let o = match observed {
            Some(o) => o,
            None => Observed { interfaces: interfaces(ctx).await? },
        };
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        let ec2 = &ctx.clients.ec2;
        ctx.until_gone(
            "the functions' network interfaces (Lambda releases them)",
            ctx.waits.network_interfaces,
            || async move {
                let held = interfaces(ctx).await?;
                let mut in_use = Vec::new();
                for i in &held {
                    if i.status == "available" && i.description.starts_with(LAMBDA_DESCRIPTION) {
                        ctx.progress.step(&format!("deleting detached Lambda interface {}", i.id));
                        ec2.delete_network_interface()
                            .network_interface_id(&i.id)
                            .send()
                            .await
                            .aws("ec2:DeleteNetworkInterface")
                            .ok_if_not_found()?;
                    } else {
                        in_use.push(format!("{} ({})", i.id, i.status));
                    }
                }
                Ok((!in_use.is_empty()).then(|| format!("{} still held: {}", in_use.len(), in_use.join(", "))))
            },
        )
        .await
    }
}
