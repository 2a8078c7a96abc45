//! Crash safety, faults and locking: a run killed at any moment is finished by running it
//! again, with exactly one of every resource; throttling, 5xx and dropped connections are
//! absorbed; pending resources are waited for within limits; two runs on one suffix never
//! interleave, with local or remote state.

use super::harness::{Account, Fault, NODES};
use super::readback::{inventory, leftovers};
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub fn assert_exactly_one_stack(acct: &Account, suffix: &str) {
    let inv = inventory(acct, suffix);
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
        ("default-security-group", 1),
        ("flow-log", 1),
        ("vpc-endpoint", 2),
        ("table", 1),
        ("bucket", 3),
        ("topic", 1),
        ("log-group", 12),
        ("secret", 2),
        ("parameter", 23),
        ("iam-role", 6),
        ("db-connect-policy", 1),
        ("function", 4),
        ("rest-api", 1),
        ("alarm", 23),
        ("dashboard", 1),
        ("db-cluster", 1),
        ("db-instance", 2),
        ("db-subnet-group", 1),
        ("db-parameter-group", 1),
        ("db-event-subscription", 2),
        ("events-rule", 1),
        ("trail", 1),
        ("metric-filter", 9),
        ("web-acl", 1),
        ("backup-vault", 1),
        ("backup-plan", 1),
        ("backup-role", 1),
    ];
    for (kind, n) in want {
        assert_eq!(inv[kind].len(), n, "suffix {suffix}: {kind}: {:?}", inv[kind]);
    }
}

