//! The account's detective controls (`account.controls`, PCI DSS 10.4.1, 11.5.1, 10.7.2, 2.2,
//! 6.3, 12.4): turned on where absent and recorded in the account; never touching what the
//! account already runs; kept while any stack uses them and turned off by the last one, only
//! where tapctl turned them on; no call at all with `--no-account-controls`; drift repaired; the
//! services' "not yet" answers ridden out. Everything read back from the emulated account.

use super::harness::{Account, Answer};
use std::collections::{BTreeMap, BTreeSet};
use tapctl::names::Names;
use tapctl::resources::account::controls::{config_bucket, standards, Record, KEY_ALIAS, RECORD, RECORDER};

fn names(suffix: &str) -> Names {
    Names::new(suffix, "us-east-1", Some("123456789012"))
}

fn sdk(acct: &Account) -> aws_config::SdkConfig {
    acct.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(super::harness::REGION))
            .endpoint_url(acct.emulator_url())
            .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
            .load(),
    )
}

pub fn guardduty(acct: &Account) -> aws_sdk_guardduty::Client {
    aws_sdk_guardduty::Client::new(&sdk(acct))
}
pub fn securityhub(acct: &Account) -> aws_sdk_securityhub::Client {
    aws_sdk_securityhub::Client::new(&sdk(acct))
}
pub fn config(acct: &Account) -> aws_sdk_config::Client {
    aws_sdk_config::Client::new(&sdk(acct))
}

