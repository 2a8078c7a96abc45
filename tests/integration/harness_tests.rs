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
