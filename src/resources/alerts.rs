//! `alerts.topic`: the SNS topic for failed transactions and system errors, encrypted with the
//! stack's key; with `--alert-email`, an e-mail subscription (AWS asks the address to confirm).
//!
//! Its policy lets exactly three services publish, each only for this account's sources: CloudWatch
//! alarms, the stack's findings rule (EventBridge) and RDS events of the stack's database; the
//! account administers the topic as in AWS's default policy, and nothing is published without
//! TLS. The stack's own functions publish through their roles (same account: an identity policy
//! suffices where the topic's policy does not deny).

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::Outputs;
use crate::resources::{canonical, listed, Change, Ctx, Drift, Input, Resource, Result};
use async_trait::async_trait;
use aws_sdk_sns::types::Tag;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub struct AlertsTopic;

pub const ID: &str = "alerts.topic";

pub struct Observed {
    pub arn: String,
    pub kms_key: Option<String>,
    /// The topic's access policy, parsed; None when AWS gave none or not JSON.
    pub policy: Option<Value>,
    pub emails: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

fn topic_arn(ctx: &Ctx) -> String {
    format!("arn:aws:sns:{}:{}:{}", ctx.config.region, ctx.names.account, ctx.names.topic())
}

/// The actions of AWS's default topic policy but Publish: the account's administration.
const ADMINISTRATION: &[&str] = &[
    "sns:AddPermission",
    "sns:DeleteTopic",
    "sns:GetTopicAttributes",
    "sns:ListSubscriptionsByTopic",
    "sns:RemovePermission",
    "sns:SetTopicAttributes",
    "sns:Subscribe",
];

/// The topic's policy. The service statements are AWS's documented ones with their confused-deputy
/// conditions: CloudWatch alarms (cloudwatch/latest/monitoring/Notify_Users_Alarm_Changes:
/// aws:SourceArn of the account's alarms, aws:SourceAccount), EventBridge (eb-use-resource-based:
/// aws:SourceArn of the rule) and RDS (USER_Events.GrantingPermissions: aws:SourceArn of the RDS
/// resources whose events are sent — the cluster and its instances — and aws:SourceAccount).
/// The TLS statement is SNS's documented one (sns-security-best-practices: "Enforce encryption of
/// data in transit"); a service publishing inside AWS carries no aws:SecureTransport = false, so
/// it is not denied.
pub fn policy(names: &crate::names::Names, readers: usize) -> Value {
    let (region, account) = (&names.region, &names.account);
    let arn = format!("arn:aws:sns:{region}:{account}:{}", names.topic());
    let mut rds_sources = vec![format!("arn:aws:rds:{region}:{account}:cluster:{}", names.db_cluster())];
    rds_sources.extend((0..=readers).map(|i| format!("arn:aws:rds:{region}:{account}:db:{}", names.db_instance(i))));
    // The guide names the RDS resource as the source; the stack's two subscriptions are listed
    // as well, should RDS present the subscription instead: all five are the stack's own.
    for name in [names.db_event_subscription(), names.db_instance_event_subscription()] {
        rds_sources.push(crate::resources::events::db_subscriptions::subscription_arn(names, &name));
    }
    json!({
        "Version": "2012-10-17",
        "Id": "tapctl-alerts",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": ADMINISTRATION,
                "Resource": arn
            },
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": { "Service": "cloudwatch.amazonaws.com" },
                "Action": "sns:Publish",
                "Resource": arn,
                "Condition": {
                    "ArnLike": { "aws:SourceArn": format!("arn:aws:cloudwatch:{region}:{account}:alarm:*") },
                    "StringEquals": { "aws:SourceAccount": account }
                }
            },
            {
                "Sid": "FindingsRulePublishes",
                "Effect": "Allow",
                "Principal": { "Service": "events.amazonaws.com" },
                "Action": "sns:Publish",
                "Resource": arn,
                "Condition": {
                    "ArnEquals": { "aws:SourceArn": crate::resources::events::security_findings::rule_arn(names) }
                }
            },
            {
                "Sid": "DatabaseEventsPublish",
                "Effect": "Allow",
                "Principal": { "Service": "events.rds.amazonaws.com" },
                "Action": "sns:Publish",
                "Resource": arn,
                "Condition": {
                    "ArnEquals": { "aws:SourceArn": rds_sources },
                    "StringEquals": { "aws:SourceAccount": account }
                }
            },
            {
                "Sid": "PublishOnlyOverTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": arn,
                "Condition": { "Bool": { "aws:SecureTransport": "false" } }
            }
        ]
    })
}

/// Who may publish to the topic under a policy: the principals of its Allow statements that
/// allow sns:Publish (or every action).
fn publishers(doc: &Value) -> std::collections::BTreeSet<String> {
    let statements: Vec<&Value> = match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        one => vec![one],
    };
    statements
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .filter(|s| {
            let actions = canonical(&json!({ "Statement": [s] }))[0]["Action"].clone();
            actions
                .as_array()
                .is_some_and(|a| a.iter().any(|x| matches!(x.as_str(), Some("sns:publish" | "sns:*" | "*"))))
        })
        .flat_map(|s| crate::resources::principals(&json!({ "Statement": [s] })))
        .collect()
}

