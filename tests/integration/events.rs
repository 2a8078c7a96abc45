//! Events to the team (PCI DSS 10.7.2, 11.5.1, 12.10.5): the RDS event subscriptions, the rule
//! for HIGH and CRITICAL security findings and the alerts topic's policy, read back from the
//! account after `up`; each out-of-band change named by `plan` and repaired by `up`; nothing of
//! them left after `destroy`.

use super::harness::{planned_changes, Account};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use tapctl::names::Names;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:payment-alerts-qa";

fn names() -> Names {
    Names::new("qa", "us-east-1", Some("123456789012"))
}

/// An EventBridge client straight to the emulator (the Account has none; built without a
/// runtime, so inside an async read-back too).
pub fn eventbridge(acct: &Account) -> aws_sdk_eventbridge::Client {
    let conf = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(acct.emulator_url())
        .credentials_provider(aws_sdk_eventbridge::config::Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_eventbridge::Client::from_conf(conf)
}

/// One RDS event subscription as the account holds it.
#[derive(Debug, PartialEq)]
struct Subscription {
    source_type: String,
    source_ids: BTreeSet<String>,
    categories: BTreeSet<String>,
    topic: String,
    enabled: bool,
    tags: BTreeMap<String, String>,
}

fn subscription(acct: &Account, name: &str) -> Option<Subscription> {
    acct.block_on(async {
        let out = acct.rds.describe_event_subscriptions().subscription_name(name).send().await;
        let s = match out {
            Ok(o) => o.event_subscriptions_list().first().cloned()?,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_subscription_not_found_fault()) => return None,
            Err(e) => panic!("describe {name}: {e:?}"),
        };
        let arn = s.event_subscription_arn().expect("an ARN").to_string();
        let tags = acct.rds.list_tags_for_resource().resource_name(&arn).send().await.unwrap();
        Some(Subscription {
            source_type: s.source_type().unwrap_or_default().to_string(),
            source_ids: s.source_ids_list().iter().cloned().collect(),
            categories: s.event_categories_list().iter().cloned().collect(),
            topic: s.sns_topic_arn().unwrap_or_default().to_string(),
            enabled: s.enabled().unwrap_or(false),
            tags: tags.tag_list().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect(),
        })
    })
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The database's subscriptions are exactly as the stack wants them.
fn assert_subscriptions(acct: &Account) {
    let n = names();
    let (cluster, instances) = acct.block_on(async {
        let c = acct.rds.describe_db_clusters().db_cluster_identifier(n.db_cluster()).send().await.unwrap();
        let c = c.db_clusters()[0].clone();
        let ids: BTreeSet<String> =
            c.db_cluster_members().iter().filter_map(|m| m.db_instance_identifier()).map(String::from).collect();
        (c.db_cluster_identifier().unwrap().to_string(), ids)
    });
    assert_eq!(instances.len(), 2, "a writer and a reader: {instances:?}");
    let c = subscription(acct, &n.db_event_subscription()).expect("the cluster's subscription");
    assert_eq!(
        (c.source_type.as_str(), &c.source_ids, c.topic.as_str(), c.enabled),
        ("db-cluster", &BTreeSet::from([cluster]), TOPIC, true)
    );
    assert_eq!(c.categories, set(&["configuration change", "failover", "failure", "maintenance", "notification"]));
    let i = subscription(acct, &n.db_instance_event_subscription()).expect("the instances' subscription");
    assert_eq!(
        (i.source_type.as_str(), &i.source_ids, i.topic.as_str(), i.enabled),
        ("db-instance", &instances, TOPIC, true)
    );
    assert_eq!(
        i.categories,
        set(&[
            "availability",
            "configuration change",
            "failover",
            "failure",
            "maintenance",
            "notification",
            "recovery"
        ])
    );
    for s in [&c, &i] {
        assert_eq!(s.tags.get("tap:resource").map(String::as_str), Some("events.db-subscriptions"), "{s:?}");
        assert_eq!(s.tags.get("EnvironmentSuffix").map(String::as_str), Some("qa"), "{s:?}");
    }
}

fn expected_pattern() -> Value {
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
                "detail": { "findings": {
                    "Severity": { "Label": ["HIGH", "CRITICAL"] },
                    "RecordState": ["ACTIVE"],
                    "Workflow": { "Status": ["NEW"] }
                } }
            }
        ]
    })
}

