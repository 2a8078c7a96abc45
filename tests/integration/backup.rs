//! Backups and recovery (PCI DSS 12.10.1, 10.5.1, 3.5.1): `backup.vault` and `backup.plan` read
//! back from the emulated account with the Backup, KMS and IAM SDKs in both regions — the vault
//! and its key, the plan's rule and copy action, the copy region's vault and key, the selection —
//! made through AWS Backup's propagation answers, changed out of band (named by plan, repaired by
//! up), and destroyed with the recovery points they hold, nothing of the suffix left.

use super::harness::{Account, Answer};
use serde_json::Value;
use std::collections::BTreeSet;

const VAULT: &str = "payments-qa";
const PLAN: &str = "payments-qa";
const ROLE: &str = "payments-backup-qa";
const COPY_ALIAS: &str = "alias/payments-qa-backup";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const COPY_REGION: &str = "us-west-2";

fn backup(acct: &Account, region: &str) -> aws_sdk_backup::Client {
    aws_sdk_backup::Client::from_conf(
        aws_sdk_backup::config::Builder::from(&acct.via_proxy())
            .region(aws_sdk_backup::config::Region::new(region.to_string()))
            .build(),
    )
}

fn kms(acct: &Account, region: &str) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&acct.via_proxy())
            .region(aws_sdk_kms::config::Region::new(region.to_string()))
            .build(),
    )
}

fn outputs(acct: &Account) -> Value {
    serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.outputs.json")).unwrap()).unwrap()
}

/// The live plan's id, by name.
fn plan_id(acct: &Account) -> Option<String> {
    let b = backup(acct, REGION);
    acct.block_on(async {
        let plans = b.list_backup_plans().send().await.unwrap();
        plans
            .backup_plans_list()
            .iter()
            .find(|p| p.backup_plan_name() == Some(PLAN) && p.deletion_date().is_none())
            .and_then(|p| p.backup_plan_id().map(str::to_string))
    })
}

/// The resources of the plan's selections.
fn selected(acct: &Account, plan: &str) -> Vec<(String, BTreeSet<String>)> {
    let b = backup(acct, REGION);
    acct.block_on(async {
        let mut v = Vec::new();
        for s in b.list_backup_selections().backup_plan_id(plan).send().await.unwrap().backup_selections_list() {
            let got = b
                .get_backup_selection()
                .backup_plan_id(plan)
                .selection_id(s.selection_id().unwrap())
                .send()
                .await
                .unwrap();
            let sel = got.backup_selection().unwrap();
            assert_eq!(sel.iam_role_arn(), format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}"));
            v.push((sel.selection_name().to_string(), sel.resources().iter().cloned().collect()));
        }
        v
    })
}

fn cluster_and_table() -> BTreeSet<String> {
    BTreeSet::from([
        format!("arn:aws:rds:{REGION}:{ACCOUNT}:cluster:payment-db-qa"),
        format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/transactions-qa"),
    ])
}

