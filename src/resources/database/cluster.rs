//! `database.cluster`: the Aurora PostgreSQL Serverless v2 cluster — storage encrypted with the
//! stack's key, backups kept one day, no deletion protection and no final snapshot (the stack
//! must be destroyable), IAM database authentication, PostgreSQL logs exported to CloudWatch,
//! tags copied to snapshots. The master password comes from `secrets.db-master` and goes
//! straight into CreateDBCluster: never into state, logs or output.
//!
//! Changing the engine or the encryption means a new cluster and the loss of its data: refused,
//! always (`plan` says why); destroy the stack to start over.

use super::{ensure_tags, rds_tags, tags_of, ENGINE};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::retry::Readiness;
use crate::resources::Outputs;
use crate::resources::{counted, listed, on_off, or_none};
use crate::resources::{kms, network, secrets, After, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_rds::types::{CloudwatchLogsExportConfiguration, DbCluster, ServerlessV2ScalingConfiguration};
use serde_json::json;
use std::collections::BTreeMap;

pub struct AuroraCluster;

pub const ID: &str = "database.cluster";
pub const LOG_EXPORTS: [&str; 1] = ["postgresql"];
pub const BACKUP_RETENTION_DAYS: i32 = 1;

pub struct Observed {
    pub cluster: DbCluster,
    pub tags: BTreeMap<String, String>,
}

async fn describe(ctx: &Ctx) -> Result<Option<DbCluster>> {
    let out = ctx
        .clients
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(ctx.names.db_cluster())
        .send()
        .await
        .aws("rds:DescribeDBClusters")
        .ok_if_not_found()?;
    Ok(out.and_then(|o| o.db_clusters().first().cloned()))
}

async fn wait_available(ctx: &Ctx) -> Result<DbCluster> {
    let id = ctx.names.db_cluster();
    ctx.until_ready(&format!("Aurora cluster {id}"), ctx.waits.database, || async {
        Ok(match describe(ctx).await? {
            Some(c) => match super::readiness(c.status()) {
                Readiness::Ready(()) => Readiness::Ready(c),
                Readiness::Pending(s) => Readiness::Pending(s),
                Readiness::Failed(s) => Readiness::Failed(s),
                Readiness::Absent => Readiness::Absent,
            },
            None => Readiness::Absent,
        })
    })
    .await
}

/// Serverless v2 capacity as the console writes it: `0.5–4 ACU`.
fn capacity(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (None, None) => "none".to_string(),
        (min, max) => format!("{}–{} ACU", or_none(min), or_none(max)),
    }
}

/// The drifts that ModifyDBCluster can fix.
fn drifts(ctx: &Ctx, c: &DbCluster) -> Result<Vec<Drift>> {
    let mut d = Vec::new();
    let scaling = c.serverless_v2_scaling_configuration();
    let (min, max) = (scaling.and_then(|s| s.min_capacity()), scaling.and_then(|s| s.max_capacity()));
    let (want_min, want_max) = (ctx.config.db_min_acu, ctx.config.db_max_acu);
    if min != Some(want_min) || max != Some(want_max) {
        d.push(Drift::new("capacity", capacity(min, max), capacity(Some(want_min), Some(want_max))));
    }
    if c.backup_retention_period() != Some(BACKUP_RETENTION_DAYS) {
        let have = c.backup_retention_period().map(|n| counted(n.into(), "day"));
        d.push(Drift::new("backup retention", or_none(have), counted(BACKUP_RETENTION_DAYS.into(), "day")));
    }
    if c.deletion_protection() == Some(true) {
        // Off so that the stack can be destroyed.
        d.push(Drift::new("deletion protection", "on", "off"));
    }
    if c.iam_database_authentication_enabled() != Some(true) {
        d.push(Drift::new("IAM database authentication", "off", "on"));
    }
    for log in LOG_EXPORTS {
        if !c.enabled_cloudwatch_logs_exports().iter().any(|e| e == log) {
            d.push(Drift::new(format!("{log} log export"), "off", "on"));
        }
    }
    if c.copy_tags_to_snapshot() != Some(true) {
        d.push(Drift::new("copy tags to snapshots", on_off(false), on_off(true)));
    }
    let group = ctx.names.db_parameter_group();
    if c.db_cluster_parameter_group() != Some(group.as_str()) {
        d.push(Drift::new("parameter group", or_none(c.db_cluster_parameter_group()), group));
    }
    let sg = ctx.input(network::security_groups::ID, "database_sg_id")?;
    let groups: Vec<&str> = c.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id()).collect();
    if groups != [sg.as_str()] {
        d.push(Drift::new("security groups", listed(&groups), sg));
    }
    Ok(d)
}

