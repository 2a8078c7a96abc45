//! TLS 1.2 or newer for the API's clients (PCI DSS 4.2.1), read back with the SDK: the REST API's
//! security policy and endpoint access mode after `up`; weakened out of band, named by plan and
//! repaired by up. With `--domain`: the custom domain, its mapping and the disabled default
//! endpoint, through a "not yet" of the new domain, drift, removal and destroy.

use super::harness::{Account, Answer};
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
    let drifts = acct.planned_update("api.rest");
    for expected in [
        format!("TLS security policy: TLS_1_0 → {POLICY} (TLS 1.2 and 1.3 only)"),
        "endpoint access mode: BASIC → STRICT".to_string(),
    ] {
        assert!(drifts.contains(&expected), "{expected} in {drifts:#?}");
    }
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(tls(&acct, &api), (Some(POLICY.to_string()), Some("STRICT".to_string())), "repaired in place");
    acct.assert_converged();
}

const DOMAIN: &str = "pay.example.com";
const CERT: &str = "arn:aws:acm:us-east-1:123456789012:certificate/1f2e3d4c-0000-4000-8000-00000000abcd";
/// api::domain::stage_marker(true): the stage update that made the disabled endpoint take effect.
const DISABLED_MARKER: &str = "tapctl: default execute-api endpoint disabled; clients use the custom domain";

/// The domain as API Gateway holds it: (certificate, policy, access mode, endpoint types, Stack tag).
type DomainView = (Option<String>, Option<String>, Option<String>, Vec<String>, Option<String>);

fn domain(acct: &Account) -> Option<DomainView> {
    acct.block_on(async {
        let d = acct.apigateway.get_domain_name().domain_name(DOMAIN).send().await.ok()?;
        Some((
            d.regional_certificate_arn().map(str::to_string),
            d.security_policy().map(|p| p.as_str().to_string()),
            d.endpoint_access_mode().map(|m| m.as_str().to_string()),
            d.endpoint_configuration()
                .map(|c| c.types().iter().map(|t| t.as_str().to_string()).collect())
                .unwrap_or_default(),
            d.tags().and_then(|t| t.get("Stack").cloned()),
        ))
    })
}

/// Base path → (API, stage) of the domain.
fn mappings(acct: &Account) -> Vec<(String, String, String)> {
    acct.block_on(async {
        let m = acct.apigateway.get_base_path_mappings().domain_name(DOMAIN).send().await.unwrap();
        m.items()
            .iter()
            .map(|m| {
                (
                    m.base_path().unwrap_or_default().to_string(),
                    m.rest_api_id().unwrap_or_default().to_string(),
                    m.stage().unwrap_or_default().to_string(),
                )
            })
            .collect()
    })
}

/// (default endpoint disabled, the live stage's description).
fn endpoint(acct: &Account, api: &str) -> (bool, Option<String>) {
    acct.block_on(async {
        let a = acct.apigateway.get_rest_api().rest_api_id(api).send().await.unwrap();
        let s = acct.apigateway.get_stage().rest_api_id(api).stage_name("live").send().await.unwrap();
        (a.disable_execute_api_endpoint(), s.description().map(str::to_string))
    })
}

