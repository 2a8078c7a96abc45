//! The flags of a run and of the stack (clap derives, composed by `cli.rs`), their checks, and
//! StackConfig: everything a command needs to know about the stack, validated once, up front,
//! before any AWS call. Each check names the option and the rule it enforces.

use crate::error::Error;
use crate::names::{Names, Rule, Tier};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const DEFAULT_VPC_CIDR: &str = "10.0.0.0/16";
pub const DEFAULT_COST_CENTER: &str = "payments";
pub const DEFAULT_KMS_DELETION_WINDOW_DAYS: i32 = 30;
pub const MAX_PARALLELISM: usize = 64;

/// The options that shape the stack. Recorded in the state file by `up`, so that `plan`,
/// `status` and the next `up` compare against what was built unless told otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackSettings {
    pub vpc_cidr: String,
    pub cost_center: String,
    pub kms_deletion_window_days: i32,
    #[serde(default = "default_audit_retention")]
    pub audit_retention_days: i32,
    #[serde(default = "default_log_retention")]
    pub log_retention_days: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_email: Option<String>,
    #[serde(default = "default_db_min_acu")]
    pub db_min_acu: f64,
    #[serde(default = "default_db_max_acu")]
    pub db_max_acu: f64,
    #[serde(default = "default_db_readers")]
    pub db_readers: usize,
    #[serde(default = "default_db_engine_version")]
    pub db_engine_version: String,
    /// Zone ids (`use1-az1`), when the user chose them; else the region's first three by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zones: Option<Vec<String>>,
    /// Requests per client IP per five minutes the WAF's rate-based rule admits.
    #[serde(default = "default_waf_rate_limit")]
    pub waf_rate_limit: i64,
    /// The default Object Lock retention mode of the audit and trail buckets.
    #[serde(default)]
    pub audit_lock: AuditLock,
    /// Days AWS Backup keeps each daily recovery point (`--backup-retention-days`).
    #[serde(default = "default_backup_retention")]
    pub backup_retention_days: i32,
    /// The second region every recovery point is copied to (`--backup-copy-region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_copy_region: Option<String>,
    /// The administrator role the secrets' resource policies still let read them (break glass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass_role_arn: Option<String>,
    /// The API's custom domain and its ACM certificate, both or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_arn: Option<String>,
    /// Whether `up` turns on the account's detective controls where the region lacks them
    /// (`account.controls`); false with `--no-account-controls`.
    #[serde(default = "default_account_controls")]
    pub account_controls: bool,
}

/// How the audit and trail buckets lock what they receive (S3 Object Lock default retention,
/// PCI DSS 10.3.2–10.3.4). GOVERNANCE: nobody can shorten or remove a version before its
/// retention ends unless allowed `s3:BypassGovernanceRetention` (so `destroy` can still remove a
/// non-production stack). COMPLIANCE: nobody at all, not even the account's root user — the
/// buckets cannot be deleted until the last version's retention has ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuditLock {
    #[default]
    Governance,
    Compliance,
}

impl AuditLock {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditLock::Governance => "governance",
            AuditLock::Compliance => "compliance",
        }
    }
}

impl std::fmt::Display for AuditLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StackSettings {
    /// The settings that differ from `recorded`, each as (flag, recorded value, new value), in
    /// the words of the command line.
    pub fn changes_from(&self, recorded: &StackSettings) -> Vec<(&'static str, String, String)> {
        let zones = |z: &Option<Vec<String>>| z.as_ref().map(|z| z.join(",")).unwrap_or_else(|| "the default".into());
        let email = |e: &Option<String>| e.clone().unwrap_or_else(|| "none".into());
        let all = [
            ("--vpc-cidr", recorded.vpc_cidr.clone(), self.vpc_cidr.clone()),
            ("--cost-center", recorded.cost_center.clone(), self.cost_center.clone()),
            (
                "--kms-deletion-window-days",
                recorded.kms_deletion_window_days.to_string(),
                self.kms_deletion_window_days.to_string(),
            ),
            (
                "--audit-retention-days",
                recorded.audit_retention_days.to_string(),
                self.audit_retention_days.to_string(),
            ),
            ("--log-retention-days", recorded.log_retention_days.to_string(), self.log_retention_days.to_string()),
            ("--alert-email", email(&recorded.alert_email), email(&self.alert_email)),
            ("--db-min-acu", recorded.db_min_acu.to_string(), self.db_min_acu.to_string()),
            ("--db-max-acu", recorded.db_max_acu.to_string(), self.db_max_acu.to_string()),
            ("--db-readers", recorded.db_readers.to_string(), self.db_readers.to_string()),
            ("--db-engine-version", recorded.db_engine_version.clone(), self.db_engine_version.clone()),
            ("--availability-zones", zones(&recorded.availability_zones), zones(&self.availability_zones)),
            ("--waf-rate-limit", recorded.waf_rate_limit.to_string(), self.waf_rate_limit.to_string()),
            ("--audit-lock", recorded.audit_lock.to_string(), self.audit_lock.to_string()),
            (
                "--backup-retention-days",
                recorded.backup_retention_days.to_string(),
                self.backup_retention_days.to_string(),
            ),
            ("--backup-copy-region", email(&recorded.backup_copy_region), email(&self.backup_copy_region)),
            ("--break-glass-role-arn", email(&recorded.break_glass_role_arn), email(&self.break_glass_role_arn)),
            ("--domain", email(&recorded.domain), email(&self.domain)),
            ("--certificate-arn", email(&recorded.certificate_arn), email(&self.certificate_arn)),
            ("--no-account-controls", (!recorded.account_controls).to_string(), (!self.account_controls).to_string()),
        ];
        all.into_iter().filter(|(_, a, b)| a != b).collect()
    }
}

fn default_db_min_acu() -> f64 {
    0.5
}
fn default_db_max_acu() -> f64 {
    4.0
}
fn default_db_readers() -> usize {
    1
}
fn default_db_engine_version() -> String {
    DEFAULT_DB_ENGINE_VERSION.to_string()
}

pub const DEFAULT_DB_ENGINE_VERSION: &str = "16.6";

fn default_account_controls() -> bool {
    true
}

fn default_waf_rate_limit() -> i64 {
    DEFAULT_WAF_RATE_LIMIT
}

/// About 7 requests a second from one address, sustained for five minutes: far above what one
/// merchant integration sends, far below what a card-testing bot needs.
pub const DEFAULT_WAF_RATE_LIMIT: i64 = 2000;
/// What WAF accepts as a rate-based rule's limit (CreateWebACL: RateBasedStatement.Limit).
pub const WAF_RATE_LIMIT_RANGE: std::ops::RangeInclusive<i64> = 10..=2_000_000_000;

fn default_backup_retention() -> i32 {
    DEFAULT_BACKUP_RETENTION_DAYS
}

/// Five weeks of daily recovery points (the default).
pub const DEFAULT_BACKUP_RETENTION_DAYS: i32 = 35;
pub const BACKUP_RETENTION_RANGE: std::ops::RangeInclusive<i32> = 1..=36_500;

fn default_audit_retention() -> i32 {
    DEFAULT_AUDIT_RETENTION_DAYS
}
fn default_log_retention() -> i32 {
    DEFAULT_LOG_RETENTION_DAYS
}

