//! `audit.trail`: the stack's CloudTrail trail (PCI DSS v4.0.1 10.2.1, 10.2.1.1-10.2.1.7, 10.2.2,
//! 10.3.2, 10.3.4, 10.7), with the log group it delivers to and the role it delivers with.
//!
//! - Multi-region, with global service events. Since November 2021 CloudTrail records IAM, STS
//!   and CloudFront events only in us-east-1, so a single-region trail anywhere else never sees a
//!   role or policy change (and the CIS IAM alarm would watch nothing); activity in a region the
//!   stack does not use would go unrecorded too (10.2.1: every component, every access). The
//!   price: each stack's trail is a further, paid copy of the account's management events
//!   ($2 per 100,000; the first copy per region is free), delivered into its own bucket and group.
//! - Management events, read and write; data events (advanced event selectors) for exactly the
//!   transactions table, the audit bucket's objects and the four functions. The functions' ARNs
//!   are derived from their names rather than read from their nodes: reading them would order the
//!   trail after every function (minutes each in a VPC), while derived ones let the trail log from
//!   before the first invocation. CloudTrail does not require a selector's resources to exist.
//! - Log file validation (10.3.4: digest files detect a changed or deleted log file), encrypted
//!   with the stack's key, into the trail bucket (`storage.trail-bucket`: Object Lock, its policy
//!   lets only this trail write), and into a log group (the key, the stack's retention) through a
//!   role that may only create streams and put events in that group (10.4.1: `audit.alarms`
//!   reviews it).

use crate::aws::{AwsError, AwsResultExt};
use crate::names::FUNCTIONS;
use crate::resources::iam::ServiceRole;
use crate::resources::logs::{self, Group};
use crate::resources::retry::catalogue;
use crate::resources::{
    listed, on_off, or_none, tags_drift, Change, Ctx, Drift, Input, Outputs, Resource, ResourceError, Result,
};
use async_trait::async_trait;
use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector, Tag};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub struct Trail;

pub const ID: &str = "audit.trail";
/// `storage.trail-bucket`: the trail's own bucket, whose policy lets only this trail write.
pub const TRAIL_BUCKET: &str = crate::resources::storage::TRAIL_ID;
/// The inline policy of the delivery role.
pub const POLICY: &str = "payments-trail-delivery";

/// One advanced event selector, its field selectors sorted by field and their values sorted:
/// AWS returns them in any order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub name: String,
    /// field → (operator, values).
    pub fields: BTreeMap<String, Vec<(&'static str, Vec<String>)>>,
}

