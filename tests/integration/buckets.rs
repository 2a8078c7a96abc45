//! The stack's buckets (PCI DSS 10.2.1, 10.3.2–10.3.4, 10.5.1): the audit bucket, the trail
//! bucket and the access-log bucket, read back from the emulator. Object Lock (governance by
//! default, compliance on request) on the audit and trail buckets, turned on in place for a
//! bucket made before it; server access logs of both into the access-log bucket; drift named by
//! `plan` and repaired by `up`; `destroy` removes governance-locked versions and stops, naming
//! the date, at compliance-locked ones.

use super::harness::{Account, Answer};
use super::readback::{enabled_keys, inventory, leftovers};
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{
    BucketLoggingStatus, BucketVersioningStatus, DefaultRetention, Delete, ObjectIdentifier, ObjectLockConfiguration,
    ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule, ObjectOwnership, ServerSideEncryption,
    VersioningConfiguration,
};
use serde_json::Value;

const AUDIT: &str = "payments-audit-123456789012-us-east-1-qa";
const TRAIL: &str = "payments-trail-123456789012-us-east-1-qa";
const LOGS: &str = "payments-logs-123456789012-us-east-1-qa";
const TRAIL_ARN: &str = "arn:aws:cloudtrail:us-east-1:123456789012:trail/payments-trail-qa";
const RETENTION_DAYS: i64 = 365;

fn key_arn(acct: &Account) -> String {
    acct.block_on(async {
        let k = acct.kms.describe_key().key_id("alias/payments-qa").send().await.unwrap();
        k.key_metadata().unwrap().arn().unwrap().to_string()
    })
}

/// `YYYY-MM-DD` of a time.
fn day(t: &DateTime) -> String {
    t.fmt(DateTimeFormat::DateTime).unwrap()[..10].to_string()
}

fn days_after(t: &DateTime, days: i64) -> DateTime {
    DateTime::from_secs(t.secs() + days * 86_400)
}

fn now() -> DateTime {
    DateTime::from(std::time::SystemTime::now())
}

/// The bucket's Object Lock default retention: (mode, days); None when Object Lock is off.
fn lock_of(acct: &Account, bucket: &str) -> Option<(ObjectLockRetentionMode, Option<i32>)> {
    acct.block_on(async {
        match acct.s3.get_object_lock_configuration().bucket(bucket).send().await {
            Ok(out) => {
                let c = out.object_lock_configuration().unwrap();
                assert_eq!(c.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
                let r = c.rule().and_then(|r| r.default_retention()).expect("a default retention");
                Some((r.mode().unwrap().clone(), r.days()))
            }
            Err(e) => {
                let code = e.into_service_error().meta().code().map(str::to_string);
                assert_eq!(code.as_deref(), Some("ObjectLockConfigurationNotFoundError"));
                None
            }
        }
    })
}

/// The bucket's server access logging: (target bucket, prefix).
fn logging_of(acct: &Account, bucket: &str) -> Option<(String, String)> {
    acct.block_on(async {
        let out = acct.s3.get_bucket_logging().bucket(bucket).send().await.unwrap();
        out.logging_enabled().map(|l| (l.target_bucket().to_string(), l.target_prefix().to_string()))
    })
}

fn policy_of(acct: &Account, bucket: &str) -> Vec<Value> {
    acct.block_on(async {
        let p = acct.s3.get_bucket_policy().bucket(bucket).send().await.unwrap();
        let doc: Value = serde_json::from_str(p.policy().unwrap()).unwrap();
        doc["Statement"].as_array().unwrap().clone()
    })
}

/// Puts an object; (its version id, the time just before and just after the put).
fn put(acct: &Account, bucket: &str, key: &str) -> (String, DateTime, DateTime) {
    acct.block_on(async {
        let before = now();
        let out = acct
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(b"{\"event\":\"payment\"}"))
            .send()
            .await
            .unwrap();
        (out.version_id().unwrap().to_string(), before, now())
    })
}

/// The Object Lock retention S3 holds an object version under.
fn retention_of(acct: &Account, bucket: &str, key: &str, version: &str) -> (ObjectLockRetentionMode, DateTime) {
    acct.block_on(async {
        let h = acct.s3.head_object().bucket(bucket).key(key).version_id(version).send().await.unwrap();
        // HeadObject names the mode with its own type; the same words.
        (
            ObjectLockRetentionMode::from(h.object_lock_mode().unwrap().as_str()),
            *h.object_lock_retain_until_date().unwrap(),
        )
    })
}

