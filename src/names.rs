//! Every resource name and tag, derived from the suffix in one place, and the AWS naming rule
//! each name must obey. `config` checks all of them before the first AWS call, so a suffix that
//! would break any name anywhere in the stack is refused up front.

use std::fmt;

/// Account id used to check name lengths before the real one is known: always 12 digits.
const PLACEHOLDER_ACCOUNT: &str = "000000000000";

/// The Lambda functions of the stack, in the order they are built.
pub const FUNCTIONS: [&str; 4] = ["validate", "fraud-check", "process", "rotate-secret"];

/// The PostgreSQL login of process, the only function that touches the database (validate and
/// fraud-check never connect). It signs in with an IAM authentication token: its role may
/// `rds-db:connect` as exactly this user (`iam.db-connect`). Migration 0003 of payments-core
/// creates it; a test holds the two to the same name.
pub const PROCESS_DB_LOGIN: &str = "payments_process";

/// The migrator: the function that owns the schema and the only one whose role reads the master
/// secret. process invokes it (with its own alias as qualifier) when the schema is behind.
pub const MIGRATOR_FUNCTION: &str = "rotate-secret";

/// The three subnet tiers. The database tier never gets a route to the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Public,
    Private,
    Database,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Public, Tier::Private, Tier::Database];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Public => "public",
            Tier::Private => "private",
            Tier::Database => "database",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tag keys tapctl sets and reads back. `tap:resource` is the node id: with `EnvironmentSuffix`
/// it is how a resource is found again when the state file does not know it (adoption).
pub mod tag {
    pub const PROJECT: &str = "Project";
    pub const STACK: &str = "Stack";
    pub const SUFFIX: &str = "EnvironmentSuffix";
    pub const MANAGED_BY: &str = "ManagedBy";
    pub const COST_CENTER: &str = "CostCenter";
    pub const RESOURCE: &str = "tap:resource";
    /// For families (subnets, route tables…): which member this is, e.g. `private-1`.
    pub const MEMBER: &str = "tap:member";
    pub const NAME: &str = "Name";
    /// On a function: the id (not the ARN) of the execution role its configuration was applied
    /// for — what Lambda's KMS grant for the environment names.
    pub const ROLE_ID: &str = "tap:role-id";
}

#[derive(Debug, Clone)]
pub struct Names {
    pub suffix: String,
    pub region: String,
    pub account: String,
}

impl Names {
    pub fn new(suffix: &str, region: &str, account: Option<&str>) -> Self {
        Names {
            suffix: suffix.to_string(),
            region: region.to_string(),
            account: account.unwrap_or(PLACEHOLDER_ACCOUNT).to_string(),
        }
    }

    fn n(&self, base: &str) -> String {
        format!("{base}-{}", self.suffix)
    }

    pub fn stack_tag(&self) -> String {
        format!("TapStack{}", self.suffix)
    }

    // --- kms
    pub fn kms_alias(&self) -> String {
        format!("alias/payments-{}", self.suffix)
    }

    // --- network (EC2 Name tags)
    pub fn vpc(&self) -> String {
        self.n("payment-vpc")
    }
    pub fn subnet(&self, tier: Tier, az_index: usize) -> String {
        self.n(&format!("payment-{tier}-{}", az_index + 1))
    }
    pub fn subnet_member(tier: Tier, az_index: usize) -> String {
        format!("{tier}-{}", az_index + 1)
    }
    pub fn igw(&self) -> String {
        self.n("payment-igw")
    }
    pub fn nat_eip(&self) -> String {
        self.n("payment-nat-eip")
    }
    pub fn nat(&self) -> String {
        self.n("payment-nat")
    }
    pub fn route_table(&self, tier: Tier) -> String {
        self.n(&format!("payment-{tier}-rt"))
    }
    pub fn network_acl(&self, tier: Tier) -> String {
        self.n(&format!("payment-{tier}-nacl"))
    }
    pub fn functions_sg(&self) -> String {
        self.n("payment-functions-sg")
    }
    pub fn database_sg(&self) -> String {
        self.n("payment-database-sg")
    }
    pub fn endpoint(&self, service: &str) -> String {
        self.n(&format!("payment-{service}-endpoint"))
    }