/// Everything the two nodes own, read back in both regions.
fn assert_backups_as_built(acct: &Account, retention: i64) {
    let out = outputs(acct);
    let stack_key = out["kms_key_arn"].as_str().unwrap().to_string();
    let b = backup(acct, REGION);
    let v = acct.block_on(async { b.describe_backup_vault().backup_vault_name(VAULT).send().await.unwrap() });
    assert_eq!(v.encryption_key_arn(), Some(stack_key.as_str()), "the vault is encrypted with the stack's key");
    let vault_arn = format!("arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:{VAULT}");
    assert_eq!(v.backup_vault_arn(), Some(vault_arn.as_str()));
    assert_eq!(out["backup_vault_arn"], vault_arn);
    let tags = acct.block_on(async { b.list_tags().resource_arn(&vault_arn).send().await.unwrap() });
    let tags = tags.tags().unwrap();
    assert_eq!(tags.get("EnvironmentSuffix").map(String::as_str), Some("qa"));
    assert_eq!(tags.get("tap:resource").map(String::as_str), Some("backup.vault"));

    // The copy region: a customer key there (rotation on, its alias), and the vault encrypted with it.
    let copy_vault_arn = format!("arn:aws:backup:{COPY_REGION}:{ACCOUNT}:backup-vault:{VAULT}");
    assert_eq!(out["backup_copy_vault_arn"], copy_vault_arn);
    let bw = backup(acct, COPY_REGION);
    let cv = acct.block_on(async { bw.describe_backup_vault().backup_vault_name(VAULT).send().await.unwrap() });
    let copy_key = cv.encryption_key_arn().expect("the copy vault names its key").to_string();
    assert!(copy_key.starts_with(&format!("arn:aws:kms:{COPY_REGION}:{ACCOUNT}:key/")), "{copy_key}");
    let kw = kms(acct, COPY_REGION);
    let (meta, rotation, alias) = acct.block_on(async {
        let meta = kw.describe_key().key_id(&copy_key).send().await.unwrap().key_metadata().unwrap().clone();
        let rotation = kw.get_key_rotation_status().key_id(&copy_key).send().await.unwrap().key_rotation_enabled();
        let alias = kw
            .describe_key()
            .key_id(COPY_ALIAS)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .arn()
            .map(str::to_string);
        (meta, rotation, alias)
    });
    assert_eq!(meta.key_manager(), Some(&aws_sdk_kms::types::KeyManagerType::Customer), "a customer key");
    assert_eq!(meta.key_state(), Some(&aws_sdk_kms::types::KeyState::Enabled));
    assert!(rotation, "rotation on");
    assert_eq!(alias.as_deref(), Some(copy_key.as_str()), "{COPY_ALIAS} names it");

    // The plan: one daily rule at 05:00 UTC into the vault, kept `retention` days, copied for as long.
    let id = plan_id(acct).expect("the plan");
    assert_eq!(out["backup_plan_id"], id);
    let p = acct.block_on(async { b.get_backup_plan().backup_plan_id(&id).send().await.unwrap() });
    let rules = p.backup_plan().unwrap().rules();
    assert_eq!(rules.len(), 1, "{rules:#?}");
    let r = &rules[0];
    assert_eq!(r.rule_name(), "daily");
    assert_eq!(r.target_backup_vault_name(), VAULT);
    assert_eq!(r.schedule_expression(), Some("cron(0 5 ? * * *)"));
    assert_eq!(r.schedule_expression_timezone(), Some("Etc/UTC"));
    assert_eq!(r.lifecycle().and_then(|l| l.delete_after_days()), Some(retention));
    assert_eq!(r.lifecycle().and_then(|l| l.move_to_cold_storage_after_days()), None, "no cold storage");
    let copies: Vec<(String, Option<i64>)> = r
        .copy_actions()
        .iter()
        .map(|c| (c.destination_backup_vault_arn().to_string(), c.lifecycle().and_then(|l| l.delete_after_days())))
        .collect();
    assert_eq!(copies, vec![(copy_vault_arn, Some(retention))]);

    // The selection: exactly the cluster and the table, through the backup role.
    assert_eq!(selected(acct, &id), vec![("payments-qa".to_string(), cluster_and_table())]);
    let attached = acct.block_on(async {
        let a = acct.iam.list_attached_role_policies().role_name(ROLE).send().await.unwrap();
        a.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect::<BTreeSet<_>>()
    });
    assert_eq!(
        attached,
        BTreeSet::from([
            "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup".to_string(),
            "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores".to_string(),
        ])
    );
    let trust = acct.block_on(async {
        acct.iam
            .get_role()
            .role_name(ROLE)
            .send()
            .await
            .unwrap()
            .role()
            .unwrap()
            .assume_role_policy_document()
            .unwrap()
            .to_string()
    });
    let trust: Value = serde_json::from_str(&percent_encoding::percent_decode_str(&trust).decode_utf8_lossy()).unwrap();
    assert_eq!(trust["Statement"][0]["Principal"]["Service"], "backup.amazonaws.com");
}

