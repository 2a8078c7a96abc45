//! `params.config`: Parameter Store under `/payments/<suffix>/` holds every value the functions
//! read — they are given only the prefix. Fraud thresholds are SecureStrings encrypted with the
//! stack's key: knowing them tells a fraudster exactly how far to go.
//!
//! tapctl owns these values: a value changed out of band is drift, and `up` puts it back.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::Outputs;
use crate::resources::{Change, Ctx, Drift, Input, Resource, Result};
use async_trait::async_trait;
use aws_sdk_ssm::types::{ParameterType, Tag};
use serde_json::json;
use std::collections::BTreeMap;

pub struct Parameters;

pub const ID: &str = "params.config";

/// Defaults of the fraud rules and payment limits (amounts in minor units).
pub const DEFAULTS: &[(&str, &str)] = &[
    ("fraud/review-amount-minor", "100000"),
    ("fraud/decline-amount-minor", "500000"),
    ("fraud/velocity-window-seconds", "3600"),
    ("fraud/velocity-max-count", "10"),
    ("fraud/velocity-max-amount-minor", "1000000"),
    ("fraud/card-testing-small-amount-minor", "200"),
    ("fraud/card-testing-burst-count", "5"),
    ("fraud/blocked-bins", "[]"),
    // BIN prefix -> issuing country (ISO 3166-1 alpha-2), loaded by the operator from their BIN data.
    ("fraud/bin-countries", "{}"),
    ("payments/allowed-currencies", "USD,EUR,GBP,JPY,KWD,CAD,AUD,CHF"),
    ("payments/max-amount-minor", "10000000"),
    ("db/name", "payments"),
    // The login process signs in as, with an IAM authentication token (iam.db-connect).
    ("db/process-login", crate::names::PROCESS_DB_LOGIN),
    // The RDS CA bundle the functions verify the database's certificate with, shipped next to
    // each function's bootstrap by `tapctl build` (relative paths are from the bootstrap's folder).
    ("db/ca-bundle-path", "rds-global-bundle.pem"),
];

/// The name of the migrator function (rotate-secret), under the prefix.
pub const MIGRATOR_PARAMETER: &str = "resources/migrator-function";

/// name (under the prefix) -> the node and output that provide its value.
pub const FROM_OUTPUTS: &[(&str, Input)] = &[
    ("resources/table-name", Input { node: super::tables::ID, key: "table_name" }),
    ("resources/audit-bucket", Input { node: super::storage::ID, key: "bucket_name" }),
    ("resources/alerts-topic-arn", Input { node: super::alerts::ID, key: "topic_arn" }),
    ("resources/db-secret-arn", Input { node: super::secrets::DB_MASTER, key: "secret_arn" }),
    ("resources/card-fingerprint-secret-arn", Input { node: super::secrets::CARD_FINGERPRINT_KEY, key: "secret_arn" }),
    ("db/writer-endpoint", Input { node: super::database::cluster::ID, key: "writer_endpoint" }),
    ("db/reader-endpoint", Input { node: super::database::cluster::ID, key: "reader_endpoint" }),
    ("db/port", Input { node: super::database::cluster::ID, key: "port" }),
];

/// What the parameters read: every output above, and the key that encrypts the secure ones.
const READS: &[Input] = &[
    Input { node: super::kms::ID, key: "key_arn" },
    FROM_OUTPUTS[0].1,
    FROM_OUTPUTS[1].1,
    FROM_OUTPUTS[2].1,
    FROM_OUTPUTS[3].1,
    FROM_OUTPUTS[4].1,
    FROM_OUTPUTS[5].1,
    FROM_OUTPUTS[6].1,
    FROM_OUTPUTS[7].1,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub value: String,
    pub secure: bool,
}

pub struct Observed {
    /// By full name.
    pub params: BTreeMap<String, Param>,
}

fn secure(name: &str) -> bool {
    name.starts_with("fraud/")
}

