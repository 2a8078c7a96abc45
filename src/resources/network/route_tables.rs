//! `network.route-tables`: one route table per tier. Public: 0.0.0.0/0 to the internet gateway.
//! Private: 0.0.0.0/0 to the NAT gateway. Database: no route out of the VPC at all.
//!
//! tapctl owns these tables outright: a route it did not make is drift and is removed (PCI DSS
//! 1.3: only the paths the design allows), except the local route and the gateway-endpoint
//! routes, which AWS manages from `network.endpoints`.

use super::{ensure_tags, filter, member_of, missing_tags, owned_filters, tag_spec, tags_drift};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::Tier;
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{each_member, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, RouteTable, Tag};
use futures::FutureExt;
use serde_json::json;
use std::collections::BTreeMap;

pub struct RouteTables;

pub const ID: &str = "network.route-tables";
pub const ANYWHERE: &str = "0.0.0.0/0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Gateway(String),
    Nat(String),
    /// A target tapctl never sets, in words (`transit gateway tgw-1`).
    Other(String),
}

/// `internet gateway igw-1`, `NAT gateway nat-1`.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Gateway(g) if g.starts_with("igw-") => write!(f, "internet gateway {g}"),
            Target::Gateway(g) if g.starts_with("vgw-") => write!(f, "virtual private gateway {g}"),
            Target::Gateway(g) => write!(f, "gateway {g}"),
            Target::Nat(n) => write!(f, "NAT gateway {n}"),
            Target::Other(what) => f.write_str(what),
        }
    }
}

/// The target of a route that goes neither to a gateway nor to a NAT gateway, in words.
fn other_target(r: &aws_sdk_ec2::types::Route) -> String {
    let named = [
        ("transit gateway", r.transit_gateway_id()),
        ("peering connection", r.vpc_peering_connection_id()),
        ("network interface", r.network_interface_id()),
        ("instance", r.instance_id()),
        ("egress-only internet gateway", r.egress_only_internet_gateway_id()),
        ("carrier gateway", r.carrier_gateway_id()),
        ("local gateway", r.local_gateway_id()),
        ("core network", r.core_network_arn()),
    ];
    named
        .iter()
        .find_map(|(what, id)| id.map(|id| format!("{what} {id}")))
        .unwrap_or_else(|| "a target tapctl does not know".to_string())
}

#[derive(Debug, Clone)]
pub struct Table {
    pub id: String,
    pub tags: Vec<Tag>,
    /// Routes tapctl manages: destination CIDR -> target (local and endpoint routes left out).
    pub routes: BTreeMap<String, Target>,
}

pub struct Observed {
    pub tables: BTreeMap<Tier, Table>,
    /// Every explicit subnet association in the VPC: subnet -> (route table, association id).
    pub associations: BTreeMap<String, (String, String)>,
}

fn from_ec2(t: &RouteTable) -> Table {
    let routes = t
        .routes()
        .iter()
        .filter(|r| r.gateway_id() != Some("local") && r.destination_prefix_list_id().is_none())
        .filter_map(|r| {
            let dest = r.destination_cidr_block()?.to_string();
            let target = if let Some(n) = r.nat_gateway_id() {
                Target::Nat(n.to_string())
            } else if let Some(g) = r.gateway_id() {
                Target::Gateway(g.to_string())
            } else {
                Target::Other(other_target(r))
            };
            Some((dest, target))
        })
        .collect();
    Table { id: t.route_table_id().unwrap_or_default().to_string(), tags: t.tags().to_vec(), routes }
}

fn wanted_routes(ctx: &Ctx, tier: Tier) -> Result<BTreeMap<String, Target>> {
    Ok(match tier {
        Tier::Public => BTreeMap::from([(ANYWHERE.to_string(), Target::Gateway(ctx.input(super::igw::ID, "igw_id")?))]),
        Tier::Private => {
            BTreeMap::from([(ANYWHERE.to_string(), Target::Nat(ctx.input(super::nat::ID, "nat_gateway_id")?))])
        }
        Tier::Database => BTreeMap::new(),
    })
}

fn wanted_tags(ctx: &Ctx, tier: Tier) -> Vec<(String, String)> {
    ctx.tags(Some(tier.as_str()), Some(&ctx.names.route_table(tier)))
}