/// A recovery point in the vault of `region`, as a backup job leaves it.
fn recovery_point(acct: &Account, region: &str, resource: &str) -> String {
    let b = backup(acct, region);
    acct.block_on(async {
        b.start_backup_job()
            .backup_vault_name(VAULT)
            .resource_arn(resource)
            .iam_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}"))
            .send()
            .await
            .unwrap()
            .recovery_point_arn()
            .unwrap()
            .to_string()
    })
}

#[test]
fn the_backups_are_made_through_aws_backups_answers_repaired_when_changed_and_destroyed_with_their_points() {
    let acct = Account::with_stub_packages();
    // What AWS Backup answers while a role made moments ago has not reached it (terraform
    // `backup/selection.go` retries it).
    acct.proxy.answer(Answer::new(
        "backup:PUT /backup/plans/",
        ROLE,
        2,
        400,
        "InvalidParameterValueException",
        &format!("IAM Role arn:aws:iam::{ACCOUNT}:role/{ROLE} cannot be assumed by AWS Backup"),
    ));
    // The account's detective controls are another part's (account_controls.rs): left alone here.
    acct.ok(&["up", "--suffix", "qa", "--backup-copy-region", COPY_REGION, "--no-account-controls"]);
    let answered: Vec<_> = acct.proxy.answered().into_iter().filter(|(c, _)| c.0.starts_with("backup:")).collect();
    assert_eq!(answered.len(), 2, "both answers were waited out: {answered:?}");
    assert_backups_as_built(&acct, 35);
    let id = plan_id(&acct).unwrap();

    // Out of band: the retention cut to 7 days and the copy rule removed; the selection deleted.
    let b = backup(&acct, REGION);
    acct.block_on(async {
        let rule = aws_sdk_backup::types::BackupRuleInput::builder()
            .rule_name("daily")
            .target_backup_vault_name(VAULT)
            .schedule_expression("cron(0 5 ? * * *)")
            .schedule_expression_timezone("Etc/UTC")
            .lifecycle(aws_sdk_backup::types::Lifecycle::builder().delete_after_days(7).build())
            .build()
            .unwrap();
        let plan =
            aws_sdk_backup::types::BackupPlanInput::builder().backup_plan_name(PLAN).rules(rule).build().unwrap();
        b.update_backup_plan().backup_plan_id(&id).backup_plan(plan).send().await.unwrap();
        let sel = b.list_backup_selections().backup_plan_id(&id).send().await.unwrap();
        for s in sel.backup_selections_list() {
            b.delete_backup_selection()
                .backup_plan_id(&id)
                .selection_id(s.selection_id().unwrap())
                .send()
                .await
                .unwrap();
        }
    });
    let plan = super::harness::planned_changes(&acct.drifted_plan(), "backup.plan").1;
    let copy_vault_arn = format!("arn:aws:backup:{COPY_REGION}:{ACCOUNT}:backup-vault:{VAULT}");
    for said in [
        "plan payments-qa rule daily retention: 7 days → 35 days".to_string(),
        format!("plan payments-qa rule daily copy to {COPY_REGION}: missing → {copy_vault_arn}"),
        "selection payments-qa: missing → Aurora cluster payment-db-qa, table transactions-qa".to_string(),
    ] {
        assert!(plan.contains(&said), "plan names {said:?}: {plan:#?}");
    }
    acct.ok(&["up", "--suffix", "qa"]);
    assert_backups_as_built(&acct, 35);

    // A selection that lost the table is named and made whole again.
    acct.block_on(async {
        let sel = b.list_backup_selections().backup_plan_id(&id).send().await.unwrap();
        for s in sel.backup_selections_list() {
            b.delete_backup_selection()
                .backup_plan_id(&id)
                .selection_id(s.selection_id().unwrap())
                .send()
                .await
                .unwrap();
        }
        let only_cluster = aws_sdk_backup::types::BackupSelection::builder()
            .selection_name("payments-qa")
            .iam_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}"))
            .resources(format!("arn:aws:rds:{REGION}:{ACCOUNT}:cluster:payment-db-qa"))
            .build()
            .unwrap();
        b.create_backup_selection().backup_plan_id(&id).backup_selection(only_cluster).send().await.unwrap();
    });
    let plan = super::harness::planned_changes(&acct.drifted_plan(), "backup.plan").1;
    let said = "selection payments-qa resources: Aurora cluster payment-db-qa → Aurora cluster payment-db-qa, table transactions-qa";
    assert!(plan.iter().any(|p| p == said), "plan names {said:?}: {plan:#?}");
    acct.ok(&["up", "--suffix", "qa"]);
    assert_backups_as_built(&acct, 35);

    // --backup-retention-days: applied to the rule and the copy.
    acct.ok(&["up", "--suffix", "qa", "--backup-retention-days", "90"]);
    assert_backups_as_built(&acct, 90);

    // Recovery points in both vaults; AWS Backup still counts a deleted one once.
    let table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/transactions-qa");
    recovery_point(&acct, REGION, &table);
    recovery_point(&acct, REGION, &format!("arn:aws:rds:{REGION}:{ACCOUNT}:cluster:payment-db-qa"));
    recovery_point(&acct, COPY_REGION, &table);
    // Only DeleteBackupVault: its request is the vault's path and an empty body ("payments-qa "),
    // where a DeleteRecoveryPoint's path goes on with the point's ARN.
    acct.proxy.answer(Answer::new(
        "backup:DELETE /backup-vaults/",
        &format!("{VAULT} "),
        1,
        400,
        "InvalidRequestException",
        "Backup vault cannot be deleted (contains 1 recovery points)",
    ));
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);

    // Nothing of the suffix in either region: no vault, plan, selection, recovery point, alias, role.
    for region in [REGION, COPY_REGION] {
        let b = backup(&acct, region);
        let (vaults, plans) = acct.block_on(async {
            let v = b.list_backup_vaults().send().await.unwrap();
            let p = b.list_backup_plans().send().await.unwrap();
            (
                v.backup_vault_list()
                    .iter()
                    .filter_map(|v| v.backup_vault_name().map(str::to_string))
                    .collect::<Vec<_>>(),
                p.backup_plans_list()
                    .iter()
                    .filter_map(|p| p.backup_plan_name().map(str::to_string))
                    .collect::<Vec<_>>(),
            )
        });
        assert!(vaults.is_empty(), "{region}: vaults left {vaults:?}");
        assert!(plans.is_empty(), "{region}: plans left {plans:?}");
        let points =
            acct.block_on(async { b.list_recovery_points_by_backup_vault().backup_vault_name(VAULT).send().await });
        assert!(points.is_err(), "{region}: the vault and its recovery points are gone");
    }
    let kw = kms(&acct, COPY_REGION);
    let aliases = acct.block_on(async { kw.list_aliases().send().await.unwrap() });
    assert!(aliases.aliases().iter().all(|a| a.alias_name() != Some(COPY_ALIAS)), "the copy key's alias is gone");
    let keys = acct.block_on(async { kw.list_keys().send().await.unwrap() });
    for k in keys.keys() {
        let meta = acct
            .block_on(async { kw.describe_key().key_id(k.key_id().unwrap()).send().await.unwrap() })
            .key_metadata()
            .cloned()
            .unwrap();
        if meta.key_manager() == Some(&aws_sdk_kms::types::KeyManagerType::Customer) {
            assert_eq!(meta.key_state(), Some(&aws_sdk_kms::types::KeyState::PendingDeletion), "{meta:?}");
        }
    }
    let role = acct.block_on(async { acct.iam.get_role().role_name(ROLE).send().await });
    assert!(role.is_err(), "the backup role is gone");
    let vault_deletes: Vec<_> =
        acct.proxy.answered().into_iter().filter(|(c, _)| c.0.starts_with("backup:DELETE /backup-vaults/")).collect();
    assert_eq!(vault_deletes.len(), 1, "the vault's lagging count was waited out: {vault_deletes:?}");
}

