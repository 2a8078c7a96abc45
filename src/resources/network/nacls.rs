//! `network.nacls`: a network ACL per tier, the stateless second fence behind the security
//! groups. The database tier admits only PostgreSQL (5432) from the private subnets and answers
//! only to them; nothing else reaches it, in or out (PCI DSS 1.3).
//!
//! Every tier denies TCP 22 (SSH) and 3389 (RDP) from anywhere, IPv4 and IPv6, in rules numbered
//! below every allow: ACLs apply the lowest-numbered matching rule, and the ephemeral-port allow
//! (1024–65535 from anywhere, for answers through the NAT gateway) would otherwise admit 3389
//! (PCI DSS v4.0.1 1.3.1, 1.4.1, 1.4.2; Security Hub EC2.21). The IPv6 entries are accepted on a
//! VPC without an IPv6 block (CreateNetworkAclEntry documents no such refusal) and hold the line
//! the day one is added.

use super::{ensure_tags, filter, member_of, missing_tags, owned_filters, tag_spec, tags_drift};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::Tier;
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{each_member, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{NetworkAcl, PortRange, ResourceType, RuleAction, Tag};
use futures::FutureExt;
use serde_json::json;
use std::collections::BTreeMap;

pub struct NetworkAcls;

pub const ID: &str = "network.nacls";
const ANYWHERE: &str = "0.0.0.0/0";
const ANYWHERE_V6: &str = "::/0";
/// SSH and RDP: remote administration, never admitted from the internet.
pub const ADMIN_PORTS: [i32; 2] = [22, 3389];
/// The first of the deny rules; every allow is numbered 100 or more.
pub const FIRST_DENY: i32 = 50;
const TCP: &str = "6";
const ALL: &str = "-1";
/// AWS's catch-all deny, present in every ACL and not removable.
const DEFAULT_RULE: i32 = 32767;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub egress: bool,
    pub number: i32,
    pub protocol: String,
    pub allow: bool,
    pub cidr: String,
    pub ports: Option<(i32, i32)>,
}

impl Entry {
    fn allow(egress: bool, number: i32, protocol: &str, cidr: &str, ports: Option<(i32, i32)>) -> Self {
        Entry { egress, number, protocol: protocol.into(), allow: true, cidr: cidr.into(), ports }
    }
    fn deny_in(number: i32, cidr: &str, port: i32) -> Self {
        Entry {
            egress: false,
            number,
            protocol: TCP.into(),
            allow: false,
            cidr: cidr.into(),
            ports: Some((port, port)),
        }
    }
    /// AWS takes an IPv6 range in its own field (Ipv6CidrBlock).
    fn is_ipv6(&self) -> bool {
        self.cidr.contains(':')
    }
    fn key(&self) -> (bool, i32) {
        (self.egress, self.number)
    }
    /// `private network ACL ingress rule 110`: which entry, as the field of a drift.
    fn name(tier: Tier, egress: bool, number: i32) -> String {
        format!("{tier} network ACL {} rule {number}", if egress { "egress" } else { "ingress" })
    }
}

/// What the entry lets through: `allow TCP 5432 from 10.0.10.0/24`, `allow all traffic to 0.0.0.0/0`.
impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.allow { "allow " } else { "deny " })?;
        let protocol = match self.protocol.as_str() {
            ALL => "all traffic".to_string(),
            TCP => "TCP".to_string(),
            "17" => "UDP".to_string(),
            "1" => "ICMP".to_string(),
            other => format!("protocol {other}"),
        };
        f.write_str(&protocol)?;
        match self.ports {
            Some((a, b)) if a == b => write!(f, " {a}")?,
            Some((a, b)) => write!(f, " {a}–{b}")?,
            None => {}
        }
        write!(f, " {} {}", if self.egress { "to" } else { "from" }, self.cidr)
    }
}

#[derive(Debug, Clone)]
pub struct Acl {
    pub id: String,
    pub tags: Vec<Tag>,
    pub entries: Vec<Entry>,
}

pub struct Observed {
    pub acls: BTreeMap<Tier, Acl>,
    /// Every subnet of the VPC: subnet -> (network ACL, association id).
    pub associations: BTreeMap<String, (String, String)>,
    pub default_acl: Option<String>,
}

