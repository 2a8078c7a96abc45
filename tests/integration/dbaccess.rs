//! Database access (issue 16): process signs in as its own PostgreSQL login through IAM
//! (`rds-db:connect` on exactly that user of exactly this cluster), only rotate-secret's role reads
//! the master secret, and a stack made before the logins moves to them without the master secret
//! lapsing for code that still reads it. Every assertion reads IAM, RDS, Lambda and SSM back.

use super::harness::Account;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const FUNCTIONS: [&str; 4] = ["validate", "fraud-check", "process", "rotate-secret"];
const PROCESS_ROLE: &str = "payment-process-role-qa";
const LOGIN: &str = "payments_process";

fn decode(doc: &str) -> Value {
    serde_json::from_str(&percent_encoding::percent_decode_str(doc).decode_utf8_lossy()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => vec![],
    }
}

/// Every inline policy of a role, by name, as IAM holds it.
fn inline_policies(acct: &Account, role: &str) -> BTreeMap<String, Value> {
    acct.block_on(async {
        let names = acct.iam.list_role_policies().role_name(role).send().await.unwrap();
        let mut out = BTreeMap::new();
        for name in names.policy_names() {
            let p = acct.iam.get_role_policy().role_name(role).policy_name(name).send().await.unwrap();
            out.insert(name.clone(), decode(p.policy_document()));
        }
        out
    })
}

/// (action, resource) of every Allow statement of every inline policy of the role.
fn grants(acct: &Account, role: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for doc in inline_policies(acct, role).values() {
        let statements = match &doc["Statement"] {
            Value::Array(s) => s.clone(),
            one => vec![one.clone()],
        };
        for s in statements.iter().filter(|s| s["Effect"] == "Allow") {
            for a in strings(&s["Action"]) {
                for r in strings(&s["Resource"]) {
                    out.push((a.clone(), r));
                }
            }
        }
    }
    out
}

fn master_secret_arn(acct: &Account) -> String {
    acct.block_on(async {
        let s = acct.secrets.describe_secret().secret_id("payments/qa/db-master").send().await.unwrap();
        s.arn().unwrap().to_string()
    })
}

fn cluster_resource_id(acct: &Account) -> String {
    acct.block_on(async {
        let c = acct.rds.describe_db_clusters().db_cluster_identifier("payment-db-qa").send().await.unwrap();
        c.db_clusters()[0].db_cluster_resource_id().unwrap().to_string()
    })
}

fn user_arn(resource_id: &str) -> String {
    format!("arn:aws:rds-db:us-east-1:123456789012:dbuser:{resource_id}/{LOGIN}")
}

/// Whether the role may read the master secret (any action of Secrets Manager that reveals it).
fn reads_master(acct: &Account, role: &str, master: &str) -> bool {
    grants(acct, role).iter().any(|(a, r)| a == "secretsmanager:GetSecretValue" && (r == master || r == "*"))
}

fn outputs(acct: &Account) -> Value {
    serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.outputs.json")).unwrap()).unwrap()
}

fn process_role_arn() -> String {
    format!("arn:aws:iam::123456789012:role/{PROCESS_ROLE}")
}

