//! Recovery drills (`tapctl restore`, PCI DSS 12.10.1): the transactions table and the Aurora
//! cluster restored to a point in time into NEW resources beside the live ones —
//! `transactions-<suffix>-drill-<YYYYMMDDHHMM>` and `payments-<suffix>-drill-<YYYYMMDDHHMM>` (with one
//! db.serverless instance, so it can be queried) — tagged `tap:drill=<stamp>` and never touching
//! the live resources. Found again by their names and tags (a re-run finishes a drill in
//! progress), removed by `restore --cleanup`, and by the `backup.drills` finalizer of `destroy`
//! before the subnet group, security group and key they use go.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::tag;
use crate::resources::retry::Readiness;
use crate::resources::{After, Ctx, Finalizer, Result};
use async_trait::async_trait;

/// The tag every drill resource carries; its value is the drill's stamp.
pub const DRILL_TAG: &str = "tap:drill";

pub const ID: &str = "backup.drills";

/// The drill's stamp: the minute it began, UTC (`202612010305`).
pub fn stamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y%m%d%H%M").to_string()
}

fn table_prefix(suffix: &str) -> String {
    format!("transactions-{suffix}-drill-")
}

fn cluster_prefix(suffix: &str) -> String {
    format!("payments-{suffix}-drill-")
}

pub fn table_name(suffix: &str, stamp: &str) -> String {
    format!("{}{stamp}", table_prefix(suffix))
}

pub fn cluster_id(suffix: &str, stamp: &str) -> String {
    format!("{}{stamp}", cluster_prefix(suffix))
}

pub fn instance_id(suffix: &str, stamp: &str) -> String {
    format!("{}-1", cluster_id(suffix, stamp))
}

/// The drill resources of the suffix AWS holds.
#[derive(Debug, Default, Clone)]
pub struct Drills {
    pub tables: Vec<String>,
    /// Cluster id → its instances.
    pub clusters: Vec<(String, Vec<String>)>,
}

impl Drills {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.clusters.is_empty()
    }

    /// The stamp of a drill in progress, if any (the newest).
    pub fn stamp(&self, suffix: &str) -> Option<String> {
        let from_tables = self.tables.iter().filter_map(|t| t.strip_prefix(&table_prefix(suffix)));
        let from_clusters = self.clusters.iter().filter_map(|(c, _)| c.strip_prefix(&cluster_prefix(suffix)));
        from_tables.chain(from_clusters).max().map(str::to_string)
    }
}

/// The drills of the suffix: clusters by their tags (`tap:drill` and the suffix), tables by their
/// names' prefix and then their tags — a table restored by a run killed before it was tagged is
/// found by its name.
pub async fn find(ctx: &Ctx) -> Result<Drills> {
    let suffix = &ctx.names.suffix;
    let mut drills = Drills::default();
    let ddb = &ctx.clients.dynamodb;
    let mut pages = ddb.list_tables().into_paginator().items().send();
    while let Some(name) = pages.next().await {
        let name = name.aws("dynamodb:ListTables")?;
        if name.starts_with(&table_prefix(suffix)) {
            drills.tables.push(name);
        }
    }
    let rds = &ctx.clients.rds;
    let mut pages = rds.describe_db_clusters().into_paginator().items().send();
    while let Some(c) = pages.next().await {
        let c = c.aws("rds:DescribeDBClusters")?;
        let tags = c.tag_list();
        let has = |k: &str, v: Option<&str>| {
            tags.iter().any(|t| t.key() == Some(k) && v.is_none_or(|v| t.value() == Some(v)))
        };
        let id = c.db_cluster_identifier().unwrap_or_default().to_string();
        if has(DRILL_TAG, None) && has(tag::SUFFIX, Some(suffix)) && id.starts_with(&cluster_prefix(suffix)) {
            let members = c.db_cluster_members().iter().filter_map(|m| m.db_instance_identifier().map(str::to_string));
            drills.clusters.push((id, members.collect()));
        }
    }
    Ok(drills)
}

async fn instance_state(ctx: &Ctx, id: &str) -> Result<Option<String>> {
    let out = ctx
        .clients
        .rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .aws("rds:DescribeDBInstances")
        .ok_if_not_found()?;
    Ok(out.and_then(|o| o.db_instances().first().map(|i| i.db_instance_status().unwrap_or("unknown").to_string())))
}