pub const DEFAULT_AUDIT_RETENTION_DAYS: i32 = 365;
pub const DEFAULT_LOG_RETENTION_DAYS: i32 = 365;
/// The retention values CloudWatch Logs accepts (PutRetentionPolicy).
pub const LOG_RETENTION_VALUES: [i32; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

impl Default for StackSettings {
    fn default() -> Self {
        StackSettings {
            vpc_cidr: DEFAULT_VPC_CIDR.to_string(),
            cost_center: DEFAULT_COST_CENTER.to_string(),
            kms_deletion_window_days: DEFAULT_KMS_DELETION_WINDOW_DAYS,
            audit_retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
            log_retention_days: DEFAULT_LOG_RETENTION_DAYS,
            alert_email: None,
            db_min_acu: default_db_min_acu(),
            db_max_acu: default_db_max_acu(),
            db_readers: default_db_readers(),
            db_engine_version: default_db_engine_version(),
            availability_zones: None,
            waf_rate_limit: DEFAULT_WAF_RATE_LIMIT,
            audit_lock: AuditLock::default(),
            backup_retention_days: DEFAULT_BACKUP_RETENTION_DAYS,
            backup_copy_region: None,
            break_glass_role_arn: None,
            domain: None,
            certificate_arn: None,
            account_controls: true,
        }
    }
}

/// Which stack a command works on and where its state is kept (checked by `Selection::from_args`,
/// which does no I/O). The suffix may be left out: `commands::resolve_suffix` then picks the
/// current stack (`tapctl use`) or the only one the state location holds.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Stack selection")]
pub struct TargetArgs {
    /// The stack: the environment suffix carried by every resource name and tag (e.g. qa, pr-123).
    /// Default: the stack chosen with `tapctl use`, else the only stack in the state location.
    #[arg(long, env = "TAPCTL_SUFFIX")]
    pub suffix: Option<String>,

    /// AWS region. Default: AWS_REGION, AWS_DEFAULT_REGION, CDK_DEFAULT_REGION, then us-east-1.
    #[arg(long)]
    pub region: Option<String>,

    /// Where the state is kept: a directory, or s3://bucket/prefix for a team's shared state
    /// (locked with S3 conditional writes). Default: $XDG_STATE_HOME/tapctl
    /// (~/.local/state/tapctl), whatever the working directory.
    #[arg(long, visible_alias = "state-dir", env = "TAPCTL_STATE", value_name = "DIR|S3_URL")]
    pub state: Option<String>,

    /// Send every AWS call to this endpoint (a local emulator in tests).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

/// How a command reports.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Machine-readable JSON on stdout (one schema for every command: README, "JSON output").
    #[arg(long)]
    pub json: bool,

    /// Plain progress lines instead of live spinners, even on a terminal.
    #[arg(long, env = "TAPCTL_NO_PROGRESS")]
    pub no_progress: bool,
}

/// How a command that walks the stack's graph works.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Run")]
pub struct RunArgs {
    /// How many resources may be worked on at once (1-64).
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,

    /// Give up any single wait (a NAT gateway becoming available, a resource being deleted)
    /// after this long (e.g. 90s, 10m); a re-run resumes where it stopped. Default: each wait's
    /// own limit (15 minutes for a NAT gateway).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_wait: Option<std::time::Duration>,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs { parallelism: 8, max_wait: None }
    }
}

/// For the commands that change the stack and so take its lock.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Run")]
pub struct LockArgs {
    /// Wait this long for another run to release the stack's lock (e.g. 5m) instead of failing
    /// at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_timeout: Option<std::time::Duration>,
}

/// `90s`, `5m`, `1h30m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration like 90s, 5m or 1h30m ({e})"))
}

/// A duration as people write it: `45s`, `5m`, `1h30m`, `2m05s`.
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, 0) => format!("{h}h{m:02}m"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// Where the state of the stacks is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// An absolute directory.
    Local(PathBuf),
    Remote(RemoteState),
}

impl StateLocation {
    /// `--state` / TAPCTL_STATE, or the per-user default; made absolute, so that a command run
    /// from another folder finds the same stacks. No I/O beyond reading the working directory.
    pub fn from_arg(arg: Option<&str>) -> Result<StateLocation, Error> {
        let dir = match arg {
            Some(url) if url.starts_with("s3://") => return Ok(StateLocation::Remote(RemoteState::parse(url)?)),
            Some("") => return Err(Error::invalid("--state", "must not be empty")),
            Some(dir) => PathBuf::from(dir),
            None => default_state_dir()?,
        };
        let dir = std::path::absolute(&dir)
            .map_err(|e| Error::invalid("--state", format!("'{}' cannot be made absolute: {e}", dir.display())))?;
        Ok(StateLocation::Local(dir))
    }

    pub fn describe(&self) -> String {
        match self {
            StateLocation::Local(dir) => dir.display().to_string(),
            StateLocation::Remote(r) => format!("s3://{}/{}", r.bucket, r.prefix),
        }
    }
}

/// `$XDG_STATE_HOME/tapctl`, else `~/.local/state/tapctl` (the XDG base directory default).
fn default_state_dir() -> Result<PathBuf, Error> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("tapctl"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/tapctl")),
        None => Err(Error::invalid("--state", "is required where neither XDG_STATE_HOME nor HOME is set")),
    }
}

/// The stack selection as typed, checked: the suffix (when given), the region, the state
/// location, the endpoint.
#[derive(Debug, Clone)]
pub struct Selection {
    pub suffix: Option<String>,
    pub region: String,
    pub location: StateLocation,
    pub endpoint_url: Option<String>,
}

impl Selection {
    /// `env_region` is the region from the environment (AWS_REGION, AWS_DEFAULT_REGION,
    /// CDK_DEFAULT_REGION), passed in so tests need no env.
    pub fn from_args(args: &TargetArgs, env_region: Option<String>) -> Result<Selection, Error> {
        let region = args.region.clone().or(env_region).unwrap_or_else(|| "us-east-1".to_string());
        validate_region(&region)?;
        if let Some(suffix) = &args.suffix {
            validate_suffix(suffix, &region)?;
        }
        if let Some(url) = &args.endpoint_url {
            validate_endpoint(url)?;
        }
        Ok(Selection {
            suffix: args.suffix.clone(),
            region,
            location: StateLocation::from_arg(args.state.as_deref())?,
            endpoint_url: args.endpoint_url.clone(),
        })
    }
}

/// Sizing and layout of the stack. Unset options keep the value recorded by the last `up`
/// of this suffix, else the documented default, so `plan` compares against what `up` built.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Stack settings (recorded by up; later runs keep them)")]
pub struct StackOverrides {
    /// IPv4 CIDR of the VPC, /16 to /23, in a private (RFC 1918) range. Default 10.0.0.0/16.
    /// Subnets are carved from it: three private /(n+2), three public and three database /(n+5).
    #[arg(long, global = true)]
    pub vpc_cidr: Option<String>,

    /// Value of the CostCenter tag on every resource. Default: payments.
    #[arg(long, global = true)]
    pub cost_center: Option<String>,

    /// Days a destroyed KMS key waits before AWS deletes it (7-30). Default 30.
    #[arg(long, global = true)]
    pub kms_deletion_window_days: Option<i32>,

    /// Days audit events are kept (365-3650; PCI DSS 10.5.1 asks for at least 12 months). Default 365.
    #[arg(long, global = true)]
    pub audit_retention_days: Option<i32>,

    /// Days CloudWatch keeps the functions' and the API's logs (a value CloudWatch accepts:
    /// 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    /// 2922, 3288, 3653). Default 365.
    #[arg(long, global = true)]
    pub log_retention_days: Option<i32>,

    /// Aurora Serverless v2 minimum capacity in ACUs (0-256, steps of 0.5). Default 0.5.
    #[arg(long, global = true)]
    pub db_min_acu: Option<f64>,

    /// Aurora Serverless v2 maximum capacity in ACUs (1-256, steps of 0.5, at least the minimum). Default 4.
    #[arg(long, global = true)]
    pub db_max_acu: Option<f64>,

    /// Aurora readers besides the writer (0-15), spread over the other AZs. Default 1.
    #[arg(long, global = true)]
    pub db_readers: Option<usize>,

    /// Aurora PostgreSQL engine version (major.minor, major 13-17). Default 16.6.
    #[arg(long, global = true)]
    pub db_engine_version: Option<String>,

    /// E-mail address subscribed to the alerts topic (optional; AWS asks it to confirm).
    #[arg(long, global = true)]
    pub alert_email: Option<String>,

