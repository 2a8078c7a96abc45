//! `account.controls`: the account's detective controls (PCI DSS v4.0.1 10.4.1, 10.4.1.1, 11.5.1,
//! 10.7.2, 2.2, 6.3, 12.4) — GuardDuty, Security Hub and an AWS Config recorder — turned on where
//! the region has none, and never touched where it has.
//!
//! Each of them is one per account and region, shared by every stack there and by whatever else
//! the account runs, so tapctl keeps, in the account itself, a record of what it turned on and of
//! the stacks that use it: the SSM parameter `/tapctl/account-controls` (JSON: the suffixes of the
//! stacks, and which of the detector, the hub with its two standards, and the Config recorder with
//! its delivery channel, bucket and key tapctl turned on). It is read back on every run; the
//! state file is never asked who owns them.
//!
//! Guarantees (what a run of this node promises, in kube-runtime's manner):
//! - `up` lists its stack in the record first, and claims what is absent in the record *before*
//!   the call that turns it on: a run killed in between finds it claimed, and finishes it, instead
//!   of taking its own detector for the account's.
//! - What tapctl did not turn on is never changed: an existing detector (whatever its features), an
//!   existing hub (whatever its standards — none is added), an existing recorder or delivery
//!   channel. They are reported as the account's, not tapctl's (like `api.account-logging`).
//! - What tapctl turned on is kept as wanted: a deleted detector, a feature or a standard turned
//!   off, a stopped recorder, a missing channel, bucket or key is drift that `plan` names and `up`
//!   repairs. A control of the account's that disappears is absent: `up` turns on its own.
//! - `destroy` takes its stack off the list, first. While another stack is listed, nothing else
//!   is touched. The last stack turns off what tapctl turned on, and only that: Security Hub
//!   (which disables its standards), the detector, the recorder and its channel, the bucket (emptied)
//!   and the key (scheduled for deletion); the record goes last. A destroy killed on the way
//!   leaves a record with no stack and something still claimed: the next `destroy` of any stack
//!   finishes the job, and the next `up` of any stack adopts it as tapctl's.
//! - The bucket and key are the account's, not a stack's (`tapctl-config-<account>-<region>`,
//!   `alias/tapctl-account-controls`): a stack's key scheduled for deletion would stop the delivery
//!   for every other stack.
//! - `--no-account-controls`: no call at all to GuardDuty, Security Hub or AWS Config (not even a
//!   read), nor to the record. A stack listed in the record that runs with the flag stays listed:
//!   the controls stay on, and `destroy --no-account-controls` leaves them; a later `destroy`
//!   without the flag (the record names the stack, a state is not needed) takes it off the list.
//!
//! Not covered: the record is one parameter written without a lock, so two stacks listing
//! themselves at the same instant could lose one of the two names (the loser's next `up` lists it
//! again). A run killed between CreateKey and CreateAlias leaves a key without the alias.

use crate::aws::{AlreadyExistsExt, AwsError, AwsResultExt, NotFoundExt};
use crate::engine::wait::WaitPolicy;
use crate::names::{tag, Names};
use crate::resources::retry::{catalogue, Readiness};
use crate::resources::storage::{empty, policy};
use crate::resources::{listed, Change, Ctx, Drift, Outputs, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_config::types::{ConfigurationRecorder, DeliveryChannel, RecordingGroup};
use aws_sdk_guardduty::types::{DetectorFeature, DetectorFeatureConfiguration, DetectorStatus, FeatureStatus};
use aws_sdk_securityhub::types::{StandardsStatus, StandardsSubscriptionRequest};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

pub struct AccountControls;

pub const ID: &str = "account.controls";
/// The account's record of what tapctl turned on, and of the stacks that use it.
pub const RECORD: &str = "/tapctl/account-controls";
/// Names of the recorder and delivery channel tapctl makes.
pub const RECORDER: &str = "tapctl";
pub const CHANNEL: &str = "tapctl";
pub const KEY_ALIAS: &str = "alias/tapctl-account-controls";
/// AWS Config's service-linked role (using-service-linked-roles-config.html).
pub const CONFIG_ROLE: &str = "AWSServiceRoleForConfig";
pub const CONFIG_SERVICE: &str = "config.amazonaws.com";

/// The GuardDuty protection plans turned on (API_DetectorFeatureConfiguration), in words.
pub const FEATURES: [(&str, &str); 3] = [
    ("LAMBDA_NETWORK_LOGS", "Lambda network logs"),
    ("RDS_LOGIN_EVENTS", "RDS login events"),
    ("S3_DATA_EVENTS", "S3 data events"),
];

/// The bucket AWS Config delivers the configuration history to: the account's, no suffix.
pub fn config_bucket(names: &Names) -> String {
    format!("tapctl-config-{}-{}", names.account, names.region)
}

/// The Security Hub standards turned on with the hub (Security Hub's "Standards reference"):
/// (standards ARN, in words).
pub fn standards(region: &str) -> [(String, &'static str); 2] {
    [
        (format!("arn:aws:securityhub:{region}::standards/pci-dss/v/4.0.1"), "PCI DSS v4.0.1"),
        (
            format!("arn:aws:securityhub:{region}::standards/aws-foundational-security-best-practices/v/1.0.0"),
            "AWS Foundational Security Best Practices v1.0.0",
        ),
    ]
}

/// The warning of `plan` and `up` when the controls are the operator's to run.
pub fn warning(config: &crate::config::StackConfig) -> Option<String> {
    (!config.account_controls).then(|| {
        "the account's detective controls (GuardDuty, Security Hub, AWS Config) are left to the operator \
         (--no-account-controls): tapctl neither reads nor changes them"
            .to_string()
    })
}

/// What `/tapctl/account-controls` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The suffixes of the stacks that use the controls.
    #[serde(default)]
    pub stacks: BTreeSet<String>,
    /// tapctl made the region's GuardDuty detector.
    #[serde(default)]
    pub guardduty: bool,
    /// tapctl enabled Security Hub, and with it these standards (ARNs).
    #[serde(default)]
    pub security_hub: bool,
    #[serde(default)]
    pub standards: BTreeSet<String>,
    /// tapctl made the Config recorder, its delivery channel, bucket and key.
    #[serde(default)]
    pub config: bool,
}

impl Record {
    fn claims_anything(&self) -> bool {
        self.guardduty || self.security_hub || !self.standards.is_empty() || self.config
    }
}

#[derive(Debug, Clone)]
pub struct Detector {
    pub id: String,
    pub enabled: bool,
    /// Feature name → on.
    pub features: BTreeMap<String, bool>,
}

#[derive(Debug, Clone)]
pub struct Recorder {
    pub name: String,
    pub all_supported: bool,
    pub global: bool,
    pub recording: bool,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub bucket: Option<String>,
}

/// The key behind the alias.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub arn: String,
    /// Enabled (not pending deletion, not disabled).
    pub usable: bool,
}

