//! The audit trail (PCI DSS 10.2, 10.3.4, 10.4.1, 10.7): `audit.trail` and `audit.alarms`, read
//! back from the emulated account with the SDK — the trail, its status and event selectors, its
//! delivery role and log group, each CIS metric filter and alarm — then changed out of band
//! (named by plan, repaired by up), made through CloudTrail's propagation answers, and destroyed.

use super::harness::{Account, Answer};
use serde_json::Value;

const TRAIL: &str = "payments-trail-qa";
const GROUP: &str = "/aws/cloudtrail/payments-trail-qa";
const ROLE: &str = "payment-trail-logs-role-qa";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const FUNCTIONS: [&str; 4] = ["validate", "fraud-check", "process", "rotate-secret"];
const CIS: [&str; 9] = [
    "unauthorized-api-calls",
    "iam-policy-changes",
    "cloudtrail-changes",
    "kms-key-disabled-or-deleted",
    "security-group-changes",
    "nacl-changes",
    "network-gateway-changes",
    "route-table-changes",
    "vpc-changes",
];

fn cloudtrail(acct: &Account) -> aws_sdk_cloudtrail::Client {
    aws_sdk_cloudtrail::Client::new(&acct.via_proxy())
}

/// The operator's outputs file.
fn outputs(acct: &Account) -> Value {
    serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.outputs.json")).unwrap()).unwrap()
}

/// The trail's data-event resources as the selectors name them: (resource type, ARN values).
fn data_events(acct: &Account) -> Vec<(String, Vec<String>)> {
    let ct = cloudtrail(acct);
    let sel = acct.block_on(async { ct.get_event_selectors().trail_name(TRAIL).send().await.unwrap() });
    let mut v = Vec::new();
    for s in sel.advanced_event_selectors() {
        let field = |name: &str| s.field_selectors().iter().find(|f| f.field() == name).cloned();
        if field("eventCategory").map(|f| f.equals().to_vec()) != Some(vec!["Data".to_string()]) {
            continue;
        }
        let kind = field("resources.type").map(|f| f.equals().join(",")).unwrap_or_default();
        let arns = field("resources.ARN").map(|f| [f.equals(), f.starts_with()].concat()).unwrap_or_default();
        let mut arns = arns.to_vec();
        arns.sort();
        v.push((kind, arns));
    }
    v.sort();
    v
}

fn management_events(acct: &Account) -> Vec<Vec<(String, Vec<String>)>> {
    let ct = cloudtrail(acct);
    let sel = acct.block_on(async { ct.get_event_selectors().trail_name(TRAIL).send().await.unwrap() });
    sel.advanced_event_selectors()
        .iter()
        .filter(|s| s.field_selectors().iter().any(|f| f.field() == "eventCategory" && f.equals() == ["Management"]))
        .map(|s| s.field_selectors().iter().map(|f| (f.field().to_string(), f.equals().to_vec())).collect())
        .collect()
}

fn is_logging(acct: &Account) -> bool {
    let ct = cloudtrail(acct);
    acct.block_on(async { ct.get_trail_status().name(TRAIL).send().await.unwrap().is_logging() }) == Some(true)
}