    // --- later layers; named here so that the suffix is checked against them from day one
    pub fn audit_bucket(&self) -> String {
        format!("payments-audit-{}-{}-{}", self.account, self.region, self.suffix)
    }
    pub fn db_cluster(&self) -> String {
        self.n("payment-db")
    }
    pub fn db_instance(&self, index: usize) -> String {
        if index == 0 {
            self.n("payment-db-writer")
        } else {
            self.n(&format!("payment-db-reader-{index}"))
        }
    }
    pub fn db_subnet_group(&self) -> String {
        self.n("payment-db-subnets")
    }
    pub fn db_parameter_group(&self) -> String {
        self.n("payment-db-params")
    }
    pub fn table(&self) -> String {
        self.n("transactions")
    }
    pub fn topic(&self) -> String {
        self.n("payment-alerts")
    }
    pub fn function(&self, f: &str) -> String {
        self.n(&format!("payment-{f}"))
    }
    pub fn role(&self, f: &str) -> String {
        self.n(&format!("payment-{f}-role"))
    }
    pub fn function_log_group(&self, f: &str) -> String {
        format!("/aws/lambda/{}", self.function(f))
    }
    /// A function's alias (`blue`, `green`), derived: a policy may name it before the function
    /// exists, so that the roles never wait for the functions.
    pub fn function_alias_arn(&self, f: &str, alias: &str) -> String {
        format!("arn:aws:lambda:{}:{}:function:{}:{alias}", self.region, self.account, self.function(f))
    }
    /// The database user an IAM authentication token signs in as: for Aurora the resource id is
    /// the cluster's (`DbClusterResourceId`, `cluster-…`), not an instance's.
    pub fn db_user_arn(&self, cluster_resource_id: &str, login: &str) -> String {
        format!("arn:aws:rds-db:{}:{}:dbuser:{cluster_resource_id}/{login}", self.region, self.account)
    }
    pub fn api(&self) -> String {
        self.n("payment-api")
    }
    /// API Gateway's account-wide CloudWatch role, when tapctl has to create one. One per
    /// account, shared by every stack (so no suffix): the account setting names only one role.
    /// API Gateway's CloudWatch role setting is per region while IAM roles are global: one role
    /// per region, named with it, so that the last stack of one region deleting its role can
    /// never cut another region's logs. (No suffix: every tapctl stack of the region shares it.)
    pub fn api_logging_role(&self) -> String {
        format!("tapctl-apigateway-logs-{}", self.region)
    }
    pub fn alarm(&self, what: &str) -> String {
        self.n(&format!("payments-{what}"))
    }
    pub fn api_log_group(&self) -> String {
        format!("/aws/apigateway/{}", self.api())
    }
    /// Where Aurora exports the cluster's PostgreSQL log (the name is AWS's, fixed).
    pub fn db_log_group(&self) -> String {
        format!("/aws/rds/cluster/{}/postgresql", self.db_cluster())
    }
    /// Where API Gateway writes a stage's execution logs (the name is AWS's, fixed).
    pub fn api_execution_log_group(&self, api_id: &str, stage: &str) -> String {
        format!("API-Gateway-Execution-Logs_{api_id}/{stage}")
    }
    /// The group a canary's logs go to: API Gateway appends "/Canary" to the stage's group.
    pub fn canary_log_group(&self, stage_group: &str) -> String {
        format!("{stage_group}/Canary")
    }
    /// The group API Gateway writes one message to when a region's CloudWatch role is set.
    pub fn api_welcome_log_group(&self) -> String {
        "/aws/apigateway/welcome".to_string()
    }
    pub fn db_secret(&self) -> String {
        format!("payments/{}/db-master", self.suffix)
    }
    pub fn fingerprint_secret(&self) -> String {
        format!("payments/{}/card-fingerprint-key", self.suffix)
    }
    pub fn parameter_prefix(&self) -> String {
        format!("/payments/{}", self.suffix)
    }
    pub fn dashboard(&self) -> String {
        self.n("payments")
    }

