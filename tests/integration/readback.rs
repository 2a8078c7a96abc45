//! Reading back what the emulated account holds, straight from the AWS APIs: the tests assert on
//! this, never on tapctl's own state file.

use super::harness::Account;
use aws_sdk_ec2::types::{Filter, NatGatewayState, Tag};
use std::collections::BTreeMap;

pub fn by_suffix(suffix: &str) -> Filter {
    Filter::builder().name("tag:EnvironmentSuffix").values(suffix).build()
}

pub fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// The tags design.md §5 puts on every resource.
pub fn assert_standard_tags(what: &str, tags: &[Tag], suffix: &str) {
    assert_eq!(tag(tags, "Project"), Some("payments"), "{what}: Project tag");
    assert_eq!(tag(tags, "Stack"), Some(format!("TapStack{suffix}").as_str()), "{what}: Stack tag");
    assert_eq!(tag(tags, "EnvironmentSuffix"), Some(suffix), "{what}: EnvironmentSuffix tag");
    assert_eq!(tag(tags, "ManagedBy"), Some("tapctl"), "{what}: ManagedBy tag");
    assert!(tag(tags, "CostCenter").is_some(), "{what}: CostCenter tag");
    assert!(tag(tags, "tap:resource").is_some(), "{what}: tap:resource tag");
}

/// Every live resource of the suffix, by kind, each list sorted: what "exactly one of each"
/// and "ids unchanged" are checked against.
pub fn inventory(acct: &Account, suffix: &str) -> BTreeMap<&'static str, Vec<String>> {
    acct.block_on(async {
        let ec2 = &acct.ec2;
        let mut inv: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        let f = || by_suffix(suffix);
        let vpcs = ec2.describe_vpcs().filters(f()).send().await.unwrap();
        inv.insert("vpc", vpcs.vpcs().iter().filter_map(|v| v.vpc_id().map(String::from)).collect());
        let subnets = ec2.describe_subnets().filters(f()).send().await.unwrap();
        inv.insert("subnet", subnets.subnets().iter().filter_map(|v| v.subnet_id().map(String::from)).collect());
        let igws = ec2.describe_internet_gateways().filters(f()).send().await.unwrap();
        inv.insert(
            "igw",
            igws.internet_gateways().iter().filter_map(|v| v.internet_gateway_id().map(String::from)).collect(),
        );
        let eips = ec2.describe_addresses().filters(f()).send().await.unwrap();
        inv.insert("eip", eips.addresses().iter().filter_map(|v| v.allocation_id().map(String::from)).collect());
        // NAT gateways: not every endpoint filters them by tag; check tags here. Deleted ones
        // stay visible for an hour on AWS and do not count.
        let nats = ec2.describe_nat_gateways().send().await.unwrap();
        inv.insert(
            "nat",
            nats.nat_gateways()
                .iter()
                .filter(|n| tag(n.tags(), "EnvironmentSuffix") == Some(suffix))
                .filter(|n| matches!(n.state(), Some(NatGatewayState::Pending | NatGatewayState::Available)))
                .filter_map(|n| n.nat_gateway_id().map(String::from))
                .collect(),
        );
        let rts = ec2.describe_route_tables().filters(f()).send().await.unwrap();
        inv.insert(
            "route-table",
            rts.route_tables().iter().filter_map(|v| v.route_table_id().map(String::from)).collect(),
        );
        let acls = ec2.describe_network_acls().filters(f()).send().await.unwrap();
        inv.insert(
            "network-acl",
            acls.network_acls().iter().filter_map(|v| v.network_acl_id().map(String::from)).collect(),
        );
        let sgs = ec2.describe_security_groups().filters(f()).send().await.unwrap();
        // The VPC's default group is AWS's, tagged by network.default-security-group: a kind apart.
        let (defaults, groups): (Vec<_>, Vec<_>) =
            sgs.security_groups().iter().partition(|g| g.group_name() == Some("default"));
        inv.insert("security-group", groups.iter().filter_map(|v| v.group_id().map(String::from)).collect());
        inv.insert("default-security-group", defaults.iter().filter_map(|v| v.group_id().map(String::from)).collect());
        let flow_logs = ec2.describe_flow_logs().filter(f()).send().await.unwrap();
        inv.insert(
            "flow-log",
            flow_logs.flow_logs().iter().filter_map(|v| v.flow_log_id().map(String::from)).collect(),
        );
        let eps = ec2.describe_vpc_endpoints().send().await.unwrap();
        inv.insert(
            "vpc-endpoint",
            eps.vpc_endpoints()
                .iter()
                .filter(|e| tag(e.tags(), "EnvironmentSuffix") == Some(suffix))
                .filter(|e| e.state().map(|s| s.as_str().to_ascii_lowercase()) != Some("deleted".into()))
                .filter_map(|e| e.vpc_endpoint_id().map(String::from))
                .collect(),
        );
        inv.insert("kms-key", enabled_keys(acct, suffix).await);
        for (kind, names) in data_layer(acct, suffix).await {
            inv.insert(kind, names);
        }
        for v in inv.values_mut() {
            v.sort();
        }
        inv
    })
}