/// Starts `tapctl <args>` and SIGKILLs it once it has printed `lines` progress lines.
/// Returns whether it was really killed before finishing.
fn kill_after_lines(acct: &Account, args: &[&str], lines: usize) -> bool {
    let mut child = acct.tapctl(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
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
    let killed = !child.wait().unwrap().success();
    acct.proxy.wait_idle();
    killed
}

fn seed() -> u64 {
    let seed = std::env::var("TAPCTL_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261124);
    eprintln!("random moments from seed {seed} (TAPCTL_TEST_SEED replays them)");
    seed
}

#[test]
fn sigkill_at_thirty_random_moments_of_up_then_up_again_converges_to_exactly_one_of_everything() {
    let acct = Account::with_stub_packages();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    // Moments spread over the whole run, however many nodes the stack has: as many as a full
    // up prints lines.
    let full = acct.ok(&["up", "--suffix", "qa"]).stderr.lines().count();
    assert!(full > 200, "a full up prints a line per step ({full})");
    let mut killed = 0;
    for i in 0..30 {
        // Each round starts from an empty account, so the kill lands in a run that creates.
        acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
        if kill_after_lines(&acct, &["up", "--suffix", "qa"], rng.random_range(1..=full)) {
            killed += 1;
        }
        if i % 2 == 1 {
            // Every other round the re-run is killed too, part-way through its repair.
            kill_after_lines(&acct, &["up", "--suffix", "qa"], rng.random_range(1..=40));
        }
        acct.ok(&["up", "--suffix", "qa"]);
        assert_exactly_one_stack(&acct, "qa");
    }
    assert!(killed >= 20, "most runs must really have been killed mid-way ({killed} of 30)");
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert_eq!(leftovers(&acct, "qa"), Vec::<String>::new());
}

#[test]
fn sigkill_at_thirty_random_moments_of_destroy_then_destroy_again_leaves_nothing() {
    let acct = Account::with_stub_packages();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed() + 1);
    acct.ok(&["up", "--suffix", "qa"]);
    let full = acct.ok(&["destroy", "--suffix", "qa", "--yes"]).stderr.lines().count();
    assert!(full > 40, "a full destroy prints a line per step ({full})");
    let mut killed = 0;
    for _ in 0..30 {
        acct.ok(&["up", "--suffix", "qa"]);
        let lines = rng.random_range(1..=full);
        if kill_after_lines(&acct, &["destroy", "--suffix", "qa", "--yes"], lines) {
            killed += 1;
        }
        acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
        assert_eq!(leftovers(&acct, "qa"), Vec::<String>::new());
    }
    assert!(killed >= 20, "most runs must really have been killed mid-way ({killed} of 30)");
}

#[test]
fn with_ten_percent_of_calls_failing_up_plan_and_destroy_converge_with_bounded_retries() {
    let acct = Account::with_stub_packages();
    // The same work without faults, for the extra time (after a first run that warms moto up).
    acct.ok(&["up", "--suffix", "warm"]);
    let clean_started = Instant::now();
    let clean_run = acct.ok(&["up", "--suffix", "clean", "--json"]);
    let clean = clean_started.elapsed();
    let clean_report: serde_json::Value = serde_json::from_str(&clean_run.stdout).unwrap();
    let clean_calls = clean_report["cost"]["aws_calls"].as_u64().unwrap();

    acct.proxy.set_faults(0.10, seed());
    let started = Instant::now();
    let up = acct.ok(&["up", "--suffix", "qa", "--json"]);
    let faulty = started.elapsed();
    let report: serde_json::Value = serde_json::from_str(&up.stdout).unwrap();
    let injected = acct.proxy.injected();
    assert!(injected.len() >= 5, "too few faults injected to prove anything: {}", injected.len());
    let retried = report["cost"]["retried_attempts"].as_u64().unwrap();
    let calls = report["cost"]["aws_calls"].as_u64().unwrap();
    let faults = injected.len() as u64;
    // Bounded: no attempt is retried without a fault behind it, and the faults cost at most a
    // node's re-observation each (a fault the SDK cannot classify — a 429 on a HEAD has no body —
    // is retried by the walker, which observes the node again).
    assert!(retried <= faults, "{retried} retried attempts for {faults} faults: {injected:?}");
    assert!(retried >= faults / 2, "most faults are absorbed by the SDK's own retries: {retried} of {faults}");
    assert!(calls + retried <= clean_calls + 10 * faults, "{calls} calls + {retried} retries vs {clean_calls} clean");
    eprintln!(
        "up with 10 % faults: {} faults ({} resets), {retried} retried attempts, {calls} calls vs {clean_calls} clean, {:.1}s vs {:.1}s clean (+{:.1}s)",
        injected.len(),
        injected.iter().filter(|(_, f)| *f == Fault::Reset).count(),
        faulty.as_secs_f64(),
        clean.as_secs_f64(),
        faulty.as_secs_f64() - clean.as_secs_f64()
    );
    assert_exactly_one_stack(&acct, "qa");

    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    acct.proxy.set_faults(0.0, 0);
    assert_eq!(leftovers(&acct, "qa"), Vec::<String>::new());
    assert_exactly_one_stack(&acct, "clean");
}

#[test]
fn a_pending_nat_gateway_is_waited_for_visibly_the_wait_gives_up_at_its_limit_and_the_next_up_resumes() {
    let acct = Account::new();
    acct.proxy.set_pending("DescribeNatGateways", 10_000);
    let started = Instant::now();
    let run = acct.run(&["up", "--suffix", "qa", "--max-wait", "3"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(run.stderr.contains("waiting for NAT gateway") && run.stderr.contains("state pending"), "{}", run.stderr);
    assert!(run.stderr.contains("[WaitTimeout]") && run.stderr.contains("re-run"), "{}", run.stderr);
    assert!(run.stderr.contains("skipped: network.route-tables"), "dependants are skipped: {}", run.stderr);
    let nat = inventory(&acct, "qa")["nat"].clone();
    assert_eq!(nat.len(), 1);

    acct.proxy.set_pending("DescribeNatGateways", 3);
    let resumed = acct.ok(&["up", "--suffix", "qa"]);
    assert!(resumed.stderr.contains("waiting for NAT gateway"), "{}", resumed.stderr);
    assert_eq!(inventory(&acct, "qa")["nat"], nat, "the same NAT gateway, not a second one");
    assert_exactly_one_stack(&acct, "qa");
}

#[test]
fn a_creating_aurora_cluster_and_its_instances_are_waited_for_visibly() {
    let acct = Account::new();
    acct.proxy.set_pending("DescribeDBClusters", 3);
    acct.proxy.set_pending("DescribeDBInstances", 3);
    let run = acct.ok(&["up", "--suffix", "qa"]);
    assert!(
        run.stderr.contains("waiting for Aurora cluster payment-db-qa to be ready: status creating"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("waiting for Aurora instances"), "{}", run.stderr);
    assert_exactly_one_stack(&acct, "qa");
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
    acct.proxy.set_delay(Duration::ZERO);
    for _ in lines.by_ref() {}
    assert!(first.wait().unwrap().success());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.json")).unwrap())
            .expect("state intact");
    assert_eq!(state["nodes"].as_object().unwrap().len(), NODES);
    assert_exactly_one_stack(&acct, "qa");
}

fn make_bucket(acct: &Account, bucket: &str) {
    acct.block_on(async { acct.s3.create_bucket().bucket(bucket).send().await.unwrap() });
}

fn s3_text(acct: &Account, bucket: &str, key: &str) -> Option<String> {
    acct.block_on(async {
        let out = acct.s3.get_object().bucket(bucket).key(key).send().await.ok()?;
        Some(String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap())
    })
}

#[test]
fn remote_state_in_s3_is_shared_locked_and_left_clean() {
    let acct = Account::new();
    make_bucket(&acct, "team-state");
    fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [args, &["--state", "s3://team-state/tapctl"][..]].concat()
    }

    acct.ok(&with(&["up", "--suffix", "qa"]));
    let state: serde_json::Value =
        serde_json::from_str(&s3_text(&acct, "team-state", "tapctl/qa.json").unwrap()).unwrap();
    assert_eq!(state["nodes"].as_object().unwrap().len(), NODES);
    assert!(s3_text(&acct, "team-state", "tapctl/qa.outputs.json").unwrap().contains("vpc_id"));
    assert!(s3_text(&acct, "team-state", "tapctl/qa.lock").is_none(), "the lock is released at the end");
    assert!(!acct.state_dir.path().join("qa.json").exists(), "nothing is written locally");

    // Another run, with no local state at all, sees the converged stack through S3.
    let run = acct.run(&with(&["plan", "--suffix", "qa", "--detailed-exitcode"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!acct.state_dir.path().join("qa.json").exists());

    // A writer holds the lock (a watched shift, until interrupted): another writer is refused naming it,
    // a reader reads the state beside it and names it too.
    let mut first = acct
        .tapctl(&with(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10", "--watch", "1h", "--poll", "1s"]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("baking:") {
            break;
        }
    }
    let second = acct.run(&with(&["up", "--suffix", "qa"]));
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())) && second.stderr.contains("lease"),
        "{}",
        second.stderr
    );
    let reader = acct.run(&with(&["status", "--suffix", "qa"]));
    assert_eq!(reader.code, 0, "{}", reader.stderr);
    assert!(reader.stderr.contains(&format!("pid {}", first.id())) && reader.stderr.contains("holds the lock"));
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(first.id() as i32, libc::SIGINT) }, 0);
    for _ in lines.by_ref() {}
    assert_eq!(first.wait().unwrap().code(), Some(130));
    assert!(s3_text(&acct, "team-state", "tapctl/qa.lock").is_none(), "an interrupted run releases the lock");
    acct.ok(&with(&["shift", "--suffix", "qa", "--to", "green", "--weight", "0"]));
    let state: serde_json::Value =
        serde_json::from_str(&s3_text(&acct, "team-state", "tapctl/qa.json").unwrap()).unwrap();
    assert_eq!(state["nodes"].as_object().unwrap().len(), NODES, "state intact");

    acct.ok(&with(&["destroy", "--suffix", "qa", "--yes"]));
    assert!(s3_text(&acct, "team-state", "tapctl/qa.json").is_none());
    assert_eq!(leftovers(&acct, "qa"), Vec::<String>::new());
}

