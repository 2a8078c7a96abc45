//! Blue/green (design.md §7): `shift` against the canary the emulator's stage stores (moto
//! extension 6), `up` moving only the idle colour, destroy waiting for Lambda's interfaces, and
//! the user's whole story.

use super::harness::{stub_packages, Account};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What the stage holds: (live colour, canary weight and colour, deployment id).
#[derive(Debug, Clone, PartialEq)]
struct StageView {
    live: String,
    canary: Option<(f64, String)>,
    deployment: String,
}

pub(crate) fn api_id(acct: &Account) -> String {
    acct.block_on(async {
        let apis = acct.apigateway.get_rest_apis().send().await.unwrap();
        apis.items().iter().find(|a| a.name() == Some("payment-api-qa")).unwrap().id().unwrap().to_string()
    })
}

fn stage(acct: &Account) -> StageView {
    let id = api_id(acct);
    let s =
        acct.block_on(async { acct.apigateway.get_stage().rest_api_id(&id).stage_name("live").send().await.unwrap() });
    StageView {
        live: s.variables().unwrap()["lambdaAlias"].clone(),
        canary: s.canary_settings().map(|c| {
            (
                c.percent_traffic(),
                c.stage_variable_overrides().and_then(|o| o.get("lambdaAlias")).cloned().unwrap_or_default(),
            )
        }),
        deployment: s.deployment_id().unwrap().to_string(),
    }
}

fn aliases(acct: &Account, function: &str) -> (String, String) {
    acct.block_on(async {
        let name = format!("payment-{function}-qa");
        let get = |a: &'static str| acct.lambda.get_alias().function_name(&name).name(a).send();
        let (b, g) = (get("blue").await.unwrap(), get("green").await.unwrap());
        (b.function_version().unwrap().to_string(), g.function_version().unwrap().to_string())
    })
}

#[test]
fn shift_ten_sets_a_canary_to_green_a_hundred_promotes_and_zero_rolls_back() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let fresh = stage(&acct);
    assert_eq!((fresh.live.as_str(), fresh.canary.clone()), ("blue", None));

    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10"]);
    let s = stage(&acct);
    assert_eq!(s.live, "blue", "the live colour is unchanged by a canary");
    assert_eq!(s.canary, Some((10.0, "green".into())), "10 % overridden to green");
    assert_eq!(s.deployment, fresh.deployment, "the canary runs the same deployment; only the alias differs");

    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "0"]);
    let s = stage(&acct);
    assert_eq!((s.live.as_str(), s.canary), ("blue", None), "rolled back: no canary, blue still live");

    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10"]);
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "100"]);
    let s = stage(&acct);
    assert_eq!((s.live.as_str(), s.canary), ("green", None), "promoted: the variable is green, no canary");

    // A progression, baked between steps, ends promoted back to blue.
    let run = acct.ok(&[
        "shift",
        "--suffix",
        "qa",
        "--to",
        "blue",
        "--steps",
        "10,50,100",
        "--interval",
        "1s",
        "--poll",
        "1s",
    ]);
    assert!(run.stderr.contains("green takes 90 %, blue takes 10 %") && run.stderr.contains("50 %"), "{}", run.stderr);
    let s = stage(&acct);
    assert_eq!((s.live.as_str(), s.canary), ("blue", None));
}

#[test]
fn every_refused_shift_exits_two_and_changes_nothing() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10"]);
    let before = stage(&acct);
    // (arguments, what the error says, refused before any AWS call)
    let refused: [(&[&str], &str, bool); 7] = [
        (&["--to", "green", "--weight", "101"], "101", true),
        (&["--to", "green", "--weight", "-1"], "-1", true),
        (&["--to", "purple", "--weight", "10"], "purple", true),
        (&["--to", "green", "--steps", "50,10", "--interval", "1s"], "increasing", true),
        (&["--to", "green", "--weight", "0", "--watch", "1m"], "--watch", true),
        (&["--to", "blue", "--weight", "50"], "a canary sends 10 % to green", false),
        (&["--to", "blue", "--weight", "100"], "a canary sends 10 % to green", false),
    ];
    for (args, says, before_aws) in refused {
        let mut all = vec!["shift", "--suffix", "qa"];
        all.extend_from_slice(args);
        acct.proxy.clear();
        let run = acct.run(&all);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?} should say {says}: {}", run.stderr);
        if before_aws {
            assert_eq!(acct.proxy.calls(), vec![], "{args:?}: refused before the first AWS call");
        }
        assert!(acct.proxy.calls().iter().all(|c| !c.is_mutating()), "{args:?}: {:?}", acct.proxy.calls());
        assert_eq!(stage(&acct), before, "{args:?} changed the stage");
    }
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "0"]);
    let before = stage(&acct);
    acct.block_on(async {
        acct.lambda.delete_alias().function_name("payment-process-qa").name("green").send().await.unwrap();
    });
    let run = acct.run(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("alias green of payment-process-qa is missing"), "{}", run.stderr);
    assert_eq!(stage(&acct), before, "nothing changed");
}

