//! Network hygiene and VPC flow logs (PCI DSS v4.0.1 1.2.1, 1.3.1, 1.3.2, 1.4.1, 1.4.2, 2.2,
//! 10.2.1, 10.2.2): the VPC's default security group holds no rule, every network ACL denies SSH
//! and RDP from anywhere ahead of its allows, no subnet hands out public addresses, and a flow
//! log of all traffic writes through its own role into its own encrypted group. Read back from
//! the emulator; each out-of-band change named by `plan` and repaired by `up`.

use super::harness::{Account, Answer};
use super::readback::{assert_standard_tags, by_suffix, inventory, leftovers, tag};
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, RuleAction};
use std::collections::BTreeMap;

const GROUP: &str = "/aws/vpc/flow-logs/payment-vpc-qa";
const ROLE: &str = "payment-flow-logs-role-qa";

fn f(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn vpc_id(acct: &Account) -> String {
    inventory(acct, "qa")["vpc"][0].clone()
}

fn default_group(acct: &Account) -> aws_sdk_ec2::types::SecurityGroup {
    let vpc = vpc_id(acct);
    acct.block_on(async {
        let out = acct
            .ec2
            .describe_security_groups()
            .filters(f("vpc-id", &vpc))
            .filters(f("group-name", "default"))
            .send()
            .await
            .unwrap();
        out.security_groups()[0].clone()
    })
}

/// Each tier's network ACL, by tier.
fn acls(acct: &Account) -> BTreeMap<String, aws_sdk_ec2::types::NetworkAcl> {
    acct.block_on(async {
        let out = acct.ec2.describe_network_acls().filters(by_suffix("qa")).send().await.unwrap();
        out.network_acls().iter().map(|a| (tag(a.tags(), "tap:member").unwrap().to_string(), a.clone())).collect()
    })
}

/// The rule AWS applies to an inbound TCP packet to `port` from an internet address of the family
/// of `anywhere` (0.0.0.0/0 or ::/0): the lowest-numbered entry that matches it.
fn first_match(acl: &aws_sdk_ec2::types::NetworkAcl, port: i32, anywhere: &str) -> (i32, RuleAction) {
    let mut matching: Vec<_> = acl
        .entries()
        .iter()
        .filter(|e| e.egress() == Some(false))
        .filter(|e| matches!(e.protocol(), Some("6" | "-1")))
        .filter(|e| {
            e.protocol() == Some("-1") || e.port_range().is_some_and(|p| p.from() <= Some(port) && Some(port) <= p.to())
        })
        .filter(|e| e.cidr_block() == Some(anywhere) || e.ipv6_cidr_block() == Some(anywhere))
        .map(|e| (e.rule_number().unwrap(), e.rule_action().unwrap().clone()))
        .collect();
    matching.sort_by_key(|(n, _)| *n);
    matching.first().cloned().unwrap_or_else(|| panic!("no rule matches TCP {port} from {anywhere}: {acl:?}"))
}

fn subnets_mapping_public_ips(acct: &Account) -> Vec<(String, bool)> {
    acct.block_on(async {
        let out = acct.ec2.describe_subnets().filters(by_suffix("qa")).send().await.unwrap();
        out.subnets()
            .iter()
            .map(|s| (tag(s.tags(), "tap:member").unwrap().to_string(), s.map_public_ip_on_launch().unwrap()))
            .collect()
    })
}

fn the_flow_log(acct: &Account) -> Option<aws_sdk_ec2::types::FlowLog> {
    let vpc = vpc_id(acct);
    acct.block_on(async {
        let out = acct.ec2.describe_flow_logs().filter(f("resource-id", &vpc)).send().await.unwrap();
        assert!(out.flow_logs().len() <= 1, "one flow log on the VPC: {:?}", out.flow_logs());
        out.flow_logs().first().cloned()
    })
}

/// The plan's exit code, and the drifts of the network's nodes as `field: current → wanted`.
fn plan_drifts(acct: &Account) -> (i32, Vec<String>) {
    let run = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    let drifts = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["node"].as_str().is_some_and(|id| id.starts_with("network.")))
        .flat_map(|n| n["changes"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            format!(
                "{}: {} → {}",
                c["field"].as_str().unwrap(),
                c["current"].as_str().unwrap(),
                c["wanted"].as_str().unwrap()
            )
        })
        .collect();
    (run.code, drifts)
}