async fn cluster_state(ctx: &Ctx, id: &str) -> Result<Option<aws_sdk_rds::types::DbCluster>> {
    let out = ctx
        .clients
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .aws("rds:DescribeDBClusters")
        .ok_if_not_found()?;
    Ok(out.and_then(|o| o.db_clusters().first().cloned()))
}

async fn table_status(ctx: &Ctx, name: &str) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>> {
    let out = ctx
        .clients
        .dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .aws("dynamodb:DescribeTable")
        .ok_if_not_found()?;
    Ok(out.and_then(|o| o.table().cloned()))
}

/// Deletes every drill resource of the suffix and waits until each is gone; the names removed.
pub async fn remove_all(ctx: &Ctx) -> Result<Vec<String>> {
    let drills = find(ctx).await?;
    let mut removed = Vec::new();
    for (cluster, instances) in &drills.clusters {
        for i in instances {
            ctx.progress.step(&format!("deleting drill instance {i}"));
            ctx.clients
                .rds
                .delete_db_instance()
                .db_instance_identifier(i)
                .skip_final_snapshot(true)
                .send()
                .await
                .aws("rds:DeleteDBInstance")
                .ok_if_not_found()?;
        }
        for i in instances {
            ctx.until_gone(&format!("drill instance {i}"), ctx.waits.database, || instance_state(ctx, i)).await?;
            removed.push(i.clone());
        }
        ctx.progress.step(&format!("deleting drill cluster {cluster}"));
        ctx.clients
            .rds
            .delete_db_cluster()
            .db_cluster_identifier(cluster)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await
            .aws("rds:DeleteDBCluster")
            .ok_if_not_found()?;
        ctx.until_gone(&format!("drill cluster {cluster}"), ctx.waits.database, || async {
            Ok(cluster_state(ctx, cluster).await?.map(|c| c.status().unwrap_or("unknown").to_string()))
        })
        .await?;
        removed.push(cluster.clone());
    }
    for t in &drills.tables {
        ctx.progress.step(&format!("deleting drill table {t}"));
        ctx.clients.dynamodb.delete_table().table_name(t).send().await.aws("dynamodb:DeleteTable").ok_if_not_found()?;
        ctx.until_gone(&format!("drill table {t}"), ctx.waits.table, || async {
            Ok(table_status(ctx, t)
                .await?
                .map(|d| d.table_status().map(|s| s.as_str().to_string()).unwrap_or_default()))
        })
        .await?;
        removed.push(t.clone());
    }
    Ok(removed)
}

/// What a drill restores into: the live resources' names and the stack's settings.
pub struct Target {
    pub live_table: String,
    pub live_cluster: String,
    pub subnet_group: String,
    pub parameter_group: String,
    pub security_group: String,
    pub key_arn: String,
}

/// What a drill made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drill {
    pub stamp: String,
    pub table: String,
    pub table_arn: String,
    pub cluster: String,
    pub instance: String,
    pub writer_endpoint: String,
    pub reader_endpoint: String,
    /// The instant restored to (RFC 3339), or `latest restorable time`.
    pub restored_to: String,
}

