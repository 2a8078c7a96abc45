//! The graph is the data flow: what does not read a slow resource does not wait for it.

use super::harness::Account;

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
    assert!(text.contains("functions.lambdas\n  reads  iam.roles: role_arns"), "{text}");
    assert!(text.contains("  after  network.function-interfaces: "), "{text}");
    let dot =
        std::process::Command::new(env!("CARGO_BIN_EXE_tapctl")).args(["graph", "--format", "dot"]).output().unwrap();
    assert!(dot.status.success());
    let dot = String::from_utf8(dot.stdout).unwrap();
    assert!(dot.starts_with("digraph tapctl {") && dot.trim_end().ends_with('}'), "{dot}");
}
