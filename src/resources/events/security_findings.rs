//! `events.security-findings`: an EventBridge rule on the account's default bus sending HIGH and
//! CRITICAL GuardDuty and Security Hub findings to the alerts topic (PCI DSS 11.5.1: intrusion
//! detection alerts personnel; 10.7.2; 12.10.5: alerts from security monitoring systems are part
//! of the incident response).
//!
//! - GuardDuty findings (`aws.guardduty`, "GuardDuty Finding") carry `detail.severity` as a
//!   number: HIGH is 7.0–8.9 and CRITICAL 9.0–10.0 (GuardDuty's guide, "Severity levels of
//!   GuardDuty findings"), so the rule matches `severity >= 7`.
//! - Security Hub findings (`aws.securityhub`, "Security Hub Findings - Imported") carry
//!   `detail.findings[].Severity.Label`. Only ACTIVE findings in workflow status NEW: Security Hub
//!   sends the same finding again on every update (a note, a workflow change, its resolution),
//!   and the team should be paged once per finding, not once per edit of it.
//!
//! The target gets the whole event, not an input transformer: an event EventBridge delivers is at
//! most 256 KB, the same as an SNS message, so any finding fits; the responders need all of it
//! (resource, actor, evidence) and one template cannot name the fields of two schemas (GuardDuty's
//! `detail.type` beside Security Hub's `detail.findings[0].Title`) without printing nulls.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::{alerts, listed, Change, Ctx, Drift, Input, Outputs, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_eventbridge::types::{RuleState, Tag, Target};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub struct SecurityFindings;

pub const ID: &str = "events.security-findings";

/// The id of the rule's one target.
pub const TARGET_ID: &str = "alerts-topic";

/// What the rule is for, in the operator's words.
const MATCHES: &str = "HIGH and CRITICAL findings of GuardDuty and Security Hub";

/// The rule's ARN on the default bus: the alerts topic's policy names it before the rule exists.
pub fn rule_arn(names: &crate::names::Names) -> String {
    format!("arn:aws:events:{}:{}:rule/{}", names.region, names.account, names.findings_rule())
}

/// The event pattern (EventBridge content filtering: `$or`, numeric matching).
pub fn pattern() -> Value {
    json!({
        "$or": [
            {
                "source": ["aws.guardduty"],
                "detail-type": ["GuardDuty Finding"],
                "detail": { "severity": [{ "numeric": [">=", 7] }] }
            },
            {
                "source": ["aws.securityhub"],
                "detail-type": ["Security Hub Findings - Imported"],
                "detail": {
                    "findings": {
                        "Severity": { "Label": ["HIGH", "CRITICAL"] },
                        "RecordState": ["ACTIVE"],
                        "Workflow": { "Status": ["NEW"] }
                    }
                }
            }
        ]
    })
}

pub struct TargetHeld {
    pub id: String,
    pub arn: String,
    /// The target passes something other than the whole event (Input, InputPath, a transformer).
    pub reshaped: bool,
}

pub struct Observed {
    pub arn: String,
    pub pattern: Option<Value>,
    pub state: String,
    pub targets: Vec<TargetHeld>,
    pub tags: BTreeMap<String, String>,
}

fn state_words(state: &str) -> String {
    state.to_ascii_lowercase().replace('_', " ")
}

fn tags(ctx: &Ctx) -> Vec<Tag> {
    ctx.tags(None, None).iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect()
}

/// Whether `targets` is exactly the topic, given the whole event.
fn target_drifts(targets: &[TargetHeld], topic: &str) -> Vec<Drift> {
    let mut d = Vec::new();
    match targets.iter().find(|t| t.id == TARGET_ID) {
        None => d.push(Drift::missing("target", format!("alerts topic {topic}"))),
        Some(t) if t.arn != topic => d.push(Drift::new("target", &t.arn, format!("alerts topic {topic}"))),
        Some(t) if t.reshaped => d.push(Drift::new("target input", "reshaped", "the whole finding")),
        Some(_) => {}
    }
    for t in targets.iter().filter(|t| t.id != TARGET_ID) {
        d.push(Drift::unexpected(format!("target {}", t.id), &t.arn));
    }
    d
}