/// How the policy `have` differs from `want`, in words: who else may publish, who may not, and
/// the actions allowed beyond or lacking (`policy_difference`).
pub fn policy_drift(have: Option<&Value>, want: &Value) -> Option<Drift> {
    let wanted = "CloudWatch alarms, the findings rule and RDS events publish, over TLS only";
    let Some(have) = have else { return Some(Drift::new("topic policy", "none", wanted)) };
    if canonical(have) == canonical(want) {
        return None;
    }
    let (now, should) = (publishers(have), publishers(want));
    let mut parts = Vec::new();
    let extra: Vec<&String> = now.difference(&should).collect();
    if !extra.is_empty() {
        parts.push(format!("also lets {} publish", listed(extra)));
    }
    let lacking: Vec<&String> = should.difference(&now).collect();
    if !lacking.is_empty() {
        parts.push(format!("does not let {} publish", listed(lacking)));
    }
    let actions = crate::resources::policy_difference(have, want);
    if actions != "differs" || parts.is_empty() {
        parts.push(actions);
    }
    Some(Drift::new("topic policy", parts.join("; "), wanted))
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
        let policy = attrs.attributes().and_then(|a| a.get("Policy")).and_then(|p| serde_json::from_str(p).ok());
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
        Ok(Some(Observed { arn, kms_key, policy, emails, tags }))
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
        d.extend(policy_drift(o.policy.as_ref(), &policy(&ctx.names, ctx.config.db_readers)));
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
        let want_policy = policy(&ctx.names, ctx.config.db_readers);
        let o = match observed {
            Some(o) => o,
            None => {
                ctx.progress.step(&format!("creating topic {}", ctx.names.topic()));
                // CreateTopic is idempotent by name: a re-run after a crash gets the same topic.
                let out = sns
                    .create_topic()
                    .name(ctx.names.topic())
                    .attributes("KmsMasterKeyId", &key)
                    // With its policy from the start: no moment with AWS's default one.
                    .attributes("Policy", want_policy.to_string())
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .aws("sns:CreateTopic")?;
                Observed {
                    arn: out.topic_arn().map(str::to_string).unwrap_or_else(|| topic_arn(ctx)),
                    kms_key: Some(key.clone()),
                    policy: Some(want_policy.clone()),
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
        if let Some(drift) = policy_drift(o.policy.as_ref(), &want_policy) {
            ctx.progress.step(&format!("setting the topic's policy (it {})", drift.current));
            sns.set_topic_attributes()
                .topic_arn(&o.arn)
                .attribute_name("Policy")
                .attribute_value(want_policy.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Names;

    #[test]
    fn exactly_three_services_publish_each_for_this_accounts_sources_and_only_over_tls() {
        let names = Names::new("qa", "us-east-1", Some("123456789012"));
        let doc = policy(&names, 1);
        assert_eq!(
            listed(publishers(&doc)),
            "cloudwatch.amazonaws.com, events.amazonaws.com, events.rds.amazonaws.com"
        );
        let statements = doc["Statement"].as_array().unwrap();
        let by_sid = |sid: &str| statements.iter().find(|s| s["Sid"] == sid).unwrap().clone();
        assert_eq!(
            by_sid("FindingsRulePublishes")["Condition"]["ArnEquals"]["aws:SourceArn"],
            json!(format!("arn:aws:events:us-east-1:123456789012:rule/{}", names.findings_rule()))
        );
        let rds = by_sid("DatabaseEventsPublish");
        assert_eq!(rds["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012");
        let sources = rds["Condition"]["ArnEquals"]["aws:SourceArn"].as_array().unwrap();
        assert!(sources.contains(&json!(format!("arn:aws:rds:us-east-1:123456789012:cluster:{}", names.db_cluster()))));
        assert!(sources.contains(&json!(format!("arn:aws:rds:us-east-1:123456789012:db:{}", names.db_instance(1)))));
        assert_eq!(by_sid("CloudWatchAlarmsPublish")["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012");
        let tls = by_sid("PublishOnlyOverTls");
        assert_eq!(
            (tls["Effect"].as_str(), tls["Condition"]["Bool"]["aws:SecureTransport"].as_str()),
            (Some("Deny"), Some("false"))
        );
        let admin = by_sid("AccountAdministers");
        assert!(
            !admin["Action"].as_array().unwrap().contains(&json!("sns:Publish")),
            "administration is not publishing"
        );
    }

    #[test]
    fn the_policy_compares_as_aws_means_it_and_names_another_publisher() {
        let names = Names::new("qa", "us-east-1", Some("123456789012"));
        let want = policy(&names, 1);
        // AWS may give back one value for a list of one, other case in actions, another order.
        let mut same = want.clone();
        let statements = same["Statement"].as_array_mut().unwrap();
        statements.reverse();
        statements[0]["Action"] = json!(["SNS:Publish"]);
        for s in statements.iter_mut() {
            s.as_object_mut().unwrap().remove("Sid");
        }
        assert_eq!(policy_drift(Some(&same), &want), None);

        let mut open = want.clone();
        open["Statement"].as_array_mut().unwrap().push(json!({
            "Effect": "Allow", "Principal": "*", "Action": "sns:Publish", "Resource": "*"
        }));
        let drift = policy_drift(Some(&open), &want).unwrap();
        assert_eq!(
            drift.to_string(),
            "topic policy: also lets * publish → CloudWatch alarms, the findings rule and RDS events publish, over TLS only"
        );
        crate::resources::testing::assert_plain(&[&drift]);

        let mut lost = want.clone();
        lost["Statement"].as_array_mut().unwrap().retain(|s| s["Sid"] != "FindingsRulePublishes");
        assert!(policy_drift(Some(&lost), &want)
            .unwrap()
            .current
            .contains("does not let events.amazonaws.com publish"));
        let mut loose = want.clone();
        loose["Statement"].as_array_mut().unwrap().retain(|s| s["Sid"] != "PublishOnlyOverTls");
        assert_eq!(policy_drift(Some(&loose), &want).unwrap().current, "differs");
        assert_eq!(policy_drift(None, &want).unwrap().current, "none");
    }
}