/// What the account holds.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub record: Option<Record>,
    pub detector: Option<Detector>,
    pub hub: bool,
    /// Standards ARN → status (READY, PENDING…).
    pub standards: BTreeMap<String, String>,
    pub recorder: Option<Recorder>,
    pub channel: Option<Channel>,
    /// Read only when tapctl claims the recorder.
    pub bucket: bool,
    pub key: Option<Key>,
}

pub enum Observed {
    /// `--no-account-controls`: nothing was read.
    LeftToOperator,
    Account(Box<Seen>),
}

fn region_tags() -> Vec<(String, String)> {
    [(tag::PROJECT, "payments"), (tag::MANAGED_BY, "tapctl"), (tag::RESOURCE, ID)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tag_map() -> HashMap<String, String> {
    region_tags().into_iter().collect()
}

/// Security Hub's answer to any call but EnableSecurityHub while the account is not subscribed.
fn not_subscribed(e: &AwsError) -> bool {
    e.code_is("InvalidAccessException") && e.message.contains("not subscribed")
}

fn internal(e: impl std::fmt::Display) -> ResourceError {
    ResourceError::new("Internal", e.to_string())
}

async fn read_record(ctx: &Ctx) -> Result<Option<Record>> {
    let out = ctx.clients.ssm.get_parameter().name(RECORD).send().await.aws("ssm:GetParameter").ok_if_not_found()?;
    let Some(value) = out.and_then(|o| o.parameter().and_then(|p| p.value()).map(str::to_string)) else {
        return Ok(None);
    };
    serde_json::from_str(&value).map(Some).map_err(|e| {
        ResourceError::new(
            "InvalidRecord",
            format!("parameter {RECORD} is not tapctl's record of the account's controls: {e}"),
        )
        .with_hint("it is written by tapctl only: restore its last version (SSM keeps them) or delete it")
    })
}

async fn write_record(ctx: &Ctx, record: &Record, exists: bool) -> Result<()> {
    let value = serde_json::to_string(record).map_err(internal)?;
    let ssm = &ctx.clients.ssm;
    if !exists {
        // Tags only on creation (SSM refuses them with Overwrite).
        let tags: Vec<aws_sdk_ssm::types::Tag> = region_tags()
            .into_iter()
            .filter_map(|(k, v)| aws_sdk_ssm::types::Tag::builder().key(k).value(v).build().ok())
            .collect();
        let made = ssm
            .put_parameter()
            .name(RECORD)
            .description("What tapctl turned on of the account's detective controls, and the stacks using them")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .value(&value)
            .set_tags(Some(tags))
            .send()
            .await
            .aws("ssm:PutParameter")
            .ok_if_exists()?;
        if made.is_some() {
            return Ok(());
        }
    }
    ssm.put_parameter()
        .name(RECORD)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .value(&value)
        .overwrite(true)
        .send()
        .await
        .aws("ssm:PutParameter")?;
    Ok(())
}

async fn read_detector(ctx: &Ctx) -> Result<Option<Detector>> {
    let gd = &ctx.clients.guardduty;
    let ids = gd.list_detectors().send().await.aws("guardduty:ListDetectors")?;
    // One detector per account and region (GuardDuty's API_CreateDetector).
    let Some(id) = ids.detector_ids().first().cloned() else { return Ok(None) };
    let Some(d) = gd.get_detector().detector_id(&id).send().await.aws("guardduty:GetDetector").ok_if_not_found()?
    else {
        return Ok(None);
    };
    let features = d
        .features()
        .iter()
        .filter_map(|f| Some((f.name()?.as_str().to_string(), f.status() == Some(&FeatureStatus::Enabled))))
        .collect();
    Ok(Some(Detector { id, enabled: d.status() == Some(&DetectorStatus::Enabled), features }))
}

async fn read_hub(ctx: &Ctx) -> Result<bool> {
    match ctx.clients.securityhub.describe_hub().send().await.aws("securityhub:DescribeHub") {
        Ok(_) => Ok(true),
        Err(e) if not_subscribed(&e) || e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn read_standards(ctx: &Ctx) -> Result<BTreeMap<String, String>> {
    let mut found = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let out = match ctx
            .clients
            .securityhub
            .get_enabled_standards()
            .set_next_token(token.clone())
            .send()
            .await
            .aws("securityhub:GetEnabledStandards")
        {
            Ok(o) => o,
            Err(e) if not_subscribed(&e) => return Ok(found),
            Err(e) => return Err(e.into()),
        };
        for s in out.standards_subscriptions() {
            if let Some(arn) = s.standards_arn() {
                found.insert(arn.to_string(), s.standards_status().map_or("unknown", |s| s.as_str()).to_string());
            }
        }
        token = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            return Ok(found);
        }
    }
}

async fn read_recorder(ctx: &Ctx) -> Result<Option<Recorder>> {
    let cfg = &ctx.clients.config;
    let out = cfg.describe_configuration_recorders().send().await.aws("config:DescribeConfigurationRecorders")?;
    // The customer-managed recorder (one per region); service-linked recorders, which other AWS
    // services make for themselves (servicePrincipal set), are not the account's recording.
    let Some(r) = out.configuration_recorders().iter().find(|r| r.service_principal().is_none()) else {
        return Ok(None);
    };
    let name = r.name().unwrap_or_default().to_string();
    let group = r.recording_group();
    let status = cfg
        .describe_configuration_recorder_status()
        .configuration_recorder_names(&name)
        .send()
        .await
        .aws("config:DescribeConfigurationRecorderStatus")?;
    Ok(Some(Recorder {
        recording: status.configuration_recorders_status().first().is_some_and(|s| s.recording()),
        all_supported: group.is_some_and(|g| g.all_supported()),
        global: group.is_some_and(|g| g.include_global_resource_types()),
        name,
    }))
}

async fn read_channel(ctx: &Ctx) -> Result<Option<Channel>> {
    let out = ctx.clients.config.describe_delivery_channels().send().await.aws("config:DescribeDeliveryChannels")?;
    Ok(out.delivery_channels().first().map(|c| Channel {
        name: c.name().unwrap_or_default().to_string(),
        bucket: c.s3_bucket_name().map(str::to_string),
    }))
}

async fn read_bucket(ctx: &Ctx, b: &str) -> Result<bool> {
    match ctx.clients.s3.head_bucket().bucket(b).send().await.aws("s3:HeadBucket") {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() || e.code_is("NoSuchBucket") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn read_key(ctx: &Ctx) -> Result<Option<Key>> {
    let out = ctx.clients.kms.describe_key().key_id(KEY_ALIAS).send().await.aws("kms:DescribeKey").ok_if_not_found()?;
    Ok(out.and_then(|o| o.key_metadata().cloned()).map(|m| Key {
        id: m.key_id().to_string(),
        arn: m.arn().unwrap_or_default().to_string(),
        usable: m.key_state() == Some(&aws_sdk_kms::types::KeyState::Enabled),
    }))
}

/// Everything the node looks at, read at once.
async fn read(ctx: &Ctx) -> Result<Seen> {
    let (record, detector, hub, recorder, channel) =
        futures::try_join!(read_record(ctx), read_detector(ctx), read_hub(ctx), read_recorder(ctx), read_channel(ctx))?;
    let claims_config = record.as_ref().is_some_and(|r| r.config);
    let bucket = config_bucket(&ctx.names);
    let (standards, bucket, key) = futures::try_join!(
        async {
            if hub {
                read_standards(ctx).await
            } else {
                Ok(BTreeMap::new())
            }
        },
        async {
            if claims_config {
                read_bucket(ctx, &bucket).await
            } else {
                Ok(false)
            }
        },
        async {
            if claims_config {
                read_key(ctx).await
            } else {
                Ok(None)
            }
        },
    )?;
    Ok(Seen { record, detector, hub, standards, recorder, channel, bucket, key })
}

/// A standard's status as a readiness: exhaustive, and a status tapctl does not know is not ready.
/// INCOMPLETE is enabled, with some controls that could not be (terraform's
/// `waitStandardsSubscriptionCreated` takes it as created too): waiting does not change it.
fn standard_readiness(status: &str) -> Readiness<()> {
    match StandardsStatus::from(status) {
        StandardsStatus::Ready | StandardsStatus::Incomplete => Readiness::Ready(()),
        StandardsStatus::Pending | StandardsStatus::Deleting => Readiness::Pending(status.to_lowercase()),
        StandardsStatus::Failed => Readiness::Failed("status FAILED".into()),
        _ => Readiness::Pending(format!("status {status}")),
    }
}

/// How long Security Hub takes to enable a standard: minutes (Security Hub user guide, "Enabling a
/// security standard": the status is PENDING, then READY).
const STANDARDS_READY: Duration = Duration::from_secs(10 * 60);

fn wanted_hub(region: &str) -> String {
    format!("enabled, with {}", listed(standards(region).iter().map(|(_, l)| *l)))
}

fn wanted_detector() -> String {
    format!("enabled, with {}", listed(FEATURES.iter().map(|(_, l)| *l)))
}

/// How the account differs from what this stack wants of it.
pub fn drifts(names: &Names, s: &Seen) -> Vec<Drift> {
    let rec = s.record.clone().unwrap_or_default();
    let mut d = Vec::new();
    if !rec.stacks.contains(&names.suffix) {
        let mut with = rec.stacks.clone();
        with.insert(names.suffix.clone());
        d.push(Drift::new(
            format!("stacks using the account's detective controls ({RECORD})"),
            listed(&rec.stacks),
            listed(&with),
        ));
    }
    match &s.detector {
        None => d.push(Drift::missing("GuardDuty detector", wanted_detector())),
        Some(det) if rec.guardduty => {
            if !det.enabled {
                d.push(Drift::new(format!("GuardDuty detector {}", det.id), "suspended", "enabled"));
            }
            for (feature, words) in FEATURES {
                if !det.features.get(feature).copied().unwrap_or(false) {
                    d.push(Drift::new(format!("GuardDuty {words}"), "off", "on"));
                }
            }
        }
        Some(_) => {}
    }
    if !s.hub {
        d.push(Drift::missing("Security Hub", wanted_hub(&names.region)));
    } else if rec.security_hub {
        for (arn, words) in standards(&names.region) {
            if !rec.standards.contains(&arn) {
                continue;
            }
            match s.standards.get(&arn).map(String::as_str) {
                None => d.push(Drift::new(format!("Security Hub standard {words}"), "disabled", "enabled")),
                Some("FAILED") => d.push(Drift::new(format!("Security Hub standard {words}"), "failed", "enabled")),
                Some(_) => {}
            }
        }
    }
    let bucket = config_bucket(names);
    match &s.recorder {
        None => d.push(Drift::missing(
            "AWS Config recorder",
            format!("recording all resource types, global ones included, into bucket {bucket}"),
        )),
        Some(r) if rec.config => {
            if !(r.all_supported && r.global) {
                d.push(Drift::new(
                    format!("AWS Config recorder {} records", r.name),
                    "some resource types",
                    "all resource types, global ones included",
                ));
            }
            match &s.channel {
                None => d.push(Drift::missing("AWS Config delivery channel", format!("into bucket {bucket}"))),
                Some(c) if c.bucket.as_deref() != Some(bucket.as_str()) => d.push(Drift::new(
                    format!("AWS Config delivery channel {} bucket", c.name),
                    c.bucket.as_deref().unwrap_or("none"),
                    &bucket,
                )),
                Some(_) => {}
            }
            if !s.bucket {
                d.push(Drift::missing(format!("bucket {bucket}"), format!("encrypted with key {KEY_ALIAS}")));
            }
            if !s.key.as_ref().is_some_and(|k| k.usable) {
                d.push(Drift::missing(format!("key {KEY_ALIAS}"), "a customer key with rotation"));
            }
            if !r.recording {
                d.push(Drift::new(format!("AWS Config recorder {}", r.name), "stopped", "recording"));
            }
        }
        Some(_) => {}
    }
    d
}

/// Who runs a control, in words.
fn owner(claimed: bool, present: bool) -> &'static str {
    match (claimed, present) {
        (true, _) => "turned on by tapctl",
        (false, true) => "the account's, not tapctl's",
        (false, false) => "absent",
    }
}

fn outputs_of(names: &Names, s: &Seen) -> Outputs {
    let rec = s.record.clone().unwrap_or_default();
    Outputs::from([
        ("guardduty".into(), json!(owner(rec.guardduty, s.detector.is_some()))),
        ("security_hub".into(), json!(owner(rec.security_hub, s.hub))),
        ("config".into(), json!(owner(rec.config, s.recorder.is_some()))),
        ("config_bucket_name".into(), if rec.config { json!(config_bucket(names)) } else { Value::Null }),
        ("record_name".into(), json!(RECORD)),
    ])
}

fn left_to_operator() -> Outputs {
    let left = json!("left to the operator (--no-account-controls)");
    Outputs::from([("guardduty".into(), left.clone()), ("security_hub".into(), left.clone()), ("config".into(), left)])
}

fn detector_features() -> Vec<DetectorFeatureConfiguration> {
    FEATURES
        .iter()
        .map(|(f, _)| {
            DetectorFeatureConfiguration::builder()
                .name(DetectorFeature::from(*f))
                .status(FeatureStatus::Enabled)
                .build()
        })
        .collect()
}

async fn ensure_detector(ctx: &Ctx, s: &mut Seen) -> Result<()> {
    let gd = &ctx.clients.guardduty;
    let all_on = || FEATURES.iter().map(|(f, _)| (f.to_string(), true)).collect::<BTreeMap<_, _>>();
    match &s.detector {
        None => {
            ctx.progress.step(&format!("turning on GuardDuty ({})", wanted_detector()));
            let out = gd
                .create_detector()
                .enable(true)
                .set_features(Some(detector_features()))
                .set_tags(Some(tag_map()))
                .send()
                .await
                .aws("guardduty:CreateDetector")?;
            let id = out.detector_id().unwrap_or_default().to_string();
            s.detector = Some(Detector { id, enabled: true, features: all_on() });
        }
        Some(d) if !d.enabled || FEATURES.iter().any(|(f, _)| !d.features.get(*f).copied().unwrap_or(false)) => {
            ctx.progress.step(&format!("turning GuardDuty detector {} back on ({})", d.id, wanted_detector()));
            gd.update_detector()
                .detector_id(&d.id)
                .enable(true)
                .set_features(Some(detector_features()))
                .send()
                .await
                .aws("guardduty:UpdateDetector")?;
            s.detector = Some(Detector { id: d.id.clone(), enabled: true, features: all_on() });
        }
        Some(_) => {}
    }
    Ok(())
}

async fn ensure_hub(ctx: &Ctx, s: &mut Seen, claimed: &BTreeSet<String>) -> Result<()> {
    let sh = &ctx.clients.securityhub;
    if !s.hub {
        ctx.progress.step("turning on Security Hub (without its default standards)");
        // The default standards are not the ones PCI DSS asks for; ours are enabled below.
        match sh
            .enable_security_hub()
            .enable_default_standards(false)
            .set_tags(Some(tag_map()))
            .send()
            .await
            .aws("securityhub:EnableSecurityHub")
        {
            Ok(_) => {}
            // Subscribed already: a run killed after this call.
            Err(e) if e.code_is("ResourceConflictException") => {}
            Err(e) => return Err(e.into()),
        }
        s.hub = true;
    }
    let wanted: Vec<(String, &str)> =
        standards(&ctx.config.region).into_iter().filter(|(arn, _)| claimed.contains(arn)).collect();
    let missing: Vec<&(String, &str)> = wanted
        .iter()
        .filter(|(arn, _)| matches!(s.standards.get(arn).map(String::as_str), None | Some("FAILED")))
        .collect();
    if !missing.is_empty() {
        ctx.progress.step(&format!("enabling the Security Hub standards {}", listed(missing.iter().map(|(_, w)| *w))));
        let requests: Vec<StandardsSubscriptionRequest> =
            missing.iter().map(|(arn, _)| StandardsSubscriptionRequest::builder().standards_arn(arn).build()).collect();
        ctx.retry_while_propagating(&catalogue::SECURITYHUB_NEW_HUB, "Security Hub", || {
            sh.batch_enable_standards()
                .set_standards_subscription_requests(Some(requests.clone()))
                .send()
                .map(|r| r.aws("securityhub:BatchEnableStandards"))
        })
        .await?;
    }
    let ready = |found: &BTreeMap<String, String>| {
        wanted
            .iter()
            .all(|(arn, _)| found.get(arn).is_some_and(|st| matches!(standard_readiness(st), Readiness::Ready(_))))
    };
    if !ready(&s.standards) {
        let found = ctx
            .until_ready("the Security Hub standards", WaitPolicy::new(STANDARDS_READY), || async {
                let found = read_standards(ctx).await?;
                let mut pending = Vec::new();
                for (arn, words) in &wanted {
                    match found.get(arn).map(|st| (st, standard_readiness(st))) {
                        Some((_, Readiness::Ready(_))) => {}
                        Some((_, Readiness::Failed(why))) => return Ok(Readiness::Failed(format!("{words}: {why}"))),
                        Some((st, _)) => pending.push(format!("{words} {}", st.to_lowercase())),
                        None => pending.push(format!("{words} not listed yet")),
                    }
                }
                Ok(if pending.is_empty() { Readiness::Ready(found) } else { Readiness::Pending(pending.join(", ")) })
            })
            .await?;
        s.standards = found;
    }
    Ok(())
}

/// The key's policy: the account administers it through IAM; AWS Config encrypts what it
/// delivers (s3-kms-key-policy: the service principal, for this account only); the account
/// reads the history through S3 only.
pub fn key_policy(account: &str, region: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Id": "tapctl-account-controls",
        "Statement": [
            {
                "Sid": "AccountAdministrationThroughIam",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": crate::resources::kms::ADMINISTRATION,
                "Resource": "*"
            },
            {
                "Sid": "ReadTheHistoryThroughS3Only",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": { "kms:CallerAccount": account, "kms:ViaService": format!("s3.{region}.amazonaws.com") }
                }
            },
            {
                "Sid": "AWSConfigEncryptsWhatItDelivers",
                "Effect": "Allow",
                "Principal": { "Service": CONFIG_SERVICE },
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": { "StringEquals": { "aws:SourceAccount": account } }
            }
        ]
    })
}

