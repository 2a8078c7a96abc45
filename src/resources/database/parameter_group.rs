//! `database.parameter-group`: the cluster parameter group. `rds.force_ssl=1` refuses every
//! connection without TLS (PCI DSS 4.2.1), TLS 1.2 at least; connections, disconnections and
//! slow statements are logged (and exported to CloudWatch by the cluster).

use super::{ensure_tags, rds_tags, tags_of};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::Outputs;
use crate::resources::{listed, or_none, Change, Ctx, Drift, Resource, Result};
use async_trait::async_trait;
use aws_sdk_rds::types::{ApplyMethod, Parameter};
use serde_json::json;
use std::collections::BTreeMap;

pub struct ClusterParameterGroup;

pub const ID: &str = "database.parameter-group";

/// The parameters tapctl sets, all dynamic (applied without a reboot).
pub const PARAMETERS: &[(&str, &str)] = &[
    ("rds.force_ssl", "1"),
    ("ssl_min_protocol_version", "TLSv1.2"),
    ("log_connections", "1"),
    ("log_disconnections", "1"),
    ("log_min_duration_statement", "1000"),
];

pub struct Observed {
    pub arn: String,
    pub family: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

#[async_trait]
impl Resource for ClusterParameterGroup {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let rds = &ctx.clients.rds;
        let name = ctx.names.db_parameter_group();
        let out = rds
            .describe_db_cluster_parameter_groups()
            .db_cluster_parameter_group_name(&name)
            .send()
            .await
            .aws("rds:DescribeDBClusterParameterGroups")
            .ok_if_not_found()?;
        let Some(g) = out.as_ref().and_then(|o| o.db_cluster_parameter_groups().first()) else { return Ok(None) };
        let arn = g.db_cluster_parameter_group_arn().unwrap_or_default().to_string();
        let mut parameters = BTreeMap::new();
        let mut pages = rds
            .describe_db_cluster_parameters()
            .db_cluster_parameter_group_name(&name)
            .source("user")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for p in page.aws("rds:DescribeDBClusterParameters")?.parameters() {
                if let (Some(n), Some(v)) = (p.parameter_name(), p.parameter_value()) {
                    parameters.insert(n.to_string(), v.to_string());
                }
            }
        }
        Ok(Some(Observed {
            tags: tags_of(ctx, &arn).await?,
            arn,
            family: g.db_parameter_group_family().unwrap_or_default().to_string(),
            parameters,
        }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let family = ctx.config.db_parameter_family();
        if o.family != family {
            return Ok(Change::Replace(Drift::new("parameter group family", &o.family, family)));
        }
        let mut d: Vec<Drift> = PARAMETERS
            .iter()
            .filter(|(n, v)| o.parameters.get(*n).map(String::as_str) != Some(*v))
            .map(|(n, v)| Drift::new(format!("parameter {n}"), or_none(o.parameters.get(*n)), v))
            .collect();
        d.extend(ctx.tag_drift(&o.tags));
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, ctx: &Ctx, _o: &Observed) -> Outputs {
        Outputs::from([("parameter_group_name".into(), json!(ctx.names.db_parameter_group()))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let rds = &ctx.clients.rds;
        let name = ctx.names.db_parameter_group();
        let current = match observed {
            None => {
                ctx.progress.step(&format!("creating cluster parameter group {name}"));
                rds.create_db_cluster_parameter_group()
                    .db_cluster_parameter_group_name(&name)
                    .db_parameter_group_family(ctx.config.db_parameter_family())
                    .description("payments stack: TLS only, connection and slow-statement logging")
                    .set_tags(Some(rds_tags(ctx)))
                    .send()
                    .await
                    .aws("rds:CreateDBClusterParameterGroup")?;
                BTreeMap::new()
            }
            Some(o) => {
                ensure_tags(ctx, &o.arn, &o.tags).await?;
                o.parameters
            }
        };
        let changes: Vec<Parameter> = PARAMETERS
            .iter()
            .filter(|(n, v)| current.get(*n).map(String::as_str) != Some(*v))
            .map(|(n, v)| {
                Parameter::builder().parameter_name(*n).parameter_value(*v).apply_method(ApplyMethod::Immediate).build()
            })
            .collect();
        if !changes.is_empty() {
            ctx.progress.step(&format!(
                "setting {}",
                listed(changes.iter().map(|p| {
                    format!("{}={}", p.parameter_name().unwrap_or_default(), p.parameter_value().unwrap_or_default())
                }))
            ));
            rds.modify_db_cluster_parameter_group()
                .db_cluster_parameter_group_name(&name)
                .set_parameters(Some(changes))
                .send()
                .await
                .aws("rds:ModifyDBClusterParameterGroup")?;
        }
        Ok(Outputs::from([("parameter_group_name".into(), json!(name))]))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        ctx.clients
            .rds
            .delete_db_cluster_parameter_group()
            .db_cluster_parameter_group_name(ctx.names.db_parameter_group())
            .send()
            .await
            .aws("rds:DeleteDBClusterParameterGroup")
            .ok_if_not_found()?;
        Ok(())
    }
}