    /// The three availability zones, by zone id (e.g. use1-az1,use1-az2,use1-az4: ids name the
    /// same zone in every account, names do not; `aws ec2 describe-availability-zones` lists
    /// them). For an account that cannot create subnets or Lambda interfaces in some zone.
    /// Default: the region's first three available zones by name.
    #[arg(long, global = true, value_delimiter = ',')]
    pub availability_zones: Option<Vec<String>>,

    /// Requests one client IP may send in five minutes before the WAF blocks it (10 to
    /// 2000000000). Default 2000.
    #[arg(long, global = true)]
    pub waf_rate_limit: Option<i64>,

    /// Object Lock mode of the audit and trail buckets: governance (destroy can still remove
    /// them) or compliance (for production: nobody can delete a locked version, so the buckets
    /// outlive `destroy` until the retention ends). Default governance.
    #[arg(long, global = true, value_enum)]
    pub audit_lock: Option<AuditLock>,

    /// Days AWS Backup keeps each daily backup of the Aurora cluster and the transactions table
    /// (1 to 36500). Default 35.
    #[arg(long, global = true)]
    pub backup_retention_days: Option<i32>,

    /// A second region (e.g. us-west-2) every recovery point is copied to, into a vault encrypted
    /// with a key made there. An empty value stops the copies. Default: none.
    #[arg(long, global = true)]
    pub backup_copy_region: Option<String>,

    /// An IAM role (arn:aws:iam::<account>:role/<name>) the secrets' resource policies still let
    /// read the secrets, beside the functions that need them: the break-glass administrator.
    /// An empty value removes it. Default: none.
    #[arg(long, global = true)]
    pub break_glass_role_arn: Option<String>,

    /// A custom domain for the API (e.g. pay.example.com), with --certificate-arn: clients then
    /// use https://<domain>/ with TLS 1.2 or newer, and the execute-api endpoint is disabled.
    /// Point DNS at the domain's regional name (output api_domain_target). Empty values (both)
    /// remove it. Default: none.
    #[arg(long, global = true)]
    pub domain: Option<String>,

    /// The ACM certificate of --domain, in the stack's region
    /// (arn:aws:acm:<region>:<account>:certificate/<id>).
    #[arg(long, global = true)]
    pub certificate_arn: Option<String>,

    /// Leave the account's detective controls (GuardDuty, Security Hub, AWS Config) to the
    /// operator: tapctl makes no call to those services, not even a read. Recorded: the stack's
    /// later runs keep to it until --account-controls. Default: `up` turns on what the region
    /// lacks, and the last stack's `destroy` turns off what tapctl turned on.
    #[arg(long, global = true, conflicts_with = "account_controls")]
    pub no_account_controls: bool,

    /// Undoes an earlier --no-account-controls (the default).
    #[arg(long, global = true)]
    pub account_controls: bool,
}

/// Where and how a command runs: validated before the state is opened or AWS is called.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub suffix: String,
    pub region: String,
    pub location: StateLocation,
    pub endpoint_url: Option<String>,
    pub parallelism: usize,
    pub json: bool,
    pub no_progress: bool,
    pub max_wait: Option<std::time::Duration>,
    pub lock_timeout: Option<std::time::Duration>,
}

/// `--state s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteState {
    pub bucket: String,
    /// Without leading or trailing slash; may be empty.
    pub prefix: String,
}

impl RemoteState {
    pub fn parse(url: &str) -> Result<Self, Error> {
        let field = "--state";
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| Error::invalid(field, format!("'{url}' must look like s3://bucket/prefix")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Rule::S3Bucket.check(bucket).map_err(|e| Error::invalid(field, e))?;
        let prefix = prefix.trim_matches('/').to_string();
        if prefix.len() > 900 || prefix.chars().any(|c| c.is_control() || c == '\\') {
            return Err(Error::invalid(
                field,
                "the prefix must be printable, without backslashes, at most 900 characters",
            ));
        }
        Ok(RemoteState { bucket: bucket.to_string(), prefix })
    }

    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

/// The whole, validated configuration of one stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The function packages `up` deploys; None when none were given (plan and status then
    /// leave the code out of the comparison, destroy never needs them).
    pub packages: Option<std::sync::Arc<crate::package::Packages>>,
    pub suffix: String,
    pub region: String,
    pub vpc_cidr: Ipv4Net,
    pub cost_center: String,
    pub kms_deletion_window_days: i32,
    pub audit_retention_days: i32,
    pub log_retention_days: i32,
    pub alert_email: Option<String>,
    pub db_min_acu: f64,
    pub db_max_acu: f64,
    pub db_readers: usize,
    /// Zone ids the user chose (`--availability-zones`), or None for the default.
    pub availability_zones: Option<Vec<String>>,
    pub db_engine_version: String,
    pub waf_rate_limit: i64,
    pub audit_lock: AuditLock,
    pub break_glass_role_arn: Option<String>,
    /// Days AWS Backup keeps each daily recovery point.
    pub backup_retention_days: i32,
    /// Where every recovery point is copied, if anywhere (never the stack's own region).
    pub backup_copy_region: Option<String>,
    /// The API's custom domain and its certificate (both or neither).
    pub domain: Option<ApiDomain>,
    /// `up` turns on the account's detective controls where absent (not with
    /// `--no-account-controls`).
    pub account_controls: bool,
}

/// `--domain` with its `--certificate-arn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiDomain {
    pub name: String,
    pub certificate_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetPlan {
    pub tier: Tier,
    pub az_index: usize,
    pub cidr: Ipv4Net,
}

impl RunConfig {
    /// The run of one stack: `suffix` is the selection's, or the one `resolve_suffix` chose
    /// (already checked).
    pub fn new(
        selection: Selection,
        suffix: String,
        run: &RunArgs,
        output: &OutputArgs,
        lock: &LockArgs,
    ) -> Result<Self, Error> {
        validate_suffix(&suffix, &selection.region)?;
        if run.parallelism == 0 || run.parallelism > MAX_PARALLELISM {
            return Err(Error::invalid(
                "--parallelism",
                format!("must be between 1 and {MAX_PARALLELISM}, got {}", run.parallelism),
            ));
        }
        if let Some(w) = run.max_wait {
            if w.is_zero() || w > std::time::Duration::from_secs(86_400) {
                return Err(Error::invalid("--max-wait", "must be between 1s and 24h"));
            }
        }
        Ok(RunConfig {
            suffix,
            region: selection.region,
            location: selection.location,
            endpoint_url: selection.endpoint_url,
            parallelism: run.parallelism,
            json: output.json,
            no_progress: output.no_progress,
            max_wait: run.max_wait,
            lock_timeout: lock.lock_timeout,
        })
    }
}

/// The region from the environment, in the order the design names.
pub fn region_from_env() -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION", "CDK_DEFAULT_REGION"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
}

/// `--no-account-controls` / `--account-controls` over what the stack recorded.
fn account_controls(args: &StackOverrides, recorded: bool) -> bool {
    if args.no_account_controls {
        false
    } else if args.account_controls {
        true
    } else {
        recorded
    }
}

