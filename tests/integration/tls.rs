//! TLS 1.2 or newer for the API's clients (PCI DSS 4.2.1), read back with the SDK: the REST API's
//! security policy and endpoint access mode after `up`; weakened out of band, named by plan and
//! repaired by up.

use super::harness::Account;
use aws_sdk_apigateway::types::{Op, PatchOperation};
use serde_json::Value;

const POLICY: &str = "SecurityPolicy_TLS13_1_2_2021_06";

fn outputs(acct: &Account) -> Value {
    serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.outputs.json")).unwrap()).unwrap()
}

/// The API's (security policy, endpoint access mode) as API Gateway holds them.
fn tls(acct: &Account, api: &str) -> (Option<String>, Option<String>) {
    acct.block_on(async {
        let a = acct.apigateway.get_rest_api().rest_api_id(api).send().await.unwrap();
        (a.security_policy().map(|p| p.as_str().to_string()), a.endpoint_access_mode().map(|m| m.as_str().to_string()))
    })
}

/// The drifts plan names for api.rest, each "field: current → wanted".
fn planned(acct: &Account) -> Vec<String> {
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode", "--json"]);
    assert_eq!(plan.code, 2, "plan sees a change:\n{}\n{}", plan.stdout, plan.stderr);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let n = plan["resources"].as_array().unwrap().iter().find(|n| n["node"] == "api.rest").unwrap().clone();
    n["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}: {} → {}",
                c["field"].as_str().unwrap(),
                c["current"].as_str().unwrap(),
                c["wanted"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn the_api_accepts_only_tls_1_2_or_newer_and_a_weakened_policy_is_repaired() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    let out = outputs(&acct);
    let api = out["api_id"].as_str().unwrap().to_string();
    assert_eq!(tls(&acct, &api), (Some(POLICY.to_string()), Some("STRICT".to_string())));
    assert_eq!(
        out["api_url"].as_str(),
        Some(format!("https://{api}.execute-api.us-east-1.amazonaws.com/live").as_str()),
        "without a custom domain clients use the execute-api URL"
    );

    // Out of band: back to AWS's default for a regional API, TLS 1.0 accepted.
    acct.block_on(async {
        let op = |path: &str, value: &str| PatchOperation::builder().op(Op::Replace).path(path).value(value).build();
        acct.apigateway
            .update_rest_api()
            .rest_api_id(&api)
            .patch_operations(op("/securityPolicy", "TLS_1_0"))
            .patch_operations(op("/endpointAccessMode", "BASIC"))
            .send()
            .await
            .unwrap();
    });
    let drifts = planned(&acct);
    for expected in [
        format!("TLS security policy: TLS_1_0 → {POLICY} (TLS 1.2 and 1.3 only)"),
        "endpoint access mode: BASIC → STRICT".to_string(),
    ] {
        assert!(drifts.contains(&expected), "{expected} in {drifts:#?}");
    }
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(tls(&acct, &api), (Some(POLICY.to_string()), Some("STRICT".to_string())), "repaired in place");
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "nothing left to repair:\n{}\n{}", plan.stdout, plan.stderr);
}
