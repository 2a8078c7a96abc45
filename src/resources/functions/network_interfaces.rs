//! `functions.network-interfaces`: the finalizer of the functions (kube-runtime's named cleanup).
//! Lambda puts network interfaces in the private subnets for the functions (one per subnet and
//! security group, shared by every function with that pair); tapctl never makes one. After the
//! functions are deleted, Lambda takes a while to release them — terraform-provider-aws waits up
//! to 45 minutes, on the Lambda team's word (commit 922037e, "Updated handling for Lambda
//! Hyperplane ENIs") — and until then the subnets and the security group cannot be deleted. So a
//! destroy runs this after the last function is gone and before those two nodes, with the
//! interfaces still held shown, while every node that does not need the network is deleted in the
//! meantime. An interface Lambda left detached ("available") is deleted here rather than waited for.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::{tag, FUNCTIONS};
use crate::resources::network::{filter, security_groups, subnets};
use crate::resources::{After, Ctx, Finalizer, Result};
use async_trait::async_trait;

pub struct NetworkInterfaces;

pub const ID: &str = "functions.network-interfaces";

/// How Lambda describes the interfaces it creates.
pub const LAMBDA_DESCRIPTION: &str = "AWS Lambda VPC ENI";

#[derive(Debug, Clone)]
pub struct Interface {
    pub id: String,
    pub status: String,
    pub description: String,
}

/// The functions' security group of this suffix, found by its tags (destroy runs without inputs).
async fn functions_group(ctx: &Ctx) -> Result<Option<String>> {
    let out = ctx
        .clients
        .ec2
        .describe_security_groups()
        .filters(filter(&format!("tag:{}", tag::SUFFIX), [ctx.names.suffix.clone()]))
        .filters(filter(&format!("tag:{}", tag::RESOURCE), [security_groups::ID]))
        .filters(filter(&format!("tag:{}", tag::MEMBER), [security_groups::FUNCTIONS]))
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
impl Finalizer for NetworkInterfaces {
    fn id(&self) -> &'static str {
        ID
    }
    fn owners(&self) -> Vec<&'static str> {
        FUNCTIONS.iter().map(|f| super::id_of(f)).collect()
    }
    fn before(&self) -> &'static [After] {
        &[
            After {
                node: subnets::ID,
                why: "Lambda's interfaces live in the private subnets: released before they go",
            },
            After {
                node: security_groups::ID,
                why: "Lambda's interfaces carry the functions' group: released before it goes",
            },
        ]
    }

    async fn run(&self, ctx: &Ctx) -> Result<bool> {
        if interfaces(ctx).await?.is_empty() {
            return Ok(false);
        }
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
        .await?;
        Ok(true)
    }
}
