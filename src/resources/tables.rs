//! `tables.transactions`: the DynamoDB table of transaction records.
//!
//! Key design (single table, for the functions' access patterns):
//! - `pk` / `sk` (both S): `TXN#<transaction id>` / `TXN` for a transaction; `IDEM#<merchant>#<key>`
//!   / `IDEM` for the idempotency record `process` writes first with a conditional put.
//! - GSIs, each with `created_at` (ISO-8601 S) as sort key:
//!   `by-card` (`card_fingerprint`: velocity per card), `by-merchant` (`merchant_id`),
//!   `by-status` (`status`: failed or review queues).
//!
//! On-demand, SSE with the customer key, point-in-time recovery, deletion protection off (the
//! stack must be destroyable). A change of key schema means a new table: refused unless
//! `up --allow-replace`, which deletes the table and its data.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::retry::{catalogue, Readiness};
use crate::resources::Outputs;
use crate::resources::{listed, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, PointInTimeRecoverySpecification, PointInTimeRecoveryStatus,
    Projection, ProjectionType, ScalarAttributeType, SseSpecification, SseType, TableDescription, TableStatus, Tag,
};
use futures::FutureExt;
use serde_json::json;
use std::collections::BTreeMap;

pub struct TransactionsTable;

pub const ID: &str = "tables.transactions";

/// GSI name -> partition key attribute. Every GSI sorts by `created_at`.
pub const INDEXES: [(&str, &str); 3] =
    [("by-card", "card_fingerprint"), ("by-merchant", "merchant_id"), ("by-status", "status")];
pub const KEY: [(&str, KeyType); 2] = [("pk", KeyType::Hash), ("sk", KeyType::Range)];

pub struct Observed {
    pub table: TableDescription,
    pub pitr: bool,
    pub tags: BTreeMap<String, String>,
}

fn key_schema(pk: &str, sk: &str) -> Vec<KeySchemaElement> {
    vec![
        KeySchemaElement::builder().attribute_name(pk).key_type(KeyType::Hash).build().expect("static key"),
        KeySchemaElement::builder().attribute_name(sk).key_type(KeyType::Range).build().expect("static key"),
    ]
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("static attr")
}

fn gsi(name: &str, pk: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(key_schema(pk, "created_at")))
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .expect("static gsi")
}

fn observed_key(t: &TableDescription) -> Vec<(String, KeyType)> {
    t.key_schema().iter().map(|k| (k.attribute_name().to_string(), k.key_type().clone())).collect()
}

fn wanted_key() -> Vec<(String, KeyType)> {
    KEY.iter().map(|(n, k)| (n.to_string(), k.clone())).collect()
}

/// A key schema as the console shows it: `pk (partition key), sk (sort key)`.
fn key_words(key: &[(String, KeyType)]) -> String {
    listed(key.iter().map(|(name, kind)| match kind {
        KeyType::Hash => format!("{name} (partition key)"),
        KeyType::Range => format!("{name} (sort key)"),
        other => format!("{name} ({})", other.as_str()),
    }))
}

/// A billing mode in the console's words; a table without one is provisioned.
fn billing_words(mode: Option<&BillingMode>) -> &str {
    match mode {
        Some(BillingMode::PayPerRequest) => "on-demand",
        Some(BillingMode::Provisioned) | None => "provisioned",
        Some(other) => other.as_str(),
    }
}

fn kms_key_of(t: &TableDescription) -> Option<&str> {
    t.sse_description().and_then(|s| s.kms_master_key_arn())
}

async fn describe(ctx: &Ctx) -> Result<Option<TableDescription>> {
    let out =
        ctx.clients.dynamodb.describe_table().table_name(ctx.names.table()).send().await.aws("dynamodb:DescribeTable");
    Ok(out.ok_if_not_found()?.and_then(|o| o.table().cloned()))
}

/// DynamoDB table and index statuses (API TableDescription): ACTIVE is ready; CREATING and
/// UPDATING pass; a table being deleted or archived, or whose key is inaccessible, will not
/// become ready by waiting; anything else is not ready.
fn readiness(t: &TableDescription) -> Readiness<()> {
    let table = match t.table_status() {
        Some(TableStatus::Active) => None,
        Some(s @ (TableStatus::Creating | TableStatus::Updating)) => Some(format!("table {}", s.as_str())),
        Some(
            s @ (TableStatus::Deleting
            | TableStatus::Archiving
            | TableStatus::Archived
            | TableStatus::InaccessibleEncryptionCredentials),
        ) => return Readiness::Failed(format!("table status {}", s.as_str())),
        Some(other) => Some(format!("table {} (not a status tapctl knows)", other.as_str())),
        None => Some("no table status reported".into()),
    };
    let indexes: Vec<String> = t
        .global_secondary_indexes()
        .iter()
        .filter(|i| i.index_status().map(|s| s.as_str()) != Some("ACTIVE"))
        .map(|i| {
            format!(
                "index {} {}",
                i.index_name().unwrap_or("?"),
                i.index_status().map(|s| s.as_str()).unwrap_or("with no status")
            )
        })
        .collect();
    match table.into_iter().chain(indexes).collect::<Vec<_>>() {
        pending if pending.is_empty() => Readiness::Ready(()),
        pending => Readiness::Pending(pending.join(", ")),
    }
}