/// The lease is long enough that the blocked run sees it live however slow this machine is (the
/// killed run may spend seconds on hashing packages and delayed calls before it is killed), and
/// the test then waits until the instant the lock itself records as its expiry — never a guess at
/// how long the steps before took. (A 2-second lease raced the clock and failed on a new machine.)
#[test]
fn a_remote_lock_left_by_a_killed_run_expires_with_its_lease() {
    const LEASE_SECONDS: i64 = 30;
    let acct = Account::new();
    make_bucket(&acct, "team-state");
    acct.proxy.set_delay(Duration::from_millis(100));
    let mut cmd = acct.tapctl(&["up", "--suffix", "qa", "--state", "s3://team-state"]);
    cmd.env("TAPCTL_REMOTE_LOCK_LEASE_SECONDS", LEASE_SECONDS.to_string());
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let _ = BufReader::new(child.stderr.take().unwrap()).lines().next();
    child.kill().unwrap();
    child.wait().unwrap();
    acct.proxy.set_delay(Duration::ZERO);
    let lock: serde_json::Value =
        serde_json::from_str(&s3_text(&acct, "team-state", "qa.lock").expect("the killed run's lock is still there"))
            .unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(lock["expires"].as_str().expect("the lock records its lease"))
        .unwrap()
        .with_timezone(&chrono::Utc);
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::zero() && left <= chrono::Duration::seconds(LEASE_SECONDS),
        "the lease runs {LEASE_SECONDS} s from the lock's last write: {lock}"
    );
    let blocked = acct.run(&["up", "--suffix", "qa", "--state", "s3://team-state"]);
    if chrono::Utc::now() < expires {
        assert_eq!(blocked.code, 1, "a live lease blocks: {}", blocked.stderr);
        assert!(blocked.stderr.contains("lease"), "{}", blocked.stderr);
    }
    let wait = expires - chrono::Utc::now() + chrono::Duration::milliseconds(500);
    std::thread::sleep(wait.to_std().unwrap_or_default());
    acct.ok(&["up", "--suffix", "qa", "--state", "s3://team-state"]);
    assert_exactly_one_stack(&acct, "qa");
}