/// Checks the stack options given on the command line, before anything is read or called.
pub fn validate_stack_args(args: &StackOverrides) -> Result<(), Error> {
    if let Some(c) = &args.vpc_cidr {
        parse_vpc_cidr(c)?;
    }
    if let Some(c) = &args.cost_center {
        validate_cost_center(c)?;
    }
    if let Some(d) = args.kms_deletion_window_days {
        validate_kms_window(d)?;
    }
    if let Some(d) = args.audit_retention_days {
        validate_audit_retention(d)?;
    }
    if let Some(d) = args.log_retention_days {
        validate_log_retention(d)?;
    }
    if let Some(e) = &args.alert_email {
        validate_email(e)?;
    }
    if let Some(v) = &args.db_engine_version {
        validate_engine_version(v)?;
    }
    if let Some(r) = args.db_readers {
        validate_readers(r)?;
    }
    if let Some(z) = &args.availability_zones {
        validate_zone_ids(z)?;
    }
    if let Some(l) = args.waf_rate_limit {
        validate_waf_rate_limit(l)?;
    }
    if let Some(d) = args.backup_retention_days {
        validate_backup_retention(d)?;
    }
    validate_backup_copy_region(args.backup_copy_region.as_deref(), None)?;
    if let Some(r) = args.break_glass_role_arn.as_deref().filter(|r| !r.is_empty()) {
        validate_role_arn("--break-glass-role-arn", r)?;
    }
    validate_domain_flags(args.domain.as_deref(), args.certificate_arn.as_deref(), None)?;
    validate_capacity(
        args.db_min_acu.unwrap_or(0.5),
        args.db_max_acu.unwrap_or(args.db_min_acu.unwrap_or(0.5).max(4.0)),
    )?;
    Ok(())
}

/// Aurora PostgreSQL versions are major.minor; tapctl knows the families of majors 13-17.
fn validate_engine_version(v: &str) -> Result<(), Error> {
    let ok = v.split_once('.').is_some_and(|(major, minor)| {
        matches!(major, "13" | "14" | "15" | "16" | "17")
            && !minor.is_empty()
            && minor.chars().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "--db-engine-version",
            format!("'{v}' must be an Aurora PostgreSQL version like 16.6 (major 13 to 17)"),
        ))
    }
}

fn validate_readers(r: usize) -> Result<(), Error> {
    if r <= 15 {
        Ok(())
    } else {
        Err(Error::invalid("--db-readers", format!("an Aurora cluster has at most 15 readers, got {r}")))
    }
}

/// Serverless v2: 0 to 256 ACUs in steps of 0.5, maximum at least 1 and not below the minimum.
fn validate_capacity(min: f64, max: f64) -> Result<(), Error> {
    let step = |x: f64| (x * 2.0).fract() == 0.0;
    if !(0.0..=256.0).contains(&min) || !step(min) {
        return Err(Error::invalid("--db-min-acu", format!("must be 0 to 256 in steps of 0.5, got {min}")));
    }
    if !(1.0..=256.0).contains(&max) || !step(max) {
        return Err(Error::invalid("--db-max-acu", format!("must be 1 to 256 in steps of 0.5, got {max}")));
    }
    if max < min {
        return Err(Error::invalid("--db-max-acu", format!("{max} is below --db-min-acu {min}")));
    }
    Ok(())
}

fn validate_audit_retention(d: i32) -> Result<(), Error> {
    if (365..=3650).contains(&d) {
        Ok(())
    } else {
        Err(Error::invalid(
            "--audit-retention-days",
            format!("must be between 365 and 3650, got {d} (PCI DSS 10.5.1 keeps audit trails at least 12 months)"),
        ))
    }
}

/// AWS Backup's lifecycle: DeleteAfterDays of at least 1 (and, with cold storage, 90 more than
/// MoveToColdStorageAfterDays — tapctl moves nothing to cold storage: AWS Backup offers it for
/// neither Aurora nor a DynamoDB table without advanced backup). The upper bound is the
/// 100 years AWS Backup's console offers.
fn validate_backup_retention(d: i32) -> Result<(), Error> {
    if BACKUP_RETENTION_RANGE.contains(&d) {
        Ok(())
    } else {
        Err(Error::invalid(
            "--backup-retention-days",
            format!(
                "must be between {} and {} days (AWS Backup deletes a recovery point at the earliest a day after \
                 it was made), got {d}",
                BACKUP_RETENTION_RANGE.start(),
                BACKUP_RETENTION_RANGE.end()
            ),
        ))
    }
}

/// A region name of the stack's partition, and not the stack's own region (`stack_region`, when
/// it is known): a copy in the same region survives nothing the original would not. Empty means
/// no copy.
pub fn validate_backup_copy_region(copy: Option<&str>, stack_region: Option<&str>) -> Result<(), Error> {
    let Some(copy) = copy.filter(|c| !c.is_empty()) else { return Ok(()) };
    check_region("--backup-copy-region", copy)?;
    if stack_region == Some(copy) {
        return Err(Error::invalid(
            "--backup-copy-region",
            format!("'{copy}' is the stack's own region; the copies must go to another region to survive its loss"),
        ));
    }
    Ok(())
}

fn validate_waf_rate_limit(l: i64) -> Result<(), Error> {
    if WAF_RATE_LIMIT_RANGE.contains(&l) {
        Ok(())
    } else {
        Err(Error::invalid(
            "--waf-rate-limit",
            format!(
                "must be {} to {} requests per client IP in five minutes (WAF's range for a rate-based rule), got {l}",
                WAF_RATE_LIMIT_RANGE.start(),
                WAF_RATE_LIMIT_RANGE.end()
            ),
        ))
    }
}

fn validate_log_retention(d: i32) -> Result<(), Error> {
    if LOG_RETENTION_VALUES.contains(&d) {
        Ok(())
    } else {
        Err(Error::invalid(
            "--log-retention-days",
            format!("{d} is not a retention CloudWatch Logs accepts; use one of {LOG_RETENTION_VALUES:?}"),
        ))
    }
}

/// The shape SNS accepts for an e-mail endpoint: one '@', a dotted domain, no spaces.
/// Three distinct zone ids like `use1-az1` (`<region code>-az<n>`); which exist is AWS's to say.
fn validate_zone_ids(zones: &[String]) -> Result<(), Error> {
    let shaped = |z: &str| {
        z.split_once("-az").is_some_and(|(code, n)| {
            code.len() >= 3
                && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && code.chars().last().is_some_and(|c| c.is_ascii_digit())
                && !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit())
        })
    };
    if let Some(bad) = zones.iter().find(|z| !shaped(z)) {
        return Err(Error::invalid(
            "--availability-zones",
            format!("'{bad}' is not a zone id like use1-az1 (zone ids, not names like us-east-1a: ids name the same zone in every account)"),
        ));
    }
    let distinct: std::collections::BTreeSet<&String> = zones.iter().collect();
    if zones.len() != 3 || distinct.len() != 3 {
        return Err(Error::invalid(
            "--availability-zones",
            format!("needs exactly three different zone ids, got {}", zones.join(",")),
        ));
    }
    Ok(())
}

fn validate_email(e: &str) -> Result<(), Error> {
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.starts_with('.')
                && domain.contains('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("--alert-email", format!("'{e}' is not an e-mail address like ops@example.com")))
    }
}