/// The bucket's policy: TLS only, and AWS Config's documented statements (s3-bucket-policy.html),
/// for this account only.
pub fn bucket_policy(names: &Names) -> Value {
    let b = config_bucket(names);
    let account = &names.account;
    let mut statements = policy::tls_only(&b);
    let only_this_account = json!({ "StringEquals": { "AWS:SourceAccount": account } });
    statements.extend([
        json!({
            "Sid": "AWSConfigBucketPermissionsCheck",
            "Effect": "Allow",
            "Principal": { "Service": CONFIG_SERVICE },
            "Action": "s3:GetBucketAcl",
            "Resource": policy::arn(&b),
            "Condition": only_this_account
        }),
        json!({
            "Sid": "AWSConfigBucketExistenceCheck",
            "Effect": "Allow",
            "Principal": { "Service": CONFIG_SERVICE },
            "Action": "s3:ListBucket",
            "Resource": policy::arn(&b),
            "Condition": only_this_account
        }),
        json!({
            "Sid": "AWSConfigBucketDelivery",
            "Effect": "Allow",
            "Principal": { "Service": CONFIG_SERVICE },
            "Action": "s3:PutObject",
            "Resource": format!("{}/AWSLogs/{account}/Config/*", policy::arn(&b)),
            "Condition": { "StringEquals": { "s3:x-amz-acl": "bucket-owner-full-control", "AWS:SourceAccount": account } }
        }),
    ]);
    policy::document(statements)
}