/// The region's detector: id, status, features (name → status), tags.
#[derive(Debug, PartialEq)]
struct Detector {
    id: String,
    status: String,
    features: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

fn detector(acct: &Account) -> Option<Detector> {
    let gd = guardduty(acct);
    acct.block_on(async {
        let ids = gd.list_detectors().send().await.unwrap();
        let id = ids.detector_ids().first()?.clone();
        let d = gd.get_detector().detector_id(&id).send().await.unwrap();
        Some(Detector {
            status: d.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            features: d
                .features()
                .iter()
                .map(|f| {
                    (
                        f.name().map(|n| n.as_str().to_string()).unwrap_or_default(),
                        f.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    )
                })
                .collect(),
            tags: d.tags().cloned().unwrap_or_default().into_iter().collect(),
            id,
        })
    })
}

/// Whether Security Hub is on, and its standards (ARN → status).
fn hub(acct: &Account) -> Option<BTreeMap<String, String>> {
    let sh = securityhub(acct);
    acct.block_on(async {
        if let Err(e) = sh.describe_hub().send().await {
            let code = aws_sdk_securityhub::error::ProvideErrorMetadata::code(&e).unwrap_or_default().to_string();
            assert_eq!(code, "InvalidAccessException", "{e:?}");
            return None;
        }
        let s = sh.get_enabled_standards().send().await.unwrap();
        Some(
            s.standards_subscriptions()
                .iter()
                .map(|s| {
                    (
                        s.standards_arn().unwrap_or_default().to_string(),
                        s.standards_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    )
                })
                .collect(),
        )
    })
}

/// The region's recorder: (name, records all, includes global, recording).
fn recorder(acct: &Account) -> Option<(String, bool, bool, bool)> {
    let cfg = config(acct);
    acct.block_on(async {
        let r = cfg.describe_configuration_recorders().send().await.unwrap();
        let r = r.configuration_recorders().first()?.clone();
        let name = r.name().unwrap().to_string();
        let status = cfg.describe_configuration_recorder_status().send().await.unwrap();
        let recording = status.configuration_recorders_status().first().is_some_and(|s| s.recording());
        let g = r.recording_group().unwrap();
        Some((name, g.all_supported(), g.include_global_resource_types(), recording))
    })
}

/// The region's delivery channel: (name, bucket, key).
fn channel(acct: &Account) -> Option<(String, String, Option<String>)> {
    let cfg = config(acct);
    acct.block_on(async {
        let c = cfg.describe_delivery_channels().send().await.unwrap();
        let c = c.delivery_channels().first()?.clone();
        Some((
            c.name().unwrap().to_string(),
            c.s3_bucket_name().unwrap_or_default().to_string(),
            c.s3_kms_key_arn().map(str::to_string),
        ))
    })
}

fn record(acct: &Account) -> Option<Record> {
    acct.block_on(async {
        match acct.ssm.get_parameter().name(RECORD).send().await {
            Ok(p) => Some(serde_json::from_str(p.parameter().unwrap().value().unwrap()).unwrap()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => None,
            Err(e) => panic!("{e:?}"),
        }
    })
}

fn bucket_exists(acct: &Account, b: &str) -> bool {
    acct.block_on(async { acct.s3.head_bucket().bucket(b).send().await.is_ok() })
}

/// The bucket's default encryption: (algorithm, key).
fn bucket_encryption(acct: &Account, b: &str) -> (String, String) {
    acct.block_on(async {
        let e = acct.s3.get_bucket_encryption().bucket(b).send().await.unwrap();
        let rule = e.server_side_encryption_configuration().unwrap().rules()[0].clone();
        let d = rule.apply_server_side_encryption_by_default().unwrap();
        (d.sse_algorithm().as_str().to_string(), d.kms_master_key_id().unwrap_or_default().to_string())
    })
}

/// The key behind the account-level alias: (ARN, state); None when the alias is gone.
fn key(acct: &Account) -> Option<(String, String)> {
    acct.block_on(async {
        let k = acct.kms.describe_key().key_id(KEY_ALIAS).send().await.ok()?;
        let m = k.key_metadata().unwrap();
        Some((m.arn().unwrap().to_string(), m.key_state().unwrap().as_str().to_string()))
    })
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const FEATURES: [&str; 3] = ["LAMBDA_NETWORK_LOGS", "RDS_LOGIN_EVENTS", "S3_DATA_EVENTS"];

/// Everything tapctl turns on is there, as wanted, and recorded as tapctl's for `stacks`.
fn assert_turned_on_by_tapctl(acct: &Account, stacks: &[&str]) {
    let d = detector(acct).expect("a GuardDuty detector");
    assert_eq!(d.status, "ENABLED");
    assert_eq!(d.features, FEATURES.iter().map(|f| (f.to_string(), "ENABLED".to_string())).collect::<BTreeMap<_, _>>());
    assert_eq!(d.tags.get("ManagedBy").map(String::as_str), Some("tapctl"), "{:?}", d.tags);
    let std = hub(acct).expect("Security Hub on");
    let wanted: BTreeMap<String, String> =
        standards("us-east-1").into_iter().map(|(a, _)| (a, "READY".to_string())).collect();
    assert_eq!(std, wanted, "exactly PCI DSS v4.0.1 and FSBP, no default standard");
    assert_eq!(recorder(acct), Some((RECORDER.to_string(), true, true, true)));
    let b = config_bucket(&names("qa"));
    let (key_arn, state) = key(acct).expect("the account-level key");
    assert_eq!(state, "Enabled");
    let (name, bucket, channel_key) = channel(acct).expect("a delivery channel");
    assert_eq!((name.as_str(), bucket.as_str()), ("tapctl", b.as_str()));
    assert_eq!(channel_key.as_deref(), Some(key_arn.as_str()), "Config encrypts with the account-level key");
    let (alg, bucket_key) = bucket_encryption(acct, &b);
    assert_eq!(alg, "aws:kms");
    assert!(key_arn.ends_with(&bucket_key) || key_arn == bucket_key, "{bucket_key} is not {key_arn}");
    let r = record(acct).expect("the record");
    assert_eq!(
        r,
        Record {
            stacks: set(stacks),
            guardduty: true,
            security_hub: true,
            standards: standards("us-east-1").into_iter().map(|(a, _)| a).collect(),
            config: true,
        }
    );
}

/// Nothing tapctl turned on is left.
fn assert_all_turned_off(acct: &Account) {
    assert_eq!(detector(acct), None, "the detector is deleted");
    assert_eq!(hub(acct), None, "Security Hub is off");
    assert_eq!(recorder(acct), None, "the recorder is deleted");
    assert_eq!(channel(acct), None, "the delivery channel is deleted");
    assert!(!bucket_exists(acct, &config_bucket(&names("qa"))), "the Config bucket is deleted");
    assert_eq!(key(acct), None, "the alias is deleted");
    assert_eq!(record(acct), None, "the record is deleted");
    assert!(super::readback::account_controls_left(acct).is_empty());
}

/// Who runs GuardDuty, Security Hub and Config, as the stack's outputs say.
fn owners(acct: &Account, suffix: &str) -> [String; 3] {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(acct.state_dir.path().join(format!("{suffix}.json"))).unwrap()).unwrap();
    let out = &state["nodes"]["account.controls"]["outputs"];
    ["guardduty", "security_hub", "config"].map(|k| out[k].as_str().unwrap_or_default().to_string())
}

fn control_calls(acct: &Account) -> Vec<String> {
    acct.proxy
        .calls()
        .iter()
        .map(|c| c.0.clone())
        .filter(|c| ["guardduty:", "securityhub:", "config:"].iter().any(|s| c.starts_with(s)))
        .collect()
}

#[test]
fn absent_controls_are_turned_on_recorded_kept_for_a_second_stack_and_removed_by_the_last() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    assert_turned_on_by_tapctl(&acct, &["qa"]);
    assert_eq!(owners(&acct, "qa"), ["turned on by tapctl"; 3]);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0, "nothing to change");
    let status = acct.run(&["status", "--suffix", "qa", "--json", "--wide"]);
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);

    // A second stack of the same account uses them: it turns nothing on, it is listed.
    acct.ok(&["up", "--suffix", "qb"]);
    assert_turned_on_by_tapctl(&acct, &["qa", "qb"]);

    // The first to go leaves everything, but its name.
    let gone = acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert!(
        gone.stderr.contains("stacks qb use them") || gone.stdout.contains("stacks qb use them"),
        "{}",
        gone.stderr
    );
    assert_turned_on_by_tapctl(&acct, &["qb"]);

    // The last one turns off what tapctl turned on. Killed half-way (a failure after it took
    // itself off the list and deleted the detector), a re-run finishes the job.
    acct.proxy.answer(Answer::new("config:DeleteConfigurationRecorder", "", 1, 400, "ValidationException", "boom"));
    let failed = acct.run(&["destroy", "--suffix", "qb", "--yes"]);
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    let half = record(&acct).expect("the record stays until the job is done");
    assert!(half.stacks.is_empty() && half.config, "{half:?}");
    assert_eq!(detector(&acct), None);
    acct.ok(&["destroy", "--suffix", "qb", "--yes"]);
    assert_all_turned_off(&acct);
}