impl Selector {
    fn new(name: &str, fields: &[(&str, &'static str, Vec<String>)]) -> Selector {
        let mut s = Selector { name: name.to_string(), fields: BTreeMap::new() };
        for (field, op, values) in fields {
            let mut values = values.clone();
            values.sort();
            s.fields.entry(field.to_string()).or_default().push((op, values));
        }
        s
    }

    fn of(a: &AdvancedEventSelector) -> Selector {
        let mut s = Selector { name: a.name().unwrap_or_default().to_string(), fields: BTreeMap::new() };
        for f in a.field_selectors() {
            let ops: [(&'static str, &[String]); 6] = [
                ("=", f.equals()),
                ("starts with", f.starts_with()),
                ("ends with", f.ends_with()),
                ("≠", f.not_equals()),
                ("not starting with", f.not_starts_with()),
                ("not ending with", f.not_ends_with()),
            ];
            for (op, values) in ops {
                if !values.is_empty() {
                    let mut values = values.to_vec();
                    values.sort();
                    s.fields.entry(f.field().to_string()).or_default().push((op, values));
                }
            }
        }
        for ops in s.fields.values_mut() {
            ops.sort();
        }
        s
    }

    /// In words: `eventCategory = Data, resources.type = AWS::S3::Object, resources.ARN starts
    /// with arn:aws:s3:::b/`.
    pub fn words(&self) -> String {
        listed(self.fields.iter().flat_map(|(field, ops)| {
            ops.iter().map(move |(op, values)| format!("{field} {op} {}", values.join(" or ")))
        }))
    }

    fn to_sdk(&self) -> Result<AdvancedEventSelector> {
        let mut fields = Vec::new();
        for (field, ops) in &self.fields {
            let mut b = AdvancedFieldSelector::builder().field(field);
            for (op, values) in ops {
                let values = Some(values.clone());
                b = match *op {
                    "=" => b.set_equals(values),
                    "starts with" => b.set_starts_with(values),
                    "ends with" => b.set_ends_with(values),
                    "≠" => b.set_not_equals(values),
                    "not starting with" => b.set_not_starts_with(values),
                    _ => b.set_not_ends_with(values),
                };
            }
            fields.push(b.build().map_err(|e| ResourceError::new("Internal", e.to_string()))?);
        }
        AdvancedEventSelector::builder()
            .name(&self.name)
            .set_field_selectors(Some(fields))
            .build()
            .map_err(|e| ResourceError::new("Internal", e.to_string()))
    }
}

pub fn function_arn(ctx: &Ctx, function: &str) -> String {
    format!("arn:aws:lambda:{}:{}:function:{}", ctx.names.region, ctx.names.account, ctx.names.function(function))
}

/// The event selectors the trail must have: management events (read and write: no readOnly
/// field), and data events of exactly the table, the audit bucket's objects and the functions.
pub fn selectors(ctx: &Ctx) -> Result<Vec<Selector>> {
    let table = ctx.input(crate::resources::tables::ID, "table_arn")?;
    let bucket = ctx.input(crate::resources::storage::ID, "bucket_arn")?;
    let category = |c: &str| ("eventCategory", "=", vec![c.to_string()]);
    Ok(vec![
        Selector::new("management events", &[category("Management")]),
        Selector::new(
            "transactions table data events",
            &[
                category("Data"),
                ("resources.type", "=", vec!["AWS::DynamoDB::Table".into()]),
                ("resources.ARN", "=", vec![table]),
            ],
        ),
        Selector::new(
            "audit bucket object data events",
            &[
                category("Data"),
                ("resources.type", "=", vec!["AWS::S3::Object".into()]),
                // The objects of this bucket only: the ARN prefix with its slash.
                ("resources.ARN", "starts with", vec![format!("{bucket}/")]),
            ],
        ),
        Selector::new(
            "payment functions data events",
            &[
                category("Data"),
                ("resources.type", "=", vec!["AWS::Lambda::Function".into()]),
                ("resources.ARN", "=", FUNCTIONS.iter().map(|f| function_arn(ctx, f)).collect()),
            ],
        ),
    ])
}

/// The trail as CloudTrail holds it.
#[derive(Debug, Clone)]
pub struct TrailState {
    pub arn: String,
    pub bucket: Option<String>,
    pub kms_key: Option<String>,
    pub log_group_arn: Option<String>,
    pub role_arn: Option<String>,
    pub validation: bool,
    pub multi_region: bool,
    pub global_events: bool,
    pub logging: bool,
    pub selectors: Vec<Selector>,
    /// Basic (not advanced) event selectors, described: the stack uses none.
    pub basic_selectors: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

pub struct Observed {
    pub trail: Option<TrailState>,
    pub group: Option<Group>,
    pub role: Option<crate::resources::iam::Role>,
}

/// What CloudTrail wants as the log group's ARN: the group's, with `:*`.
fn group_delivery_arn(ctx: &Ctx) -> String {
    format!("arn:aws:logs:{}:{}:log-group:{}:*", ctx.names.region, ctx.names.account, ctx.names.trail_log_group())
}

fn role_arn(ctx: &Ctx) -> String {
    format!("arn:aws:iam::{}:role/{}", ctx.names.account, ctx.names.trail_logs_role())
}

pub fn trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "cloudtrail.amazonaws.com" },
            // No aws:SourceArn / aws:SourceAccount condition: CloudTrail documents its confused-deputy
            // conditions for the bucket, key and topic policies only, not for the role it assumes to
            // write to CloudWatch Logs (its documented trust has none; terraform and CDK add none),
            // and a condition on a key it does not send would refuse every delivery. Who may attach
            // the role to a trail is limited by iam:PassRole; what it can do, by its one-group policy.
            "Action": "sts:AssumeRole"
        }]
    })
}

/// The delivery role's only permissions: make streams in the trail's group and write to them.
pub fn role_policy(ctx: &Ctx) -> Value {
    let group =
        format!("arn:aws:logs:{}:{}:log-group:{}", ctx.names.region, ctx.names.account, ctx.names.trail_log_group());
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DeliverToTheTrailGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [format!("{group}:log-stream:*")]
        }]
    })
}