#[test]
fn after_up_the_network_admits_nothing_it_should_not_and_a_flow_log_records_all_traffic() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);

    // The default security group: every rule AWS gave it removed, and it says whose it is.
    let g = default_group(&acct);
    assert!(g.ip_permissions().is_empty(), "no ingress rule: {:?}", g.ip_permissions());
    assert!(g.ip_permissions_egress().is_empty(), "no egress rule: {:?}", g.ip_permissions_egress());
    assert_eq!(tag(g.tags(), "Name"), Some("payment-vpc-qa-default"));
    assert_eq!(tag(g.tags(), "tap:resource"), Some("network.default-security-group"));
    assert_standard_tags("default security group", g.tags(), "qa");

    // Each tier's ACL: SSH and RDP from any IPv4 or IPv6 address meet a deny first, numbered below
    // every allow (the ephemeral allow of the public and private tiers covers 3389).
    let acls = acls(&acct);
    assert_eq!(acls.len(), 3);
    for (tier, acl) in &acls {
        let lowest_allow = acl
            .entries()
            .iter()
            .filter(|e| e.egress() == Some(false) && e.rule_action() == Some(&RuleAction::Allow))
            .filter_map(|e| e.rule_number())
            .min()
            .unwrap();
        for anywhere in ["0.0.0.0/0", "::/0"] {
            for port in [22, 3389] {
                let (number, action) = first_match(acl, port, anywhere);
                assert_eq!(action, RuleAction::Deny, "{tier}: TCP {port} from {anywhere} is denied first");
                assert!(number < lowest_allow, "{tier}: deny {number} is evaluated before allow {lowest_allow}");
            }
        }
        if tier != "database" {
            // The ephemeral allow would admit RDP: it is there, and after the deny.
            let ephemeral = acl
                .entries()
                .iter()
                .find(|e| e.egress() == Some(false) && e.port_range().and_then(|p| p.from()) == Some(1024))
                .unwrap();
            assert!(first_match(acl, 3389, "0.0.0.0/0").0 < ephemeral.rule_number().unwrap(), "{tier}");
        }
    }

    // No subnet, the public ones included, gives out public addresses.
    let mapping = subnets_mapping_public_ips(&acct);
    assert_eq!(mapping.len(), 9);
    for (member, public) in &mapping {
        assert!(!public, "subnet {member} maps public IPs on launch");
    }

    // The flow log: the VPC, all traffic, into its group, through its role; tagged.
    let fl = the_flow_log(&acct).expect("a flow log on the VPC");
    assert_eq!(fl.traffic_type().map(|t| t.as_str()), Some("ALL"));
    assert_eq!(fl.log_destination_type().map(|t| t.as_str()), Some("cloud-watch-logs"));
    assert_eq!(fl.log_group_name(), Some(GROUP));
    assert_eq!(fl.deliver_logs_permission_arn(), Some(format!("arn:aws:iam::123456789012:role/{ROLE}").as_str()));
    assert_standard_tags("flow log", fl.tags(), "qa");
    assert_eq!(tag(fl.tags(), "tap:resource"), Some("network.flow-logs"));

    acct.block_on(async {
        // The role: trusted by VPC Flow Logs for this account's flow logs only; writes only there.
        let role = acct.iam.get_role().role_name(ROLE).send().await.unwrap();
        let trust = role.role().unwrap().assume_role_policy_document().unwrap();
        let trust: serde_json::Value =
            serde_json::from_str(&percent_encoding::percent_decode_str(trust).decode_utf8_lossy()).unwrap();
        let s = &trust["Statement"][0];
        assert_eq!(s["Principal"]["Service"], "vpc-flow-logs.amazonaws.com");
        assert_eq!(s["Action"], "sts:AssumeRole");
        assert_eq!(s["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012");
        assert_eq!(s["Condition"]["ArnLike"]["aws:SourceArn"], "arn:aws:ec2:us-east-1:123456789012:vpc-flow-log/*");
        let policies = acct.iam.list_role_policies().role_name(ROLE).send().await.unwrap();
        assert_eq!(policies.policy_names(), ["flow-logs-to-own-group"]);
        let attached = acct.iam.list_attached_role_policies().role_name(ROLE).send().await.unwrap();
        assert!(attached.attached_policies().is_empty());
        let p = acct.iam.get_role_policy().role_name(ROLE).policy_name("flow-logs-to-own-group").send().await.unwrap();
        let p: serde_json::Value =
            serde_json::from_str(&percent_encoding::percent_decode_str(p.policy_document()).decode_utf8_lossy())
                .unwrap();
        let group_arn = format!("arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}");
        assert_eq!(p["Statement"].as_array().unwrap().len(), 1, "{p}");
        assert_eq!(
            p["Statement"][0]["Action"],
            serde_json::json!(["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"])
        );
        assert_eq!(p["Statement"][0]["Resource"], serde_json::json!([group_arn, format!("{group_arn}:log-stream:*")]));
        let tags = acct.iam.list_role_tags().role_name(ROLE).send().await.unwrap();
        assert!(tags.tags().iter().any(|t| t.key() == "tap:resource" && t.value() == "network.flow-logs"));

        // The group: the stack's key and retention.
        let key = acct.kms.describe_key().key_id("alias/payments-qa").send().await.unwrap();
        let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
        let groups = acct.logs.describe_log_groups().log_group_name_prefix(GROUP).send().await.unwrap();
        let group = groups.log_groups().iter().find(|g| g.log_group_name() == Some(GROUP)).unwrap();
        assert_eq!(group.kms_key_id(), Some(key_arn.as_str()));
        assert_eq!(group.retention_in_days(), Some(365));
    });

    let outputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.outputs.json")).unwrap()).unwrap();
    assert_eq!(outputs["flow_log_group"], GROUP);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0, "converged");

    // destroy: no flow log, role or group of the suffix is left.
    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    let inv = inventory(&acct, "qa");
    assert!(inv["flow-log"].is_empty() && inv["default-security-group"].is_empty(), "{inv:?}");
    acct.block_on(async {
        assert!(acct.iam.get_role().role_name(ROLE).send().await.is_err(), "the role is gone");
        let groups = acct.logs.describe_log_groups().log_group_name_prefix(GROUP).send().await.unwrap();
        assert!(groups.log_groups().is_empty(), "the group is gone");
        let all = acct.ec2.describe_flow_logs().send().await.unwrap();
        assert!(all.flow_logs().is_empty(), "{:?}", all.flow_logs());
    });
    assert_eq!(leftovers(&acct, "qa"), Vec::<String>::new());
}