fn normalize_protocol(p: &str) -> String {
    match p {
        "tcp" => TCP.into(),
        "all" => ALL.into(),
        other => other.into(),
    }
}

fn from_ec2(a: &NetworkAcl) -> Acl {
    let entries = a
        .entries()
        .iter()
        .filter(|e| e.rule_number().is_some_and(|n| n < DEFAULT_RULE))
        .map(|e| Entry {
            egress: e.egress().unwrap_or(false),
            number: e.rule_number().unwrap_or_default(),
            protocol: normalize_protocol(e.protocol().unwrap_or(ALL)),
            allow: e.rule_action() == Some(&RuleAction::Allow),
            cidr: e.cidr_block().or(e.ipv6_cidr_block()).unwrap_or_default().to_string(),
            ports: if e.protocol().map(normalize_protocol).as_deref() == Some(ALL) {
                None
            } else {
                e.port_range().map(|p| (p.from().unwrap_or_default(), p.to().unwrap_or_default()))
            },
        })
        .collect();
    Acl { id: a.network_acl_id().unwrap_or_default().to_string(), tags: a.tags().to_vec(), entries }
}

/// The rules of each tier. Return traffic must be allowed explicitly: ACLs are stateless.
pub fn wanted_entries(ctx: &Ctx, tier: Tier) -> Result<Vec<Entry>> {
    let vpc = ctx.config.vpc_cidr.to_string();
    let ephemeral = Some((1024, 65535));
    // 50 and 51: SSH and RDP from any IPv4 address; 52 and 53: from any IPv6 address. On the
    // public tier this also drops an answer to a connection the NAT gateway happened to make from
    // its port 3389 (it uses 1024–65535): that one connection fails and is retried from another
    // port, the price of never admitting RDP.
    let mut denies = Vec::new();
    for (i, (cidr, port)) in
        [ANYWHERE, ANYWHERE_V6].iter().flat_map(|c| ADMIN_PORTS.iter().map(move |p| (*c, *p))).enumerate()
    {
        denies.push(Entry::deny_in(FIRST_DENY + i as i32, cidr, port));
    }
    Ok(denies
        .into_iter()
        .chain(match tier {
            Tier::Public | Tier::Private => vec![
                Entry::allow(false, 100, ALL, &vpc, None),
                // Answers to connections the NAT gateway made on the functions' behalf.
                Entry::allow(false, 110, TCP, ANYWHERE, ephemeral),
                Entry::allow(true, 100, ALL, ANYWHERE, None),
            ],
            Tier::Database => {
                let private = ctx.input_list(super::subnets::ID, "private_subnet_cidrs")?;
                let mut v = Vec::new();
                for (i, cidr) in private.iter().enumerate() {
                    let n = 100 + 10 * i as i32;
                    v.push(Entry::allow(false, n, TCP, cidr, Some((5432, 5432))));
                    v.push(Entry::allow(true, n, TCP, cidr, ephemeral));
                }
                v
            }
        })
        .collect())
}

#[derive(Clone)]
enum Fix {
    CreateAcl(Tier),
    /// `current`: the entry of that number AWS holds now, which this one replaces.
    PutEntry {
        tier: Tier,
        entry: Entry,
        current: Option<Entry>,
    },
    DeleteEntry {
        tier: Tier,
        entry: Entry,
    },
    /// `current`: the network ACL the subnet uses now.
    Associate {
        tier: Tier,
        subnet: String,
        association: String,
        current: String,
    },
    Tags {
        tier: Tier,
        missing: Vec<(String, String)>,
        drift: Drift,
    },
}

impl Fix {
    fn tier(&self) -> Tier {
        match self {
            Fix::CreateAcl(tier)
            | Fix::PutEntry { tier, .. }
            | Fix::DeleteEntry { tier, .. }
            | Fix::Associate { tier, .. }
            | Fix::Tags { tier, .. } => *tier,
        }
    }

