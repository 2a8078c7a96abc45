//! Compute: the functions' execution roles, read back from the emulator's IAM.

use super::harness::Account;
use serde_json::{json, Value};

const FUNCTIONS: [&str; 4] = ["validate", "fraud-check", "process", "rotate-secret"];

fn decode(doc: &str) -> Value {
    serde_json::from_str(&percent_encoding::percent_decode_str(doc).decode_utf8_lossy()).unwrap()
}

/// The actions that AWS gives no resource-level permission for, and so may name "*".
const STAR_ALLOWED: [&str; 8] = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "secretsmanager:GetRandomPassword",
];

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => vec![],
    }
}

#[test]
fn each_function_gets_a_role_trusting_only_lambda_for_this_account_with_exact_resources() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let (table, topic, key, db_secret, fp_secret) = acct.block_on(async {
        let t = acct.dynamodb.describe_table().table_name("transactions-qa").send().await.unwrap();
        let topic = acct.sns.list_topics().send().await.unwrap().topics()[0].topic_arn().unwrap().to_string();
        let k = acct.kms.describe_key().key_id("alias/payments-qa").send().await.unwrap();
        let secrets = &acct.secrets;
        let secret = |id: &'static str| async move {
            secrets.describe_secret().secret_id(id).send().await.unwrap().arn().unwrap().to_string()
        };
        (
            t.table().unwrap().table_arn().unwrap().to_string(),
            topic,
            k.key_metadata().unwrap().arn().unwrap().to_string(),
            secret("payments/qa/db-master").await,
            secret("payments/qa/card-fingerprint-key").await,
        )
    });
    for f in FUNCTIONS {
        let name = format!("payment-{f}-role-qa");
        let (role, policy, attached, tags) = acct.block_on(async {
            let r = acct.iam.get_role().role_name(&name).send().await.unwrap();
            let p = acct.iam.get_role_policy().role_name(&name).policy_name("payments-least-privilege").send().await;
            let a = acct.iam.list_attached_role_policies().role_name(&name).send().await.unwrap();
            let t = acct.iam.list_role_tags().role_name(&name).send().await.unwrap();
            (r.role().unwrap().clone(), decode(p.unwrap().policy_document()), a.attached_policies().len(), t)
        });
        assert_eq!(
            decode(role.assume_role_policy_document().unwrap()),
            json!({ "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": { "Service": "lambda.amazonaws.com" }, "Action": "sts:AssumeRole",
                "Condition": { "StringEquals": { "aws:SourceAccount": "123456789012" } } }] })
        );
        assert_eq!(attached, 0, "{name}: no managed policy");
        let tags: Vec<_> = tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
        assert!(tags.contains(&("tap:resource".into(), "iam.roles".into())), "{name}: {tags:?}");

        let mut granted: Vec<(String, String)> = Vec::new();
        for s in policy["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow");
            let actions = strings(&s["Action"]);
            let resources = strings(&s["Resource"]);
            for r in &resources {
                if r == "*" {
                    for a in &actions {
                        assert!(STAR_ALLOWED.contains(&a.as_str()), "{name}: {a} on * is not justified");
                    }
                } else {
                    assert!(
                        !r.contains('*')
                            || r.ends_with("/audit/*")
                            || r.ends_with(":log-stream:*")
                            || r.ends_with("/payments/qa/*"),
                        "{name}: wildcard in {r}"
                    );
                }
            }
            if actions.iter().any(|a| a.starts_with("kms:")) {
                assert_eq!(resources, vec![key.clone()], "{name}: the stack's key only");
                assert!(s["Condition"]["StringEquals"]["kms:ViaService"].is_array(), "{name}: kms:ViaService");
            }
            for a in actions {
                for r in &resources {
                    granted.push((a.clone(), r.clone()));
                }
            }
        }
        let has = |a: &str, r: &str| granted.iter().any(|(ga, gr)| ga == a && gr == r);
        let log = format!("arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/payment-{f}-qa:log-stream:*");
        assert!(has("logs:PutLogEvents", &log), "{name}: own log group");
        assert!(has("ssm:GetParametersByPath", "arn:aws:ssm:us-east-1:123456789012:parameter/payments/qa"));
        assert!(!granted.iter().any(|(a, _)| a.ends_with(":*") || a == "*"), "{name}: no action wildcards");
        match f {
            "validate" => {
                assert!(has("secretsmanager:GetSecretValue", &fp_secret));
                assert!(!granted.iter().any(|(a, _)| a.starts_with("dynamodb:") || a.starts_with("s3:")));
            }
            "fraud-check" => {
                assert!(has("dynamodb:Query", &format!("{table}/index/by-card")));
                assert!(!has("dynamodb:PutItem", &table), "fraud-check only reads");
            }
            "process" => {
                assert!(has("dynamodb:PutItem", &table) && has("dynamodb:UpdateItem", &table));
                assert!(has("s3:PutObject", "arn:aws:s3:::payments-audit-123456789012-us-east-1-qa/audit/*"));
                assert!(has("sns:Publish", &topic));
                assert!(has("secretsmanager:GetSecretValue", &db_secret));
            }
            "rotate-secret" => {
                assert!(has("secretsmanager:PutSecretValue", &db_secret));
                assert!(has("secretsmanager:UpdateSecretVersionStage", &db_secret));
                assert!(!has("secretsmanager:GetSecretValue", &fp_secret), "rotation never reads the card key");
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn a_widened_role_is_narrowed_again_by_up() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    acct.block_on(async {
        acct.iam
            .put_role_policy()
            .role_name("payment-validate-role-qa")
            .policy_name("payments-least-privilege")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
            .send()
            .await
            .unwrap();
        acct.iam
            .attach_role_policy()
            .role_name("payment-validate-role-qa")
            .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
            .send()
            .await
            .unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(plan.stdout.contains("policy payments-least-privilege differs"), "{}", plan.stdout);
    assert!(plan.stdout.contains("AdministratorAccess attached out of band"), "{}", plan.stdout);
    acct.ok(&["up", "--suffix", "qa"]);
    acct.block_on(async {
        let p = acct
            .iam
            .get_role_policy()
            .role_name("payment-validate-role-qa")
            .policy_name("payments-least-privilege")
            .send()
            .await
            .unwrap();
        let doc = decode(p.policy_document());
        let statements = doc["Statement"].as_array().unwrap();
        assert!(statements.iter().all(|s| s["Action"] != "*"), "{doc}");
        assert!(statements.iter().any(|s| s["Sid"] == "FingerprintKey"), "the least-privilege policy is back");
        let a = acct.iam.list_attached_role_policies().role_name("payment-validate-role-qa").send().await.unwrap();
        assert!(a.attached_policies().is_empty());
    });
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}