/// The findings rule is enabled, matches HIGH and CRITICAL findings and has one target: the
/// topic, given the whole finding.
fn assert_rule(acct: &Account) {
    let eb = eventbridge(acct);
    let rule_name = names().findings_rule();
    acct.block_on(async {
        let r = eb.describe_rule().name(&rule_name).send().await.unwrap();
        assert_eq!(r.state().map(|s| s.as_str()), Some("ENABLED"));
        assert_eq!(r.event_bus_name(), Some("default"));
        let pattern: Value = serde_json::from_str(r.event_pattern().unwrap()).unwrap();
        assert_eq!(pattern, expected_pattern());
        let targets = eb.list_targets_by_rule().rule(&rule_name).send().await.unwrap();
        let targets: Vec<(&str, &str, bool)> = targets
            .targets()
            .iter()
            .map(|t| (t.id(), t.arn(), t.input().is_none() && t.input_transformer().is_none()))
            .collect();
        assert_eq!(targets, [("alerts-topic", TOPIC, true)]);
        let tags = eb.list_tags_for_resource().resource_arn(r.arn().unwrap()).send().await.unwrap();
        let tags: BTreeMap<&str, &str> = tags.tags().iter().map(|t| (t.key(), t.value())).collect();
        assert_eq!(tags.get("tap:resource"), Some(&"events.security-findings"));
        assert_eq!(tags.get("EnvironmentSuffix"), Some(&"qa"));
    });
}

fn topic_policy(acct: &Account) -> Value {
    acct.block_on(async {
        let a = acct.sns.get_topic_attributes().topic_arn(TOPIC).send().await.unwrap();
        serde_json::from_str(a.attributes().unwrap().get("Policy").expect("a policy")).unwrap()
    })
}

fn statements(doc: &Value) -> Vec<Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        _ => vec![],
    }
}