    /// How the ACLs differ, for plan and status.
    fn drift(&self, ctx: &Ctx, o: &Observed) -> Drift {
        match self {
            Fix::CreateAcl(t) => Drift::missing(format!("{t} network ACL"), ctx.names.network_acl(*t)),
            Fix::PutEntry { tier, entry, current } => {
                let field = Entry::name(*tier, entry.egress, entry.number);
                match current {
                    None => Drift::missing(field, entry),
                    Some(current) => Drift::new(field, current, entry),
                }
            }
            Fix::DeleteEntry { tier, entry } => {
                Drift::unexpected(Entry::name(*tier, entry.egress, entry.number), entry)
            }
            Fix::Associate { tier, subnet, current, .. } => {
                let current = if o.default_acl.as_ref() == Some(current) {
                    format!("the VPC's default network ACL {current}")
                } else {
                    format!("network ACL {current}")
                };
                let wanted = match o.acls.get(tier) {
                    Some(acl) => format!("the {tier} network ACL {}", acl.id),
                    None => format!("the {tier} network ACL"),
                };
                Drift::new(format!("subnet {subnet} network ACL"), current, wanted)
            }
            Fix::Tags { drift, .. } => drift.clone(),
        }
    }

    /// What `up` does about it, for its progress; None where `ensure_tags` says it.
    fn action(&self, ctx: &Ctx) -> Option<String> {
        Some(match self {
            Fix::CreateAcl(t) => format!("creating {t} network ACL {}", ctx.names.network_acl(*t)),
            Fix::PutEntry { tier, entry, current: None } => {
                format!("adding {}: {entry}", Entry::name(*tier, entry.egress, entry.number))
            }
            Fix::PutEntry { tier, entry, current: Some(current) } => {
                format!("changing {} from {current} to {entry}", Entry::name(*tier, entry.egress, entry.number))
            }
            Fix::DeleteEntry { tier, entry } => {
                format!("removing {}: {entry}", Entry::name(*tier, entry.egress, entry.number))
            }
            Fix::Associate { tier, subnet, .. } => format!("associating subnet {subnet} with the {tier} network ACL"),
            Fix::Tags { .. } => return None,
        })
    }
}

fn fixes(ctx: &Ctx, o: &Observed) -> Result<Vec<Fix>> {
    let mut out = Vec::new();
    for tier in Tier::ALL {
        let want = wanted_entries(ctx, tier)?;
        let acl = o.acls.get(&tier);
        match acl {
            None => {
                out.push(Fix::CreateAcl(tier));
                out.extend(want.iter().cloned().map(|entry| Fix::PutEntry { tier, entry, current: None }));
            }
            Some(acl) => {
                for entry in &want {
                    match acl.entries.iter().find(|e| e.key() == entry.key()) {
                        None => out.push(Fix::PutEntry { tier, entry: entry.clone(), current: None }),
                        Some(e) if e != entry => {
                            out.push(Fix::PutEntry { tier, entry: entry.clone(), current: Some(e.clone()) })
                        }
                        Some(_) => {}
                    }
                }
                for e in acl.entries.iter().filter(|e| !want.iter().any(|w| w.key() == e.key())) {
                    out.push(Fix::DeleteEntry { tier, entry: e.clone() });
                }
                let want = ctx.tags(Some(tier.as_str()), Some(&ctx.names.network_acl(tier)));
                if let Some(drift) = tags_drift(format!("{tier} network ACL tags"), &acl.tags, &want) {
                    out.push(Fix::Tags { tier, missing: missing_tags(&acl.tags, &want), drift });
                }
            }
        }
        for subnet in super::subnets::tier_ids(ctx, tier)? {
            let Some((current, association)) = o.associations.get(&subnet) else {
                continue;
            };
            if acl.map(|a| &a.id) != Some(current) {
                out.push(Fix::Associate { tier, subnet, association: association.clone(), current: current.clone() });
            }
        }
    }
    Ok(out)
}

