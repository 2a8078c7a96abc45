//! The database layer: Aurora PostgreSQL Serverless v2 for customers, merchants and the ledger.

pub mod cluster;
pub mod instances;
pub mod parameter_group;
pub mod subnet_group;

use crate::aws::AwsResultExt;
use crate::resources::retry::Readiness;
use crate::resources::{Ctx, Result};
use aws_sdk_rds::types::Tag;
use std::collections::BTreeMap;

pub const ENGINE: &str = "aurora-postgresql";

pub fn rds_tags(ctx: &Ctx) -> Vec<Tag> {
    ctx.tags(None, None).iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

pub async fn tags_of(ctx: &Ctx, arn: &str) -> Result<BTreeMap<String, String>> {
    let out =
        ctx.clients.rds.list_tags_for_resource().resource_name(arn).send().await.aws("rds:ListTagsForResource")?;
    Ok(out.tag_list().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect())
}

pub async fn ensure_tags(ctx: &Ctx, arn: &str, have: &BTreeMap<String, String>) -> Result<()> {
    if let Some(drift) = ctx.tag_drift(have) {
        ctx.progress.step(&format!("tagging: {}", drift.wanted));
        ctx.clients
            .rds
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(rds_tags(ctx)))
            .send()
            .await
            .aws("rds:AddTagsToResource")?;
    }
    Ok(())
}

/// Whether an Aurora cluster or instance status means usable. RDS documents the statuses
/// (accessing-monitoring.html#Overview.DBInstance.Status, Aurora's cluster statuses): the ones
/// that waiting cannot end are failures; any status not listed here is not ready.
pub fn readiness(status: Option<&str>) -> Readiness<()> {
    match status {
        Some("available") => Readiness::Ready(()),
        Some(
            s @ ("backing-up"
            | "backtracking"
            | "configuring-enhanced-monitoring"
            | "configuring-iam-database-auth"
            | "configuring-log-exports"
            | "creating"
            | "failing-over"
            | "maintenance"
            | "migrating"
            | "modifying"
            | "promoting"
            | "rebooting"
            | "renaming"
            | "resetting-master-credentials"
            | "scaling-compute"
            | "starting"
            | "storage-optimization"
            | "update-iam-db-auth"
            | "upgrading"
            | "inaccessible-encryption-credentials-recoverable"),
        ) => Readiness::Pending(format!("status {s}")),
        Some(
            s @ ("failed"
            | "cloning-failed"
            | "migration-failed"
            | "inaccessible-encryption-credentials"
            | "incompatible-network"
            | "incompatible-parameters"
            | "incompatible-restore"
            | "insufficient-capacity"
            | "restore-error"
            | "storage-full"),
        ) => Readiness::Failed(format!("status {s}")),
        Some(s @ ("stopped" | "stopping")) => {
            Readiness::Failed(format!("status {s}: start it (aws rds start-db-cluster) and re-run"))
        }
        Some(s @ ("deleting" | "delete-precheck")) => Readiness::Failed(format!("status {s}: it is being deleted")),
        Some(other) => Readiness::Pending(format!("status {other} (not a status tapctl knows)")),
        None => Readiness::Pending("no status reported".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_available_is_ready_and_unknown_statuses_are_not() {
        assert!(matches!(readiness(Some("available")), Readiness::Ready(())));
        assert!(matches!(readiness(Some("creating")), Readiness::Pending(_)));
        assert!(matches!(readiness(Some("a-status-from-2030")), Readiness::Pending(_)));
        assert!(matches!(readiness(None), Readiness::Pending(_)));
        assert!(matches!(readiness(Some("inaccessible-encryption-credentials")), Readiness::Failed(_)));
        assert!(matches!(readiness(Some("stopped")), Readiness::Failed(_)));
    }
}