#[test]
fn backup_flags_are_refused_before_any_call_naming_the_flag_and_rule() {
    let acct = Account::with_stub_packages();
    for (args, said) in [
        (vec!["--backup-retention-days", "0"], vec!["--backup-retention-days", "between 1 and 36500", "got 0"]),
        (vec!["--backup-copy-region", REGION], vec!["--backup-copy-region", "the stack's own region"]),
        (vec!["--backup-copy-region", "mars-1"], vec!["--backup-copy-region", "not an AWS region name"]),
        (vec!["--backup-copy-region", "cn-north-1"], vec!["--backup-copy-region", "aws-cn partition"]),
    ] {
        acct.proxy.clear();
        let mut argv = vec!["up", "--suffix", "qa"];
        argv.extend(args.iter().copied());
        let refused = acct.run(&argv);
        assert_ne!(refused.code, 0, "{args:?}");
        for s in said {
            assert!(refused.stderr.contains(s), "{args:?}: the refusal names {s:?}: {}", refused.stderr);
        }
        assert!(acct.proxy.calls().is_empty(), "{args:?}: no AWS call: {:?}", acct.proxy.calls());
    }
}

/// The drill resources of the suffix the account holds: (tables, clusters).
fn drills(acct: &Account) -> (Vec<String>, Vec<String>) {
    acct.block_on(async {
        let tables = acct.dynamodb.list_tables().send().await.unwrap();
        let tables = tables.table_names().iter().filter(|t| t.starts_with("transactions-qa-drill-")).cloned().collect();
        let clusters = acct.rds.describe_db_clusters().send().await.unwrap();
        let clusters = clusters
            .db_clusters()
            .iter()
            .filter_map(|c| c.db_cluster_identifier())
            .filter(|c| c.starts_with("payments-qa-drill-"))
            .map(String::from)
            .collect();
        (tables, clusters)
    })
}

