//! The graph is the data flow: what does not read a slow resource does not wait for it.

use super::harness::{Account, Answer};
use super::resilience::assert_exactly_one_stack;

#[test]
fn the_four_functions_are_created_while_the_aurora_cluster_is_still_creating() {
    let acct = Account::with_stub_packages();
    // The cluster never leaves `creating` in this run; its wait gives up after 4 s, and the
    // rest of the walk goes on without it.
    acct.proxy.set_pending("DescribeDBClusters", u32::MAX);
    let run = acct.run(&["up", "--suffix", "qa", "--max-wait", "4"]);
    assert_eq!(run.code, 1, "the cluster's wait gave up: {}", run.stderr);
    assert!(run.stderr.contains("database.cluster") && run.stderr.contains("status creating"), "{}", run.stderr);

    // Every answer about the cluster in this run said `creating` (the proxy rewrote them all),
    // so whatever was created in it was created while Aurora was not ready: no race with the clock.
    let calls = acct.proxy.calls();
    let creates = calls.iter().filter(|c| c.0 == "lambda:POST /2015-03-31/functions").count();
    assert_eq!(creates, 4, "four CreateFunction calls");
    assert!(calls.iter().any(|c| c.0 == "rds:DescribeDBClusters"), "the cluster was polled");
    for f in ["validate", "fraud-check", "process", "rotate-secret"] {
        let aliases = acct.block_on(async {
            acct.lambda.list_aliases().function_name(format!("payment-{f}-qa")).send().await.unwrap()
        });
        assert_eq!(aliases.aliases().len(), 2, "{f} is deployed and aliased although Aurora is not ready");
    }
    // What reads the cluster, or takes traffic, waited.
    for skipped in ["params.config", "api.rest", "rotation.db-master"] {
        assert!(run.stderr.contains(&format!("skipped: {skipped}")), "{skipped}: {}", run.stderr);
    }

    acct.proxy.set_pending("DescribeDBClusters", 0);
    acct.ok(&["up", "--suffix", "qa"]);
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.stdout);
}

#[test]
fn graph_prints_the_data_flow_as_text_and_dot_without_aws() {
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_tapctl")).args(["graph"]).output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("functions.process\n  reads  iam.roles: role_arns"), "{text}");
    assert!(text.contains("  after  logs.groups: each function logs to its group"), "{text}");
    assert!(
        text.contains("functions.network-interfaces (finalizer: destroy only)\n  after deleting  functions."),
        "{text}"
    );
    assert!(text.contains("  before deleting network.subnets: "), "{text}");
    let dot =
        std::process::Command::new(env!("CARGO_BIN_EXE_tapctl")).args(["graph", "--format", "dot"]).output().unwrap();
    assert!(dot.status.success());
    let dot = String::from_utf8(dot.stdout).unwrap();
    assert!(dot.starts_with("digraph tapctl {") && dot.trim_end().ends_with('}'), "{dot}");
    assert!(dot.contains("\"network.subnets\" -> \"functions.network-interfaces\" [style=dotted"), "{dot}");
}