    // --- PCI DSS controls (issue 15)
    /// The regional web ACL in front of the API stage.
    pub fn waf_acl(&self) -> String {
        self.n("payment-waf")
    }
    /// WAF delivers to CloudWatch Logs only into groups whose name starts with `aws-waf-logs-`.
    pub fn waf_log_group(&self) -> String {
        format!("aws-waf-logs-payments-{}", self.suffix)
    }
    pub fn trail(&self) -> String {
        format!("payments-trail-{}", self.suffix)
    }
    pub fn trail_arn(&self) -> String {
        format!("arn:aws:cloudtrail:{}:{}:trail/{}", self.region, self.account, self.trail())
    }
    /// The trail's own bucket: Object Lock, like the audit bucket, and as long a name.
    pub fn trail_bucket(&self) -> String {
        format!("payments-trail-{}-{}-{}", self.account, self.region, self.suffix)
    }
    /// Where S3 writes the server access logs of the audit and trail buckets (a bucket with
    /// Object Lock cannot receive them). One character shorter than the audit bucket's name.
    pub fn access_log_bucket(&self) -> String {
        format!("payments-logs-{}-{}-{}", self.account, self.region, self.suffix)
    }
    pub fn trail_log_group(&self) -> String {
        format!("/aws/cloudtrail/{}", self.trail())
    }
    /// The role CloudTrail assumes to write into its log group.
    pub fn trail_logs_role(&self) -> String {
        self.n("payment-trail-logs-role")
    }
    pub fn flow_log_group(&self) -> String {
        format!("/aws/vpc/flow-logs/{}", self.vpc())
    }
    /// The role VPC Flow Logs assumes to write into its log group, and nowhere else.
    pub fn flow_logs_role(&self) -> String {
        self.n("payment-flow-logs-role")
    }
    pub fn db_event_subscription(&self) -> String {
        self.n("payment-db-events")
    }
    /// RDS event subscriptions have one source type each: the instances need their own.
    pub fn db_instance_event_subscription(&self) -> String {
        self.n("payment-db-instance-events")
    }
    /// The EventBridge rule carrying HIGH and CRITICAL GuardDuty and Security Hub findings.
    pub fn findings_rule(&self) -> String {
        self.n("payment-security-findings")
    }

    /// Every name the stack will ever use, with the rule of the service that stores it.
    pub fn all(&self) -> Vec<(String, Rule)> {
        let mut v = vec![
            (self.kms_alias(), Rule::KmsAlias),
            (self.vpc(), Rule::Ec2Tag),
            (self.functions_sg(), Rule::SecurityGroup),
            (self.database_sg(), Rule::SecurityGroup),
            (self.audit_bucket(), Rule::S3Bucket),
            (self.db_cluster(), Rule::RdsIdentifier),
            (self.db_subnet_group(), Rule::RdsSubnetGroup),
            (self.db_parameter_group(), Rule::RdsIdentifier),
            (self.table(), Rule::DynamoTable),
            (self.topic(), Rule::SnsTopic),
            (self.api(), Rule::ApiGatewayName),
            (self.api_log_group(), Rule::LogGroup),
            (self.db_secret(), Rule::Secret),
            (self.fingerprint_secret(), Rule::Secret),
            (self.parameter_prefix(), Rule::Parameter),
            (self.dashboard(), Rule::Dashboard),
            (self.stack_tag(), Rule::TagValue),
            (self.waf_log_group(), Rule::LogGroup),
            (self.trail_bucket(), Rule::S3Bucket),
            (self.access_log_bucket(), Rule::S3Bucket),
            (self.trail_log_group(), Rule::LogGroup),
            (self.trail_logs_role(), Rule::IamRole),
            (self.flow_log_group(), Rule::LogGroup),
            (self.flow_logs_role(), Rule::IamRole),
            (self.db_event_subscription(), Rule::RdsEventSubscription),
            (self.db_instance_event_subscription(), Rule::RdsEventSubscription),
            (self.findings_rule(), Rule::EventBridgeRule),
        ];
        for i in 0..3 {
            v.push((self.db_instance(i), Rule::RdsIdentifier));
        }
        for f in FUNCTIONS {
            v.push((self.function(f), Rule::LambdaFunction));
            v.push((self.role(f), Rule::IamRole));
            v.push((self.function_log_group(f), Rule::LogGroup));
        }
        for tier in Tier::ALL {
            v.push((self.subnet(tier, 2), Rule::Ec2Tag));
            v.push((self.network_acl(tier), Rule::Ec2Tag));
        }
        v
    }
}

/// AWS's documented naming rules, one per kind of name tapctl creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    S3Bucket,
    RdsIdentifier,
    RdsSubnetGroup,
    DynamoTable,
    SnsTopic,
    LambdaFunction,
    IamRole,
    LogGroup,
    KmsAlias,
    SecurityGroup,
    ApiGatewayName,
    Secret,
    Parameter,
    Dashboard,
    Ec2Tag,
    TagValue,
    RdsEventSubscription,
    EventBridgeRule,
}

