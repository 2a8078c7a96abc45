//! The operator's experience (issue 14): each finding of the new user's trial as a test that
//! failed before — a refused setting that stuck, commands that needed --suffix, reads blocked by
//! a running `up`, a panic on a closed pipe, a silent Ctrl-C, plan's "create" for what `up`
//! adopts, three JSON shapes, status exit codes, Debug text in human output.

use super::harness::{Account, Run, MADE, NODES};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", run.stdout, run.stderr))
}

fn state_file(acct: &Account, suffix: &str) -> Value {
    let text = std::fs::read_to_string(acct.state_dir.path().join(format!("{suffix}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Lines of a child's stderr as they come, read on a thread, so a test waits for what the
/// command says rather than for a time.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(stderr: ChildStderr) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx, seen: vec![] }
    }

    /// Waits for a line containing `text`; the limit only keeps a broken test from hanging.
    fn wait_for(&mut self, text: &str) -> String {
        loop {
            match self.rx.recv_timeout(Duration::from_secs(300)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("never saw {text:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn rest(mut self) -> String {
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(300)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

fn interrupt(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/output.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("a valid JSON Schema")
}

fn assert_schema(validator: &jsonschema::Validator, what: &str, doc: &Value) {
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{doc:#}");
}

#[test]
fn a_refused_setting_is_not_recorded_and_names_the_value_and_flag_that_keep_the_stack() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let before = acct.proxy.calls().len();
    let refused = acct.run(&["up", "--suffix", "qa", "--vpc-cidr", "10.2.0.0/16"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    for said in ["refusing to replace", "network.vpc", "--vpc-cidr 10.0.0.0/16", "recorded", "cannot replace"] {
        assert!(refused.stderr.contains(said), "{said:?} missing:\n{}", refused.stderr);
    }
    assert!(!refused.stderr.contains("--allow-replace"), "no hint that cannot work: {}", refused.stderr);
    assert!(acct.proxy.calls()[before..].iter().all(|c| !c.is_mutating()), "nothing was changed");
    assert_eq!(state_file(&acct, "qa")["settings"]["vpc_cidr"], "10.0.0.0/16", "the refused value is not recorded");
    // The blocker: every later plain `up` failed. Now it is a no-op.
    let plain = acct.ok(&["up", "--suffix", "qa", "--json"]);
    assert_eq!(json(&plain)["summary"]["none"], NODES, "{}", plain.stdout);
    acct.block_on(async {
        acct.lambda
            .update_function_configuration()
            .function_name("payment-validate-qa")
            .memory_size(1024)
            .send()
            .await
            .unwrap();
    });
    let repaired = json(&acct.ok(&["up", "--suffix", "qa", "--json"]));
    let validate =
        repaired["resources"].as_array().unwrap().iter().find(|r| r["node"] == "functions.validate").unwrap().clone();
    assert_eq!(validate["action"], "update", "{validate:#}");
    assert!(
        validate["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["current"].as_str().is_some_and(|v| v.contains("1024"))),
        "up says what it repaired: {validate:#}"
    );
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);

    // A change that can be applied is applied, recorded, and kept by later plain runs.
    acct.ok(&["up", "--suffix", "qa", "--db-max-acu", "8"]);
    assert_eq!(state_file(&acct, "qa")["settings"]["db_max_acu"], 8.0);
    let max = acct.block_on(async {
        let c = acct.rds.describe_db_clusters().db_cluster_identifier("payment-db-qa").send().await.unwrap();
        c.db_clusters()[0].serverless_v2_scaling_configuration().and_then(|s| s.max_capacity())
    });
    assert_eq!(max, Some(8.0), "AWS holds the new capacity");
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0, "plain plan keeps 8 ACU");
}

#[test]
fn the_design_cards_commands_work_without_a_suffix_and_an_unknown_one_lists_the_known() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    // The only stack in the state location is the one meant.
    assert_eq!(acct.run(&["status"]).code, 0);
    acct.ok(&["shift-traffic", "--to", "green", "--weight", "10"]);
    let status = json(&acct.ok(&["status", "--json"]));
    assert_eq!(status["traffic"]["canary"]["weight"], 10.0, "{status:#}");
    acct.ok(&["shift", "--to", "green", "--weight", "0"]);
    let url = acct.ok(&["outputs", "api_url"]).stdout;
    assert!(url.trim().starts_with("https://") && url.trim().ends_with("/live"), "{url}");

    // A second stack: now the choice must be made, and `use` makes it.
    let mut other = state_file(&acct, "qa");
    other["suffix"] = "pr-1".into();
    other["nodes"] = serde_json::json!({});
    std::fs::write(acct.state_dir.path().join("pr-1.json"), other.to_string()).unwrap();
    let ambiguous = acct.run(&["status"]);
    assert_eq!(ambiguous.code, 2, "{}", ambiguous.stderr);
    assert!(ambiguous.stderr.contains("pr-1, qa") && ambiguous.stderr.contains("tapctl use"), "{}", ambiguous.stderr);
    assert!(acct.ok(&["use", "qa"]).stdout.contains("current stack: qa"));
    assert_eq!(acct.run(&["status"]).code, 0);
    let list = json(&acct.ok(&["list", "--json"]));
    let current: Vec<&Value> = list["stacks"].as_array().unwrap().iter().filter(|s| s["current"] == true).collect();
    assert_eq!((list["stacks"].as_array().unwrap().len(), current[0]["suffix"].as_str()), (2, Some("qa")));

    let unknown = acct.run(&["status", "--suffix", "nosuch"]);
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("no stack 'nosuch'") && unknown.stderr.contains("pr-1, qa"), "{}", unknown.stderr);
    let files: Vec<String> = std::fs::read_dir(acct.state_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!files.iter().any(|f| f.starts_with("nosuch")), "a read leaves nothing behind: {files:?}");

    acct.ok(&["destroy", "--yes"]);
    assert!(!acct.state_dir.path().join("qa.json").exists(), "the current stack (qa) was destroyed");
    assert!(!acct.state_dir.path().join("current").exists(), "a destroyed stack is no longer the current one");
}

#[test]
fn the_default_state_location_is_the_same_from_any_folder() {
    let acct = Account::new();
    let home = tempfile::tempdir().unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let list = |cwd: &std::path::Path| {
        let out = acct
            .tapctl(&["list", "--json"])
            .env_remove("TAPCTL_STATE")
            .env("XDG_STATE_HOME", home.path())
            .current_dir(cwd)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["state"].as_str().unwrap().to_string()
    };
    let expected = home.path().join("tapctl").display().to_string();
    assert_eq!((list(a.path()), list(b.path())), (expected.clone(), expected));
    assert_eq!(std::fs::read_dir(a.path()).unwrap().count(), 0, "nothing is left in the working directory");
}

#[test]
fn reads_go_on_while_a_watched_shift_holds_the_lock_and_ctrl_c_says_where_traffic_stands() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let mut shift = acct
        .tapctl(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10", "--watch", "1h", "--poll", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = Lines::of(shift.stderr.take().unwrap());
    said.wait_for("baking:");

    let status = acct.run(&["status", "--suffix", "qa", "--json"]);
    assert_eq!(status.code, 0, "status reads while the shift holds the lock: {}", status.stderr);
    assert!(status.stderr.contains("holds the lock") && status.stderr.contains("`tapctl shift`"), "{}", status.stderr);
    assert_eq!(json(&status)["lock"]["command"], "shift");
    assert_eq!(acct.run(&["plan", "--suffix", "qa"]).code, 0);
    let blocked = acct.run(&["up", "--suffix", "qa"]);
    assert_eq!(blocked.code, 1);
    assert!(
        blocked.stderr.contains("`tapctl shift`") && blocked.stderr.contains("--lock-timeout"),
        "{}",
        blocked.stderr
    );

    let mut waiting = acct
        .tapctl(&["up", "--suffix", "qa", "--lock-timeout", "1h"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut up_said = Lines::of(waiting.stderr.take().unwrap());
    up_said.wait_for("waiting up to 1h for the lock");

    interrupt(&shift);
    let code = shift.wait().unwrap().code();
    let report = said.rest();
    assert_eq!(code, Some(130), "{report}");
    for line in [
        "interrupted by SIGINT",
        "traffic: blue",
        "green 10 %",
        "roll back: tapctl shift --suffix qa --to green --weight 0",
        "resume: tapctl shift --suffix qa --to green --weight 10",
    ] {
        assert!(report.contains(line), "{line:?} missing:\n{report}");
    }
    assert_eq!(
        waiting.wait().unwrap().code(),
        Some(0),
        "the waiting up ran once the lock was free: {}",
        up_said.rest()
    );
}

#[test]
fn ctrl_c_during_up_names_the_command_that_resumes_and_that_command_finishes() {
    let acct = Account::new();
    acct.proxy.set_delay(Duration::from_millis(50));
    let mut up = acct.tapctl(&["up", "--suffix", "qa"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut said = Lines::of(up.stderr.take().unwrap());
    said.wait_for("network.vpc");
    interrupt(&up);
    assert_eq!(up.wait().unwrap().code(), Some(130));
    let report = said.rest();
    assert!(report.contains("interrupted by SIGINT") && report.contains("resume: tapctl up --suffix qa"), "{report}");
    acct.proxy.set_delay(Duration::ZERO);
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

#[test]
fn a_closed_pipe_ends_the_output_not_the_command() {
    let acct = Account::new();
    for args in [&["up", "--suffix", "qa", "--json"][..], &["status", "--suffix", "qa"][..]] {
        let mut child = acct.tapctl(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // `| head -0`: the reader is gone before the first byte is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // `tapctl up 2>&1 | head -0`: progress goes to a closed stderr too; the run still finishes.
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    let mut child =
        acct.tapctl(&["up", "--suffix", "qa"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(0), "up with stdout and stderr closed");
    assert_eq!(state_file(&acct, "qa")["nodes"].as_object().unwrap().len(), NODES, "up finished its work");
}

#[test]
fn plan_says_adopt_for_what_exists_without_a_state_and_up_adopts_it() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    for f in ["qa.json", "qa.json.bak", "qa.outputs.json"] {
        let _ = std::fs::remove_file(acct.state_dir.path().join(f));
    }
    // Adopting with a setting the resources do not have is refused before any change, recording nothing.
    let before = acct.proxy.calls().len();
    let wrong = acct.run(&["up", "--suffix", "qa", "--vpc-cidr", "10.2.0.0/16"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("network.vpc"), "{}", wrong.stderr);
    assert!(acct.proxy.calls()[before..].iter().all(|c| !c.is_mutating()), "nothing was changed");
    assert!(!acct.state_dir.path().join("qa.json").exists(), "nothing was recorded");
    let plan = acct.run(&["plan", "--suffix", "qa", "--json", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    let plan = json(&plan);
    // api.account-logging is the region's API Gateway logging role, shared by every stack: without
    // a record, a stack claims it only where no other API could use it (account_logging.rs), so
    // `up` ensures it (idempotently) rather than adopting it.
    let not_adopted: Vec<(&str, &str)> = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["node"].as_str().unwrap(), r["action"].as_str().unwrap()))
        .filter(|(_, a)| *a != "adopt")
        .collect();
    // api.domain, without --domain, has nothing to adopt: it stays off, unchanged.
    assert_eq!(not_adopted, vec![("api.account-logging", "create"), ("api.domain", "none")]);
    assert!(acct.ok(&["plan", "--suffix", "qa"]).stdout.contains("(adopt: exists, not yet in the state)"));
    let up = json(&acct.ok(&["up", "--suffix", "qa", "--json"]));
    assert_eq!(up["summary"]["adopt"], MADE - 1, "{up:#}");
    assert_eq!(state_file(&acct, "qa")["nodes"].as_object().unwrap().len(), NODES);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

#[test]
fn every_command_prints_the_one_json_schema() {
    let acct = Account::new();
    let validator = schema();
    let check = |args: &[&str]| {
        let run = acct.ok(args);
        let doc = json(&run);
        assert_schema(&validator, &args.join(" "), &doc);
        doc
    };
    let up = check(&["up", "--suffix", "qa", "--json"]);
    // Everything is created but the VPC's default security group, which AWS makes with the VPC:
    // up adopts it and strips its rules.
    assert_eq!(up["summary"]["create"], MADE - 1);
    let default_group =
        up["resources"].as_array().unwrap().iter().find(|r| r["node"] == "network.default-security-group");
    assert_eq!(default_group.map(|r| r["action"].clone()), Some(Value::from("adopt")), "{up:#}");
    let vpc = up["resources"].as_array().unwrap().iter().find(|r| r["node"] == "network.vpc").unwrap().clone();
    assert!(vpc["ids"]["vpc_id"].as_str().is_some_and(|v| v.starts_with("vpc-")), "ids are named: {vpc:#}");
    check(&["plan", "--suffix", "qa", "--json"]);
    let status = check(&["status", "--suffix", "qa", "--json"]);
    assert_eq!(status["healthy"], true);
    check(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10", "--json"]);
    let shift = check(&["shift", "--suffix", "qa", "--to", "green", "--weight", "0", "--json"]);
    assert_eq!(
        (shift["shift"]["rolled_back"].clone(), shift["traffic"]["canary"].clone()),
        (Value::Bool(false), Value::Null)
    );
    check(&["outputs", "--suffix", "qa", "--json"]);
    check(&["list", "--json"]);
    check(&["version", "--json"]);
    assert_eq!(acct.run(&["plan", "--destroy", "--suffix", "qa", "--detailed-exitcode"]).code, 2);
    let doomed = check(&["plan", "--destroy", "--suffix", "qa", "--json"]);
    assert_eq!(doomed["summary"]["delete"], MADE, "plan --destroy lists what destroy removes: {:#}", doomed["summary"]);
    let destroy = check(&["destroy", "--suffix", "qa", "--yes", "--json"]);
    assert_eq!(destroy["summary"]["delete"], MADE);
    let again = check(&["plan", "--destroy", "--suffix", "qa", "--json"]);
    assert_eq!(again["summary"]["absent"], NODES);
    assert_eq!(acct.run(&["plan", "--destroy", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

/// The user's story, read as a person would: status codes, a table that fits 120 columns, drift
/// in `field: current → wanted`, durations as people write them, and no Rust Debug text anywhere.
#[test]
fn the_users_story_reads_as_plain_words_and_status_exits_by_health() {
    let acct = Account::new();
    let mut printed = String::new();
    let mut keep = |r: Run| {
        printed.push_str(&r.stdout);
        printed.push_str(&r.stderr);
        r
    };
    keep(acct.ok(&["up", "--suffix", "qa"]));
    let healthy = keep(acct.run(&["status", "--suffix", "qa"]));
    assert_eq!(healthy.code, 0, "{}", healthy.stderr);
    assert!(
        healthy.stdout.lines().all(|l| l.chars().count() <= 120),
        "the table fits 120 columns:\n{}",
        healthy.stdout
    );
    let vpc = state_file(&acct, "qa")["nodes"]["network.vpc"]["outputs"]["vpc_id"].as_str().unwrap().to_string();
    assert!(!healthy.stdout.contains(&vpc), "ids are for --wide");
    assert!(keep(acct.ok(&["status", "--suffix", "qa", "--wide"])).stdout.contains(&vpc));

    acct.block_on(async {
        acct.lambda
            .update_function_configuration()
            .function_name("payment-validate-qa")
            .memory_size(1024)
            .send()
            .await
            .unwrap();
        acct.ec2
            .delete_tags()
            .resources(&vpc)
            .tags(aws_sdk_ec2::types::Tag::builder().key("CostCenter").build())
            .send()
            .await
            .unwrap();
    });
    let drifted = keep(acct.run(&["status", "--suffix", "qa"]));
    assert_eq!(drifted.code, 2, "drift exits 2: {}", drifted.stderr);
    let drift_lines: Vec<&str> = drifted.stdout.lines().filter(|l| l.contains('→')).collect();
    assert!(drift_lines.iter().any(|l| l.contains("1024")), "memory drift shows the value: {}", drifted.stdout);
    keep(acct.run(&["plan", "--suffix", "qa"]));
    keep(acct.ok(&["up", "--suffix", "qa"]));
    assert_eq!(keep(acct.run(&["status", "--suffix", "qa"])).code, 0, "repaired");
    keep(acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10", "--watch", "2s", "--poll", "1s"]));
    keep(acct.ok(&["status", "--suffix", "qa"]));
    keep(acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "100"]));
    keep(acct.ok(&["plan", "--destroy", "--suffix", "qa"]));
    keep(acct.ok(&["destroy", "--suffix", "qa", "--yes"]));
    let weight = keep(acct.run(&["shift", "--suffix", "qa", "--to", "green", "--weight", "-5"]));
    assert_eq!(weight.code, 2);
    assert!(weight.stderr.contains("invalid --weight") && weight.stderr.contains("got -5"), "{}", weight.stderr);

    for debug in ["Some(", "None", "{ ", "Nat(\"", "\\\""] {
        let hit: Vec<&str> = printed.lines().filter(|l| l.contains(debug)).collect();
        assert!(hit.is_empty(), "Rust Debug text {debug:?} in what a person reads:\n{}", hit.join("\n"));
    }
    assert!(printed.contains("baking: "), "the bake is reported");
}

#[test]
fn a_shift_onto_a_colour_whose_alarm_fires_is_refused_naming_it_unless_forced() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    acct.block_on(async {
        acct.cloudwatch
            .set_alarm_state()
            .alarm_name("payments-process-green-errors-qa")
            .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
            .state_reason("test: green already failing")
            .send()
            .await
            .unwrap();
    });
    let before = acct.proxy.calls().len();
    let refused = acct.run(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("payments-process-green-errors-qa") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert!(acct.proxy.calls()[before..].iter().all(|c| !c.is_mutating()), "the stage was not touched");
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10", "--force"]);
    let status = json(&acct.ok(&["status", "--suffix", "qa", "--json"]));
    assert_eq!(status["traffic"]["canary"]["weight"], 10.0);
    // Rolling back is never refused: it takes traffic away from the failing colour.
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "0"]);
    // The API's alarms fire when the live colour fails: they never block moving traffic to the other.
    acct.block_on(async {
        for (alarm, state) in [
            ("payments-process-green-errors-qa", aws_sdk_cloudwatch::types::StateValue::Ok),
            ("payments-api-5xx-qa", aws_sdk_cloudwatch::types::StateValue::Alarm),
        ] {
            acct.cloudwatch
                .set_alarm_state()
                .alarm_name(alarm)
                .state_value(state)
                .state_reason("test")
                .send()
                .await
                .unwrap();
        }
    });
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "100"]);
}

#[test]
fn an_unreachable_endpoint_is_named() {
    let acct = Account::new();
    let run = acct.run(&["plan", "--suffix", "qa", "--endpoint-url", "http://127.0.0.1:9"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("cannot reach the endpoint http://127.0.0.1:9"), "{}", run.stderr);
}

#[test]
fn status_watch_repeats_until_interrupted_and_then_exits_0() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let mut watch = acct
        .tapctl(&["status", "--suffix", "qa", "--watch", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut rounds = 0;
    while rounds < 2 {
        let line = rx.recv_timeout(Duration::from_secs(300)).expect("status --watch went quiet");
        if line.starts_with("(every 1s, Ctrl-C to stop; last exit 0)") {
            rounds += 1;
        }
    }
    interrupt(&watch);
    // Bounded, so that a watch that ignores the signal fails this test instead of hanging CI.
    let deadline = Instant::now() + Duration::from_secs(120);
    let code = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = watch.kill();
            panic!("status --watch went on for 120 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(0), "Ctrl-C is how a watch ends");
}
