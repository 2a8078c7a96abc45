//! `network.flow-logs`: a VPC flow log of all traffic (accepted and rejected) of the stack's VPC,
//! into a log group of its own encrypted with the stack's key and kept for the stack's log
//! retention, delivered through a role that VPC Flow Logs may assume only for this account's
//! flow logs and that may write only into that group (PCI DSS v4.0.1 10.2.1, 10.2.2: audit logs
//! of network access to the cardholder-data environment).
//!
//! The node owns three things, found by name (group, role) and by tag (the flow log), so a run
//! killed after any of them adopts what it made: the log group (made first, so that nothing
//! writes into a group of AWS's making), the role, and the flow log. A flow log cannot be changed
//! in place (EC2 has no ModifyFlowLogs): one with another traffic type, destination or role is
//! deleted and made again; its records stay in the group.

use super::{ensure_tags, filter, missing_tags, owned_filters, single, tag_spec, tags_drift};
use crate::aws::{AwsError, AwsResultExt, NotFoundExt};
use crate::resources::iam::ServiceRole;
use crate::resources::logs::{self, Group};
use crate::resources::retry::catalogue;
use crate::resources::{listed, Change, Ctx, Drift, Input, Outputs, Resource, ResourceError, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{FlowLogsResourceType, LogDestinationType, ResourceType, Tag, TrafficType};
use futures::FutureExt;
use serde_json::{json, Value};

pub struct FlowLogs;

pub const ID: &str = "network.flow-logs";
/// The name of the role's one inline policy.
pub const POLICY: &str = "flow-logs-to-own-group";
/// Accepted and rejected traffic: rejected connections are what an assessor looks for first.
const TRAFFIC: &str = "ALL";
const CLOUDWATCH_LOGS: &str = "cloud-watch-logs";

#[derive(Debug, Clone)]
pub struct FlowLog {
    pub id: String,
    pub resource: String,
    pub traffic: String,
    pub destination_type: String,
    pub group: Option<String>,
    pub role: Option<String>,
    /// DeliverLogsStatus (SUCCESS | FAILED) and, when failed, why.
    pub delivery: Option<String>,
    pub delivery_error: Option<String>,
    pub tags: Vec<Tag>,
}

pub struct Observed {
    pub vpc_id: Option<String>,
    pub flow_log: Option<FlowLog>,
    pub group: Option<Group>,
    pub role: Option<crate::resources::iam::Role>,
}

fn from_ec2(f: &aws_sdk_ec2::types::FlowLog) -> FlowLog {
    FlowLog {
        id: f.flow_log_id().unwrap_or_default().to_string(),
        resource: f.resource_id().unwrap_or_default().to_string(),
        traffic: f.traffic_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        destination_type: f.log_destination_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        group: f.log_group_name().map(str::to_string),
        role: f.deliver_logs_permission_arn().map(str::to_string),
        delivery: f.deliver_logs_status().map(str::to_string),
        delivery_error: f.deliver_logs_error_message().map(str::to_string),
        tags: f.tags().to_vec(),
    }
}

fn group_arn(ctx: &Ctx) -> String {
    format!("arn:aws:logs:{}:{}:log-group:{}", ctx.names.region, ctx.names.account, ctx.names.flow_log_group())
}

fn role_arn(ctx: &Ctx, o: &Observed) -> String {
    o.role.as_ref().map_or_else(
        || format!("arn:aws:iam::{}:role/{}", ctx.names.account, ctx.names.flow_logs_role()),
        |r| r.arn.clone(),
    )
}

/// VPC Flow Logs may assume the role only on behalf of this account's flow logs: the
/// confused-deputy guard of the flow logs guide (flow-logs-iam-role.html, "aws:SourceAccount" and
/// "aws:SourceArn"). The flow log's id is not known before the role must exist, so the ARN is
/// this account's and region's flow logs.
pub fn trust_policy(ctx: &Ctx) -> Value {
    let (region, account) = (&ctx.names.region, &ctx.names.account);
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "vpc-flow-logs.amazonaws.com" },
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": { "aws:SourceAccount": account },
                "ArnLike": { "aws:SourceArn": format!("arn:aws:ec2:{region}:{account}:vpc-flow-log/*") }
            }
        }]
    })
}

/// Writes into the flow log group and nowhere else. AWS's example role also grants
/// logs:CreateLogGroup and logs:DescribeLogGroups on `*`, which the service needs only to make a
/// group of its own: this node makes the group (encrypted, with retention) before the flow log.
pub fn policy(ctx: &Ctx) -> Value {
    let group = group_arn(ctx);
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "WriteFlowLogRecordsToOwnGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": [group.clone(), format!("{group}:log-stream:*")]
        }]
    })
}