#[test]
fn controls_the_account_already_runs_are_never_touched_and_outlive_the_last_destroy() {
    let acct = Account::with_stub_packages();
    let (gd, sh, cfg) = (guardduty(&acct), securityhub(&acct), config(&acct));
    // The account's own: a detector with only S3 data events, a hub with no standard, a recorder
    // of some resource types that is stopped, and its channel.
    acct.block_on(async {
        use aws_sdk_guardduty::types::{DetectorFeature, DetectorFeatureConfiguration, FeatureStatus};
        gd.create_detector()
            .enable(true)
            .features(
                DetectorFeatureConfiguration::builder()
                    .name(DetectorFeature::S3DataEvents)
                    .status(FeatureStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        sh.enable_security_hub().enable_default_standards(false).send().await.unwrap();
        acct.s3.create_bucket().bucket("security-team-config").send().await.unwrap();
        let group = aws_sdk_config::types::RecordingGroup::builder()
            .all_supported(false)
            .resource_types(aws_sdk_config::types::ResourceType::Instance)
            .build();
        cfg.put_configuration_recorder()
            .configuration_recorder(
                aws_sdk_config::types::ConfigurationRecorder::builder()
                    .name("default")
                    .role_arn("arn:aws:iam::123456789012:role/security-team-config")
                    .recording_group(group)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        cfg.put_delivery_channel()
            .delivery_channel(
                aws_sdk_config::types::DeliveryChannel::builder()
                    .name("default")
                    .s3_bucket_name("security-team-config")
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let before = (detector(&acct), hub(&acct), recorder(&acct), channel(&acct));
    assert_eq!(before.1, Some(BTreeMap::new()));
    let plan = acct.ok(&["plan", "--suffix", "qa"]);
    assert!(!plan.stdout.contains("GuardDuty") && !plan.stdout.contains("Security Hub"), "{}", plan.stdout);
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(owners(&acct, "qa"), ["the account's, not tapctl's"; 3]);
    assert_eq!(
        (detector(&acct), hub(&acct), recorder(&acct), channel(&acct)),
        before,
        "untouched: not even a standard"
    );
    assert_eq!(
        record(&acct).map(|r| (r.stacks, r.guardduty, r.security_hub, r.config)),
        Some((set(&["qa"]), false, false, false))
    );
    assert!(
        !bucket_exists(&acct, &config_bucket(&names("qa"))) && key(&acct).is_none(),
        "no bucket, no key of tapctl's"
    );
    // Reported as the account's, not tapctl's, and never drift.
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
    let mutating: Vec<String> = acct
        .proxy
        .calls()
        .iter()
        .filter(|c| c.is_mutating())
        .map(|c| c.0.clone())
        .filter(|c| ["guardduty:", "securityhub:", "config:"].iter().any(|s| c.starts_with(s)))
        .collect();
    assert!(mutating.is_empty(), "no change to the account's controls: {mutating:?}");
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert_eq!(
        (detector(&acct), hub(&acct), recorder(&acct), channel(&acct)),
        before,
        "still on after the last destroy"
    );
    assert_eq!(record(&acct), None);
}

#[test]
fn with_no_account_controls_no_call_reaches_guardduty_security_hub_or_config() {
    let acct = Account::with_stub_packages();
    let plan = acct.ok(&["plan", "--suffix", "qa", "--no-account-controls"]);
    assert!(plan.stdout.contains("left to the operator (--no-account-controls)"), "{}", plan.stdout);
    acct.ok(&["up", "--suffix", "qa", "--no-account-controls"]);
    // Recorded: the next runs keep to it without the flag.
    let status = acct.run(&["status", "--suffix", "qa"]);
    assert!(status.stdout.contains("left to the operator"), "{}", status.stdout);
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert_eq!(control_calls(&acct), Vec::<String>::new());
    assert!(acct.proxy.calls().iter().all(|c| !c.0.contains(RECORD) && !c.0.contains("tapctl-config-")));
    assert_eq!((detector(&acct), hub(&acct), recorder(&acct), record(&acct)), (None, None, None, None));
}

#[test]
fn a_control_turned_off_out_of_band_is_named_by_plan_and_repaired_by_up_after_the_not_yet_answers() {
    let acct = Account::with_stub_packages();
    // What AWS answers right after the hub is enabled and the bucket policy is put.
    acct.proxy.answer(Answer::new(
        "securityhub:POST /standards/register",
        "",
        2,
        401,
        "InvalidAccessException",
        "Account 123456789012 is not subscribed to AWS Security Hub",
    ));
    acct.proxy.answer(Answer::new(
        "config:PutDeliveryChannel",
        "",
        2,
        400,
        "InsufficientDeliveryPolicyException",
        "Insufficient delivery policy to s3 bucket: tapctl-config-123456789012-us-east-1, unable to write to bucket",
    ));
    let up = acct.ok(&["up", "--suffix", "qa"]);
    let answered: BTreeSet<String> = acct.proxy.answered().into_iter().map(|(_, code)| code).collect();
    assert_eq!(answered, set(&["InvalidAccessException", "InsufficientDeliveryPolicyException"]), "{}", up.stderr);
    assert_turned_on_by_tapctl(&acct, &["qa"]);

    // Out of band: a GuardDuty feature off, a standard disabled, the recorder stopped.
    let (gd, sh, cfg) = (guardduty(&acct), securityhub(&acct), config(&acct));
    let d = detector(&acct).unwrap();
    acct.block_on(async {
        use aws_sdk_guardduty::types::{DetectorFeature, DetectorFeatureConfiguration, FeatureStatus};
        let f =
            |n: DetectorFeature, s: FeatureStatus| DetectorFeatureConfiguration::builder().name(n).status(s).build();
        gd.update_detector()
            .detector_id(&d.id)
            .features(f(DetectorFeature::S3DataEvents, FeatureStatus::Enabled))
            .features(f(DetectorFeature::LambdaNetworkLogs, FeatureStatus::Enabled))
            .features(f(DetectorFeature::RdsLoginEvents, FeatureStatus::Disabled))
            .send()
            .await
            .unwrap();
        let subs = sh.get_enabled_standards().send().await.unwrap();
        let pci = subs
            .standards_subscriptions()
            .iter()
            .find(|s| s.standards_arn().unwrap().contains("pci-dss"))
            .and_then(|s| s.standards_subscription_arn())
            .unwrap()
            .to_string();
        sh.batch_disable_standards().standards_subscription_arns(pci).send().await.unwrap();
        cfg.stop_configuration_recorder().configuration_recorder_name(RECORDER).send().await.unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    for drift in [
        "GuardDuty RDS login events: off → on",
        "Security Hub standard PCI DSS v4.0.1: disabled → enabled",
        "AWS Config recorder tapctl: stopped → recording",
    ] {
        assert!(plan.stdout.contains(drift), "{drift} not in:\n{}", plan.stdout);
    }
    acct.ok(&["up", "--suffix", "qa"]);
    assert_turned_on_by_tapctl(&acct, &["qa"]);

    // The detector deleted out of band: plan names it, up makes a new one.
    acct.block_on(async { gd.delete_detector().detector_id(&d.id).send().await.unwrap() });
    let plan = acct.run(&["plan", "--suffix", "qa"]);
    assert!(plan.stdout.contains("GuardDuty detector: missing → enabled, with"), "{}", plan.stdout);
    acct.ok(&["up", "--suffix", "qa"]);
    assert_turned_on_by_tapctl(&acct, &["qa"]);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}