#[test]
fn a_corrupt_state_file_is_refused_never_overwritten_and_the_last_good_one_is_kept() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    acct.ok(&["up", "--suffix", "qa"]);
    let path = acct.state_dir.path().join("qa.json");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, "{\"schema_version\": 1, \"nodes\": ").unwrap();
    acct.proxy.clear();
    let run = acct.run(&["up", "--suffix", "qa"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("corrupt") && run.stderr.contains("qa.json.bak"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"schema_version\": 1, \"nodes\": ");
    assert!(acct.proxy.calls().iter().all(|c| !c.is_mutating()), "nothing may be changed");
    let backup: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.json.bak")).unwrap()).unwrap();
    let good: serde_json::Value = serde_json::from_str(&good).unwrap();
    assert_eq!(backup["nodes"], good["nodes"], "the last good state is kept beside it");
}

#[test]
fn after_losing_the_state_up_adopts_everything_and_destroy_discover_removes_everything() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let before = inventory(&acct, "qa");
    for f in ["qa.json", "qa.json.bak", "qa.outputs.json"] {
        let _ = std::fs::remove_file(acct.state_dir.path().join(f));
    }
    acct.proxy.clear();
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(inventory(&acct, "qa"), before, "no new resource ids");
    assert!(acct.proxy.calls().iter().all(|c| !c.is_mutating()), "adoption creates nothing: {:?}", acct.proxy.calls());

    for f in ["qa.json", "qa.json.bak", "qa.outputs.json"] {
        let _ = std::fs::remove_file(acct.state_dir.path().join(f));
    }
    acct.ok(&["destroy", "--suffix", "qa", "--yes", "--discover"]);
    assert_eq!(leftovers(&acct, "qa"), Vec::<String>::new());
}