fn set_default_retention(acct: &Account, bucket: &str, mode: ObjectLockRetentionMode, days: i32) {
    acct.block_on(async {
        acct.s3
            .put_object_lock_configuration()
            .bucket(bucket)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(
                        ObjectLockRule::builder()
                            .default_retention(DefaultRetention::builder().mode(mode).days(days).build())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}

#[test]
fn up_makes_the_three_buckets_with_every_setting_read_back_and_uploads_get_the_default_retention() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let key = key_arn(&acct);
    for bucket in [AUDIT, TRAIL, LOGS] {
        acct.block_on(async {
            let s3 = &acct.s3;
            let v = s3.get_bucket_versioning().bucket(bucket).send().await.unwrap();
            assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled), "{bucket}");
            let enc = s3.get_bucket_encryption().bucket(bucket).send().await.unwrap();
            let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
            let default = rule.apply_server_side_encryption_by_default().unwrap();
            if bucket == LOGS {
                // S3's log delivery writes only into an SSE-S3 bucket.
                assert_eq!(default.sse_algorithm(), &ServerSideEncryption::Aes256, "{bucket}");
            } else {
                assert_eq!(default.sse_algorithm(), &ServerSideEncryption::AwsKms, "{bucket}");
                assert_eq!(default.kms_master_key_id(), Some(key.as_str()), "{bucket}");
                assert_eq!(rule.bucket_key_enabled(), Some(true), "{bucket}");
            }
            let pab = s3.get_public_access_block().bucket(bucket).send().await.unwrap();
            let pab = pab.public_access_block_configuration().unwrap();
            assert_eq!(
                (
                    pab.block_public_acls(),
                    pab.ignore_public_acls(),
                    pab.block_public_policy(),
                    pab.restrict_public_buckets()
                ),
                (Some(true), Some(true), Some(true), Some(true)),
                "{bucket}"
            );
            let own = s3.get_bucket_ownership_controls().bucket(bucket).send().await.unwrap();
            assert_eq!(
                own.ownership_controls().unwrap().rules()[0].object_ownership(),
                &ObjectOwnership::BucketOwnerEnforced,
                "{bucket}"
            );
            let lc = s3.get_bucket_lifecycle_configuration().bucket(bucket).send().await.unwrap();
            let r = &lc.rules()[0];
            assert_eq!(r.expiration().and_then(|e| e.days()), Some(365), "{bucket}: PCI DSS 10.5.1, 12 months");
            assert_eq!(r.noncurrent_version_expiration().and_then(|e| e.noncurrent_days()), Some(365), "{bucket}");
            assert_eq!(r.transitions()[0].days(), Some(90), "{bucket}: 3 months immediately available");
            let tags = s3.get_bucket_tagging().bucket(bucket).send().await.unwrap();
            assert!(tags.tag_set().iter().any(|t| t.key() == "EnvironmentSuffix" && t.value() == "qa"), "{bucket}");
        });
        // Every bucket refuses requests without TLS and with TLS older than 1.2.
        let statements = policy_of(&acct, bucket);
        let denies: Vec<&Value> = statements.iter().filter(|s| s["Effect"] == "Deny").collect();
        assert_eq!(denies[0]["Condition"]["Bool"]["aws:SecureTransport"], "false", "{bucket}");
        assert_eq!(denies[1]["Condition"]["NumericLessThan"]["s3:TlsVersion"], "1.2", "{bucket}");
    }

    // Object Lock: the audit and trail buckets, governance for the retention; never the log bucket.
    assert_eq!(lock_of(&acct, AUDIT), Some((ObjectLockRetentionMode::Governance, Some(365))));
    assert_eq!(lock_of(&acct, TRAIL), Some((ObjectLockRetentionMode::Governance, Some(365))));
    assert_eq!(lock_of(&acct, LOGS), None, "a bucket with Object Lock cannot receive access logs");

    // Server access logs: each locked bucket under its own prefix of the log bucket.
    assert_eq!(logging_of(&acct, AUDIT), Some((LOGS.to_string(), "audit-bucket/".to_string())));
    assert_eq!(logging_of(&acct, TRAIL), Some((LOGS.to_string(), "trail-bucket/".to_string())));
    assert_eq!(logging_of(&acct, LOGS), None);
    let delivery: Vec<(String, String, String)> = policy_of(&acct, LOGS)
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .map(|s| {
            assert_eq!(s["Principal"]["Service"], "logging.s3.amazonaws.com");
            assert_eq!(s["Action"], "s3:PutObject");
            assert_eq!(s["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012");
            (
                s["Resource"].as_str().unwrap().to_string(),
                s["Condition"]["ArnLike"]["aws:SourceArn"].as_str().unwrap().to_string(),
                String::new(),
            )
        })
        .collect();
    assert_eq!(
        delivery,
        [
            (format!("arn:aws:s3:::{LOGS}/audit-bucket/*"), format!("arn:aws:s3:::{AUDIT}"), String::new()),
            (format!("arn:aws:s3:::{LOGS}/trail-bucket/*"), format!("arn:aws:s3:::{TRAIL}"), String::new()),
        ]
    );

    // The trail bucket's policy is CloudTrail's, each statement for the stack's trail only.
    let trail: Vec<Value> = policy_of(&acct, TRAIL).into_iter().filter(|s| s["Effect"] == "Allow").collect();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0]["Principal"]["Service"], "cloudtrail.amazonaws.com");
    assert_eq!(trail[0]["Action"], "s3:GetBucketAcl");
    assert_eq!(trail[0]["Resource"], format!("arn:aws:s3:::{TRAIL}"));
    assert_eq!(trail[0]["Condition"]["StringEquals"]["aws:SourceArn"], TRAIL_ARN);
    assert_eq!(trail[1]["Principal"]["Service"], "cloudtrail.amazonaws.com");
    assert_eq!(trail[1]["Action"], "s3:PutObject");
    assert_eq!(trail[1]["Resource"], format!("arn:aws:s3:::{TRAIL}/AWSLogs/123456789012/*"));
    assert_eq!(trail[1]["Condition"]["StringEquals"]["aws:SourceArn"], TRAIL_ARN);
    assert_eq!(trail[1]["Condition"]["StringEquals"]["s3:x-amz-acl"], "bucket-owner-full-control");
    assert_eq!(policy_of(&acct, AUDIT).len(), 2, "the audit bucket admits no service");

    // An audit event gets the default retention: governance until 365 days after it was written.
    let (version, before, after) = put(&acct, AUDIT, "events/2026/11/30/payment.json");
    let (mode, until) = retention_of(&acct, AUDIT, "events/2026/11/30/payment.json", &version);
    assert_eq!(mode, ObjectLockRetentionMode::Governance);
    // Dates only: the retention is counted from the write, which lies between the two reads.
    let (earliest, latest) = (day(&days_after(&before, RETENTION_DAYS)), day(&days_after(&after, RETENTION_DAYS)));
    assert!(earliest <= day(&until) && day(&until) <= latest, "{} not in {earliest}..{latest}", day(&until));
    // And the lock holds: without the bypass, the version cannot be deleted.
    let refused = acct.block_on(async {
        acct.s3
            .delete_object()
            .bucket(AUDIT)
            .key("events/2026/11/30/payment.json")
            .version_id(&version)
            .send()
            .await
            .is_err()
    });
    assert!(refused, "a version under governance retention is not deleted without the bypass");

    let outputs = acct.ok(&["outputs", "--suffix", "qa", "--json"]);
    for (name, bucket) in [("trail_bucket", TRAIL), ("access_log_bucket", LOGS), ("audit_bucket", AUDIT)] {
        assert!(outputs.stdout.contains(&format!("\"{name}\": \"{bucket}\"")), "{name}:\n{}", outputs.stdout);
    }
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