#[async_trait]
impl Resource for AuroraCluster {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: kms::ID, key: "key_arn" },
            Input { node: network::security_groups::ID, key: "database_sg_id" },
            Input { node: secrets::DB_MASTER, key: "secret_arn" },
        ]
    }
    fn after(&self) -> &'static [After] {
        &[
            After { node: super::subnet_group::ID, why: "the cluster is created in the subnet group, which it names" },
            After { node: super::parameter_group::ID, why: "the cluster uses the parameter group, which it names" },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let Some(cluster) = describe(ctx).await? else { return Ok(None) };
        if cluster.status() == Some("deleting") {
            return Ok(None);
        }
        let tags = tags_of(ctx, cluster.db_cluster_arn().unwrap_or_default()).await?;
        Ok(Some(Observed { cluster, tags }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let c = &o.cluster;
        let key = ctx.input(kms::ID, "key_arn")?;
        if c.engine() != Some(ENGINE) {
            return Ok(Change::Replace(Drift::new("engine", or_none(c.engine()), ENGINE)));
        }
        if c.storage_encrypted() != Some(true) {
            return Ok(Change::Replace(Drift::new("storage encryption", "off", format!("on, with {key}"))));
        }
        if c.kms_key_id() != Some(key.as_str()) {
            return Ok(Change::Replace(Drift::new("storage encryption key", or_none(c.kms_key_id()), key)));
        }
        let mut d = drifts(ctx, c)?;
        if c.status() != Some("available") {
            d.push(Drift::new("status", c.status().unwrap_or("unknown"), "available"));
        }
        d.extend(ctx.tag_drift(&o.tags));
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        let c = &o.cluster;
        Outputs::from([
            ("cluster_id".into(), json!(c.db_cluster_identifier().unwrap_or_default())),
            ("cluster_arn".into(), json!(c.db_cluster_arn().unwrap_or_default())),
            ("cluster_resource_id".into(), json!(c.db_cluster_resource_id().unwrap_or_default())),
            ("writer_endpoint".into(), json!(c.endpoint().unwrap_or_default())),
            ("reader_endpoint".into(), json!(c.reader_endpoint().unwrap_or_default())),
            ("port".into(), json!(c.port().unwrap_or(5432).to_string())),
        ])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let rds = &ctx.clients.rds;
        let id = ctx.names.db_cluster();
        let sg = ctx.input(network::security_groups::ID, "database_sg_id")?;
        let scaling = ServerlessV2ScalingConfiguration::builder()
            .min_capacity(ctx.config.db_min_acu)
            .max_capacity(ctx.config.db_max_acu)
            .build();
        let o = match observed {
            Some(o) => o,
            None => {
                let secret_arn = ctx.input(secrets::DB_MASTER, "secret_arn")?;
                let value = ctx
                    .clients
                    .secrets
                    .get_secret_value()
                    .secret_id(&secret_arn)
                    .send()
                    .await
                    .aws("secretsmanager:GetSecretValue")?;
                let credentials: serde_json::Value =
                    value.secret_string().and_then(|s| serde_json::from_str(s).ok()).ok_or_else(|| {
                        ResourceError::new(
                            "BadSecret",
                            format!("{secret_arn} does not hold the master credentials as JSON"),
                        )
                    })?;
                let (Some(user), Some(password)) = (credentials["username"].as_str(), credentials["password"].as_str())
                else {
                    return Err(ResourceError::new("BadSecret", format!("{secret_arn} lacks username or password")));
                };
                ctx.progress.step(&format!("creating Aurora cluster {id} (about ten minutes on AWS)"));
                rds.create_db_cluster()
                    .db_cluster_identifier(&id)
                    .engine(ENGINE)
                    .engine_version(&ctx.config.db_engine_version)
                    .master_username(user)
                    .database_name("payments")
                    .master_user_password(password)
                    .serverless_v2_scaling_configuration(scaling.clone())
                    .storage_encrypted(true)
                    .kms_key_id(ctx.input(kms::ID, "key_arn")?)
                    .backup_retention_period(BACKUP_RETENTION_DAYS)
                    .deletion_protection(false)
                    .enable_iam_database_authentication(true)
                    .set_enable_cloudwatch_logs_exports(Some(LOG_EXPORTS.iter().map(|s| s.to_string()).collect()))
                    .copy_tags_to_snapshot(true)
                    .db_subnet_group_name(ctx.names.db_subnet_group())
                    .db_cluster_parameter_group_name(ctx.names.db_parameter_group())
                    .vpc_security_group_ids(&sg)
                    .set_tags(Some(rds_tags(ctx)))
                    .send()
                    .await
                    .aws("rds:CreateDBCluster")?;
                let cluster = wait_available(ctx).await?;
                Observed { tags: ctx.tags(None, None).into_iter().collect(), cluster }
            }
        };
        let o = if o.cluster.status() != Some("available") {
            Observed { cluster: wait_available(ctx).await?, ..o }
        } else {
            o
        };
        let repairs = drifts(ctx, &o.cluster)?;
        if !repairs.is_empty() {
            ctx.progress.step(&format!(
                "changing Aurora cluster {id}: {}",
                listed(repairs.iter().map(|d| format!("{} to {}", d.field, d.wanted)))
            ));
            let missing_logs: Vec<String> = LOG_EXPORTS
                .iter()
                .filter(|l| !o.cluster.enabled_cloudwatch_logs_exports().iter().any(|e| e == *l))
                .map(|s| s.to_string())
                .collect();
            let mut modify = rds
                .modify_db_cluster()
                .db_cluster_identifier(&id)
                .apply_immediately(true)
                .serverless_v2_scaling_configuration(scaling)
                .backup_retention_period(BACKUP_RETENTION_DAYS)
                .deletion_protection(false)
                .enable_iam_database_authentication(true)
                .copy_tags_to_snapshot(true)
                .db_cluster_parameter_group_name(ctx.names.db_parameter_group())
                .vpc_security_group_ids(&sg);
            if !missing_logs.is_empty() {
                modify = modify.cloudwatch_logs_export_configuration(
                    CloudwatchLogsExportConfiguration::builder().set_enable_log_types(Some(missing_logs)).build(),
                );
            }
            modify.send().await.aws("rds:ModifyDBCluster")?;
        }
        ensure_tags(ctx, o.cluster.db_cluster_arn().unwrap_or_default(), &o.tags).await?;
        let cluster = describe(ctx).await?.unwrap_or(o.cluster);
        Ok(self.outputs(ctx, &Observed { cluster, tags: BTreeMap::new() }))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        let id = ctx.names.db_cluster();
        ctx.progress.step(&format!("deleting Aurora cluster {id} (no final snapshot)"));
        ctx.clients
            .rds
            .delete_db_cluster()
            .db_cluster_identifier(&id)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await
            .aws("rds:DeleteDBCluster")
            .ok_if_not_found()?;
        ctx.until_gone(&format!("Aurora cluster {id}"), ctx.waits.database, || async {
            Ok(describe(ctx).await?.map(|c| format!("status {}", c.status().unwrap_or("unknown"))))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};
    use aws_sdk_rds::types::{ServerlessV2ScalingConfigurationInfo, VpcSecurityGroupMembership};

    #[test]
    fn cluster_drifts_read_as_the_console_writes_them() {
        let ctx = ctx(
            ID,
            AuroraCluster.reads(),
            &[
                (network::security_groups::ID, "database_sg_id", json!("sg-d")),
                (kms::ID, "key_arn", json!("arn:aws:kms:us-east-1:123456789012:key/k")),
            ],
        );
        let cluster = DbCluster::builder()
            .engine(ENGINE)
            .storage_encrypted(true)
            .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/k")
            .status("available")
            .serverless_v2_scaling_configuration(
                ServerlessV2ScalingConfigurationInfo::builder().min_capacity(0.5).max_capacity(2.0).build(),
            )
            .backup_retention_period(7)
            .deletion_protection(true)
            .iam_database_authentication_enabled(true)
            .enabled_cloudwatch_logs_exports("postgresql")
            .copy_tags_to_snapshot(true)
            .db_cluster_parameter_group(ctx.names.db_parameter_group())
            .vpc_security_groups(VpcSecurityGroupMembership::builder().vpc_security_group_id("sg-other").build())
            .build();
        let o = Observed { cluster, tags: ctx.tags(None, None).into_iter().collect() };
        let change = AuroraCluster.diff(&ctx, &o).unwrap();
        let drifts: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            drifts,
            [
                "capacity: 0.5–2 ACU → 0.5–4 ACU",
                "backup retention: 7 days → 1 day",
                "deletion protection: on → off",
                "security groups: sg-other → sg-d",
            ]
        );
        assert_plain(&change.drifts());
        let mysql = Observed { cluster: DbCluster::builder().engine("aurora-mysql").build(), tags: BTreeMap::new() };
        assert_eq!(
            AuroraCluster.diff(&ctx, &mysql).unwrap(),
            Change::Replace(Drift::new("engine", "aurora-mysql", ENGINE))
        );
    }
}
