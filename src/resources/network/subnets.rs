//! `network.subnets`: nine subnets, a public, a private and a database subnet in each of three
//! availability zones. CIDRs come from `StackConfig::subnet_layout` (non-overlapping by
//! construction); AZs are the region's first three available zones, in name order.
//!
//! No subnet gives what is launched in it a public address (MapPublicIpOnLaunch off, AWS's
//! default for a subnet it did not make itself), the public tier included: the NAT gateway has
//! its Elastic IP and nothing else of the stack should be reachable from the internet
//! (PCI DSS v4.0.1 1.3.1, 1.4.1; Security Hub EC2.15). Turned on out of band, it is drift.

use super::{ensure_tags, member_of, missing_tags, owned_filters, tag_spec, tags_drift};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::config::SubnetPlan;
use crate::names::{Names, Tier};
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{each_member, list, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Tag};
use futures::FutureExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub struct Subnets;

pub const ID: &str = "network.subnets";

#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: String,
    pub cidr: String,
    pub az: String,
    pub tags: Vec<Tag>,
    /// MapPublicIpOnLaunch.
    pub public_ip_on_launch: bool,
}

pub struct Observed {
    pub azs: Vec<String>,
    /// By member name, e.g. "private-2".
    pub subnets: BTreeMap<String, Subnet>,
}

/// The stack's three availability zones, by name: the zones of `--availability-zones` (zone
/// ids, the same zone in every account), else the region's first three available zones by name
/// (local and wavelength zones excluded: RDS and NAT gateways need real AZs).
pub async fn availability_zones(ctx: &Ctx) -> Result<Vec<String>> {
    let out = ctx.clients.ec2.describe_availability_zones().send().await.aws("ec2:DescribeAvailabilityZones")?;
    let zones = out.availability_zones().iter().filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"));
    if let Some(wanted) = &ctx.config.availability_zones {
        // Chosen zones are resolved whatever their state: an impaired zone must not block a
        // plan or a destroy of subnets already in it (a create there is AWS's to refuse).
        let known: Vec<(String, String)> = zones
            .filter_map(|z| Some((z.zone_name()?.to_string(), z.zone_id().unwrap_or_default().to_string())))
            .collect();
        let available = &known;
        let mut names = wanted
            .iter()
            .map(|id| {
                available.iter().find(|(_, zid)| zid == id).map(|(name, _)| name.clone()).ok_or_else(|| {
                    let ids: Vec<&str> = available.iter().map(|(_, zid)| zid.as_str()).collect();
                    ResourceError::new(
                        "InvalidAvailabilityZone",
                        format!(
                            "--availability-zones names {id}, which is not an availability zone of {} (its zones: {})",
                            ctx.config.region,
                            ids.join(", ")
                        ),
                    )
                    .with_hint("choose three of the available zone ids with --availability-zones")
                })
            })
            .collect::<Result<Vec<String>>>()?;
        // In name order, like the default: the same zones typed in another order are the same.
        names.sort();
        return Ok(names);
    }
    let mut zones: Vec<String> = zones
        .filter(|z| z.state() == Some(&aws_sdk_ec2::types::AvailabilityZoneState::Available))
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect();
    zones.sort();
    if zones.len() < 3 {
        return Err(ResourceError::new(
            "NotEnoughAvailabilityZones",
            format!("region {} has {} available AZs; the stack needs 3", ctx.config.region, zones.len()),
        )
        .with_hint("choose a region with at least three availability zones"));
    }
    zones.truncate(3);
    Ok(zones)
}

/// AWS refusing a zone ("Value (us-east-1e) for parameter availabilityZone is invalid. Subnets
/// can currently only be created in the following availability zones: …") is said in the
/// stack's words: which zone, and the option that chooses others.
fn zone_refused(e: ResourceError, zone: &str) -> ResourceError {
    let about_zone = e.message.to_ascii_lowercase().contains("availabilityzone")
        || e.message.to_ascii_lowercase().contains("availability zone");
    if e.code.as_deref() != Some("InvalidParameterValue") || !about_zone {
        return e;
    }
    ResourceError {
        message: format!("AWS refuses a subnet in availability zone {zone}: {}", e.message),
        hint: Some(
            "choose three zones this account can use with --availability-zones (zone ids, e.g. use1-az1,use1-az2,use1-az4)"
                .into(),
        ),
        ..e
    }
}

fn member(plan: &SubnetPlan) -> String {
    Names::subnet_member(plan.tier, plan.az_index)
}

fn from_ec2(s: &aws_sdk_ec2::types::Subnet) -> Subnet {
    Subnet {
        id: s.subnet_id().unwrap_or_default().to_string(),
        cidr: s.cidr_block().unwrap_or_default().to_string(),
        az: s.availability_zone().unwrap_or_default().to_string(),
        tags: s.tags().to_vec(),
        public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
    }
}

impl Subnets {
    fn wanted_tags(ctx: &Ctx, plan: &SubnetPlan) -> Vec<(String, String)> {
        ctx.tags(Some(&member(plan)), Some(&ctx.names.subnet(plan.tier, plan.az_index)))
    }
}