#[test]
fn one_function_refused_leaves_the_other_three_deployed_and_skips_only_what_needs_it() {
    let acct = Account::with_stub_packages();
    // Not a propagation answer: a real refusal, never retried.
    acct.proxy.answer(Answer::new(
        "lambda:POST /2015-03-31/functions",
        "\"FunctionName\":\"payment-fraud-check-qa\"",
        u32::MAX,
        400,
        "InvalidParameterValueException",
        "Unzipped size must be smaller than 262144000 bytes",
    ));
    let run = acct.run(&["up", "--suffix", "qa"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("error: functions.fraud-check: [InvalidParameterValueException] lambda:CreateFunction"),
        "{}",
        run.stderr
    );
    let creates = acct.proxy.calls().iter().filter(|c| c.0 == "lambda:POST /2015-03-31/functions").count();
    assert_eq!(creates, 4, "three creates and the refused one, tried once: {creates}");
    for f in ["validate", "process", "rotate-secret"] {
        let aliases = acct.block_on(async {
            acct.lambda.list_aliases().function_name(format!("payment-{f}-qa")).send().await.unwrap()
        });
        assert_eq!(aliases.aliases().len(), 2, "{f} created and aliased");
    }
    let missing =
        acct.block_on(async { acct.lambda.get_function().function_name("payment-fraud-check-qa").send().await });
    assert!(missing.is_err(), "fraud-check was refused");
    // The API routes to fraud-check: skipped. Rotation needs only rotate-secret: done.
    assert!(
        run.stderr.contains("skipped: api.rest: not attempted because functions.fraud-check failed"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("skipped: rotation.db-master"), "{}", run.stderr);
    assert!(
        run.stdout.contains(", 1 failed, ") && run.stdout.contains(" skipped ("),
        "skipped is not failed: {}",
        run.stdout
    );
    let secret = acct
        .block_on(async { acct.secrets.describe_secret().secret_id("payments/qa/db-master").send().await.unwrap() });
    assert_eq!(secret.rotation_enabled(), Some(true), "rotation did not wait for fraud-check");

    acct.proxy.clear_answers();
    acct.ok(&["up", "--suffix", "qa"]);
    assert_exactly_one_stack(&acct, "qa");
}

#[test]
fn a_stack_made_before_functions_were_nodes_of_their_own_is_adopted_with_nothing_re_created() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    // Put back what the previous version left: one `functions.lambdas` entry in the state, and
    // that node id in the functions' tags; and the `network.function-interfaces` entry that a
    // node owning nothing recorded.
    let path = acct.state_dir.path().join("qa.json");
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let nodes = state["nodes"].as_object_mut().unwrap();
    let mut arns = serde_json::Map::new();
    for f in ["validate", "fraud-check", "process", "rotate-secret"] {
        let node = nodes.remove(&format!("functions.{f}")).expect("recorded per function");
        arns.insert(f.to_string(), node["outputs"]["function_arn"].clone());
        let arn = node["outputs"]["function_arn"].as_str().unwrap().to_string();
        acct.block_on(async {
            acct.lambda.tag_resource().resource(arn).tags("tap:resource", "functions.lambdas").send().await.unwrap()
        });
    }
    let mut old = nodes["kms.key"].clone();
    old["outputs"] = serde_json::json!({ "function_arns": arns, "versions": {} });
    nodes.insert("functions.lambdas".into(), old.clone());
    old["outputs"] = serde_json::json!({ "network_interface_ids": [] });
    nodes.insert("network.function-interfaces".into(), old);
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();

    acct.proxy.clear();
    acct.ok(&["up", "--suffix", "qa"]);
    let changes: Vec<String> =
        acct.proxy.calls().into_iter().filter(|c| c.is_mutating() && !c.0.contains("/tags/")).map(|c| c.0).collect();
    assert!(changes.is_empty(), "adopted: only the functions' tags were repaired, nothing made: {changes:?}");
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(state["nodes"].get("functions.lambdas").is_none(), "the retired entry is gone");
    assert!(state["nodes"].get("network.function-interfaces").is_none(), "the retired entry is gone");
    assert!(state["nodes"].get("functions.process").is_some());
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.stdout);
    assert_exactly_one_stack(&acct, "qa");
}

#[test]
fn the_stage_is_read_through_its_owner_once_per_run_not_once_per_function() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10"]);
    acct.proxy.clear();
    let status = acct.ok(&["status", "--suffix", "qa", "--json"]);
    let stage_reads = acct
        .proxy
        .calls()
        .iter()
        .filter(|c| c.0.starts_with("apigateway:GET /restapis/") && c.0.ends_with("/stages/live"))
        .count();
    // api.rest reads its stage's configuration; the traffic is read once for the four functions'
    // nodes and the report together.
    assert_eq!(stage_reads, 2, "{:?}", acct.proxy.calls());
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(report["traffic"]["live"], "blue", "{report}");
    assert_eq!(report["traffic"]["canary"]["color"], "green", "{report}");
    assert_eq!(report["traffic"]["canary"]["weight"], 10.0, "{report}");
}
