//! Compute: roles, functions, rotation, the API and monitoring, read back from the emulator.

use super::harness::Account;
use serde_json::{json, Value};

const FUNCTIONS: [&str; 4] = ["validate", "fraud-check", "process", "rotate-secret"];

fn decode(doc: &str) -> Value {
    serde_json::from_str(&percent_encoding::percent_decode_str(doc).decode_utf8_lossy()).unwrap()
}

/// The actions that AWS gives no resource-level permission for, and so may name "*".
const STAR_ALLOWED: [&str; 9] = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "secretsmanager:GetRandomPassword",
];

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => vec![],
    }
}

#[test]
fn each_function_gets_a_role_trusting_only_lambda_for_this_account_with_exact_resources() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let (table, topic, key, db_secret, fp_secret) = acct.block_on(async {
        let t = acct.dynamodb.describe_table().table_name("transactions-qa").send().await.unwrap();
        let topic = acct.sns.list_topics().send().await.unwrap().topics()[0].topic_arn().unwrap().to_string();
        let k = acct.kms.describe_key().key_id("alias/payments-qa").send().await.unwrap();
        let secrets = &acct.secrets;
        let secret = |id: &'static str| async move {
            secrets.describe_secret().secret_id(id).send().await.unwrap().arn().unwrap().to_string()
        };
        (
            t.table().unwrap().table_arn().unwrap().to_string(),
            topic,
            k.key_metadata().unwrap().arn().unwrap().to_string(),
            secret("payments/qa/db-master").await,
            secret("payments/qa/card-fingerprint-key").await,
        )
    });
    for f in FUNCTIONS {
        let name = format!("payment-{f}-role-qa");
        let (role, policy, attached, tags) = acct.block_on(async {
            let r = acct.iam.get_role().role_name(&name).send().await.unwrap();
            let p = acct.iam.get_role_policy().role_name(&name).policy_name("payments-least-privilege").send().await;
            let a = acct.iam.list_attached_role_policies().role_name(&name).send().await.unwrap();
            let t = acct.iam.list_role_tags().role_name(&name).send().await.unwrap();
            (r.role().unwrap().clone(), decode(p.unwrap().policy_document()), a.attached_policies().len(), t)
        });
        assert_eq!(
            decode(role.assume_role_policy_document().unwrap()),
            json!({ "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": { "Service": "lambda.amazonaws.com" }, "Action": "sts:AssumeRole",
                "Condition": { "StringEquals": { "aws:SourceAccount": "123456789012" } } }] })
        );
        assert_eq!(attached, 0, "{name}: no managed policy");
        let tags: Vec<_> = tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
        assert!(tags.contains(&("tap:resource".into(), "iam.roles".into())), "{name}: {tags:?}");

        let mut granted: Vec<(String, String)> = Vec::new();
        for s in policy["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow");
            let actions = strings(&s["Action"]);
            let resources = strings(&s["Resource"]);
            for r in &resources {
                if r == "*" {
                    for a in &actions {
                        assert!(STAR_ALLOWED.contains(&a.as_str()), "{name}: {a} on * is not justified");
                    }
                } else {
                    assert!(
                        !r.contains('*')
                            || r.ends_with("/audit/*")
                            || r.ends_with(":log-stream:*")
                            || r.ends_with("/payments/qa/*"),
                        "{name}: wildcard in {r}"
                    );
                }
            }
            if actions.iter().any(|a| a.starts_with("kms:")) {
                assert_eq!(resources, vec![key.clone()], "{name}: the stack's key only");
                assert!(s["Condition"]["StringEquals"]["kms:ViaService"].is_array(), "{name}: kms:ViaService");
            }
            for a in actions {
                for r in &resources {
                    granted.push((a.clone(), r.clone()));
                }
            }
        }
        let has = |a: &str, r: &str| granted.iter().any(|(ga, gr)| ga == a && gr == r);
        let log = format!("arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/payment-{f}-qa:log-stream:*");
        assert!(has("logs:PutLogEvents", &log), "{name}: own log group");
        assert!(has("ssm:GetParametersByPath", "arn:aws:ssm:us-east-1:123456789012:parameter/payments/qa"));
        for vpc in [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface",
        ] {
            assert!(has(vpc, "*"), "{name}: {vpc}, as AWSLambdaVPCAccessExecutionRole grants it");
        }
        assert!(!granted.iter().any(|(a, _)| a.ends_with(":*") || a == "*"), "{name}: no action wildcards");
        match f {
            "validate" => {
                assert!(has("secretsmanager:GetSecretValue", &fp_secret));
                assert!(!granted.iter().any(|(a, _)| a.starts_with("dynamodb:") || a.starts_with("s3:")));
            }
            "fraud-check" => {
                assert!(has("dynamodb:Query", &format!("{table}/index/by-card")));
                assert!(!has("dynamodb:PutItem", &table), "fraud-check only reads");
            }
            "process" => {
                assert!(has("dynamodb:PutItem", &table) && has("dynamodb:UpdateItem", &table));
                assert!(has("s3:PutObject", "arn:aws:s3:::payments-audit-123456789012-us-east-1-qa/audit/*"));
                assert!(has("sns:Publish", &topic));
                assert!(!has("secretsmanager:GetSecretValue", &db_secret), "process signs in as its own login");
                assert!(has(
                    "lambda:InvokeFunction",
                    "arn:aws:lambda:us-east-1:123456789012:function:payment-rotate-secret-qa:blue"
                ));
            }
            "rotate-secret" => {
                assert!(has("secretsmanager:PutSecretValue", &db_secret));
                assert!(has("secretsmanager:UpdateSecretVersionStage", &db_secret));
                assert!(!has("secretsmanager:GetSecretValue", &fp_secret), "rotation never reads the card key");
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn a_role_made_again_under_its_name_gets_the_functions_configuration_applied_again() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    let role = "payment-process-role-qa";
    let role_id = || {
        acct.block_on(async {
            acct.iam.get_role().role_name(role).send().await.unwrap().role().unwrap().role_id().to_string()
        })
    };
    let tagged = || {
        acct.block_on(async {
            let c = acct.lambda.get_function_configuration().function_name("payment-process-qa").send().await.unwrap();
            let t = acct.lambda.list_tags().resource(c.function_arn().unwrap()).send().await.unwrap();
            t.tags().unwrap().get("tap:role-id").cloned()
        })
    };
    let before = role_id();
    assert_eq!(tagged().as_deref(), Some(before.as_str()), "the role the configuration was applied for");
    // Someone deletes the role; the next up makes it again: same name and ARN, a new id, and
    // Lambda's KMS grant for the environment still names the old one.
    acct.proxy.clear();
    acct.block_on(async {
        for policy in ["payments-least-privilege", "payments-db-connect"] {
            acct.iam.delete_role_policy().role_name(role).policy_name(policy).send().await.unwrap();
        }
        acct.iam.delete_role().role_name(role).send().await.unwrap();
    });
    let up = acct.ok(&["up", "--suffix", "qa"]);
    assert!(up.stderr.contains("its role was re-created"), "{}", up.stderr);
    let newest = role_id();
    assert_ne!(newest, before, "a new role, under the same name");
    let updates: Vec<String> = acct
        .proxy
        .calls()
        .into_iter()
        .map(|c| c.0)
        .filter(|c| c.starts_with("lambda:PUT /2015-03-31/functions/") && c.ends_with("/configuration"))
        .collect();
    // Only the function whose role is new; twice: the key away and back, which is what makes
    // Lambda grant the new role the key (the same configuration again would not).
    assert_eq!(updates, ["lambda:PUT /2015-03-31/functions/payment-process-qa/configuration"; 2], "{updates:?}");
    let key = outputs(&acct)["kms_key_arn"].as_str().unwrap().to_string();
    let config = acct.block_on(async {
        acct.lambda.get_function_configuration().function_name("payment-process-qa").send().await.unwrap()
    });
    assert_eq!(config.kms_key_arn(), Some(key.as_str()), "back on the stack's key");
    assert_eq!(tagged().as_deref(), Some(newest.as_str()));
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.stdout);
}