/// The delivery role: trusted by VPC Flow Logs for this account, writing only into the group.
fn delivery_role(ctx: &Ctx) -> ServiceRole<'static> {
    ServiceRole {
        name: ctx.names.flow_logs_role(),
        description: "VPC Flow Logs delivery into the stack's flow log group (and nowhere else)".into(),
        trust: trust_policy(ctx),
        inline: Some((POLICY, policy(ctx))),
        managed: &[],
        max_session_seconds: None,
    }
}

async fn observe_flow_log(ctx: &Ctx, vpc_id: Option<&str>) -> Result<Option<FlowLog>> {
    let ec2 = &ctx.clients.ec2;
    let tagged =
        ec2.describe_flow_logs().set_filter(Some(owned_filters(ctx))).send().await.aws("ec2:DescribeFlowLogs")?;
    let found = single(tagged.flow_logs().to_vec(), "flow log", |f| f.flow_log_id().unwrap_or_default().to_string())?;
    if let Some(f) = found {
        return Ok(Some(from_ec2(&f)));
    }
    // Its tags removed behind tapctl's back, a flow log of this VPC into this group is still ours
    // (and AWS would refuse a second one: FlowLogAlreadyExists).
    let Some(vpc_id) = vpc_id else { return Ok(None) };
    let same = ec2
        .describe_flow_logs()
        .filter(filter("resource-id", [vpc_id]))
        .filter(filter("log-group-name", [ctx.names.flow_log_group()]))
        .send()
        .await
        .aws("ec2:DescribeFlowLogs")?;
    Ok(same.flow_logs().first().map(from_ec2))
}

/// What differs in the flow log itself, given the VPC and role it should have; empty when it must
/// merely be made or is as wanted.
fn flow_log_differences(ctx: &Ctx, f: &FlowLog, vpc_id: &str, role: &str) -> Vec<Drift> {
    let mut d = Vec::new();
    if f.resource != vpc_id {
        d.push(Drift::new("flow log resource", &f.resource, vpc_id));
    }
    if f.traffic != TRAFFIC {
        d.push(Drift::new("flow log traffic type", &f.traffic, TRAFFIC));
    }
    let group = ctx.names.flow_log_group();
    if f.destination_type != CLOUDWATCH_LOGS || f.group.as_deref() != Some(group.as_str()) {
        let have = match (&f.destination_type[..], &f.group) {
            (CLOUDWATCH_LOGS, Some(g)) => format!("log group {g}"),
            (other, _) => format!("{other} destination"),
        };
        d.push(Drift::new("flow log destination", have, format!("log group {group}")));
    }
    if f.role.as_deref() != Some(role) {
        d.push(Drift::new("flow log delivery role", f.role.as_deref().unwrap_or("none"), role));
    }
    d
}

fn drifts(ctx: &Ctx, o: &Observed, vpc_id: &str, key: &str) -> Vec<Drift> {
    let group = ctx.names.flow_log_group();
    let mut d = logs::group_drifts(ctx, &group, o.group.as_ref(), key);
    d.extend(delivery_role(ctx).drifts(
        ctx,
        o.role.as_ref(),
        "VPC Flow Logs, for this account only",
        &format!("write to {group} only"),
    ));
    match &o.flow_log {
        None => d.push(Drift::missing("flow log", format!("{TRAFFIC} traffic of {vpc_id} to log group {group}"))),
        Some(f) => {
            d.extend(flow_log_differences(ctx, f, vpc_id, &role_arn(ctx, o)));
            d.extend(tags_drift("flow log tags", &f.tags, &ctx.tags(None, None)));
            if f.delivery.as_deref() == Some("FAILED") {
                let why = f.delivery_error.as_deref().unwrap_or("no reason given");
                d.push(Drift::new("flow log delivery", format!("FAILED ({why})"), "SUCCESS").waiting(
                    "VPC Flow Logs retries by itself; \"Access error\" means the role or the key policy \
                         does not (yet) let it write into the group",
                ));
            }
        }
    }
    d
}

/// CreateFlowLogs answers a refusal for one resource as an Unsuccessful item, not an exception:
/// it is made an error here so that it is retried (or reported) like one.
fn unsuccessful(out: &aws_sdk_ec2::operation::create_flow_logs::CreateFlowLogsOutput) -> Option<AwsError> {
    let item = out.unsuccessful().first()?;
    let e = item.error();
    Some(AwsError {
        operation: "ec2:CreateFlowLogs".into(),
        code: e.and_then(|e| e.code()).map(str::to_string),
        message: format!(
            "{}: {}",
            item.resource_id().unwrap_or("the VPC"),
            e.and_then(|e| e.message()).unwrap_or("refused without a reason")
        ),
        transient: false,
    })
}