/// The data layer's resources of the suffix, found by their names (each service's list call).
pub async fn data_layer(acct: &Account, suffix: &str) -> Vec<(&'static str, Vec<String>)> {
    let tail = format!("-{suffix}");
    let tables = acct.dynamodb.list_tables().send().await.unwrap();
    let tables = tables.table_names().iter().filter(|t| **t == format!("transactions-{suffix}")).cloned().collect();
    let buckets = acct.s3.list_buckets().send().await.unwrap();
    let buckets = buckets
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|n| {
            ["payments-audit-", "payments-trail-", "payments-logs-"].iter().any(|p| n.starts_with(p))
                && n.ends_with(&tail)
        })
        .map(String::from)
        .collect();
    let topics = acct.sns.list_topics().send().await.unwrap();
    let topics = topics
        .topics()
        .iter()
        .filter_map(|t| t.topic_arn())
        .filter(|a| a.ends_with(&format!(":payment-alerts-{suffix}")))
        .map(String::from)
        .collect();
    // By the suffix's tag, not by name: the groups named after AWS's own scheme (the API's
    // execution logs carry its id, not the suffix) must be found too.
    let all = acct.logs.describe_log_groups().send().await.unwrap();
    let mut groups = Vec::new();
    for g in all.log_groups() {
        let arn = g.arn().unwrap_or_default().trim_end_matches(":*");
        let tags = acct.logs.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
        if tags.tags().and_then(|t| t.get("EnvironmentSuffix")).map(String::as_str) == Some(suffix) {
            groups.push(g.log_group_name().unwrap_or_default().to_string());
        }
    }
    let secrets = acct.secrets.list_secrets().send().await.unwrap();
    let secrets = secrets
        .secret_list()
        .iter()
        .filter_map(|s| s.name())
        .filter(|n| n.starts_with(&format!("payments/{suffix}/")))
        .map(String::from)
        .collect();
    let mut params = Vec::new();
    let mut token = None;
    loop {
        let out = acct
            .ssm
            .get_parameters_by_path()
            .path(format!("/payments/{suffix}/"))
            .recursive(true)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        params.extend(out.parameters().iter().filter_map(|p| p.name().map(String::from)));
        token = out.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    let clusters = acct.rds.describe_db_clusters().send().await.unwrap();
    let clusters = clusters
        .db_clusters()
        .iter()
        .filter_map(|c| c.db_cluster_identifier())
        .filter(|id| *id == format!("payment-db-{suffix}"))
        .map(String::from)
        .collect();
    let instances = acct.rds.describe_db_instances().send().await.unwrap();
    let instances = instances
        .db_instances()
        .iter()
        .filter(|i| i.db_cluster_identifier() == Some(format!("payment-db-{suffix}").as_str()))
        .filter_map(|i| i.db_instance_identifier().map(String::from))
        .collect();
    let subnet_groups = acct.rds.describe_db_subnet_groups().send().await.unwrap();
    let subnet_groups = subnet_groups
        .db_subnet_groups()
        .iter()
        .filter_map(|g| g.db_subnet_group_name())
        .filter(|n| *n == format!("payment-db-subnets-{suffix}"))
        .map(String::from)
        .collect();
    let parameter_groups = acct.rds.describe_db_cluster_parameter_groups().send().await.unwrap();
    let parameter_groups = parameter_groups
        .db_cluster_parameter_groups()
        .iter()
        .filter_map(|g| g.db_cluster_parameter_group_name())
        .filter(|n| *n == format!("payment-db-params-{suffix}"))
        .map(String::from)
        .collect();
    let roles = acct.iam.list_roles().send().await.unwrap();
    let roles = roles
        .roles()
        .iter()
        .map(|r| r.role_name().to_string())
        .filter(|n| n.starts_with("payment-") && n.ends_with(&format!("-role{tail}")))
        .collect();
    // iam.db-connect's inline policy on process's role (the role is iam.roles').
    let mut db_connect = Vec::new();
    let process_role = format!("payment-process-role{tail}");
    if let Ok(p) = acct.iam.list_role_policies().role_name(&process_role).send().await {
        db_connect.extend(
            p.policy_names().iter().filter(|n| *n == "payments-db-connect").map(|n| format!("{process_role}/{n}")),
        );
    }
    let functions = acct.lambda.list_functions().send().await.unwrap();
    let functions = functions
        .functions()
        .iter()
        .filter_map(|f| f.function_name())
        .filter(|n| n.starts_with("payment-") && n.ends_with(tail.as_str()))
        .map(String::from)
        .collect();
    let apis = acct.apigateway.get_rest_apis().send().await.unwrap();
    let apis = apis
        .items()
        .iter()
        .filter_map(|a| a.name())
        .filter(|n| *n == format!("payment-api{tail}"))
        .map(String::from)
        .collect();
    let alarms = acct.cloudwatch.describe_alarms().send().await.unwrap();
    let alarms = alarms
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .filter(|n| n.starts_with("payments-") && n.ends_with(tail.as_str()))
        .map(String::from)
        .collect();
    let dashboards = acct.cloudwatch.list_dashboards().send().await.unwrap();
    let dashboards = dashboards
        .dashboard_entries()
        .iter()
        .filter_map(|d| d.dashboard_name())
        .filter(|n| *n == format!("payments{tail}"))
        .map(String::from)
        .collect();
    // The trail (audit.trail) and the CIS metric filters on its group (audit.alarms).
    let ct = cloudtrail(acct);
    let trails = ct.describe_trails().send().await.unwrap();
    let trails = trails
        .trail_list()
        .iter()
        .filter_map(|t| t.name())
        .filter(|n| *n == format!("payments-trail{tail}"))
        .map(String::from)
        .collect();
    let metric_filters = acct.logs.describe_metric_filters().send().await.unwrap();
    let metric_filters = metric_filters
        .metric_filters()
        .iter()
        .filter_map(|f| f.filter_name())
        .filter(|n| n.starts_with("payments-") && n.ends_with(tail.as_str()))
        .map(String::from)
        .collect();
    vec![
        ("trail", trails),
        ("metric-filter", metric_filters),
        ("iam-role", roles),
        ("db-connect-policy", db_connect),
        ("function", functions),
        ("rest-api", apis),
        ("alarm", alarms),
        ("dashboard", dashboards),
        ("table", tables),
        ("bucket", buckets),
        ("topic", topics),
        ("log-group", groups),
        ("secret", secrets),
        ("parameter", params),
        ("db-cluster", clusters),
        ("db-instance", instances),
        ("db-subnet-group", subnet_groups),
        ("db-parameter-group", parameter_groups),
        ("db-event-subscription", event_subscriptions(acct, suffix).await),
        ("events-rule", events_rules(acct, suffix).await),
        ("web-acl", web_acls(acct, suffix).await),
        ("backup-vault", backup_vaults(acct, suffix).await),
        ("backup-plan", backup_plans(acct, suffix).await),
        (
            "backup-role",
            acct.iam
                .list_roles()
                .send()
                .await
                .unwrap()
                .roles()
                .iter()
                .map(|r| r.role_name().to_string())
                .filter(|n| *n == format!("payments-backup-{suffix}"))
                .collect(),
        ),
    ]
}