#[test]
fn an_alarm_of_the_green_colour_during_watch_rolls_the_canary_back_and_fails() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let child = acct
        .tapctl(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10", "--watch", "60s", "--poll", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stage(&acct).canary.is_none() {
        assert!(Instant::now() < deadline, "the canary never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    acct.block_on(async {
        acct.cloudwatch
            .set_alarm_state()
            .alarm_name("payments-process-green-errors-qa")
            .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
            .state_reason("test: green process errors")
            .send()
            .await
            .unwrap();
    });
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "rolled back at the next poll, not at the end of the bake");
    assert!(stderr.contains("payments-process-green-errors-qa") && stderr.contains("rolled back"), "{stderr}");
    let s = stage(&acct);
    assert_eq!((s.live.as_str(), s.canary), ("blue", None), "every request back on blue");
    let status: Value = serde_json::from_str(&acct.ok(&["status", "--suffix", "qa", "--json"]).stdout).unwrap();
    assert_eq!(status["alarms"]["payments-process-green-errors-qa"], "ALARM");
    assert_eq!(status["traffic"]["canary"], Value::Null);
    let table = acct.ok(&["status", "--suffix", "qa"]).stdout;
    assert!(table.contains("1 in ALARM: payments-process-green-errors-qa"), "{table}");
}

#[test]
fn up_with_changed_code_moves_only_the_idle_colour_and_never_the_stage() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let before = stage(&acct);
    let v2 = stub_packages(&["validate"], "v2");
    let up = |dir: &std::path::Path| {
        let out = acct.tapctl(&["up", "--suffix", "qa"]).env("TAPCTL_PACKAGES", dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    up(v2.path());
    assert_eq!(
        aliases(&acct, "validate"),
        ("1".into(), "2".into()),
        "green (idle) takes the new code, blue (live) keeps it"
    );
    assert_eq!(aliases(&acct, "process"), ("1".into(), "1".into()), "unchanged code publishes nothing");
    assert_eq!(stage(&acct), before, "the stage is untouched by up");

    // With a canary live, both colours take traffic: new code waits.
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10"]);
    let v3 = stub_packages(&["validate"], "v3");
    up(v3.path());
    assert_eq!(aliases(&acct, "validate"), ("1".into(), "2".into()), "no colour moves while a canary is live");

    // Promoted, green is live; the same package again keeps blue as the way back.
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "100"]);
    let promoted = stage(&acct);
    up(v2.path());
    assert_eq!(aliases(&acct, "validate"), ("1".into(), "2".into()), "blue keeps the previous code");
    // New code now goes to blue, the idle colour.
    up(v3.path());
    let (blue, green) = aliases(&acct, "validate");
    assert_eq!(green, "2", "live green untouched");
    assert_ne!(blue, "1", "idle blue runs the new code");
    assert_eq!(stage(&acct), promoted);
}

