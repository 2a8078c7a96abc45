//! AWS's "not yet": the answers AWS documents right after a create, before the change has
//! propagated (src/resources/retry.rs holds the catalogue and where each is documented). The
//! proxy answers each the way AWS sends it; `up` must retry exactly these, visibly and bounded,
//! and converge in one run.

use super::harness::{Account, Answer};
use super::resilience::assert_exactly_one_stack;

const DB_SECRET: &str = "payments/qa/db-master";

/// Every catalogued propagation answer, once per resource it concerns (twice for the Lambda
/// role cases), with the message AWS sends.
fn propagation_answers(suffix: &str) -> Vec<Answer> {
    let function = |f: &str| format!("\"FunctionName\":\"payment-{f}-{suffix}\"");
    let create_function = "lambda:POST /2015-03-31/functions";
    vec![
        Answer::new(
            create_function,
            &function("validate"),
            2,
            400,
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
        ),
        Answer::new(
            create_function,
            &function("fraud-check"),
            2,
            400,
            "InvalidParameterValueException",
            "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
        ),
        Answer::new(
            create_function,
            &function("process"),
            1,
            400,
            "InvalidParameterValueException",
            "Lambda was unable to configure access to your environment variables because the KMS key is invalid \
             for CreateGrant. Please check your KMS key settings. KMS Exception: InvalidArnException",
        ),
        Answer::new(
            create_function,
            &function("rotate-secret"),
            1,
            400,
            "InvalidParameterValueException",
            "Your request has been throttled by EC2, please make sure you have enough API rate limit. \
             EC2 Error Code: RequestLimitExceeded. EC2 Error Message: Request limit exceeded.",
        ),
        Answer::new(
            "dynamodb:UpdateContinuousBackups",
            "",
            1,
            400,
            "ContinuousBackupsUnavailableException",
            &format!("Backups are being enabled for the table: transactions-{suffix}. Please retry later"),
        ),
        Answer::new(
            "secretsmanager:RotateSecret",
            "",
            1,
            400,
            "AccessDeniedException",
            "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants \
             access to the principal secretsmanager.amazonaws.com.",
        ),
        Answer::new(
            "logs:CreateLogGroup",
            "",
            1,
            400,
            "AccessDeniedException",
            "The specified KMS key does not exist or is not allowed to be used with Arn \
             'arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/x'",
        ),
        Answer::new(
            "apigateway:PATCH /account",
            "",
            1,
            400,
            "BadRequestException",
            "The role ARN does not have required permissions set to API Gateway",
        ),
        Answer::new(
            "apigateway:PATCH /restapis/",
            "accessLogSettings",
            1,
            400,
            "BadRequestException",
            "CloudWatch Logs role ARN must be set in account settings to enable logging",
        ),
        // EC2: every kind of network resource, named by a call moments after its creation.
        Answer::new("ec2:ModifyVpcAttribute", "", 1, 400, "InvalidVpcID.NotFound", "The vpc ID does not exist"),
        Answer::new("ec2:CreateSubnet", "", 1, 400, "InvalidVpcID.NotFound", "The vpc ID does not exist"),
        Answer::new(
            "ec2:AttachInternetGateway",
            "",
            1,
            400,
            "InvalidInternetGatewayID.NotFound",
            "The internetGateway ID does not exist",
        ),
        Answer::new("ec2:CreateSecurityGroup", "", 1, 400, "InvalidVpcID.NotFound", "The vpc ID does not exist"),
        Answer::new(
            "ec2:AuthorizeSecurityGroupIngress",
            "",
            1,
            400,
            "InvalidGroup.NotFound",
            "The security group does not exist",
        ),
        Answer::new(
            "ec2:RevokeSecurityGroupEgress",
            "",
            1,
            400,
            "InvalidGroup.NotFound",
            "The security group does not exist",
        ),
        Answer::new("ec2:CreateNetworkAcl", "", 1, 400, "InvalidVpcID.NotFound", "The vpc ID does not exist"),
        Answer::new(
            "ec2:CreateNetworkAclEntry",
            "",
            1,
            400,
            "InvalidNetworkAclID.NotFound",
            "The networkAcl ID does not exist",
        ),
        Answer::new("ec2:CreateRouteTable", "", 1, 400, "InvalidVpcID.NotFound", "The vpc ID does not exist"),
        Answer::new("ec2:CreateRoute", "", 1, 400, "InvalidRouteTableID.NotFound", "The routeTable ID does not exist"),
        Answer::new("ec2:AssociateRouteTable", "", 1, 400, "InvalidSubnetID.NotFound", "The subnet ID does not exist"),
        Answer::new("ec2:CreateNatGateway", "", 1, 400, "InvalidSubnetID.NotFound", "The subnet ID does not exist"),
        Answer::new("ec2:CreateVpcEndpoint", "", 1, 400, "InvalidVpcID.NotFound", "The vpc ID does not exist"),
        // The PCI controls: a stage WAF does not see yet, a trail's delivery role and a flow
        // log's role moments after they were made.
        Answer::new(
            "wafv2:AssociateWebACL",
            "/stages/live",
            1,
            400,
            "WAFUnavailableEntityException",
            "AWS WAF couldn’t retrieve the resource that you requested. Retry your request.",
        ),
        Answer::new(
            "cloudtrail:CreateTrail",
            &format!("payments-trail-{suffix}"),
            1,
            400,
            "InvalidCloudWatchLogsRoleArnException",
            "Access denied. Check the trust relationships for your role.",
        ),
        Answer::new(
            "ec2:CreateFlowLogs",
            "",
            1,
            400,
            "InvalidParameter",
            &format!("Unable to assume given IAM role: arn:aws:iam::123456789012:role/payment-flow-logs-role-{suffix}"),
        ),
    ]
}

