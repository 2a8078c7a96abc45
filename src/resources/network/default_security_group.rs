//! `network.default-security-group`: the VPC's default security group, stripped of every rule
//! (PCI DSS v4.0.1 1.2.1, 1.3.1, 1.3.2; Security Hub EC2.2; CIS AWS 5.4). AWS makes it with the
//! VPC — an allow-all ingress rule from the group itself and an allow-all egress rule — and it
//! cannot be deleted: anything launched without a group of its own lands in it, so it must admit
//! and send nothing.
//!
//! A node of its own rather than a member of `network.security-groups`: tapctl neither creates
//! nor deletes it (AWS does both, with the VPC), it is found through the VPC and not by tapctl's
//! tags, and its drift is only ever "a rule that should not exist". `destroy` leaves it to the
//! VPC's deletion.

use super::security_groups::{flatten, revoke, Gone, Peer, Rule};
use super::{ensure_tags, filter, missing_tags, tags_drift};
use crate::aws::AwsResultExt;
use crate::resources::retry::Readiness;
use crate::resources::{Change, Ctx, Drift, Input, Outputs, Resource, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{SecurityGroup, Tag};
use serde_json::json;

pub struct DefaultSecurityGroup;

pub const ID: &str = "network.default-security-group";

#[derive(Debug, Clone)]
pub struct Observed {
    pub id: String,
    pub rules: Vec<Rule>,
    pub tags: Vec<Tag>,
}

fn from_ec2(g: &SecurityGroup) -> Observed {
    let mut rules = flatten(g.ip_permissions(), false);
    rules.extend(flatten(g.ip_permissions_egress(), true));
    Observed { id: g.group_id().unwrap_or_default().to_string(), tags: g.tags().to_vec(), rules }
}

/// AWS names the group `default` (and it cannot be renamed); the Name tag says whose it is.
fn name(ctx: &Ctx) -> String {
    format!("{}-default", ctx.names.vpc())
}

/// A rule as an operator reads it: `ingress all traffic from sg-1`, `egress TCP 22 to 0.0.0.0/0`.
pub fn words(r: &Rule) -> String {
    let what = match (r.protocol.as_str(), r.ports) {
        ("-1", _) => "all traffic".to_string(),
        (p, ports) => {
            let p = match p {
                "tcp" | "6" => "TCP".to_string(),
                "udp" | "17" => "UDP".to_string(),
                "icmp" | "1" => "ICMP".to_string(),
                other => format!("protocol {other}"),
            };
            match ports {
                Some((a, b)) if a == b => format!("{p} {a}"),
                Some((a, b)) => format!("{p} {a}–{b}"),
                None => format!("{p} all ports"),
            }
        }
    };
    let peer = match &r.peer {
        Peer::Cidr(c) | Peer::Ipv6Cidr(c) | Peer::Group(c) => c.clone(),
        Peer::PrefixList(l) => format!("prefix list {l}"),
    };
    format!("{} {what} {} {peer}", if r.egress { "egress" } else { "ingress" }, if r.egress { "to" } else { "from" })
}

async fn find(ctx: &Ctx, vpc_id: &str) -> Result<Option<Observed>> {
    let out = ctx
        .clients
        .ec2
        .describe_security_groups()
        .filters(filter("vpc-id", [vpc_id]))
        .filters(filter("group-name", ["default"]))
        .send()
        .await
        .aws("ec2:DescribeSecurityGroups")?;
    Ok(out.security_groups().first().map(from_ec2))
}

#[async_trait]
impl Resource for DefaultSecurityGroup {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::vpc::ID, key: "vpc_id" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let Some(vpc_id) = super::vpc::find_vpc_id(ctx).await? else { return Ok(None) };
        find(ctx, &vpc_id).await
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let mut d: Vec<Drift> = o
            .rules
            .iter()
            .map(|r| Drift::new(format!("default security group {}", words(r)), "present", "absent"))
            .collect();
        d.extend(tags_drift("default security group tags", &o.tags, &ctx.tags(None, Some(&name(ctx)))));
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("default_sg_id".into(), json!(o.id))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let o = match observed {
            Some(o) => o,
            None => {
                // Made by AWS with the VPC, which may have been made moments ago: EC2 reads are
                // eventually consistent (ec2/latest/devguide/eventual-consistency.html).
                let vpc_id = ctx.input(super::vpc::ID, "vpc_id")?;
                ctx.until_ready(
                    &format!("the default security group of {vpc_id}"),
                    ctx.waits.eventual_consistency,
                    || {
                        let vpc_id = vpc_id.clone();
                        async move { Ok(find(ctx, &vpc_id).await?.map_or(Readiness::Absent, Readiness::Ready)) }
                    },
                )
                .await?
            }
        };
        for rule in &o.rules {
            ctx.progress.step(&format!("removing from the default security group: {}", words(rule)));
            revoke(ctx, &o.id, rule, Gone::MayBeNew).await?;
        }
        ensure_tags(ctx, &o.id, &missing_tags(&o.tags, &ctx.tags(None, Some(&name(ctx))))).await?;
        Ok(self.outputs(ctx, &Observed { rules: vec![], ..o }))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        ctx.progress.step(&format!("leaving the default security group {} to go with the VPC", o.id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};

    #[test]
    fn each_rule_of_the_default_group_is_named_as_present_and_wanted_absent() {
        let ctx = ctx(ID, DefaultSecurityGroup.reads(), &[]);
        // As AWS makes it, plus an SSH rule added out of band.
        let o = Observed {
            id: "sg-d".into(),
            tags: super::super::ec2_tags(&ctx.tags(None, Some(&name(&ctx)))),
            rules: vec![
                Rule { egress: false, protocol: "-1".into(), ports: None, peer: Peer::Group("sg-d".into()) },
                Rule { egress: true, protocol: "-1".into(), ports: None, peer: Peer::Cidr("0.0.0.0/0".into()) },
                Rule {
                    egress: false,
                    protocol: "tcp".into(),
                    ports: Some((22, 22)),
                    peer: Peer::Ipv6Cidr("::/0".into()),
                },
            ],
        };
        let change = DefaultSecurityGroup.diff(&ctx, &o).unwrap();
        let d: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            d,
            [
                "default security group ingress all traffic from sg-d: present → absent",
                "default security group egress all traffic to 0.0.0.0/0: present → absent",
                "default security group ingress TCP 22 from ::/0: present → absent",
            ]
        );
        assert_plain(&change.drifts());
        let clean = Observed { rules: vec![], ..o };
        assert_eq!(DefaultSecurityGroup.diff(&ctx, &clean).unwrap(), Change::NoOp);
    }
}