#[test]
fn destroy_waits_for_the_functions_interfaces_deleting_the_rest_meanwhile() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let out: Value =
        serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.outputs.json")).unwrap()).unwrap();
    let subnet = out["private_subnet_ids"][0].as_str().unwrap().to_string();
    let sg = out["functions_security_group_id"].as_str().unwrap().to_string();
    // What Lambda leaves behind: one interface still attached (in use), one already detached.
    let (held, attachment) = acct.block_on(async {
        let eni =
            |d: &'static str| acct.ec2.create_network_interface().subnet_id(&subnet).groups(&sg).description(d).send();
        let held = eni("AWS Lambda VPC ENI-payment-process-qa-1").await.unwrap();
        let held = held.network_interface().unwrap().network_interface_id().unwrap().to_string();
        eni("AWS Lambda VPC ENI-payment-validate-qa-2").await.unwrap();
        let instance = acct
            .ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .min_count(1)
            .max_count(1)
            .subnet_id(&subnet)
            .send()
            .await
            .unwrap();
        let instance = instance.instances()[0].instance_id().unwrap().to_string();
        let a = acct
            .ec2
            .attach_network_interface()
            .network_interface_id(&held)
            .instance_id(&instance)
            .device_index(1)
            .send()
            .await
            .unwrap();
        (held, a.attachment_id().unwrap().to_string())
    });
    let run = acct.run(&["destroy", "--suffix", "qa", "--yes", "--max-wait", "3"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("functions.network-interfaces") && run.stderr.contains(&held), "{}", run.stderr);
    assert!(
        run.stderr.contains("waiting for the functions' network interfaces (Lambda releases them) to be gone"),
        "visible progress: {}",
        run.stderr
    );
    let left = super::readback::inventory(&acct, "qa");
    assert!(left["function"].is_empty() && left["rest-api"].is_empty() && left["table"].is_empty(), "{left:?}");
    assert_eq!(left["subnet"].len(), 9, "subnets wait for the interfaces");
    assert_eq!(left["security-group"].len(), 2);
    acct.block_on(async {
        acct.ec2.detach_network_interface().attachment_id(&attachment).send().await.unwrap();
        acct.ec2.delete_network_interface().network_interface_id(&held).send().await.unwrap();
    });
    let instances = acct.block_on(async { acct.ec2.describe_instances().send().await.unwrap() });
    let ids: Vec<String> = instances
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    acct.block_on(async { acct.ec2.terminate_instances().set_instance_ids(Some(ids)).send().await.unwrap() });
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert!(super::readback::leftovers(&acct, "qa").is_empty());
}

#[test]
fn the_users_story_up_shift_status_destroy() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10"]);
    let status: Value = serde_json::from_str(&acct.ok(&["status", "--suffix", "qa", "--json"]).stdout).unwrap();
    assert_eq!(
        status["traffic"],
        serde_json::json!({ "live": "blue", "canary": { "color": "green", "weight": 10.0 } })
    );
    assert_eq!(status["healthy"], true, "{status:#}");
    assert_eq!(status["versions"]["blue"]["process"], "1");
    assert_eq!(status["versions"]["green"]["process"], "1");
    assert_eq!(status["alarms"].as_object().unwrap().len(), 14);
    assert!(status["outputs"]["api_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("https://{}.execute-api.", api_id(&acct))));
    let table = acct.ok(&["status", "--suffix", "qa"]).stdout;
    assert!(
        table.contains("traffic: blue ████") && table.contains("░ green") && table.contains("green 10 %"),
        "{table}"
    );
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    let left = super::readback::inventory(&acct, "qa");
    assert!(left.values().all(Vec::is_empty), "{left:?}");
    assert!(super::readback::leftovers(&acct, "qa").is_empty());
    let logging_role =
        acct.block_on(async { acct.iam.get_role().role_name("tapctl-apigateway-logs-us-east-1").send().await });
    assert!(logging_role.is_err(), "the last stack gone, the account's API logging role tapctl made goes too");
}

#[test]
fn two_apis_of_the_stacks_name_are_refused_by_up_and_shift_naming_both() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let first = api_id(&acct);
    let second = acct.block_on(async {
        acct.apigateway.create_rest_api().name("payment-api-qa").send().await.unwrap().id().unwrap().to_string()
    });
    for args in [&["up", "--suffix", "qa"][..], &["shift", "--suffix", "qa", "--to", "green", "--weight", "10"][..]] {
        let run = acct.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("AmbiguousAdoption") || run.stderr.contains("2 REST APIs"), "{}", run.stderr);
        assert!(run.stderr.contains(&first) && run.stderr.contains(&second), "{args:?} names both: {}", run.stderr);
    }
}