#[test]
fn a_shortened_retention_another_mode_and_logging_turned_off_are_named_by_plan_and_repaired_by_up() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    set_default_retention(&acct, AUDIT, ObjectLockRetentionMode::Governance, 1);
    set_default_retention(&acct, TRAIL, ObjectLockRetentionMode::Compliance, 365);
    acct.block_on(async {
        acct.s3
            .put_bucket_logging()
            .bucket(AUDIT)
            .bucket_logging_status(BucketLoggingStatus::builder().build())
            .send()
            .await
            .unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    for said in [
        "Object Lock default retention: governance, 1 day → governance, 365 days",
        "Object Lock default retention: compliance, 365 days → governance, 365 days",
        &format!("server access logging: off → into {LOGS}/audit-bucket/"),
    ] {
        assert!(plan.stdout.contains(said), "{said:?} missing:\n{}", plan.stdout);
    }
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(lock_of(&acct, AUDIT), Some((ObjectLockRetentionMode::Governance, Some(365))));
    assert_eq!(lock_of(&acct, TRAIL), Some((ObjectLockRetentionMode::Governance, Some(365))));
    assert_eq!(logging_of(&acct, AUDIT), Some((LOGS.to_string(), "audit-bucket/".to_string())));
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

#[test]
fn an_audit_bucket_made_before_object_lock_gets_it_in_place_keeping_what_it_holds() {
    let acct = Account::new();
    // The audit bucket as tapctl made it before Object Lock: versioned, no lock, holding events.
    let old = acct.block_on(async {
        acct.s3.create_bucket().bucket(AUDIT).send().await.unwrap();
        acct.s3
            .put_bucket_versioning()
            .bucket(AUDIT)
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
            )
            .send()
            .await
            .unwrap();
        let out = acct
            .s3
            .put_object()
            .bucket(AUDIT)
            .key("events/old.json")
            .body(ByteStream::from_static(b"{\"event\":\"before the lock\"}"))
            .send()
            .await
            .unwrap();
        out.version_id().unwrap().to_string()
    });
    assert_eq!(lock_of(&acct, AUDIT), None);
    // The first up adopts the bucket (its key and log bucket do not exist yet, so plan can only
    // say "create"); its report names the lock it turned on in place.
    let up = acct.ok(&["up", "--suffix", "qa", "--json"]);
    let report: Value = serde_json::from_str(&up.stdout).unwrap();
    let audit = report["resources"].as_array().unwrap().iter().find(|r| r["node"] == "storage.audit-bucket").unwrap();
    assert_eq!(audit["action"], "adopt", "{audit:#}");
    assert!(
        audit["changes"].as_array().unwrap().iter().any(|c| c["field"] == "Object Lock"
            && c["current"] == "off"
            && c["wanted"] == "on, default retention governance, 365 days"),
        "{audit:#}"
    );
    assert!(up.stderr.contains("turning Object Lock on in place"), "{}", up.stderr);
    assert_eq!(lock_of(&acct, AUDIT), Some((ObjectLockRetentionMode::Governance, Some(365))));
    // The same bucket: the event written before is still there, as it was.
    let body = acct.block_on(async {
        let o = acct.s3.get_object().bucket(AUDIT).key("events/old.json").version_id(&old).send().await.unwrap();
        String::from_utf8(o.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
    });
    assert_eq!(body, "{\"event\":\"before the lock\"}");
    // What arrives from now on is locked.
    let (version, _, _) = put(&acct, AUDIT, "events/new.json");
    assert_eq!(retention_of(&acct, AUDIT, "events/new.json", &version).0, ObjectLockRetentionMode::Governance);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

#[test]
fn destroy_removes_versions_under_governance_retention_and_leaves_nothing_of_the_suffix() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    for bucket in [AUDIT, TRAIL, LOGS] {
        for i in 0..3 {
            put(&acct, bucket, &format!("events/{i}.json"));
        }
    }
    let (version, _, _) = put(&acct, AUDIT, "events/0.json");
    assert_eq!(retention_of(&acct, AUDIT, "events/0.json", &version).0, ObjectLockRetentionMode::Governance);
    // Without the bypass the locked version is refused: what destroy removes below it removes
    // only by bypassing governance retention.
    let refused = acct.block_on(async {
        let out = acct
            .s3
            .delete_objects()
            .bucket(AUDIT)
            .delete(
                Delete::builder()
                    .objects(ObjectIdentifier::builder().key("events/0.json").version_id(&version).build().unwrap())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        out.errors().len()
    });
    assert_eq!(refused, 1);
    let destroy = acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert!(destroy.stderr.contains("versions removed"), "{}", destroy.stderr);
    assert_eq!(leftovers(&acct, "qa"), Vec::<String>::new());
    assert!(inventory(&acct, "qa").values().all(Vec::is_empty), "{:?}", inventory(&acct, "qa"));
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/output.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("a valid JSON Schema")
}

#[test]
fn with_compliance_plan_warns_and_destroy_removes_everything_else_then_names_the_bucket_and_the_date() {
    let acct = Account::new();
    let plan = acct.ok(&["plan", "--suffix", "qa", "--audit-lock", "compliance"]);
    for said in ["warning: --audit-lock compliance", AUDIT, TRAIL, "365 days", "not even the account's root user"] {
        assert!(plan.stdout.contains(said), "{said:?} missing:\n{}", plan.stdout);
    }
    let json = acct.ok(&["plan", "--suffix", "qa", "--audit-lock", "compliance", "--json"]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    let errors: Vec<String> = schema().iter_errors(&doc).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(doc["warnings"][0].as_str().unwrap().contains("not even the account's root user"), "{doc:#}");
    let governance = acct.ok(&["plan", "--suffix", "qa", "--json"]);
    assert!(serde_json::from_str::<Value>(&governance.stdout).unwrap().get("warnings").is_none());

    let up = acct.ok(&["up", "--suffix", "qa", "--audit-lock", "compliance"]);
    assert!(up.stdout.contains("warning: --audit-lock compliance"), "{}", up.stdout);
    assert_eq!(lock_of(&acct, AUDIT), Some((ObjectLockRetentionMode::Compliance, Some(365))));
    assert_eq!(lock_of(&acct, TRAIL), Some((ObjectLockRetentionMode::Compliance, Some(365))));
    let (version, _, _) = put(&acct, AUDIT, "events/locked.json");
    let (mode, until) = retention_of(&acct, AUDIT, "events/locked.json", &version);
    assert_eq!(mode, ObjectLockRetentionMode::Compliance);
    // What is not locked goes: a delete marker on top of the locked version.
    acct.block_on(async { acct.s3.delete_object().bucket(AUDIT).key("events/locked.json").send().await.unwrap() });

    let destroy = acct.run(&["destroy", "--suffix", "qa", "--yes"]);
    assert_ne!(destroy.code, 0, "{}\n{}", destroy.stdout, destroy.stderr);
    let said = format!("{}\n{}", destroy.stdout, destroy.stderr);
    for part in [AUDIT, &day(&until), "COMPLIANCE", "not even the account's root user", "KMS key"] {
        assert!(said.contains(part), "{part:?} missing:\n{said}");
    }
    // The locked version and its bucket stay, with what they need: the key (the objects are
    // encrypted with it) and the bucket the access logs go to. Nothing else of the stack does.
    let body_there = acct.block_on(async {
        acct.s3.head_object().bucket(AUDIT).key("events/locked.json").version_id(&version).send().await.is_ok()
    });
    assert!(body_there);
    assert_eq!(acct.block_on(enabled_keys(&acct, "qa")).len(), 1, "the key stays while objects need it");
    let left: Vec<(&str, Vec<String>)> = inventory(&acct, "qa").into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let kinds: Vec<&str> = left.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, ["bucket", "kms-key"], "everything else is gone: {left:?}");
    assert_eq!(left[0].1, [AUDIT, LOGS], "the trail bucket went: it held nothing locked");
    assert_eq!(left[1].1.len(), 1);
    let versions = acct.block_on(async {
        let v = acct.s3.list_object_versions().bucket(AUDIT).send().await.unwrap();
        (v.versions().len(), v.delete_markers().len())
    });
    assert_eq!(versions, (1, 0), "the delete marker went, the locked version stayed");
}

#[test]
fn a_new_bucket_not_yet_visible_to_its_configuration_calls_is_retried_until_s3_sees_it() {
    let acct = Account::new();
    // Right after CreateBucket, S3 may answer NoSuchBucket (catalogue::S3_NEW_BUCKET).
    acct.proxy.answer(Answer::new(
        &format!("s3:PUT /{AUDIT}"),
        "object-lock",
        2,
        404,
        "NoSuchBucket",
        "The specified bucket does not exist",
    ));
    acct.proxy.answer(Answer::new(
        &format!("s3:PUT /{LOGS}"),
        "publicAccessBlock",
        1,
        404,
        "NoSuchBucket",
        "The specified bucket does not exist",
    ));
    let up = acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(acct.proxy.answered().len(), 3, "{:?}", acct.proxy.answered());
    assert!(up.stderr.contains("S3 to propagate a bucket created moments ago"), "{}", up.stderr);
    assert_eq!(lock_of(&acct, AUDIT), Some((ObjectLockRetentionMode::Governance, Some(365))));
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}