impl Rule {
    /// Checks `name` against the rule; the error says which rule and how it was broken.
    pub fn check(self, name: &str) -> Result<(), String> {
        let len = name.chars().count();
        let (what, max, min) = match self {
            Rule::S3Bucket => ("S3 bucket name", 63, 3),
            Rule::RdsIdentifier => ("RDS identifier", 63, 1),
            Rule::RdsSubnetGroup => ("RDS DB subnet group name", 255, 1),
            Rule::DynamoTable => ("DynamoDB table name", 255, 3),
            Rule::SnsTopic => ("SNS topic name", 256, 1),
            Rule::LambdaFunction => ("Lambda function name", 64, 1),
            Rule::IamRole => ("IAM role name", 64, 1),
            Rule::LogGroup => ("CloudWatch log group name", 512, 1),
            Rule::KmsAlias => ("KMS alias", 256, 7),
            Rule::SecurityGroup => ("security group name", 255, 1),
            Rule::ApiGatewayName => ("API Gateway name", 1024, 1),
            Rule::Secret => ("Secrets Manager secret name", 512, 1),
            Rule::Parameter => ("SSM parameter name", 1011, 1),
            Rule::Dashboard => ("CloudWatch dashboard name", 255, 1),
            Rule::RdsEventSubscription => ("RDS event subscription name", 255, 1),
            Rule::EventBridgeRule => ("EventBridge rule name", 64, 1),
            Rule::Ec2Tag | Rule::TagValue => ("tag value", 256, 0),
        };
        if len > max {
            return Err(format!("{what} '{name}' would be {len} characters long; AWS allows at most {max}"));
        }
        if len < min {
            return Err(format!("{what} '{name}' would be shorter than {min} characters"));
        }
        let all = |f: fn(char) -> bool| name.chars().all(f);
        let bad = |rule: &str| Err(format!("{what} '{name}' breaks the rule: {rule}"));
        match self {
            Rule::S3Bucket => {
                if !all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') {
                    return bad("only lowercase letters, digits, hyphens and dots");
                }
                if name.ends_with('-') || name.starts_with('-') {
                    return bad("must begin and end with a letter or digit");
                }
                for reserved in ["-s3alias", "--ol-s3", "--x-s3", "--table-s3"] {
                    if name.ends_with(reserved) {
                        return bad(&format!("must not end with '{reserved}'"));
                    }
                }
            }
            Rule::RdsIdentifier => {
                if !all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return bad("only ASCII letters, digits and hyphens");
                }
                if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    return bad("must start with a letter");
                }
                if name.ends_with('-') || name.contains("--") {
                    return bad("no trailing hyphen and no two consecutive hyphens");
                }
            }
            Rule::RdsSubnetGroup => {
                if !all(|c| c.is_ascii_alphanumeric() || " ._-".contains(c)) {
                    return bad("only letters, digits, spaces, periods, underscores and hyphens");
                }
            }
            Rule::DynamoTable => {
                if !all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                    return bad("only letters, digits, '_', '-' and '.'");
                }
            }
            Rule::SnsTopic | Rule::LambdaFunction | Rule::Dashboard => {
                if !all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    return bad("only letters, digits, hyphens and underscores");
                }
            }
            Rule::IamRole => {
                if !all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)) {
                    return bad("only letters, digits and +=,.@_-");
                }
            }
            Rule::LogGroup => {
                if !all(|c| c.is_ascii_alphanumeric() || "_-/.#".contains(c)) {
                    return bad("only letters, digits and _-/.#");
                }
            }
            Rule::KmsAlias => {
                if !all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c)) || !name.starts_with("alias/") {
                    return bad("'alias/' followed by letters, digits, '/', '_' and '-'");
                }
                if name.starts_with("alias/aws/") {
                    return bad("must not begin with alias/aws/ (reserved for AWS)");
                }
            }
            Rule::SecurityGroup => {
                if name.starts_with("sg-") {
                    return bad("must not start with 'sg-'");
                }
                if !all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c)) {
                    return bad("ASCII letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*");
                }
            }
            Rule::ApiGatewayName => {}
            Rule::Secret => {
                if !all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)) {
                    return bad("only letters, digits and /_+=.@-");
                }
            }
            Rule::Parameter => {
                if !all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)) {
                    return bad("only letters, digits and _.-/");
                }
                if name.to_ascii_lowercase().starts_with("/aws") || name.to_ascii_lowercase().starts_with("/ssm") {
                    return bad("must not begin with aws or ssm");
                }
            }
            Rule::RdsEventSubscription => {
                if !all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return bad("only letters, digits and hyphens");
                }
            }
            Rule::EventBridgeRule => {
                if !all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) {
                    return bad("only letters, digits, '.', '-' and '_'");
                }
            }
            Rule::Ec2Tag | Rule::TagValue => {
                if !all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)) {
                    return bad("letters, digits, spaces and _.:/=+-@");
                }
            }
        }
        Ok(())
    }
}