#[test]
fn out_of_band_openings_and_a_deleted_flow_log_are_named_by_plan_and_repaired_by_up() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa"]);
    let default_sg = default_group(&acct).group_id().unwrap().to_string();
    let before = the_flow_log(&acct).unwrap();
    let public_acl = acls(&acct)["public"].network_acl_id().unwrap().to_string();
    let public_1 = acct.block_on(async {
        let out = acct.ec2.describe_subnets().filters(by_suffix("qa")).filters(f("tag:tap:member", "public-1")).send();
        out.await.unwrap().subnets()[0].subnet_id().unwrap().to_string()
    });

    // Out of band: SSH from anywhere into the default group; the flow log deleted; the public
    // ACL's RDP deny deleted; public-1 made to hand out public addresses.
    acct.block_on(async {
        let ssh = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(22)
            .to_port(22)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        acct.ec2.authorize_security_group_ingress().group_id(&default_sg).ip_permissions(ssh).send().await.unwrap();
        acct.ec2.delete_flow_logs().flow_log_ids(before.flow_log_id().unwrap()).send().await.unwrap();
        acct.ec2
            .delete_network_acl_entry()
            .network_acl_id(&public_acl)
            .egress(false)
            .rule_number(51)
            .send()
            .await
            .unwrap();
        acct.ec2
            .modify_subnet_attribute()
            .subnet_id(&public_1)
            .map_public_ip_on_launch(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .unwrap();
    });

    let (code, drifts) = plan_drifts(&acct);
    assert_eq!(code, 2, "{drifts:#?}");
    let vpc = vpc_id(&acct);
    for expected in [
        "default security group ingress TCP 22 from 0.0.0.0/0: present → absent".to_string(),
        format!("flow log: missing → ALL traffic of {vpc} to log group {GROUP}"),
        "public network ACL ingress rule 51: missing → deny TCP 3389 from 0.0.0.0/0".to_string(),
        "subnet public-1 public IP on launch: on → off".to_string(),
    ] {
        assert!(drifts.contains(&expected), "plan names {expected}:\n{drifts:#?}");
    }
    assert_eq!(drifts.len(), 4, "nothing else: {drifts:#?}");

    acct.ok(&["up", "--suffix", "qa"]);
    let g = default_group(&acct);
    assert!(g.ip_permissions().is_empty() && g.ip_permissions_egress().is_empty(), "{g:?}");
    assert_eq!(g.group_id(), Some(default_sg.as_str()));
    let after = the_flow_log(&acct).expect("the flow log is made again");
    assert_ne!(after.flow_log_id(), before.flow_log_id());
    assert_eq!((after.traffic_type().map(|t| t.as_str()), after.log_group_name()), (Some("ALL"), Some(GROUP)));
    let acl = &acls(&acct)["public"];
    assert_eq!(first_match(acl, 3389, "0.0.0.0/0"), (51, RuleAction::Deny));
    assert!(subnets_mapping_public_ips(&acct).iter().all(|(_, public)| !public));
    assert_eq!(plan_drifts(&acct), (0, vec![]));
}

