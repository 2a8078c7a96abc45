//! AWS Backup of the card-data stores (PCI DSS 12.10.1, 10.5.1, 3.5.1): `backup.vault` (the vault
//! in the stack's region, encrypted with the stack's key, and — with `--backup-copy-region` — a
//! key and a vault in the copy region) and `backup.plan` (the service role, the daily plan with
//! its copy action, and the selection of exactly the Aurora cluster and the transactions table).
//! `drills` holds what `tapctl restore` makes, and what `destroy` removes of it.
//!
//! Decisions:
//! - One daily snapshot rule, no continuous backup. AWS Backup's continuous backup of Aurora is
//!   capped at 35 days and takes over the cluster's own backup retention (which
//!   `database.cluster` keeps at 1 day: the two would fight); AWS Backup offers no continuous
//!   backup of DynamoDB at all. Point-in-time drills use the services' own PITR: the table's
//!   35 days and the cluster's automated backups.
//! - No cold storage: AWS Backup does not move Aurora snapshots to cold storage, and a DynamoDB
//!   table only with advanced backup; a lifecycle with it would need DeleteAfterDays ≥
//!   MoveToColdStorageAfterDays + 90.
//! - DynamoDB "advanced backup" (UpdateRegionSettings, ResourceTypeManagementPreference) is an
//!   account- and region-wide setting that changes how every team's DynamoDB backups are made and
//!   billed. tapctl never changes it: it reads it (DescribeRegionSettings) and `plan` names it as
//!   an operator's prerequisite while it is off (without it, the table's recovery points are
//!   encrypted with the table's key, not the vault's, and cannot be copied to another region).

pub mod drills;
pub mod plan;
pub mod vault;

use crate::names::Names;
use crate::resources::Ctx;
use std::collections::{BTreeMap, HashMap};

/// The vault, in the stack's region and in the copy region: `payments-<suffix>` (2–50 of
/// letters, digits, hyphens and underscores: the suffix rules keep it within).
pub fn vault_name(names: &Names) -> String {
    format!("payments-{}", names.suffix)
}

/// The plan and its selection share the vault's name.
pub fn plan_name(names: &Names) -> String {
    format!("payments-{}", names.suffix)
}

pub fn selection_name(names: &Names) -> String {
    format!("payments-{}", names.suffix)
}

/// The role AWS Backup assumes to back up and restore the selected resources.
pub fn role_name(names: &Names) -> String {
    format!("payments-backup-{}", names.suffix)
}

/// The alias of the copy region's key.
pub fn copy_key_alias(names: &Names) -> String {
    format!("alias/payments-{}-backup", names.suffix)
}

/// The one rule of the plan.
pub const RULE: &str = "daily";
/// 05:00 UTC every day: after the night's batch settlement, before the European morning.
pub const SCHEDULE: &str = "cron(0 5 ? * * *)";
pub const SCHEDULE_TIMEZONE: &str = "Etc/UTC";
/// AWS Backup's minimum start window is 60 minutes; a job not started within it is skipped.
pub const START_WINDOW_MINUTES: i64 = 60;
/// A day to finish: an Aurora snapshot of a large cluster takes hours.
pub const COMPLETION_WINDOW_MINUTES: i64 = 24 * 60;

/// AWS managed policies the service role carries (AWS Backup developer guide, "Managed
/// policies for AWS Backup": the service role policies for backup and for restores).
pub const MANAGED_POLICIES: [&str; 2] = [
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
];

/// A Backup client for `region`: the run's own client (endpoint, credentials, retries and the
/// call-counting interceptor) with another region.
pub fn backup_in(ctx: &Ctx, region: &str) -> aws_sdk_backup::Client {
    aws_sdk_backup::Client::from_conf(
        ctx.clients
            .backup
            .config()
            .to_builder()
            .region(aws_sdk_backup::config::Region::new(region.to_string()))
            .build(),
    )
}

/// A KMS client for `region` (the copy region's key), built as `backup_in`.
pub fn kms_in(ctx: &Ctx, region: &str) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::from_conf(
        ctx.clients.kms.config().to_builder().region(aws_sdk_kms::config::Region::new(region.to_string())).build(),
    )
}

/// Tags as AWS Backup takes them.
pub fn tag_map(tags: &[(String, String)]) -> HashMap<String, String> {
    tags.iter().cloned().collect()
}

/// Tags as AWS Backup answers them.
pub fn tags_of(map: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}
