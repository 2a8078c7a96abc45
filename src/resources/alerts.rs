//! `alerts.topic`: the SNS topic for failed transactions and system errors, encrypted with the
//! stack's key; with `--alert-email`, an e-mail subscription (AWS asks the address to confirm).

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::Outputs;
use crate::resources::{listed, Change, Ctx, Drift, Input, Resource, Result};
use async_trait::async_trait;
use aws_sdk_sns::types::Tag;
use serde_json::json;
use std::collections::BTreeMap;

pub struct AlertsTopic;

pub const ID: &str = "alerts.topic";

pub struct Observed {
    pub arn: String,
    pub kms_key: Option<String>,
    pub emails: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

fn topic_arn(ctx: &Ctx) -> String {
    format!("arn:aws:sns:{}:{}:{}", ctx.config.region, ctx.names.account, ctx.names.topic())
}

#[async_trait]
impl Resource for AlertsTopic {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::kms::ID, key: "key_arn" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let sns = &ctx.clients.sns;
        let arn = topic_arn(ctx);
        let attrs =
            sns.get_topic_attributes().topic_arn(&arn).send().await.aws("sns:GetTopicAttributes").ok_if_not_found()?;
        let Some(attrs) = attrs else { return Ok(None) };
        let kms_key = attrs.attributes().and_then(|a| a.get("KmsMasterKeyId")).cloned();
        let mut emails = Vec::new();
        let mut pages = sns.list_subscriptions_by_topic().topic_arn(&arn).into_paginator().send();
        while let Some(page) = pages.next().await {
            for s in page.aws("sns:ListSubscriptionsByTopic")?.subscriptions() {
                if s.protocol() == Some("email") {
                    emails.extend(s.endpoint().map(str::to_string));
                }
            }
        }
        let tags = sns.list_tags_for_resource().resource_arn(&arn).send().await.aws("sns:ListTagsForResource")?;
        let tags = tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
        Ok(Some(Observed { arn, kms_key, emails, tags }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let mut d = Vec::new();
        if o.kms_key.as_deref() != Some(key.as_str()) {
            let have = o.kms_key.as_deref().filter(|k| !k.is_empty()).unwrap_or("none (not encrypted)");
            d.push(Drift::new("encryption key", have, key));
        }
        if let Some(email) = &ctx.config.alert_email {
            if !o.emails.contains(email) {
                d.push(Drift::new("e-mail subscriptions", listed(&o.emails), format!("{email} too")));
            }
        }
        d.extend(ctx.tag_drift(&o.tags));
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("topic_arn".into(), json!(o.arn))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let sns = &ctx.clients.sns;
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let tags: Vec<Tag> =
            ctx.tags(None, None).iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
        let o = match observed {
            Some(o) => o,
            None => {
                ctx.progress.step(&format!("creating topic {}", ctx.names.topic()));
                // CreateTopic is idempotent by name: a re-run after a crash gets the same topic.
                let out = sns
                    .create_topic()
                    .name(ctx.names.topic())
                    .attributes("KmsMasterKeyId", &key)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .aws("sns:CreateTopic")?;
                Observed {
                    arn: out.topic_arn().map(str::to_string).unwrap_or_else(|| topic_arn(ctx)),
                    kms_key: Some(key.clone()),
                    emails: vec![],
                    tags: ctx.tags(None, None).into_iter().collect(),
                }
            }
        };
        if o.kms_key.as_deref() != Some(key.as_str()) {
            ctx.progress.step(&format!("encrypting the topic with {key}"));
            sns.set_topic_attributes()
                .topic_arn(&o.arn)
                .attribute_name("KmsMasterKeyId")
                .attribute_value(&key)
                .send()
                .await
                .aws("sns:SetTopicAttributes")?;
        }
        if let Some(email) = &ctx.config.alert_email {
            if !o.emails.contains(email) {
                ctx.progress.step(&format!("subscribing {email} (AWS asks the address to confirm)"));
                sns.subscribe()
                    .topic_arn(&o.arn)
                    .protocol("email")
                    .endpoint(email)
                    .send()
                    .await
                    .aws("sns:Subscribe")?;
            }
        }
        if let Some(drift) = ctx.tag_drift(&o.tags) {
            ctx.progress.step(&format!("tagging the topic: {}", drift.wanted));
            sns.tag_resource().resource_arn(&o.arn).set_tags(Some(tags)).send().await.aws("sns:TagResource")?;
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        ctx.progress.step(&format!("deleting topic {}", o.arn));
        ctx.clients.sns.delete_topic().topic_arn(&o.arn).send().await.aws("sns:DeleteTopic").ok_if_not_found()?;
        Ok(())
    }
}