#[test]
fn process_signs_in_as_its_own_login_and_only_rotate_secret_reads_the_master_secret() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    let (master, resource_id) = (master_secret_arn(&acct), cluster_resource_id(&acct));
    assert!(resource_id.starts_with("cluster-"), "{resource_id}");
    for f in FUNCTIONS {
        let role = format!("payment-{f}-role-qa");
        let granted = grants(&acct, &role);
        assert_eq!(reads_master(&acct, &role, &master), f == "rotate-secret", "{role}: {granted:?}");
        assert!(
            !granted.iter().any(|(_, r)| r == &master) || f == "rotate-secret",
            "{role} names the master secret: {granted:?}"
        );
        let connect: Vec<&String> = granted.iter().filter(|(a, _)| a.starts_with("rds-db:")).map(|(_, r)| r).collect();
        let invoke: Vec<&String> = granted.iter().filter(|(a, _)| a.starts_with("lambda:")).map(|(_, r)| r).collect();
        if f == "process" {
            assert_eq!(connect, vec![&user_arn(&resource_id)], "exactly its login on exactly this cluster");
            let aliases: Vec<String> = ["blue", "green"]
                .iter()
                .map(|a| format!("arn:aws:lambda:us-east-1:123456789012:function:payment-rotate-secret-qa:{a}"))
                .collect();
            assert_eq!(invoke, aliases.iter().collect::<Vec<_>>(), "only the migrator's aliases");
        } else {
            assert!(connect.is_empty() && invoke.is_empty(), "{role}: {granted:?}");
        }
    }
    let policies = inline_policies(&acct, PROCESS_ROLE);
    assert_eq!(policies.keys().collect::<Vec<_>>(), ["payments-db-connect", "payments-least-privilege"]);
    let param = |name: &str| {
        acct.block_on(async {
            let p = acct.ssm.get_parameter().name(format!("/payments/qa/{name}")).send().await.unwrap();
            p.parameter().unwrap().value().unwrap().to_string()
        })
    };
    assert_eq!(param("db/process-login"), LOGIN);
    assert_eq!(param("resources/migrator-function"), "payment-rotate-secret-qa");
    let out = outputs(&acct);
    assert_eq!(out["db_process_login"], LOGIN);
    assert_eq!(out["db_transitional_master_readers"], json!([]), "a new stack has nothing to move");
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