/// Route, association and tag fixes, in words (for plan) — apply performs the same list.
#[derive(Clone)]
enum Fix {
    CreateTable(Tier),
    CreateRoute {
        tier: Tier,
        dest: String,
        target: Target,
    },
    ReplaceRoute {
        tier: Tier,
        dest: String,
        current: Target,
        target: Target,
    },
    DeleteRoute {
        tier: Tier,
        dest: String,
        current: Target,
    },
    Associate {
        tier: Tier,
        subnet: String,
    },
    /// `current`: the route table the subnet is associated with now.
    Reassociate {
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
            Fix::CreateTable(tier)
            | Fix::CreateRoute { tier, .. }
            | Fix::ReplaceRoute { tier, .. }
            | Fix::DeleteRoute { tier, .. }
            | Fix::Associate { tier, .. }
            | Fix::Reassociate { tier, .. }
            | Fix::Tags { tier, .. } => *tier,
        }
    }

    /// How the tables differ, for plan and status.
    fn drift(&self, ctx: &Ctx, o: &Observed) -> Drift {
        let route = |tier: &Tier, dest: &str| format!("route {dest} ({tier})");
        let table = |tier: &Tier| match o.tables.get(tier) {
            Some(t) => format!("the {tier} route table {}", t.id),
            None => format!("the {tier} route table"),
        };
        match self {
            Fix::CreateTable(t) => Drift::missing(format!("{t} route table"), ctx.names.route_table(*t)),
            Fix::CreateRoute { tier, dest, target } => Drift::missing(route(tier, dest), target),
            Fix::ReplaceRoute { tier, dest, current, target } => Drift::new(route(tier, dest), current, target),
            Fix::DeleteRoute { tier, dest, current } => Drift::unexpected(route(tier, dest), current),
            Fix::Associate { tier, subnet } => {
                Drift::new(format!("subnet {subnet} route table"), "the VPC's main route table", table(tier))
            }
            Fix::Reassociate { tier, subnet, current, .. } => {
                Drift::new(format!("subnet {subnet} route table"), format!("route table {current}"), table(tier))
            }
            Fix::Tags { drift, .. } => drift.clone(),
        }
    }

    /// What `up` does about it, for its progress; None where `ensure_tags` says it.
    fn action(&self, ctx: &Ctx) -> Option<String> {
        Some(match self {
            Fix::CreateTable(t) => format!("creating {t} route table {}", ctx.names.route_table(*t)),
            Fix::CreateRoute { tier, dest, target } => format!("adding route {dest} → {target} ({tier})"),
            Fix::ReplaceRoute { tier, dest, current, target } => {
                format!("changing route {dest} ({tier}) from {current} to {target}")
            }
            Fix::DeleteRoute { tier, dest, current } => format!("removing route {dest} → {current} ({tier})"),
            Fix::Associate { tier, subnet } | Fix::Reassociate { tier, subnet, .. } => {
                format!("associating subnet {subnet} with the {tier} route table")
            }
            Fix::Tags { .. } => return None,
        })
    }
}

fn fixes(ctx: &Ctx, o: &Observed) -> Result<Vec<Fix>> {
    let mut out = Vec::new();
    for tier in Tier::ALL {
        let Some(table) = o.tables.get(&tier) else {
            out.push(Fix::CreateTable(tier));
            for (dest, target) in wanted_routes(ctx, tier)? {
                out.push(Fix::CreateRoute { tier, dest, target });
            }
            for subnet in super::subnets::tier_ids(ctx, tier)? {
                match o.associations.get(&subnet) {
                    Some((current, association)) => out.push(Fix::Reassociate {
                        tier,
                        subnet,
                        association: association.clone(),
                        current: current.clone(),
                    }),
                    None => out.push(Fix::Associate { tier, subnet }),
                }
            }
            continue;
        };
        let want = wanted_routes(ctx, tier)?;
        for (dest, target) in &want {
            match table.routes.get(dest) {
                None => out.push(Fix::CreateRoute { tier, dest: dest.clone(), target: target.clone() }),
                Some(t) if t != target => {
                    out.push(Fix::ReplaceRoute { tier, dest: dest.clone(), current: t.clone(), target: target.clone() })
                }
                Some(_) => {}
            }
        }
        for (dest, current) in table.routes.iter().filter(|(d, _)| !want.contains_key(*d)) {
            out.push(Fix::DeleteRoute { tier, dest: dest.clone(), current: current.clone() });
        }
        for subnet in super::subnets::tier_ids(ctx, tier)? {
            match o.associations.get(&subnet) {
                Some((rt, _)) if *rt == table.id => {}
                Some((current, association)) => out.push(Fix::Reassociate {
                    tier,
                    subnet,
                    association: association.clone(),
                    current: current.clone(),
                }),
                None => out.push(Fix::Associate { tier, subnet }),
            }
        }
        let want = wanted_tags(ctx, tier);
        if let Some(drift) = tags_drift(format!("{tier} route table tags"), &table.tags, &want) {
            out.push(Fix::Tags { tier, missing: missing_tags(&table.tags, &want), drift });
        }
    }
    Ok(out)
}