fn filters(acct: &Account) -> Vec<(String, String, String, String)> {
    acct.block_on(async {
        let out = acct.logs.describe_metric_filters().log_group_name(GROUP).send().await.unwrap();
        let mut v: Vec<_> = out
            .metric_filters()
            .iter()
            .map(|f| {
                let t = &f.metric_transformations()[0];
                (
                    f.filter_name().unwrap().to_string(),
                    f.filter_pattern().unwrap().to_string(),
                    t.metric_namespace().to_string(),
                    t.metric_name().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    })
}

/// Everything the trail and alarms nodes own, as the account holds it.
fn assert_trail_as_built(acct: &Account) {
    let out = outputs(acct);
    let key = out["kms_key_arn"].as_str().unwrap().to_string();
    let table_arn = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/transactions-qa");
    let audit_bucket = out["audit_bucket"].as_str().unwrap().to_string();
    let trail_bucket = out["trail_bucket"].as_str().unwrap().to_string();
    let topic = out["alerts_topic_arn"].as_str().unwrap().to_string();
    assert_eq!(out["trail_arn"], format!("arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{TRAIL}"));

    let ct = cloudtrail(acct);
    let t = acct.block_on(async { ct.get_trail().name(TRAIL).send().await.unwrap() });
    let t = t.trail().unwrap();
    assert_eq!(t.log_file_validation_enabled(), Some(true), "log file validation (10.3.4)");
    assert_eq!(t.kms_key_id(), Some(key.as_str()), "the stack's key");
    assert_eq!(t.s3_bucket_name(), Some(trail_bucket.as_str()));
    assert_eq!(t.is_multi_region_trail(), Some(true));
    assert_eq!(t.include_global_service_events(), Some(true), "IAM and STS events");
    assert_eq!(
        t.cloud_watch_logs_log_group_arn(),
        Some(format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{GROUP}:*").as_str())
    );
    assert_eq!(t.cloud_watch_logs_role_arn(), Some(format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}").as_str()));
    assert!(is_logging(acct), "GetTrailStatus: logging");
    let tags = acct
        .block_on(async { ct.list_tags().resource_id_list(out["trail_arn"].as_str().unwrap()).send().await.unwrap() });
    let tags = &tags.resource_tag_list()[0];
    assert!(tags.tags_list().iter().any(|t| t.key() == "EnvironmentSuffix" && t.value() == Some("qa")), "{tags:?}");
    assert!(tags.tags_list().iter().any(|t| t.key() == "tap:resource" && t.value() == Some("audit.trail")));

    // Management events read and write (no readOnly field), and data events of exactly these.
    assert_eq!(management_events(acct), vec![vec![("eventCategory".to_string(), vec!["Management".to_string()])]]);
    let mut functions: Vec<String> =
        FUNCTIONS.iter().map(|f| format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:payment-{f}-qa")).collect();
    functions.sort();
    assert_eq!(
        data_events(acct),
        vec![
            ("AWS::DynamoDB::Table".to_string(), vec![table_arn]),
            ("AWS::Lambda::Function".to_string(), functions),
            ("AWS::S3::Object".to_string(), vec![format!("arn:aws:s3:::{audit_bucket}/")]),
        ]
    );

    // The delivery role: trusts CloudTrail for this trail only; may only write into its group.
    let (trust, policy, attached) = acct.block_on(async {
        let r = acct.iam.get_role().role_name(ROLE).send().await.unwrap();
        let trust = r.role().unwrap().assume_role_policy_document().unwrap().to_string();
        let p = acct.iam.get_role_policy().role_name(ROLE).policy_name("payments-trail-delivery").send().await.unwrap();
        let inline = acct.iam.list_role_policies().role_name(ROLE).send().await.unwrap();
        assert_eq!(inline.policy_names(), ["payments-trail-delivery"], "one inline policy");
        let attached = acct.iam.list_attached_role_policies().role_name(ROLE).send().await.unwrap();
        (trust, p.policy_document().to_string(), attached.attached_policies().len())
    });
    let decode = |s: &str| -> Value {
        serde_json::from_str(&percent_encoding::percent_decode_str(s).decode_utf8_lossy()).unwrap()
    };
    let trust = decode(&trust);
    assert_eq!(trust["Statement"][0]["Principal"]["Service"], "cloudtrail.amazonaws.com");
    assert_eq!(trust["Statement"].as_array().map(Vec::len), Some(1), "one statement: {trust}");
    assert_eq!(trust["Statement"][0]["Action"], "sts:AssumeRole");
    let policy = decode(&policy);
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Action"], serde_json::json!(["logs:CreateLogStream", "logs:PutLogEvents"]));
    assert_eq!(
        statements[0]["Resource"],
        serde_json::json!([format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{GROUP}:log-stream:*")])
    );
    assert_eq!(attached, 0, "no managed policy");

    // The log group: the stack's key and retention.
    let g = acct.block_on(async { acct.logs.describe_log_groups().log_group_name_prefix(GROUP).send().await.unwrap() });
    let g = g.log_groups().iter().find(|g| g.log_group_name() == Some(GROUP)).expect("the trail's log group");
    assert_eq!(g.kms_key_id(), Some(key.as_str()));
    assert_eq!(g.retention_in_days(), Some(365));

    // One filter per CIS check, Security Hub's pattern, its own suffixed metric; one alarm each.
    let f = filters(acct);
    assert_eq!(f.len(), CIS.len(), "{f:#?}");
    for (check, (name, pattern, namespace, metric)) in {
        let mut cis = CIS.to_vec();
        cis.sort();
        cis
    }
    .iter()
    .zip(&f)
    {
        assert_eq!(*name, format!("payments-cis-{check}-qa"));
        assert_eq!((namespace.as_str(), metric.as_str()), ("CISBenchmark/payments-qa", name.as_str()));
        assert!(pattern.starts_with('{'), "{pattern}");
    }
    let pattern = |check: &str| f.iter().find(|x| x.0 == format!("payments-cis-{check}-qa")).unwrap().1.clone();
    assert!(pattern("cloudtrail-changes").contains("($.eventName=StopLogging)"));
    assert!(pattern("iam-policy-changes").contains("($.eventName=PutRolePolicy)"));
    assert!(pattern("kms-key-disabled-or-deleted").contains("ScheduleKeyDeletion"));
    assert!(pattern("unauthorized-api-calls").contains(r#"$.errorCode="AccessDenied*""#));
    let alarms = acct.block_on(async {
        acct.cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(CIS.iter().map(|c| format!("payments-cis-{c}-qa")).collect()))
            .send()
            .await
            .unwrap()
    });
    assert_eq!(alarms.metric_alarms().len(), CIS.len());
    for a in alarms.metric_alarms() {
        assert_eq!(a.metric_name(), a.alarm_name(), "the alarm watches its own filter's metric");
        assert_eq!(a.namespace(), Some("CISBenchmark/payments-qa"));
        assert_eq!(a.statistic().map(|s| s.as_str()), Some("Sum"));
        assert_eq!((a.threshold(), a.period(), a.evaluation_periods()), (Some(1.0), Some(300), Some(1)));
        assert_eq!(a.comparison_operator().map(|c| c.as_str()), Some("GreaterThanOrEqualToThreshold"));
        assert_eq!(a.alarm_actions(), std::slice::from_ref(&topic));
        assert_eq!(a.ok_actions(), std::slice::from_ref(&topic));
    }
}

#[test]
fn up_makes_a_validated_logging_trail_with_exactly_the_stacks_data_events_and_cis_alarms_and_destroy_removes_them() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    assert_trail_as_built(&acct);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0, "converged");

    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    let ct = cloudtrail(&acct);
    let trails = acct.block_on(async { ct.describe_trails().send().await.unwrap() });
    assert!(trails.trail_list().iter().all(|t| t.name() != Some(TRAIL)), "no trail");
    acct.block_on(async {
        let g = acct.logs.describe_log_groups().log_group_name_prefix(GROUP).send().await.unwrap();
        assert!(g.log_groups().is_empty(), "no log group");
        let filters = acct.logs.describe_metric_filters().send().await.unwrap();
        assert!(filters.metric_filters().is_empty(), "no metric filter: {:?}", filters.metric_filters());
        let role = acct.iam.get_role().role_name(ROLE).send().await;
        assert!(role.is_err(), "no role");
        let alarms = acct.cloudwatch.describe_alarms().alarm_name_prefix("payments-cis-").send().await.unwrap();
        assert!(alarms.metric_alarms().is_empty(), "no alarm");
    });
}

#[test]
fn out_of_band_changes_to_the_trail_and_its_filters_are_named_by_plan_and_repaired_by_up() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    let ct = cloudtrail(&acct);

    // Logging stopped.
    acct.block_on(async { ct.stop_logging().name(TRAIL).send().await.unwrap() });
    assert!(!is_logging(&acct));
    let changes = acct.planned_update("audit.trail");
    assert_eq!(changes, vec![format!("trail {TRAIL} logging: stopped → started")]);
    acct.ok(&["up", "--suffix", "qa"]);
    assert!(is_logging(&acct), "up started it again");

    // Log file validation off.
    acct.block_on(async { ct.update_trail().name(TRAIL).enable_log_file_validation(false).send().await.unwrap() });
    let changes = acct.planned_update("audit.trail");
    assert_eq!(changes, vec![format!("trail {TRAIL} log file validation: off → on")]);
    acct.ok(&["up", "--suffix", "qa"]);
    let t = acct.block_on(async { ct.get_trail().name(TRAIL).send().await.unwrap() });
    assert_eq!(t.trail().unwrap().log_file_validation_enabled(), Some(true));

    // Data events removed: only management events left.
    let management = aws_sdk_cloudtrail::types::AdvancedEventSelector::builder()
        .name("management events")
        .field_selectors(
            aws_sdk_cloudtrail::types::AdvancedFieldSelector::builder()
                .field("eventCategory")
                .equals("Management")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    acct.block_on(async {
        ct.put_event_selectors().trail_name(TRAIL).advanced_event_selectors(management).send().await.unwrap()
    });
    assert!(data_events(&acct).is_empty());
    let changes = acct.planned_update("audit.trail");
    assert_eq!(changes.len(), 3, "{changes:#?}");
    for missing in
        ["transactions table data events", "audit bucket object data events", "payment functions data events"]
    {
        let prefix = format!("trail {TRAIL} event selector {missing}: missing → eventCategory = Data");
        assert!(changes.iter().any(|c| c.starts_with(&prefix)), "{prefix}\n{changes:#?}");
    }
    assert!(
        changes.iter().any(|c| c.contains("function:payment-rotate-secret-qa")),
        "the functions are named: {changes:#?}"
    );
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(data_events(&acct).len(), 3, "the data events are back");

    // A CIS metric filter deleted.
    let filter = "payments-cis-cloudtrail-changes-qa";
    acct.block_on(async {
        acct.logs.delete_metric_filter().log_group_name(GROUP).filter_name(filter).send().await.unwrap()
    });
    assert_eq!(filters(&acct).len(), CIS.len() - 1);
    let changes = acct.planned_update("audit.alarms");
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert!(
        changes[0]
            .starts_with(&format!("metric filter {filter}: missing → {filter} counting {{($.eventName=CreateTrail)")),
        "{changes:#?}"
    );
    acct.ok(&["up", "--suffix", "qa"]);

    // Everything as built, and nothing left to do.
    assert_trail_as_built(&acct);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

/// CreateTrail right after the role, the trail bucket's policy and the key's policy: each "not
/// yet" CloudTrail answers (retry.rs, catalogue::CLOUDTRAIL_DELIVERY) is met once, and up
/// converges in one run, showing the wait.
#[test]
fn the_trail_is_made_through_cloudtrails_propagation_answers_in_one_run() {
    let acct = Account::with_stub_packages();
    let answers = [
        ("InvalidCloudWatchLogsRoleArnException", "Access denied. Check the trust relationships for your role."),
        (
            "InvalidCloudWatchLogsLogGroupArnException",
            "Access denied. Verify in IAM that the role has adequate permissions.",
        ),
        ("InsufficientS3BucketPolicyException", "Incorrect S3 bucket policy is detected for bucket: payments-trail"),
        (
            "InsufficientEncryptionPolicyException",
            "Insufficient permissions to access S3 bucket payments-trail or KMS key.",
        ),
    ];
    for (code, message) in answers {
        acct.proxy.answer(Answer::new("cloudtrail:CreateTrail", TRAIL, 1, 400, code, message));
    }
    let run = acct.ok(&["up", "--suffix", "qa"]);
    let answered: Vec<String> = acct.proxy.answered().into_iter().map(|(_, code)| code).collect();
    assert_eq!(answered, answers.map(|(c, _)| c.to_string()).to_vec(), "each answer was given");
    assert!(
        run.stderr.contains("waiting for IAM, S3 and KMS to propagate the trail's role, bucket policy and key policy"),
        "the wait is shown:\n{}",
        run.stderr
    );
    assert_trail_as_built(&acct);

    // An answer that is not "not yet" is not retried: it fails the node, naming it.
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    acct.proxy.clear_answered();
    acct.proxy.answer(Answer::new(
        "cloudtrail:CreateTrail",
        TRAIL,
        1,
        400,
        "InvalidCloudWatchLogsRoleArnException",
        "The role ARN is not valid.",
    ));
    let failed = acct.run(&["up", "--suffix", "qa"]);
    assert_ne!(failed.code, 0);
    assert!(failed.stderr.contains("InvalidCloudWatchLogsRoleArnException"), "{}", failed.stderr);
    assert_eq!(acct.proxy.answered().len(), 1, "tried once");
}
