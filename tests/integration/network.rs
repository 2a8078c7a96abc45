//! The key and network layer: up, plan, status, destroy, read back from the emulator.

use super::harness::{Account, MADE, NODES};
use super::readback::{assert_standard_tags, by_suffix, inventory, leftovers, tag};
use aws_sdk_ec2::types::{Filter, NatGatewayState};

fn f(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

#[test]
fn up_on_an_empty_account_creates_the_key_and_the_whole_network_tagged() {
    let acct = Account::new();
    let run = acct.ok(&["up", "--suffix", "qa"]);
    // All but the VPC's default security group, which AWS makes with the VPC: up adopts it and
    // strips its rules.
    assert!(run.stdout.contains(&format!("{} created, 1 adopted", MADE - 1)), "{}", run.stdout);

    acct.block_on(async {
        // KMS: one enabled key, rotation on, alias, tags.
        let meta = acct.kms.describe_key().key_id("alias/payments-qa").send().await.unwrap();
        let key = meta.key_metadata().unwrap();
        assert_eq!(key.key_state(), Some(&aws_sdk_kms::types::KeyState::Enabled));
        let rotation = acct.kms.get_key_rotation_status().key_id(key.key_id()).send().await.unwrap();
        assert!(rotation.key_rotation_enabled(), "key rotation must be on");
        let tags = acct.kms.list_resource_tags().key_id(key.key_id()).send().await.unwrap();
        let get = |k: &str| tags.tags().iter().find(|t| t.tag_key() == k).map(|t| t.tag_value().to_string());
        assert_eq!(get("EnvironmentSuffix").as_deref(), Some("qa"));
        assert_eq!(get("Stack").as_deref(), Some("TapStackqa"));
        assert_eq!(get("tap:resource").as_deref(), Some("kms.key"));
        let policy = acct.kms.get_key_policy().key_id(key.key_id()).policy_name("default").send().await.unwrap();
        let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
        let sids: Vec<&str> =
            policy["Statement"].as_array().unwrap().iter().filter_map(|s| s["Sid"].as_str()).collect();
        assert!(sids.contains(&"CloudWatchLogsOfThisAccount"), "{sids:?}");
        // The policy enforces what it claims: the account administers the key (and can always
        // change its policy), but uses it only through the stack's services.
        for s in policy["Statement"].as_array().unwrap() {
            let actions: Vec<&str> = match &s["Action"] {
                serde_json::Value::String(a) => vec![a.as_str()],
                a => a.as_array().unwrap().iter().filter_map(|v| v.as_str()).collect(),
            };
            assert!(!actions.contains(&"kms:*"), "no statement grants kms:*: {s}");
            let uses = actions.iter().any(|a| {
                ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:Create*"].contains(a)
            });
            if s["Principal"]["AWS"] == "arn:aws:iam::123456789012:root" && uses {
                assert!(
                    s["Condition"]["ForAnyValue:StringEquals"]["kms:ViaService"].is_array(),
                    "use only via services: {s}"
                );
            }
        }
        let admin = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "AccountAdministrationThroughIam")
            .unwrap();
        assert!(admin["Action"].as_array().unwrap().iter().any(|a| a == "kms:Put*"), "never locked out: {admin}");
        assert!(admin.get("Condition").is_none());

        let ec2 = &acct.ec2;
        // VPC with DNS on.
        let vpcs = ec2.describe_vpcs().filters(by_suffix("qa")).send().await.unwrap();
        assert_eq!(vpcs.vpcs().len(), 1);
        let vpc = &vpcs.vpcs()[0];
        let vpc_id = vpc.vpc_id().unwrap();
        assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
        assert_standard_tags("vpc", vpc.tags(), "qa");
        assert_eq!(tag(vpc.tags(), "Name"), Some("payment-vpc-qa"));
        let dns = ec2
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
            .send()
            .await
            .unwrap();
        assert_eq!(dns.enable_dns_hostnames().and_then(|b| b.value()), Some(true));

        // Nine subnets: three tiers in three distinct AZs each, all tagged, none overlapping.
        let subnets = ec2.describe_subnets().filters(by_suffix("qa")).send().await.unwrap();
        assert_eq!(subnets.subnets().len(), 9);
        let mut tier_ids = std::collections::BTreeMap::<String, Vec<String>>::new();
        for tier in ["public", "private", "database"] {
            let of_tier: Vec<_> = subnets
                .subnets()
                .iter()
                .filter(|s| tag(s.tags(), "tap:member").is_some_and(|m| m.starts_with(tier)))
                .collect();
            assert_eq!(of_tier.len(), 3, "{tier}");
            let azs: std::collections::BTreeSet<_> = of_tier.iter().map(|s| s.availability_zone().unwrap()).collect();
            assert_eq!(azs.len(), 3, "{tier} subnets must span three AZs");
            tier_ids.insert(tier.into(), of_tier.iter().map(|s| s.subnet_id().unwrap().to_string()).collect());
        }
        for s in subnets.subnets() {
            assert_standard_tags("subnet", s.tags(), "qa");
            assert_eq!(s.vpc_id(), Some(vpc_id));
        }

        // Internet gateway attached; one NAT gateway, available, in a public subnet, with the EIP.
        let igws = ec2.describe_internet_gateways().filters(by_suffix("qa")).send().await.unwrap();
        assert_eq!(igws.internet_gateways().len(), 1);
        let igw = &igws.internet_gateways()[0];
        assert_eq!(igw.attachments()[0].vpc_id(), Some(vpc_id));
        let nats = ec2.describe_nat_gateways().filter(f("vpc-id", vpc_id)).send().await.unwrap();
        let nat = &nats.nat_gateways()[0];
        assert_eq!(nats.nat_gateways().len(), 1);
        assert_eq!(nat.state(), Some(&NatGatewayState::Available));
        assert!(tier_ids["public"].contains(&nat.subnet_id().unwrap().to_string()));
        assert_standard_tags("nat", nat.tags(), "qa");
        let eips = ec2.describe_addresses().filters(by_suffix("qa")).send().await.unwrap();
        assert_eq!(eips.addresses().len(), 1);
        assert_eq!(nat.nat_gateway_addresses()[0].allocation_id(), eips.addresses()[0].allocation_id());

        // Route tables: public -> IGW, private -> NAT, database: nothing leaves the VPC.
        let rts = ec2.describe_route_tables().filters(by_suffix("qa")).send().await.unwrap();
        assert_eq!(rts.route_tables().len(), 3);
        for rt in rts.route_tables() {
            let tier = tag(rt.tags(), "tap:member").unwrap();
            let default = rt.routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
            match tier {
                "public" => assert_eq!(default.and_then(|r| r.gateway_id()), igw.internet_gateway_id()),
                "private" => assert_eq!(default.and_then(|r| r.nat_gateway_id()), nat.nat_gateway_id()),
                "database" => {
                    assert!(default.is_none(), "the database tier must have no route to the internet");
                    for r in rt.routes() {
                        assert!(r.gateway_id() == Some("local"), "database route table has a non-local route: {r:?}");
                    }
                }
                other => panic!("unexpected route table {other}"),
            }
            let associated: Vec<String> =
                rt.associations().iter().filter_map(|a| a.subnet_id().map(String::from)).collect();
            let mut want = tier_ids[tier].clone();
            want.sort();
            let mut got = associated.clone();
            got.sort();
            assert_eq!(got, want, "{tier} route table associations");
        }

        // Network ACLs: the database tier admits 5432 from the private subnets only.
        let acls = ec2.describe_network_acls().filters(by_suffix("qa")).send().await.unwrap();
        assert_eq!(acls.network_acls().len(), 3);
        let db = acls.network_acls().iter().find(|a| tag(a.tags(), "tap:member") == Some("database")).unwrap();
        let allow_in: Vec<_> = db
            .entries()
            .iter()
            .filter(|e| e.egress() == Some(false) && e.rule_action() == Some(&aws_sdk_ec2::types::RuleAction::Allow))
            .collect();
        assert_eq!(allow_in.len(), 3);
        for e in &allow_in {
            assert_eq!(e.protocol(), Some("6"));
            assert_eq!(e.port_range().and_then(|p| p.from()), Some(5432));
            assert_eq!(e.port_range().and_then(|p| p.to()), Some(5432));
            assert_ne!(e.cidr_block(), Some("0.0.0.0/0"));
        }
        let db_subnets: Vec<String> =
            db.associations().iter().filter_map(|a| a.subnet_id().map(String::from)).collect();
        assert_eq!(db_subnets.len(), 3);

        // Security groups: database admits 5432 from the functions' group only, opens nothing.
        let sgs = ec2
            .describe_security_groups()
            .filters(by_suffix("qa"))
            .filters(f("tag:tap:resource", "network.security-groups"))
            .send()
            .await
            .unwrap();
        assert_eq!(sgs.security_groups().len(), 2, "the stack's own two (the VPC's default group is hygiene.rs's)");
        let sg = |m: &str| sgs.security_groups().iter().find(|g| tag(g.tags(), "tap:member") == Some(m)).unwrap();
        let (functions, database) = (sg("functions"), sg("database"));
        assert_eq!(database.ip_permissions().len(), 1);
        let p = &database.ip_permissions()[0];
        assert_eq!((p.ip_protocol(), p.from_port(), p.to_port()), (Some("tcp"), Some(5432), Some(5432)));
        assert!(p.ip_ranges().is_empty(), "the database must not be open to any CIDR");
        assert_eq!(p.user_id_group_pairs()[0].group_id(), functions.group_id());
        assert!(database.ip_permissions_egress().is_empty(), "the database opens no connections");
        assert!(functions.ip_permissions().is_empty(), "nothing connects to the functions");
        assert_standard_tags("sg", database.tags(), "qa");

        // Gateway endpoints for S3 and DynamoDB on the private route table.
        let private_rt = rts.route_tables().iter().find(|r| tag(r.tags(), "tap:member") == Some("private")).unwrap();
        let eps = ec2.describe_vpc_endpoints().filters(f("vpc-id", vpc_id)).send().await.unwrap();
        let mut services: Vec<&str> = eps.vpc_endpoints().iter().filter_map(|e| e.service_name()).collect();
        services.sort();
        assert_eq!(services, vec!["com.amazonaws.us-east-1.dynamodb", "com.amazonaws.us-east-1.s3"]);
        for e in eps.vpc_endpoints() {
            assert_eq!(e.route_table_ids(), [private_rt.route_table_id().unwrap().to_string()]);
            assert_standard_tags("endpoint", e.tags(), "qa");
        }
    });

    // The operator outputs file names what exists.
    let outputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(acct.state_dir.path().join("qa.outputs.json")).unwrap()).unwrap();
    assert_eq!(outputs["vpc_id"].as_str(), inventory(&acct, "qa")["vpc"].first().map(String::as_str));
}