/// Every explicit subnet association in the stack's VPC: subnet -> (route table, association).
async fn subnet_associations(ctx: &Ctx) -> Result<BTreeMap<String, (String, String)>> {
    let mut associations = BTreeMap::new();
    let Some(vpc_id) = super::vpc::find_vpc_id(ctx).await? else { return Ok(associations) };
    let all = ctx
        .clients
        .ec2
        .describe_route_tables()
        .filters(filter("vpc-id", [vpc_id]))
        .send()
        .await
        .aws("ec2:DescribeRouteTables")?;
    for t in all.route_tables() {
        for a in t.associations() {
            if let (Some(subnet), Some(assoc)) = (a.subnet_id(), a.route_table_association_id()) {
                associations.insert(
                    subnet.to_string(),
                    (t.route_table_id().unwrap_or_default().to_string(), assoc.to_string()),
                );
            }
        }
    }
    Ok(associations)
}

#[async_trait]
impl Resource for RouteTables {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: super::vpc::ID, key: "vpc_id" },
            Input { node: super::subnets::ID, key: "public_subnet_ids" },
            Input { node: super::subnets::ID, key: "private_subnet_ids" },
            Input { node: super::subnets::ID, key: "database_subnet_ids" },
            Input { node: super::igw::ID, key: "igw_id" },
            Input { node: super::nat::ID, key: "nat_gateway_id" },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let ec2 = &ctx.clients.ec2;
        let mut tables = BTreeMap::new();
        let owned = ec2
            .describe_route_tables()
            .set_filters(Some(owned_filters(ctx)))
            .send()
            .await
            .aws("ec2:DescribeRouteTables")?;
        for t in owned.route_tables() {
            if let Some(tier) = member_of(t.tags()).as_deref().and_then(Tier::parse) {
                tables.insert(tier, from_ec2(t));
            }
        }
        // A table whose tags were removed is still ours if the state recorded its id.
        for tier in Tier::ALL {
            if tables.contains_key(&tier) {
                continue;
            }
            if let Some(id) = ctx.recorded_str(&format!("{tier}_route_table_id")) {
                let out = ec2
                    .describe_route_tables()
                    .route_table_ids(id)
                    .send()
                    .await
                    .aws("ec2:DescribeRouteTables")
                    .ok_if_not_found()?;
                if let Some(t) = out.as_ref().and_then(|o| o.route_tables().first()) {
                    tables.insert(tier, from_ec2(t));
                }
            }
        }
        if tables.is_empty() {
            return Ok(None);
        }
        Ok(Some(Observed { tables, associations: subnet_associations(ctx).await? }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        Ok(Change::from_drifts(fixes(ctx, o)?.iter().map(|f| f.drift(ctx, o)).collect()))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        o.tables.iter().map(|(tier, t)| (format!("{tier}_route_table_id"), json!(t.id))).collect()
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let ec2 = &ctx.clients.ec2;
        let mut o = observed.unwrap_or(Observed { tables: BTreeMap::new(), associations: BTreeMap::new() });
        if o.associations.is_empty() {
            // Nothing was observed: the subnets may still sit in another table (the main one
            // holds them implicitly, which needs no replacing).
            o.associations = subnet_associations(ctx).await?;
        }
        // Each tier's fixes in order (its table first, then its routes and associations); the
        // three tiers at once.
        let mut by_tier: BTreeMap<Tier, Vec<Fix>> = BTreeMap::new();
        for fix in fixes(ctx, &o)? {
            by_tier.entry(fix.tier()).or_default().push(fix);
        }
        let have = &o;
        let made = each_member("route table", by_tier.keys().copied().collect::<Vec<_>>(), |tier| {
            let fixes = by_tier.get(&tier).cloned().unwrap_or_default();
            async move {
                let mut table = have.tables.get(&tier).cloned();
                let mut made = None;
                let id = |table: &Option<Table>| {
                    table.as_ref().map(|t| t.id.clone()).ok_or_else(|| {
                        ResourceError::new("Internal", format!("the {tier} route table was neither found nor made"))
                    })
                };
                for fix in fixes {
                    if let Some(step) = fix.action(ctx) {
                        ctx.progress.step(&step);
                    }
                    match fix {
                        Fix::CreateTable(_) => {
                            let vpc_id = ctx.input(super::vpc::ID, "vpc_id")?;
                            let out = ctx
                                .retry_while_propagating(&catalogue::EC2_NEW_RESOURCE, &format!("VPC {vpc_id}"), || {
                                    ec2.create_route_table()
                                        .vpc_id(&vpc_id)
                                        .tag_specifications(tag_spec(ResourceType::RouteTable, &wanted_tags(ctx, tier)))
                                        .send()
                                        .map(|r| r.aws("ec2:CreateRouteTable"))
                                })
                                .await?;
                            table = out.route_table().map(from_ec2);
                            made = table.clone();
                        }
                        Fix::CreateRoute { dest, target, .. } | Fix::ReplaceRoute { dest, target, .. } => {
                            let table_id = id(&table)?;
                            let replace = table.as_ref().is_some_and(|t| t.routes.contains_key(&dest));
                            // The route table, NAT or internet gateway may have been made moments ago.
                            ctx.retry_while_propagating(
                                &catalogue::EC2_NEW_RESOURCE,
                                &format!("route table {table_id}"),
                                || {
                                    // Create and Replace take the same fields: one list fills either builder.
                                    macro_rules! route {
                                        ($call:expr) => {{
                                            let call = $call.route_table_id(&table_id).destination_cidr_block(&dest);
                                            match &target {
                                                Target::Nat(n) => call.nat_gateway_id(n),
                                                Target::Gateway(g) | Target::Other(g) => call.gateway_id(g),
                                            }
                                            .send()
                                        }};
                                    }
                                    if replace {
                                        route!(ec2.replace_route())
                                            .map(|r| r.aws("ec2:ReplaceRoute").map(|_| ()))
                                            .boxed()
                                    } else {
                                        route!(ec2.create_route()).map(|r| r.aws("ec2:CreateRoute").map(|_| ())).boxed()
                                    }
                                },
                            )
                            .await?;
                        }
                        Fix::DeleteRoute { dest, .. } => {
                            ec2.delete_route()
                                .route_table_id(id(&table)?)
                                .destination_cidr_block(&dest)
                                .send()
                                .await
                                .aws("ec2:DeleteRoute")
                                .ok_if_not_found()?;
                        }
                        Fix::Associate { subnet, .. } => {
                            let table_id = id(&table)?;
                            ctx.retry_while_propagating(
                                &catalogue::EC2_NEW_RESOURCE,
                                &format!("subnet {subnet}"),
                                || {
                                    ec2.associate_route_table()
                                        .route_table_id(&table_id)
                                        .subnet_id(&subnet)
                                        .send()
                                        .map(|r| r.aws("ec2:AssociateRouteTable"))
                                },
                            )
                            .await?;
                        }
                        Fix::Reassociate { association, .. } => {
                            let table_id = id(&table)?;
                            ctx.retry_while_propagating(&catalogue::EC2_NEW_RESOURCE, "a new route table", || {
                                ec2.replace_route_table_association()
                                    .association_id(&association)
                                    .route_table_id(&table_id)
                                    .send()
                                    .map(|r| r.aws("ec2:ReplaceRouteTableAssociation"))
                            })
                            .await?;
                        }
                        Fix::Tags { missing, .. } => ensure_tags(ctx, &id(&table)?, &missing).await?,
                    }
                }
                Ok(made.map(|t| (tier, t)))
            }
        })
        .await?;
        o.tables.extend(made.into_iter().flatten());
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let ec2 = &ctx.clients.ec2;
        for (tier, table) in &o.tables {
            for (rt, association) in o.associations.values() {
                if *rt == table.id {
                    ec2.disassociate_route_table()
                        .association_id(association)
                        .send()
                        .await
                        .aws("ec2:DisassociateRouteTable")
                        .ok_if_not_found()?;
                }
            }
            ctx.progress.step(&format!("deleting {tier} route table {}", table.id));
            ec2.delete_route_table()
                .route_table_id(&table.id)
                .send()
                .await
                .aws("ec2:DeleteRouteTable")
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

    fn test_ctx() -> Ctx {
        ctx(
            ID,
            RouteTables.reads(),
            &[
                (super::super::vpc::ID, "vpc_id", json!("vpc-1")),
                (super::super::subnets::ID, "public_subnet_ids", json!(["subnet-pub"])),
                (super::super::subnets::ID, "private_subnet_ids", json!(["subnet-priv"])),
                (super::super::subnets::ID, "database_subnet_ids", json!(["subnet-db"])),
                (super::super::igw::ID, "igw_id", json!("igw-1")),
                (super::super::nat::ID, "nat_gateway_id", json!("nat-1")),
            ],
        )
    }

    #[test]
    fn a_first_run_reads_as_creation_and_a_drift_names_the_route_as_it_is_and_as_wanted() {
        let ctx = test_ctx();
        let nothing = Observed { tables: BTreeMap::new(), associations: BTreeMap::new() };
        let steps: Vec<String> = fixes(&ctx, &nothing).unwrap().iter().filter_map(|f| f.action(&ctx)).collect();
        assert!(steps.contains(&"adding route 0.0.0.0/0 → NAT gateway nat-1 (private)".to_string()), "{steps:#?}");
        assert!(steps.contains(&"creating private route table payment-private-rt-qa".to_string()), "{steps:#?}");
        for step in &steps {
            assert!(["creating ", "adding ", "associating "].iter().any(|s| step.starts_with(s)), "{step}");
        }

        let tags = ctx.tags(Some("private"), Some(&ctx.names.route_table(Tier::Private)));
        let table = |id: &str, routes: &[(&str, Target)]| Table {
            id: id.into(),
            tags: super::super::ec2_tags(&tags),
            routes: routes.iter().map(|(d, t)| (d.to_string(), t.clone())).collect(),
        };
        let o = Observed {
            tables: BTreeMap::from([
                (Tier::Public, table("rtb-pub", &[(ANYWHERE, Target::Gateway("igw-1".into()))])),
                (
                    Tier::Private,
                    table("rtb-priv", &[("10.9.0.0/16", Target::Other("peering connection pcx-1".into()))]),
                ),
                (Tier::Database, table("rtb-db", &[])),
            ]),
            associations: BTreeMap::from([
                ("subnet-pub".to_string(), ("rtb-pub".to_string(), "a-1".to_string())),
                ("subnet-priv".to_string(), ("rtb-other".to_string(), "a-2".to_string())),
                ("subnet-db".to_string(), ("rtb-db".to_string(), "a-3".to_string())),
            ]),
        };
        let change = RouteTables.diff(&ctx, &o).unwrap();
        let drifts: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
        assert!(drifts.contains(&"route 0.0.0.0/0 (private): missing → NAT gateway nat-1".to_string()), "{drifts:#?}");
        assert!(drifts.contains(&"route 10.9.0.0/16 (private): peering connection pcx-1 → absent".to_string()));
        assert!(drifts.contains(
            &"subnet subnet-priv route table: route table rtb-other → the private route table rtb-priv".into()
        ));
        assert!(
            drifts.iter().any(|d| d.starts_with("public route table tags: ")),
            "the private member's tags on the public table: {drifts:#?}"
        );
        assert_plain(&change.drifts());
    }
}