/// Every parameter the stack wants, by full name.
pub fn wanted(ctx: &Ctx) -> Result<BTreeMap<String, Param>> {
    let prefix = ctx.names.parameter_prefix();
    let mut out = BTreeMap::new();
    for (name, value) in DEFAULTS {
        out.insert(format!("{prefix}/{name}"), Param { value: value.to_string(), secure: secure(name) });
    }
    for (name, from) in FROM_OUTPUTS {
        out.insert(format!("{prefix}/{name}"), Param { value: ctx.input(from.node, from.key)?, secure: false });
    }
    // The function process invokes to migrate the schema: named, not read, so that the
    // parameters never wait for the functions.
    out.insert(
        format!("{prefix}/{MIGRATOR_PARAMETER}"),
        Param { value: ctx.names.function(crate::names::MIGRATOR_FUNCTION), secure: false },
    );
    Ok(out)
}

#[async_trait]
impl Resource for Parameters {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        READS
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let mut params = BTreeMap::new();
        let mut pages = ctx
            .clients
            .ssm
            .get_parameters_by_path()
            .path(format!("{}/", ctx.names.parameter_prefix()))
            .recursive(true)
            .with_decryption(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for p in page.aws("ssm:GetParametersByPath")?.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    params.insert(
                        name.to_string(),
                        Param { value: value.to_string(), secure: p.r#type() == Some(&ParameterType::SecureString) },
                    );
                }
            }
        }
        Ok((!params.is_empty()).then_some(Observed { params }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let kind = |secure: bool| if secure { "SecureString" } else { "String" };
        let mut d = Vec::new();
        for (name, want) in wanted(ctx)? {
            let field = format!("parameter {name}");
            match o.params.get(&name) {
                None => d.push(Drift::missing(field, format!("the stack's value ({})", kind(want.secure)))),
                // The value itself is not shown: a fraud threshold is a secret of sorts.
                Some(p) if p.value != want.value => d.push(Drift::new(field, "another value", "the stack's value")),
                Some(p) if p.secure != want.secure => {
                    d.push(Drift::new(format!("{field} type"), kind(p.secure), kind(want.secure)))
                }
                Some(_) => {}
            }
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, ctx: &Ctx, _o: &Observed) -> Outputs {
        Outputs::from([("parameter_prefix".into(), json!(ctx.names.parameter_prefix()))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let ssm = &ctx.clients.ssm;
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let tags: Vec<Tag> =
            ctx.tags(None, None).iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
        let o = observed.unwrap_or(Observed { params: BTreeMap::new() });
        for (name, want) in wanted(ctx)? {
            let current = o.params.get(&name);
            if current == Some(&want) {
                continue;
            }
            ctx.progress.step(&match current {
                None => format!("creating parameter {name}"),
                Some(_) => format!("restoring parameter {name}"),
            });
            let mut put = ssm.put_parameter().name(&name).value(&want.value).r#type(if want.secure {
                ParameterType::SecureString
            } else {
                ParameterType::String
            });
            if want.secure {
                put = put.key_id(&key);
            }
            // Tags can be given only when creating; Overwrite only when replacing.
            put = if current.is_some() { put.overwrite(true) } else { put.set_tags(Some(tags.clone())) };
            match put.send().await.aws("ssm:PutParameter") {
                Ok(_) => {}
                // Created by a run that was killed before saving: overwrite it.
                Err(e) if e.code_is("ParameterAlreadyExists") => {
                    ssm.put_parameter()
                        .name(&name)
                        .value(&want.value)
                        .r#type(if want.secure { ParameterType::SecureString } else { ParameterType::String })
                        .set_key_id(want.secure.then(|| key.clone()))
                        .overwrite(true)
                        .send()
                        .await
                        .aws("ssm:PutParameter")?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let names: Vec<String> = o.params.keys().cloned().collect();
        for chunk in names.chunks(10) {
            ctx.progress.step(&format!("deleting {} parameters", chunk.len()));
            ctx.clients
                .ssm
                .delete_parameters()
                .set_names(Some(chunk.to_vec()))
                .send()
                .await
                .aws("ssm:DeleteParameters")
                .ok_if_not_found()?;
        }
        Ok(())
    }
}
