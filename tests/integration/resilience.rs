//! Crash safety and locking: a run killed at any moment is finished by running it again, with
//! exactly one of every resource; two runs on one suffix never interleave.

use super::harness::Account;
use super::readback::inventory;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

fn assert_exactly_one_stack(acct: &Account, suffix: &str) {
    let inv = inventory(acct, suffix);
    let count = |k: &str| inv[k].len();
    let want = [
        ("vpc", 1),
        ("subnet", 9),
        ("nat", 1),
        ("eip", 1),
        ("igw", 1),
        ("kms-key", 1),
        ("route-table", 3),
        ("network-acl", 3),
        ("security-group", 2),
        ("vpc-endpoint", 2),
    ];
    for (kind, n) in want {
        assert_eq!(count(kind), n, "suffix {suffix}: {kind}: {:?}", inv[kind]);
    }
}

/// Starts `up` and SIGKILLs it once it has printed `lines` progress lines.
fn kill_after_lines(acct: &Account, suffix: &str, lines: usize) -> bool {
    let mut child =
        acct.tapctl(&["up", "--suffix", suffix]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = 0;
    for line in BufReader::new(stderr).lines() {
        if line.is_err() {
            break;
        }
        seen += 1;
        if seen >= lines {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no signal handler, no state save runs
    let status = child.wait().unwrap();
    !status.success()
}

#[test]
fn sigkill_at_many_moments_of_up_then_up_again_converges_to_exactly_one_of_everything() {
    let acct = Account::new();
    // Early (key/VPC creation), middle (subnets, NAT) and late (route tables, ACLs, endpoints).
    let moments = [2, 5, 9, 14, 20, 28, 37, 47, 58, 70];
    let mut killed = 0;
    for (i, lines) in moments.iter().enumerate() {
        let suffix = format!("kill{i}");
        if kill_after_lines(&acct, &suffix, *lines) {
            killed += 1;
        }
        // A second kill of the re-run, at another moment, before the final run.
        kill_after_lines(&acct, &suffix, lines / 2 + 1);
        acct.ok(&["up", "--suffix", &suffix]);
        assert_exactly_one_stack(&acct, &suffix);
        assert_eq!(acct.run(&["plan", "--suffix", &suffix, "--detailed-exitcode"]).code, 0, "{suffix} not converged");
    }
    assert!(killed >= moments.len() / 2, "most runs must really have been killed mid-way ({killed})");
}

#[test]
fn a_second_command_on_a_locked_suffix_is_refused_naming_the_holder() {
    let acct = Account::new();
    acct.proxy.set_delay(Duration::from_millis(150));
    let mut first =
        acct.tapctl(&["up", "--suffix", "qa"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    let _ = lines.next(); // the first node has started: the lock is held
    let second = acct.run(&["up", "--suffix", "qa"]);
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(second.stderr.contains(&format!("pid {}", first.id())), "{}", second.stderr);
    assert!(second.stderr.contains("`tapctl up`") && second.stderr.contains("since"), "{}", second.stderr);
    // Another suffix is not blocked.
    acct.proxy.set_delay(Duration::ZERO);
    for _ in lines.by_ref() {}
    assert!(first.wait().unwrap().success());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.json")).unwrap())
            .expect("state intact");
    assert_eq!(state["nodes"].as_object().unwrap().len(), 10);
    assert_exactly_one_stack(&acct, "qa");
}

#[test]
fn a_corrupt_state_file_is_refused_and_never_overwritten() {
    let acct = Account::new();
    let path = acct.state_dir.path().join("qa.json");
    std::fs::write(&path, "{\"schema_version\": 1, \"nodes\": ").unwrap();
    let run = acct.run(&["up", "--suffix", "qa"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("corrupt") && run.stderr.contains("qa.json"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"schema_version\": 1, \"nodes\": ");
    assert!(acct.proxy.calls().iter().all(|c| !c.is_mutating()), "nothing may be created");
}

#[test]
fn up_without_a_state_file_adopts_what_exists() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let before = inventory(&acct, "qa");
    std::fs::remove_file(acct.state_dir.path().join("qa.json")).unwrap();
    acct.proxy.clear();
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(inventory(&acct, "qa"), before, "no new resource ids");
    assert!(acct.proxy.calls().iter().all(|c| !c.is_mutating()), "adoption creates nothing: {:?}", acct.proxy.calls());
}
