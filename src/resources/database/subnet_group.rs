//! `database.subnet-group`: the DB subnet group over the three database subnets.

use super::{ensure_tags, rds_tags, tags_of};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::Tier;
use crate::resources::Outputs;
use crate::resources::{listed, network, Change, Ctx, Drift, Input, Resource, Result};
use async_trait::async_trait;
use serde_json::json;
use std::collections::BTreeMap;

pub struct SubnetGroup;

pub const ID: &str = "database.subnet-group";

pub struct Observed {
    pub arn: String,
    pub subnets: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[async_trait]
impl Resource for SubnetGroup {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: network::subnets::ID, key: "database_subnet_ids" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let out = ctx
            .clients
            .rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(ctx.names.db_subnet_group())
            .send()
            .await
            .aws("rds:DescribeDBSubnetGroups")
            .ok_if_not_found()?;
        let Some(g) = out.as_ref().and_then(|o| o.db_subnet_groups().first()) else { return Ok(None) };
        let arn = g.db_subnet_group_arn().unwrap_or_default().to_string();
        let mut subnets: Vec<String> =
            g.subnets().iter().filter_map(|s| s.subnet_identifier().map(str::to_string)).collect();
        subnets.sort();
        Ok(Some(Observed { tags: tags_of(ctx, &arn).await?, arn, subnets }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let mut want = network::subnets::tier_ids(ctx, Tier::Database)?;
        want.sort();
        let mut d = Vec::new();
        if o.subnets != want {
            d.push(Drift::new("subnets", listed(&o.subnets), listed(&want)));
        }
        d.extend(ctx.tag_drift(&o.tags));
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, ctx: &Ctx, _o: &Observed) -> Outputs {
        Outputs::from([("subnet_group_name".into(), json!(ctx.names.db_subnet_group()))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let rds = &ctx.clients.rds;
        let name = ctx.names.db_subnet_group();
        let mut want = network::subnets::tier_ids(ctx, Tier::Database)?;
        want.sort();
        match observed {
            None => {
                ctx.progress.step(&format!("creating DB subnet group {name}"));
                rds.create_db_subnet_group()
                    .db_subnet_group_name(&name)
                    .db_subnet_group_description("Aurora PostgreSQL of the payments stack: database subnets only")
                    .set_subnet_ids(Some(want))
                    .set_tags(Some(rds_tags(ctx)))
                    .send()
                    .await
                    .aws("rds:CreateDBSubnetGroup")?;
            }
            Some(o) => {
                if o.subnets != want {
                    ctx.progress.step(&format!("setting the subnets of {name} to {}", listed(&want)));
                    rds.modify_db_subnet_group()
                        .db_subnet_group_name(&name)
                        .set_subnet_ids(Some(want))
                        .send()
                        .await
                        .aws("rds:ModifyDBSubnetGroup")?;
                }
                ensure_tags(ctx, &o.arn, &o.tags).await?;
            }
        }
        Ok(Outputs::from([("subnet_group_name".into(), json!(name))]))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        ctx.clients
            .rds
            .delete_db_subnet_group()
            .db_subnet_group_name(ctx.names.db_subnet_group())
            .send()
            .await
            .aws("rds:DeleteDBSubnetGroup")
            .ok_if_not_found()?;
        Ok(())
    }
}
