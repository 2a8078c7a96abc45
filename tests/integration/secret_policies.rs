//! The secrets' resource policies (`secrets.policies`, PCI DSS 3.6.1, 7.2.x, 8.6.x), read back
//! with the SDK: each secret refuses GetSecretValue to every principal but exactly the roles that
//! read it (and the break-glass role, only when given); out-of-band changes named by plan and
//! repaired by up; Secrets Manager's "unsupported principal" answer for a new role retried; a bad
//! --break-glass-role-arn refused before any AWS call.

use super::harness::{Account, Answer};
use serde_json::Value;
use std::collections::BTreeSet;

const DB: &str = "payments/qa/db-master";
const CARD: &str = "payments/qa/card-fingerprint-key";
const BREAK_GLASS: &str = "arn:aws:iam::123456789012:role/ops/break-glass";
const INTRUDER: &str = "arn:aws:iam::123456789012:role/intruder";

fn role_arn(acct: &Account, function: &str) -> String {
    let name = format!("payment-{function}-role-qa");
    acct.block_on(async {
        acct.iam.get_role().role_name(&name).send().await.unwrap().role().unwrap().arn().to_string()
    })
}

/// The secret's resource policy as Secrets Manager holds it.
fn policy(acct: &Account, secret: &str) -> Option<Value> {
    acct.block_on(async {
        let out = acct.secrets.get_resource_policy().secret_id(secret).send().await.unwrap();
        out.resource_policy().map(|p| serde_json::from_str(p).unwrap())
    })
}

/// Who the policy's one Deny of GetSecretValue to everyone else excepts, checked statement by
/// statement as AWS evaluates it.
fn excepted(doc: &Value) -> BTreeSet<String> {
    let statements = doc["Statement"].as_array().expect("a list of statements");
    assert_eq!(statements.len(), 1, "one statement: {doc:#}");
    let s = &statements[0];
    assert_eq!(s["Effect"], "Deny", "{doc:#}");
    assert!(s["Principal"] == "*" || s["Principal"]["AWS"] == "*", "every principal: {doc:#}");
    assert_eq!(s["Action"], "secretsmanager:GetSecretValue", "{doc:#}");
    let condition = s["Condition"].as_object().unwrap();
    assert_eq!(condition.len(), 1, "no other condition narrows the Deny: {doc:#}");
    let arns = &condition["StringNotEquals"]["aws:PrincipalArn"];
    match arns {
        Value::String(one) => BTreeSet::from([one.clone()]),
        Value::Array(many) => many.iter().map(|a| a.as_str().unwrap().to_string()).collect(),
        other => panic!("aws:PrincipalArn {other}"),
    }
}

fn set(arns: &[&str]) -> BTreeSet<String> {
    arns.iter().map(|a| a.to_string()).collect()
}

/// Each secret's policy excepts exactly these roles.
fn assert_readers(acct: &Account, db: &BTreeSet<String>, card: &BTreeSet<String>) {
    assert_eq!(&excepted(&policy(acct, DB).expect("db-master has a policy")), db, "who reads {DB}");
    assert_eq!(&excepted(&policy(acct, CARD).expect("the card key has a policy")), card, "who reads {CARD}");
}