#[async_trait]
impl Resource for Subnets {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::vpc::ID, key: "vpc_id" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let ec2 = &ctx.clients.ec2;
        let out =
            ec2.describe_subnets().set_filters(Some(owned_filters(ctx))).send().await.aws("ec2:DescribeSubnets")?;
        let mut subnets: BTreeMap<String, Subnet> = BTreeMap::new();
        for s in out.subnets() {
            if let Some(m) = member_of(s.tags()) {
                subnets.insert(m, from_ec2(s));
            }
        }
        // A subnet whose tags were removed is still ours if the state recorded its id.
        if let Some(Value::Object(recorded)) = ctx.recorded.as_ref().and_then(|r| r.get("subnets")) {
            for (m, v) in recorded {
                let Some(id) = v.get("id").and_then(Value::as_str) else {
                    continue;
                };
                if subnets.contains_key(m) {
                    continue;
                }
                let found =
                    ec2.describe_subnets().subnet_ids(id).send().await.aws("ec2:DescribeSubnets").ok_if_not_found()?;
                if let Some(s) = found.and_then(|o| o.subnets().first().cloned()) {
                    subnets.insert(m.clone(), from_ec2(&s));
                }
            }
        }
        if subnets.is_empty() {
            return Ok(None);
        }
        Ok(Some(Observed { azs: availability_zones(ctx).await?, subnets }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let mut drifts = Vec::new();
        for plan in ctx.config.subnet_layout() {
            let m = member(&plan);
            let az = &o.azs[plan.az_index];
            let Some(s) = o.subnets.get(&m) else {
                drifts.push(Drift::missing(format!("subnet {m}"), format!("{} in {az}", plan.cidr)));
                continue;
            };
            if s.cidr != plan.cidr.to_string() || &s.az != az {
                return Ok(Change::Replace(Drift::new(
                    format!("subnet {m}"),
                    format!("{} in {}", s.cidr, s.az),
                    format!("{} in {az}", plan.cidr),
                )));
            }
            if s.public_ip_on_launch {
                drifts.push(Drift::new(format!("subnet {m} public IP on launch"), "on", "off"));
            }
            drifts.extend(tags_drift(format!("subnet {m} tags"), &s.tags, &Self::wanted_tags(ctx, &plan)));
        }
        Ok(Change::from_drifts(drifts))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        let mut by_member = serde_json::Map::new();
        for (m, s) in &o.subnets {
            by_member.insert(m.clone(), json!({ "id": s.id, "cidr": s.cidr, "az": s.az }));
        }
        let mut out = Outputs::new();
        for tier in Tier::ALL {
            let of_tier = |f: fn(&Subnet) -> String| {
                list((0..3).filter_map(|i| o.subnets.get(&Names::subnet_member(tier, i)).map(f)))
            };
            out.insert(format!("{tier}_subnet_ids"), of_tier(|s| s.id.clone()));
            out.insert(format!("{tier}_subnet_cidrs"), of_tier(|s| s.cidr.clone()));
        }
        out.insert("subnets".into(), Value::Object(by_member));
        out.insert("availability_zones".into(), list(o.azs.clone()));
        out
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let mut o = match observed {
            Some(o) => o,
            None => Observed { azs: availability_zones(ctx).await?, subnets: BTreeMap::new() },
        };
        let vpc_id = ctx.input(super::vpc::ID, "vpc_id")?;
        let (have, missing): (Vec<SubnetPlan>, Vec<SubnetPlan>) =
            ctx.config.subnet_layout().into_iter().partition(|plan| o.subnets.contains_key(&member(plan)));
        each_member("subnet", have.iter().map(member), |m| {
            let plan = have.iter().find(|p| member(p) == m);
            let (s, tags) = (&o.subnets[&m], plan.map(|p| Self::wanted_tags(ctx, p)).unwrap_or_default());
            async move {
                if s.public_ip_on_launch {
                    ctx.progress.step(&format!("turning off public IPs on launch in subnet {m} ({})", s.id));
                    ctx.clients
                        .ec2
                        .modify_subnet_attribute()
                        .subnet_id(&s.id)
                        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(false).build())
                        .send()
                        .await
                        .aws("ec2:ModifySubnetAttribute")?;
                }
                ensure_tags(ctx, &s.id, &missing_tags(&s.tags, &tags)).await
            }
        })
        .await?;
        let azs = &o.azs;
        let created = each_member("subnet", missing.iter().map(member), |m| {
            let plan = missing.iter().find(|p| member(p) == m).cloned();
            let vpc_id = &vpc_id;
            async move {
                let plan = plan.ok_or_else(|| ResourceError::new("Internal", format!("no plan for subnet {m}")))?;
                let tags = Self::wanted_tags(ctx, &plan);
                ctx.progress.step(&format!("creating subnet {m}: {} in {}", plan.cidr, azs[plan.az_index]));
                let out = ctx
                    .retry_while_propagating(&catalogue::EC2_NEW_RESOURCE, &format!("VPC {vpc_id}"), || {
                        ctx.clients
                            .ec2
                            .create_subnet()
                            .vpc_id(vpc_id)
                            .cidr_block(plan.cidr.to_string())
                            .availability_zone(&azs[plan.az_index])
                            .tag_specifications(tag_spec(ResourceType::Subnet, &tags))
                            .send()
                            .map(|r| r.aws("ec2:CreateSubnet"))
                    })
                    .await
                    .map_err(|e| zone_refused(e, &azs[plan.az_index]))?;
                Ok(out.subnet().map(|s| (m, from_ec2(s))))
            }
        })
        .await?;
        o.subnets.extend(created.into_iter().flatten());
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        each_member("subnet", o.subnets.keys(), |m| {
            let s = &o.subnets[m];
            async move {
                ctx.progress.step(&format!("deleting subnet {m} ({})", s.id));
                ctx.clients
                    .ec2
                    .delete_subnet()
                    .subnet_id(&s.id)
                    .send()
                    .await
                    .aws("ec2:DeleteSubnet")
                    .ok_if_not_found()?;
                Ok(())
            }
        })
        .await?;
        Ok(())
    }
}

/// The ids of one tier's subnets, in AZ order, from the outputs of this node.
pub fn tier_ids(ctx: &Ctx, tier: Tier) -> Result<Vec<String>> {
    ctx.input_list(ID, &format!("{tier}_subnet_ids"))
}
