//! `secrets.db-master` and `secrets.card-fingerprint-key`: secrets whose values are generated
//! inside AWS (Secrets Manager's GetRandomPassword) and encrypted with the stack's key.
//!
//! Why our own secret for the database, not RDS-managed credentials: rotation must run through
//! the stack's own rotate-secret function (PCI DSS 8.3.9, with the steps tested against a real
//! PostgreSQL), which RDS-managed secrets do not allow.
//!
//! A value passes through tapctl's memory on its way from GetRandomPassword to CreateSecret (and,
//! for the database, from GetSecretValue to CreateDBCluster) and nowhere else: never into the
//! state, a log line, stdout or an error message. The SDK redacts it from Debug output too.

pub mod policies;

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::Outputs;
use crate::resources::{Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_secretsmanager::types::Tag;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// {"username", "password", "engine", "port"} for the Aurora master user.
    DbMaster,
    /// 64 random letters and digits: the HMAC key that fingerprints card numbers.
    CardFingerprintKey,
}

pub struct Secret {
    pub kind: Kind,
}

pub const DB_MASTER: &str = "secrets.db-master";
pub const CARD_FINGERPRINT_KEY: &str = "secrets.card-fingerprint-key";
pub const DB_MASTER_USER: &str = "payments_admin";

pub struct Observed {
    pub arn: String,
    pub kms_key: Option<String>,
    pub has_value: bool,
    pub tags: BTreeMap<String, String>,
}

impl Secret {
    fn name(&self, ctx: &Ctx) -> String {
        match self.kind {
            Kind::DbMaster => ctx.names.db_secret(),
            Kind::CardFingerprintKey => ctx.names.fingerprint_secret(),
        }
    }

    fn description(&self) -> &'static str {
        match self.kind {
            Kind::DbMaster => "Aurora PostgreSQL master credentials of the payments stack (rotated by rotate-secret)",
            Kind::CardFingerprintKey => "HMAC key that fingerprints card numbers (never the numbers themselves)",
        }
    }

    /// Generates the secret's value inside AWS.
    async fn generate(&self, ctx: &Ctx) -> Result<String> {
        let mut call = ctx.clients.secrets.get_random_password().require_each_included_type(true);
        call = match self.kind {
            // Characters RDS refuses in a master password: / @ " and space.
            Kind::DbMaster => call.password_length(32).exclude_characters("/@\"' \\`").exclude_punctuation(false),
            Kind::CardFingerprintKey => call.password_length(64).exclude_punctuation(true),
        };
        let out = call.send().await.aws("secretsmanager:GetRandomPassword")?;
        let random = out
            .random_password()
            .ok_or_else(|| ResourceError::new("EmptyResponse", "GetRandomPassword returned no value"))?;
        Ok(match self.kind {
            Kind::DbMaster => json!({
                "username": DB_MASTER_USER,
                "password": random,
                "engine": "postgres",
                "port": 5432,
            })
            .to_string(),
            Kind::CardFingerprintKey => random.to_string(),
        })
    }
}

#[async_trait]
impl Resource for Secret {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        match self.kind {
            Kind::DbMaster => DB_MASTER,
            Kind::CardFingerprintKey => CARD_FINGERPRINT_KEY,
        }
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::kms::ID, key: "key_arn" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let sm = &ctx.clients.secrets;
        let out = sm
            .describe_secret()
            .secret_id(self.name(ctx))
            .send()
            .await
            .aws("secretsmanager:DescribeSecret")
            .ok_if_not_found()?;
        let Some(d) = out else { return Ok(None) };
        if d.deleted_date().is_some() {
            return Ok(None);
        }
        let has_value =
            d.version_ids_to_stages().is_some_and(|m| m.values().any(|s| s.iter().any(|x| x == "AWSCURRENT")));
        Ok(Some(Observed {
            arn: d.arn().unwrap_or_default().to_string(),
            kms_key: d.kms_key_id().map(str::to_string),
            has_value,
            tags: d.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect(),
        }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let mut d = Vec::new();
        if o.kms_key.as_deref() != Some(key.as_str()) {
            // Without a key of its own, a secret is encrypted with the account's aws/secretsmanager key.
            let have = o.kms_key.as_deref().unwrap_or("aws/secretsmanager");
            d.push(Drift::new("encryption key", have, key));
        }
        if !o.has_value {
            // The value itself never appears: only whether there is one.
            d.push(Drift::missing("current value", "a value generated by AWS"));
        }
        d.extend(ctx.tag_drift(&o.tags));
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("secret_arn".into(), json!(o.arn))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let sm = &ctx.clients.secrets;
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let tags: Vec<Tag> = ctx.tags(None, None).iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let name = self.name(ctx);
        let o = match observed {
            Some(o) => o,
            None => {
                ctx.progress.step(&format!("creating secret {name} (value generated by AWS)"));
                let value = self.generate(ctx).await?;
                let out = sm
                    .create_secret()
                    .name(&name)
                    .description(self.description())
                    .kms_key_id(&key)
                    .secret_string(value)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .aws("secretsmanager:CreateSecret")?;
                Observed {
                    arn: out.arn().unwrap_or_default().to_string(),
                    kms_key: Some(key.clone()),
                    has_value: true,
                    tags: ctx.tags(None, None).into_iter().collect(),
                }
            }
        };
        if o.kms_key.as_deref() != Some(key.as_str()) {
            ctx.progress.step(&format!("encrypting secret {name} with {key}"));
            sm.update_secret().secret_id(&o.arn).kms_key_id(&key).send().await.aws("secretsmanager:UpdateSecret")?;
        }
        if !o.has_value {
            ctx.progress.step(&format!("putting a value generated by AWS into secret {name}"));
            let value = self.generate(ctx).await?;
            sm.put_secret_value()
                .secret_id(&o.arn)
                .secret_string(value)
                .send()
                .await
                .aws("secretsmanager:PutSecretValue")?;
        }
        if let Some(drift) = ctx.tag_drift(&o.tags) {
            ctx.progress.step(&format!("tagging secret {name}: {}", drift.wanted));
            sm.tag_resource().secret_id(&o.arn).set_tags(Some(tags)).send().await.aws("secretsmanager:TagResource")?;
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        // No recovery window: the database these credentials open is destroyed with the stack,
        // and a secret pending deletion would block re-creating the stack under the same name.
        ctx.progress.step(&format!("deleting secret {}", self.name(ctx)));
        ctx.clients
            .secrets
            .delete_secret()
            .secret_id(&o.arn)
            .force_delete_without_recovery(true)
            .send()
            .await
            .aws("secretsmanager:DeleteSecret")
            .ok_if_not_found()?;
        Ok(())
    }
}
