//! `network.security-groups`: the functions' group and the database's group. The database
//! admits PostgreSQL (5432) from the functions' group only and opens no connection itself; the
//! functions may reach HTTPS (AWS APIs) and the database, nothing else. AWS's default
//! allow-all egress rule is removed.

use super::{ensure_tags, member_of, missing_tags, owned_filters, tag_spec, tags_drift};
use crate::aws::{AwsError, AwsResultExt, NotFoundExt};
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroup, Tag, UserIdGroupPair,
};
use futures::FutureExt;
use serde_json::json;
use std::collections::BTreeMap;

pub struct SecurityGroups;

pub const ID: &str = "network.security-groups";
pub const FUNCTIONS: &str = "functions";
pub const DATABASE: &str = "database";
const MEMBERS: [&str; 2] = [FUNCTIONS, DATABASE];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    Cidr(String),
    /// An IPv6 range (`::/0`): read so that a rule added for it out of band is seen and revoked.
    Ipv6Cidr(String),
    Group(String),
    PrefixList(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub egress: bool,
    pub protocol: String,
    pub ports: Option<(i32, i32)>,
    pub peer: Peer,
}

impl Rule {
    fn tcp(egress: bool, port: i32, peer: Peer) -> Rule {
        Rule { egress, protocol: "tcp".into(), ports: Some((port, port)), peer }
    }
    /// AWS's rule in every new group, which the functions' design removes.
    fn is_aws_default(&self) -> bool {
        self.egress && self.protocol == "-1" && self.peer == Peer::Cidr("0.0.0.0/0".into())
    }
    pub(super) fn permission(&self) -> IpPermission {
        let mut p = IpPermission::builder().ip_protocol(&self.protocol);
        if let Some((from, to)) = self.ports {
            p = p.from_port(from).to_port(to);
        }
        p = match &self.peer {
            Peer::Cidr(c) => p.ip_ranges(IpRange::builder().cidr_ip(c).build()),
            Peer::Ipv6Cidr(c) => p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build()),
            Peer::Group(g) => p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
            Peer::PrefixList(l) => p.prefix_list_ids(PrefixListId::builder().prefix_list_id(l).build()),
        };
        p.build()
    }
}

/// `egress to 0.0.0.0/0 TCP 443`, `ingress from sg-1 TCP 5432`, `egress to 0.0.0.0/0 all traffic`.
impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peer = match &self.peer {
            Peer::Cidr(c) | Peer::Ipv6Cidr(c) | Peer::Group(c) | Peer::PrefixList(c) => c,
        };
        write!(f, "{} {peer} ", if self.egress { "egress to" } else { "ingress from" })?;
        let protocol = match self.protocol.as_str() {
            "-1" => return f.write_str("all traffic"),
            "tcp" | "6" => "TCP".to_string(),
            "udp" | "17" => "UDP".to_string(),
            "icmp" | "1" => "ICMP".to_string(),
            other => format!("protocol {other}"),
        };
        match self.ports {
            Some((a, b)) if a == b => write!(f, "{protocol} {a}"),
            Some((a, b)) => write!(f, "{protocol} {a}–{b}"),
            None => write!(f, "{protocol} all ports"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub tags: Vec<Tag>,
    pub rules: Vec<Rule>,
}

pub struct Observed {
    pub groups: BTreeMap<String, Group>,
}

pub(super) fn flatten(perms: &[IpPermission], egress: bool) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in perms {
        let protocol = p.ip_protocol().unwrap_or("-1").to_string();
        let ports = if protocol == "-1" { None } else { p.from_port().zip(p.to_port()) };
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                out.push(Rule { egress, protocol: protocol.clone(), ports, peer: Peer::Cidr(c.to_string()) });
            }
        }
        for r in p.ipv6_ranges() {
            if let Some(c) = r.cidr_ipv6() {
                out.push(Rule { egress, protocol: protocol.clone(), ports, peer: Peer::Ipv6Cidr(c.to_string()) });
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                out.push(Rule { egress, protocol: protocol.clone(), ports, peer: Peer::Group(id.to_string()) });
            }
        }
        for l in p.prefix_list_ids() {
            if let Some(id) = l.prefix_list_id() {
                out.push(Rule { egress, protocol: protocol.clone(), ports, peer: Peer::PrefixList(id.to_string()) });
            }
        }
    }
    out.sort();
    out
}