#[test]
fn an_arm64_set_is_deployed_as_arm64_and_a_change_of_architecture_moves_only_the_idle_colour() {
    let acct = Account::new();
    let all = ["validate", "fraud-check", "process", "rotate-secret"];
    let x86 = stub_packages(&all, "same");
    // The same bytes declared arm64: only the architecture differs, and that alone is new code.
    let arm = stub_packages(&all, "same");
    let manifest = arm.path().join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["architecture"] = "arm64".into();
    std::fs::write(&manifest, m.to_string()).unwrap();
    let up = |dir: &std::path::Path| {
        let out = acct.tapctl(&["up", "--suffix", "qa"]).env("TAPCTL_PACKAGES", dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let architecture = |function: &str, qualifier: Option<&str>| {
        acct.block_on(async {
            let c = acct
                .lambda
                .get_function_configuration()
                .function_name(format!("payment-{function}-qa"))
                .set_qualifier(qualifier.map(str::to_string))
                .send()
                .await
                .unwrap();
            c.architectures().iter().map(|a| a.as_str().to_string()).collect::<Vec<_>>()
        })
    };
    up(x86.path());
    assert_eq!(architecture("process", None), ["x86_64"]);
    up(arm.path());
    for f in all {
        assert_eq!(architecture(f, None), ["arm64"], "{f}: $LATEST runs the arm64 set");
        assert_eq!(architecture(f, Some("green")), ["arm64"], "{f}: the idle colour takes it");
        assert_eq!(architecture(f, Some("blue")), ["x86_64"], "{f}: the live colour is untouched");
    }
    assert_eq!(aliases(&acct, "process"), ("1".into(), "2".into()));
    let plan = acct
        .tapctl(&["plan", "--suffix", "qa", "--detailed-exitcode"])
        .env("TAPCTL_PACKAGES", arm.path())
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", String::from_utf8_lossy(&plan.stdout));
}

/// How many resources an `up --json` updated. The summary counts resources by action; its keys
/// are moving to the past tense ("updated"), so either spelling is read.
fn updated(up: &Value) -> u64 {
    ["updated", "update"].iter().find_map(|k| up["summary"][*k].as_u64()).unwrap_or(0)
}

#[test]
fn a_configuration_repaired_during_a_canary_waits_quietly_and_then_goes_to_the_idle_colour() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "10"]);
    let function = "payment-process-qa";
    let memory = |qualifier: Option<&str>| {
        acct.block_on(async {
            let c = acct
                .lambda
                .get_function_configuration()
                .function_name(function)
                .set_qualifier(qualifier.map(str::to_string))
                .send()
                .await
                .unwrap();
            c.memory_size().unwrap()
        })
    };
    let versions = || {
        acct.block_on(async {
            let out = acct.lambda.list_versions_by_function().function_name(function).send().await.unwrap();
            out.versions().iter().filter_map(|v| v.version()).filter(|v| *v != "$LATEST").count()
        })
    };
    let up = || -> Value { serde_json::from_str(&acct.ok(&["up", "--suffix", "qa", "--json"]).stdout).unwrap() };
    let plan_code = || acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code;
    acct.block_on(async {
        acct.lambda.update_function_configuration().function_name(function).memory_size(1024).send().await.unwrap();
    });

    // The repair: $LATEST back to 512 MB, published as version 2, and no colour moves during a canary.
    assert_eq!(updated(&up()), 1);
    assert_eq!(memory(None), 512);
    assert_eq!((versions(), memory(Some("2"))), (2, 512), "the repair is published");
    assert_eq!(aliases(&acct, "process"), ("1".into(), "1".into()), "no colour moves while a canary is live");

    // While the canary lasts, the published version waits: nothing to do, nothing to plan.
    for _ in 0..2 {
        acct.proxy.clear();
        assert_eq!(updated(&up()), 0, "the waiting version is not an update");
        let mutating: Vec<_> = acct.proxy.calls().into_iter().filter(|c| c.is_mutating()).collect();
        assert!(mutating.is_empty(), "a waiting up changes nothing: {mutating:?}");
        assert_eq!(plan_code(), 0, "plan --detailed-exitcode: nothing up may do now");
    }
    assert_eq!((versions(), aliases(&acct, "process")), (2, ("1".into(), "1".into())));

    // Rolled back, green is idle again and takes the repaired version; then nothing is left.
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "0"]);
    assert_eq!(plan_code(), 2);
    assert_eq!(updated(&up()), 1);
    assert_eq!(aliases(&acct, "process"), ("1".into(), "2".into()), "the idle colour runs the repair");
    assert_eq!((memory(Some("green")), memory(Some("blue"))), (512, 512));
    assert_eq!(versions(), 2, "moving the alias publishes nothing");
    assert_eq!(updated(&up()), 0);
    assert_eq!(plan_code(), 0);
}