#[test]
fn each_secret_is_read_only_by_the_roles_that_need_it_and_drift_is_repaired() {
    let acct = Account::with_stub_packages();
    // Right after the roles were made, Secrets Manager may not accept them yet (terraform
    // secretsmanager/secret_policy.go): up retries and converges in one run.
    acct.proxy.answer(Answer::new(
        "secretsmanager:PutResourcePolicy",
        "db-master",
        1,
        400,
        "MalformedPolicyDocumentException",
        "This resource policy contains an unsupported principal.",
    ));
    acct.ok(&["up", "--suffix", "qa"]);
    let answered = acct.proxy.answered();
    assert!(
        answered
            .iter()
            .any(|(c, code)| c.0 == "secretsmanager:PutResourcePolicy" && code == "MalformedPolicyDocumentException"),
        "the not-yet answer was given: {answered:?}"
    );
    let rotate = role_arn(&acct, "rotate-secret");
    let card_readers: BTreeSet<String> =
        ["validate", "fraud-check", "process"].iter().map(|f| role_arn(&acct, f)).collect();
    assert_readers(&acct, &set(&[&rotate]), &card_readers);
    acct.assert_converged();

    // Out of band: the master's policy deleted, another principal let read the card key.
    let mut widened = policy(&acct, CARD).unwrap();
    acct.block_on(async {
        acct.secrets.delete_resource_policy().secret_id(DB).send().await.unwrap();
        let arns = &mut widened["Statement"][0]["Condition"]["StringNotEquals"]["aws:PrincipalArn"];
        let mut with: Vec<Value> = arns.as_array().cloned().unwrap_or_else(|| vec![arns.clone()]);
        with.push(INTRUDER.into());
        *arns = Value::Array(with);
        acct.secrets.put_resource_policy().secret_id(CARD).resource_policy(widened.to_string()).send().await.unwrap();
    });
    let card_words = card_readers.iter().cloned().collect::<Vec<_>>().join(", ");
    let drifts = acct.planned_update("secrets.policies");
    assert!(
        drifts.contains(&format!(
            "secret {DB} resource policy: none (any principal IAM allows reads it) → GetSecretValue refused to all but {rotate}"
        )),
        "{drifts:#?}"
    );
    assert!(
        drifts.contains(&format!(
            "secret {CARD} resource policy: also lets {INTRUDER} read → GetSecretValue refused to all but {card_words}"
        )),
        "{drifts:#?}"
    );
    acct.ok(&["up", "--suffix", "qa"]);
    assert_readers(&acct, &set(&[&rotate]), &card_readers);
    acct.assert_converged();

    // A weakened statement: the Deny turned into an Allow of everything.
    acct.block_on(async {
        let allow = serde_json::json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow",
            "Principal": { "AWS": "arn:aws:iam::123456789012:root" }, "Action": "secretsmanager:*", "Resource": "*" }] });
        acct.secrets.put_resource_policy().secret_id(DB).resource_policy(allow.to_string()).send().await.unwrap();
    });
    let drifts = acct.planned_update("secrets.policies");
    assert!(
        drifts.contains(&format!(
            "secret {DB} resource policy: does not refuse GetSecretValue to other principals; also allows \
             secretsmanager:* → GetSecretValue refused to all but {rotate}"
        )),
        "{drifts:#?}"
    );
    acct.ok(&["up", "--suffix", "qa"]);
    assert_readers(&acct, &set(&[&rotate]), &card_readers);

    // The break-glass role reads both, only while it is given.
    acct.ok(&["up", "--suffix", "qa", "--break-glass-role-arn", BREAK_GLASS]);
    let mut card_and_break_glass = card_readers.clone();
    card_and_break_glass.insert(BREAK_GLASS.into());
    assert_readers(&acct, &set(&[&rotate, BREAK_GLASS]), &card_and_break_glass);
    acct.assert_converged();
    acct.ok(&["up", "--suffix", "qa", "--break-glass-role-arn", ""]);
    assert_readers(&acct, &set(&[&rotate]), &card_readers);

    // The policies go with the secrets.
    // Only the secrets are asserted here: the destroy's own outcome is the resilience tests'.
    acct.run(&["destroy", "--suffix", "qa", "--yes"]);
    for secret in [DB, CARD] {
        let gone = acct.block_on(async { acct.secrets.describe_secret().secret_id(secret).send().await });
        assert!(gone.is_err(), "{secret} is gone with its policy");
    }
}

#[test]
fn a_bad_break_glass_role_is_refused_before_any_aws_call() {
    let acct = Account::new();
    for (bad, rule) in [
        ("break-glass", "six ':'-separated parts"),
        ("arn:aws:iam::123456789012:user/alice", "role/<name>"),
        ("arn:aws:iam::1234:role/x", "12 digits"),
    ] {
        acct.proxy.clear();
        let run = acct.run(&["up", "--suffix", "qa", "--break-glass-role-arn", bad]);
        assert_ne!(run.code, 0, "{bad} accepted");
        assert!(run.stderr.contains("--break-glass-role-arn") && run.stderr.contains(rule), "{bad}: {}", run.stderr);
        assert!(acct.proxy.calls().is_empty(), "{bad}: no AWS call: {:?}", acct.proxy.calls());
    }
}