/// CloudTrail's delivery role: it may only make streams in the trail's group and write to them.
fn delivery_role(ctx: &Ctx) -> ServiceRole<'static> {
    ServiceRole {
        name: ctx.names.trail_logs_role(),
        description: format!("CloudTrail delivers trail {} into {}", ctx.names.trail(), ctx.names.trail_log_group()),
        trust: trust_policy(),
        inline: Some((POLICY, role_policy(ctx))),
        managed: &[],
        max_session_seconds: None,
    }
}

fn is_trail_not_found(e: &AwsError) -> bool {
    e.code_is("TrailNotFoundException")
}

pub async fn observe_trail(ctx: &Ctx) -> Result<Option<TrailState>> {
    let ct = &ctx.clients.cloudtrail;
    let name = ctx.names.trail();
    let t = match ct.get_trail().name(&name).send().await.aws("cloudtrail:GetTrail") {
        Ok(out) => match out.trail() {
            Some(t) => t.clone(),
            None => return Ok(None),
        },
        Err(e) if is_trail_not_found(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let arn = t.trail_arn().unwrap_or_default().to_string();
    let status = ct.get_trail_status().name(&arn).send().await.aws("cloudtrail:GetTrailStatus")?;
    let sel = ct.get_event_selectors().trail_name(&arn).send().await.aws("cloudtrail:GetEventSelectors")?;
    let tags = ct.list_tags().resource_id_list(&arn).send().await.aws("cloudtrail:ListTags")?;
    let basic_selectors = sel
        .event_selectors()
        .iter()
        .map(|s| {
            let data: Vec<String> =
                s.data_resources().iter().flat_map(|d| d.values().iter().map(|v| v.to_string())).collect();
            format!(
                "basic selector (management events {}, data events of {})",
                on_off(s.include_management_events().unwrap_or(false)),
                listed(data)
            )
        })
        .collect();
    Ok(Some(TrailState {
        arn: arn.clone(),
        bucket: t.s3_bucket_name().map(str::to_string),
        kms_key: t.kms_key_id().map(str::to_string).filter(|k| !k.is_empty()),
        log_group_arn: t.cloud_watch_logs_log_group_arn().map(str::to_string).filter(|k| !k.is_empty()),
        role_arn: t.cloud_watch_logs_role_arn().map(str::to_string).filter(|k| !k.is_empty()),
        validation: t.log_file_validation_enabled().unwrap_or(false),
        multi_region: t.is_multi_region_trail().unwrap_or(false),
        global_events: t.include_global_service_events().unwrap_or(false),
        logging: status.is_logging().unwrap_or(false),
        selectors: sel.advanced_event_selectors().iter().map(Selector::of).collect(),
        basic_selectors,
        tags: tags
            .resource_tag_list()
            .iter()
            .filter(|r| r.resource_id() == Some(arn.as_str()))
            .flat_map(|r| r.tags_list())
            .map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string()))
            .collect(),
    }))
}

/// How the trail's selectors differ from the wanted ones, each named: a selector missing, one
/// with other fields, or one the stack does not have.
pub fn selector_drifts(have: &TrailState, want: &[Selector]) -> Vec<Drift> {
    let mut d = Vec::new();
    for w in want {
        match have.selectors.iter().find(|h| h.name == w.name) {
            None => d.push(Drift::missing(format!("event selector {}", w.name), w.words())),
            Some(h) if h != w => d.push(Drift::new(format!("event selector {}", w.name), h.words(), w.words())),
            Some(_) => {}
        }
    }
    for h in have.selectors.iter().filter(|h| !want.iter().any(|w| w.name == h.name)) {
        let name = if h.name.is_empty() { "without a name" } else { h.name.as_str() };
        d.push(Drift::unexpected(format!("event selector {name}"), h.words()));
    }
    for b in &have.basic_selectors {
        d.push(Drift::unexpected("event selectors", b));
    }
    d
}