#[test]
fn a_widened_role_is_narrowed_again_by_up() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    acct.block_on(async {
        acct.iam
            .put_role_policy()
            .role_name("payment-validate-role-qa")
            .policy_name("payments-least-privilege")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
            .send()
            .await
            .unwrap();
        acct.iam
            .attach_role_policy()
            .role_name("payment-validate-role-qa")
            .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
            .send()
            .await
            .unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    let role = "role payment-validate-role-qa";
    for drift in [
        format!("{role} policy payments-least-privilege: also allows *"),
        format!("{role} managed policy: arn:aws:iam::aws:policy/AdministratorAccess → absent"),
    ] {
        assert!(plan.stdout.contains(&drift), "plan names {drift}: {}", plan.stdout);
    }
    acct.ok(&["up", "--suffix", "qa"]);
    acct.block_on(async {
        let p = acct
            .iam
            .get_role_policy()
            .role_name("payment-validate-role-qa")
            .policy_name("payments-least-privilege")
            .send()
            .await
            .unwrap();
        let doc = decode(p.policy_document());
        let statements = doc["Statement"].as_array().unwrap();
        assert!(statements.iter().all(|s| s["Action"] != "*"), "{doc}");
        assert!(statements.iter().any(|s| s["Sid"] == "FingerprintKey"), "the least-privilege policy is back");
        let a = acct.iam.list_attached_role_policies().role_name("payment-validate-role-qa").send().await.unwrap();
        assert!(a.attached_policies().is_empty());
    });
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

fn outputs(acct: &Account) -> Value {
    serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.outputs.json")).unwrap()).unwrap()
}

fn manifest() -> Value {
    let path = super::harness::packages_dir().join("manifest.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn up_deploys_each_function_from_its_package_into_the_private_subnets_with_blue_and_green_aliases() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let out = outputs(&acct);
    let mut private: Vec<String> =
        out["private_subnet_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    private.sort();
    let manifest = manifest();
    for f in FUNCTIONS {
        let name = format!("payment-{f}-qa");
        let (c, aliases, versions, concurrency, tags) = acct.block_on(async {
            let c = acct.lambda.get_function_configuration().function_name(&name).send().await.unwrap();
            let a = acct.lambda.list_aliases().function_name(&name).send().await.unwrap();
            let v = acct.lambda.list_versions_by_function().function_name(&name).send().await.unwrap();
            let g = acct.lambda.get_function().function_name(&name).send().await.unwrap();
            let t = acct.lambda.list_tags().resource(c.function_arn().unwrap()).send().await.unwrap();
            (c, a, v, g.concurrency().and_then(|c| c.reserved_concurrent_executions()), t)
        });
        assert_eq!(c.runtime().unwrap().as_str(), "provided.al2023", "{name}");
        assert_eq!(c.handler(), Some("bootstrap"));
        assert_eq!(c.code_sha256(), manifest["functions"][f]["code_sha256"].as_str(), "{name}: the built package");
        let vpc = c.vpc_config().unwrap();
        let mut subnets = vpc.subnet_ids().to_vec();
        subnets.sort();
        assert_eq!(subnets, private, "{name}: private subnets");
        assert_eq!(vpc.security_group_ids(), [out["functions_security_group_id"].as_str().unwrap()]);
        let env = c.environment().unwrap().variables().unwrap();
        assert_eq!(env.len(), 1, "{name}: only the prefix in the environment: {env:?}");
        assert_eq!(env["PAYMENTS_CONFIG_PREFIX"], "/payments/qa");
        assert_eq!(c.kms_key_arn(), out["kms_key_arn"].as_str(), "{name}: environment encrypted with the CMK");
        assert_eq!(c.tracing_config().unwrap().mode().unwrap().as_str(), "Active");
        let timeout = c.timeout().unwrap();
        if f != "rotate-secret" {
            // API Gateway answers 504 after 29 s: the function must have ended by then.
            assert!(timeout <= 25, "{name}: {timeout} s is not below the API's 29 s with room to spare");
        }
        let logging = c.logging_config().unwrap();
        assert_eq!(logging.log_format().unwrap().as_str(), "JSON");
        assert_eq!(logging.log_group(), Some(format!("/aws/lambda/{name}").as_str()));
        assert_eq!(concurrency, None, "{name}: no reserved concurrency");
        assert_eq!(tags.tags().unwrap()["tap:resource"], format!("functions.{f}"), "{name}: its own node");
        let published: Vec<&str> =
            versions.versions().iter().filter_map(|v| v.version()).filter(|v| *v != "$LATEST").collect();
        assert_eq!(published, ["1"], "{name}: one version for one package");
        let mut colours: Vec<(&str, &str)> =
            aliases.aliases().iter().map(|a| (a.name().unwrap(), a.function_version().unwrap())).collect();
        colours.sort();
        assert_eq!(colours, [("blue", "1"), ("green", "1")], "{name}");
    }
    // A second up publishes nothing.
    acct.ok(&["up", "--suffix", "qa"]);
    let versions = acct.block_on(async {
        acct.lambda.list_versions_by_function().function_name("payment-process-qa").send().await.unwrap()
    });
    assert_eq!(versions.versions().len(), 2, "$LATEST and 1 only");
}

#[test]
fn the_database_secret_rotates_every_thirty_days_through_rotate_secret_and_nothing_else_may_invoke_it() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let (secret, policy, value) = acct.block_on(async {
        let s = acct.secrets.describe_secret().secret_id("payments/qa/db-master").send().await.unwrap();
        let p = acct.lambda.get_policy().function_name("payment-rotate-secret-qa").send().await.unwrap();
        let v = acct.secrets.get_secret_value().secret_id("payments/qa/db-master").send().await.unwrap();
        (s, p, v)
    });
    assert_eq!(secret.rotation_enabled(), Some(true));
    assert!(secret.rotation_lambda_arn().unwrap().ends_with(":function:payment-rotate-secret-qa"));
    assert_eq!(secret.rotation_rules().unwrap().automatically_after_days(), Some(30));
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert_eq!(statements[0]["Principal"]["Service"], "secretsmanager.amazonaws.com");
    assert_eq!(statements[0]["Condition"]["ArnLike"]["AWS:SourceArn"], secret.arn().unwrap());
    let password: Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert!(
        password["password"].as_str().is_some_and(|p| p.len() >= 32),
        "turning rotation on left the password readable"
    );
}

#[test]
fn the_api_is_regional_iam_authorised_validated_and_calls_the_alias_its_stage_variable_names() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let out = outputs(&acct);
    let api_id = out["api_id"].as_str().unwrap().to_string();
    assert_eq!(out["api_url"], format!("https://{api_id}.execute-api.us-east-1.amazonaws.com/live"));
    let apigw = &acct.apigateway;
    let (api, model, validators, resources, stage, account) = acct.block_on(async {
        (
            apigw.get_rest_api().rest_api_id(&api_id).send().await.unwrap(),
            apigw.get_model().rest_api_id(&api_id).model_name("PaymentRequest").send().await.unwrap(),
            apigw.get_request_validators().rest_api_id(&api_id).send().await.unwrap(),
            apigw.get_resources().rest_api_id(&api_id).send().await.unwrap(),
            apigw.get_stage().rest_api_id(&api_id).stage_name("live").send().await.unwrap(),
            apigw.get_account().send().await.unwrap(),
        )
    });
    assert_eq!(api.name(), Some("payment-api-qa"));
    assert_eq!(api.endpoint_configuration().unwrap().types()[0].as_str(), "REGIONAL");
    assert_eq!(api.tags().unwrap()["EnvironmentSuffix"], "qa");
    let schema: Value = serde_json::from_str(model.schema().unwrap()).unwrap();
    assert_eq!(schema, payments_core::schemas::payment_request(), "the model is payments-core's schema");
    let validator = &validators.items()[0];
    assert_eq!((validator.validate_request_body(), validator.validate_request_parameters()), (true, true));
    let mut paths: Vec<&str> = resources.items().iter().filter_map(|r| r.path()).collect();
    paths.sort();
    assert_eq!(paths, ["/", "/fraud-check", "/process", "/validate"]);
    for r in resources.items().iter().filter(|r| r.path() != Some("/")) {
        let route = &r.path().unwrap()[1..];
        let methods: Vec<&str> =
            r.resource_methods().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
        assert_eq!(methods, ["POST"], "/{route}: POST only");
        let m = acct.block_on(async {
            apigw
                .get_method()
                .rest_api_id(&api_id)
                .resource_id(r.id().unwrap())
                .http_method("POST")
                .send()
                .await
                .unwrap()
        });
        assert_eq!(m.authorization_type(), Some("AWS_IAM"), "/{route}: no anonymous access");
        assert_eq!(m.request_validator_id(), validator.id());
        assert_eq!(m.request_models().unwrap()["application/json"], "PaymentRequest");
        // Any other Content-Type is validated too: API Gateway skips validation when no model
        // matches the request's type, unless one is mapped for $default.
        assert_eq!(m.request_models().unwrap()["$default"], "PaymentRequest", "validated whatever the Content-Type");
        let header = m.request_parameters().and_then(|p| p.get("method.request.header.Idempotency-Key")).copied();
        assert_eq!(header, (route == "process").then_some(true), "/{route}: Idempotency-Key");
        let i = m.method_integration().unwrap();
        assert_eq!(i.r#type().unwrap().as_str(), "AWS_PROXY");
        assert_eq!(i.http_method(), Some("POST"));
        assert!(
            i.uri()
                .unwrap()
                .ends_with(&format!(":function:payment-{route}-qa:${{stageVariables.lambdaAlias}}/invocations")),
            "/{route}: {}",
            i.uri().unwrap()
        );
        for colour in ["blue", "green"] {
            let p = acct.block_on(async {
                acct.lambda
                    .get_policy()
                    .function_name(format!("payment-{route}-qa"))
                    .qualifier(colour)
                    .send()
                    .await
                    .unwrap()
            });
            let p: Value = serde_json::from_str(p.policy().unwrap()).unwrap();
            let st =
                p["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == format!("payment-api-invokes-{colour}"));
            let st = st.unwrap_or_else(|| panic!("{route}:{colour} has no permission for the API: {p}"));
            assert_eq!(st["Principal"]["Service"], "apigateway.amazonaws.com");
            assert_eq!(
                st["Condition"]["ArnLike"]["AWS:SourceArn"],
                format!("arn:aws:execute-api:us-east-1:123456789012:{api_id}/*/POST/{route}"),
                "only this API's method may invoke {route}:{colour}"
            );
        }
    }
    assert_eq!(stage.variables().unwrap()["lambdaAlias"], "blue");
    assert!(stage.tracing_enabled(), "X-Ray");
    let logs = stage.access_log_settings().unwrap();
    assert_eq!(
        logs.destination_arn(),
        Some("arn:aws:logs:us-east-1:123456789012:log-group:/aws/apigateway/payment-api-qa")
    );
    let format: Value = serde_json::from_str(logs.format().unwrap()).unwrap();
    assert_eq!(format["status"], "$context.status", "JSON access logs");
    assert!(!logs.format().unwrap().contains("body"), "access logs never hold a body");
    let all = &stage.method_settings().unwrap()["*/*"];
    assert!(all.metrics_enabled(), "detailed metrics");
    assert_eq!(all.logging_level(), Some("ERROR"));
    assert!(!all.data_trace_enabled(), "execution logs never record bodies (card numbers)");
    assert_eq!((all.throttling_rate_limit(), all.throttling_burst_limit()), (500.0, 1000));
    let group = acct.block_on(async {
        acct.logs.describe_log_groups().log_group_name_prefix("/aws/apigateway/payment-api-qa").send().await.unwrap()
    });
    assert_eq!(group.log_groups()[0].kms_key_id(), out["kms_key_arn"].as_str(), "access logs under the CMK");
    assert_eq!(account.cloudwatch_role_arn(), Some("arn:aws:iam::123456789012:role/tapctl-apigateway-logs-us-east-1"));
}

#[test]
fn the_log_groups_aws_would_make_itself_are_made_first_encrypted_with_retention_and_go_with_destroy() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    let out = outputs(&acct);
    let (key, api_id) = (out["kms_key_arn"].as_str().unwrap().to_string(), out["api_id"].as_str().unwrap().to_string());
    let execution = format!("API-Gateway-Execution-Logs_{api_id}/live");
    // Including the canary's groups (API Gateway appends "/Canary"): `shift` makes canaries.
    let names = [
        "/aws/rds/cluster/payment-db-qa/postgresql".to_string(),
        execution.clone(),
        format!("{execution}/Canary"),
        "/aws/apigateway/payment-api-qa/Canary".to_string(),
        "/aws/apigateway/welcome".to_string(),
    ];
    let group = |name: &str| {
        acct.block_on(async {
            let out = acct.logs.describe_log_groups().log_group_name_prefix(name).send().await.unwrap();
            out.log_groups().iter().find(|g| g.log_group_name() == Some(name)).cloned()
        })
    };
    for name in &names {
        let g = group(name).unwrap_or_else(|| panic!("{name} is made before AWS writes to it"));
        assert_eq!(g.kms_key_id(), Some(key.as_str()), "{name}: the stack's key");
        assert_eq!(g.retention_in_days(), Some(365), "{name}: the stack's retention");
    }
    // Deleted out of band, the execution group is drift; up makes it again before AWS could.
    acct.block_on(async { acct.logs.delete_log_group().log_group_name(&execution).send().await.unwrap() });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(plan.stdout.contains(&format!("log group {execution}: missing → ")), "{}", plan.stdout);
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(group(&execution).and_then(|g| g.kms_key_id().map(str::to_string)), Some(key));
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    for name in &names {
        assert!(group(name).is_none(), "{name} goes with destroy");
    }
}

#[test]
fn destroying_one_regions_stack_leaves_another_regions_logging_role_and_setting_intact() {
    let acct = Account::with_stub_packages();
    let config = acct.via_proxy();
    let apigw = |region: &'static str| {
        let conf = aws_sdk_apigateway::config::Builder::from(&config)
            .region(aws_sdk_apigateway::config::Region::new(region))
            .build();
        aws_sdk_apigateway::Client::from_conf(conf)
    };
    let setting = |region: &'static str| {
        acct.block_on(async {
            apigw(region).get_account().send().await.unwrap().cloudwatch_role_arn().map(str::to_string)
        })
    };
    let role = |name: &str| acct.block_on(async { acct.iam.get_role().role_name(name).send().await.is_ok() });
    acct.ok(&["up", "--suffix", "qa"]);
    // Another stack of the account, in another region (its own suffix: one state per suffix).
    acct.ok(&["up", "--suffix", "eu", "--region", "eu-west-1"]);
    assert_eq!(
        setting("us-east-1").as_deref(),
        Some("arn:aws:iam::123456789012:role/tapctl-apigateway-logs-us-east-1")
    );
    assert_eq!(
        setting("eu-west-1").as_deref(),
        Some("arn:aws:iam::123456789012:role/tapctl-apigateway-logs-eu-west-1")
    );
    let trust = acct.block_on(async {
        let r = acct.iam.get_role().role_name("tapctl-apigateway-logs-eu-west-1").send().await.unwrap();
        decode(r.role().unwrap().assume_role_policy_document().unwrap())
    });
    assert_eq!(
        trust["Statement"],
        json!([{ "Effect": "Allow", "Principal": { "Service": "apigateway.amazonaws.com" }, "Action": "sts:AssumeRole" }]),
        "the form AWS documents"
    );
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert!(!role("tapctl-apigateway-logs-us-east-1") && setting("us-east-1").filter(|s| !s.is_empty()).is_none());
    assert!(role("tapctl-apigateway-logs-eu-west-1"), "the other region's role stays");
    assert_eq!(
        setting("eu-west-1").as_deref(),
        Some("arn:aws:iam::123456789012:role/tapctl-apigateway-logs-eu-west-1"),
        "and its setting still names it: its logs go on"
    );
    acct.ok(&["destroy", "--suffix", "eu", "--region", "eu-west-1", "--yes"]);
    assert!(!role("tapctl-apigateway-logs-eu-west-1"));
}

#[test]
fn an_account_logging_role_set_by_someone_else_is_kept_and_tapctls_goes_with_the_last_api() {
    let acct = Account::new();
    let theirs = "arn:aws:iam::123456789012:role/platform-apigw-logs";
    let set = |arn: &str| {
        acct.block_on(async {
            acct.apigateway
                .update_account()
                .patch_operations(
                    aws_sdk_apigateway::types::PatchOperation::builder()
                        .op(aws_sdk_apigateway::types::Op::Replace)
                        .path("/cloudwatchRoleArn")
                        .value(arn)
                        .build(),
                )
                .send()
                .await
                .unwrap()
        })
    };
    let account_role = || {
        acct.block_on(async {
            let account = acct.apigateway.get_account().send().await.unwrap();
            account.cloudwatch_role_arn().filter(|a| !a.is_empty()).map(String::from)
        })
    };
    let our_role = || {
        acct.block_on(async { acct.iam.get_role().role_name("tapctl-apigateway-logs-us-east-1").send().await.is_ok() })
    };
    set(theirs);
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(account_role().as_deref(), Some(theirs), "an existing setting is not replaced");
    assert!(!our_role(), "no role of ours when the account has one");
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert_eq!(account_role().as_deref(), Some(theirs), "and destroy leaves it");

    set("");
    acct.ok(&["up", "--suffix", "qa"]);
    acct.ok(&["up", "--suffix", "dev"]);
    assert_eq!(account_role().as_deref(), Some("arn:aws:iam::123456789012:role/tapctl-apigateway-logs-us-east-1"));
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert!(our_role() && account_role().is_some(), "dev's API still logs through it");
    acct.ok(&["destroy", "--suffix", "dev", "--yes"]);
    assert!(!our_role() && account_role().is_none(), "the last stack gone, tapctl's own setting goes with it");
}

#[test]
fn alarms_notify_the_topic_and_the_dashboard_covers_the_payment_path() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let topic = outputs(&acct)["alerts_topic_arn"].as_str().unwrap().to_string();
    let (alarms, dashboard) = acct.block_on(async {
        let a = acct.cloudwatch.describe_alarms().send().await.unwrap();
        let d = acct.cloudwatch.get_dashboard().dashboard_name("payments-qa").send().await.unwrap();
        (a, d)
    });
    let by_name: std::collections::BTreeMap<&str, &aws_sdk_cloudwatch::types::MetricAlarm> =
        alarms.metric_alarms().iter().map(|a| (a.alarm_name().unwrap(), a)).collect();
    // 14 of monitoring.alarms and the 9 CIS alarms of audit.alarms.
    assert_eq!(by_name.len(), 23, "{:?}", by_name.keys());
    for a in by_name.values() {
        assert_eq!(a.alarm_actions(), [topic.as_str()], "{:?} notifies the topic", a.alarm_name());
    }
    let p99 = by_name["payments-api-p99-latency-qa"];
    assert_eq!((p99.namespace(), p99.metric_name()), (Some("AWS/ApiGateway"), Some("Latency")));
    assert_eq!(p99.extended_statistic(), Some("p99"));
    assert_eq!(p99.threshold(), Some(200.0));
    assert_eq!(p99.comparison_operator().unwrap().as_str(), "GreaterThanThreshold");
    assert_eq!(by_name["payments-api-5xx-qa"].metric_name(), Some("5XXError"));
    for f in ["validate", "fraud-check", "process", "rotate-secret"] {
        let a = by_name[format!("payments-{f}-errors-qa").as_str()];
        assert_eq!((a.namespace(), a.metric_name()), (Some("AWS/Lambda"), Some("Errors")));
    }
    for f in ["validate", "fraud-check", "process"] {
        for c in ["blue", "green"] {
            let a = by_name[format!("payments-{f}-{c}-errors-qa").as_str()];
            let resource = a.dimensions().iter().find(|d| d.name() == Some("Resource")).and_then(|d| d.value());
            assert_eq!(resource, Some(format!("payment-{f}-qa:{c}").as_str()), "errors of the {c} alias");
        }
    }
    let cpu = by_name["payments-db-cpu-qa"];
    assert_eq!((cpu.metric_name(), cpu.threshold()), (Some("CPUUtilization"), Some(80.0)));
    let mut dims: Vec<(&str, &str)> =
        cpu.dimensions().iter().map(|d| (d.name().unwrap(), d.value().unwrap())).collect();
    dims.sort();
    assert_eq!(dims, [("DBClusterIdentifier", "payment-db-qa"), ("Role", "WRITER")], "the writer, not an average");
    for a in by_name.values() {
        // Deliberate: the return to OK is what resolves an incident in a pager fed by the topic.
        assert_eq!(a.ok_actions(), [topic.as_str()], "{:?} says when it is resolved", a.alarm_name());
    }
    let body = dashboard.dashboard_body().unwrap();
    for metric in [
        "\"Latency\"",
        "\"p50\"",
        "\"p99\"",
        "\"4XXError\"",
        "\"5XXError\"",
        "\"Duration\"",
        "\"Errors\"",
        "\"Throttles\"",
        "\"SuccessfulRequestLatency\"",
        "\"ThrottledRequests\"",
        "\"CPUUtilization\"",
        "\"DatabaseConnections\"",
        "\"ReadLatency\"",
        "\"WriteLatency\"",
        "\"ServerlessDatabaseCapacity\"",
    ] {
        assert!(body.contains(metric), "the dashboard shows {metric}");
    }
}