/// Exactly CloudWatch alarms, the findings rule and RDS may publish, each for this account's
/// sources; the account administers; nothing is published without TLS.
fn assert_topic_policy(acct: &Account) {
    let n = names();
    let doc = topic_policy(acct);
    let all = statements(&doc);
    let publishes = |s: &Value| strings(&s["Action"]).iter().any(|a| a.eq_ignore_ascii_case("sns:publish") || a == "*");
    let allows: Vec<&Value> = all.iter().filter(|s| s["Effect"] == "Allow" && publishes(s)).collect();
    let by_service: BTreeMap<String, &Value> =
        allows.iter().map(|s| (strings(&s["Principal"]["Service"]).join(","), *s)).collect();
    assert_eq!(
        by_service.keys().cloned().collect::<Vec<_>>(),
        ["cloudwatch.amazonaws.com", "events.amazonaws.com", "events.rds.amazonaws.com"],
        "publishers: {doc:#}"
    );
    for s in &allows {
        assert_eq!(strings(&s["Action"]), ["sns:Publish"], "a publisher may only publish: {s}");
        assert_eq!(strings(&s["Resource"]), [TOPIC]);
    }
    let cw = by_service["cloudwatch.amazonaws.com"];
    assert_eq!(cw["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012");
    assert_eq!(cw["Condition"]["ArnLike"]["aws:SourceArn"], "arn:aws:cloudwatch:us-east-1:123456789012:alarm:*");
    let eb = by_service["events.amazonaws.com"];
    assert_eq!(
        eb["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!(format!("arn:aws:events:us-east-1:123456789012:rule/{}", n.findings_rule()))
    );
    let rds = by_service["events.rds.amazonaws.com"];
    assert_eq!(rds["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012");
    let sources = strings(&rds["Condition"]["ArnEquals"]["aws:SourceArn"]);
    assert!(sources.contains(&format!("arn:aws:rds:us-east-1:123456789012:cluster:{}", n.db_cluster())), "{sources:?}");
    for i in 0..2 {
        assert!(
            sources.contains(&format!("arn:aws:rds:us-east-1:123456789012:db:{}", n.db_instance(i))),
            "{sources:?}"
        );
    }
    assert!(sources.iter().all(|a| a.starts_with("arn:aws:rds:us-east-1:123456789012:")), "{sources:?}");
    let admin: Vec<&Value> = all.iter().filter(|s| s["Effect"] == "Allow" && !publishes(s)).collect();
    assert_eq!(admin.len(), 1, "{doc:#}");
    assert_eq!(strings(&admin[0]["Principal"]["AWS"]), ["arn:aws:iam::123456789012:root"]);
    let deny: Vec<&Value> = all.iter().filter(|s| s["Effect"] == "Deny").collect();
    assert_eq!(deny.len(), 1, "{doc:#}");
    assert_eq!(deny[0]["Condition"]["Bool"]["aws:SecureTransport"], "false");
    assert_eq!(strings(&deny[0]["Action"]), ["sns:Publish"]);
    assert_eq!(all.len(), 5, "nothing else: {doc:#}");
}

#[test]
fn database_events_and_security_findings_reach_the_alerts_topic_and_drift_is_repaired() {
    let acct = Account::with_stub_packages();
    let n = names();
    acct.ok(&["up", "--suffix", "qa"]);
    assert_subscriptions(&acct);
    assert_rule(&acct);
    assert_topic_policy(&acct);
    let outputs = acct.ok(&["outputs", "--suffix", "qa", "--json"]).stdout;
    assert!(
        outputs.contains(&format!("arn:aws:events:us-east-1:123456789012:rule/{}", n.findings_rule())),
        "{outputs}"
    );

    // Out of band: the cluster's alerts switched off, a reader dropped from the instances' with
    // fewer categories, the rule disabled and its target removed, anyone allowed to publish.
    let eb = eventbridge(&acct);
    acct.block_on(async {
        acct.rds
            .modify_event_subscription()
            .subscription_name(n.db_event_subscription())
            .enabled(false)
            .send()
            .await
            .unwrap();
        acct.rds
            .remove_source_identifier_from_subscription()
            .subscription_name(n.db_instance_event_subscription())
            .source_identifier(n.db_instance(1))
            .send()
            .await
            .unwrap();
        acct.rds
            .modify_event_subscription()
            .subscription_name(n.db_instance_event_subscription())
            .event_categories("failure")
            .send()
            .await
            .unwrap();
        eb.remove_targets().rule(n.findings_rule()).ids("alerts-topic").send().await.unwrap();
        eb.disable_rule().name(n.findings_rule()).send().await.unwrap();
    });
    let mut open = topic_policy(&acct);
    open["Statement"].as_array_mut().unwrap().push(json!({
        "Sid": "Anyone", "Effect": "Allow", "Principal": "*", "Action": "sns:Publish", "Resource": TOPIC
    }));
    acct.block_on(
        acct.sns
            .set_topic_attributes()
            .topic_arn(TOPIC)
            .attribute_name("Policy")
            .attribute_value(open.to_string())
            .send(),
    )
    .unwrap();

    let p = acct.drifted_plan();
    let subs = planned_changes(&p, "events.db-subscriptions").1;
    let (cluster_sub, instance_sub) = (n.db_event_subscription(), n.db_instance_event_subscription());
    let mut ids = [n.db_instance(0), n.db_instance(1)];
    ids.sort();
    let ids = ids.join(", ");
    for want in [
        format!("subscription {cluster_sub} enabled: off → on"),
        format!(
            "subscription {instance_sub} categories: failure → availability, configuration change, failover, failure, maintenance, notification, recovery"
        ),
        format!("subscription {instance_sub} sources: {} → {ids}", n.db_instance(0)),
    ] {
        assert!(subs.contains(&want), "{want} not in {subs:#?}");
    }
    let rule = planned_changes(&p, "events.security-findings").1;
    assert!(rule.contains(&"state: disabled → enabled".to_string()), "{rule:#?}");
    assert!(rule.contains(&format!("target: missing → alerts topic {TOPIC}")), "{rule:#?}");
    let topic = planned_changes(&p, "alerts.topic").1;
    assert!(
        topic.contains(
            &"topic policy: also lets * publish → CloudWatch alarms, the findings rule and RDS events publish, over TLS only"
                .to_string()
        ),
        "{topic:#?}"
    );

    acct.ok(&["up", "--suffix", "qa"]);
    assert_subscriptions(&acct);
    assert_rule(&acct);
    assert_topic_policy(&acct);

    // A subscription deleted: named as missing, made again.
    acct.block_on(acct.rds.delete_event_subscription().subscription_name(n.db_instance_event_subscription()).send())
        .unwrap();
    let p = acct.drifted_plan();
    let subs = planned_changes(&p, "events.db-subscriptions").1;
    assert_eq!(subs, [format!("subscription {instance_sub}: missing → db-instance events of {ids}")], "{subs:#?}");
    acct.ok(&["up", "--suffix", "qa"]);
    assert_subscriptions(&acct);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0, "up repaired everything");

    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    let inv = super::readback::inventory(&acct, "qa");
    assert_eq!(inv["db-event-subscription"], Vec::<String>::new());
    assert_eq!(inv["events-rule"], Vec::<String>::new());
    assert!(subscription(&acct, &cluster_sub).is_none() && subscription(&acct, &instance_sub).is_none());
}