#[test]
fn a_second_up_makes_no_mutating_call_and_keeps_every_id() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let before = inventory(&acct, "qa");
    acct.proxy.clear();
    let run = acct.ok(&["up", "--suffix", "qa"]);
    let calls = acct.proxy.calls();
    assert!(!calls.is_empty(), "the proxy saw nothing: the test would prove nothing");
    let mutating: Vec<_> = calls.iter().filter(|c| c.is_mutating()).collect();
    assert!(mutating.is_empty(), "a converged up made mutating calls: {mutating:?}");
    assert!(run.stdout.contains(&format!("up: 0 created, {NODES} unchanged (")), "{}", run.stdout);
    assert_eq!(inventory(&acct, "qa"), before);
}

/// The suffix qa's private route table, as the emulator holds it.
async fn private_route_table(
    acct: &Account,
) -> aws_sdk_ec2::operation::describe_route_tables::DescribeRouteTablesOutput {
    acct.ec2
        .describe_route_tables()
        .filters(by_suffix("qa"))
        .filters(f("tag:tap:member", "private"))
        .send()
        .await
        .unwrap()
}

#[test]
fn plan_lists_exactly_an_out_of_band_deleted_route_and_endpoint_and_up_repairs_both() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);

    acct.block_on(async {
        let rts = private_route_table(&acct).await;
        let rt = rts.route_tables()[0].route_table_id().unwrap().to_string();
        acct.ec2.delete_route().route_table_id(&rt).destination_cidr_block("0.0.0.0/0").send().await.unwrap();
        let eps = acct.ec2.describe_vpc_endpoints().send().await.unwrap();
        let s3 = eps.vpc_endpoints().iter().find(|e| e.service_name().unwrap().ends_with(".s3")).unwrap();
        acct.ec2.delete_vpc_endpoints().vpc_endpoint_ids(s3.vpc_endpoint_id().unwrap()).send().await.unwrap();
    });
    let before = acct.proxy.calls().len();
    let plan = acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode", "--json"]);
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    assert!(acct.proxy.calls()[before..].iter().all(|c| !c.is_mutating()), "plan must change nothing");
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let changed: Vec<(&str, &str)> = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["action"] != "none")
        .map(|n| (n["node"].as_str().unwrap(), n["action"].as_str().unwrap()))
        .collect();
    assert_eq!(changed, vec![("network.route-tables", "update"), ("network.endpoints", "update")]);
    let changes: Vec<(&str, &str)> = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["changes"].as_array().unwrap())
        .map(|c| (c["field"].as_str().unwrap(), c["current"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, vec![("route 0.0.0.0/0 (private)", "missing"), ("s3 gateway endpoint", "missing")]);

    acct.ok(&["up", "--suffix", "qa"]);
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
    acct.block_on(async {
        let rts = private_route_table(&acct).await;
        assert!(rts.route_tables()[0]
            .routes()
            .iter()
            .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0") && r.nat_gateway_id().is_some()));
    });
    assert_eq!(inventory(&acct, "qa")["vpc-endpoint"].len(), 2);
}

#[test]
fn up_repairs_a_deleted_subnet_and_a_removed_tag() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let vpc = inventory(&acct, "qa")["vpc"][0].clone();
    acct.block_on(async {
        let subnets = acct
            .ec2
            .describe_subnets()
            .filters(by_suffix("qa"))
            .filters(f("tag:tap:member", "database-2"))
            .send()
            .await
            .unwrap();
        let id = subnets.subnets()[0].subnet_id().unwrap();
        // A subnet in use by a route-table association cannot be deleted on AWS: disassociate first.
        let rts = acct.ec2.describe_route_tables().filters(f("association.subnet-id", id)).send().await.unwrap();
        for a in rts.route_tables().iter().flat_map(|r| r.associations()) {
            if a.subnet_id() == Some(id) {
                acct.ec2
                    .disassociate_route_table()
                    .association_id(a.route_table_association_id().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        acct.ec2.delete_subnet().subnet_id(id).send().await.unwrap();
        acct.ec2
            .delete_tags()
            .resources(&vpc)
            .tags(aws_sdk_ec2::types::Tag::builder().key("CostCenter").build())
            .send()
            .await
            .unwrap();
    });
    let status = acct.run(&["status", "--suffix", "qa", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let of =
        |n: &str| status["resources"].as_array().unwrap().iter().find(|r| r["node"] == n).unwrap()["status"].clone();
    assert_eq!(of("network.subnets"), "drifted");
    assert_eq!(of("network.vpc"), "drifted");
    assert_eq!(of("kms.key"), "ok");

    acct.ok(&["up", "--suffix", "qa"]);
    let inv = inventory(&acct, "qa");
    assert_eq!(inv["subnet"].len(), 9);
    assert_eq!(inv["vpc"], vec![vpc.clone()], "the VPC is repaired, not replaced");
    acct.block_on(async {
        let v = acct.ec2.describe_vpcs().vpc_ids(&vpc).send().await.unwrap();
        assert_eq!(tag(v.vpcs()[0].tags(), "CostCenter"), Some("payments"));
        let db2 = acct
            .ec2
            .describe_subnets()
            .filters(by_suffix("qa"))
            .filters(f("tag:tap:member", "database-2"))
            .send()
            .await
            .unwrap();
        let id = db2.subnets()[0].subnet_id().unwrap();
        let rts = acct.ec2.describe_route_tables().filters(f("association.subnet-id", id)).send().await.unwrap();
        assert_eq!(
            tag(rts.route_tables()[0].tags(), "tap:member"),
            Some("database"),
            "the new subnet joins the database route table"
        );
    });
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);
}

#[test]
fn destroy_leaves_nothing_of_the_suffix_and_spares_another_suffix() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    acct.ok(&["up", "--suffix", "qb"]);
    let qb_before = inventory(&acct, "qb");

    let refused = acct.run(&["destroy", "--suffix", "qa"]);
    assert_eq!(refused.code, 2, "destroy without a terminal and without --yes must refuse");
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(inventory(&acct, "qa")["vpc"].len(), 1, "a refused destroy changes nothing");

    acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert_eq!(leftovers(&acct, "qa"), Vec::<String>::new());
    assert!(inventory(&acct, "qa").values().all(Vec::is_empty));
    acct.block_on(async {
        let alias = acct.kms.describe_key().key_id("alias/payments-qa").send().await;
        assert!(alias.is_err(), "the alias must be gone");
    });
    assert_eq!(inventory(&acct, "qb"), qb_before, "the other suffix is untouched");
    assert_eq!(acct.run(&["plan", "--suffix", "qb", "--detailed-exitcode"]).code, 0);

    let again = acct.ok(&["destroy", "--suffix", "qa", "--yes"]);
    assert!(again.stdout.contains(&format!("0 deleted, {NODES} already absent")), "{}", again.stdout);
}

#[test]
fn availability_zones_are_chosen_by_zone_id_and_a_zone_aws_refuses_is_named_with_the_option() {
    let acct = Account::with_stub_packages();
    acct.ok(&["up", "--suffix", "qa", "--availability-zones", "use1-az4,use1-az6,use1-az1"]);
    let zones = acct.block_on(async {
        let out = acct.ec2.describe_subnets().filters(by_suffix("qa")).send().await.unwrap();
        out.subnets()
            .iter()
            .map(|s| s.availability_zone_id().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    });
    assert_eq!(
        zones,
        ["use1-az1", "use1-az4", "use1-az6"].map(String::from).into(),
        "the zones of those ids, whatever their names"
    );
    // Recorded: a plain plan compares against the chosen zones.
    assert_eq!(acct.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]).code, 0);

    // A zone id the region does not have is refused naming it and the option, before any subnet.
    let other = Account::with_stub_packages();
    let run = other.run(&["up", "--suffix", "qa", "--availability-zones", "use1-az1,use1-az2,use1-az9"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("--availability-zones names use1-az9, which is not an availability zone of us-east-1"),
        "{}",
        run.stderr
    );
    assert!(!other.proxy.calls().iter().any(|c| c.0 == "ec2:CreateSubnet"), "no subnet made");

    // A zone AWS refuses for this account: the message names the zone and the option.
    let refused = Account::with_stub_packages();
    refused.proxy.answer(super::harness::Answer::new(
        "ec2:CreateSubnet",
        "us-east-1a",
        1000,
        400,
        "InvalidParameterValue",
        "Value (us-east-1a) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: us-east-1b, us-east-1c, us-east-1d.",
    ));
    let run = refused.run(&["up", "--suffix", "qa"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("AWS refuses a subnet in availability zone us-east-1a"), "{}", run.stderr);
    assert!(run.stderr.contains("--availability-zones"), "{}", run.stderr);
}