#[test]
fn a_delivery_role_not_yet_assumable_is_waited_for_and_a_refused_flow_log_is_reported() {
    // CreateFlowLogs right after the role was made: "Unable to assume given IAM role" (terraform
    // retries exactly this for 2 min).
    let acct = Account::with_stub_packages();
    acct.proxy.answer(Answer::new(
        "ec2:CreateFlowLogs",
        "",
        2,
        400,
        "InvalidParameter",
        &format!("Unable to assume given IAM role: arn:aws:iam::123456789012:role/{ROLE}"),
    ));
    let run = acct.ok(&["up", "--suffix", "qa"]);
    let answered: Vec<_> = acct.proxy.answered().into_iter().filter(|(c, _)| c.0 == "ec2:CreateFlowLogs").collect();
    assert_eq!(answered.len(), 2, "both answers were given: {answered:?}");
    assert!(
        run.stderr.contains("waiting for IAM to propagate the flow logs' delivery role to VPC Flow Logs"),
        "{}",
        run.stderr
    );
    assert!(the_flow_log(&acct).is_some());
    assert_eq!(inventory(&acct, "qa")["flow-log"].len(), 1);

    // Any other refusal is reported, naming the call and AWS's words, not retried.
    let other = Account::with_stub_packages();
    other.proxy.answer(Answer::new(
        "ec2:CreateFlowLogs",
        "",
        1000,
        400,
        "FlowLogsLimitExceeded",
        "You have exceeded the maximum number of flow logs for this resource",
    ));
    let run = other.run(&["up", "--suffix", "qa"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("network.flow-logs") && run.stderr.contains("FlowLogsLimitExceeded"), "{}", run.stderr);
    let calls = other.proxy.calls().iter().filter(|c| c.0 == "ec2:CreateFlowLogs").count();
    assert_eq!(calls, 1, "not retried");
}
