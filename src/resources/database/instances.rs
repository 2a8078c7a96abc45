//! `database.instances`: the cluster's `db.serverless` instances — a writer and
//! `--db-readers` readers, each in another availability zone, readers at promotion tier 1 so a
//! failover promotes one of them.

use super::{rds_tags, ENGINE};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::retry::Readiness;
use crate::resources::Outputs;
use crate::resources::{list, network, or_none, After, Change, Ctx, Drift, Input, Resource, Result};
use async_trait::async_trait;
use aws_sdk_rds::types::{DbInstance, Filter};
use std::collections::BTreeMap;

pub struct AuroraInstances;

pub const ID: &str = "database.instances";
pub const CLASS: &str = "db.serverless";

pub struct Observed {
    /// By identifier.
    pub instances: BTreeMap<String, DbInstance>,
}

/// identifier -> (AZ index, promotion tier): the writer first.
fn wanted(ctx: &Ctx) -> Vec<(String, usize, i32)> {
    (0..=ctx.config.db_readers).map(|i| (ctx.names.db_instance(i), i % 3, if i == 0 { 0 } else { 1 })).collect()
}

async fn describe(ctx: &Ctx) -> Result<BTreeMap<String, DbInstance>> {
    let out = ctx
        .clients
        .rds
        .describe_db_instances()
        .filters(Filter::builder().name("db-cluster-id").values(ctx.names.db_cluster()).build())
        .send()
        .await
        .aws("rds:DescribeDBInstances")
        .ok_if_not_found()?;
    Ok(out
        .map(|o| o.db_instances().to_vec())
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.db_instance_status() != Some("deleting"))
        .filter_map(|i| Some((i.db_instance_identifier()?.to_string(), i)))
        .collect())
}

/// Waits until every instance in `ids` is available.
async fn until_available(ctx: &Ctx, ids: &[String]) -> Result<()> {
    ctx.until_ready(&format!("Aurora instances {}", ids.join(", ")), ctx.waits.database, || async {
        let now = describe(ctx).await?;
        let mut pending = Vec::new();
        for id in ids {
            match now.get(id).map(|i| super::readiness(i.db_instance_status())) {
                Some(Readiness::Ready(())) => {}
                Some(Readiness::Pending(s)) => pending.push(format!("{id}: {s}")),
                Some(Readiness::Failed(s)) => return Ok(Readiness::Failed(format!("{id}: {s}"))),
                Some(Readiness::Absent) | None => return Ok(Readiness::Absent),
            }
        }
        Ok(if pending.is_empty() { Readiness::Ready(()) } else { Readiness::Pending(pending.join(", ")) })
    })
    .await
}

/// Waits until none of the instances in `ids` exists any more.
async fn until_gone(ctx: &Ctx, ids: &[String]) -> Result<()> {
    ctx.until_gone(&format!("Aurora instances {}", ids.join(", ")), ctx.waits.database, || async {
        let now = describe(ctx).await?;
        let left: Vec<String> = ids
            .iter()
            .filter_map(|id| now.get(id).map(|i| format!("{id}: {}", i.db_instance_status().unwrap_or("unknown"))))
            .collect();
        Ok((!left.is_empty()).then(|| left.join(", ")))
    })
    .await
}

#[async_trait]
impl Resource for AuroraInstances {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: network::subnets::ID, key: "availability_zones" }]
    }
    fn after(&self) -> &'static [After] {
        &[
            After { node: super::cluster::ID, why: "the instances join the cluster, which they name" },
            After {
                node: crate::resources::logs::ID,
                why: "the instances export their PostgreSQL log into the group, made first with the key and retention",
            },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let instances = describe(ctx).await?;
        Ok((!instances.is_empty()).then_some(Observed { instances }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let want = wanted(ctx);
        let mut d = Vec::new();
        for (id, _, _) in &want {
            match o.instances.get(id) {
                None => d.push(Drift::missing(format!("instance {id}"), CLASS)),
                Some(i) if i.db_instance_class() != Some(CLASS) => {
                    d.push(Drift::new(format!("instance {id} class"), or_none(i.db_instance_class()), CLASS))
                }
                Some(i) if i.db_instance_status() != Some("available") => d.push(Drift::new(
                    format!("instance {id} status"),
                    i.db_instance_status().unwrap_or("unknown"),
                    "available",
                )),
                Some(_) => {}
            }
        }
        for id in o.instances.keys().filter(|id| !want.iter().any(|(w, _, _)| w == *id)) {
            let readers = ctx.config.db_readers;
            d.push(Drift::unexpected(format!("instance {id}"), format!("a reader beyond the {readers} configured")));
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("instance_ids".into(), list(o.instances.keys().cloned()))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let rds = &ctx.clients.rds;
        let mut o = observed.unwrap_or(Observed { instances: BTreeMap::new() });
        let azs = ctx.input_list(network::subnets::ID, "availability_zones")?;
        let want = wanted(ctx);
        let mut touched = Vec::new();
        for (id, az, tier) in &want {
            match o.instances.get(id) {
                None => {
                    ctx.progress.step(&format!("creating Aurora instance {id} in {}", azs[*az]));
                    rds.create_db_instance()
                        .db_instance_identifier(id)
                        .db_cluster_identifier(ctx.names.db_cluster())
                        .engine(ENGINE)
                        .db_instance_class(CLASS)
                        .availability_zone(&azs[*az])
                        .promotion_tier(*tier)
                        .publicly_accessible(false)
                        .set_tags(Some(rds_tags(ctx)))
                        .send()
                        .await
                        .aws("rds:CreateDBInstance")?;
                    touched.push(id.clone());
                }
                Some(i) if i.db_instance_class() != Some(CLASS) => {
                    ctx.progress.step(&format!(
                        "changing the class of Aurora instance {id} from {} to {CLASS}",
                        or_none(i.db_instance_class())
                    ));
                    rds.modify_db_instance()
                        .db_instance_identifier(id)
                        .db_instance_class(CLASS)
                        .apply_immediately(true)
                        .send()
                        .await
                        .aws("rds:ModifyDBInstance")?;
                    touched.push(id.clone());
                }
                Some(i) if i.db_instance_status() != Some("available") => touched.push(id.clone()),
                Some(_) => {}
            }
        }
        if !touched.is_empty() {
            until_available(ctx, &touched).await?;
        }
        let extra: Vec<String> =
            o.instances.keys().filter(|id| !want.iter().any(|(w, _, _)| w == *id)).cloned().collect();
        for id in &extra {
            ctx.progress.step(&format!("deleting unwanted reader {id}"));
            rds.delete_db_instance()
                .db_instance_identifier(id)
                .send()
                .await
                .aws("rds:DeleteDBInstance")
                .ok_if_not_found()?;
        }
        if !extra.is_empty() {
            until_gone(ctx, &extra).await?;
        }
        o.instances = describe(ctx).await?;
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let ids: Vec<String> = o.instances.keys().cloned().collect();
        for id in &ids {
            ctx.progress.step(&format!("deleting Aurora instance {id}"));
            ctx.clients
                .rds
                .delete_db_instance()
                .db_instance_identifier(id)
                .send()
                .await
                .aws("rds:DeleteDBInstance")
                .ok_if_not_found()?;
        }
        until_gone(ctx, &ids).await
    }
}
