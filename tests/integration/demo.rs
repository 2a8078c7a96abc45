//! `scripts/demo`'s story, run as a user runs it (with the tapctl and packages the tests use, so
//! it does not build again): the stack goes up, payments go through `tapctl local` to a real
//! PostgreSQL, a release is shifted in and promoted, and everything is destroyed. Timing is not
//! asserted (README: Measured); what each step answered is.

use super::harness::packages_dir;
use std::process::Command;

/// The demo's line for one payment: `what -> status by colour vversion  {answer}`.
fn answer<'a>(out: &'a str, what: &str) -> (&'a str, serde_json::Value) {
    let line = out.lines().find(|l| l.starts_with(what)).unwrap_or_else(|| panic!("no line for {what}:\n{out}"));
    let (head, body) = line.split_once("  {").unwrap_or_else(|| panic!("no answer in {line}"));
    let served = head.split("-> ").nth(1).unwrap_or_else(|| panic!("no status in {line}")).trim();
    (served, serde_json::from_str(&format!("{{{body}")).unwrap_or_else(|e| panic!("{e}: {line}")))
}

#[test]
fn the_demo_takes_payments_releases_to_green_shifts_promotes_and_destroys() {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo"))
        .env("DEMO_TAPCTL", env!("CARGO_BIN_EXE_tapctl"))
        .env("DEMO_PACKAGES", packages_dir())
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("TAPCTL_STATE")
        .env_remove("TAPCTL_SUFFIX")
        .output()
        .expect("scripts/demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    assert!(stdout.contains(r#"{"applied":[1,2,3],"schema_version":3}"#), "the migrator ran:\n{stdout}");
    let (served, approved) = answer(&stdout, "a valid card");
    assert_eq!(served, "201 by blue v1");
    assert_eq!((approved["status"].as_str(), approved["card"]["last4"].as_str()), (Some("approved"), Some("4242")));
    let (_, declined) = answer(&stdout, "a card failing its check digit");
    assert_eq!((declined["status"].as_str(), declined["reasons"][0].as_str()), (Some("declined"), Some("luhn_failed")));
    let (_, review) = answer(&stdout, "1,500.00 USD");
    assert_eq!(review["status"], "review");
    let (served, replay) = answer(&stdout, "order-1 again");
    assert_eq!(served, "200 by blue v1", "a replay is answered from the record");
    assert_eq!(replay["transaction_id"], approved["transaction_id"]);
    // No full card number reaches the demo's output (it prints what tapctl and the API answered).
    assert!(!stdout.contains("4242424242424242") && !stdout.contains("5555555555554444"), "{stdout}");

    // The release: up updates the four functions (green), 10 % goes to green, then all of it.
    assert!(stdout.contains("up: 0 created, 4 updated"), "{stdout}");
    let split = stdout.lines().find(|l| l.starts_with("demo: 100 payments with 10 % shifted")).expect("the split");
    let green: u32 =
        split.split(", ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).expect(split);
    // Binomial(100, 0.1): at least 1 and at most 30 fail a correct split about once in 30,000 runs.
    assert!((1..=30).contains(&green), "{split}");
    let (served, _) = answer(&stdout, "after the promotion");
    assert_eq!(served, "201 by green v2");
    assert!(stdout.contains("destroy: 45 deleted, 1 already absent"), "{stdout}");
}