/// Restores the table and the cluster into the drill of `stamp` (made, or finished when a killed
/// run began it), and waits until both can be used.
pub async fn restore(
    ctx: &Ctx,
    target: &Target,
    stamp: &str,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Drill> {
    let suffix = &ctx.names.suffix;
    let (table, cluster, instance) = (table_name(suffix, stamp), cluster_id(suffix, stamp), instance_id(suffix, stamp));
    let mut tags = ctx.tags(None, None);
    tags.push((DRILL_TAG.to_string(), stamp.to_string()));
    let ddb = &ctx.clients.dynamodb;
    if table_status(ctx, &table).await?.is_none() {
        ctx.progress.step(&format!("restoring table {} into {table}", target.live_table));
        let sse = aws_sdk_dynamodb::types::SseSpecification::builder()
            .enabled(true)
            .sse_type(aws_sdk_dynamodb::types::SseType::Kms)
            .kms_master_key_id(&target.key_arn)
            .build();
        let mut call = ddb
            .restore_table_to_point_in_time()
            .source_table_name(&target.live_table)
            .target_table_name(&table)
            .sse_specification_override(sse)
            .billing_mode_override(aws_sdk_dynamodb::types::BillingMode::PayPerRequest);
        call = match at {
            Some(t) => call.restore_date_time(aws_smithy_types::DateTime::from_secs(t.timestamp())),
            None => call.use_latest_restorable_time(true),
        };
        match call.send().await.aws("dynamodb:RestoreTableToPointInTime") {
            Ok(_) => {}
            Err(e) if e.code.as_deref() == Some("TableAlreadyExistsException") => {}
            Err(e) => return Err(e.into()),
        }
    }
    let t = ctx
        .until_ready(&format!("drill table {table}"), ctx.waits.table, || async {
            Ok(match table_status(ctx, &table).await? {
                None => Readiness::Absent,
                Some(d) => match d.table_status() {
                    Some(aws_sdk_dynamodb::types::TableStatus::Active) => Readiness::Ready(d),
                    Some(s) => Readiness::Pending(s.as_str().to_string()),
                    None => Readiness::Pending("unknown".into()),
                },
            })
        })
        .await?;
    let table_arn = t.table_arn().unwrap_or_default().to_string();
    let ddb_tags: Vec<aws_sdk_dynamodb::types::Tag> =
        tags.iter().filter_map(|(k, v)| aws_sdk_dynamodb::types::Tag::builder().key(k).value(v).build().ok()).collect();
    ddb.tag_resource().resource_arn(&table_arn).set_tags(Some(ddb_tags)).send().await.aws("dynamodb:TagResource")?;

    let rds = &ctx.clients.rds;
    let rds_tags: Vec<aws_sdk_rds::types::Tag> =
        tags.iter().map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build()).collect();
    if cluster_state(ctx, &cluster).await?.is_none() {
        ctx.progress.step(&format!("restoring cluster {} into {cluster}", target.live_cluster));
        let mut call = rds
            .restore_db_cluster_to_point_in_time()
            .db_cluster_identifier(&cluster)
            .source_db_cluster_identifier(&target.live_cluster)
            .db_subnet_group_name(&target.subnet_group)
            .vpc_security_group_ids(&target.security_group)
            .kms_key_id(&target.key_arn)
            .db_cluster_parameter_group_name(&target.parameter_group)
            .enable_iam_database_authentication(true)
            .deletion_protection(false)
            .copy_tags_to_snapshot(true)
            .serverless_v2_scaling_configuration(
                aws_sdk_rds::types::ServerlessV2ScalingConfiguration::builder()
                    .min_capacity(ctx.config.db_min_acu)
                    .max_capacity(ctx.config.db_max_acu)
                    .build(),
            )
            .set_tags(Some(rds_tags.clone()));
        call = match at {
            Some(t) => call.restore_to_time(aws_smithy_types::DateTime::from_secs(t.timestamp())),
            None => call.use_latest_restorable_time(true),
        };
        match call.send().await.aws("rds:RestoreDBClusterToPointInTime") {
            Ok(_) => {}
            Err(e) if e.code.as_deref() == Some("DBClusterAlreadyExistsFault") => {}
            Err(e) => return Err(e.into()),
        }
    }
    let c = ctx
        .until_ready(&format!("drill cluster {cluster}"), ctx.waits.database, || async {
            Ok(match cluster_state(ctx, &cluster).await? {
                None => Readiness::Absent,
                Some(c) => match c.status() {
                    Some("available") => Readiness::Ready(c),
                    Some(s @ ("failed" | "inaccessible-encryption-credentials" | "incompatible-restore")) => {
                        Readiness::Failed(s.to_string())
                    }
                    Some(s) => Readiness::Pending(s.to_string()),
                    None => Readiness::Pending("unknown".into()),
                },
            })
        })
        .await?;
    if instance_state(ctx, &instance).await?.is_none() {
        ctx.progress.step(&format!("adding instance {instance} (db.serverless) to {cluster}"));
        match rds
            .create_db_instance()
            .db_instance_identifier(&instance)
            .db_cluster_identifier(&cluster)
            .engine("aurora-postgresql")
            .db_instance_class("db.serverless")
            .publicly_accessible(false)
            .set_tags(Some(rds_tags))
            .send()
            .await
            .aws("rds:CreateDBInstance")
        {
            Ok(_) => {}
            Err(e) if e.code.as_deref() == Some("DBInstanceAlreadyExists") => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.until_ready(&format!("drill instance {instance}"), ctx.waits.database, || async {
        Ok(match instance_state(ctx, &instance).await? {
            None => Readiness::Absent,
            Some(s) if s == "available" => Readiness::Ready(()),
            Some(s)
                if matches!(s.as_str(), "failed" | "incompatible-restore" | "inaccessible-encryption-credentials") =>
            {
                Readiness::Failed(s)
            }
            Some(s) => Readiness::Pending(s),
        })
    })
    .await?;
    Ok(Drill {
        stamp: stamp.to_string(),
        table,
        table_arn,
        cluster,
        instance,
        writer_endpoint: c.endpoint().unwrap_or_default().to_string(),
        reader_endpoint: c.reader_endpoint().unwrap_or_default().to_string(),
        restored_to: at.map_or_else(|| "latest restorable time".to_string(), |t| t.to_rfc3339()),
    })
}

/// `destroy` removes the drills of the suffix (nothing orphaned), before what they use goes.
pub struct LeftoverDrills;

#[async_trait]
impl Finalizer for LeftoverDrills {
    fn id(&self) -> &'static str {
        ID
    }
    fn owners(&self) -> Vec<&'static str> {
        vec![]
    }
    fn before(&self) -> &'static [After] {
        &[
            After {
                node: crate::resources::database::subnet_group::ID,
                why: "a drill cluster sits in the stack's subnet group: removed before the group goes",
            },
            After {
                node: crate::resources::network::security_groups::ID,
                why: "a drill cluster carries the database security group: removed before it goes",
            },
            After {
                node: crate::resources::kms::ID,
                why: "drill tables and clusters are encrypted with the stack's key: removed before its deletion",
            },
        ]
    }

    async fn run(&self, ctx: &Ctx) -> Result<bool> {
        let removed = remove_all(ctx).await?;
        Ok(!removed.is_empty())
    }
}

