//! The data layer: table, audit bucket, alerts topic, log groups, secrets and parameters, read
//! back from the emulator; secrets never leak; drift is detected and repaired; a data-holding
//! resource is never replaced unless the user says so.

use super::harness::Account;
use super::readback::{inventory, leftovers};
use aws_sdk_dynamodb::types::{BillingMode, KeyType, PointInTimeRecoveryStatus};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ObjectOwnership, ServerSideEncryption, TransitionStorageClass};
use aws_sdk_ssm::types::ParameterType;

const BUCKET: &str = "payments-audit-123456789012-us-east-1-qa";

fn key_arn(acct: &Account) -> String {
    acct.block_on(async {
        let k = acct.kms.describe_key().key_id("alias/payments-qa").send().await.unwrap();
        k.key_metadata().unwrap().arn().unwrap().to_string()
    })
}

#[test]
fn up_builds_the_data_layer_with_every_property_read_back() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let key = key_arn(&acct);
    acct.block_on(async {
        // DynamoDB: on-demand, pk/sk, three GSIs by time, SSE with the CMK, PITR, no deletion protection.
        let t = acct.dynamodb.describe_table().table_name("transactions-qa").send().await.unwrap();
        let t = t.table().unwrap();
        assert_eq!(t.billing_mode_summary().and_then(|b| b.billing_mode()), Some(&BillingMode::PayPerRequest));
        let keys: Vec<(&str, &KeyType)> = t.key_schema().iter().map(|k| (k.attribute_name(), k.key_type())).collect();
        assert_eq!(keys, vec![("pk", &KeyType::Hash), ("sk", &KeyType::Range)]);
        let mut gsis: Vec<(String, String, String)> = t
            .global_secondary_indexes()
            .iter()
            .map(|g| {
                let k = g.key_schema();
                (
                    g.index_name().unwrap().to_string(),
                    k[0].attribute_name().to_string(),
                    k[1].attribute_name().to_string(),
                )
            })
            .collect();
        gsis.sort();
        assert_eq!(
            gsis,
            vec![
                ("by-card".into(), "card_fingerprint".into(), "created_at".into()),
                ("by-merchant".into(), "merchant_id".into(), "created_at".into()),
                ("by-status".into(), "status".into(), "created_at".into()),
            ]
        );
        assert_eq!(t.sse_description().and_then(|s| s.kms_master_key_arn()), Some(key.as_str()));
        assert_ne!(t.deletion_protection_enabled(), Some(true));
        let b = acct.dynamodb.describe_continuous_backups().table_name("transactions-qa").send().await.unwrap();
        let pitr = b.continuous_backups_description().and_then(|d| d.point_in_time_recovery_description());
        assert_eq!(pitr.and_then(|p| p.point_in_time_recovery_status()), Some(&PointInTimeRecoveryStatus::Enabled));

        // S3 audit bucket.
        let s3 = &acct.s3;
        let v = s3.get_bucket_versioning().bucket(BUCKET).send().await.unwrap();
        assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
        let enc = s3.get_bucket_encryption().bucket(BUCKET).send().await.unwrap();
        let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
        let by_default = rule.apply_server_side_encryption_by_default().unwrap();
        assert_eq!(by_default.sse_algorithm(), &ServerSideEncryption::AwsKms);
        assert_eq!(by_default.kms_master_key_id(), Some(key.as_str()));
        assert_eq!(rule.bucket_key_enabled(), Some(true));
        let pab = s3.get_public_access_block().bucket(BUCKET).send().await.unwrap();
        let pab = pab.public_access_block_configuration().unwrap();
        assert!(pab.block_public_acls() == Some(true) && pab.ignore_public_acls() == Some(true));
        assert!(pab.block_public_policy() == Some(true) && pab.restrict_public_buckets() == Some(true));
        let own = s3.get_bucket_ownership_controls().bucket(BUCKET).send().await.unwrap();
        assert_eq!(
            own.ownership_controls().unwrap().rules()[0].object_ownership(),
            &ObjectOwnership::BucketOwnerEnforced
        );
        let policy = s3.get_bucket_policy().bucket(BUCKET).send().await.unwrap();
        let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
        let stmts = policy["Statement"].as_array().unwrap();
        assert!(stmts
            .iter()
            .any(|s| s["Effect"] == "Deny" && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"));
        assert!(stmts
            .iter()
            .any(|s| s["Effect"] == "Deny" && s["Condition"]["NumericLessThan"]["s3:TlsVersion"] == "1.2"));
        let lc = s3.get_bucket_lifecycle_configuration().bucket(BUCKET).send().await.unwrap();
        let r = &lc.rules()[0];
        assert_eq!(r.transitions()[0].days(), Some(90));
        assert_eq!(r.transitions()[0].storage_class(), Some(&TransitionStorageClass::Glacier));
        assert_eq!(r.expiration().and_then(|e| e.days()), Some(365));
        assert_eq!(r.noncurrent_version_transitions()[0].noncurrent_days(), Some(90));
        assert_eq!(r.noncurrent_version_expiration().and_then(|e| e.noncurrent_days()), Some(365));
        assert_eq!(r.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()), Some(7));
        // Only objects of 128 KB and more transition: a 1 KB event stays in Standard (cheaper).
        assert_eq!(lc.transition_default_minimum_object_size().map(|m| m.as_str()), Some("all_storage_classes_128K"));
        let tags = s3.get_bucket_tagging().bucket(BUCKET).send().await.unwrap();
        assert!(tags.tag_set().iter().any(|t| t.key() == "EnvironmentSuffix" && t.value() == "qa"));

        // SNS topic with the CMK.
        let topic = "arn:aws:sns:us-east-1:123456789012:payment-alerts-qa";
        let attrs = acct.sns.get_topic_attributes().topic_arn(topic).send().await.unwrap();
        assert_eq!(attrs.attributes().unwrap().get("KmsMasterKeyId"), Some(&key));

        // Log groups: one per function, the API's, the WAF's, the trail's and the flow log's: 365
        // days, the CMK.
        let groups = acct.logs.describe_log_groups().send().await.unwrap();
        let ours: Vec<_> =
            groups.log_groups().iter().filter(|g| g.log_group_name().unwrap().ends_with("-qa")).collect();
        assert_eq!(ours.len(), 8, "{ours:?}");
        for g in ours {
            assert_eq!(g.retention_in_days(), Some(365), "{:?}", g.log_group_name());
            assert_eq!(g.kms_key_id(), Some(key.as_str()), "{:?}", g.log_group_name());
        }

        // Secrets: generated values, encrypted with the CMK.
        for name in ["payments/qa/db-master", "payments/qa/card-fingerprint-key"] {
            let d = acct.secrets.describe_secret().secret_id(name).send().await.unwrap();
            assert_eq!(d.kms_key_id(), Some(key.as_str()), "{name}");
        }
        let db = acct.secrets.get_secret_value().secret_id("payments/qa/db-master").send().await.unwrap();
        let db: serde_json::Value = serde_json::from_str(db.secret_string().unwrap()).unwrap();
        assert_eq!(db["username"], "payments_admin");
        assert_eq!(db["password"].as_str().unwrap().len(), 32);
        let hmac = acct.secrets.get_secret_value().secret_id("payments/qa/card-fingerprint-key").send().await.unwrap();
        assert_eq!(hmac.secret_string().unwrap().len(), 64);

        // Parameter Store: every value the functions read; fraud thresholds as SecureStrings.
        let mut params = Vec::new();
        let mut pages = acct
            .ssm
            .get_parameters_by_path()
            .path("/payments/qa/")
            .recursive(true)
            .with_decryption(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            params.extend(page.unwrap().parameters().to_vec());
        }
        assert_eq!(params.len(), 23);
        let get = |n: &str| params.iter().find(|p| p.name() == Some(&format!("/payments/qa/{n}"))).unwrap().clone();
        assert_eq!(get("resources/table-name").value(), Some("transactions-qa"));
        assert_eq!(get("resources/audit-bucket").value(), Some(BUCKET));
        assert_eq!(get("resources/alerts-topic-arn").value(), Some(topic));
        assert!(get("resources/db-secret-arn").value().unwrap().contains("payments/qa/db-master"));
        assert_eq!(get("fraud/review-amount-minor").r#type(), Some(&ParameterType::SecureString));
        assert_eq!(get("fraud/review-amount-minor").value(), Some("100000"));
        assert_eq!(get("payments/allowed-currencies").r#type(), Some(&ParameterType::String));

        // Aurora PostgreSQL Serverless v2.
        let c = acct.rds.describe_db_clusters().db_cluster_identifier("payment-db-qa").send().await.unwrap();
        let c = &c.db_clusters()[0];
        assert_eq!(c.engine(), Some("aurora-postgresql"));
        assert_eq!(c.engine_version(), Some("16.6"));
        let scaling = c.serverless_v2_scaling_configuration().unwrap();
        assert_eq!((scaling.min_capacity(), scaling.max_capacity()), (Some(0.5), Some(4.0)));
        assert_eq!(c.storage_encrypted(), Some(true));
        assert_eq!(c.kms_key_id(), Some(key.as_str()));
        assert_eq!(c.backup_retention_period(), Some(1));
        assert_eq!(c.deletion_protection(), Some(false));
        assert_eq!(c.iam_database_authentication_enabled(), Some(true));
        assert_eq!(c.enabled_cloudwatch_logs_exports(), ["postgresql".to_string()]);
        assert_eq!(c.copy_tags_to_snapshot(), Some(true));
        assert_eq!(c.db_subnet_group(), Some("payment-db-subnets-qa"));
        assert_eq!(c.db_cluster_parameter_group(), Some("payment-db-params-qa"));
        assert_eq!(get("db/writer-endpoint").value(), c.endpoint());
        assert_eq!(get("db/reader-endpoint").value(), c.reader_endpoint());
        let sgs = acct
            .ec2
            .describe_security_groups()
            .filters(aws_sdk_ec2::types::Filter::builder().name("tag:tap:member").values("database").build())
            .send()
            .await
            .unwrap();
        let db_sg = sgs.security_groups()[0].group_id().unwrap();
        let groups: Vec<&str> = c.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id()).collect();
        assert_eq!(groups, vec![db_sg]);

        let instances = acct.rds.describe_db_instances().send().await.unwrap();
        let mut instances: Vec<_> =
            instances.db_instances().iter().filter(|i| i.db_cluster_identifier() == Some("payment-db-qa")).collect();
        instances.sort_by_key(|i| i.promotion_tier());
        assert_eq!(instances.len(), 2, "a writer and one reader");
        assert_eq!(instances[0].db_instance_identifier(), Some("payment-db-writer-qa"));
        assert_eq!((instances[0].promotion_tier(), instances[1].promotion_tier()), (Some(0), Some(1)));
        assert!(instances.iter().all(|i| i.db_instance_class() == Some("db.serverless")));
        assert_ne!(instances[0].availability_zone(), instances[1].availability_zone(), "the reader is in another AZ");
        assert!(instances.iter().all(|i| i.publicly_accessible() != Some(true)));

        let pg = acct
            .rds
            .describe_db_cluster_parameters()
            .db_cluster_parameter_group_name("payment-db-params-qa")
            .send()
            .await
            .unwrap();
        let force_ssl = pg.parameters().iter().find(|p| p.parameter_name() == Some("rds.force_ssl"));
        assert_eq!(force_ssl.and_then(|p| p.parameter_value()), Some("1"));
        let sg =
            acct.rds.describe_db_subnet_groups().db_subnet_group_name("payment-db-subnets-qa").send().await.unwrap();
        let mut sg_subnets: Vec<String> =
            sg.db_subnet_groups()[0].subnets().iter().filter_map(|s| s.subnet_identifier().map(String::from)).collect();
        sg_subnets.sort();
        let subnets = acct
            .ec2
            .describe_subnets()
            .filters(aws_sdk_ec2::types::Filter::builder().name("tag:EnvironmentSuffix").values("qa").build())
            .send()
            .await
            .unwrap();
        let mut db_subnets: Vec<String> = subnets
            .subnets()
            .iter()
            .filter(|s| {
                s.tags()
                    .iter()
                    .any(|t| t.key() == Some("tap:member") && t.value().is_some_and(|v| v.starts_with("database")))
            })
            .filter_map(|s| s.subnet_id().map(String::from))
            .collect();
        db_subnets.sort();
        assert_eq!(sg_subnets, db_subnets, "the cluster lives in the database subnets only");
    });
    let outputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.outputs.json")).unwrap()).unwrap();
    assert_eq!(outputs["transactions_table"], "transactions-qa");
    assert_eq!(outputs["audit_bucket"], BUCKET);
    assert_eq!(outputs["parameter_prefix"], "/payments/qa");
    assert!(outputs["db_writer_endpoint"].as_str().unwrap().contains("payment-db-qa"));
    assert!(outputs["db_reader_endpoint"].as_str().unwrap().contains("payment-db-qa"));
    assert!(outputs["db_secret_arn"].as_str().unwrap().starts_with("arn:aws:secretsmanager:"));
}

#[test]
fn no_secret_value_reaches_the_state_files_or_anything_tapctl_prints() {
    let acct = Account::new();
    let mut printed = String::new();
    for args in [
        vec!["up", "--suffix", "qa"],
        vec!["up", "--suffix", "qa", "--json"],
        vec!["plan", "--suffix", "qa", "--json"],
        vec!["status", "--suffix", "qa", "--json"],
        vec!["status", "--suffix", "qa"],
    ] {
        let r = acct.ok(&args);
        printed.push_str(&r.stdout);
        printed.push_str(&r.stderr);
    }
    let (password, hmac) = acct.block_on(async {
        let db = acct.secrets.get_secret_value().secret_id("payments/qa/db-master").send().await.unwrap();
        let db: serde_json::Value = serde_json::from_str(db.secret_string().unwrap()).unwrap();
        let hmac = acct.secrets.get_secret_value().secret_id("payments/qa/card-fingerprint-key").send().await.unwrap();
        (db["password"].as_str().unwrap().to_string(), hmac.secret_string().unwrap().to_string())
    });
    assert!(password.len() >= 32 && hmac.len() >= 64, "the search must look for real secrets");
    let mut files = String::new();
    for entry in std::fs::read_dir(acct.state_dir.path()).unwrap() {
        files.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    assert!(files.contains("payments/qa/db-master"), "the state names the secret (its ARN)");
    for (what, haystack) in [("the state dir", &files), ("tapctl's output", &printed)] {
        assert!(!haystack.contains(&password), "the database password leaked into {what}");
        assert!(!haystack.contains(&hmac), "the fingerprint key leaked into {what}");
        assert!(!haystack.contains(&password[..16]), "part of the database password leaked into {what}");
    }
}

#[test]
fn plan_detects_and_up_repairs_data_drift_without_replacing_the_table() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let (table_arn, created) = acct.block_on(async {
        let t = acct.dynamodb.describe_table().table_name("transactions-qa").send().await.unwrap();
        let t = t.table().unwrap();
        (t.table_arn().unwrap().to_string(), t.creation_date_time().cloned())
    });
    acct.block_on(async {
        acct.dynamodb
            .update_table()
            .table_name("transactions-qa")
            .global_secondary_index_updates(
                aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                    .delete(
                        aws_sdk_dynamodb::types::DeleteGlobalSecondaryIndexAction::builder()
                            .index_name("by-status")
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        acct.dynamodb
            .update_continuous_backups()
            .table_name("transactions-qa")
            .point_in_time_recovery_specification(
                aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(false)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        acct.s3
            .put_bucket_versioning()
            .bucket(BUCKET)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build(),
            )
            .send()
            .await
            .unwrap();
        acct.s3.delete_bucket_lifecycle().bucket(BUCKET).send().await.unwrap();
        acct.ssm
            .put_parameter()
            .name("/payments/qa/payments/max-amount-minor")
            .value("999999999")
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode", "--json"]);
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let node = |id: &str| plan["resources"].as_array().unwrap().iter().find(|n| n["node"] == id).unwrap().clone();
    assert_eq!(node("tables.transactions")["action"], "update", "a PITR change is an update, never a replace");
    // Each change as a person reads it: "field: current → wanted".
    let changes = |id: &str| -> Vec<String> {
        let text = |c: &serde_json::Value, k: &str| c[k].as_str().unwrap().to_string();
        let all = node(id)["changes"].as_array().unwrap().clone();
        all.iter().map(|c| format!("{}: {} → {}", text(c, "field"), text(c, "current"), text(c, "wanted"))).collect()
    };
    let table = changes("tables.transactions");
    assert!(table.contains(&"point-in-time recovery: off → on".to_string()), "{table:#?}");
    assert!(table.iter().any(|c| c.starts_with("GSI by-status: missing → ")), "{table:#?}");
    let bucket = changes("storage.audit-bucket");
    assert!(bucket.contains(&"versioning: off → on".to_string()), "{bucket:#?}");
    assert!(bucket.iter().any(|c| c.starts_with("lifecycle rule audit-retention: missing → ")), "{bucket:#?}");
    let params = changes("params.config");
    assert!(
        params.contains(&"parameter /payments/qa/payments/max-amount-minor: another value → the stack's value".into()),
        "{params:#?}"
    );
    assert!(!plan.to_string().contains("999999999"), "plan does not show parameter values");

    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
    acct.block_on(async {
        let t = acct.dynamodb.describe_table().table_name("transactions-qa").send().await.unwrap();
        let t = t.table().unwrap();
        assert_eq!(
            (t.table_arn().unwrap().to_string(), t.creation_date_time().cloned()),
            (table_arn, created),
            "not replaced"
        );
        let v = acct.s3.get_bucket_versioning().bucket(BUCKET).send().await.unwrap();
        assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
        let p = acct.ssm.get_parameter().name("/payments/qa/payments/max-amount-minor").send().await.unwrap();
        assert_eq!(p.parameter().unwrap().value(), Some("10000000"));
        assert!(acct.s3.get_bucket_lifecycle_configuration().bucket(BUCKET).send().await.is_ok());
    });
}

#[test]
fn a_changed_table_key_schema_is_refused_unless_replacement_is_allowed() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    // Someone re-created the table with another key, and it holds a record.
    acct.block_on(async {
        use aws_sdk_dynamodb::types::{AttributeDefinition, AttributeValue, KeySchemaElement, ScalarAttributeType};
        acct.dynamodb.delete_table().table_name("transactions-qa").send().await.unwrap();
        acct.dynamodb
            .create_table()
            .table_name("transactions-qa")
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
            .send()
            .await
            .unwrap();
        acct.dynamodb
            .put_item()
            .table_name("transactions-qa")
            .item("id", AttributeValue::S("t-1".into()))
            .send()
            .await
            .unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2);
    assert!(plan.stdout.contains("! tables.transactions") && plan.stdout.contains("key schema"), "{}", plan.stdout);

    let up = acct.run(&["up", "--suffix", "qa"]);
    assert_eq!(up.code, 1);
    assert!(up.stderr.contains("[ReplaceRefused]") && up.stderr.contains("--allow-replace"), "{}", up.stderr);
    let items =
        acct.block_on(async { acct.dynamodb.scan().table_name("transactions-qa").send().await.unwrap().count() });
    assert_eq!(items, 1, "the record survives a refused replace");

    acct.ok(&["up", "--suffix", "qa", "--allow-replace"]);
    acct.block_on(async {
        let t = acct.dynamodb.describe_table().table_name("transactions-qa").send().await.unwrap();
        let keys: Vec<&str> = t.table().unwrap().key_schema().iter().map(|k| k.attribute_name()).collect();
        assert_eq!(keys, vec!["pk", "sk"]);
    });
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

#[test]
fn destroy_empties_a_bucket_of_many_versions_and_delete_markers_and_leaves_nothing() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let versions = acct.block_on(async {
        let mut n = 0;
        for i in 0..420 {
            for v in 0..3 {
                let key = format!("events/2026/11/24/{i:04}.json");
                acct.s3
                    .put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(ByteStream::from(format!("{{\"v\":{v}}}").into_bytes()))
                    .send()
                    .await
                    .unwrap();
                n += 1;
            }
            if i % 4 == 0 {
                // A delete marker on top of the versions.
                acct.s3
                    .delete_objects()
                    .bucket(BUCKET)
                    .delete(
                        aws_sdk_s3::types::Delete::builder()
                            .objects(
                                aws_sdk_s3::types::ObjectIdentifier::builder()
                                    .key(format!("events/2026/11/24/{i:04}.json"))
                                    .build()
                                    .unwrap(),
                            )
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await
                    .unwrap();
                n += 1;
            }
        }
        n
    });
    assert!(versions > 1000, "more than one DeleteObjects batch: {versions}");
    let destroy = acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert!(destroy.stderr.contains(&format!("{versions} versions removed")), "{}", destroy.stderr);
    assert_eq!(leftovers(&acct, "qa"), Vec::<String>::new());
    assert!(inventory(&acct, "qa").values().all(Vec::is_empty));
}

#[test]
fn an_aurora_cluster_of_another_engine_is_never_replaced_and_plan_says_why() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    // Someone replaced the cluster by one of another engine, under the same name.
    acct.block_on(async {
        for id in ["payment-db-writer-qa", "payment-db-reader-1-qa"] {
            acct.rds.delete_db_instance().db_instance_identifier(id).send().await.unwrap();
        }
        acct.rds
            .delete_db_cluster()
            .db_cluster_identifier("payment-db-qa")
            .skip_final_snapshot(true)
            .send()
            .await
            .unwrap();
        acct.rds
            .create_db_cluster()
            .db_cluster_identifier("payment-db-qa")
            .engine("aurora-mysql")
            .engine_version("8.0.mysql_aurora.3.08.0")
            .master_username("admin")
            .master_user_password("another-password-1")
            .send()
            .await
            .unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2);
    assert!(plan.stdout.contains("! database.cluster") && plan.stdout.contains("engine"), "{}", plan.stdout);
    for args in [vec!["up", "--suffix", "qa"], vec!["up", "--suffix", "qa", "--allow-replace"]] {
        let up = acct.run(&args);
        assert_eq!(up.code, 1, "{args:?}");
        assert!(up.stderr.contains("[ReplaceRefused]"), "{}", up.stderr);
    }
    let engine = acct.block_on(async {
        let c = acct.rds.describe_db_clusters().db_cluster_identifier("payment-db-qa").send().await.unwrap();
        c.db_clusters()[0].engine().map(String::from)
    });
    assert_eq!(engine.as_deref(), Some("aurora-mysql"), "the cluster is left as it is");
}

#[test]
fn the_stacks_key_strayed_out_of_band_is_named_by_plan_and_repaired_in_place_by_up() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    let arn = key_arn(&acct);
    let policy_of = || {
        acct.block_on(async {
            let p = acct.kms.get_key_policy().key_id(&arn).policy_name("default").send().await.unwrap();
            serde_json::from_str::<serde_json::Value>(p.policy().unwrap()).unwrap()
        })
    };
    let built = policy_of();
    let id = arn.rsplit('/').next().unwrap().to_string();
    acct.block_on(async {
        acct.kms.disable_key_rotation().key_id(&id).send().await.unwrap();
        acct.kms.disable_key().key_id(&id).send().await.unwrap();
        acct.kms.delete_alias().alias_name("alias/payments-qa").send().await.unwrap();
        let mut wide = built.clone();
        wide["Statement"].as_array_mut().unwrap().push(serde_json::json!({
            "Sid": "AnyoneInTheAccount", "Effect": "Allow",
            "Principal": { "AWS": "arn:aws:iam::123456789012:root" }, "Action": "kms:*", "Resource": "*"
        }));
        acct.kms.put_key_policy().key_id(&id).policy_name("default").policy(wide.to_string()).send().await.unwrap();
    });
    let changes = acct.planned_update("kms.key");
    assert_eq!(changes.len(), 4, "{changes:#?}");
    assert_eq!(changes[0], "key state: disabled → enabled");
    assert_eq!(changes[1], "automatic rotation: off → on");
    assert_eq!(changes[2], "key policy: also allows kms:* → the stack's key policy");
    assert_eq!(changes[3], format!("alias alias/payments-qa: missing → key {id}"));

    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(key_arn(&acct), arn, "the same key, repaired in place, and the alias names it again");
    acct.block_on(async {
        let meta = acct.kms.describe_key().key_id(&id).send().await.unwrap();
        assert_eq!(meta.key_metadata().unwrap().key_state(), Some(&aws_sdk_kms::types::KeyState::Enabled));
        let rotation = acct.kms.get_key_rotation_status().key_id(&id).send().await.unwrap();
        assert!(rotation.key_rotation_enabled());
    });
    assert_eq!(policy_of(), built, "the policy as built, the wide statement gone");
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}