/// The AWS Backup vaults `payments-<suffix>` (backup.vault) in the stack's region and the copy
/// region the backup tests use, as `<region>/<name>`. Read from the emulator itself.
async fn backup_vaults(acct: &Account, suffix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for region in [super::harness::REGION, "us-west-2"] {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .endpoint_url(acct.emulator_url())
            .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;
        let b = aws_sdk_backup::Client::new(&config);
        let vaults = b.list_backup_vaults().send().await.unwrap();
        found.extend(
            vaults
                .backup_vault_list()
                .iter()
                .filter_map(|v| v.backup_vault_name())
                .filter(|n| *n == format!("payments-{suffix}"))
                .map(|n| format!("{region}/{n}")),
        );
    }
    found
}

/// The live backup plans `payments-<suffix>` (backup.plan).
async fn backup_plans(acct: &Account, suffix: &str) -> Vec<String> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(super::harness::REGION))
        .endpoint_url(acct.emulator_url())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    let b = aws_sdk_backup::Client::new(&config);
    let plans = b.list_backup_plans().send().await.unwrap();
    plans
        .backup_plans_list()
        .iter()
        .filter(|p| p.backup_plan_name() == Some(format!("payments-{suffix}").as_str()) && p.deletion_date().is_none())
        .filter_map(|p| p.backup_plan_id().map(String::from))
        .collect()
}