/// The trail's settings that UpdateTrail repairs.
fn settings_drifts(ctx: &Ctx, t: &TrailState, key: &str, bucket: &str) -> Vec<Drift> {
    let mut d = Vec::new();
    if t.bucket.as_deref() != Some(bucket) {
        d.push(Drift::new("bucket", or_none(t.bucket.as_deref()), bucket));
    }
    if t.kms_key.as_deref() != Some(key) {
        d.push(Drift::new("encryption key", t.kms_key.as_deref().unwrap_or("none (S3's own encryption)"), key));
    }
    if !t.validation {
        d.push(Drift::new("log file validation", "off", "on"));
    }
    if !t.multi_region {
        d.push(Drift::new("multi-region", "off (this region only)", "on (every region)"));
    }
    if !t.global_events {
        d.push(Drift::new("global service events (IAM, STS)", "off", "on"));
    }
    let group = group_delivery_arn(ctx);
    if t.log_group_arn.as_deref() != Some(group.as_str()) {
        d.push(Drift::new("CloudWatch Logs group", or_none(t.log_group_arn.as_deref()), group));
    }
    let role = role_arn(ctx);
    if t.role_arn.as_deref() != Some(role.as_str()) {
        d.push(Drift::new("CloudWatch Logs role", or_none(t.role_arn.as_deref()), role));
    }
    d
}

fn role_drifts(ctx: &Ctx, r: Option<&crate::resources::iam::Role>) -> Vec<Drift> {
    delivery_role(ctx).drifts(ctx, r, "CloudTrail, for this stack's trail only", "write to the trail's log group only")
}

fn trail_drifts(ctx: &Ctx, t: Option<&TrailState>) -> Result<Vec<Drift>> {
    let key = ctx.input(crate::resources::kms::ID, "key_arn")?;
    let bucket = ctx.input(TRAIL_BUCKET, "bucket_name")?;
    let name = ctx.names.trail();
    let Some(t) = t else {
        return Ok(vec![Drift::missing(
            format!("trail {name}"),
            format!("multi-region, validated, encrypted with {key}, into {bucket} and {}", ctx.names.trail_log_group()),
        )]);
    };
    let mut d = Vec::new();
    if !t.logging {
        d.push(Drift::new("logging", "stopped", "started"));
    }
    d.extend(settings_drifts(ctx, t, &key, &bucket));
    d.extend(selector_drifts(t, &selectors(ctx)?));
    d.extend(tags_drift("tags", &t.tags, &ctx.tags(None, None)));
    Ok(d.into_iter().map(|x| x.on(format!("trail {name}"))).collect())
}

fn tags_of(ctx: &Ctx) -> Vec<Tag> {
    ctx.tags(None, None).into_iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect()
}