impl StackConfig {
    /// Command line over what the last `up` recorded, over the defaults.
    pub fn resolve(run: &RunConfig, args: &StackOverrides, recorded: Option<&StackSettings>) -> Result<Self, Error> {
        let base = recorded.cloned().unwrap_or_default();
        let settings = StackSettings {
            vpc_cidr: args.vpc_cidr.clone().unwrap_or(base.vpc_cidr),
            cost_center: args.cost_center.clone().unwrap_or(base.cost_center),
            kms_deletion_window_days: args.kms_deletion_window_days.unwrap_or(base.kms_deletion_window_days),
            audit_retention_days: args.audit_retention_days.unwrap_or(base.audit_retention_days),
            log_retention_days: args.log_retention_days.unwrap_or(base.log_retention_days),
            alert_email: args.alert_email.clone().or(base.alert_email),
            db_min_acu: args.db_min_acu.unwrap_or(base.db_min_acu),
            db_max_acu: args.db_max_acu.unwrap_or(base.db_max_acu),
            db_readers: args.db_readers.unwrap_or(base.db_readers),
            db_engine_version: args.db_engine_version.clone().unwrap_or(base.db_engine_version),
            availability_zones: args.availability_zones.clone().or(base.availability_zones),
            waf_rate_limit: args.waf_rate_limit.unwrap_or(base.waf_rate_limit),
            audit_lock: args.audit_lock.unwrap_or(base.audit_lock),
            backup_retention_days: args.backup_retention_days.unwrap_or(base.backup_retention_days),
            backup_copy_region: given_or(&args.backup_copy_region, base.backup_copy_region),
            break_glass_role_arn: given_or(&args.break_glass_role_arn, base.break_glass_role_arn),
            domain: given_or(&args.domain, base.domain),
            certificate_arn: given_or(&args.certificate_arn, base.certificate_arn),
            account_controls: account_controls(args, base.account_controls),
        };
        if let Some(r) = &settings.break_glass_role_arn {
            validate_role_arn("--break-glass-role-arn", r)?;
        }
        validate_domain_flags(
            Some(settings.domain.as_deref().unwrap_or_default()),
            Some(settings.certificate_arn.as_deref().unwrap_or_default()),
            Some(&run.region),
        )?;
        validate_waf_rate_limit(settings.waf_rate_limit)?;
        validate_backup_retention(settings.backup_retention_days)?;
        validate_backup_copy_region(settings.backup_copy_region.as_deref(), Some(&run.region))?;
        validate_capacity(settings.db_min_acu, settings.db_max_acu)?;
        validate_readers(settings.db_readers)?;
        validate_engine_version(&settings.db_engine_version)?;
        validate_cost_center(&settings.cost_center)?;
        validate_kms_window(settings.kms_deletion_window_days)?;
        validate_audit_retention(settings.audit_retention_days)?;
        validate_log_retention(settings.log_retention_days)?;
        if let Some(e) = &settings.alert_email {
            validate_email(e)?;
        }
        if let Some(z) = &settings.availability_zones {
            validate_zone_ids(z)?;
        }
        Ok(StackConfig {
            packages: None,
            suffix: run.suffix.clone(),
            region: run.region.clone(),
            vpc_cidr: parse_vpc_cidr(&settings.vpc_cidr)?,
            cost_center: settings.cost_center,
            kms_deletion_window_days: settings.kms_deletion_window_days,
            audit_retention_days: settings.audit_retention_days,
            log_retention_days: settings.log_retention_days,
            alert_email: settings.alert_email,
            db_min_acu: settings.db_min_acu,
            db_max_acu: settings.db_max_acu,
            db_readers: settings.db_readers,
            db_engine_version: settings.db_engine_version,
            availability_zones: settings.availability_zones,
            waf_rate_limit: settings.waf_rate_limit,
            audit_lock: settings.audit_lock,
            backup_retention_days: settings.backup_retention_days,
            backup_copy_region: settings.backup_copy_region,
            break_glass_role_arn: settings.break_glass_role_arn,
            domain: settings
                .domain
                .zip(settings.certificate_arn)
                .map(|(name, certificate_arn)| ApiDomain { name, certificate_arn }),
            account_controls: settings.account_controls,
        })
    }

    pub fn settings(&self) -> StackSettings {
        StackSettings {
            vpc_cidr: self.vpc_cidr.to_string(),
            cost_center: self.cost_center.clone(),
            kms_deletion_window_days: self.kms_deletion_window_days,
            audit_retention_days: self.audit_retention_days,
            log_retention_days: self.log_retention_days,
            alert_email: self.alert_email.clone(),
            db_min_acu: self.db_min_acu,
            db_max_acu: self.db_max_acu,
            db_readers: self.db_readers,
            db_engine_version: self.db_engine_version.clone(),
            availability_zones: self.availability_zones.clone(),
            waf_rate_limit: self.waf_rate_limit,
            audit_lock: self.audit_lock,
            backup_retention_days: self.backup_retention_days,
            backup_copy_region: self.backup_copy_region.clone(),
            break_glass_role_arn: self.break_glass_role_arn.clone(),
            domain: self.domain.as_ref().map(|d| d.name.clone()),
            certificate_arn: self.domain.as_ref().map(|d| d.certificate_arn.clone()),
            account_controls: self.account_controls,
        }
    }

    /// The cluster parameter group family of the engine version: aurora-postgresql16 for 16.x.
    pub fn db_parameter_family(&self) -> String {
        let major = self.db_engine_version.split('.').next().unwrap_or("16");
        format!("aurora-postgresql{major}")
    }

    /// Nine subnets carved from the VPC: the first three quarters are the private subnets
    /// (Lambda ENIs need room), the last quarter is cut in eight for public and database.
    /// Non-overlapping by construction.
    pub fn subnet_layout(&self) -> Vec<SubnetPlan> {
        subnet_layout(self.vpc_cidr)
    }
}

pub fn subnet_layout(vpc: Ipv4Net) -> Vec<SubnetPlan> {
    let p = vpc.prefix_len();
    // parse_vpc_cidr keeps p within /16../23, so both splits always succeed.
    let quarters: Vec<Ipv4Net> = vpc.subnets(p + 2).map(|s| s.collect()).unwrap_or_default();
    let eighths: Vec<Ipv4Net> =
        quarters.get(3).and_then(|q| q.subnets(p + 5).ok()).map(|s| s.collect()).unwrap_or_default();
    let mut out = Vec::with_capacity(9);
    for az in 0..3 {
        out.push(SubnetPlan { tier: Tier::Public, az_index: az, cidr: eighths[az] });
        out.push(SubnetPlan { tier: Tier::Private, az_index: az, cidr: quarters[az] });
        out.push(SubnetPlan { tier: Tier::Database, az_index: az, cidr: eighths[3 + az] });
    }
    out
}

pub fn validate_suffix(suffix: &str, region: &str) -> Result<(), Error> {
    let rule = |r: &str| Error::invalid("--suffix", format!("'{suffix}' {r}"));
    if suffix.is_empty() {
        return Err(rule("is empty; it must be 1 or more characters"));
    }
    if !suffix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(rule(
            "may contain only lowercase letters a-z, digits and hyphens (S3 and RDS names are lowercase)",
        ));
    }
    if !suffix.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(rule("must start with a lowercase letter (RDS identifiers must)"));
    }
    if suffix.ends_with('-') {
        return Err(rule("must not end with a hyphen"));
    }
    if suffix.contains("--") {
        return Err(rule("must not contain two consecutive hyphens (RDS forbids them)"));
    }
    let names = Names::new(suffix, region, None);
    for (name, rule_of) in names.all() {
        rule_of.check(&name).map_err(|broken| rule(&format!("cannot be used: {broken}")))?;
    }
    Ok(())
}

/// AWS region names: `<area>-<place>-<n>`, e.g. us-east-1, ap-southeast-2, us-gov-west-1.
pub fn validate_region(region: &str) -> Result<(), Error> {
    check_region("--region", region)
}

/// `region` is a commercial-partition region name; errors name `flag`.
fn check_region(flag: &str, region: &str) -> Result<(), Error> {
    let partition = partition(region);
    if partition != "aws" {
        return Err(Error::invalid(
            flag,
            format!(
                "'{region}' is in the {partition} partition; tapctl builds ARNs, service principals and endpoints \
                 for the commercial partition (aws) only, so it refuses rather than make policies that name \
                 the wrong partition — use a commercial region"
            ),
        ));
    }
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1..parts.len() - 1].iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit());
    if !ok {
        return Err(Error::invalid(
            flag,
            format!("'{region}' is not an AWS region name (like us-east-1 or eu-central-2)"),
        ));
    }
    Ok(())
}

/// The AWS partition a region belongs to, by its name's prefix (the SDK's partitions.json).
pub fn partition(region: &str) -> &'static str {
    const OTHERS: [(&str, &str); 7] = [
        ("eusc-", "aws-eusc"),
        ("us-gov-", "aws-us-gov"),
        ("cn-", "aws-cn"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
    ];
    OTHERS.iter().find(|(prefix, _)| region.starts_with(prefix)).map_or("aws", |(_, p)| p)
}

