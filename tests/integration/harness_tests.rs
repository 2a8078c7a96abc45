//! Tests of the test harness itself: the fault-injecting proxy must fail calls the way AWS does,
//! and its "still working" rewrites must show what they claim, or the resilience tests prove
//! nothing.

use super::harness::{Account, Fault};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::NatGatewayState;

#[test]
fn the_proxy_fails_calls_with_the_errors_aws_sends() {
    let acct = Account::new();
    acct.proxy.set_faults(1.0, 7);
    let config = acct.via_proxy();
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&config).retry_config(aws_config::retry::RetryConfig::disabled()).build(),
    );
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&config).retry_config(aws_config::retry::RetryConfig::disabled()).build(),
    );
    let mut codes = std::collections::BTreeSet::new();
    acct.block_on(async {
        for _ in 0..40 {
            match ec2.describe_vpcs().send().await {
                Ok(_) => panic!("with a fault rate of 1 every call must fail"),
                Err(e) => codes.insert(e.code().map(str::to_string).unwrap_or_else(|| "connection".into())),
            };
        }
        let err = loop {
            let e = kms.list_keys().send().await.unwrap_err();
            if e.code().is_some() {
                break e;
            }
        };
        assert!(
            matches!(
                err.code(),
                Some("ThrottlingException" | "TooManyRequestsException" | "InternalError" | "ServiceUnavailable")
            ),
            "{:?}",
            err.code()
        );
    });
    for expected in ["RequestLimitExceeded", "Throttling", "ServiceUnavailable", "InternalError", "connection"] {
        assert!(codes.contains(expected), "{expected} never injected: {codes:?}");
    }
    let injected = acct.proxy.injected();
    assert!(injected.iter().any(|(_, f)| *f == Fault::Reset) && injected.iter().any(|(_, f)| *f == Fault::Throttle429));
}

#[test]
fn the_proxy_reports_a_nat_gateway_pending_for_exactly_the_polls_asked() {
    let acct = Account::new();
    let config = acct.via_proxy();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    acct.block_on(async {
        let vpc = acct.ec2.create_vpc().cidr_block("10.1.0.0/16").send().await.unwrap();
        let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap();
        let subnet = acct.ec2.create_subnet().vpc_id(vpc_id).cidr_block("10.1.0.0/24").send().await.unwrap();
        let eip = acct.ec2.allocate_address().send().await.unwrap();
        acct.ec2
            .create_nat_gateway()
            .subnet_id(subnet.subnet().unwrap().subnet_id().unwrap())
            .allocation_id(eip.allocation_id().unwrap())
            .send()
            .await
            .unwrap();
        acct.proxy.set_pending("DescribeNatGateways", 2);
        let mut states = Vec::new();
        for _ in 0..3 {
            let out = ec2.describe_nat_gateways().send().await.unwrap();
            states.push(out.nat_gateways()[0].state().cloned().unwrap());
        }
        assert_eq!(states, vec![NatGatewayState::Pending, NatGatewayState::Pending, NatGatewayState::Available]);
    });
}

#[test]
fn the_timing_model_keeps_a_new_nat_gateway_pending_for_its_scaled_duration() {
    let acct = Account::new();
    // A minute stands for 20 s: the gateway's 3-minute phase cannot end during this test.
    acct.proxy.set_timing(std::time::Duration::from_secs(20));
    let config = acct.via_proxy();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    acct.block_on(async {
        let vpc = ec2.create_vpc().cidr_block("10.1.0.0/16").send().await.unwrap();
        let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap();
        let subnet = ec2.create_subnet().vpc_id(vpc_id).cidr_block("10.1.0.0/24").send().await.unwrap();
        let eip = ec2.allocate_address().send().await.unwrap();
        ec2.create_nat_gateway()
            .subnet_id(subnet.subnet().unwrap().subnet_id().unwrap())
            .allocation_id(eip.allocation_id().unwrap())
            .send()
            .await
            .unwrap();
        let state = || async { ec2.describe_nat_gateways().send().await.unwrap().nat_gateways()[0].state().cloned() };
        assert_eq!(state().await, Some(NatGatewayState::Pending), "pending right after the create");
        // The same gateway on a clock where a minute is a millisecond: its phase is long over.
        acct.proxy.set_timing(std::time::Duration::from_millis(1));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(state().await, Some(NatGatewayState::Available), "available once its duration has passed");
    });
}

#[test]
fn under_the_timing_model_up_waits_visibly_for_every_slow_resource_and_converges() {
    let acct = Account::with_stub_packages();
    // 5 s for a minute: the shortest phase (a function, a table) lasts 5 s after its create, and
    // the first poll follows the create at once, so even a busy machine lands inside it.
    acct.proxy.set_timing(std::time::Duration::from_secs(5));
    let run = acct.ok(&["up", "--suffix", "qa"]);
    for wait in [
        "waiting for NAT gateway",
        "waiting for Aurora cluster payment-db-qa to be ready: status creating",
        "waiting for Aurora instances",
        "waiting for function payment-process-qa to be ready: state Pending",
        "waiting for table transactions-qa and its indexes to be ready: table CREATING",
    ] {
        assert!(run.stderr.contains(wait), "{wait}: {}", run.stderr);
    }
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.stdout);
}

#[test]
fn under_the_timing_model_destroy_waits_for_lambdas_interfaces_deleting_the_rest_meanwhile() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    // 1 s for a minute: the interfaces stay held for 20 s after the last function's delete, and
    // the first look follows the deletes at once.
    acct.proxy.set_timing(std::time::Duration::from_secs(1));
    acct.proxy.clear();
    let run = acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert!(
        run.stderr.contains("waiting for the functions' network interfaces (Lambda releases them) to be gone: 1 still held: eni-0lambdaheld00000 (in-use)"),
        "{}",
        run.stderr
    );
    let calls: Vec<String> = acct.proxy.calls().into_iter().map(|c| c.0).collect();
    let first = |call: &str| calls.iter().position(|c| c.contains(call)).unwrap_or_else(|| panic!("no {call}"));
    let last = |call: &str| calls.iter().rposition(|c| c.contains(call)).unwrap_or_else(|| panic!("no {call}"));
    let released = last("ec2:DescribeNetworkInterfaces");
    for f in ["validate", "fraud-check", "process", "rotate-secret"] {
        let deleted = last(&format!("lambda:DELETE /2015-03-31/functions/payment-{f}-qa"));
        assert!(deleted < first("ec2:DescribeNetworkInterfaces"), "{f} is deleted before the wait starts");
    }
    assert!(first("ec2:DeleteSubnet") > released, "the subnets wait for the release");
    assert!(first("ec2:DeleteSecurityGroup") > released, "the functions' group waits for the release");
    assert!(first("dynamodb:DeleteTable") < released, "the table does not wait for the network");
    assert!(first("apigateway:DELETE /restapis/") < released, "the API does not wait for the network");
    assert!(super::readback::inventory(&acct, "qa").values().all(|v| v.is_empty()), "nothing left");
}