/// CreateTrail or UpdateTrail, retried while CloudTrail does not yet see the role, the bucket
/// policy or the key policy made moments ago.
async fn retry_trail_call<T, F, Fut>(ctx: &Ctx, call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, AwsError>>,
{
    let subject = format!("role {}, bucket policy and key policy", ctx.names.trail_logs_role());
    ctx.retry_while_propagating(&catalogue::CLOUDTRAIL_DELIVERY, &subject, call).await
}

#[async_trait]
impl Resource for Trail {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: crate::resources::kms::ID, key: "key_arn" },
            Input { node: crate::resources::tables::ID, key: "table_arn" },
            Input { node: crate::resources::storage::ID, key: "bucket_arn" },
            Input { node: TRAIL_BUCKET, key: "bucket_name" },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let group_name = ctx.names.trail_log_group();
        let role = delivery_role(ctx);
        let (trail, group, role) =
            futures::try_join!(observe_trail(ctx), logs::observe_group(ctx, &group_name), role.observe(ctx))?;
        if trail.is_none() && group.is_none() && role.is_none() {
            return Ok(None);
        }
        Ok(Some(Observed { trail, group, role }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let key = ctx.input(crate::resources::kms::ID, "key_arn")?;
        let mut d = logs::group_drifts(ctx, &ctx.names.trail_log_group(), o.group.as_ref(), &key);
        d.extend(role_drifts(ctx, o.role.as_ref()));
        d.extend(trail_drifts(ctx, o.trail.as_ref())?);
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        let mut out = Outputs::new();
        if let Some(t) = &o.trail {
            out.insert("trail_arn".into(), json!(t.arn));
        }
        if o.group.is_some() {
            out.insert("trail_log_group".into(), json!(ctx.names.trail_log_group()));
        }
        if let Some(r) = &o.role {
            out.insert("trail_logs_role_arn".into(), json!(r.arn));
        }
        out
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let key = ctx.input(crate::resources::kms::ID, "key_arn")?;
        let bucket = ctx.input(TRAIL_BUCKET, "bucket_name")?;
        let want_selectors = selectors(ctx)?;
        let o = observed.unwrap_or(Observed { trail: None, group: None, role: None });
        let ct = &ctx.clients.cloudtrail;
        let name = ctx.names.trail();

        // The group and the role first: CloudTrail checks both when it accepts the trail.
        let group_name = ctx.names.trail_log_group();
        logs::ensure_group(ctx, &group_name, o.group.as_ref(), &key, &ctx.tags(None, None)).await?;
        let role = delivery_role(ctx).ensure(ctx, o.role).await?;
        let (group_arn, role_arn) = (group_delivery_arn(ctx), role.arn.clone());

        let mut trail = match o.trail {
            Some(t) => Some(t),
            None => {
                ctx.progress.step(&format!("creating trail {name} (multi-region, validated, into {bucket})"));
                retry_trail_call(ctx, || async {
                    ct.create_trail()
                        .name(&name)
                        .s3_bucket_name(&bucket)
                        .include_global_service_events(true)
                        .is_multi_region_trail(true)
                        .enable_log_file_validation(true)
                        .kms_key_id(&key)
                        .cloud_watch_logs_log_group_arn(&group_arn)
                        .cloud_watch_logs_role_arn(&role_arn)
                        .set_tags_list(Some(tags_of(ctx)))
                        .send()
                        .await
                        .aws("cloudtrail:CreateTrail")
                        .map(Some)
                        .or_else(|e| if e.code_is("TrailAlreadyExistsException") { Ok(None) } else { Err(e) })
                })
                .await?;
                // Made now, or by a run killed before it recorded it: either way, read it.
                observe_trail(ctx).await?
            }
        };
        let Some(t) = trail.as_mut() else {
            return Err(ResourceError::new("NotFound", format!("trail {name} vanished after its create")));
        };

        let settings = settings_drifts(ctx, t, &key, &bucket);
        if !settings.is_empty() {
            ctx.progress.step(&format!(
                "repairing trail {name}: {}",
                listed(settings.iter().map(|d| format!("{} {} → {}", d.field, d.current, d.wanted)))
            ));
            retry_trail_call(ctx, || async {
                ct.update_trail()
                    .name(&name)
                    .s3_bucket_name(&bucket)
                    .include_global_service_events(true)
                    .is_multi_region_trail(true)
                    .enable_log_file_validation(true)
                    .kms_key_id(&key)
                    .cloud_watch_logs_log_group_arn(&group_arn)
                    .cloud_watch_logs_role_arn(&role_arn)
                    .send()
                    .await
                    .aws("cloudtrail:UpdateTrail")
            })
            .await?;
        }

        if !selector_drifts(t, &want_selectors).is_empty() {
            ctx.progress.step(&format!(
                "setting the event selectors of trail {name}: {}",
                listed(want_selectors.iter().map(|s| s.name.as_str()))
            ));
            let sdk: Vec<AdvancedEventSelector> = want_selectors.iter().map(Selector::to_sdk).collect::<Result<_>>()?;
            ct.put_event_selectors()
                .trail_name(&t.arn)
                .set_advanced_event_selectors(Some(sdk))
                .send()
                .await
                .aws("cloudtrail:PutEventSelectors")?;
        }

        if tags_drift("tags", &t.tags, &ctx.tags(None, None)).is_some() {
            ctx.progress.step(&format!("tagging trail {name}"));
            ct.add_tags()
                .resource_id(&t.arn)
                .set_tags_list(Some(tags_of(ctx)))
                .send()
                .await
                .aws("cloudtrail:AddTags")?;
        }

        // A new trail does not log until started (CreateTrail leaves it stopped).
        if !t.logging {
            ctx.progress.step(&format!("starting logging of trail {name}"));
            ct.start_logging().name(&t.arn).send().await.aws("cloudtrail:StartLogging")?;
        }

        Ok(Outputs::from([
            ("trail_arn".into(), json!(t.arn)),
            ("trail_log_group".into(), json!(group_name)),
            ("trail_logs_role_arn".into(), json!(role.arn)),
        ]))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let name = ctx.names.trail();
        if o.trail.is_some() {
            // First, so that nothing is delivered into a group or through a role being removed.
            ctx.progress.step(&format!("deleting trail {name}"));
            match ctx.clients.cloudtrail.delete_trail().name(&name).send().await.aws("cloudtrail:DeleteTrail") {
                Ok(_) => {}
                Err(e) if is_trail_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if o.role.is_some() {
            ctx.progress.step(&format!("deleting role {}", ctx.names.trail_logs_role()));
            crate::resources::iam::delete_role(ctx, &ctx.names.trail_logs_role()).await?;
        }
        if o.group.is_some() {
            logs::delete_group(ctx, &ctx.names.trail_log_group()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};

    fn inputs() -> Vec<(&'static str, &'static str, Value)> {
        vec![
            ("kms.key", "key_arn", json!("arn:aws:kms:us-east-1:123456789012:key/k")),
            (
                "tables.transactions",
                "table_arn",
                json!("arn:aws:dynamodb:us-east-1:123456789012:table/transactions-qa"),
            ),
            ("storage.audit-bucket", "bucket_arn", json!("arn:aws:s3:::payments-audit-b")),
            (TRAIL_BUCKET, "bucket_name", json!("payments-trail-b")),
        ]
    }

    fn healthy(ctx: &Ctx) -> TrailState {
        TrailState {
            arn: ctx.names.trail_arn(),
            bucket: Some("payments-trail-b".into()),
            kms_key: Some("arn:aws:kms:us-east-1:123456789012:key/k".into()),
            log_group_arn: Some(group_delivery_arn(ctx)),
            role_arn: Some(role_arn(ctx)),
            validation: true,
            multi_region: true,
            global_events: true,
            logging: true,
            selectors: selectors(ctx).unwrap(),
            basic_selectors: vec![],
            tags: ctx.tags(None, None).into_iter().collect(),
        }
    }

    #[test]
    fn a_healthy_trail_has_no_drift_and_each_setting_is_named_in_words() {
        let c = ctx(ID, Trail.reads(), &inputs());
        assert!(trail_drifts(&c, Some(&healthy(&c))).unwrap().is_empty());
        let broken = TrailState {
            logging: false,
            validation: false,
            kms_key: None,
            multi_region: false,
            selectors: selectors(&c).unwrap().into_iter().take(1).collect(),
            ..healthy(&c)
        };
        let d = trail_drifts(&c, Some(&broken)).unwrap();
        assert_plain(&d.iter().collect::<Vec<_>>());
        let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        assert_eq!(text[0], "trail payments-trail-qa logging: stopped → started");
        assert!(text.contains(&"trail payments-trail-qa log file validation: off → on".to_string()), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("trail payments-trail-qa encryption key: none")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("trail payments-trail-qa multi-region: off")), "{text:?}");
        assert!(
            text.iter().any(|t| t.starts_with(
                "trail payments-trail-qa event selector transactions table data events: missing → eventCategory = Data"
            )),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("payment functions data events: missing")), "{text:?}");
    }

    #[test]
    fn the_selectors_name_exactly_the_table_the_bucket_objects_and_the_four_functions() {
        let c = ctx(ID, Trail.reads(), &inputs());
        let s = selectors(&c).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].words(), "eventCategory = Management");
        assert!(s[2].words().contains("resources.ARN starts with arn:aws:s3:::payments-audit-b/"), "{}", s[2].words());
        let functions = s[3].words();
        for f in FUNCTIONS {
            assert!(functions.contains(&format!("function:payment-{f}-qa")), "{functions}");
        }
        // Round trip through the SDK's shape compares equal (what observe reads back).
        for one in &s {
            assert_eq!(Selector::of(&one.to_sdk().unwrap()), *one);
        }
    }

    #[test]
    fn the_role_trusts_only_cloudtrail_and_writes_only_its_group() {
        let c = ctx(ID, Trail.reads(), &inputs());
        let trust = trust_policy();
        assert_eq!(crate::resources::principals(&trust).into_iter().collect::<Vec<_>>(), ["cloudtrail.amazonaws.com"]);
        assert!(trust["Statement"][0]["Condition"].is_null(), "no condition CloudTrail does not document: {trust}");
        let p = role_policy(&c);
        assert_eq!(
            p["Statement"][0]["Resource"],
            json!(["arn:aws:logs:us-east-1:123456789012:log-group:/aws/cloudtrail/payments-trail-qa:log-stream:*"])
        );
    }
}