fn from_ec2(g: &SecurityGroup) -> Group {
    let mut rules = flatten(g.ip_permissions(), false);
    rules.extend(flatten(g.ip_permissions_egress(), true));
    Group { id: g.group_id().unwrap_or_default().to_string(), tags: g.tags().to_vec(), rules }
}

fn name(ctx: &Ctx, member: &str) -> String {
    if member == FUNCTIONS {
        ctx.names.functions_sg()
    } else {
        ctx.names.database_sg()
    }
}

fn wanted_rules(member: &str, functions: &str, database: &str) -> Vec<Rule> {
    let mut v = if member == FUNCTIONS {
        vec![
            // AWS APIs (Secrets Manager, SSM, SNS…) over the NAT gateway; S3 and DynamoDB over
            // the gateway endpoints. TLS only.
            Rule::tcp(true, 443, Peer::Cidr("0.0.0.0/0".into())),
            Rule::tcp(true, 5432, Peer::Group(database.into())),
        ]
    } else {
        vec![Rule::tcp(false, 5432, Peer::Group(functions.into()))]
    };
    v.sort();
    v
}

enum Fix {
    Create(&'static str),
    Authorize(&'static str, Rule),
    Revoke(&'static str, Rule),
    /// The tags to add, and the drift they repair.
    Tags(&'static str, Vec<(String, String)>, Drift),
}

fn fixes(ctx: &Ctx, o: &Observed) -> Vec<Fix> {
    let mut out = Vec::new();
    for m in MEMBERS {
        if !o.groups.contains_key(m) {
            out.push(Fix::Create(m));
        }
    }
    // Rules name each other's ids: planned only once both groups exist.
    let (Some(f), Some(d)) = (o.groups.get(FUNCTIONS), o.groups.get(DATABASE)) else {
        return out;
    };
    for m in MEMBERS {
        let g = &o.groups[m];
        let want = wanted_rules(m, &f.id, &d.id);
        out.extend(want.iter().filter(|r| !g.rules.contains(r)).map(|r| Fix::Authorize(m, r.clone())));
        out.extend(g.rules.iter().filter(|r| !want.contains(r)).map(|r| Fix::Revoke(m, r.clone())));
        let want = ctx.tags(Some(m), Some(&name(ctx, m)));
        if let Some(drift) = tags_drift(format!("{m} security group tags"), &g.tags, &want) {
            out.push(Fix::Tags(m, missing_tags(&g.tags, &want), drift));
        }
    }
    out
}

impl Fix {
    /// How the group differs, for plan and status.
    fn drift(&self, ctx: &Ctx) -> Drift {
        match self {
            Fix::Create(m) => Drift::missing(format!("{m} security group"), name(ctx, m)),
            Fix::Authorize(m, r) => Drift::missing(format!("{m} security group rule"), r),
            Fix::Revoke(m, r) => Drift::unexpected(format!("{m} security group rule"), r),
            Fix::Tags(_, _, drift) => drift.clone(),
        }
    }

    /// What `up` does about it, for its progress; None where `ensure_tags` says it.
    fn action(&self, ctx: &Ctx) -> Option<String> {
        match self {
            Fix::Create(m) => Some(format!("creating {m} security group {}", name(ctx, m))),
            Fix::Authorize(m, r) => Some(format!("adding {m} security group rule: {r}")),
            Fix::Revoke(m, r) if r.is_aws_default() => {
                Some(format!("removing AWS's default rule from the {m} security group: {r}"))
            }
            Fix::Revoke(m, r) => Some(format!("removing {m} security group rule: {r}")),
            Fix::Tags(..) => None,
        }
    }
}

#[async_trait]
impl Resource for SecurityGroups {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::vpc::ID, key: "vpc_id" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let ec2 = &ctx.clients.ec2;
        let mut groups = BTreeMap::new();
        let out = ec2
            .describe_security_groups()
            .set_filters(Some(owned_filters(ctx)))
            .send()
            .await
            .aws("ec2:DescribeSecurityGroups")?;
        for g in out.security_groups() {
            if let Some(m) = member_of(g.tags()).filter(|m| MEMBERS.contains(&m.as_str())) {
                groups.insert(m, from_ec2(g));
            }
        }
        for m in MEMBERS {
            if groups.contains_key(m) {
                continue;
            }
            if let Some(id) = ctx.recorded_str(&format!("{m}_sg_id")) {
                let out = ec2
                    .describe_security_groups()
                    .group_ids(id)
                    .send()
                    .await
                    .aws("ec2:DescribeSecurityGroups")
                    .ok_if_not_found()?;
                if let Some(g) = out.as_ref().and_then(|o| o.security_groups().first()) {
                    groups.insert(m.to_string(), from_ec2(g));
                }
            }
        }
        Ok((!groups.is_empty()).then_some(Observed { groups }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        Ok(Change::from_drifts(fixes(ctx, o).iter().map(|f| f.drift(ctx)).collect()))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        o.groups.iter().map(|(m, g)| (format!("{m}_sg_id"), json!(g.id))).collect()
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let ec2 = &ctx.clients.ec2;
        let mut o = observed.unwrap_or(Observed { groups: BTreeMap::new() });
        // Two rounds: the first creates the groups, the second sets the rules that name them.
        for _ in 0..2 {
            for fix in fixes(ctx, &o) {
                if let Some(step) = fix.action(ctx) {
                    ctx.progress.step(&step);
                }
                match fix {
                    Fix::Create(m) => {
                        let description = if m == FUNCTIONS {
                            "Payment Lambda functions: HTTPS out, PostgreSQL to the database"
                        } else {
                            "Aurora PostgreSQL: 5432 from the payment functions only"
                        };
                        let vpc_id = ctx.input(super::vpc::ID, "vpc_id")?;
                        let tags = ctx.tags(Some(m), Some(&name(ctx, m)));
                        let out = ctx
                            .retry_while_propagating(&catalogue::EC2_NEW_RESOURCE, &format!("VPC {vpc_id}"), || {
                                ec2.create_security_group()
                                    .group_name(name(ctx, m))
                                    .description(description)
                                    .vpc_id(&vpc_id)
                                    .tag_specifications(tag_spec(ResourceType::SecurityGroup, &tags))
                                    .send()
                                    .map(|r| r.aws("ec2:CreateSecurityGroup"))
                            })
                            .await?;
                        let id = out
                            .group_id()
                            .ok_or_else(|| ResourceError::new("EmptyResponse", "CreateSecurityGroup returned no id"))?;
                        // A new group carries AWS's allow-all egress rule: observe it, so it is revoked.
                        let g = ec2
                            .describe_security_groups()
                            .group_ids(id)
                            .send()
                            .await
                            .aws("ec2:DescribeSecurityGroups")?;
                        let group = g.security_groups().first().map(from_ec2).unwrap_or(Group {
                            id: id.to_string(),
                            tags: vec![],
                            rules: vec![],
                        });
                        o.groups.insert(m.to_string(), group);
                    }
                    Fix::Authorize(m, rule) => {
                        let id = &o.groups[m].id;
                        if rule.egress {
                            ctx.retry_while_propagating(
                                &catalogue::EC2_NEW_RESOURCE,
                                &format!("security group {id}"),
                                || {
                                    ec2.authorize_security_group_egress()
                                        .group_id(id)
                                        .ip_permissions(rule.permission())
                                        .send()
                                        .map(|r| r.aws("ec2:AuthorizeSecurityGroupEgress"))
                                },
                            )
                            .await?;
                        } else {
                            ctx.retry_while_propagating(
                                &catalogue::EC2_NEW_RESOURCE,
                                &format!("security group {id}"),
                                || {
                                    ec2.authorize_security_group_ingress()
                                        .group_id(id)
                                        .ip_permissions(rule.permission())
                                        .send()
                                        .map(|r| r.aws("ec2:AuthorizeSecurityGroupIngress"))
                                },
                            )
                            .await?;
                        }
                        if let Some(g) = o.groups.get_mut(m) {
                            g.rules.push(rule);
                        }
                    }
                    Fix::Revoke(m, rule) => {
                        revoke(ctx, &o.groups[m].id, &rule, Gone::MayBeNew).await?;
                        if let Some(g) = o.groups.get_mut(m) {
                            g.rules.retain(|r| *r != rule);
                        }
                    }
                    Fix::Tags(m, missing, _) => ensure_tags(ctx, &o.groups[m].id, &missing).await?,
                }
            }
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        // The groups name each other: drop every rule first, or neither can be deleted.
        for g in o.groups.values() {
            for rule in &g.rules {
                revoke(ctx, &g.id, rule, Gone::IsDone).await?;
            }
        }
        for (m, g) in &o.groups {
            ctx.progress.step(&format!("deleting {m} security group {}", g.id));
            ctx.clients
                .ec2
                .delete_security_group()
                .group_id(&g.id)
                .send()
                .await
                .aws("ec2:DeleteSecurityGroup")
                .ok_if_not_found()?;
        }
        Ok(())
    }
}

/// What an absent group means to a revoke.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Gone {
    /// Repairing: the group may have been made moments ago and not be visible to EC2 yet.
    MayBeNew,
    /// Destroying: a group already gone has no rules left to drop.
    IsDone,
}

pub(super) async fn revoke(ctx: &Ctx, group: &str, rule: &Rule, absent: Gone) -> Result<()> {
    let ec2 = &ctx.clients.ec2;
    // A rule already gone is done (and so is its group, when destroying).
    let gone = |r: std::result::Result<(), AwsError>| match r {
        Err(e) if e.code_is("InvalidPermission.NotFound") => Ok(()),
        Err(e) if absent == Gone::IsDone && e.is_not_found() => Ok(()),
        other => other,
    };
    let subject = format!("security group {group}");
    ctx.retry_while_propagating(&catalogue::EC2_NEW_RESOURCE, &subject, || {
        if rule.egress {
            ec2.revoke_security_group_egress()
                .group_id(group)
                .ip_permissions(rule.permission())
                .send()
                .map(|r| gone(r.aws("ec2:RevokeSecurityGroupEgress").map(|_| ())))
                .boxed()
        } else {
            ec2.revoke_security_group_ingress()
                .group_id(group)
                .ip_permissions(rule.permission())
                .send()
                .map(|r| gone(r.aws("ec2:RevokeSecurityGroupIngress").map(|_| ())))
                .boxed()
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};

    #[test]
    fn new_groups_read_as_rules_added_and_aws_default_removed_and_drift_names_each_rule() {
        let ctx = ctx(ID, SecurityGroups.reads(), &[]);
        let group = |m: &str, id: &str, rules: Vec<Rule>| Group {
            id: id.into(),
            tags: super::super::ec2_tags(&ctx.tags(Some(m), Some(&name(&ctx, m)))),
            rules,
        };
        let aws_default =
            Rule { egress: true, protocol: "-1".into(), ports: None, peer: Peer::Cidr("0.0.0.0/0".into()) };
        // As CreateSecurityGroup leaves them.
        let o = Observed {
            groups: BTreeMap::from([
                (FUNCTIONS.to_string(), group(FUNCTIONS, "sg-f", vec![aws_default.clone()])),
                (DATABASE.to_string(), group(DATABASE, "sg-d", vec![aws_default])),
            ]),
        };
        let steps: Vec<String> = fixes(&ctx, &o).iter().filter_map(|f| f.action(&ctx)).collect();
        assert!(
            steps.contains(&"adding functions security group rule: egress to 0.0.0.0/0 TCP 443".into()),
            "{steps:#?}"
        );
        assert!(
            steps.contains(&"adding database security group rule: ingress from sg-f TCP 5432".into()),
            "{steps:#?}"
        );
        assert!(steps.contains(
            &"removing AWS's default rule from the functions security group: egress to 0.0.0.0/0 all traffic".into()
        ));
        assert!(steps.iter().all(|s| !s.contains("missing") && !s.contains("unexpected")), "{steps:#?}");

        let change = SecurityGroups.diff(&ctx, &o).unwrap();
        let drifts: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
        assert!(
            drifts.contains(&"functions security group rule: missing → egress to sg-d TCP 5432".into()),
            "{drifts:#?}"
        );
        assert!(drifts.contains(&"database security group rule: egress to 0.0.0.0/0 all traffic → absent".into()));
        assert_plain(&change.drifts());
    }
}