/// The regional web ACLs of the suffix (waf.web-acl), by name; its log group is found with the
/// other groups, by tag. Read from the emulator itself: inventories are taken while the proxy
/// injects faults, and must not count among a run's calls.
async fn web_acls(acct: &Account, suffix: &str) -> Vec<String> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(super::harness::REGION))
        .endpoint_url(acct.emulator_url())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    let waf = aws_sdk_wafv2::Client::new(&config);
    let acls = waf.list_web_acls().scope(aws_sdk_wafv2::types::Scope::Regional).send().await.unwrap();
    acls.web_acls()
        .iter()
        .filter(|a| a.name() == Some(format!("payment-waf-{suffix}").as_str()))
        .filter_map(|a| a.arn().map(String::from))
        .collect()
}

/// The RDS event subscriptions of the suffix (events.db-subscriptions), by name.
async fn event_subscriptions(acct: &Account, suffix: &str) -> Vec<String> {
    let subs = acct.rds.describe_event_subscriptions().send().await.unwrap();
    subs.event_subscriptions_list()
        .iter()
        .filter_map(|s| s.cust_subscription_id())
        .filter(|n| n.starts_with("payment-") && n.ends_with(&format!("-{suffix}")))
        .map(String::from)
        .collect()
}

/// The EventBridge rules of the suffix on the default bus (events.security-findings).
async fn events_rules(acct: &Account, suffix: &str) -> Vec<String> {
    let rules = crate::events::eventbridge(acct).list_rules().name_prefix("payment-").send().await.unwrap();
    rules
        .rules()
        .iter()
        .filter_map(|r| r.name())
        .filter(|n| n.ends_with(&format!("-{suffix}")))
        .map(String::from)
        .collect()
}

/// What tapctl turns on for the account (`account.controls`) that no stack uses any more: the
/// record with no stack listed, or — without a record — the Config bucket and key, a recorder
/// named tapctl's, a detector tagged ManagedBy=tapctl. While the record lists a stack,
/// none of it is left over.
pub async fn account_controls_orphans(acct: &Account) -> Vec<String> {
    use tapctl::resources::account::controls::{config_bucket, Record, KEY_ALIAS, RECORD, RECORDER};
    let record: Option<Record> = match acct.ssm.get_parameter().name(RECORD).send().await {
        Ok(p) => p.parameter().and_then(|p| p.value()).and_then(|v| serde_json::from_str(v).ok()),
        Err(_) => None,
    };
    if record.as_ref().is_some_and(|r| !r.stacks.is_empty()) {
        return vec![];
    }
    let mut left = Vec::new();
    if record.is_some() {
        left.push(format!("parameter {RECORD}"));
    }
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(super::harness::REGION))
        .endpoint_url(acct.emulator_url())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    let bucket = config_bucket(&tapctl::names::Names::new("any", super::harness::REGION, Some("123456789012")));
    if acct.s3.head_bucket().bucket(&bucket).send().await.is_ok() {
        left.push(format!("bucket {bucket}"));
    }
    if let Ok(k) = acct.kms.describe_key().key_id(KEY_ALIAS).send().await {
        if k.key_metadata().and_then(|m| m.key_state()) == Some(&aws_sdk_kms::types::KeyState::Enabled) {
            left.push(format!("kms-key {KEY_ALIAS}"));
        }
    }
    let recorders = aws_sdk_config::Client::new(&config).describe_configuration_recorders().send().await.unwrap();
    if recorders.configuration_recorders().iter().any(|r| r.name() == Some(RECORDER)) {
        left.push(format!("config-recorder {RECORDER}"));
    }
    let gd = aws_sdk_guardduty::Client::new(&config);
    for id in gd.list_detectors().send().await.unwrap().detector_ids() {
        let d = gd.get_detector().detector_id(id).send().await.unwrap();
        if d.tags().and_then(|t| t.get("ManagedBy")).map(String::as_str) == Some("tapctl") {
            left.push(format!("guardduty-detector {id}"));
        }
    }
    // Security Hub: DescribeHub does not say who enabled it (the tests read it directly).
    left
}