#[test]
fn the_emulator_evaluates_bucket_policies_as_aws_does_for_an_https_request() {
    use aws_sdk_s3::primitives::ByteStream;
    let acct = Account::new();
    let put = |key: &'static str| {
        acct.block_on(async {
            acct.s3
                .put_object()
                .bucket("policy-check")
                .key(key)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .is_ok()
        })
    };
    acct.block_on(async {
        acct.s3.create_bucket().bucket("policy-check").send().await.unwrap();
        let tls_only = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::policy-check/*",
                  "Condition": { "Bool": { "aws:SecureTransport": "false" } } },
                { "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::policy-check/*",
                  "Condition": { "NumericLessThan": { "s3:TlsVersion": "1.2" } } }
            ]
        });
        acct.s3.put_bucket_policy().bucket("policy-check").policy(tls_only.to_string()).send().await.unwrap();
    });
    assert!(put("allowed"), "an HTTPS (TLS 1.3) request passes a TLS-only policy, as on AWS");
    acct.block_on(async {
        let deny_all = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::policy-check/*" }]
        });
        acct.s3.put_bucket_policy().bucket("policy-check").policy(deny_all.to_string()).send().await.unwrap();
    });
    assert!(!put("denied"), "an unconditional Deny still denies: policies are still enforced");
}

#[test]
fn the_emulator_answers_get_bucket_versioning_in_a_shape_the_rust_sdk_reads() {
    let acct = Account::new();
    acct.block_on(async {
        acct.s3.create_bucket().bucket("versioning-check").send().await.unwrap();
        let before = acct.s3.get_bucket_versioning().bucket("versioning-check").send().await.unwrap();
        assert_eq!(before.status(), None);
        acct.s3
            .put_bucket_versioning()
            .bucket("versioning-check")
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let after = acct.s3.get_bucket_versioning().bucket("versioning-check").send().await.unwrap();
        assert_eq!(after.status(), Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled));
    });
}

#[test]
fn the_emulator_keeps_an_rds_subnet_group_whose_subnets_change() {
    let acct = Account::new();
    acct.block_on(async {
        let vpc = acct.ec2.create_vpc().cidr_block("10.2.0.0/16").send().await.unwrap();
        let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap();
        let mut subnets = Vec::new();
        for (i, az) in ["us-east-1a", "us-east-1b", "us-east-1c"].iter().enumerate() {
            let s = acct
                .ec2
                .create_subnet()
                .vpc_id(vpc_id)
                .cidr_block(format!("10.2.{i}.0/24"))
                .availability_zone(*az)
                .send()
                .await
                .unwrap();
            subnets.push(s.subnet().unwrap().subnet_id().unwrap().to_string());
        }
        acct.rds
            .create_db_subnet_group()
            .db_subnet_group_name("group-check")
            .db_subnet_group_description("x")
            .subnet_ids(&subnets[0])
            .subnet_ids(&subnets[1])
            .send()
            .await
            .unwrap();
        acct.rds
            .modify_db_subnet_group()
            .db_subnet_group_name("group-check")
            .subnet_ids(&subnets[1])
            .subnet_ids(&subnets[2])
            .send()
            .await
            .unwrap();
        let g = acct.rds.describe_db_subnet_groups().db_subnet_group_name("group-check").send().await.unwrap();
        let mut now: Vec<&str> =
            g.db_subnet_groups()[0].subnets().iter().filter_map(|s| s.subnet_identifier()).collect();
        now.sort();
        let mut want = vec![subnets[1].as_str(), subnets[2].as_str()];
        want.sort();
        assert_eq!(now, want);
    });
}

#[test]
fn the_emulator_drops_a_deleted_clusters_automated_backups_as_aws_does_by_default() {
    let acct = Account::new();
    acct.block_on(async {
        let create = || {
            acct.rds
                .create_db_cluster()
                .db_cluster_identifier("backup-check")
                .engine("aurora-postgresql")
                .engine_version("16.6")
                .master_username("u")
                .master_user_password("password-check-1")
                .backup_retention_period(1)
                .send()
        };
        create().await.unwrap();
        acct.rds
            .delete_db_cluster()
            .db_cluster_identifier("backup-check")
            .skip_final_snapshot(true)
            .send()
            .await
            .unwrap();
        let snapshots = acct.rds.describe_db_cluster_snapshots().send().await.unwrap();
        assert!(snapshots.db_cluster_snapshots().is_empty(), "{:?}", snapshots.db_cluster_snapshots());
        create().await.expect("the same cluster can be created again at once");
    });
}

#[test]
fn the_emulator_answers_get_secret_value_with_awscurrent_after_a_stage_moves() {
    let acct = Account::new();
    acct.block_on(async {
        let s = &acct.secrets;
        let created = s.create_secret().name("stage-check").secret_string("one").send().await.unwrap();
        let first = created.version_id().unwrap().to_string();
        let token = "5f0c9a1e-2b3d-4c5e-8f70-112233445566";
        s.put_secret_value()
            .secret_id("stage-check")
            .client_request_token(token)
            .secret_string("two")
            .version_stages("AWSPENDING")
            .send()
            .await
            .unwrap();
        let value = || async { s.get_secret_value().secret_id("stage-check").send().await.unwrap() };
        assert_eq!(value().await.secret_string(), Some("one"), "a pending version is not current");
        s.update_secret_version_stage()
            .secret_id("stage-check")
            .version_stage("AWSCURRENT")
            .move_to_version_id(token)
            .remove_from_version_id(&first)
            .send()
            .await
            .unwrap();
        let now = value().await;
        assert_eq!((now.secret_string(), now.version_id()), (Some("two"), Some(token)));
    });
}

#[test]
fn the_emulator_keeps_a_stages_canary_settings_as_aws_does() {
    use aws_sdk_apigateway::types::{IntegrationType, Op, PatchOperation};
    let acct = Account::new();
    let apigw = &acct.apigateway;
    let op = |op: Op, path: &str, value: Option<&str>| {
        PatchOperation::builder().op(op).path(path).set_value(value.map(String::from)).build()
    };
    acct.block_on(async {
        let api = apigw.create_rest_api().name("canary-test").send().await.unwrap();
        let id = api.id().unwrap();
        let root = apigw.get_resources().rest_api_id(id).send().await.unwrap().items()[0].id().unwrap().to_string();
        apigw
            .put_method()
            .rest_api_id(id)
            .resource_id(&root)
            .http_method("GET")
            .authorization_type("NONE")
            .send()
            .await
            .unwrap();
        apigw
            .put_integration()
            .rest_api_id(id)
            .resource_id(&root)
            .http_method("GET")
            .r#type(IntegrationType::Mock)
            .send()
            .await
            .unwrap();
        let d = apigw.create_deployment().rest_api_id(id).send().await.unwrap();
        apigw
            .create_stage()
            .rest_api_id(id)
            .stage_name("live")
            .deployment_id(d.id().unwrap())
            .variables("lambdaAlias", "blue")
            .send()
            .await
            .unwrap();
        let stage = || apigw.get_stage().rest_api_id(id).stage_name("live").send();
        assert!(stage().await.unwrap().canary_settings().is_none(), "no canary until one is set");

        apigw
            .update_stage()
            .rest_api_id(id)
            .stage_name("live")
            .patch_operations(op(Op::Replace, "/canarySettings/deploymentId", d.id()))
            .patch_operations(op(Op::Replace, "/canarySettings/percentTraffic", Some("12.5")))
            .patch_operations(op(Op::Replace, "/canarySettings/stageVariableOverrides/lambdaAlias", Some("green")))
            .send()
            .await
            .unwrap();
        let s = stage().await.unwrap();
        let c = s.canary_settings().expect("the canary is stored");
        assert_eq!(c.percent_traffic(), 12.5);
        assert_eq!(c.deployment_id(), d.id());
        assert_eq!(c.stage_variable_overrides().unwrap()["lambdaAlias"], "green");
        assert_eq!(s.variables().unwrap()["lambdaAlias"], "blue", "the stage's own variable is untouched");

        let refused = apigw
            .update_stage()
            .rest_api_id(id)
            .stage_name("live")
            .patch_operations(op(Op::Replace, "/canarySettings/percentTraffic", Some("100.5")))
            .send()
            .await;
        assert_eq!(refused.unwrap_err().into_service_error().meta().code(), Some("BadRequestException"));
        assert_eq!(
            stage().await.unwrap().canary_settings().unwrap().percent_traffic(),
            12.5,
            "a refused patch changes nothing"
        );

        apigw
            .update_stage()
            .rest_api_id(id)
            .stage_name("live")
            .patch_operations(op(Op::Replace, "/variables/lambdaAlias", Some("green")))
            .patch_operations(op(Op::Remove, "/canarySettings", None))
            .send()
            .await
            .unwrap();
        let s = stage().await.unwrap();
        assert!(s.canary_settings().is_none(), "removed");
        assert_eq!(s.variables().unwrap()["lambdaAlias"], "green", "other patches of the same call still apply");
    });
}

#[test]
fn the_emulator_takes_the_architecture_of_new_code_as_aws_does() {
    use aws_sdk_lambda::types::{Architecture, FunctionCode, Runtime};
    let acct = Account::new();
    acct.block_on(async {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let role = acct.iam.create_role().role_name("fn-role").assume_role_policy_document(trust).send().await.unwrap();
        let zip = |b: &[u8]| {
            let entry = tapctl::package::Entry { name: "bootstrap".into(), bytes: b.to_vec(), executable: true };
            aws_sdk_lambda::primitives::Blob::new(tapctl::package::zip(vec![entry]).unwrap())
        };
        acct.lambda
            .create_function()
            .function_name("f")
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(role.role().unwrap().arn())
            .code(FunctionCode::builder().zip_file(zip(b"x86")).build())
            .send()
            .await
            .unwrap();
        let arch = || async {
            let c = acct.lambda.get_function_configuration().function_name("f").send().await.unwrap();
            c.architectures().to_vec()
        };
        assert_eq!(arch().await, [Architecture::X8664], "AWS's default");
        acct.lambda
            .update_function_code()
            .function_name("f")
            .zip_file(zip(b"arm"))
            .architectures(Architecture::Arm64)
            .send()
            .await
            .unwrap();
        assert_eq!(arch().await, [Architecture::Arm64], "the new code's");
        acct.lambda.update_function_code().function_name("f").zip_file(zip(b"arm2")).send().await.unwrap();
        assert_eq!(arch().await, [Architecture::Arm64], "kept when not given");
    });
}

#[test]
fn the_emulator_keeps_a_functions_logging_config_as_aws_does() {
    use aws_sdk_lambda::types::{FunctionCode, LogFormat, LoggingConfig, Runtime};
    let acct = Account::new();
    acct.block_on(async {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let role = acct.iam.create_role().role_name("fn-role").assume_role_policy_document(trust).send().await.unwrap();
        let zip = tapctl::package::zip(vec![tapctl::package::Entry { name: "bootstrap".into(), bytes: b"x".to_vec(), executable: true }]).unwrap();
        let create = |name: &'static str, logging: Option<LoggingConfig>| {
            acct.lambda
                .create_function()
                .function_name(name)
                .runtime(Runtime::Providedal2023)
                .handler("bootstrap")
                .role(role.role().unwrap().arn())
                .code(FunctionCode::builder().zip_file(aws_sdk_lambda::primitives::Blob::new(zip.clone())).build())
                .set_logging_config(logging)
                .send()
        };
        create("plain", None).await.unwrap();
        let json = LoggingConfig::builder().log_format(LogFormat::Json).log_group("/custom/group").build();
        create("structured", Some(json)).await.unwrap();
        let logging = |name: &'static str| acct.lambda.get_function_configuration().function_name(name).send();
        let plain = logging("plain").await.unwrap();
        let plain = plain.logging_config().unwrap();
        assert_eq!((plain.log_format().unwrap().as_str(), plain.log_group()), ("Text", Some("/aws/lambda/plain")), "AWS's default");
        let structured = logging("structured").await.unwrap();
        let structured = structured.logging_config().unwrap();
        assert_eq!((structured.log_format().unwrap().as_str(), structured.log_group()), ("JSON", Some("/custom/group")));
        acct.lambda
            .update_function_configuration()
            .function_name("plain")
            .logging_config(LoggingConfig::builder().log_format(LogFormat::Json).build())
            .send()
            .await
            .unwrap();
        let updated = logging("plain").await.unwrap();
        assert_eq!(updated.logging_config().unwrap().log_format().unwrap().as_str(), "JSON");
    });
}

#[test]
fn the_proxy_reports_a_function_pending_for_exactly_the_polls_asked() {
    use aws_sdk_lambda::types::{FunctionCode, Runtime, State};
    let acct = Account::new();
    let lambda = aws_sdk_lambda::Client::new(&acct.via_proxy());
    acct.block_on(async {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let role = acct.iam.create_role().role_name("fn-role").assume_role_policy_document(trust).send().await.unwrap();
        let zip = tapctl::package::zip(vec![tapctl::package::Entry { name: "bootstrap".into(), bytes: b"x".to_vec(), executable: true }]).unwrap();
        lambda
            .create_function()
            .function_name("f")
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(role.role().unwrap().arn())
            .code(FunctionCode::builder().zip_file(aws_sdk_lambda::primitives::Blob::new(zip)).build())
            .send()
            .await
            .unwrap();
        acct.proxy.set_pending("/configuration", 2);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let c = lambda.get_function_configuration().function_name("f").send().await.unwrap();
            seen.push((c.state().cloned(), c.last_update_status().map(|s| s.as_str().to_string())));
        }
        assert_eq!(seen[0], (Some(State::Pending), Some("InProgress".into())));
        assert_eq!(seen[1], (Some(State::Pending), Some("InProgress".into())));
        assert_eq!(seen[2], (Some(State::Active), Some("Successful".into())), "then as the emulator holds it");
    });
}

/// The zygote (server.py --zygote) forks every test's server from one warmed-up process: each must
/// still be an account of its own, holding nothing another test made, and drawing identifiers of
/// its own. (moto 5.2.5 draws these ids from the OS, so they differ even without the reseed each
/// forked server does of the random state it copied; the reseed covers ids drawn from it.)
#[test]
fn each_tests_emulator_is_a_separate_account_with_its_own_identifiers() {
    let (a, b) = (Account::new(), Account::new());
    let (key_a, vpc_a) = a.block_on(async {
        let key_a = a.kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
        let vpc_a = a.ec2.create_vpc().cidr_block("10.9.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
        (key_a, vpc_a)
    });
    let (key_b, vpc_b) = b.block_on(async {
        let keys = b.kms.list_keys().send().await.unwrap();
        assert!(keys.keys().is_empty(), "another test's key is visible: {keys:?}");
        let vpcs = b.ec2.describe_vpcs().send().await.unwrap();
        assert!(vpcs.vpcs().iter().all(|v| v.cidr_block() != Some("10.9.0.0/16")), "another test's VPC is visible");
        let key_b = b.kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
        let vpc_b = b.ec2.create_vpc().cidr_block("10.9.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
        (key_b, vpc_b)
    });
    assert_ne!(key_a, key_b, "two servers drew the same key id");
    assert_ne!(vpc_a, vpc_b, "two servers drew the same VPC id");
}

/// server.py narrows an index query to the asked partition before moto sorts it (a speed-only
/// change): the answer must still be AWS's — only that partition's items that carry the index
/// keys, in index order, paged — and reads of the whole table must still see every item.
/// Extension 29: item operations are atomic, as in DynamoDB. A writer rewrites 40 attributes
/// of one item to one new value per update, while readers read it: every read sees all 40 equal
/// (before or after an update, never halfway). And fifty concurrent claims of one key
/// (`attribute_not_exists`), as retries of one payment make: exactly one is accepted.
#[test]
fn the_emulator_makes_item_operations_atomic_as_dynamodb_does() {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let acct = Account::new();
    acct.block_on(async {
        let db = &acct.dynamodb;
        db.create_table()
            .table_name("claims")
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let pk = || AttributeValue::S("wide".into());
        let sets: Vec<String> = (0..40).map(|i| format!("a{i} = :v")).collect();
        let update = format!("SET {}", sets.join(", "));
        let writes = async {
            for v in 0..150 {
                db.update_item()
                    .table_name("claims")
                    .key("pk", pk())
                    .update_expression(&update)
                    .expression_attribute_values(":v", AttributeValue::N(v.to_string()))
                    .send()
                    .await
                    .unwrap();
            }
        };
        let reads = (0..4).map(|_| async {
            let mut torn = Vec::new();
            for _ in 0..150 {
                let got =
                    db.get_item().table_name("claims").key("pk", pk()).consistent_read(true).send().await.unwrap();
                let Some(item) = got.item() else { continue };
                let values: std::collections::BTreeSet<&str> = (0..40)
                    .filter_map(|i| item.get(&format!("a{i}")).and_then(|v| v.as_n().ok()))
                    .map(String::as_str)
                    .collect();
                let present = (0..40).filter(|i| item.contains_key(&format!("a{i}"))).count();
                if values.len() > 1 || (present != 0 && present != 40) {
                    torn.push(format!("{present} attributes, values {values:?}"));
                }
            }
            torn
        });
        let (_, torn) = futures::join!(writes, futures::future::join_all(reads));
        let torn: Vec<String> = torn.into_iter().flatten().collect();
        assert!(torn.is_empty(), "{} reads saw an update halfway: {:?}", torn.len(), &torn[..torn.len().min(3)]);

        for round in 0..4 {
            let claims = (0..50).map(|i| {
                db.put_item()
                    .table_name("claims")
                    .item("pk", AttributeValue::S(format!("key-{round}")))
                    .item("claimant", AttributeValue::N(i.to_string()))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
            });
            let answers = futures::future::join_all(claims).await;
            let accepted = answers.iter().filter(|a| a.is_ok()).count();
            assert_eq!(accepted, 1, "round {round}: {accepted} of 50 claims of one key were accepted");
            for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
                assert_eq!(refused.code(), Some("ConditionalCheckFailedException"), "{refused:?}");
            }
        }
    });
}

#[test]
fn the_emulator_answers_index_queries_with_exactly_the_partitions_items_in_index_order() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
        ProjectionType, ScalarAttributeType,
    };
    let acct = Account::new();
    acct.block_on(async {
        let db = &acct.dynamodb;
        let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap();
        let attr = |name: &str, kind| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build().unwrap()
        };
        db.create_table()
            .table_name("partition-check")
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("id", KeyType::Hash))
            .attribute_definitions(attr("id", ScalarAttributeType::S))
            .attribute_definitions(attr("card", ScalarAttributeType::S))
            .attribute_definitions(attr("at", ScalarAttributeType::N))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("by-card")
                    .key_schema(key("card", KeyType::Hash))
                    .key_schema(key("at", KeyType::Range))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        // 40 items over four cards; every fifth has no "at" (not in the index), the last has no card.
        let mut expected: Vec<(i64, String)> = Vec::new();
        for i in 0..40i64 {
            let id = format!("t-{i:02}");
            let card = format!("c{}", i % 4);
            let at = (i * 17) % 40;
            let mut put = db.put_item().table_name("partition-check").item("id", AttributeValue::S(id.clone()));
            if i != 39 {
                put = put.item("card", AttributeValue::S(card.clone()));
            }
            if i % 5 != 0 {
                put = put.item("at", AttributeValue::N(at.to_string()));
            }
            put.send().await.unwrap();
            if i != 39 && i % 5 != 0 && card == "c1" && at >= 5 {
                expected.push((at, id));
            }
        }
        expected.sort();
        expected.reverse();
        let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
        assert!(expected.len() >= 5, "the query must span pages");

        let mut answered = Vec::new();
        let mut start = None;
        loop {
            let page = db
                .query()
                .table_name("partition-check")
                .index_name("by-card")
                .key_condition_expression("card = :c AND #at >= :from")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":c", AttributeValue::S("c1".into()))
                .expression_attribute_values(":from", AttributeValue::N("5".into()))
                .scan_index_forward(false)
                .limit(3)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            answered.extend(page.items().iter().map(|i| i["id"].as_s().unwrap().clone()));
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        assert_eq!(answered, expected);

        let scanned = db.scan().table_name("partition-check").send().await.unwrap();
        assert_eq!(scanned.count(), 40, "a scan after index queries still sees every item");
        let by_key = db
            .query()
            .table_name("partition-check")
            .key_condition_expression("id = :id")
            .expression_attribute_values(":id", AttributeValue::S("t-39".into()))
            .send()
            .await
            .unwrap();
        assert_eq!(by_key.count(), 1, "a query on the table's own key is answered as before");
    });
}

/// server.py extension 11: a metric filter is replaced by name, and goes with its group.
#[test]
fn the_emulator_keeps_metric_filters_by_group_and_name_as_aws_does() {
    let acct = Account::new();
    let logs = &acct.logs;
    let filters = |group: &'static str| {
        acct.block_on(async move {
            let out = logs.describe_metric_filters().log_group_name(group).send().await.unwrap();
            out.metric_filters()
                .iter()
                .map(|f| (f.filter_name().unwrap().to_string(), f.filter_pattern().unwrap().to_string()))
                .collect::<Vec<_>>()
        })
    };
    let put = |group: &'static str, pattern: &'static str| {
        acct.block_on(async move {
            let t = aws_sdk_cloudwatchlogs::types::MetricTransformation::builder()
                .metric_namespace("ns")
                .metric_name("m")
                .metric_value("1")
                .build()
                .unwrap();
            logs.put_metric_filter()
                .log_group_name(group)
                .filter_name("f")
                .filter_pattern(pattern)
                .metric_transformations(t)
                .send()
                .await
                .unwrap();
        })
    };
    for g in ["g1", "g2"] {
        acct.block_on(async { logs.create_log_group().log_group_name(g).send().await.unwrap() });
    }
    put("g1", "{ $.a = 1 }");
    put("g2", "{ $.a = 1 }");
    put("g1", "{ $.b = 2 }");
    assert_eq!(filters("g1"), vec![("f".to_string(), "{ $.b = 2 }".to_string())], "replaced, not appended");
    assert_eq!(filters("g2"), vec![("f".to_string(), "{ $.a = 1 }".to_string())], "another group's is its own");
    acct.block_on(async { logs.delete_log_group().log_group_name("g1").send().await.unwrap() });
    acct.block_on(async { logs.create_log_group().log_group_name("g1").send().await.unwrap() });
    assert!(filters("g1").is_empty(), "a deleted group's filters went with it");
    assert_eq!(filters("g2").len(), 1);
}

/// server.py extension 12: a new VPC's default security group admits all traffic from itself
/// and sends anywhere, as AWS makes it; a group of one's own starts with the egress rule only.
#[test]
fn the_emulator_makes_a_vpcs_default_security_group_with_the_rules_aws_gives_it() {
    let acct = Account::new();
    acct.block_on(async {
        let vpc = acct.ec2.create_vpc().cidr_block("10.9.0.0/16").send().await.unwrap();
        let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        let f = |name: &str, value: &str| aws_sdk_ec2::types::Filter::builder().name(name).values(value).build();
        let groups = acct
            .ec2
            .describe_security_groups()
            .filters(f("vpc-id", &vpc))
            .filters(f("group-name", "default"))
            .send()
            .await
            .unwrap();
        let g = &groups.security_groups()[0];
        let id = g.group_id().unwrap();
        assert_eq!(g.ip_permissions().len(), 1, "{g:?}");
        let ingress = &g.ip_permissions()[0];
        assert_eq!(ingress.ip_protocol(), Some("-1"));
        assert_eq!(ingress.user_id_group_pairs()[0].group_id(), Some(id), "from the group itself");
        assert!(ingress.ip_ranges().is_empty());
        let egress = &g.ip_permissions_egress()[0];
        assert_eq!((egress.ip_protocol(), egress.ip_ranges()[0].cidr_ip()), (Some("-1"), Some("0.0.0.0/0")));

        let own = acct.ec2.create_security_group().group_name("own").description("own").vpc_id(&vpc).send().await;
        let own_id = own.unwrap().group_id().unwrap().to_string();
        let own = acct.ec2.describe_security_groups().group_ids(&own_id).send().await.unwrap();
        assert!(own.security_groups()[0].ip_permissions().is_empty(), "only the default group admits itself");
        acct.ec2.delete_security_group().group_id(&own_id).send().await.unwrap();
        // Revoked, it stays revoked; and the VPC still deletes (with its default group).
        let all_from_itself = aws_sdk_ec2::types::IpPermission::builder()
            .ip_protocol("-1")
            .user_id_group_pairs(aws_sdk_ec2::types::UserIdGroupPair::builder().group_id(id).build())
            .build();
        acct.ec2.revoke_security_group_ingress().group_id(id).ip_permissions(all_from_itself).send().await.unwrap();
        let after = acct.ec2.describe_security_groups().group_ids(id).send().await.unwrap();
        assert!(after.security_groups()[0].ip_permissions().is_empty());
        acct.ec2.delete_vpc().vpc_id(&vpc).send().await.unwrap();
    });
}

/// server.py extension 10: RDS event subscriptions are changed in place as AWS changes them,
/// and are enabled unless asked otherwise.
#[test]
fn the_emulator_modifies_rds_event_subscriptions_and_their_sources_as_aws_does() {
    let acct = Account::new();
    let rds = &acct.rds;
    let read = || {
        acct.block_on(async {
            let out = rds.describe_event_subscriptions().subscription_name("subs-check").send().await.unwrap();
            let s = out.event_subscriptions_list()[0].clone();
            (
                s.enabled(),
                s.sns_topic_arn().unwrap().to_string(),
                s.event_categories_list().to_vec(),
                s.source_ids_list().to_vec(),
            )
        })
    };
    acct.block_on(async {
        rds.create_db_cluster()
            .db_cluster_identifier("cluster-check")
            .engine("aurora-postgresql")
            .master_username("check")
            .master_user_password("check-password-1")
            .send()
            .await
            .unwrap();
        rds.create_event_subscription()
            .subscription_name("subs-check")
            .sns_topic_arn("arn:aws:sns:us-east-1:123456789012:a")
            .source_type("db-cluster")
            .event_categories("failover")
            .send()
            .await
            .unwrap();
    });
    assert_eq!(read().0, Some(true), "AWS's default is enabled");
    acct.block_on(async {
        rds.modify_event_subscription()
            .subscription_name("subs-check")
            .enabled(false)
            .sns_topic_arn("arn:aws:sns:us-east-1:123456789012:b")
            .event_categories("failure")
            .event_categories("maintenance")
            .send()
            .await
            .unwrap();
        rds.add_source_identifier_to_subscription()
            .subscription_name("subs-check")
            .source_identifier("cluster-check")
            .send()
            .await
            .unwrap();
    });
    assert_eq!(
        read(),
        (
            Some(false),
            "arn:aws:sns:us-east-1:123456789012:b".to_string(),
            vec!["failure".to_string(), "maintenance".to_string()],
            vec!["cluster-check".to_string()]
        )
    );
    acct.block_on(async {
        let absent = rds
            .add_source_identifier_to_subscription()
            .subscription_name("subs-check")
            .source_identifier("no-such-cluster")
            .send()
            .await
            .unwrap_err();
        assert_eq!(absent.code(), Some("SourceNotFound"));
        let unknown =
            rds.modify_event_subscription().subscription_name("no-such").enabled(true).send().await.unwrap_err();
        assert_eq!(unknown.code(), Some("SubscriptionNotFound"));
        rds.remove_source_identifier_from_subscription()
            .subscription_name("subs-check")
            .source_identifier("cluster-check")
            .send()
            .await
            .unwrap();
    });
    assert_eq!(read().3, Vec::<String>::new());
}

/// server.py extension 14: WAF lists an ACL's resources by type, refuses to delete an ACL that
/// still guards one, and names a duplicate as AWS does.
#[test]
fn the_emulator_lists_a_web_acls_resources_and_refuses_to_delete_an_associated_one_as_aws_does() {
    use aws_sdk_wafv2::types::{AllowAction, DefaultAction, ResourceType, Scope, VisibilityConfig};
    let acct = Account::new();
    let waf = aws_sdk_wafv2::Client::new(&acct.via_proxy());
    let stage = "arn:aws:apigateway:us-east-1::/restapis/abc123/stages/live";
    let alb = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
    acct.block_on(async {
        let create = || {
            waf.create_web_acl()
                .name("guard")
                .scope(Scope::Regional)
                .default_action(DefaultAction::builder().allow(AllowAction::builder().build()).build())
                .visibility_config(
                    VisibilityConfig::builder()
                        .cloud_watch_metrics_enabled(true)
                        .sampled_requests_enabled(true)
                        .metric_name("guard")
                        .build()
                        .unwrap(),
                )
                .send()
        };
        let summary = create().await.unwrap().summary().unwrap().clone();
        let dup = create().await.unwrap_err();
        assert_eq!(dup.code(), Some("WAFDuplicateItemException"), "AWS's code for a name that exists");
        let arn = summary.arn().unwrap();
        for resource in [stage, alb] {
            waf.associate_web_acl().web_acl_arn(arn).resource_arn(resource).send().await.unwrap();
        }
        let of = |kind: Option<ResourceType>| {
            let waf = waf.clone();
            async move {
                let out =
                    waf.list_resources_for_web_acl().web_acl_arn(arn).set_resource_type(kind).send().await.unwrap();
                out.resource_arns().to_vec()
            }
        };
        assert_eq!(of(Some(ResourceType::ApiGateway)).await, [stage]);
        assert_eq!(of(None).await, [alb], "load balancers when no type is asked, as AWS");
        let delete = || {
            waf.delete_web_acl()
                .name("guard")
                .scope(Scope::Regional)
                .id(summary.id().unwrap())
                .lock_token(summary.lock_token().unwrap())
                .send()
        };
        let refused = delete().await.unwrap_err();
        assert_eq!(refused.code(), Some("WAFAssociatedItemException"));
        assert!(waf.get_web_acl_for_resource().resource_arn(stage).send().await.unwrap().web_acl().is_some());
        for resource in [stage, alb] {
            waf.disassociate_web_acl().resource_arn(resource).send().await.unwrap();
        }
        assert!(of(Some(ResourceType::ApiGateway)).await.is_empty());
        delete().await.unwrap();
        let left = waf.list_web_acls().scope(Scope::Regional).send().await.unwrap();
        assert!(left.web_acls().is_empty());
    });
}

/// server.py extension 13.
#[test]
fn the_emulator_turns_object_lock_on_for_a_versioned_bucket_that_holds_objects_as_aws_does() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{
        BucketVersioningStatus, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule, VersioningConfiguration,
    };
    let acct = Account::new();
    let lock = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(
                    DefaultRetention::builder().mode(ObjectLockRetentionMode::Governance).days(3).build(),
                )
                .build(),
        )
        .build();
    acct.block_on(async {
        let s3 = &acct.s3;
        s3.create_bucket().bucket("old").send().await.unwrap();
        s3.put_object().bucket("old").key("a").body(ByteStream::from_static(b"a")).send().await.unwrap();
        let unversioned = s3.put_object_lock_configuration().bucket("old").object_lock_configuration(lock.clone());
        let err = unversioned.send().await.unwrap_err();
        assert_eq!(err.into_service_error().meta().code(), Some("InvalidBucketState"), "versioning is required");
        s3.put_bucket_versioning()
            .bucket("old")
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
            )
            .send()
            .await
            .unwrap();
        s3.put_object_lock_configuration().bucket("old").object_lock_configuration(lock).send().await.unwrap();
        let got = s3.get_object_lock_configuration().bucket("old").send().await.unwrap();
        let c = got.object_lock_configuration().unwrap();
        assert_eq!(c.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
        assert_eq!(c.rule().and_then(|r| r.default_retention()).and_then(|r| r.days()), Some(3));
        // The object from before is still there; a new one gets the default retention.
        s3.get_object().bucket("old").key("a").send().await.unwrap();
        let put = s3.put_object().bucket("old").key("b").body(ByteStream::from_static(b"b")).send().await.unwrap();
        let head = s3.head_object().bucket("old").key("b").version_id(put.version_id().unwrap()).send().await.unwrap();
        assert_eq!(head.object_lock_mode().map(|m| m.as_str()), Some("GOVERNANCE"));
    });
}

/// server.py extension 15.
#[test]
fn the_emulator_accepts_a_logging_target_whose_policy_also_denies_insecure_transport_as_aws_does() {
    use aws_sdk_s3::types::{BucketLoggingStatus, LoggingEnabled};
    let acct = Account::new();
    let s3 = acct.s3.clone();
    let enable = |prefix: &'static str| {
        let s3 = s3.clone();
        acct.block_on(async move {
            s3.put_bucket_logging()
                .bucket("source")
                .bucket_logging_status(
                    BucketLoggingStatus::builder()
                        .logging_enabled(
                            LoggingEnabled::builder().target_bucket("target").target_prefix(prefix).build().unwrap(),
                        )
                        .build(),
                )
                .send()
                .await
                .map_err(|e| e.into_service_error().meta().code().map(str::to_string))
        })
    };
    acct.block_on(async {
        acct.s3.create_bucket().bucket("source").send().await.unwrap();
        acct.s3.create_bucket().bucket("target").send().await.unwrap();
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::target/*",
                  "Condition": { "Bool": { "aws:SecureTransport": "false" } } },
                { "Effect": "Allow", "Principal": { "Service": "logging.s3.amazonaws.com" }, "Action": "s3:PutObject",
                  "Resource": "arn:aws:s3:::target/src/*" }
            ]
        });
        acct.s3.put_bucket_policy().bucket("target").policy(policy.to_string()).send().await.unwrap();
    });
    assert!(enable("src/").is_ok(), "the Allow for the log delivery service grants it beside a Principal \"*\" Deny");
    // The grant is still checked: another prefix is not granted.
    assert_eq!(enable("other/").unwrap_err(), Some("InvalidTargetBucketForLogging".to_string()));
}

/// Extensions 20–23 of tests/moto/server.py: AWS Backup selections, plan updates, recovery points
/// (asynchronous deletion, a vault that holds one refused) and region settings, as AWS has them.
#[test]
fn the_emulator_keeps_backup_selections_recovery_points_and_region_settings_as_aws_does() {
    use aws_sdk_backup::types::{BackupPlanInput, BackupRuleInput, BackupSelection, Lifecycle};
    let acct = Account::new();
    let b = aws_sdk_backup::Client::new(&acct.via_proxy());
    let rule = |days: i64| {
        BackupRuleInput::builder()
            .rule_name("daily")
            .target_backup_vault_name("v")
            .lifecycle(Lifecycle::builder().delete_after_days(days).build())
            .build()
            .unwrap()
    };
    let plan = |days: i64| BackupPlanInput::builder().backup_plan_name("p").rules(rule(days)).build().unwrap();
    acct.block_on(async {
        let v = b.create_backup_vault().backup_vault_name("v").backup_vault_tags("a", "b").send().await.unwrap();
        // Extension 21: ListTags as the Rust SDK asks it (no trailing slash).
        let tags = b.list_tags().resource_arn(v.backup_vault_arn().unwrap()).send().await.unwrap();
        assert_eq!(tags.tags().and_then(|t| t.get("a")).map(String::as_str), Some("b"));
        let p = b.create_backup_plan().backup_plan(plan(35)).send().await.unwrap();
        let id = p.backup_plan_id().unwrap().to_string();
        // Extension 21: UpdateBackupPlan.
        b.update_backup_plan().backup_plan_id(&id).backup_plan(plan(7)).send().await.unwrap();
        let got = b.get_backup_plan().backup_plan_id(&id).send().await.unwrap();
        assert_eq!(got.backup_plan().unwrap().rules()[0].lifecycle().unwrap().delete_after_days(), Some(7));
        // Extension 20: selections; a plan that has one is not deleted.
        let sel = BackupSelection::builder()
            .selection_name("s")
            .iam_role_arn("arn:aws:iam::123456789012:role/r")
            .resources("arn:aws:dynamodb:us-east-1:123456789012:table/t")
            .build()
            .unwrap();
        let made = b.create_backup_selection().backup_plan_id(&id).backup_selection(sel.clone()).send().await.unwrap();
        let sid = made.selection_id().unwrap().to_string();
        let again = b.create_backup_selection().backup_plan_id(&id).backup_selection(sel).send().await.unwrap_err();
        assert_eq!(again.code(), Some("AlreadyExistsException"));
        let listed = b.list_backup_selections().backup_plan_id(&id).send().await.unwrap();
        assert_eq!(listed.backup_selections_list().len(), 1);
        let one = b.get_backup_selection().backup_plan_id(&id).selection_id(&sid).send().await.unwrap();
        assert_eq!(one.backup_selection().unwrap().resources(), ["arn:aws:dynamodb:us-east-1:123456789012:table/t"]);
        let refused = b.delete_backup_plan().backup_plan_id(&id).send().await.unwrap_err();
        assert_eq!(refused.code(), Some("InvalidRequestException"));
        b.delete_backup_selection().backup_plan_id(&id).selection_id(&sid).send().await.unwrap();
        b.delete_backup_plan().backup_plan_id(&id).send().await.unwrap();
        // The name of a deleted plan is free again.
        b.create_backup_plan().backup_plan(plan(35)).send().await.unwrap();
        // Extension 22: a recovery point; its deletion is asynchronous; a vault that holds one stays.
        let job = b
            .start_backup_job()
            .backup_vault_name("v")
            .resource_arn("arn:aws:dynamodb:us-east-1:123456789012:table/t")
            .iam_role_arn("arn:aws:iam::123456789012:role/r")
            .send()
            .await
            .unwrap();
        let point = job.recovery_point_arn().unwrap().to_string();
        let refused = b.delete_backup_vault().backup_vault_name("v").send().await.unwrap_err();
        assert_eq!(refused.code(), Some("InvalidRequestException"));
        assert!(refused.message().unwrap_or_default().contains("recovery points"), "{refused:?}");
        b.delete_recovery_point().backup_vault_name("v").recovery_point_arn(&point).send().await.unwrap();
        let first = b.list_recovery_points_by_backup_vault().backup_vault_name("v").send().await.unwrap();
        let states: Vec<_> =
            first.recovery_points().iter().map(|p| p.status().map(|s| s.as_str().to_string())).collect();
        assert_eq!(states, vec![Some("DELETING".to_string())], "still listed while deleting");
        let then = b.list_recovery_points_by_backup_vault().backup_vault_name("v").send().await.unwrap();
        assert!(then.recovery_points().is_empty());
        b.delete_backup_vault().backup_vault_name("v").send().await.unwrap();
        // Extension 23: region settings, advanced DynamoDB backup on by default.
        let s = b.describe_region_settings().send().await.unwrap();
        assert_eq!(s.resource_type_management_preference().and_then(|m| m.get("DynamoDB")), Some(&true));
        b.update_region_settings().resource_type_management_preference("DynamoDB", false).send().await.unwrap();
        let s = b.describe_region_settings().send().await.unwrap();
        assert_eq!(s.resource_type_management_preference().and_then(|m| m.get("DynamoDB")), Some(&false));
    });
}

/// Extensions 25 and 26 (tests/moto/server.py): AWS Config's service-linked role has AWS's name,
/// and Security Hub's standards are enabled asynchronously, listed, disabled and refused as on AWS.
#[test]
fn the_emulator_names_configs_role_and_keeps_security_hub_standards_as_aws_does() {
    use aws_sdk_securityhub::error::ProvideErrorMetadata as _;
    use aws_sdk_securityhub::types::StandardsSubscriptionRequest;
    let acct = Account::new();
    let sh = crate::account_controls::securityhub(&acct);
    let pci = "arn:aws:securityhub:us-east-1::standards/pci-dss/v/4.0.1";
    let fsbp = "arn:aws:securityhub:us-east-1::standards/aws-foundational-security-best-practices/v/1.0.0";
    let request = |arn: &str| StandardsSubscriptionRequest::builder().standards_arn(arn).build();
    acct.block_on(async {
        let role = acct.iam.create_service_linked_role().aws_service_name("config.amazonaws.com").send().await.unwrap();
        assert_eq!(
            role.role().unwrap().arn(),
            "arn:aws:iam::123456789012:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig"
        );
        acct.iam.get_role().role_name("AWSServiceRoleForConfig").send().await.unwrap();

        let err = sh.get_enabled_standards().send().await.unwrap_err();
        assert_eq!(err.code(), Some("InvalidAccessException"));
        assert!(err.message().unwrap_or_default().contains("not subscribed to AWS Security Hub"));
        let err = sh.batch_enable_standards().standards_subscription_requests(request(pci)).send().await.unwrap_err();
        assert_eq!(err.code(), Some("InvalidAccessException"));

        sh.enable_security_hub().enable_default_standards(false).send().await.unwrap();
        assert!(sh.get_enabled_standards().send().await.unwrap().standards_subscriptions().is_empty());
        let made = sh
            .batch_enable_standards()
            .standards_subscription_requests(request(pci))
            .standards_subscription_requests(request(fsbp))
            .send()
            .await
            .unwrap();
        let subs = made.standards_subscriptions();
        assert_eq!(subs.len(), 2);
        assert_eq!(
            subs[0].standards_subscription_arn(),
            Some("arn:aws:securityhub:us-east-1:123456789012:subscription/pci-dss/v/4.0.1")
        );
        let status = |s: &aws_sdk_securityhub::operation::get_enabled_standards::GetEnabledStandardsOutput| {
            s.standards_subscriptions()
                .iter()
                .map(|s| (s.standards_arn().unwrap().to_string(), s.standards_status().unwrap().as_str().to_string()))
                .collect::<Vec<_>>()
        };
        let first = sh.get_enabled_standards().send().await.unwrap();
        assert!(status(&first).iter().all(|(_, s)| s == "PENDING"), "{:?}", status(&first));
        let then = sh.get_enabled_standards().send().await.unwrap();
        assert!(status(&then).iter().all(|(_, s)| s == "READY"), "{:?}", status(&then));

        let err = sh
            .batch_enable_standards()
            .standards_subscription_requests(request("arn:aws:securityhub:us-east-1::standards/no-such/v/1"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidInputException"));

        let sub = subs[0].standards_subscription_arn().unwrap();
        sh.batch_disable_standards().standards_subscription_arns(sub).send().await.unwrap();
        let left = sh.get_enabled_standards().send().await.unwrap();
        assert_eq!(status(&left), vec![(fsbp.to_string(), "READY".to_string())]);

        sh.disable_security_hub().send().await.unwrap();
        sh.enable_security_hub().enable_default_standards(false).send().await.unwrap();
        assert!(
            sh.get_enabled_standards().send().await.unwrap().standards_subscriptions().is_empty(),
            "disabling the hub disabled its standards"
        );
    });
}

#[test]
fn the_emulator_keeps_a_rest_apis_tls_security_policy_and_endpoint_access_mode() {
    use aws_sdk_apigateway::types::{EndpointAccessMode, Op, PatchOperation, SecurityPolicy};
    let acct = Account::new();
    let apigw = &acct.apigateway;
    acct.block_on(async {
        let plain = apigw.create_rest_api().name("tls-default").send().await.unwrap();
        assert_eq!(plain.security_policy(), None, "none given, none kept");
        let api = apigw
            .create_rest_api()
            .name("tls-test")
            .security_policy(SecurityPolicy::from("SecurityPolicy_TLS13_1_2_2021_06"))
            .endpoint_access_mode(EndpointAccessMode::Strict)
            .send()
            .await
            .unwrap();
        let id = api.id().unwrap();
        assert_eq!(api.security_policy().map(|p| p.as_str()), Some("SecurityPolicy_TLS13_1_2_2021_06"));
        let got = apigw.get_rest_api().rest_api_id(id).send().await.unwrap();
        assert_eq!(got.security_policy().map(|p| p.as_str()), Some("SecurityPolicy_TLS13_1_2_2021_06"));
        assert_eq!(got.endpoint_access_mode(), Some(&EndpointAccessMode::Strict));
        let op = |path: &str, value: &str| PatchOperation::builder().op(Op::Replace).path(path).value(value).build();
        apigw
            .update_rest_api()
            .rest_api_id(id)
            .patch_operations(op("/securityPolicy", "TLS_1_0"))
            .patch_operations(op("/endpointAccessMode", "BASIC"))
            .patch_operations(op("/description", "still applied"))
            .send()
            .await
            .unwrap();
        let got = apigw.get_rest_api().rest_api_id(id).send().await.unwrap();
        assert_eq!(got.security_policy().map(|p| p.as_str()), Some("TLS_1_0"));
        assert_eq!(got.endpoint_access_mode(), Some(&EndpointAccessMode::Basic));
        assert_eq!(got.description(), Some("still applied"), "moto's own patch paths still apply");
    });
}

#[test]
fn the_emulator_exports_a_stage_as_its_deployment_holds_it_as_aws_does() {
    use aws_sdk_apigateway::types::{IntegrationType, Op, PatchOperation};
    let acct = Account::new();
    let apigw = &acct.apigateway;
    acct.block_on(async {
        let id = apigw.create_rest_api().name("export-test").send().await.unwrap().id().unwrap().to_string();
        let root = apigw.get_resources().rest_api_id(&id).send().await.unwrap().items()[0].id().unwrap().to_string();
        let pay = apigw
            .create_resource()
            .rest_api_id(&id)
            .parent_id(&root)
            .path_part("pay")
            .send()
            .await
            .unwrap()
            .id()
            .unwrap()
            .to_string();
        let schema = r#"{"$schema":"http://json-schema.org/draft-04/schema#","type":"object","required":["amount"]}"#;
        apigw
            .create_model()
            .rest_api_id(&id)
            .name("Payment")
            .content_type("application/json")
            .schema(schema)
            .send()
            .await
            .unwrap();
        let validator = apigw
            .create_request_validator()
            .rest_api_id(&id)
            .name("body-and-headers")
            .validate_request_body(true)
            .validate_request_parameters(true)
            .send()
            .await
            .unwrap();
        apigw
            .put_method()
            .rest_api_id(&id)
            .resource_id(&pay)
            .http_method("POST")
            .authorization_type("AWS_IAM")
            .request_validator_id(validator.id().unwrap())
            .request_models("application/json", "Payment")
            .request_parameters("method.request.header.Idempotency-Key", true)
            .send()
            .await
            .unwrap();
        let uri = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:pay:${stageVariables.alias}/invocations";
        apigw
            .put_integration()
            .rest_api_id(&id)
            .resource_id(&pay)
            .http_method("POST")
            .r#type(IntegrationType::AwsProxy)
            .integration_http_method("POST")
            .uri(uri)
            .send()
            .await
            .unwrap();
        let first = apigw.create_deployment().rest_api_id(&id).stage_name("live").send().await.unwrap();
        let export = |extensions: bool| {
            let mut call = apigw.get_export().rest_api_id(&id).stage_name("live").export_type("oas30");
            if extensions {
                call = call.parameters("extensions", "apigateway");
            }
            async move {
                let out = call.accepts("application/json").send().await.unwrap();
                serde_json::from_slice::<serde_json::Value>(out.body().unwrap().as_ref()).unwrap()
            }
        };
        let doc = export(true).await;
        assert_eq!(doc["openapi"], "3.0.1");
        let post = &doc["paths"]["/pay"]["post"];
        assert_eq!(post["security"], serde_json::json!([{ "sigv4": [] }]));
        assert_eq!(doc["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"], "awsSigv4");
        assert_eq!(post["x-amazon-apigateway-request-validator"], "body-and-headers");
        assert_eq!(
            doc["x-amazon-apigateway-request-validators"]["body-and-headers"],
            serde_json::json!({ "validateRequestBody": true, "validateRequestParameters": true })
        );
        assert_eq!(post["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Payment");
        assert_eq!(doc["components"]["schemas"]["Payment"], serde_json::json!({ "type": "object", "required": ["amount"] }));
        assert_eq!(
            post["parameters"],
            serde_json::json!([{ "name": "Idempotency-Key", "in": "header", "required": true, "schema": { "type": "string" } }])
        );
        assert_eq!(post["x-amazon-apigateway-integration"]["type"], "aws_proxy");
        assert_eq!(post["x-amazon-apigateway-integration"]["uri"], uri);
        let plain = export(false).await;
        assert!(!plain.to_string().contains("x-amazon-apigateway"), "no extensions unless asked: {plain}");

        // A change without a deployment is not what the stage serves; the next deployment is.
        apigw
            .put_method()
            .rest_api_id(&id)
            .resource_id(&pay)
            .http_method("GET")
            .authorization_type("NONE")
            .send()
            .await
            .unwrap();
        apigw
            .put_integration()
            .rest_api_id(&id)
            .resource_id(&pay)
            .http_method("GET")
            .r#type(IntegrationType::Mock)
            .send()
            .await
            .unwrap();
        assert!(export(true).await["paths"]["/pay"].get("get").is_none(), "not deployed yet");
        let second = apigw.create_deployment().rest_api_id(&id).stage_name("live").send().await.unwrap();
        let doc = export(true).await;
        assert!(doc["paths"]["/pay"]["get"].get("security").is_none(), "the second deployment's GET, open: {doc}");
        assert_eq!(doc["paths"]["/pay"]["get"]["x-amazon-apigateway-integration"]["type"], "mock");
        // Pointing the stage back at the first deployment serves the first snapshot again.
        apigw
            .update_stage()
            .rest_api_id(&id)
            .stage_name("live")
            .patch_operations(
                PatchOperation::builder().op(Op::Replace).path("/deploymentId").value(first.id().unwrap()).build(),
            )
            .send()
            .await
            .unwrap();
        assert!(export(true).await["paths"]["/pay"].get("get").is_none(), "the first deployment's again");
        assert_ne!(first.id(), second.id());
        let missing = apigw.get_export().rest_api_id(&id).stage_name("nope").export_type("oas30").send().await;
        assert_eq!(missing.unwrap_err().into_service_error().meta().code(), Some("NotFoundException"));
    });
}
