//! The WAF in front of the API (PCI DSS v4.0.1 6.4.2): `waf.web-acl` read back from the emulated
//! account with the SDK — the web ACL's rules, the stage's association, the logging
//! configuration, the encrypted log group and the blocked-requests alarm — then changed out of
//! band (named by plan, repaired by up), made through WAF's "not yet" answers, given a new rate
//! limit, and destroyed.

use super::harness::{Account, Answer};
use aws_sdk_wafv2::types::{DefaultAction, OverrideAction, Rule, Scope, Statement, VisibilityConfig};
use serde_json::Value;

const ACL: &str = "payment-waf-qa";
const GROUP: &str = "aws-waf-logs-payments-qa";
const ALARM: &str = "payments-waf-blocked-qa";
const MANAGED: [&str; 4] = [
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesSQLiRuleSet",
];

fn wafv2(acct: &Account) -> aws_sdk_wafv2::Client {
    aws_sdk_wafv2::Client::new(&acct.via_proxy())
}

fn outputs(acct: &Account) -> Value {
    serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.outputs.json")).unwrap()).unwrap()
}

fn state_file(acct: &Account) -> Value {
    serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.json")).unwrap()).unwrap()
}

fn stage_arn(acct: &Account) -> String {
    let api = outputs(acct)["api_id"].as_str().unwrap().to_string();
    format!("arn:aws:apigateway:us-east-1::/restapis/{api}/stages/live")
}

/// The regional web ACL of that name, with its lock token, as WAF holds it.
fn web_acl(acct: &Account, name: &str) -> Option<(aws_sdk_wafv2::types::WebAcl, String)> {
    let waf = wafv2(acct);
    acct.block_on(async {
        let list = waf.list_web_acls().scope(Scope::Regional).send().await.unwrap();
        let s = list.web_acls().iter().find(|s| s.name() == Some(name))?;
        let out = waf.get_web_acl().name(name).scope(Scope::Regional).id(s.id().unwrap()).send().await.unwrap();
        Some((out.web_acl().unwrap().clone(), out.lock_token().unwrap().to_string()))
    })
}

/// The ARN of the web ACL WAF says guards the stage.
fn guarding(acct: &Account) -> Option<String> {
    let waf = wafv2(acct);
    let stage = stage_arn(acct);
    acct.block_on(async {
        let out = waf.get_web_acl_for_resource().resource_arn(stage).send().await.unwrap();
        out.web_acl().map(|w| w.arn().to_string())
    })
}

fn rate_limit(acl: &aws_sdk_wafv2::types::WebAcl) -> i64 {
    let rule = acl.rules().iter().find(|r| r.name() == "RateLimitPerClientIP").expect("the rate rule");
    rule.statement().unwrap().rate_based_statement().unwrap().limit()
}

/// Everything 6.4.2 asks of the WAF, as the account holds it.
fn assert_guarded(acct: &Account, rate: i64) {
    let (acl, _) = web_acl(acct, ACL).expect("the web ACL");
    assert!(acl.default_action().and_then(DefaultAction::allow).is_some(), "default action Allow");
    let v = acl.visibility_config().unwrap();
    assert!(v.cloud_watch_metrics_enabled() && v.sampled_requests_enabled(), "the ACL's metrics and samples");
    let mut rules: Vec<&Rule> = acl.rules().iter().collect();
    rules.sort_by_key(|r| r.priority());
    let names: Vec<&str> = rules.iter().map(|r| r.name()).collect();
    assert_eq!(names, [&["RateLimitPerClientIP"][..], &MANAGED[..]].concat(), "rules by priority");
    let priorities: Vec<i32> = rules.iter().map(|r| r.priority()).collect();
    assert_eq!(priorities, [0, 1, 2, 3, 4]);
    for r in &rules {
        let v = r.visibility_config().unwrap();
        assert!(v.cloud_watch_metrics_enabled() && v.sampled_requests_enabled(), "{}: metrics and samples", r.name());
        assert!(!v.metric_name().is_empty());
    }
    let statement = rules[0].statement().unwrap().rate_based_statement().expect("a rate-based statement");
    assert_eq!((statement.limit(), statement.evaluation_window_sec()), (rate, 300), "requests per 5 minutes");
    assert_eq!(statement.aggregate_key_type().as_str(), "IP");
    assert!(rules[0].action().and_then(|a| a.block()).is_some(), "the rate rule blocks");
    for (r, group) in rules[1..].iter().zip(MANAGED) {
        let m = r.statement().unwrap().managed_rule_group_statement().expect("a managed rule group");
        assert_eq!((m.vendor_name(), m.name()), ("AWS", group));
        assert!(m.excluded_rules().is_empty() && m.rule_action_overrides().is_empty(), "{group}: no rule disarmed");
        assert!(r.override_action().and_then(OverrideAction::none).is_some(), "{group}: its own block actions apply");
    }
    assert_eq!(guarding(acct).as_deref(), Some(acl.arn()), "the stage is guarded by the stack's ACL");
    let waf = wafv2(acct);
    let logging = acct.block_on(async {
        waf.get_logging_configuration().resource_arn(acl.arn()).send().await.unwrap().logging_configuration().cloned()
    });
    let logging = logging.expect("a logging configuration");
    assert_eq!(logging.log_destination_configs(), [format!("arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}")]);
    let mut redacted: Vec<String> =
        logging.redacted_fields().iter().filter_map(|f| f.single_header().map(|h| h.name().to_string())).collect();
    redacted.sort();
    assert_eq!(redacted, ["authorization", "x-amz-security-token"]);
}