/// The service-linked role the recorder records with: made when the account has none
/// (CreateServiceLinkedRole; AWS Config's guide, "Using Service-Linked Roles"). Kept on destroy:
/// AWS Config itself makes it on first use, other services' recorders may use it, and IAM deletes
/// a service-linked role only once no recorder uses it.
async fn config_role(ctx: &Ctx) -> Result<String> {
    let iam = &ctx.clients.iam;
    let found = iam.get_role().role_name(CONFIG_ROLE).send().await.aws("iam:GetRole").ok_if_not_found()?;
    if let Some(arn) = found.and_then(|r| r.role().map(|r| r.arn().to_string())) {
        return Ok(arn);
    }
    ctx.progress.step(&format!("creating AWS Config's service-linked role {CONFIG_ROLE}"));
    let made = iam
        .create_service_linked_role()
        .aws_service_name(CONFIG_SERVICE)
        .send()
        .await
        .aws("iam:CreateServiceLinkedRole");
    match made {
        Ok(out) => Ok(out.role().map(|r| r.arn().to_string()).unwrap_or_default()),
        // "has been taken": made meanwhile (by AWS Config, or a killed run).
        Err(e) if e.code_is("InvalidInput") && e.message.contains("taken") => {
            Ok(format!("arn:aws:iam::{}:role/aws-service-role/{CONFIG_SERVICE}/{CONFIG_ROLE}", ctx.names.account))
        }
        Err(e) => Err(e.into()),
    }
}