/// A drill's `--point-in-time`: RFC 3339, not in the future, and within the window both
/// restores can reach — the cluster's automated backups (`database.cluster` keeps 1 day), which
/// is shorter than the table's 35 days of point-in-time recovery.
pub fn check_point_in_time(
    given: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> std::result::Result<chrono::DateTime<chrono::Utc>, String> {
    let t = chrono::DateTime::parse_from_rfc3339(given)
        .map_err(|_| format!("'{given}' is not an RFC 3339 time like 2026-12-01T03:00:00Z"))?
        .with_timezone(&chrono::Utc);
    if t > now {
        return Err(format!("{given} is in the future; a restore reaches only times that have passed"));
    }
    let window = chrono::Duration::days(crate::resources::database::cluster::BACKUP_RETENTION_DAYS.into());
    if now - t > window {
        return Err(format!(
            "{given} is older than the {} day(s) the Aurora cluster's automated backups reach (the table's \
             point-in-time recovery reaches 35 days); choose a time within the window",
            crate::resources::database::cluster::BACKUP_RETENTION_DAYS
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn drill_names_carry_the_suffix_and_the_minute() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 3, 5, 59).unwrap();
        assert_eq!(stamp(at), "202612010305");
        assert_eq!(table_name("qa", "202612010305"), "transactions-qa-drill-202612010305");
        assert_eq!(cluster_id("qa", "202612010305"), "payments-qa-drill-202612010305");
        assert_eq!(instance_id("qa", "202612010305"), "payments-qa-drill-202612010305-1");
        let d = Drills { tables: vec![table_name("qa", "202612010305")], clusters: vec![] };
        assert_eq!(d.stamp("qa").as_deref(), Some("202612010305"));
    }

    #[test]
    fn a_point_in_time_is_rfc3339_past_and_within_the_window() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap();
        assert!(check_point_in_time("2026-12-01T02:00:00Z", now).is_ok());
        assert!(check_point_in_time("2026-12-01T04:00:00+01:00", now).is_ok(), "03:00 UTC");
        assert!(check_point_in_time("2026-12-01T03:00:01Z", now).unwrap_err().contains("in the future"));
        assert!(check_point_in_time("2026-11-29T03:00:00Z", now).unwrap_err().contains("older than"));
        assert!(check_point_in_time("yesterday", now).unwrap_err().contains("RFC 3339"));
    }
}