/// `account_controls_orphans`, outside an async read-back.
pub fn account_controls_left(acct: &Account) -> Vec<String> {
    acct.block_on(account_controls_orphans(acct))
}

/// A CloudTrail client straight to the emulator (the Account has none; built without a runtime,
/// so inside an async read-back too).
fn cloudtrail(acct: &Account) -> aws_sdk_cloudtrail::Client {
    let conf = aws_sdk_cloudtrail::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(acct.emulator_url())
        .credentials_provider(aws_sdk_cloudtrail::config::Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_cloudtrail::Client::from_conf(conf)
}

/// KMS keys of the suffix that are not pending deletion.
pub async fn enabled_keys(acct: &Account, suffix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let keys = acct.kms.list_keys().send().await.unwrap();
    for k in keys.keys() {
        let id = k.key_id().unwrap();
        let tags = acct.kms.list_resource_tags().key_id(id).send().await.unwrap();
        if !tags.tags().iter().any(|t| t.tag_key() == "EnvironmentSuffix" && t.tag_value() == suffix) {
            continue;
        }
        let meta = acct.kms.describe_key().key_id(id).send().await.unwrap();
        if meta.key_metadata().and_then(|m| m.key_state()) != Some(&aws_sdk_kms::types::KeyState::PendingDeletion) {
            out.push(id.to_string());
        }
    }
    out
}

/// Everything EC2 lists as tagged with the suffix that still exists, checked type by type
/// (the emulator keeps tags of deleted resources, AWS keeps deleted NAT gateways for an hour,
/// so a tag alone does not prove existence). A type this does not know fails the test.
pub fn leftovers(acct: &Account, suffix: &str) -> Vec<String> {
    let inv = inventory(acct, suffix);
    let live: Vec<&String> = inv.values().flatten().collect();
    acct.block_on(async {
        let tags = acct
            .ec2
            .describe_tags()
            .filters(Filter::builder().name("key").values("EnvironmentSuffix").build())
            .filters(Filter::builder().name("value").values(suffix).build())
            .send()
            .await
            .unwrap();
        let mut left = Vec::new();
        for t in tags.tags() {
            let id = t.resource_id().unwrap_or_default().to_string();
            let kind = t.resource_type().map(|r| r.as_str().to_string()).unwrap_or_default();
            let known = [
                "vpc",
                "subnet",
                "internet-gateway",
                "elastic-ip",
                "vpc-elastic-ip",
                "natgateway",
                "nat-gateway",
                "route-table",
                "network-acl",
                "security-group",
                "vpc-endpoint",
                // AWS's name for a flow log; moto 5.2.5 says "flow-logs".
                "vpc-flow-log",
                "flow-logs",
            ];
            assert!(
                known.contains(&kind.as_str()),
                "unexpected tagged resource type {kind} ({id}): teach leftovers() about it"
            );
            if live.contains(&&id) {
                left.push(format!("{kind} {id}"));
            }
        }
        for k in enabled_keys(acct, suffix).await {
            left.push(format!("kms-key {k}"));
        }
        for (kind, names) in data_layer(acct, suffix).await {
            left.extend(names.into_iter().map(|n| format!("{kind} {n}")));
        }
        left.extend(account_controls_orphans(acct).await);
        left.sort();
        left.dedup();
        left
    })
}