async fn ensure_key(ctx: &Ctx, s: &mut Seen) -> Result<String> {
    if let Some(k) = s.key.as_ref().filter(|k| k.usable) {
        return Ok(k.arn.clone());
    }
    let kms = &ctx.clients.kms;
    ctx.progress.step(&format!("creating the account-level key {KEY_ALIAS} for AWS Config's deliveries"));
    let tags: Vec<aws_sdk_kms::types::Tag> = region_tags()
        .into_iter()
        .filter_map(|(k, v)| aws_sdk_kms::types::Tag::builder().tag_key(k).tag_value(v).build().ok())
        .collect();
    let made = kms
        .create_key()
        .description("tapctl: encrypts AWS Config's configuration history (the account's, shared by every stack)")
        .policy(key_policy(&ctx.names.account, &ctx.names.region).to_string())
        .set_tags(Some(tags))
        .send()
        .await
        .aws("kms:CreateKey")?;
    let meta = made.key_metadata().ok_or_else(|| internal("kms:CreateKey returned no key"))?;
    let (id, arn) = (meta.key_id().to_string(), meta.arn().unwrap_or_default().to_string());
    kms.enable_key_rotation().key_id(&id).send().await.aws("kms:EnableKeyRotation")?;
    // The alias may still name a key pending deletion (a destroy, then an up): point it here.
    let created = kms.create_alias().alias_name(KEY_ALIAS).target_key_id(&id).send().await.aws("kms:CreateAlias");
    match created {
        Ok(_) => {}
        Err(e) if e.is_already_exists() => {
            kms.update_alias().alias_name(KEY_ALIAS).target_key_id(&id).send().await.aws("kms:UpdateAlias")?;
        }
        Err(e) => return Err(e.into()),
    }
    s.key = Some(Key { id, arn: arn.clone(), usable: true });
    Ok(arn)
}

