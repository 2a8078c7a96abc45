//! `network.endpoints`: gateway endpoints for S3 and DynamoDB on the private route table, so the
//! functions reach the audit bucket and the transactions table without crossing the internet.

use super::{ensure_tags, is_owned, member_of, missing_tags, tag_spec, tags_drift};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{listed, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, Tag, VpcEndpoint, VpcEndpointType};
use futures::FutureExt;
use serde_json::json;
use std::collections::BTreeMap;

pub struct GatewayEndpoints;

pub const ID: &str = "network.endpoints";
const SERVICES: [&str; 2] = ["s3", "dynamodb"];

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub route_tables: Vec<String>,
    pub tags: Vec<Tag>,
}

pub struct Observed {
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// An endpoint that still counts. AWS spells the states both "Available" and "available",
/// so they are compared without case.
fn live(e: &VpcEndpoint) -> bool {
    let state = e.state().map(|s| s.as_str().to_ascii_lowercase()).unwrap_or_default();
    !matches!(state.as_str(), "deleted" | "deleting" | "failed" | "rejected" | "expired")
}

fn from_ec2(e: &VpcEndpoint) -> Endpoint {
    Endpoint {
        id: e.vpc_endpoint_id().unwrap_or_default().to_string(),
        route_tables: e.route_table_ids().to_vec(),
        tags: e.tags().to_vec(),
    }
}

fn service_name(ctx: &Ctx, service: &str) -> String {
    format!("com.amazonaws.{}.{service}", ctx.config.region)
}

fn wanted_tags(ctx: &Ctx, service: &str) -> Vec<(String, String)> {
    ctx.tags(Some(service), Some(&ctx.names.endpoint(service)))
}

enum Fix {
    Create(&'static str),
    /// `have`: the route tables the endpoint is on now; `want`: the private one.
    Routes {
        service: &'static str,
        have: Vec<String>,
        want: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// The tags to add, and the drift they repair.
    Tags(&'static str, Vec<(String, String)>, Drift),
}

fn fixes(ctx: &Ctx, o: &Observed) -> Result<Vec<Fix>> {
    let private_rt = ctx.input(super::route_tables::ID, "private_route_table_id")?;
    let mut out = Vec::new();
    for service in SERVICES {
        let Some(e) = o.endpoints.get(service) else {
            out.push(Fix::Create(service));
            continue;
        };
        let add: Vec<String> =
            (!e.route_tables.contains(&private_rt)).then(|| private_rt.clone()).into_iter().collect();
        let remove: Vec<String> = e.route_tables.iter().filter(|r| **r != private_rt).cloned().collect();
        if !add.is_empty() || !remove.is_empty() {
            out.push(Fix::Routes { service, have: e.route_tables.clone(), want: private_rt.clone(), add, remove });
        }
        let want = wanted_tags(ctx, service);
        if let Some(drift) = tags_drift(format!("{service} gateway endpoint tags"), &e.tags, &want) {
            out.push(Fix::Tags(service, missing_tags(&e.tags, &want), drift));
        }
    }
    Ok(out)
}

impl Fix {
    /// How the endpoints differ, for plan and status.
    fn drift(&self, ctx: &Ctx) -> Drift {
        match self {
            Fix::Create(s) => Drift::missing(
                format!("{s} gateway endpoint"),
                format!("{} on the private route table", service_name(ctx, s)),
            ),
            Fix::Routes { service, have, want, .. } => {
                Drift::new(format!("{service} gateway endpoint route tables"), listed(have), want)
            }
            Fix::Tags(_, _, drift) => drift.clone(),
        }
    }

    /// What `up` does about it, for its progress; None where `ensure_tags` says it.
    fn action(&self, ctx: &Ctx) -> Option<String> {
        Some(match self {
            Fix::Create(s) => {
                format!("creating {s} gateway endpoint ({}) on the private route table", service_name(ctx, s))
            }
            Fix::Routes { service, add, remove, .. } => {
                let mut parts = Vec::new();
                if !add.is_empty() {
                    parts.push(format!("adding route table {}", listed(add)));
                }
                if !remove.is_empty() {
                    parts.push(format!("removing route table {}", listed(remove)));
                }
                format!("{service} gateway endpoint: {}", parts.join(", "))
            }
            Fix::Tags(..) => return None,
        })
    }
}

#[async_trait]
impl Resource for GatewayEndpoints {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: super::vpc::ID, key: "vpc_id" },
            Input { node: super::route_tables::ID, key: "private_route_table_id" },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let ec2 = &ctx.clients.ec2;
        let mut endpoints = BTreeMap::new();
        let mut request = ec2.describe_vpc_endpoints();
        if let Some(vpc) = super::vpc::find_vpc_id(ctx).await? {
            request = request.filters(super::filter("vpc-id", [vpc]));
        }
        let mut pages = request.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.aws("ec2:DescribeVpcEndpoints")?;
            for e in page.vpc_endpoints().iter().filter(|e| live(e) && is_owned(e.tags(), ctx)) {
                if let Some(m) = member_of(e.tags()) {
                    endpoints.insert(m, from_ec2(e));
                }
            }
        }
        for service in SERVICES {
            if endpoints.contains_key(service) {
                continue;
            }
            if let Some(id) = ctx.recorded_str(&format!("{service}_endpoint_id")) {
                let out = ec2
                    .describe_vpc_endpoints()
                    .vpc_endpoint_ids(id)
                    .send()
                    .await
                    .aws("ec2:DescribeVpcEndpoints")
                    .ok_if_not_found()?;
                if let Some(e) = out.as_ref().and_then(|o| o.vpc_endpoints().first()).filter(|e| live(e)) {
                    endpoints.insert(service.to_string(), from_ec2(e));
                }
            }
        }
        Ok((!endpoints.is_empty()).then_some(Observed { endpoints }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        Ok(Change::from_drifts(fixes(ctx, o)?.iter().map(|f| f.drift(ctx)).collect()))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        o.endpoints.iter().map(|(s, e)| (format!("{s}_endpoint_id"), json!(e.id))).collect()
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let ec2 = &ctx.clients.ec2;
        let mut o = observed.unwrap_or(Observed { endpoints: BTreeMap::new() });
        for fix in fixes(ctx, &o)? {
            if let Some(step) = fix.action(ctx) {
                ctx.progress.step(&step);
            }
            match fix {
                Fix::Create(service) => {
                    let private_rt = ctx.input(super::route_tables::ID, "private_route_table_id")?;
                    let vpc_id = ctx.input(super::vpc::ID, "vpc_id")?;
                    let out = ctx
                        .retry_while_propagating(
                            &catalogue::EC2_NEW_RESOURCE,
                            &format!("VPC {vpc_id}, route table {private_rt}"),
                            || {
                                ec2.create_vpc_endpoint()
                                    .vpc_id(&vpc_id)
                                    .vpc_endpoint_type(VpcEndpointType::Gateway)
                                    .service_name(service_name(ctx, service))
                                    .route_table_ids(&private_rt)
                                    .tag_specifications(tag_spec(ResourceType::VpcEndpoint, &wanted_tags(ctx, service)))
                                    .send()
                                    .map(|r| r.aws("ec2:CreateVpcEndpoint"))
                            },
                        )
                        .await?;
                    let e = out
                        .vpc_endpoint()
                        .ok_or_else(|| ResourceError::new("EmptyResponse", "CreateVpcEndpoint returned no endpoint"))?;
                    o.endpoints.insert(service.to_string(), from_ec2(e));
                }
                Fix::Routes { service, add, remove, .. } => {
                    ec2.modify_vpc_endpoint()
                        .vpc_endpoint_id(&o.endpoints[service].id)
                        .set_add_route_table_ids(Some(add).filter(|v| !v.is_empty()))
                        .set_remove_route_table_ids(Some(remove).filter(|v| !v.is_empty()))
                        .send()
                        .await
                        .aws("ec2:ModifyVpcEndpoint")?;
                }
                Fix::Tags(service, missing, _) => ensure_tags(ctx, &o.endpoints[service].id, &missing).await?,
            }
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let ids: Vec<String> = o.endpoints.values().map(|e| e.id.clone()).collect();
        ctx.progress.step(&format!("deleting gateway endpoints {}", ids.join(", ")));
        ctx.clients
            .ec2
            .delete_vpc_endpoints()
            .set_vpc_endpoint_ids(Some(ids))
            .send()
            .await
            .aws("ec2:DeleteVpcEndpoints")
            .ok_if_not_found()?;
        Ok(())
    }
}