#[async_trait]
impl Resource for SecurityFindings {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    fn reads(&self) -> &'static [Input] {
        &[Input { node: alerts::ID, key: "topic_arn" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let eb = &ctx.clients.eventbridge;
        let name = ctx.names.findings_rule();
        let rule = eb.describe_rule().name(&name).send().await.aws("events:DescribeRule").ok_if_not_found()?;
        let Some(rule) = rule else { return Ok(None) };
        let arn = rule.arn().map(str::to_string).unwrap_or_else(|| rule_arn(&ctx.names));
        let listed_targets =
            eb.list_targets_by_rule().rule(&name).send().await.aws("events:ListTargetsByRule").ok_if_not_found()?;
        let targets = listed_targets
            .map(|o| o.targets().to_vec())
            .unwrap_or_default()
            .into_iter()
            .map(|t| TargetHeld {
                id: t.id().to_string(),
                arn: t.arn().to_string(),
                reshaped: t.input().is_some() || t.input_path().is_some() || t.input_transformer().is_some(),
            })
            .collect();
        let tags = eb.list_tags_for_resource().resource_arn(&arn).send().await.aws("events:ListTagsForResource")?;
        let tags = tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
        Ok(Some(Observed {
            arn,
            pattern: rule.event_pattern().and_then(|p| serde_json::from_str(p).ok()),
            state: rule.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            targets,
            tags,
        }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let topic = ctx.input(alerts::ID, "topic_arn")?;
        let mut d = Vec::new();
        if o.pattern.as_ref() != Some(&pattern()) {
            let have = if o.pattern.is_some() { "another pattern" } else { "none" };
            d.push(Drift::new("event pattern", have, MATCHES));
        }
        if o.state != RuleState::Enabled.as_str() {
            d.push(Drift::new("state", state_words(&o.state), "enabled"));
        }
        d.extend(target_drifts(&o.targets, &topic));
        d.extend(ctx.tag_drift(&o.tags));
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("rule_arn".into(), json!(o.arn)), ("rule_name".into(), json!(ctx.names.findings_rule()))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let eb = &ctx.clients.eventbridge;
        let name = ctx.names.findings_rule();
        let topic = ctx.input(alerts::ID, "topic_arn")?;
        let want = pattern();
        let rule_ok = observed
            .as_ref()
            .is_some_and(|o| o.pattern.as_ref() == Some(&want) && o.state == RuleState::Enabled.as_str());
        let mut arn = observed.as_ref().map(|o| o.arn.clone());
        if !rule_ok {
            ctx.progress.step(&format!("sending {MATCHES} to the alerts topic"));
            // PutRule creates or replaces the rule by name (a re-run after a crash finds its
            // own); tags given here apply only when it creates, so drift is tagged below.
            let out = eb
                .put_rule()
                .name(&name)
                .description(format!("{MATCHES} to the alerts topic (tapctl)"))
                .event_pattern(want.to_string())
                .state(RuleState::Enabled)
                .set_tags(Some(tags(ctx)))
                .send()
                .await
                .aws("events:PutRule")?;
            arn = out.rule_arn().map(str::to_string).or(arn);
        }
        let arn = arn.unwrap_or_else(|| rule_arn(&ctx.names));
        let held: &[TargetHeld] = observed.as_ref().map_or(&[], |o| &o.targets);
        if !target_drifts(held, &topic).is_empty() {
            // The rule has one target, the topic under the stack's id; PutTargets below
            // overwrites that one whatever it held.
            let stray: Vec<String> = held.iter().filter(|t| t.id != TARGET_ID).map(|t| t.id.clone()).collect();
            if !stray.is_empty() {
                ctx.progress.step(&format!("removing targets {}", listed(&stray)));
                eb.remove_targets().rule(&name).set_ids(Some(stray)).send().await.aws("events:RemoveTargets")?;
            }
            ctx.progress.step(&format!("targeting the alerts topic {topic}"));
            let target = Target::builder()
                .id(TARGET_ID)
                .arn(&topic)
                .build()
                .map_err(|e| ResourceError::new("InvalidTarget", e.to_string()))?;
            let out = eb.put_targets().rule(&name).targets(target).send().await.aws("events:PutTargets")?;
            // PutTargets answers 200 with the entries it could not add.
            if out.failed_entry_count() > 0 {
                let why: Vec<String> = out
                    .failed_entries()
                    .iter()
                    .map(|e| format!("{}: {}", e.error_code().unwrap_or("?"), e.error_message().unwrap_or("")))
                    .collect();
                return Err(ResourceError::new("PutTargetsFailed", format!("events:PutTargets: {}", listed(why))));
            }
        }
        let have_tags = observed.as_ref().map(|o| o.tags.clone());
        if let Some(drift) = have_tags.as_ref().and_then(|t| ctx.tag_drift(t)) {
            ctx.progress.step(&format!("tagging the rule: {}", drift.wanted));
            eb.tag_resource().resource_arn(&arn).set_tags(Some(tags(ctx))).send().await.aws("events:TagResource")?;
        }
        Ok(Outputs::from([("rule_arn".into(), json!(arn)), ("rule_name".into(), json!(name))]))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let eb = &ctx.clients.eventbridge;
        let name = ctx.names.findings_rule();
        // EventBridge refuses to delete a rule that still has targets.
        let ids: Vec<String> = o.targets.iter().map(|t| t.id.clone()).collect();
        if !ids.is_empty() {
            ctx.progress.step(&format!("removing the rule's targets {}", listed(&ids)));
            eb.remove_targets()
                .rule(&name)
                .set_ids(Some(ids))
                .send()
                .await
                .aws("events:RemoveTargets")
                .ok_if_not_found()?;
        }
        ctx.progress.step(&format!("deleting rule {name}"));
        eb.delete_rule().name(&name).send().await.aws("events:DeleteRule").ok_if_not_found()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};

    /// EventBridge's content filtering as its guide documents it, for the operators this rule
    /// uses: exact values, `numeric`, nested fields, `$or`, and arrays (a pattern field matches
    /// when any element of an array in the event does). moto cannot test a pattern
    /// (TestEventPattern is not implemented, and its own matcher does not descend into arrays of
    /// objects such as Security Hub's `findings`), so the rule is proven here.
    fn matches(pattern: &Value, event: &Value) -> bool {
        let Value::Object(fields) = pattern else { return false };
        fields.iter().all(|(k, p)| {
            if k == "$or" {
                return p.as_array().is_some_and(|alts| alts.iter().any(|alt| matches(alt, event)));
            }
            let values: Vec<&Value> = match event.get(k) {
                None => return false,
                Some(Value::Array(items)) => items.iter().collect(),
                Some(v) => vec![v],
            };
            match p {
                Value::Object(_) => values.iter().any(|v| matches(p, v)),
                Value::Array(filters) => values.iter().any(|v| filters.iter().any(|f| filter(f, v))),
                _ => false,
            }
        })
    }

    fn filter(f: &Value, v: &Value) -> bool {
        match f {
            Value::Object(named) => match named.get("numeric").and_then(Value::as_array) {
                Some(ops) => {
                    let Some(x) = v.as_f64() else { return false };
                    ops.chunks(2).all(|c| match (c[0].as_str(), c.get(1).and_then(Value::as_f64)) {
                        (Some(">="), Some(n)) => x >= n,
                        (Some(">"), Some(n)) => x > n,
                        (Some("<="), Some(n)) => x <= n,
                        (Some("<"), Some(n)) => x < n,
                        (Some("="), Some(n)) => x == n,
                        _ => false,
                    })
                }
                None => false,
            },
            other => other == v,
        }
    }

    /// GuardDuty's sample finding event (GuardDuty guide, "CloudWatch Events notification
    /// format"), with the given severity.
    fn guardduty(severity: f64) -> Value {
        json!({
            "version": "0",
            "id": "c8c4daa7-a20c-2f03-0070-b7393dd542ad",
            "detail-type": "GuardDuty Finding",
            "source": "aws.guardduty",
            "account": "123456789012",
            "time": "1970-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "schemaVersion": "2.0",
                "accountId": "123456789012",
                "region": "us-east-1",
                "partition": "aws",
                "id": "16afba5c5c43e07c9e3e5e2e544e95df",
                "arn": "arn:aws:guardduty:us-east-1:123456789012:detector/123456/finding/456789",
                "type": "Recon:EC2/PortProbeUnprotectedPort",
                "resource": { "resourceType": "Instance", "instanceDetails": { "instanceId": "i-99999999" } },
                "service": { "serviceName": "guardduty", "detectorId": "3caf4e0aaa46ce4ccbcef949a8785353", "count": 1 },
                "severity": severity,
                "createdAt": "1970-01-01T00:00:00Z",
                "updatedAt": "1970-01-01T00:00:00Z",
                "title": "Unprotected port on EC2 instance i-99999999 is being probed"
            }
        })
    }

    /// Security Hub's sample "Findings - Imported" event (Security Hub guide, "EventBridge event
    /// formats"), with the given label, record state and workflow status.
    fn security_hub(label: &str, record: &str, workflow: &str) -> Value {
        json!({
            "version": "0",
            "id": "8e5622f9-d81c-4d81-612a-9319e7ee2506",
            "detail-type": "Security Hub Findings - Imported",
            "source": "aws.securityhub",
            "account": "123456789012",
            "time": "2019-04-11T21:52:17Z",
            "region": "us-west-2",
            "resources": ["arn:aws:securityhub:us-west-2::product/aws/macie/arn:aws:macie:us-west-2:123456789012:integtest/trigger/6294d71b927c41cbab915159a8f326a3/alert/f2893b211841"],
            "detail": {
                "findings": [{
                    "SchemaVersion": "2018-10-08",
                    "Id": "arn:aws:macie:us-west-2:123456789012:integtest/trigger/6294d71b927c41cbab915159a8f326a3/alert/f2893b211841",
                    "ProductArn": "arn:aws:securityhub:us-west-2:220307202362:product/aws/macie",
                    "GeneratorId": "arn:aws:macie:us-west-2:123456789012:trigger/6294d71b927c41cbab915159a8f326a3",
                    "AwsAccountId": "123456789012",
                    "Types": ["Sensitive Data Identifications/Passwords/Google Suite Two-factor backup codes in S3"],
                    "Severity": { "Product": 6, "Normalized": 15, "Label": label },
                    "Title": "Google Suite Two-Factor Backup Codes uploaded to S3",
                    "RecordState": record,
                    "Workflow": { "Status": workflow },
                    "Resources": [{ "Type": "AwsS3Bucket", "Id": "arn:aws:s3:::test-bucket-12" }]
                }]
            }
        })
    }

    #[test]
    fn high_and_critical_findings_match_and_lower_ones_do_not() {
        let p = pattern();
        for severity in [7.0, 8.0, 8.9, 9.0, 10.0] {
            assert!(matches(&p, &guardduty(severity)), "GuardDuty severity {severity} (HIGH or CRITICAL) must alert");
        }
        for severity in [1.0, 3.9, 4.0, 5.0, 6.9] {
            assert!(!matches(&p, &guardduty(severity)), "GuardDuty severity {severity} (LOW or MEDIUM) must not");
        }
        for label in ["HIGH", "CRITICAL"] {
            assert!(matches(&p, &security_hub(label, "ACTIVE", "NEW")), "Security Hub {label}");
            assert!(!matches(&p, &security_hub(label, "ARCHIVED", "NEW")), "an archived {label} finding");
            assert!(!matches(&p, &security_hub(label, "ACTIVE", "RESOLVED")), "a resolved {label} finding");
        }
        for label in ["INFORMATIONAL", "LOW", "MEDIUM"] {
            assert!(!matches(&p, &security_hub(label, "ACTIVE", "NEW")), "Security Hub {label}");
        }
        // Another source's event with a high number in the same field is not a finding.
        let mut other = guardduty(9.0);
        other["source"] = json!("aws.inspector2");
        assert!(!matches(&p, &other));
    }

    #[test]
    fn the_matcher_agrees_with_eventbridge_on_the_guides_examples() {
        // EventBridge guide, "Numeric matching" and "Or matching" examples.
        let numeric = json!({ "detail": { "c-count": [{ "numeric": [">", 0, "<=", 5] }] } });
        assert!(matches(&numeric, &json!({ "detail": { "c-count": 5 } })));
        assert!(!matches(&numeric, &json!({ "detail": { "c-count": 6 } })));
        assert!(!matches(&numeric, &json!({ "detail": { "c-count": "5" } })), "a string is not a number");
        let or = json!({ "$or": [{ "a": ["x"] }, { "b": ["y"] }] });
        assert!(matches(&or, &json!({ "b": "y" })));
        assert!(!matches(&or, &json!({ "a": "y" })));
    }

    #[test]
    fn the_rule_arn_is_on_the_default_bus() {
        let ctx = ctx(ID, SecurityFindings.reads(), &[]);
        assert_eq!(
            rule_arn(&ctx.names),
            format!("arn:aws:events:us-east-1:123456789012:rule/{}", ctx.names.findings_rule())
        );
    }

    #[test]
    fn each_rule_drift_is_named_in_the_operators_words() {
        let topic = "arn:aws:sns:us-east-1:123456789012:payment-alerts-qa";
        let ctx = ctx(ID, SecurityFindings.reads(), &[(alerts::ID, "topic_arn", json!(topic))]);
        let good = || Observed {
            arn: rule_arn(&ctx.names),
            pattern: Some(pattern()),
            state: "ENABLED".into(),
            targets: vec![TargetHeld { id: TARGET_ID.into(), arn: topic.into(), reshaped: false }],
            tags: ctx.tags(None, None).into_iter().collect(),
        };
        assert_eq!(SecurityFindings.diff(&ctx, &good()).unwrap(), Change::NoOp);
        let bad = Observed {
            pattern: Some(json!({ "source": ["aws.guardduty"] })),
            state: "DISABLED".into(),
            targets: vec![TargetHeld { id: "x".into(), arn: "arn:aws:sqs:us-east-1:1:q".into(), reshaped: false }],
            ..good()
        };
        let change = SecurityFindings.diff(&ctx, &bad).unwrap();
        let text: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            text,
            [
                format!("event pattern: another pattern → {MATCHES}"),
                "state: disabled → enabled".to_string(),
                format!("target: missing → alerts topic {topic}"),
                "target x: arn:aws:sqs:us-east-1:1:q → absent".to_string(),
            ]
        );
        assert_plain(&change.drifts());
    }
}