async fn delete_flow_log(ctx: &Ctx, id: &str) -> Result<()> {
    ctx.clients.ec2.delete_flow_logs().flow_log_ids(id).send().await.aws("ec2:DeleteFlowLogs").ok_if_not_found()?;
    Ok(())
}

#[async_trait]
impl Resource for FlowLogs {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::vpc::ID, key: "vpc_id" }, Input { node: crate::resources::kms::ID, key: "key_arn" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let vpc_id = super::vpc::find_vpc_id(ctx).await?;
        let group_name = ctx.names.flow_log_group();
        let role = delivery_role(ctx);
        let (flow_log, group, role) = futures::try_join!(
            observe_flow_log(ctx, vpc_id.as_deref()),
            logs::observe_group(ctx, &group_name),
            role.observe(ctx),
        )?;
        if flow_log.is_none() && group.is_none() && role.is_none() {
            return Ok(None);
        }
        Ok(Some(Observed { vpc_id, flow_log, group, role }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let vpc_id = ctx.input(super::vpc::ID, "vpc_id")?;
        let key = ctx.input(crate::resources::kms::ID, "key_arn")?;
        Ok(Change::from_drifts(drifts(ctx, o, &vpc_id, &key)))
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        let mut out = Outputs::new();
        if let Some(f) = &o.flow_log {
            out.insert("flow_log_id".into(), json!(f.id));
        }
        if let Some(g) = &o.group {
            out.insert("flow_log_group".into(), json!(ctx.names.flow_log_group()));
            out.insert("flow_log_group_arn".into(), json!(g.arn));
        }
        if let Some(r) = &o.role {
            out.insert("flow_logs_role_arn".into(), json!(r.arn));
        }
        out
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let vpc_id = ctx.input(super::vpc::ID, "vpc_id")?;
        let key = ctx.input(crate::resources::kms::ID, "key_arn")?;
        let mut o = observed.unwrap_or(Observed { vpc_id: None, flow_log: None, group: None, role: None });
        let group_name = ctx.names.flow_log_group();
        o.group = Some(logs::ensure_group(ctx, &group_name, o.group.as_ref(), &key, &ctx.tags(None, None)).await?);
        o.role = Some(delivery_role(ctx).ensure(ctx, o.role.take()).await?);
        let role = role_arn(ctx, &o);

        if let Some(f) = &o.flow_log {
            let differs = flow_log_differences(ctx, f, &vpc_id, &role);
            if !differs.is_empty() {
                let why = listed(differs.iter().map(|d| format!("{}: {} → {}", d.field, d.current, d.wanted)));
                ctx.progress.step(&format!("replacing flow log {} (a flow log cannot be changed: {why})", f.id));
                delete_flow_log(ctx, &f.id).await?;
                o.flow_log = None;
            }
        }
        match &o.flow_log {
            Some(f) => ensure_tags(ctx, &f.id, &missing_tags(&f.tags, &ctx.tags(None, None))).await?,
            None => {
                ctx.progress
                    .step(&format!("creating flow log: {TRAFFIC} traffic of {vpc_id} to log group {group_name}"));
                let tags = ctx.tags(None, None);
                let ec2 = &ctx.clients.ec2;
                let out = ctx
                    .retry_while_propagating(&catalogue::FLOW_LOGS_ROLE, &format!("role {role}"), || {
                        ec2.create_flow_logs()
                            .resource_type(FlowLogsResourceType::Vpc)
                            .resource_ids(&vpc_id)
                            .traffic_type(TrafficType::All)
                            .log_destination_type(LogDestinationType::CloudWatchLogs)
                            .log_group_name(&group_name)
                            .deliver_logs_permission_arn(&role)
                            .tag_specifications(tag_spec(ResourceType::VpcFlowLog, &tags))
                            .send()
                            .map(|r| {
                                let out = r.aws("ec2:CreateFlowLogs")?;
                                match unsuccessful(&out) {
                                    Some(e) => Err(e),
                                    None => Ok(out),
                                }
                            })
                    })
                    .await?;
                let id = out.flow_log_ids().first().cloned().ok_or_else(|| {
                    ResourceError::new("EmptyResponse", "CreateFlowLogs returned neither a flow log nor a refusal")
                })?;
                o.flow_log = Some(FlowLog {
                    id,
                    resource: vpc_id.clone(),
                    traffic: TRAFFIC.into(),
                    destination_type: CLOUDWATCH_LOGS.into(),
                    group: Some(group_name.clone()),
                    role: Some(role.clone()),
                    delivery: None,
                    delivery_error: None,
                    tags: super::ec2_tags(&tags),
                });
            }
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        if let Some(f) = &o.flow_log {
            ctx.progress.step(&format!("deleting flow log {}", f.id));
            delete_flow_log(ctx, &f.id).await?;
        }
        if o.role.is_some() {
            let name = ctx.names.flow_logs_role();
            ctx.progress.step(&format!("deleting role {name}"));
            crate::resources::iam::delete_role(ctx, &name).await?;
        }
        if o.group.is_some() {
            logs::delete_group(ctx, &ctx.names.flow_log_group()).await?;
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
            (super::super::vpc::ID, "vpc_id", json!("vpc-1")),
            (crate::resources::kms::ID, "key_arn", json!("arn:aws:kms:us-east-1:123456789012:key/k")),
        ]
    }

    #[test]
    fn the_role_is_trusted_by_flow_logs_for_this_account_only_and_writes_only_its_group() {
        let ctx = ctx(ID, FlowLogs.reads(), &inputs());
        let trust = trust_policy(&ctx);
        let s = &trust["Statement"][0];
        assert_eq!(s["Principal"]["Service"], "vpc-flow-logs.amazonaws.com");
        assert_eq!(s["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012");
        assert_eq!(s["Condition"]["ArnLike"]["aws:SourceArn"], "arn:aws:ec2:us-east-1:123456789012:vpc-flow-log/*");
        let p = policy(&ctx);
        let group = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/vpc/flow-logs/payment-vpc-qa";
        assert_eq!(p["Statement"][0]["Resource"], json!([group, format!("{group}:log-stream:*")]));
        assert_eq!(p["Statement"].as_array().map(Vec::len), Some(1));
        for a in p["Statement"][0]["Action"].as_array().unwrap() {
            assert!(!a.as_str().unwrap().contains('*'), "{a}");
        }
    }

    #[test]
    fn create_flow_logs_is_retried_only_while_the_new_role_cannot_be_assumed() {
        let err = |code: &str, message: &str| AwsError {
            operation: "ec2:CreateFlowLogs".into(),
            code: Some(code.into()),
            message: message.into(),
            transient: false,
        };
        let p = &catalogue::FLOW_LOGS_ROLE;
        assert!(p.matches(&err("InvalidParameter", "Unable to assume given IAM role: arn:aws:iam::1:role/r")));
        assert!(!p.matches(&err("InvalidParameter", "LogDestination: /g does not exist")));
        assert!(!p.matches(&err("FlowLogAlreadyExists", "Unable to assume given IAM role")));
    }

    #[test]
    fn a_flow_log_drifts_in_words_and_a_failed_delivery_waits() {
        let ctx = ctx(ID, FlowLogs.reads(), &inputs());
        let role = crate::resources::iam::Role {
            arn: "arn:aws:iam::123456789012:role/payment-flow-logs-role-qa".into(),
            id: "AROAFLOWLOGS".into(),
            trust: trust_policy(&ctx),
            policy: Some(policy(&ctx)),
            attached: vec![],
            tags: ctx.tags(None, None).into_iter().collect(),
        };
        let f = FlowLog {
            id: "fl-1".into(),
            resource: "vpc-1".into(),
            traffic: "REJECT".into(),
            destination_type: "s3".into(),
            group: None,
            role: None,
            delivery: Some("FAILED".into()),
            delivery_error: Some("Access error".into()),
            tags: vec![],
        };
        let o = Observed { vpc_id: Some("vpc-1".into()), flow_log: Some(f), group: None, role: Some(role) };
        let change = FlowLogs.diff(&ctx, &o).unwrap();
        let d: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
        assert!(d.contains(&"flow log traffic type: REJECT → ALL".into()), "{d:#?}");
        assert!(
            d.contains(&"flow log destination: s3 destination → log group /aws/vpc/flow-logs/payment-vpc-qa".into()),
            "{d:#?}"
        );
        assert!(
            d.contains(
                &"flow log delivery role: none → arn:aws:iam::123456789012:role/payment-flow-logs-role-qa".into()
            ),
            "{d:#?}"
        );
        assert!(
            d.iter().any(|x| x.starts_with("flow log delivery: FAILED (Access error) → SUCCESS (waits: ")),
            "{d:#?}"
        );
        assert!(d.iter().any(|x| x.starts_with("log group /aws/vpc/flow-logs/payment-vpc-qa: missing → ")), "{d:#?}");
        assert!(matches!(change, Change::Update(_)));
        assert_plain(&change.drifts());
    }
}