async fn wait_active(ctx: &Ctx) -> Result<TableDescription> {
    let name = ctx.names.table();
    ctx.until_ready(&format!("table {name} and its indexes"), ctx.waits.table, || async {
        Ok(match describe(ctx).await? {
            Some(t) => match readiness(&t) {
                Readiness::Ready(()) => Readiness::Ready(t),
                Readiness::Pending(s) => Readiness::Pending(s),
                Readiness::Failed(s) => Readiness::Failed(s),
                Readiness::Absent => Readiness::Absent,
            },
            None => Readiness::Absent,
        })
    })
    .await
}

#[async_trait]
impl Resource for TransactionsTable {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::kms::ID, key: "key_arn" }]
    }

    fn replaceable(&self) -> bool {
        true
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let Some(table) = describe(ctx).await? else { return Ok(None) };
        if table.table_status() == Some(&TableStatus::Deleting) {
            return Ok(None);
        }
        let ddb = &ctx.clients.dynamodb;
        let backups = ddb
            .describe_continuous_backups()
            .table_name(ctx.names.table())
            .send()
            .await
            .aws("dynamodb:DescribeContinuousBackups")?;
        let pitr = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            == Some(&PointInTimeRecoveryStatus::Enabled);
        let arn = table.table_arn().unwrap_or_default().to_string();
        let mut tags = BTreeMap::new();
        let out = ddb.list_tags_of_resource().resource_arn(&arn).send().await.aws("dynamodb:ListTagsOfResource")?;
        for t in out.tags() {
            tags.insert(t.key().to_string(), t.value().to_string());
        }
        Ok(Some(Observed { table, pitr, tags }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        if observed_key(&o.table) != wanted_key() {
            // Replacing the table deletes every transaction record in it.
            return Ok(Change::Replace(Drift::new(
                "key schema",
                key_words(&observed_key(&o.table)),
                key_words(&wanted_key()),
            )));
        }
        let mut drifts = Vec::new();
        let present: Vec<&str> = o.table.global_secondary_indexes().iter().filter_map(|i| i.index_name()).collect();
        for (name, pk) in INDEXES {
            if !present.contains(&name) {
                drifts.push(Drift::missing(format!("GSI {name}"), format!("{pk}, sorted by created_at")));
            }
        }
        if !o.pitr {
            drifts.push(Drift::new("point-in-time recovery", "off", "on"));
        }
        let billing = o.table.billing_mode_summary().and_then(|b| b.billing_mode());
        if billing != Some(&BillingMode::PayPerRequest) {
            drifts.push(Drift::new("billing mode", billing_words(billing), "on-demand"));
        }
        let key_arn = ctx.input(super::kms::ID, "key_arn")?;
        if kms_key_of(&o.table) != Some(key_arn.as_str()) {
            drifts.push(Drift::new("encryption key", kms_key_of(&o.table).unwrap_or("an AWS owned key"), key_arn));
        }
        if o.table.deletion_protection_enabled() == Some(true) {
            // Off so that the stack can be destroyed.
            drifts.push(Drift::new("deletion protection", "on", "off"));
        }
        drifts.extend(ctx.tag_drift(&o.tags));
        Ok(Change::from_drifts(drifts))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        let mut out = Outputs::from([
            ("table_name".into(), json!(o.table.table_name().unwrap_or_default())),
            ("table_arn".into(), json!(o.table.table_arn().unwrap_or_default())),
        ]);
        let indexes: Vec<String> =
            INDEXES.iter().map(|(n, _)| format!("{}/index/{n}", o.table.table_arn().unwrap_or_default())).collect();
        out.insert("index_arns".into(), json!(indexes));
        out
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let ddb = &ctx.clients.dynamodb;
        let name = ctx.names.table();
        let key_arn = ctx.input(super::kms::ID, "key_arn")?;
        let tags: Vec<Tag> =
            ctx.tags(None, None).iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
        let sse = SseSpecification::builder().enabled(true).sse_type(SseType::Kms).kms_master_key_id(&key_arn).build();
        let observed = match observed {
            Some(o) if observed_key(&o.table) != wanted_key() => {
                // Only reached with --allow-replace: the user accepted losing the records.
                ctx.progress.step(&format!("deleting table {name} to replace it (key schema changed)"));
                self.delete(ctx, o).await?;
                None
            }
            other => other,
        };
        let o = match observed {
            Some(o) => o,
            None => {
                ctx.progress.step(&format!("creating table {name}"));
                let mut attrs = vec![attr("pk"), attr("sk"), attr("created_at")];
                attrs.extend(INDEXES.iter().map(|(_, pk)| attr(pk)));
                ddb.create_table()
                    .table_name(&name)
                    .billing_mode(BillingMode::PayPerRequest)
                    .set_attribute_definitions(Some(attrs))
                    .set_key_schema(Some(key_schema("pk", "sk")))
                    .set_global_secondary_indexes(Some(INDEXES.iter().map(|(n, pk)| gsi(n, pk)).collect()))
                    .sse_specification(sse.clone())
                    .deletion_protection_enabled(false)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .aws("dynamodb:CreateTable")?;
                let table = wait_active(ctx).await?;
                Observed { table, pitr: false, tags: ctx.tags(None, None).into_iter().collect() }
            }
        };
        // AWS adds one GSI per UpdateTable, and only once the previous one is active.
        let present: Vec<String> =
            o.table.global_secondary_indexes().iter().filter_map(|i| i.index_name().map(str::to_string)).collect();
        for (index, pk) in INDEXES.iter().filter(|(n, _)| !present.iter().any(|p| p == n)) {
            ctx.progress.step(&format!("adding GSI {index}"));
            ddb.update_table()
                .table_name(&name)
                .set_attribute_definitions(Some(vec![attr(pk), attr("created_at")]))
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder()
                        .create(
                            CreateGlobalSecondaryIndexAction::builder()
                                .index_name(*index)
                                .set_key_schema(Some(key_schema(pk, "created_at")))
                                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                                .build()
                                .map_err(|e| ResourceError::new("Internal", e.to_string()))?,
                        )
                        .build(),
                )
                .send()
                .await
                .aws("dynamodb:UpdateTable")?;
            wait_active(ctx).await?;
        }
        let billing = o.table.billing_mode_summary().and_then(|b| b.billing_mode());
        if billing != Some(&BillingMode::PayPerRequest) || o.table.deletion_protection_enabled() == Some(true) {
            ctx.progress.step("setting on-demand billing, deletion protection off");
            ddb.update_table()
                .table_name(&name)
                .billing_mode(BillingMode::PayPerRequest)
                .deletion_protection_enabled(false)
                .send()
                .await
                .aws("dynamodb:UpdateTable")?;
            wait_active(ctx).await?;
        }
        // Also from an AWS-owned key (no SSE description): DynamoDB switches a table's key in place.
        if kms_key_of(&o.table) != Some(key_arn.as_str()) {
            ctx.progress.step(&format!("encrypting table {name} with {key_arn}"));
            ddb.update_table().table_name(&name).sse_specification(sse).send().await.aws("dynamodb:UpdateTable")?;
        }
        if !o.pitr {
            ctx.progress.step("turning on point-in-time recovery");
            let pitr = PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .map_err(|e| ResourceError::new("Internal", e.to_string()))?;
            ctx.retry_while_propagating(&catalogue::DYNAMODB_BACKUPS, &format!("table {name}"), || {
                ddb.update_continuous_backups()
                    .table_name(&name)
                    .point_in_time_recovery_specification(pitr.clone())
                    .send()
                    .map(|r| r.aws("dynamodb:UpdateContinuousBackups"))
            })
            .await?;
        }
        let missing: Vec<Tag> =
            tags.into_iter().filter(|t| o.tags.get(t.key()) != Some(&t.value().to_string())).collect();
        if !missing.is_empty() {
            ctx.progress.step(&format!("tagging table {name}"));
            ddb.tag_resource()
                .resource_arn(o.table.table_arn().unwrap_or_default())
                .set_tags(Some(missing))
                .send()
                .await
                .aws("dynamodb:TagResource")?;
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        let name = ctx.names.table();
        ctx.progress.step(&format!("deleting table {name}"));
        ctx.clients
            .dynamodb
            .delete_table()
            .table_name(&name)
            .send()
            .await
            .aws("dynamodb:DeleteTable")
            .ok_if_not_found()?;
        ctx.until_gone(&format!("table {name}"), ctx.waits.table, || async {
            Ok(describe(ctx)
                .await?
                .map(|t| format!("status {}", t.table_status().map(|s| s.as_str()).unwrap_or("unknown"))))
        })
        .await
    }
}