#[test]
fn a_db_connect_policy_deleted_or_widened_out_of_band_is_named_by_plan_and_repaired_by_up() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    let resource_id = cluster_resource_id(&acct);
    let exact = json!({ "Version": "2012-10-17", "Statement": [{ "Sid": "ConnectAsOwnLogin", "Effect": "Allow",
        "Action": ["rds-db:connect"], "Resource": [user_arn(&resource_id)] }] });
    let field = format!("role {PROCESS_ROLE} policy payments-db-connect");
    let wanted = format!("rds-db:connect on dbuser:{resource_id}/{LOGIN}");

    acct.block_on(async {
        acct.iam.delete_role_policy().role_name(PROCESS_ROLE).policy_name("payments-db-connect").send().await.unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    // The policy is the whole of the node: gone, it is made again.
    assert!(plan.stdout.contains("+ iam.db-connect (create)"), "{}", plan.stdout);
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(inline_policies(&acct, PROCESS_ROLE).get("payments-db-connect"), Some(&exact));

    let wide = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "rds-db:connect",
        "Resource": "arn:aws:rds-db:us-east-1:123456789012:dbuser:*/*" }] });
    acct.block_on(async {
        acct.iam
            .put_role_policy()
            .role_name(PROCESS_ROLE)
            .policy_name("payments-db-connect")
            .policy_document(wide.to_string())
            .send()
            .await
            .unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(plan.stdout.contains(&format!("{field}: rds-db:connect on dbuser:*/* → {wanted}")), "{}", plan.stdout);
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(inline_policies(&acct, PROCESS_ROLE).get("payments-db-connect"), Some(&exact));
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

/// What a stack made before the logins held: both aliases of process on a version of code that
/// reads the master secret (published without tapctl's login marker), process's policy granting
/// the master secret and no way to invoke the migrator, and no db-connect policy.
fn make_it_a_stack_from_before_the_logins(acct: &Account, master: &str) -> String {
    let zip = tapctl::package::zip(vec![tapctl::package::Entry {
        name: "bootstrap".into(),
        bytes: b"#!/bin/sh\n# process, reading the master secret\n".to_vec(),
        executable: true,
    }])
    .unwrap();
    let sha = tapctl::package::code_sha256(&zip);
    acct.block_on(async {
        let name = "payment-process-qa";
        let l = &acct.lambda;
        l.update_function_code()
            .function_name(name)
            .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
            .send()
            .await
            .unwrap();
        let v = l.publish_version().function_name(name).description(format!("code {sha} (x86_64)")).send().await;
        let old = v.unwrap().version().unwrap().to_string();
        for alias in ["blue", "green"] {
            l.update_alias().function_name(name).name(alias).function_version(&old).send().await.unwrap();
        }
        let p = acct.iam.get_role_policy().role_name(PROCESS_ROLE).policy_name("payments-least-privilege").send();
        let mut doc = decode(p.await.unwrap().policy_document());
        let statements = doc["Statement"].as_array_mut().unwrap();
        statements.retain(|s| s["Sid"] != "InvokeMigrator");
        statements.push(json!({ "Sid": "DatabaseCredentials", "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"], "Resource": [master] }));
        acct.iam
            .put_role_policy()
            .role_name(PROCESS_ROLE)
            .policy_name("payments-least-privilege")
            .policy_document(doc.to_string())
            .send()
            .await
            .unwrap();
        acct.iam.delete_role_policy().role_name(PROCESS_ROLE).policy_name("payments-db-connect").send().await.unwrap();
        old
    })
}

fn process_aliases(acct: &Account) -> (String, String) {
    acct.block_on(async {
        let get = |a: &'static str| acct.lambda.get_alias().function_name("payment-process-qa").name(a).send();
        let (b, g) = (get("blue").await.unwrap(), get("green").await.unwrap());
        (b.function_version().unwrap().to_string(), g.function_version().unwrap().to_string())
    })
}

#[test]
fn a_stack_made_before_the_logins_keeps_the_master_secret_for_process_only_while_an_alias_runs_old_code() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    let master = master_secret_arn(&acct);
    let old = make_it_a_stack_from_before_the_logins(&acct, &master);

    // The release of the logins: the idle colour (green) gets login code; blue, live, still runs
    // the old code, which must keep reading the master secret.
    acct.ok(&["up", "--suffix", "qa"]);
    let (blue, green) = process_aliases(&acct);
    assert_eq!(blue, old, "up never moves the live colour");
    assert_ne!(green, old, "the idle colour runs login code");
    assert!(reads_master(&acct, PROCESS_ROLE, &master), "the live colour still reads the master secret");
    assert!(inline_policies(&acct, PROCESS_ROLE).contains_key("payments-db-connect"), "and may sign in already");
    assert_eq!(outputs(&acct)["db_transitional_master_readers"], json!([process_role_arn()]));
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0, "a settled transition");

    // Login code goes live; blue keeps the old code as the way back, so the grant stays.
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10"]);
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "100"]);
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(process_aliases(&acct).0, old, "the way back");
    assert!(reads_master(&acct, PROCESS_ROLE, &master), "a rollback to blue must still reach the database");
    assert_eq!(outputs(&acct)["db_transitional_master_readers"], json!([process_role_arn()]));

    // The next release moves blue too (done here as that release's up would): no alias runs old
    // code, and the first up after that removes the grant.
    acct.block_on(async {
        let l = &acct.lambda;
        l.update_alias()
            .function_name("payment-process-qa")
            .name("blue")
            .function_version(&green)
            .send()
            .await
            .unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    let drift = format!(
        "role {PROCESS_ROLE} policy payments-least-privilege master secret read: kept for code before the database \
         logins → absent: every alias of process runs login code"
    );
    assert!(plan.stdout.contains(&drift), "{}", plan.stdout);
    acct.ok(&["up", "--suffix", "qa"]);
    assert!(!reads_master(&acct, PROCESS_ROLE, &master), "{:?}", grants(&acct, PROCESS_ROLE));
    assert!(!grants(&acct, PROCESS_ROLE).iter().any(|(_, r)| r == &master), "process's policies name no master secret");
    assert_eq!(outputs(&acct)["db_transitional_master_readers"], json!([]));
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}