async fn observe_vpc(ctx: &Ctx, o: &mut Observed) -> Result<()> {
    let Some(vpc_id) = super::vpc::find_vpc_id(ctx).await? else {
        return Ok(());
    };
    let all = ctx
        .clients
        .ec2
        .describe_network_acls()
        .filters(filter("vpc-id", [vpc_id]))
        .send()
        .await
        .aws("ec2:DescribeNetworkAcls")?;
    for acl in all.network_acls() {
        let id = acl.network_acl_id().unwrap_or_default().to_string();
        if acl.is_default() == Some(true) {
            o.default_acl = Some(id.clone());
        }
        for a in acl.associations() {
            if let (Some(s), Some(assoc)) = (a.subnet_id(), a.network_acl_association_id()) {
                o.associations.insert(s.to_string(), (id.clone(), assoc.to_string()));
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Resource for NetworkAcls {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: super::vpc::ID, key: "vpc_id" },
            Input { node: super::subnets::ID, key: "private_subnet_cidrs" },
            Input { node: super::subnets::ID, key: "public_subnet_ids" },
            Input { node: super::subnets::ID, key: "private_subnet_ids" },
            Input { node: super::subnets::ID, key: "database_subnet_ids" },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let ec2 = &ctx.clients.ec2;
        let mut o = Observed { acls: BTreeMap::new(), associations: BTreeMap::new(), default_acl: None };
        let owned = ec2
            .describe_network_acls()
            .set_filters(Some(owned_filters(ctx)))
            .send()
            .await
            .aws("ec2:DescribeNetworkAcls")?;
        for a in owned.network_acls() {
            if let Some(tier) = member_of(a.tags()).as_deref().and_then(Tier::parse) {
                o.acls.insert(tier, from_ec2(a));
            }
        }
        for tier in Tier::ALL {
            if o.acls.contains_key(&tier) {
                continue;
            }
            if let Some(id) = ctx.recorded_str(&format!("{tier}_network_acl_id")) {
                let out = ec2
                    .describe_network_acls()
                    .network_acl_ids(id)
                    .send()
                    .await
                    .aws("ec2:DescribeNetworkAcls")
                    .ok_if_not_found()?;
                if let Some(a) = out.as_ref().and_then(|x| x.network_acls().first()) {
                    o.acls.insert(tier, from_ec2(a));
                }
            }
        }
        if o.acls.is_empty() {
            return Ok(None);
        }
        observe_vpc(ctx, &mut o).await?;
        Ok(Some(o))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        Ok(Change::from_drifts(fixes(ctx, o)?.iter().map(|f| f.drift(ctx, o)).collect()))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        o.acls.iter().map(|(tier, a)| (format!("{tier}_network_acl_id"), json!(a.id))).collect()
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let ec2 = &ctx.clients.ec2;
        let mut o = match observed {
            Some(o) => o,
            None => {
                let mut o = Observed { acls: BTreeMap::new(), associations: BTreeMap::new(), default_acl: None };
                observe_vpc(ctx, &mut o).await?;
                o
            }
        };
        // Each tier's fixes in order (its ACL first, then its entries and associations); the three
        // tiers at once.
        let mut by_tier: BTreeMap<Tier, Vec<Fix>> = BTreeMap::new();
        for fix in fixes(ctx, &o)? {
            by_tier.entry(fix.tier()).or_default().push(fix);
        }
        let have = &o;
        let made = each_member("network ACL", by_tier.keys().copied().collect::<Vec<_>>(), |tier| {
            let fixes = by_tier.get(&tier).cloned().unwrap_or_default();
            async move {
                let mut acl_id = have.acls.get(&tier).map(|a| a.id.clone());
                let mut made = None;
                let id = |acl: &Option<String>| {
                    acl.clone().ok_or_else(|| {
                        ResourceError::new("Internal", format!("the {tier} network ACL was neither found nor made"))
                    })
                };
                for fix in fixes {
                    if let Some(step) = fix.action(ctx) {
                        ctx.progress.step(&step);
                    }
                    match fix {
                        Fix::CreateAcl(_) => {
                            let vpc_id = ctx.input(super::vpc::ID, "vpc_id")?;
                            let tags = ctx.tags(Some(tier.as_str()), Some(&ctx.names.network_acl(tier)));
                            let out = ctx
                                .retry_while_propagating(&catalogue::EC2_NEW_RESOURCE, &format!("VPC {vpc_id}"), || {
                                    ec2.create_network_acl()
                                        .vpc_id(&vpc_id)
                                        .tag_specifications(tag_spec(ResourceType::NetworkAcl, &tags))
                                        .send()
                                        .map(|r| r.aws("ec2:CreateNetworkAcl"))
                                })
                                .await?;
                            let acl = out.network_acl().map(from_ec2).ok_or_else(|| {
                                ResourceError::new("EmptyResponse", "CreateNetworkAcl returned no ACL")
                            })?;
                            acl_id = Some(acl.id.clone());
                            made = Some(acl);
                        }
                        Fix::PutEntry { entry, current, .. } => {
                            let replace = current.is_some();
                            let acl = id(&acl_id)?;
                            let ports = entry.ports.map(|(a, b)| PortRange::builder().from(a).to(b).build());
                            let action = if entry.allow { RuleAction::Allow } else { RuleAction::Deny };
                            ctx.retry_while_propagating(
                                &catalogue::EC2_NEW_RESOURCE,
                                &format!("network ACL {acl}"),
                                || {
                                    // Create and Replace take the same fields: one list fills either builder.
                                    macro_rules! entry {
                                        ($call:expr) => {
                                            $call
                                                .network_acl_id(&acl)
                                                .rule_number(entry.number)
                                                .egress(entry.egress)
                                                .protocol(&entry.protocol)
                                                .rule_action(action.clone())
                                                .set_cidr_block((!entry.is_ipv6()).then(|| entry.cidr.clone()))
                                                .set_ipv6_cidr_block(entry.is_ipv6().then(|| entry.cidr.clone()))
                                                .set_port_range(ports.clone())
                                                .send()
                                        };
                                    }
                                    if replace {
                                        entry!(ec2.replace_network_acl_entry())
                                            .map(|r| r.aws("ec2:ReplaceNetworkAclEntry").map(|_| ()))
                                            .boxed()
                                    } else {
                                        entry!(ec2.create_network_acl_entry())
                                            .map(|r| r.aws("ec2:CreateNetworkAclEntry").map(|_| ()))
                                            .boxed()
                                    }
                                },
                            )
                            .await?;
                        }
                        Fix::DeleteEntry { entry, .. } => {
                            ec2.delete_network_acl_entry()
                                .network_acl_id(id(&acl_id)?)
                                .egress(entry.egress)
                                .rule_number(entry.number)
                                .send()
                                .await
                                .aws("ec2:DeleteNetworkAclEntry")
                                .ok_if_not_found()?;
                        }
                        Fix::Associate { association, .. } => {
                            let acl = id(&acl_id)?;
                            // terraform `networkACLAssociationCreate`: InvalidAssociationID.NotFound
                            // while the subnet's association is new.
                            ctx.retry_while_propagating(
                                &catalogue::EC2_NEW_RESOURCE,
                                &format!("network ACL {acl}"),
                                || {
                                    ec2.replace_network_acl_association()
                                        .association_id(&association)
                                        .network_acl_id(&acl)
                                        .send()
                                        .map(|r| r.aws("ec2:ReplaceNetworkAclAssociation"))
                                },
                            )
                            .await?;
                        }
                        Fix::Tags { missing, .. } => ensure_tags(ctx, &id(&acl_id)?, &missing).await?,
                    }
                }
                Ok(made.map(|a| (tier, a)))
            }
        })
        .await?;
        o.acls.extend(made.into_iter().flatten());
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let ec2 = &ctx.clients.ec2;
        for (tier, acl) in &o.acls {
            // An ACL in use cannot be deleted: hand its subnets back to the VPC's default ACL.
            if let Some(default) = &o.default_acl {
                for (current, association) in o.associations.values() {
                    if *current == acl.id {
                        ec2.replace_network_acl_association()
                            .association_id(association)
                            .network_acl_id(default)
                            .send()
                            .await
                            .aws("ec2:ReplaceNetworkAclAssociation")
                            .ok_if_not_found()?;
                    }
                }
            }
            ctx.progress.step(&format!("deleting {tier} network ACL {}", acl.id));
            ec2.delete_network_acl()
                .network_acl_id(&acl.id)
                .send()
                .await
                .aws("ec2:DeleteNetworkAcl")
                .ok_if_not_found()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};
    use serde_json::json;

    #[test]
    fn entries_read_as_rules_added_changed_and_removed() {
        let ctx = ctx(
            ID,
            NetworkAcls.reads(),
            &[
                (super::super::subnets::ID, "private_subnet_cidrs", json!(["10.0.10.0/24"])),
                (super::super::subnets::ID, "public_subnet_ids", json!([])),
                (super::super::subnets::ID, "private_subnet_ids", json!([])),
                (super::super::subnets::ID, "database_subnet_ids", json!(["subnet-db"])),
            ],
        );
        let nothing = Observed { acls: BTreeMap::new(), associations: BTreeMap::new(), default_acl: None };
        let steps: Vec<String> = fixes(&ctx, &nothing).unwrap().iter().filter_map(|f| f.action(&ctx)).collect();
        assert!(
            steps.contains(&"adding database network ACL ingress rule 100: allow TCP 5432 from 10.0.10.0/24".into()),
            "{steps:#?}"
        );
        assert!(steps.iter().all(|s| s.starts_with("creating ") || s.starts_with("adding ")), "{steps:#?}");

        let mut entries = wanted_entries(&ctx, Tier::Database).unwrap();
        let rule_100 = entries.iter().position(|e| !e.egress && e.number == 100).unwrap();
        entries[rule_100].ports = Some((0, 65535));
        entries.push(Entry::allow(false, 200, ALL, ANYWHERE, None));
        let acl = |tier: Tier, id: &str, entries: Vec<Entry>| Acl {
            id: id.into(),
            tags: super::super::ec2_tags(&ctx.tags(Some(tier.as_str()), Some(&ctx.names.network_acl(tier)))),
            entries,
        };
        let mut acls = BTreeMap::new();
        for tier in [Tier::Public, Tier::Private] {
            acls.insert(tier, acl(tier, &format!("acl-{tier}"), wanted_entries(&ctx, tier).unwrap()));
        }
        acls.insert(Tier::Database, acl(Tier::Database, "acl-db", entries));
        let o = Observed {
            acls,
            associations: BTreeMap::from([("subnet-db".to_string(), ("acl-default".to_string(), "a-1".to_string()))]),
            default_acl: Some("acl-default".into()),
        };
        let change = NetworkAcls.diff(&ctx, &o).unwrap();
        let drifts: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            drifts,
            [
                "database network ACL ingress rule 100: allow TCP 0–65535 from 10.0.10.0/24 → \
                 allow TCP 5432 from 10.0.10.0/24",
                "database network ACL ingress rule 200: allow all traffic from 0.0.0.0/0 → absent",
                "subnet subnet-db network ACL: the VPC's default network ACL acl-default → the database network ACL acl-db",
            ]
        );
        assert_plain(&change.drifts());
    }

    #[test]
    fn every_tier_denies_ssh_and_rdp_from_anywhere_before_any_allow_could_admit_them() {
        let ctx = ctx(
            ID,
            NetworkAcls.reads(),
            &[(super::super::subnets::ID, "private_subnet_cidrs", json!(["10.0.10.0/24", "10.0.11.0/24"]))],
        );
        for tier in Tier::ALL {
            let entries = wanted_entries(&ctx, tier).unwrap();
            let inbound: Vec<&Entry> = entries.iter().filter(|e| !e.egress).collect();
            for cidr in [ANYWHERE, ANYWHERE_V6] {
                for port in ADMIN_PORTS {
                    // A packet from an internet address matches only the rules for anywhere.
                    let admits = |e: &&&Entry| {
                        (e.protocol == ALL || e.protocol == TCP)
                            && e.ports.is_none_or(|(a, b)| a <= port && port <= b)
                            && e.cidr == cidr
                    };
                    // The rule AWS applies is the lowest-numbered one that matches.
                    let first = inbound.iter().filter(admits).min_by_key(|e| e.number);
                    let first = first.unwrap_or_else(|| panic!("{tier}: no rule for {port} from {cidr}"));
                    assert!(!first.allow, "{tier}: TCP {port} from {cidr} first meets {first}");
                    assert_eq!(first.cidr, cidr);
                }
            }
            let lowest_allow = inbound.iter().filter(|e| e.allow).map(|e| e.number).min().unwrap();
            assert!(inbound.iter().filter(|e| !e.allow).all(|e| e.number < lowest_allow), "{tier}");
        }
        let public = wanted_entries(&ctx, Tier::Public).unwrap();
        let shown: Vec<String> = public.iter().filter(|e| !e.allow).map(|e| format!("{} {e}", e.number)).collect();
        assert_eq!(
            shown,
            [
                "50 deny TCP 22 from 0.0.0.0/0",
                "51 deny TCP 3389 from 0.0.0.0/0",
                "52 deny TCP 22 from ::/0",
                "53 deny TCP 3389 from ::/0"
            ]
        );
    }
}