#[test]
fn with_a_custom_domain_clients_use_it_over_tls_1_2_and_the_default_endpoint_is_disabled() {
    let acct = Account::with_stub_packages();
    // AWS's "not yet" of a domain made moments ago (catalogue::APIGATEWAY_NEW_DOMAIN).
    acct.proxy.answer(Answer::new(
        "apigateway:POST /domainnames/pay.example.com/basepathmappings",
        "",
        1,
        400,
        "BadRequestException",
        "Invalid domain name identifier specified",
    ));
    let with_domain = ["up", "--suffix", "qa", "--domain", DOMAIN, "--certificate-arn", CERT];
    let run = acct.ok(&with_domain);
    assert_eq!(acct.proxy.answered().len(), 1, "the new domain's not-yet was met and retried");
    assert!(run.stderr.contains("waiting for API Gateway to propagate the new custom domain"), "{}", run.stderr);

    let out = outputs(&acct);
    let api = out["api_id"].as_str().unwrap().to_string();
    assert_eq!(
        domain(&acct),
        Some((
            Some(CERT.to_string()),
            Some(POLICY.to_string()),
            Some("STRICT".to_string()),
            vec!["REGIONAL".to_string()],
            Some("TapStackqa".to_string())
        ))
    );
    assert_eq!(mappings(&acct), vec![("(none)".to_string(), api.clone(), "live".to_string())]);
    assert_eq!(endpoint(&acct, &api), (true, Some(DISABLED_MARKER.to_string())), "disabled, and applied to the stage");
    let target = acct.block_on(async {
        let d = acct.apigateway.get_domain_name().domain_name(DOMAIN).send().await.unwrap();
        d.regional_domain_name().unwrap().to_string()
    });
    assert_eq!(out["api_client_url"].as_str(), Some("https://pay.example.com/"), "{out:#}");
    assert_eq!(out["api_domain_target"].as_str(), Some(target.as_str()), "where DNS must point: {out:#}");

    // Out of band: the mapping removed, the policy weakened, the domain made edge-optimized, the
    // default endpoint back on.
    acct.block_on(async {
        let op = |path: &str, value: &str| PatchOperation::builder().op(Op::Replace).path(path).value(value).build();
        let g = &acct.apigateway;
        g.delete_base_path_mapping().domain_name(DOMAIN).base_path("(none)").send().await.unwrap();
        g.update_domain_name()
            .domain_name(DOMAIN)
            .patch_operations(op("/securityPolicy", "TLS_1_0"))
            .patch_operations(op("/endpointConfiguration/types/REGIONAL", "EDGE"))
            .send()
            .await
            .unwrap();
        g.update_rest_api()
            .rest_api_id(&api)
            .patch_operations(op("/disableExecuteApiEndpoint", "false"))
            .send()
            .await
            .unwrap();
    });
    let drifts = acct.planned_update("api.domain");
    for expected in [
        format!("domain {DOMAIN} TLS security policy: TLS_1_0 → {POLICY} (TLS 1.2 and 1.3 only)"),
        format!("domain {DOMAIN} endpoint type: EDGE → REGIONAL"),
        format!("domain {DOMAIN} mapping /: missing → {api}/live"),
        "default execute-api endpoint: enabled → disabled".to_string(),
    ] {
        assert!(drifts.contains(&expected), "{expected} in {drifts:#?}");
    }
    acct.ok(&["up", "--suffix", "qa"]);
    let repaired = domain(&acct).unwrap();
    assert_eq!(repaired.1.as_deref(), Some(POLICY), "the recorded --domain is kept and repaired");
    assert_eq!(repaired.3, vec!["REGIONAL".to_string()], "migrated back to a regional endpoint");
    assert_eq!(mappings(&acct), vec![("(none)".to_string(), api.clone(), "live".to_string())]);
    assert_eq!(endpoint(&acct, &api), (true, Some(DISABLED_MARKER.to_string())));
    acct.assert_converged();

    // Another --domain: the new one serves the stage, then the recorded one goes (never left
    // mapped and forgotten).
    const OTHER: &str = "pay2.example.com";
    let exists =
        |name: &str| acct.block_on(async { acct.apigateway.get_domain_name().domain_name(name).send().await.is_ok() });
    acct.ok(&["up", "--suffix", "qa", "--domain", OTHER, "--certificate-arn", CERT]);
    assert!(exists(OTHER) && !exists(DOMAIN), "the replaced domain is deleted");
    assert_eq!(outputs(&acct)["api_domain"].as_str(), Some(OTHER));
    acct.assert_converged();

    // Removed by the settings: the execute-api URL answers again, then the domain goes.
    acct.ok(&["up", "--suffix", "qa", "--domain", "", "--certificate-arn", ""]);
    assert_eq!(domain(&acct), None);
    assert!(!exists(OTHER));
    assert!(!endpoint(&acct, &api).0, "the default endpoint is enabled again");
    let out = outputs(&acct);
    assert_eq!(
        out["api_client_url"].as_str(),
        Some(format!("https://{api}.execute-api.us-east-1.amazonaws.com/live").as_str())
    );
    assert!(out["api_domain"].is_null(), "{out:#}");

    // Back, then destroy through API Gateway's one-per-30-seconds delete quota.
    acct.ok(&with_domain);
    assert!(domain(&acct).is_some());
    acct.proxy.clear_answered();
    acct.proxy.answer(Answer::new(
        "apigateway:DELETE /domainnames/pay.example.com",
        "",
        1,
        429,
        "TooManyRequestsException",
        "Too Many Requests",
    ));
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert_eq!(acct.proxy.answered().len(), 1, "the quota's answer was met");
    assert_eq!(domain(&acct), None, "destroy leaves no domain of the suffix");
}