fn inject_all(acct: &Account, suffix: &str) -> usize {
    let answers = propagation_answers(suffix);
    let total = answers.iter().map(|a| a.times as usize).sum();
    for a in answers {
        acct.proxy.answer(a);
    }
    total
}

#[test]
fn with_every_catalogued_propagation_answer_injected_up_converges_in_one_run_showing_the_waits() {
    let acct = Account::with_stub_packages();
    let injected = inject_all(&acct, "qa");
    let run = acct.ok(&["up", "--suffix", "qa"]);
    let answered = acct.proxy.answered();
    assert_eq!(
        answered.len(),
        injected,
        "every injected answer was given (else the test proves nothing): {answered:?}"
    );
    for shown in [
        "waiting for IAM, KMS and EC2 to propagate",
        "waiting for DynamoDB to enable backups",
        "waiting for Lambda to propagate the permission letting Secrets Manager invoke",
        "waiting for KMS to propagate the new key's policy to CloudWatch Logs",
        "waiting for IAM to propagate the logging role to API Gateway",
        "waiting for API Gateway to propagate the account's CloudWatch role to the stage",
        "waiting for EC2 to propagate a resource created moments ago",
    ] {
        assert!(run.stderr.contains(shown), "the wait is shown: {shown}\n{}", run.stderr);
    }
    // What AWS holds: one of everything, and what the retried calls set.
    assert_exactly_one_stack(&acct, "qa");
    let pitr = acct.block_on(async {
        acct.dynamodb.describe_continuous_backups().table_name("transactions-qa").send().await.unwrap()
    });
    let status = pitr
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str().to_string());
    assert_eq!(status.as_deref(), Some("ENABLED"));
    let secret = acct.block_on(async { acct.secrets.describe_secret().secret_id(DB_SECRET).send().await.unwrap() });
    assert_eq!(secret.rotation_enabled(), Some(true), "rotation was configured after the retry");
    for f in ["validate", "fraud-check", "process", "rotate-secret"] {
        let aliases = acct.block_on(async {
            acct.lambda.list_aliases().function_name(format!("payment-{f}-qa")).send().await.unwrap()
        });
        assert_eq!(aliases.aliases().len(), 2, "{f} created, published and aliased");
    }

    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "nothing left to do:\n{}\n{}", plan.stdout, plan.stderr);

    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    let again = inject_all(&acct, "qa");
    acct.proxy.clear_answered();
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(acct.proxy.answered().len(), again, "the second up met every answer too");
    assert_exactly_one_stack(&acct, "qa");
}

#[test]
fn a_propagation_answer_that_never_clears_ends_its_node_at_the_bound_naming_the_call_and_the_rerun_resumes() {
    let acct = Account::with_stub_packages();
    acct.proxy.answer(Answer::new(
        "lambda:POST /2015-03-31/functions",
        "\"FunctionName\":\"payment-validate-qa\"",
        u32::MAX,
        400,
        "InvalidParameterValueException",
        "The role defined for the function cannot be assumed by Lambda.",
    ));
    let run = acct.run(&["up", "--suffix", "qa", "--max-wait", "3"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "[InvalidParameterValueException] lambda:CreateFunction: The role defined for the function \
                             cannot be assumed by Lambda."
        ),
        "the operation and AWS's message: {}",
        run.stderr
    );
    // The bound is 3 s; how far past it the last poll ends depends on the machine.
    assert!(
        run.stderr.contains("still so after ") && run.stderr.contains("s of waiting for IAM, KMS and EC2"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("skipped: api.rest"), "dependants are skipped: {}", run.stderr);
    let table = acct.block_on(async { acct.dynamodb.describe_table().table_name("transactions-qa").send().await });
    assert!(table.is_ok(), "what does not depend on the functions was made");

    acct.proxy.clear_answers();
    acct.ok(&["up", "--suffix", "qa"]);
    assert_exactly_one_stack(&acct, "qa");
}