#[test]
fn up_waits_visibly_for_a_function_lambda_is_still_setting_up_and_then_publishes() {
    let acct = Account::new();
    // Every function's first three configuration reads say Pending / InProgress.
    acct.proxy.set_pending("/configuration", 12);
    let run = acct.ok(&["up", "--suffix", "qa"]);
    assert!(
        run.stderr.contains("waiting for function payment-") && run.stderr.contains("state Pending"),
        "{}",
        run.stderr
    );
    let aliases =
        acct.block_on(async { acct.lambda.list_aliases().function_name("payment-process-qa").send().await.unwrap() });
    assert_eq!(aliases.aliases().len(), 2, "published and aliased once ready");
}

#[test]
fn out_of_band_changes_that_would_leak_or_weaken_are_drift_and_up_puts_them_back() {
    use aws_sdk_apigateway::types::{Op, PatchOperation};
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let api_id = outputs(&acct)["api_id"].as_str().unwrap().to_string();
    acct.block_on(async {
        // Someone adds a variable to a function's environment, turns on request-body logging
        // on the stage (card numbers in the execution logs), and switches rotation off.
        acct.lambda
            .update_function_configuration()
            .function_name("payment-process-qa")
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .variables("PAYMENTS_CONFIG_PREFIX", "/payments/qa")
                    .variables("DEBUG_DB_PASSWORD", "hunter2")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        acct.apigateway
            .update_stage()
            .rest_api_id(&api_id)
            .stage_name("live")
            .patch_operations(
                PatchOperation::builder().op(Op::Replace).path("/*/*/logging/dataTrace").value("true").build(),
            )
            .send()
            .await
            .unwrap();
        acct.secrets.cancel_rotate_secret().secret_id("payments/qa/db-master").send().await.unwrap();
    });
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    for drift in [
        "environment: DEBUG_DB_PASSWORD, PAYMENTS_CONFIG_PREFIX=/payments/qa → only PAYMENTS_CONFIG_PREFIX=/payments/qa",
        "stage live data trace (bodies in the logs): on → off",
        "rotation: off → on",
    ] {
        assert!(plan.stdout.contains(drift), "plan names {drift}: {}", plan.stdout);
    }
    assert!(!plan.stdout.contains("hunter2") && !plan.stderr.contains("hunter2"), "a drift never shows a value");
    acct.ok(&["up", "--suffix", "qa"]);
    acct.block_on(async {
        let c = acct.lambda.get_function_configuration().function_name("payment-process-qa").send().await.unwrap();
        assert_eq!(c.environment().unwrap().variables().unwrap().len(), 1, "only the prefix again");
        let s = acct.apigateway.get_stage().rest_api_id(&api_id).stage_name("live").send().await.unwrap();
        assert!(!s.method_settings().unwrap()["*/*"].data_trace_enabled(), "bodies out of the logs again");
        let secret = acct.secrets.describe_secret().secret_id("payments/qa/db-master").send().await.unwrap();
        assert_eq!(secret.rotation_enabled(), Some(true));
    });
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0, "converged");
}