/// The tags every resource carries (design.md §5). `node` is the node id, `member` the member of
/// a family, `name` the Name tag for EC2 resources.
pub fn standard_tags(
    names: &Names,
    cost_center: &str,
    node: &str,
    member: Option<&str>,
    name: Option<&str>,
) -> Vec<(String, String)> {
    let mut tags = vec![
        (tag::PROJECT.to_string(), "payments".to_string()),
        (tag::STACK.to_string(), names.stack_tag()),
        (tag::SUFFIX.to_string(), names.suffix.clone()),
        (tag::MANAGED_BY.to_string(), "tapctl".to_string()),
        (tag::COST_CENTER.to_string(), cost_center.to_string()),
        (tag::RESOURCE.to_string(), node.to_string()),
    ];
    if let Some(m) = member {
        tags.push((tag::MEMBER.to_string(), m.to_string()));
    }
    if let Some(n) = name {
        tags.push((tag::NAME.to_string(), n.to_string()));
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_carries_the_suffix() {
        let names = Names::new("qa", "us-east-1", Some("123456789012"));
        for (name, _) in names.all() {
            assert!(name.contains("qa"), "{name} lacks the suffix");
        }
    }

    #[test]
    fn the_api_logging_role_is_one_per_region_without_a_suffix_and_obeys_iams_rule() {
        let names = Names::new("qa", "us-east-1", Some("123456789012"));
        assert_eq!(names.api_logging_role(), "tapctl-apigateway-logs-us-east-1");
        assert!(!names.api_logging_role().contains("qa"));
        let longest = Names::new("qa", "ap-southeast-5", Some("123456789012"));
        assert_eq!(Rule::IamRole.check(&longest.api_logging_role()), Ok(()));
        assert_ne!(names.api_logging_role(), Names::new("qa", "eu-west-1", None).api_logging_role());
    }

    #[test]
    fn bucket_name_carries_account_region_and_suffix() {
        let names = Names::new("qa", "eu-west-1", Some("123456789012"));
        assert_eq!(names.audit_bucket(), "payments-audit-123456789012-eu-west-1-qa");
    }

    #[test]
    fn s3_rule_rejects_uppercase_and_reserved_endings() {
        assert!(Rule::S3Bucket.check("payments-audit-Qa").is_err());
        assert!(Rule::S3Bucket.check("payments-audit-x-s3alias").is_err());
        assert!(Rule::S3Bucket.check("payments-audit-qa").is_ok());
    }

    #[test]
    fn rds_rule_rejects_double_hyphens_and_leading_digits() {
        assert!(Rule::RdsIdentifier.check("payment--db").is_err());
        assert!(Rule::RdsIdentifier.check("1payment").is_err());
        assert!(Rule::RdsIdentifier.check("payment-db-qa").is_ok());
    }

    #[test]
    fn lengths_are_counted_against_each_service_limit() {
        let long = "x".repeat(64);
        assert!(Rule::S3Bucket.check(&long).unwrap_err().contains("at most 63"));
        assert!(Rule::LambdaFunction.check(&long[..64]).is_ok());
        assert!(Rule::IamRole.check(&"r".repeat(65)).is_err());
    }

    /// The login tapctl grants `rds-db:connect` to is the one the migration creates (and lets
    /// sign in through IAM: `rds_iam`). Either renamed alone, process could never sign in.
    #[test]
    fn the_process_login_is_the_one_the_migration_creates() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("functions/payments-core/migrations/0003_least_privilege_logins.sql");
        let sql = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Case, quoting and layout are PostgreSQL's business, not the name's.
        let words = sql.to_lowercase().replace(['"', '\'', ';'], " ");
        let words: Vec<&str> = words.split_whitespace().collect();
        let text = words.join(" ");
        let login = PROCESS_DB_LOGIN;
        assert!(
            text.contains(&format!("create role {login}")) || text.contains(&format!("create user {login}")),
            "{} does not create {login}",
            path.display()
        );
        assert!(text.contains(&format!("grant rds_iam to {login}")), "{login} may not sign in through IAM");
    }
}