async fn ensure_bucket(ctx: &Ctx, s: &mut Seen, key: &str) -> Result<()> {
    if s.bucket {
        return Ok(());
    }
    use aws_sdk_s3::types::{
        BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration, ServerSideEncryption,
        ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
    };
    let s3 = &ctx.clients.s3;
    let b = config_bucket(&ctx.names);
    ctx.progress.step(&format!("creating bucket {b} for AWS Config's deliveries"));
    let mut create = s3.create_bucket().bucket(&b);
    if ctx.config.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(ctx.config.region.as_str()))
                .build(),
        );
    }
    create.send().await.aws("s3:CreateBucket").ok_if_exists()?;
    let pab = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    let retry = &catalogue::S3_NEW_BUCKET;
    ctx.retry_while_propagating(retry, &b, || {
        s3.put_public_access_block()
            .bucket(&b)
            .public_access_block_configuration(pab.clone())
            .send()
            .map(|r| r.aws("s3:PutPublicAccessBlock"))
    })
    .await?;
    let default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id(key)
        .build()
        .map_err(internal)?;
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(default)
                .bucket_key_enabled(true)
                .build(),
        )
        .build()
        .map_err(internal)?;
    ctx.retry_while_propagating(retry, &b, || {
        s3.put_bucket_encryption()
            .bucket(&b)
            .server_side_encryption_configuration(encryption.clone())
            .send()
            .map(|r| r.aws("s3:PutBucketEncryption"))
    })
    .await?;
    let policy = bucket_policy(&ctx.names).to_string();
    ctx.retry_while_propagating(retry, &b, || {
        s3.put_bucket_policy().bucket(&b).policy(&policy).send().map(|r| r.aws("s3:PutBucketPolicy"))
    })
    .await?;
    let tags: Vec<Tag> =
        region_tags().into_iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
    let tagging = Tagging::builder().set_tag_set(Some(tags)).build().map_err(internal)?;
    ctx.retry_while_propagating(retry, &b, || {
        s3.put_bucket_tagging().bucket(&b).tagging(tagging.clone()).send().map(|r| r.aws("s3:PutBucketTagging"))
    })
    .await?;
    s.bucket = true;
    Ok(())
}

async fn ensure_config(ctx: &Ctx, s: &mut Seen) -> Result<()> {
    let cfg = &ctx.clients.config;
    let b = config_bucket(&ctx.names);
    let key = ensure_key(ctx, s).await?;
    ensure_bucket(ctx, s, &key).await?;
    // The recorder before the channel: PutDeliveryChannel answers NoAvailableConfigurationRecorder
    // without one (API_PutDeliveryChannel).
    let recorder = s.recorder.as_ref().map_or_else(|| RECORDER.to_string(), |r| r.name.clone());
    if s.recorder.as_ref().is_none_or(|r| !(r.all_supported && r.global)) {
        let role = config_role(ctx).await?;
        ctx.progress.step(&format!("recording every resource type, global ones included, with recorder {recorder}"));
        let group = RecordingGroup::builder().all_supported(true).include_global_resource_types(true).build();
        let r = ConfigurationRecorder::builder().name(&recorder).role_arn(role).recording_group(group).build();
        cfg.put_configuration_recorder()
            .configuration_recorder(r)
            .send()
            .await
            .aws("config:PutConfigurationRecorder")?;
        let recording = s.recorder.as_ref().is_some_and(|r| r.recording);
        s.recorder = Some(Recorder { name: recorder.clone(), all_supported: true, global: true, recording });
    }
    if s.channel.as_ref().is_none_or(|c| c.bucket.as_deref() != Some(b.as_str())) {
        let name = s.channel.as_ref().map_or_else(|| CHANNEL.to_string(), |c| c.name.clone());
        ctx.progress.step(&format!("delivering the configuration history to bucket {b} (channel {name})"));
        let channel = DeliveryChannel::builder().name(&name).s3_bucket_name(&b).s3_kms_key_arn(&key).build();
        ctx.retry_while_propagating(&catalogue::CONFIG_DELIVERY, &b, || {
            cfg.put_delivery_channel()
                .delivery_channel(channel.clone())
                .send()
                .map(|r| r.aws("config:PutDeliveryChannel"))
        })
        .await?;
        s.channel = Some(Channel { name, bucket: Some(b.clone()) });
    }
    if s.recorder.as_ref().is_some_and(|r| !r.recording) {
        ctx.progress.step(&format!("starting recorder {recorder}"));
        cfg.start_configuration_recorder()
            .configuration_recorder_name(&recorder)
            .send()
            .await
            .aws("config:StartConfigurationRecorder")?;
        if let Some(r) = s.recorder.as_mut() {
            r.recording = true;
        }
    }
    Ok(())
}