#[test]
fn a_restore_drill_makes_a_new_table_and_cluster_beside_the_live_ones_and_cleanup_and_destroy_remove_them() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa", "--no-account-controls"]);
    let out = outputs(&acct);
    let key = out["kms_key_arn"].as_str().unwrap().to_string();
    let db_group = out["database_security_group_id"].as_str().unwrap().to_string();
    let live_members = |acct: &Account| {
        acct.block_on(async {
            let c = acct.rds.describe_db_clusters().db_cluster_identifier("payment-db-qa").send().await.unwrap();
            let mut m: Vec<String> = c.db_clusters()[0]
                .db_cluster_members()
                .iter()
                .filter_map(|m| m.db_instance_identifier().map(String::from))
                .collect();
            m.sort();
            m
        })
    };
    let members_before = live_members(&acct);

    // A time in the future, or not RFC 3339, is refused before any call, naming the flag.
    for (when, said) in [("2999-01-01T00:00:00Z", "in the future"), ("yesterday", "RFC 3339")] {
        acct.proxy.clear();
        let refused = acct.run(&["restore", "--suffix", "qa", "--point-in-time", when]);
        assert_ne!(refused.code, 0);
        for s in ["--point-in-time", said] {
            assert!(refused.stderr.contains(s), "the refusal names {s:?}: {}", refused.stderr);
        }
        assert!(acct.proxy.calls().is_empty(), "no AWS call: {:?}", acct.proxy.calls());
    }

    let run = acct.ok(&["restore", "--suffix", "qa", "--json"]);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["command"], "restore");
    let drill = &report["drill"];
    let stamp = drill["stamp"].as_str().unwrap().to_string();
    assert_eq!(stamp.len(), 12, "YYYYMMDDHHMM: {stamp}");
    let table = format!("transactions-qa-drill-{stamp}");
    let cluster = format!("payments-qa-drill-{stamp}");
    assert_eq!(drill["table"], table);
    assert_eq!(drill["cluster"], cluster);
    assert_eq!(drill["restored_to"], "latest restorable time");
    assert!(!drill["writer_endpoint"].as_str().unwrap().is_empty());

    // The table: the stack's key, on demand, tagged as a drill.
    let (t, tags) = acct.block_on(async {
        let t = acct.dynamodb.describe_table().table_name(&table).send().await.unwrap().table().unwrap().clone();
        let tags = acct.dynamodb.list_tags_of_resource().resource_arn(t.table_arn().unwrap()).send().await.unwrap();
        (t, tags)
    });
    assert_eq!(t.sse_description().and_then(|s| s.kms_master_key_arn()), Some(key.as_str()), "the stack's key");
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
    );
    assert!(tags.tags().iter().any(|t| t.key() == "tap:drill" && t.value() == stamp), "{tags:?}");
    assert!(tags.tags().iter().any(|t| t.key() == "EnvironmentSuffix" && t.value() == "qa"));

    // The cluster: the stack's subnet group, database group, key and scaling; one db.serverless.
    let (c, instances) = acct.block_on(async {
        let c = acct.rds.describe_db_clusters().db_cluster_identifier(&cluster).send().await.unwrap();
        let i = acct.rds.describe_db_instances().send().await.unwrap();
        let i: Vec<(String, String)> = i
            .db_instances()
            .iter()
            .filter(|i| i.db_cluster_identifier() == Some(cluster.as_str()))
            .map(|i| (i.db_instance_identifier().unwrap().to_string(), i.db_instance_class().unwrap().to_string()))
            .collect();
        (c.db_clusters()[0].clone(), i)
    });
    assert_eq!(c.db_subnet_group(), Some("payment-db-subnets-qa"));
    let groups: Vec<&str> = c.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id()).collect();
    assert_eq!(groups, vec![db_group.as_str()]);
    assert_eq!(c.kms_key_id(), Some(key.as_str()));
    let scaling = c.serverless_v2_scaling_configuration().unwrap();
    assert_eq!((scaling.min_capacity(), scaling.max_capacity()), (Some(0.5), Some(4.0)));
    assert!(c.tag_list().iter().any(|t| t.key() == Some("tap:drill") && t.value() == Some(stamp.as_str())));
    assert_eq!(instances, vec![(format!("{cluster}-1"), "db.serverless".to_string())]);
    // The live ones untouched.
    assert_eq!(live_members(&acct), members_before);
    assert!(acct.block_on(async { acct.dynamodb.describe_table().table_name("transactions-qa").send().await }).is_ok());

    // A re-run finds the drill by its names and tags and makes nothing new.
    acct.ok(&["restore", "--suffix", "qa"]);
    assert_eq!(drills(&acct), (vec![table.clone()], vec![cluster.clone()]));

    // --cleanup removes every drill resource (read back), the live ones stay.
    acct.ok(&["restore", "--suffix", "qa", "--cleanup"]);
    assert_eq!(drills(&acct), (vec![], vec![]));
    let gone = acct.block_on(async {
        acct.rds.describe_db_instances().db_instance_identifier(format!("{cluster}-1")).send().await
    });
    assert!(gone.is_err(), "the drill's instance is gone");
    assert_eq!(live_members(&acct), members_before);

    // destroy removes a drill left behind too.
    acct.ok(&["restore", "--suffix", "qa"]);
    assert_eq!(drills(&acct).1.len(), 1);
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert_eq!(drills(&acct), (vec![], vec![]), "no drill orphaned by destroy");
}