/// The rule with another statement or override action.
fn rule_with(r: &Rule, statement: Option<Statement>, override_action: Option<OverrideAction>) -> Rule {
    Rule::builder()
        .name(r.name())
        .priority(r.priority())
        .set_statement(statement.or_else(|| r.statement().cloned()))
        .set_action(r.action().cloned())
        .set_override_action(override_action.or_else(|| r.override_action().cloned()))
        .set_visibility_config(r.visibility_config().cloned())
        .build()
        .unwrap()
}

#[test]
fn the_web_acl_guards_the_stage_logs_redacted_to_its_encrypted_group_alarms_and_goes_with_destroy() {
    let acct = Account::with_stub_packages();
    // Another stack's web ACL in the same account and region: destroy must leave it alone.
    let waf = wafv2(&acct);
    acct.block_on(async {
        waf.create_web_acl()
            .name("payment-waf-other")
            .scope(Scope::Regional)
            .default_action(
                DefaultAction::builder().allow(aws_sdk_wafv2::types::AllowAction::builder().build()).build(),
            )
            .visibility_config(
                VisibilityConfig::builder()
                    .cloud_watch_metrics_enabled(true)
                    .sampled_requests_enabled(true)
                    .metric_name("other")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    });
    acct.ok(&["up", "--suffix", "qa"]);
    assert_guarded(&acct, 2000);
    let (acl, _) = web_acl(&acct, ACL).unwrap();
    assert_eq!(rate_limit(&acl), 2000, "the default: 2000 requests per client IP in 5 minutes");
    let out = outputs(&acct);
    assert_eq!(out["waf_web_acl_arn"].as_str(), Some(acl.arn()), "the operator's outputs name the ACL");
    let tags = acct.block_on(async { waf.list_tags_for_resource().resource_arn(acl.arn()).send().await.unwrap() });
    let tags: std::collections::BTreeMap<String, String> = tags
        .tag_info_for_resource()
        .unwrap()
        .tag_list()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    for (k, v) in
        [("Project", "payments"), ("EnvironmentSuffix", "qa"), ("ManagedBy", "tapctl"), ("tap:resource", "waf.web-acl")]
    {
        assert_eq!(tags.get(k).map(String::as_str), Some(v), "tag {k}: {tags:?}");
    }

    // The log group: the stack's key, the stack's retention, and WAF's name prefix.
    let group = acct.block_on(async {
        acct.logs.describe_log_groups().log_group_name_prefix(GROUP).send().await.unwrap().log_groups()[0].clone()
    });
    assert_eq!(group.log_group_name(), Some(GROUP));
    assert_eq!(group.kms_key_id(), out["kms_key_arn"].as_str(), "encrypted with the stack's key");
    assert_eq!(group.retention_in_days(), Some(365));

    // The alarm on what the ACL blocks, to the alerts topic.
    let alarm = acct.block_on(async {
        acct.cloudwatch.describe_alarms().alarm_names(ALARM).send().await.unwrap().metric_alarms()[0].clone()
    });
    assert_eq!((alarm.namespace(), alarm.metric_name()), (Some("AWS/WAFV2"), Some("BlockedRequests")));
    let mut dims: Vec<(String, String)> =
        alarm.dimensions().iter().map(|d| (d.name().unwrap().to_string(), d.value().unwrap().to_string())).collect();
    dims.sort();
    assert_eq!(
        dims,
        [("Region".into(), "us-east-1".into()), ("Rule".into(), "ALL".into()), ("WebACL".into(), ACL.to_string())]
    );
    assert_eq!(alarm.alarm_actions(), [out["alerts_topic_arn"].as_str().unwrap()]);

    // A converged stack: nothing to repair, no mutating call.
    acct.assert_converged();
    acct.proxy.clear();
    acct.ok(&["up", "--suffix", "qa"]);
    let mutating: Vec<_> = acct.proxy.calls().into_iter().filter(|c| c.is_mutating()).collect();
    assert!(mutating.is_empty(), "a converged up changed something: {mutating:?}");

    // Destroy: disassociates, deletes the logging configuration, the ACL (WAF refuses an
    // associated one: server.py extension 14) and the group; another stack's ACL stays.
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert!(web_acl(&acct, ACL).is_none(), "the web ACL is gone");
    assert!(web_acl(&acct, "payment-waf-other").is_some(), "another stack's web ACL survives");
    let groups = acct.block_on(async {
        acct.logs.describe_log_groups().log_group_name_prefix("aws-waf-logs-").send().await.unwrap()
    });
    assert!(groups.log_groups().is_empty(), "the WAF log group is gone: {:?}", groups.log_groups());
    let left = super::readback::leftovers(&acct, "qa");
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn out_of_band_changes_to_the_waf_are_named_by_plan_and_repaired_by_up() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    let waf = wafv2(&acct);
    let stage = stage_arn(&acct);

    // Round 1: the stage disassociated, the logging configuration deleted, a rule group removed.
    let (acl, token) = web_acl(&acct, ACL).unwrap();
    acct.block_on(async {
        waf.disassociate_web_acl().resource_arn(&stage).send().await.unwrap();
        waf.delete_logging_configuration().resource_arn(acl.arn()).send().await.unwrap();
        let rules: Vec<Rule> =
            acl.rules().iter().filter(|r| r.name() != "AWSManagedRulesSQLiRuleSet").cloned().collect();
        waf.update_web_acl()
            .name(ACL)
            .scope(Scope::Regional)
            .id(acl.id())
            .lock_token(&token)
            .set_default_action(acl.default_action().cloned())
            .set_rules(Some(rules))
            .set_visibility_config(acl.visibility_config().cloned())
            .send()
            .await
            .unwrap();
    });
    assert_eq!(guarding(&acct), None);
    let plan = acct.planned_update("waf.web-acl");
    for said in [
        "rule AWSManagedRulesSQLiRuleSet: missing → AWS managed rule group AWSManagedRulesSQLiRuleSet, override action none, priority 4",
        "logging configuration: missing → to log group aws-waf-logs-payments-qa, authorization, x-amz-security-token redacted",
        "web ACL association with API stage live: missing → payment-waf-qa",
    ] {
        assert!(plan.iter().any(|p| p == said), "plan names {said:?}: {plan:#?}");
    }
    // The repair meets another writer once (WAF's optimistic lock): up reads the token again.
    acct.proxy.answer(Answer::new(
        "wafv2:UpdateWebACL",
        ACL,
        1,
        400,
        "WAFOptimisticLockException",
        "AWS WAF couldn’t save your changes because someone changed the resource after you started to edit it. \
         Reapply your changes.",
    ));
    acct.proxy.clear();
    let up = acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(acct.proxy.answered().len(), 1, "the lock answer was met: {}", up.stdout);
    let calls: Vec<String> = acct.proxy.calls().into_iter().map(|c| c.0).collect();
    let update = calls.iter().position(|c| c == "wafv2:UpdateWebACL").unwrap();
    assert!(calls[update..].iter().any(|c| c == "wafv2:GetWebACL"), "the token is read again: {calls:?}");
    assert_guarded(&acct, 2000);
    acct.assert_converged();

    // Round 2: another ACL on the stage, the logs unredacted, the rate limit and a tag changed.
    let (acl, token) = web_acl(&acct, ACL).unwrap();
    acct.block_on(async {
        let intruder = waf
            .create_web_acl()
            .name("intruder")
            .scope(Scope::Regional)
            .set_default_action(acl.default_action().cloned())
            .set_visibility_config(acl.visibility_config().cloned())
            .send()
            .await
            .unwrap();
        waf.disassociate_web_acl().resource_arn(&stage).send().await.unwrap();
        let intruder_arn = intruder.summary().unwrap().arn().unwrap().to_string();
        waf.associate_web_acl().web_acl_arn(intruder_arn).resource_arn(&stage).send().await.unwrap();
        let logging = aws_sdk_wafv2::types::LoggingConfiguration::builder()
            .resource_arn(acl.arn())
            .log_destination_configs(format!("arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}"))
            .build()
            .unwrap();
        waf.put_logging_configuration().logging_configuration(logging).send().await.unwrap();
        let mut rules = acl.rules().to_vec();
        let i = rules.iter().position(|r| r.name() == "RateLimitPerClientIP").unwrap();
        let rate = rules[i].statement().unwrap().rate_based_statement().unwrap().clone();
        let rate = aws_sdk_wafv2::types::RateBasedStatement::builder()
            .limit(1_000_000)
            .evaluation_window_sec(rate.evaluation_window_sec())
            .aggregate_key_type(rate.aggregate_key_type().clone())
            .build()
            .unwrap();
        rules[i] = rule_with(&rules[i], Some(Statement::builder().rate_based_statement(rate).build()), None);
        // The common rule set only counting: its rules would no longer block.
        let j = rules.iter().position(|r| r.name() == "AWSManagedRulesCommonRuleSet").unwrap();
        let count = OverrideAction::builder().count(aws_sdk_wafv2::types::CountAction::builder().build()).build();
        rules[j] = rule_with(&rules[j], None, Some(count));
        waf.update_web_acl()
            .name(ACL)
            .scope(Scope::Regional)
            .id(acl.id())
            .lock_token(&token)
            .set_default_action(acl.default_action().cloned())
            .set_rules(Some(rules))
            .set_visibility_config(acl.visibility_config().cloned())
            .send()
            .await
            .unwrap();
        waf.tag_resource()
            .resource_arn(acl.arn())
            .tags(aws_sdk_wafv2::types::Tag::builder().key("CostCenter").value("elsewhere").build().unwrap())
            .send()
            .await
            .unwrap();
    });
    let plan = acct.planned_update("waf.web-acl");
    for said in [
        "web ACL association with API stage live: intruder → payment-waf-qa",
        "logging redacted fields: none → headers authorization, x-amz-security-token",
        "rule RateLimitPerClientIP rate limit: 1000000 requests per client IP in 5 minutes → 2000 requests per client IP in 5 minutes",
        "rule AWSManagedRulesCommonRuleSet override action: count → none",
        "tags: CostCenter=elsewhere → CostCenter=payments",
    ] {
        assert!(plan.iter().any(|p| p == said), "plan names {said:?}: {plan:#?}");
    }
    acct.ok(&["up", "--suffix", "qa"]);
    assert_guarded(&acct, 2000);
    assert_eq!(rate_limit(&web_acl(&acct, ACL).unwrap().0), 2000);
    let tags = acct.block_on(async { waf.list_tags_for_resource().resource_arn(acl.arn()).send().await.unwrap() });
    let cost = tags.tag_info_for_resource().unwrap().tag_list().iter().find(|t| t.key() == "CostCenter").cloned();
    assert_eq!(cost.map(|t| t.value().to_string()).as_deref(), Some("payments"));
    acct.assert_converged();

    // --waf-rate-limit: out of WAF's range refused before any call; in range applied and recorded.
    acct.proxy.clear();
    let refused = acct.run(&["up", "--suffix", "qa", "--waf-rate-limit", "5"]);
    assert_ne!(refused.code, 0);
    for said in ["--waf-rate-limit", "10 to 2000000000", "got 5"] {
        assert!(refused.stderr.contains(said), "the refusal names {said:?}: {}", refused.stderr);
    }
    let mutating: Vec<_> = acct.proxy.calls().into_iter().filter(|c| c.is_mutating()).collect();
    assert!(mutating.is_empty(), "a refused setting changed something: {mutating:?}");
    assert_eq!(state_file(&acct)["settings"]["waf_rate_limit"], 2000, "the refused value is not recorded");
    acct.ok(&["up", "--suffix", "qa", "--waf-rate-limit", "500"]);
    assert_eq!(rate_limit(&web_acl(&acct, ACL).unwrap().0), 500, "the rule counts to the new limit");
    assert_eq!(state_file(&acct)["settings"]["waf_rate_limit"], 500, "and the setting is recorded");
    acct.assert_converged();
}

#[test]
fn the_association_right_after_the_stage_waits_for_waf_and_destroy_for_the_disassociation() {
    let acct = Account::with_stub_packages();
    // What WAF answers while it does not yet see a stage made moments ago (terraform retries it
    // for 10 minutes), and what it answers to a delete while it still sees the association.
    acct.proxy.answer(Answer::new(
        "wafv2:AssociateWebACL",
        "/stages/live",
        2,
        400,
        "WAFUnavailableEntityException",
        "AWS WAF couldn’t retrieve the resource that you requested. Retry your request.",
    ));
    let up = acct.ok(&["up", "--suffix", "qa"]);
    let answered: Vec<String> = acct.proxy.answered().into_iter().map(|(c, code)| format!("{} {code}", c.0)).collect();
    assert_eq!(answered, ["wafv2:AssociateWebACL WAFUnavailableEntityException"; 2], "{}", up.stdout);
    assert!(guarding(&acct).is_some(), "associated once WAF saw the stage");
    acct.assert_converged();

    acct.proxy.clear_answered();
    acct.proxy.answer(Answer::new(
        "wafv2:DeleteWebACL",
        ACL,
        1,
        400,
        "WAFAssociatedItemException",
        "AWS WAF couldn’t perform the operation because your resource is being used by another resource or it’s \
         associated with another resource.",
    ));
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert_eq!(acct.proxy.answered().len(), 1);
    assert!(web_acl(&acct, ACL).is_none(), "deleted once WAF saw it disassociated");
}