/// No I/O here (flags are checked before anything is touched): the local store makes the
/// directory when it takes the lock, and says so if it cannot.
fn validate_endpoint(url: &str) -> Result<(), Error> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err(Error::invalid(
            "--endpoint-url",
            format!("'{url}' must be an http:// or https:// URL, e.g. http://127.0.0.1:5000"),
        )),
    }
}

pub fn parse_vpc_cidr(s: &str) -> Result<Ipv4Net, Error> {
    let field = "--vpc-cidr";
    let net: Ipv4Net =
        s.parse().map_err(|_| Error::invalid(field, format!("'{s}' is not an IPv4 CIDR like 10.0.0.0/16")))?;
    if net.trunc() != net {
        return Err(Error::invalid(field, format!("'{s}' has host bits set; did you mean {}?", net.trunc())));
    }
    if !(16..=23).contains(&net.prefix_len()) {
        return Err(Error::invalid(
            field,
            format!("'{s}' must be a /16 to /23 (AWS allows /16-/28; nine subnets of at least /28 need /23 or larger)"),
        ));
    }
    let private: [Ipv4Net; 3] = [
        Ipv4Net::new([10, 0, 0, 0].into(), 8).expect("static"),
        Ipv4Net::new([172, 16, 0, 0].into(), 12).expect("static"),
        Ipv4Net::new([192, 168, 0, 0].into(), 16).expect("static"),
    ];
    if !private.iter().any(|p| p.contains(&net)) {
        return Err(Error::invalid(
            field,
            format!("'{s}' must lie in a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"),
        ));
    }
    Ok(net)
}

fn validate_cost_center(c: &str) -> Result<(), Error> {
    if c.is_empty() {
        return Err(Error::invalid("--cost-center", "must not be empty"));
    }
    Rule::TagValue.check(c).map_err(|e| Error::invalid("--cost-center", e))
}