/// Turns off what tapctl turned on; each step finds its part gone when a killed run did it.
async fn turn_off(ctx: &Ctx, s: &Seen, rec: &Record) -> Result<()> {
    if rec.security_hub && s.hub {
        // Disabling the hub disables every standard of it (API_DisableSecurityHub).
        ctx.progress.step("turning off Security Hub (tapctl turned it on)");
        match ctx.clients.securityhub.disable_security_hub().send().await.aws("securityhub:DisableSecurityHub") {
            Ok(_) => {}
            Err(e) if not_subscribed(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if rec.guardduty {
        if let Some(d) = &s.detector {
            ctx.progress.step(&format!("deleting GuardDuty detector {} (tapctl made it)", d.id));
            ctx.clients
                .guardduty
                .delete_detector()
                .detector_id(&d.id)
                .send()
                .await
                .aws("guardduty:DeleteDetector")
                .ok_if_not_found()?;
        }
    }
    if rec.config {
        let cfg = &ctx.clients.config;
        if let Some(r) = &s.recorder {
            ctx.progress.step(&format!("stopping and deleting recorder {} (tapctl made it)", r.name));
            if r.recording {
                cfg.stop_configuration_recorder()
                    .configuration_recorder_name(&r.name)
                    .send()
                    .await
                    .aws("config:StopConfigurationRecorder")?;
            }
        }
        if let Some(c) = &s.channel {
            ctx.retry_while_propagating(&catalogue::CONFIG_CHANNEL_DELETE, &c.name, || {
                cfg.delete_delivery_channel()
                    .delivery_channel_name(&c.name)
                    .send()
                    .map(|r| r.aws("config:DeleteDeliveryChannel"))
            })
            .await?;
        }
        if let Some(r) = &s.recorder {
            cfg.delete_configuration_recorder()
                .configuration_recorder_name(&r.name)
                .send()
                .await
                .aws("config:DeleteConfigurationRecorder")?;
        }
        let b = config_bucket(&ctx.names);
        if s.bucket {
            ctx.progress.step(&format!("emptying and deleting bucket {b}"));
            empty::empty(ctx, &b, false).await?;
            match ctx.clients.s3.delete_bucket().bucket(&b).send().await.aws("s3:DeleteBucket") {
                Ok(_) => {}
                Err(e) if e.code_is("NoSuchBucket") => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(k) = &s.key {
            // Deletion first, then the alias: a run killed between finds the alias and deletes it.
            if k.usable {
                ctx.progress.step(&format!("scheduling the deletion of key {KEY_ALIAS}"));
                ctx.clients
                    .kms
                    .schedule_key_deletion()
                    .key_id(&k.id)
                    .pending_window_in_days(ctx.config.kms_deletion_window_days)
                    .send()
                    .await
                    .aws("kms:ScheduleKeyDeletion")?;
            }
            ctx.clients
                .kms
                .delete_alias()
                .alias_name(KEY_ALIAS)
                .send()
                .await
                .aws("kms:DeleteAlias")
                .ok_if_not_found()?;
        }
    }
    ctx.clients.ssm.delete_parameter().name(RECORD).send().await.aws("ssm:DeleteParameter").ok_if_not_found()?;
    Ok(())
}

#[async_trait]
impl Resource for AccountControls {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    /// The node is this stack's use of the account's controls: it exists while the record lists
    /// the stack — or lists no stack but still claims something (a last destroy that was killed),
    /// so that any `destroy` finishes it.
    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        if !ctx.config.account_controls {
            return Ok(Some(Observed::LeftToOperator));
        }
        let s = read(ctx).await?;
        let used = s
            .record
            .as_ref()
            .is_some_and(|r| r.stacks.contains(&ctx.names.suffix) || (r.stacks.is_empty() && r.claims_anything()));
        Ok(used.then(|| Observed::Account(Box::new(s))))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        Ok(match o {
            Observed::LeftToOperator => Change::NoOp,
            Observed::Account(s) => Change::from_drifts(drifts(&ctx.names, s)),
        })
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        match o {
            Observed::LeftToOperator => left_to_operator(),
            Observed::Account(s) => outputs_of(&ctx.names, s),
        }
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        if !ctx.config.account_controls {
            return Ok(left_to_operator());
        }
        let mut s = match observed {
            Some(Observed::LeftToOperator) => return Ok(left_to_operator()),
            Some(Observed::Account(s)) => *s,
            None => read(ctx).await?,
        };
        let mut rec = s.record.clone().unwrap_or_default();
        rec.stacks.insert(ctx.names.suffix.clone());
        // Claimed before the calls that turn them on (see the module's guarantees).
        if s.detector.is_none() {
            rec.guardduty = true;
        }
        if !s.hub {
            rec.security_hub = true;
            rec.standards = standards(&ctx.config.region).into_iter().map(|(arn, _)| arn).collect();
        }
        if s.recorder.is_none() {
            rec.config = true;
        }
        if s.record.as_ref() != Some(&rec) {
            ctx.progress.step(&format!(
                "recording in {RECORD} what tapctl turns on, and that stack {} uses it",
                ctx.names.suffix
            ));
            write_record(ctx, &rec, s.record.is_some()).await?;
            s.record = Some(rec.clone());
        }
        if rec.guardduty {
            ensure_detector(ctx, &mut s).await?;
        }
        if rec.security_hub {
            ensure_hub(ctx, &mut s, &rec.standards).await?;
        }
        if rec.config {
            ensure_config(ctx, &mut s).await?;
        }
        Ok(outputs_of(&ctx.names, &s))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let Observed::Account(s) = o else {
            ctx.progress.step(
                "the account's detective controls are left to the operator (--no-account-controls): if this stack is \
                 listed in the record, a destroy without the flag takes it off",
            );
            return Ok(());
        };
        let mut rec = s.record.clone().unwrap_or_default();
        // Off the list first: from here on a killed run has left the other stacks' list right.
        if rec.stacks.remove(&ctx.names.suffix) {
            write_record(ctx, &rec, true).await?;
        }
        if !rec.stacks.is_empty() {
            ctx.progress
                .step(&format!("keeping the account's detective controls: stacks {} use them", listed(&rec.stacks)));
            return Ok(());
        }
        turn_off(ctx, &s, &rec).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::assert_plain;

    fn names() -> Names {
        Names::new("qa", "us-east-1", Some("123456789012"))
    }

    fn all_on(stacks: &[&str]) -> Seen {
        let region = "us-east-1";
        Seen {
            record: Some(Record {
                stacks: stacks.iter().map(|s| s.to_string()).collect(),
                guardduty: true,
                security_hub: true,
                standards: standards(region).into_iter().map(|(a, _)| a).collect(),
                config: true,
            }),
            detector: Some(Detector {
                id: "d1".into(),
                enabled: true,
                features: FEATURES.iter().map(|(f, _)| (f.to_string(), true)).collect(),
            }),
            hub: true,
            standards: standards(region).into_iter().map(|(a, _)| (a, "READY".to_string())).collect(),
            recorder: Some(Recorder { name: RECORDER.into(), all_supported: true, global: true, recording: true }),
            channel: Some(Channel { name: CHANNEL.into(), bucket: Some(config_bucket(&names())) }),
            bucket: true,
            key: Some(Key { id: "k".into(), arn: "arn:aws:kms:us-east-1:123456789012:key/k".into(), usable: true }),
        }
    }

    #[test]
    fn what_tapctl_turned_on_drifts_in_the_operators_words() {
        assert!(drifts(&names(), &all_on(&["qa"])).is_empty());
        let mut s = all_on(&["qa"]);
        s.detector.as_mut().unwrap().features.insert("RDS_LOGIN_EVENTS".into(), false);
        s.standards.remove(&standards("us-east-1")[0].0);
        s.recorder.as_mut().unwrap().recording = false;
        let d = drifts(&names(), &s);
        let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            text,
            [
                "GuardDuty RDS login events: off → on",
                "Security Hub standard PCI DSS v4.0.1: disabled → enabled",
                "AWS Config recorder tapctl: stopped → recording",
            ]
        );
        assert_plain(&d.iter().collect::<Vec<_>>());
    }

    #[test]
    fn what_the_account_runs_is_never_drift_and_what_is_absent_is() {
        let mut theirs = all_on(&["qa"]);
        let rec = theirs.record.as_mut().unwrap();
        (rec.guardduty, rec.security_hub, rec.config) = (false, false, false);
        rec.standards.clear();
        theirs.detector.as_mut().unwrap().enabled = false;
        theirs.standards.clear();
        theirs.recorder.as_mut().unwrap().recording = false;
        theirs.channel = None;
        assert!(drifts(&names(), &theirs).is_empty(), "{:?}", drifts(&names(), &theirs));
        let none = Seen { record: None, ..Seen::default() };
        let text: Vec<String> = drifts(&names(), &none).iter().map(|d| d.field.clone()).collect();
        assert_eq!(
            text,
            [
                "stacks using the account's detective controls (/tapctl/account-controls)",
                "GuardDuty detector",
                "Security Hub",
                "AWS Config recorder"
            ]
        );
    }

    #[test]
    fn owners_read_the_same_whether_made_or_read_back() {
        let s = all_on(&["qa", "prod"]);
        let out = outputs_of(&names(), &s);
        assert_eq!(out["guardduty"], json!("turned on by tapctl"));
        assert_eq!(out["config_bucket_name"], json!("tapctl-config-123456789012-us-east-1"));
        let mut theirs = s.clone();
        theirs.record = Some(Record { stacks: BTreeSet::from(["qa".to_string()]), ..Record::default() });
        let out = outputs_of(&names(), &theirs);
        assert_eq!(out["security_hub"], json!("the account's, not tapctl's"));
        assert_eq!(out["config_bucket_name"], Value::Null);
    }

    #[test]
    fn a_standards_status_is_ready_only_when_aws_says_so() {
        assert!(matches!(standard_readiness("READY"), Readiness::Ready(_)));
        assert!(matches!(standard_readiness("INCOMPLETE"), Readiness::Ready(_)));
        assert!(matches!(standard_readiness("PENDING"), Readiness::Pending(_)));
        assert!(matches!(standard_readiness("DELETING"), Readiness::Pending(_)));
        assert!(matches!(standard_readiness("FAILED"), Readiness::Failed(_)));
        assert!(matches!(standard_readiness("SOMETHING_NEW"), Readiness::Pending(_)), "unknown is not ready");
    }

    #[test]
    fn the_record_reads_what_older_and_newer_records_hold() {
        let r: Record = serde_json::from_str(r#"{"stacks":["qa"],"guardduty":true,"future":1}"#).unwrap();
        assert_eq!(r.stacks, BTreeSet::from(["qa".to_string()]));
        assert!(r.guardduty && !r.config && r.claims_anything());
        assert!(!Record::default().claims_anything());
    }

    #[test]
    fn the_config_bucket_and_key_carry_no_suffix_and_admit_config_for_this_account_only() {
        let b = config_bucket(&names());
        assert!(!b.contains("qa"), "{b}");
        crate::names::Rule::S3Bucket.check(&b).unwrap();
        let p = bucket_policy(&names());
        let text = p.to_string();
        assert!(text.contains("AWSLogs/123456789012/Config/*") && text.contains("aws:SecureTransport"), "{text}");
        let k = key_policy("123456789012", "us-east-1");
        assert!(crate::resources::principals(&k).contains(CONFIG_SERVICE));
    }
}