/// A flag given on the command line wins, an empty one removes the setting, else the recorded one.
fn given_or(arg: &Option<String>, recorded: Option<String>) -> Option<String> {
    match arg {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(v.clone()),
        None => recorded,
    }
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>` split in its parts, when it has them
/// all and a partition AWS has (aws, aws-cn, aws-us-gov, aws-iso…).
fn arn_parts(arn: &str) -> Option<[&str; 5]> {
    let mut p = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
        (p.next(), p.next(), p.next(), p.next(), p.next(), p.next())
    else {
        return None;
    };
    let known = partition == "aws" || partition.strip_prefix("aws-").is_some_and(|r| !r.is_empty());
    known.then_some([partition, service, region, account, resource])
}

fn is_account_id(a: &str) -> bool {
    a.len() == 12 && a.chars().all(|c| c.is_ascii_digit())
}

/// An IAM role ARN, `arn:<partition>:iam::<12 digits>:role/<path/>name` (IAM's rules: a name of
/// 1-64 of `A-Za-z0-9+=,.@_-`, a path of printable ASCII, 512 characters at most).
pub fn validate_role_arn(flag: &str, arn: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Error::invalid(
            flag,
            format!("'{arn}' is not an IAM role ARN like arn:aws:iam::123456789012:role/break-glass: {why}"),
        )
    };
    let [_, service, region, account, resource] =
        arn_parts(arn).ok_or_else(|| bad("it needs six ':'-separated parts beginning arn:aws"))?;
    if service != "iam" || !region.is_empty() {
        return Err(bad("the service must be iam, with no region (arn:aws:iam::…)"));
    }
    if !is_account_id(account) {
        return Err(bad("the account must be 12 digits"));
    }
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return Err(bad("the resource must be role/<name>"));
    };
    let (path, name) = path_and_name.rsplit_once('/').unwrap_or(("", path_and_name));
    let name_ok =
        (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if !name_ok {
        return Err(bad("a role name is 1 to 64 of A-Z a-z 0-9 + = , . @ _ -"));
    }
    if path.len() > 510
        || path.split('/').any(|seg| seg.is_empty() && !path.is_empty())
        || path.chars().any(|c| !c.is_ascii_graphic())
    {
        return Err(bad("a role path is printable ASCII between slashes, at most 512 characters"));
    }
    Ok(())
}

/// `--domain` and `--certificate-arn`: both or neither (an empty value of both removes them);
/// the domain a DNS name, the certificate an ACM ARN of the stack's region (when `region` is
/// known: API Gateway takes a regional domain's certificate only from its own region).
pub fn validate_domain_flags(
    domain: Option<&str>,
    certificate: Option<&str>,
    region: Option<&str>,
) -> Result<(), Error> {
    let (domain, certificate) = (domain.unwrap_or_default(), certificate.unwrap_or_default());
    match (domain.is_empty(), certificate.is_empty()) {
        (true, true) => return Ok(()),
        (false, true) => {
            return Err(Error::invalid("--certificate-arn", "--domain needs --certificate-arn (both or neither)"))
        }
        (true, false) => return Err(Error::invalid("--domain", "--certificate-arn needs --domain (both or neither)")),
        (false, false) => {}
    }
    validate_dns_name(domain)?;
    let bad = |why: String| {
        Error::invalid(
            "--certificate-arn",
            format!("'{certificate}' is not an ACM certificate ARN like arn:aws:acm:us-east-1:123456789012:certificate/<id>: {why}"),
        )
    };
    let [_, service, cert_region, account, resource] =
        arn_parts(certificate).ok_or_else(|| bad("it needs six ':'-separated parts beginning arn:aws".into()))?;
    if service != "acm" {
        return Err(bad("the service must be acm".into()));
    }
    if !is_account_id(account) {
        return Err(bad("the account must be 12 digits".into()));
    }
    let id_ok = resource
        .strip_prefix("certificate/")
        .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !id_ok {
        return Err(bad("the resource must be certificate/<id>".into()));
    }
    match region {
        Some(r) if cert_region != r => Err(bad(format!(
            "it is in region '{cert_region}', the stack in '{r}' (a regional API domain takes a certificate of its own region)"
        ))),
        _ if cert_region.is_empty() => Err(bad("it names no region".into())),
        _ => Ok(()),
    }
}

/// A DNS name API Gateway takes as a custom domain: lowercase labels of 1-63 letters, digits
/// and inner hyphens, at least two of them, 253 characters at most, the last not numeric.
fn validate_dns_name(d: &str) -> Result<(), Error> {
    let bad = |why: &str| Error::invalid("--domain", format!("'{d}' is not a domain name like pay.example.com: {why}"));
    if d.len() > 253 {
        return Err(bad("a domain name has at most 253 characters"));
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("it needs at least two labels"));
    }
    for l in &labels {
        if l.is_empty() || l.len() > 63 {
            return Err(bad("each label between dots has 1 to 63 characters"));
        }
        if !l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(bad("labels hold lowercase letters, digits and hyphens only (no wildcard)"));
        }
        if l.starts_with('-') || l.ends_with('-') {
            return Err(bad("a label neither starts nor ends with a hyphen"));
        }
    }
    if labels.last().is_some_and(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Err(bad("the top-level label is not numeric"));
    }
    Ok(())
}

fn validate_kms_window(d: i32) -> Result<(), Error> {
    if (7..=30).contains(&d) {
        Ok(())
    } else {
        Err(Error::invalid(
            "--kms-deletion-window-days",
            format!("must be between 7 and 30 days (AWS KMS rule), got {d}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The run and stack flags as the command line gives them, parsed by clap alone.
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        stack: StackOverrides,
    }

    #[test]
    fn flags_parse_and_validate_without_touching_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("not-yet");
        let flags = Flags::parse_from(["t", "--suffix", "qa", "--state-dir", state_dir.to_str().unwrap()]);
        let selection = Selection::from_args(&flags.target, None).unwrap();
        let run =
            RunConfig::new(selection, "qa".into(), &flags.run, &OutputArgs::default(), &LockArgs::default()).unwrap();
        validate_stack_args(&flags.stack).unwrap();
        assert_eq!(run.location, StateLocation::Local(state_dir.clone()));
        assert!(!state_dir.exists(), "checking a flag makes nothing: the store makes the directory when it locks");
        let flags = Flags::parse_from(["t", "--suffix", "qa", "--parallelism", "0"]);
        let selection = Selection::from_args(&flags.target, None).unwrap();
        let err = RunConfig::new(selection, "qa".into(), &flags.run, &OutputArgs::default(), &LockArgs::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--parallelism") && err.contains("between 1 and 64"), "{err}");
        let flags = Flags::parse_from(["t", "--db-min-acu", "8", "--db-max-acu", "2"]);
        let err = validate_stack_args(&flags.stack).unwrap_err().to_string();
        assert!(err.contains("--db-max-acu") || err.contains("--db-min-acu"), "{err}");
    }

    #[test]
    fn no_account_controls_is_recorded_until_account_controls_undoes_it() {
        let on = StackSettings::default();
        assert!(on.account_controls, "tapctl turns the controls on by default");
        let flags = Flags::parse_from(["t", "--no-account-controls"]);
        validate_stack_args(&flags.stack).unwrap();
        assert!(!account_controls(&flags.stack, true));
        let off = StackSettings { account_controls: false, ..on.clone() };
        assert_eq!(off.changes_from(&on), vec![("--no-account-controls", "false".to_string(), "true".to_string())]);
        // Later runs keep to what the stack recorded, until told otherwise.
        let none = Flags::parse_from(["t"]);
        assert!(!account_controls(&none.stack, false));
        assert!(account_controls(&none.stack, true));
        let back = Flags::parse_from(["t", "--account-controls"]);
        assert!(account_controls(&back.stack, false));
        let both = Flags::try_parse_from(["t", "--no-account-controls", "--account-controls"]);
        let err = both.err().expect("both flags at once are refused").to_string();
        assert!(err.contains("--no-account-controls") && err.contains("--account-controls"), "{err}");
        // An older state without the setting reads as on.
        let old: StackSettings =
            serde_json::from_value(serde_json::json!({"vpc_cidr": "10.0.0.0/16", "cost_center": "payments",
                "kms_deletion_window_days": 30}))
            .unwrap();
        assert!(old.account_controls);
    }

    #[test]
    fn the_break_glass_role_must_be_an_iam_role_arn() {
        for good in [
            "arn:aws:iam::123456789012:role/break-glass",
            "arn:aws:iam::123456789012:role/admins/break.glass+1@x",
            "arn:aws-us-gov:iam::123456789012:role/BreakGlass",
        ] {
            let flags = Flags::parse_from(["t", "--break-glass-role-arn", good]);
            validate_stack_args(&flags.stack).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for (bad, rule) in [
            ("break-glass", "six ':'-separated parts"),
            ("arn:aws:iam::123456789012:user/alice", "role/<name>"),
            ("arn:aws:sts::123456789012:assumed-role/admin/s", "service must be iam"),
            ("arn:aws:iam:us-east-1:123456789012:role/x", "no region"),
            ("arn:aws:iam::12345:role/x", "12 digits"),
            ("arn:aws:iam::123456789012:role/", "1 to 64"),
            ("arn:aws:iam::123456789012:role/has space", "1 to 64"),
            ("arn:aws:iam::123456789012:role/a//b", "role path"),
            ("arn:other:iam::123456789012:role/x", "beginning arn:aws"),
        ] {
            let flags = Flags::parse_from(["t", "--break-glass-role-arn", bad]);
            let err = validate_stack_args(&flags.stack).unwrap_err().to_string();
            assert!(err.contains("--break-glass-role-arn") && err.contains(rule), "{bad}: {err}");
        }
        let flags = Flags::parse_from(["t", "--break-glass-role-arn", ""]);
        validate_stack_args(&flags.stack).expect("an empty value removes the role");
    }

    #[test]
    fn a_custom_domain_needs_its_certificate_of_the_stacks_region() {
        let cert = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-123456789abc";
        validate_domain_flags(Some("pay.example.com"), Some(cert), Some("us-east-1")).unwrap();
        validate_domain_flags(None, None, Some("us-east-1")).unwrap();
        validate_domain_flags(Some(""), Some(""), Some("us-east-1")).expect("both empty remove the domain");
        for (domain, certificate, region, flag, rule) in [
            (Some("pay.example.com"), None, "us-east-1", "--certificate-arn", "both or neither"),
            (None, Some(cert), "us-east-1", "--domain", "both or neither"),
            (Some("pay.example.com"), Some(cert), "eu-west-1", "--certificate-arn", "region 'us-east-1'"),
            (Some("Pay.Example.com"), Some(cert), "us-east-1", "--domain", "lowercase"),
            (Some("*.example.com"), Some(cert), "us-east-1", "--domain", "no wildcard"),
            (Some("localhost"), Some(cert), "us-east-1", "--domain", "two labels"),
            (Some("-pay.example.com"), Some(cert), "us-east-1", "--domain", "hyphen"),
            (Some("pay..example.com"), Some(cert), "us-east-1", "--domain", "1 to 63"),
            (Some("pay.example.123"), Some(cert), "us-east-1", "--domain", "not numeric"),
            (
                Some("pay.example.com"),
                Some("arn:aws:iam::123456789012:server-certificate/x"),
                "us-east-1",
                "--certificate-arn",
                "service must be acm",
            ),
            (
                Some("pay.example.com"),
                Some("arn:aws:acm:us-east-1:123456789012:key/x"),
                "us-east-1",
                "--certificate-arn",
                "certificate/<id>",
            ),
        ] {
            let err = validate_domain_flags(domain, certificate, Some(region)).unwrap_err().to_string();
            assert!(err.contains(flag) && err.contains(rule), "{domain:?} {certificate:?}: {err}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(validate_domain_flags(Some(&long), Some(cert), None).unwrap_err().to_string().contains("1 to 63"));
    }

    #[test]
    fn a_relative_state_directory_is_made_absolute_and_s3_urls_stay_remote() {
        let StateLocation::Local(dir) = StateLocation::from_arg(Some("some/where")).unwrap() else {
            panic!("a directory is local")
        };
        assert!(dir.is_absolute() && dir.ends_with("some/where"), "{}", dir.display());
        assert!(matches!(StateLocation::from_arg(Some("s3://bucket/team")).unwrap(), StateLocation::Remote(_)));
        assert!(StateLocation::from_arg(Some("")).unwrap_err().to_string().contains("--state"));
    }

    #[test]
    fn a_settings_change_is_named_by_its_flag_with_both_values() {
        let recorded = StackSettings::default();
        let mut wanted = recorded.clone();
        assert!(wanted.changes_from(&recorded).is_empty());
        wanted.vpc_cidr = "10.2.0.0/16".into();
        wanted.availability_zones = Some(vec!["use1-az1".into(), "use1-az2".into(), "use1-az4".into()]);
        assert_eq!(
            wanted.changes_from(&recorded),
            vec![
                ("--vpc-cidr", "10.0.0.0/16".to_string(), "10.2.0.0/16".to_string()),
                ("--availability-zones", "the default".to_string(), "use1-az1,use1-az2,use1-az4".to_string()),
            ]
        );
    }

    #[test]
    fn durations_read_and_print_as_people_write_them() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert!(parse_duration("soon").unwrap_err().contains("90s"));
        let s = |n| human_duration(std::time::Duration::from_secs(n));
        assert_eq!(
            [s(0), s(45), s(300), s(125), s(5400), s(3600), s(3661)],
            ["0s", "45s", "5m", "2m05s", "1h30m", "1h", "1h01m01s"]
        );
    }

    #[test]
    fn default_layout_has_nine_non_overlapping_subnets_inside_the_vpc() {
        let vpc: Ipv4Net = DEFAULT_VPC_CIDR.parse().unwrap();
        let layout = subnet_layout(vpc);
        assert_eq!(layout.len(), 9);
        for (i, a) in layout.iter().enumerate() {
            assert!(vpc.contains(&a.cidr));
            for b in &layout[i + 1..] {
                assert!(!a.cidr.contains(&b.cidr) && !b.cidr.contains(&a.cidr), "{a:?} overlaps {b:?}");
            }
        }
        assert_eq!(layout[1].cidr.to_string(), "10.0.0.0/18");
        assert_eq!(layout[0].cidr.to_string(), "10.0.192.0/21");
    }

    #[test]
    fn smallest_vpc_still_gives_subnets_aws_accepts() {
        let layout = subnet_layout("192.168.0.0/23".parse().unwrap());
        assert!(layout.iter().all(|s| s.cidr.prefix_len() <= 28));
    }

    #[test]
    fn vpc_cidr_rules_are_enforced() {
        assert!(parse_vpc_cidr("10.0.0.0/16").is_ok());
        assert!(parse_vpc_cidr("10.0.0.1/16").is_err());
        assert!(parse_vpc_cidr("10.0.0.0/24").is_err());
        assert!(parse_vpc_cidr("8.8.0.0/16").is_err());
        assert!(parse_vpc_cidr("nonsense").is_err());
    }

    #[test]
    fn remote_state_urls_are_parsed_and_checked() {
        let r = RemoteState::parse("s3://team-state/tapctl/").unwrap();
        assert_eq!((r.bucket.as_str(), r.key("qa.json")), ("team-state", "tapctl/qa.json".to_string()));
        assert_eq!(RemoteState::parse("s3://team-state").unwrap().key("qa.json"), "qa.json");
        assert!(RemoteState::parse("https://x/y").is_err());
        assert!(RemoteState::parse("s3://Bad_Bucket/x").is_err());
    }

    #[test]
    fn availability_zones_are_three_distinct_zone_ids() {
        let z = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(validate_zone_ids(&z(&["use1-az1", "use1-az2", "use1-az4"])).is_ok());
        for (bad, says) in [
            (z(&["us-east-1a", "us-east-1b", "us-east-1c"]), "not a zone id"),
            (z(&["use1-az1", "use1-az2"]), "exactly three"),
            (z(&["use1-az1", "use1-az1", "use1-az2"]), "exactly three different"),
        ] {
            let err = validate_zone_ids(&bad).unwrap_err().to_string();
            assert!(err.contains("--availability-zones") && err.contains(says), "{err}");
        }
    }

    #[test]
    fn regions_are_checked_for_shape() {
        for ok in ["us-east-1", "ap-southeast-2", "eu-central-2", "il-central-1", "mx-central-1"] {
            assert!(validate_region(ok).is_ok(), "{ok}");
        }
        // Other partitions are refused before any call, naming the partition: tapctl's ARNs and
        // principals say `aws`.
        for (other, partition) in
            [("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn"), ("us-iso-east-1", "aws-iso")]
        {
            let err = validate_region(other).unwrap_err().to_string();
            assert!(err.contains("--region") && err.contains(&format!("the {partition} partition")), "{err}");
        }
        for bad in ["", "us-east", "US-EAST-1", "useast1", "us-east-1a", "us east 1"] {
            assert!(validate_region(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_long_suffix_is_refused_naming_the_bucket_rule() {
        let err = validate_suffix(&"a".repeat(30), "us-east-1").unwrap_err().to_string();
        assert!(err.contains("--suffix") && err.contains("S3 bucket"), "{err}");
    }
}

#[cfg(test)]
mod backup_flag_tests {
    use super::*;

    fn rule_of(e: Error) -> (String, String) {
        match e {
            Error::Invalid { field, rule } => (field, rule),
            other => panic!("not a refusal of a flag: {other:?}"),
        }
    }

    #[test]
    fn backup_retention_is_at_least_a_day_and_at_most_a_century() {
        assert!(validate_backup_retention(1).is_ok());
        assert!(validate_backup_retention(DEFAULT_BACKUP_RETENTION_DAYS).is_ok());
        assert!(validate_backup_retention(36_500).is_ok());
        for bad in [0, -3, 36_501] {
            let (field, rule) = rule_of(validate_backup_retention(bad).unwrap_err());
            assert_eq!(field, "--backup-retention-days");
            assert!(rule.contains("between 1 and 36500") && rule.contains(&format!("got {bad}")), "{rule}");
        }
        let args = StackOverrides { backup_retention_days: Some(0), ..Default::default() };
        assert_eq!(rule_of(validate_stack_args(&args).unwrap_err()).0, "--backup-retention-days");
    }

    #[test]
    fn the_copy_region_is_a_commercial_region_other_than_the_stacks() {
        assert!(validate_backup_copy_region(None, Some("us-east-1")).is_ok());
        assert!(validate_backup_copy_region(Some(""), Some("us-east-1")).is_ok(), "empty: no copies");
        assert!(validate_backup_copy_region(Some("us-west-2"), Some("us-east-1")).is_ok());
        let (field, rule) = rule_of(validate_backup_copy_region(Some("us-east-1"), Some("us-east-1")).unwrap_err());
        assert_eq!(field, "--backup-copy-region");
        assert!(rule.contains("the stack's own region"), "{rule}");
        for bad in ["mars-1", "US-WEST-2", "cn-north-1"] {
            let (field, _) = rule_of(validate_backup_copy_region(Some(bad), None).unwrap_err());
            assert_eq!(field, "--backup-copy-region", "{bad}");
        }
        // --region's own errors still name --region.
        assert_eq!(rule_of(validate_region("mars-1").unwrap_err()).0, "--region");
    }

    #[test]
    fn backup_settings_default_are_recorded_and_named_when_changed() {
        let d = StackSettings::default();
        assert_eq!((d.backup_retention_days, d.backup_copy_region.clone()), (35, None));
        let old: StackSettings = serde_json::from_value(serde_json::json!({
            "vpc_cidr": "10.0.0.0/16", "cost_center": "payments", "kms_deletion_window_days": 30
        }))
        .unwrap();
        assert_eq!(old.backup_retention_days, 35, "a state from before backups reads the default");
        let new =
            StackSettings { backup_retention_days: 90, backup_copy_region: Some("us-west-2".into()), ..d.clone() };
        let changes = new.changes_from(&d);
        assert!(changes.contains(&("--backup-retention-days", "35".into(), "90".into())), "{changes:?}");
        assert!(changes.contains(&("--backup-copy-region", "none".into(), "us-west-2".into())), "{changes:?}");
    }
}

/// `--database` of `tapctl local`: `postgres://HOST:PORT[/DB][?sslrootcert=PATH]`. The user,
/// password and database name stay the functions' own (from the stack's secrets and parameters):
/// only where to connect changes.
pub fn parse_local_database(s: &str) -> Result<crate::local::server::Database, String> {
    let rule = "it must look like postgres://HOST:PORT[/?sslrootcert=CA-FILE] (no user or password: the functions \
                sign in as they do on AWS)";
    let rest = s
        .strip_prefix("postgres://")
        .or_else(|| s.strip_prefix("postgresql://"))
        .ok_or_else(|| format!("'{s}' is not a PostgreSQL URL: {rule}"))?;
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(format!("--database carries credentials: {rule}"));
    }
    let (host, port) = authority.rsplit_once(':').ok_or_else(|| format!("'{s}' has no port: {rule}"))?;
    let port: u16 = port.parse().map_err(|_| format!("'{port}' is not a port (1-65535): {rule}"))?;
    if host.is_empty() || port == 0 {
        return Err(format!("'{s}' has no host or port: {rule}"));
    }
    let ca_bundle = tail
        .split_once('?')
        .map(|(_, q)| q)
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("sslrootcert="))
        .map(std::path::PathBuf::from);
    Ok(crate::local::server::Database { host: host.to_string(), port, ca_bundle })
}
