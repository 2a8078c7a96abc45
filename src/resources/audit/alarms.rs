//! `audit.alarms`: the CIS AWS Foundations Benchmark's metric filters and alarms on the trail's
//! log group (PCI DSS v4.0.1 10.4.1: the audit logs are reviewed — here by CloudWatch, at once,
//! for the events the benchmark names — and 10.7: a failure of the audit controls themselves,
//! such as a trail stopped or changed, is detected and alerted).
//!
//! The filter patterns are AWS Security Hub's controls CloudWatch.2, 4, 5, 7 and 10-14, verbatim
//! (Security Hub user guide, "Amazon CloudWatch controls"): the ones that concern what this stack
//! owns (its API callers, roles, trail, key and network). Each alarm notifies the alerts topic on
//! ALARM and on OK, as `monitoring.alarms` do. Every metric is in a namespace of the suffix and
//! named with it, so two stacks in one account never count into the same metric.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::Names;
use crate::resources::{each_member, list, Change, Ctx, Drift, Input, Outputs, Resource, Result};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{ComparisonOperator, MetricAlarm, Statistic, Tag};
use aws_sdk_cloudwatchlogs::types::MetricTransformation;
use std::collections::BTreeMap;

pub struct CisAlarms;

pub const ID: &str = "audit.alarms";

/// One CIS check: the control it is, what it watches, and Security Hub's filter pattern.
pub struct Check {
    pub key: &'static str,
    pub control: &'static str,
    pub title: &'static str,
    pub pattern: &'static str,
}

pub const CHECKS: [Check; 9] = [
    Check {
        key: "unauthorized-api-calls",
        control: "CloudWatch.2",
        title: "unauthorized API calls",
        pattern: r#"{($.errorCode="*UnauthorizedOperation") || ($.errorCode="AccessDenied*")}"#,
    },
    Check {
        key: "iam-policy-changes",
        control: "CloudWatch.4",
        title: "IAM policy changes",
        pattern: "{($.eventName=DeleteGroupPolicy)||($.eventName=DeleteRolePolicy)||($.eventName=DeleteUserPolicy)||($.eventName=PutGroupPolicy)||($.eventName=PutRolePolicy)||($.eventName=PutUserPolicy)||($.eventName=CreatePolicy)||($.eventName=DeletePolicy)||($.eventName=CreatePolicyVersion)||($.eventName=DeletePolicyVersion)||($.eventName=AttachRolePolicy)||($.eventName=DetachRolePolicy)||($.eventName=AttachUserPolicy)||($.eventName=DetachUserPolicy)||($.eventName=AttachGroupPolicy)||($.eventName=DetachGroupPolicy)}",
    },
    Check {
        key: "cloudtrail-changes",
        control: "CloudWatch.5",
        title: "CloudTrail configuration changes",
        pattern: "{($.eventName=CreateTrail)||($.eventName=UpdateTrail)||($.eventName=DeleteTrail)||($.eventName=StartLogging)||($.eventName=StopLogging)}",
    },
    Check {
        key: "kms-key-disabled-or-deleted",
        control: "CloudWatch.7",
        title: "customer-managed keys disabled or scheduled for deletion",
        pattern: "{($.eventSource=kms.amazonaws.com)&&(($.eventName=DisableKey)||($.eventName=ScheduleKeyDeletion))}",
    },
    Check {
        key: "security-group-changes",
        control: "CloudWatch.10",
        title: "security group changes",
        pattern: "{($.eventName=AuthorizeSecurityGroupIngress)||($.eventName=AuthorizeSecurityGroupEgress)||($.eventName=RevokeSecurityGroupIngress)||($.eventName=RevokeSecurityGroupEgress)||($.eventName=CreateSecurityGroup)||($.eventName=DeleteSecurityGroup)}",
    },
    Check {
        key: "nacl-changes",
        control: "CloudWatch.11",
        title: "network ACL changes",
        pattern: "{($.eventName=CreateNetworkAcl)||($.eventName=CreateNetworkAclEntry)||($.eventName=DeleteNetworkAcl)||($.eventName=DeleteNetworkAclEntry)||($.eventName=ReplaceNetworkAclEntry)||($.eventName=ReplaceNetworkAclAssociation)}",
    },
    Check {
        key: "network-gateway-changes",
        control: "CloudWatch.12",
        title: "network gateway changes",
        pattern: "{($.eventName=CreateCustomerGateway)||($.eventName=DeleteCustomerGateway)||($.eventName=AttachInternetGateway)||($.eventName=CreateInternetGateway)||($.eventName=DeleteInternetGateway)||($.eventName=DetachInternetGateway)}",
    },
    Check {
        key: "route-table-changes",
        control: "CloudWatch.13",
        title: "route table changes",
        pattern: "{($.eventSource=ec2.amazonaws.com)&&(($.eventName=CreateRoute)||($.eventName=CreateRouteTable)||($.eventName=ReplaceRoute)||($.eventName=ReplaceRouteTableAssociation)||($.eventName=DeleteRouteTable)||($.eventName=DeleteRoute)||($.eventName=DisassociateRouteTable))}",
    },
    Check {
        key: "vpc-changes",
        control: "CloudWatch.14",
        title: "VPC changes",
        pattern: "{($.eventName=CreateVpc)||($.eventName=DeleteVpc)||($.eventName=ModifyVpcAttribute)||($.eventName=AcceptVpcPeeringConnection)||($.eventName=CreateVpcPeeringConnection)||($.eventName=DeleteVpcPeeringConnection)||($.eventName=RejectVpcPeeringConnection)||($.eventName=AttachClassicLinkVpc)||($.eventName=DetachClassicLinkVpc)||($.eventName=DisableVpcClassicLink)||($.eventName=EnableVpcClassicLink)}",
    },
];

/// The metric namespace of the stack's CIS metrics.
pub fn namespace(n: &Names) -> String {
    format!("CISBenchmark/payments-{}", n.suffix)
}

/// The name of a check's metric filter, its metric and its alarm: `payments-cis-vpc-changes-qa`.
pub fn name_of(n: &Names, check: &Check) -> String {
    n.alarm(&format!("cis-{}", check.key))
}

pub fn alarm_names(n: &Names) -> Vec<String> {
    CHECKS.iter().map(|c| name_of(n, c)).collect()
}

/// A metric filter as CloudWatch Logs holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub pattern: String,
    pub namespace: String,
    pub metric: String,
    pub value: String,
}

/// An alarm's settings that tapctl sets, in DescribeAlarms' terms.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub namespace: String,
    pub metric: String,
    pub statistic: String,
    pub period: i32,
    pub evaluation_periods: i32,
    pub threshold: f64,
    pub comparison: String,
    pub missing_data: String,
    pub actions: Vec<String>,
    pub ok_actions: Vec<String>,
    pub description: String,
}

impl AlarmSpec {
    /// When it fires and whom it tells: `payments-cis-vpc-changes-qa Sum ≥ 1 in 300 s; notifies …`.
    fn words(&self) -> String {
        let comparison = match self.comparison.as_str() {
            "GreaterThanOrEqualToThreshold" => "≥",
            "GreaterThanThreshold" => ">",
            "LessThanThreshold" => "<",
            "LessThanOrEqualToThreshold" => "≤",
            other => other,
        };
        format!(
            "{} {} {} {comparison} {} ({} × {} s, missing data {}); notifies {} (OK: {})",
            self.namespace,
            self.metric,
            self.statistic,
            self.threshold,
            self.evaluation_periods,
            self.period,
            self.missing_data,
            crate::resources::listed(&self.actions),
            crate::resources::listed(&self.ok_actions),
        )
    }
}

fn filter_wanted(n: &Names, c: &Check) -> Filter {
    Filter { pattern: c.pattern.to_string(), namespace: namespace(n), metric: name_of(n, c), value: "1".into() }
}

fn alarm_wanted(n: &Names, c: &Check, topic: &str) -> AlarmSpec {
    AlarmSpec {
        namespace: namespace(n),
        metric: name_of(n, c),
        statistic: "Sum".into(),
        period: 300,
        evaluation_periods: 1,
        threshold: 1.0,
        comparison: "GreaterThanOrEqualToThreshold".into(),
        missing_data: "notBreaching".into(),
        actions: vec![topic.to_string()],
        ok_actions: vec![topic.to_string()],
        description: format!("CIS {} ({}): {} in the trail of stack {}", c.control, c.key, c.title, n.suffix),
    }
}

fn alarm_of(a: &MetricAlarm) -> AlarmSpec {
    AlarmSpec {
        namespace: a.namespace().unwrap_or_default().to_string(),
        metric: a.metric_name().unwrap_or_default().to_string(),
        statistic: a.statistic().map(|s| s.as_str().to_string()).unwrap_or_default(),
        period: a.period().unwrap_or_default(),
        evaluation_periods: a.evaluation_periods().unwrap_or_default(),
        threshold: a.threshold().unwrap_or_default(),
        comparison: a.comparison_operator().map(|c| c.as_str().to_string()).unwrap_or_default(),
        missing_data: a.treat_missing_data().unwrap_or("missing").to_string(),
        actions: a.alarm_actions().to_vec(),
        ok_actions: a.ok_actions().to_vec(),
        description: a.alarm_description().unwrap_or_default().to_string(),
    }
}

pub struct Observed {
    /// By filter name.
    pub filters: BTreeMap<String, Filter>,
    /// By alarm name.
    pub alarms: BTreeMap<String, AlarmSpec>,
}

fn filter_drift(name: &str, have: Option<&Filter>, want: &Filter) -> Option<Drift> {
    let field = format!("metric filter {name}");
    match have {
        None => Some(Drift::missing(field, format!("{} counting {}", want.metric, want.pattern))),
        Some(h) if h.pattern != want.pattern => Some(Drift::new(format!("{field} pattern"), &h.pattern, &want.pattern)),
        Some(h) if h != want => Some(Drift::new(
            format!("{field} metric"),
            format!("{} {} (value {})", h.namespace, h.metric, h.value),
            format!("{} {} (value {})", want.namespace, want.metric, want.value),
        )),
        Some(_) => None,
    }
}

fn alarm_drift(name: &str, have: Option<&AlarmSpec>, want: &AlarmSpec) -> Option<Drift> {
    let field = format!("alarm {name}");
    match have {
        None => Some(Drift::missing(field, want.words())),
        Some(h) if h.description != want.description && h.words() == want.words() => {
            Some(Drift::new(format!("{field} description"), &h.description, &want.description))
        }
        Some(h) if h != want => Some(Drift::new(field, h.words(), want.words())),
        Some(_) => None,
    }
}

#[async_trait]
impl Resource for CisAlarms {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: super::trail::ID, key: "trail_log_group" },
            Input { node: crate::resources::alerts::ID, key: "topic_arn" },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let names = alarm_names(&ctx.names);
        let mut filters = BTreeMap::new();
        let mut pages = ctx
            .clients
            .logs
            .describe_metric_filters()
            .log_group_name(ctx.names.trail_log_group())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            // No group, no filters.
            let Some(page) = page.aws("logs:DescribeMetricFilters").ok_if_not_found()? else { break };
            for f in page.metric_filters() {
                let name = f.filter_name().unwrap_or_default().to_string();
                if !names.contains(&name) {
                    continue;
                }
                let t = f.metric_transformations().first();
                filters.insert(
                    name,
                    Filter {
                        pattern: f.filter_pattern().unwrap_or_default().to_string(),
                        namespace: t.map(|t| t.metric_namespace().to_string()).unwrap_or_default(),
                        metric: t.map(|t| t.metric_name().to_string()).unwrap_or_default(),
                        value: t.map(|t| t.metric_value().to_string()).unwrap_or_default(),
                    },
                );
            }
        }
        let mut alarms = BTreeMap::new();
        let mut pages = ctx.clients.cloudwatch.describe_alarms().set_alarm_names(Some(names)).into_paginator().send();
        while let Some(page) = pages.next().await {
            for a in page.aws("cloudwatch:DescribeAlarms")?.metric_alarms() {
                alarms.insert(a.alarm_name().unwrap_or_default().to_string(), alarm_of(a));
            }
        }
        Ok((!filters.is_empty() || !alarms.is_empty()).then_some(Observed { filters, alarms }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let topic = ctx.input(crate::resources::alerts::ID, "topic_arn")?;
        let mut d = Vec::new();
        for c in &CHECKS {
            let name = name_of(&ctx.names, c);
            d.extend(filter_drift(&name, o.filters.get(&name), &filter_wanted(&ctx.names, c)));
            d.extend(alarm_drift(&name, o.alarms.get(&name), &alarm_wanted(&ctx.names, c, &topic)));
        }
        Ok(Change::from_drifts(d))
    }

    /// The names of the node's filters and alarms in the checks' order, as `apply` returns them:
    /// the same outputs whether they were just made or read back, so a plain re-run rewrites no
    /// state.
    fn outputs(&self, ctx: &Ctx, _o: &Observed) -> Outputs {
        let names = alarm_names(&ctx.names);
        Outputs::from([("metric_filters".into(), list(names.clone())), ("alarm_names".into(), list(names))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let group = ctx.input(super::trail::ID, "trail_log_group")?;
        let topic = ctx.input(crate::resources::alerts::ID, "topic_arn")?;
        let o = observed.unwrap_or(Observed { filters: BTreeMap::new(), alarms: BTreeMap::new() });
        let tags: Vec<Tag> = ctx.tags(None, None).iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let (o, tags, group, topic) = (&o, &tags, &group, &topic);
        each_member("CIS check", CHECKS.iter().map(|c| c.key), |key| async move {
            let Some(c) = CHECKS.iter().find(|c| c.key == key) else { return Ok(()) };
            let name = name_of(&ctx.names, c);
            let want = filter_wanted(&ctx.names, c);
            if let Some(d) = filter_drift(&name, o.filters.get(&name), &want) {
                ctx.progress.step(&format!("{} metric filter {name} ({})", verb(&d), c.control));
                // PutMetricFilter replaces the filter of that name on the group.
                ctx.clients
                    .logs
                    .put_metric_filter()
                    .log_group_name(group)
                    .filter_name(&name)
                    .filter_pattern(&want.pattern)
                    .metric_transformations(
                        MetricTransformation::builder()
                            .metric_namespace(&want.namespace)
                            .metric_name(&want.metric)
                            .metric_value(&want.value)
                            .build()
                            .map_err(|e| crate::resources::ResourceError::new("Internal", e.to_string()))?,
                    )
                    .send()
                    .await
                    .aws("logs:PutMetricFilter")?;
            }
            let want = alarm_wanted(&ctx.names, c, topic);
            if let Some(d) = alarm_drift(&name, o.alarms.get(&name), &want) {
                ctx.progress.step(&format!("{} alarm {name} ({})", verb(&d), c.control));
                ctx.clients
                    .cloudwatch
                    .put_metric_alarm()
                    .alarm_name(&name)
                    .alarm_description(&want.description)
                    .namespace(&want.namespace)
                    .metric_name(&want.metric)
                    .statistic(Statistic::from(want.statistic.as_str()))
                    .period(want.period)
                    .evaluation_periods(want.evaluation_periods)
                    .threshold(want.threshold)
                    .comparison_operator(ComparisonOperator::from(want.comparison.as_str()))
                    .treat_missing_data(&want.missing_data)
                    .set_alarm_actions(Some(want.actions.clone()))
                    .set_ok_actions(Some(want.ok_actions.clone()))
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .aws("cloudwatch:PutMetricAlarm")?;
            }
            Ok(())
        })
        .await?;
        let names = alarm_names(&ctx.names);
        Ok(Outputs::from([("metric_filters".into(), list(names.clone())), ("alarm_names".into(), list(names))]))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let group = ctx.names.trail_log_group();
        for name in o.filters.keys() {
            ctx.progress.step(&format!("deleting metric filter {name}"));
            ctx.clients
                .logs
                .delete_metric_filter()
                .log_group_name(&group)
                .filter_name(name)
                .send()
                .await
                .aws("logs:DeleteMetricFilter")
                .ok_if_not_found()?;
        }
        let names: Vec<String> = o.alarms.into_keys().collect();
        if !names.is_empty() {
            ctx.progress.step(&format!("deleting {} CIS alarms", names.len()));
            ctx.clients
                .cloudwatch
                .delete_alarms()
                .set_alarm_names(Some(names))
                .send()
                .await
                .aws("cloudwatch:DeleteAlarms")?;
        }
        Ok(())
    }
}

fn verb(d: &Drift) -> &'static str {
    if d.current == "missing" {
        "creating"
    } else {
        "repairing"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_has_its_own_suffixed_metric_and_a_security_hub_pattern() {
        let (qa, prod) = (Names::new("qa", "us-east-1", None), Names::new("prod", "us-east-1", None));
        assert_eq!(name_of(&qa, &CHECKS[2]), "payments-cis-cloudtrail-changes-qa");
        assert_ne!(namespace(&qa), namespace(&prod));
        let metrics: std::collections::BTreeSet<String> = CHECKS.iter().map(|c| name_of(&qa, c)).collect();
        assert_eq!(metrics.len(), CHECKS.len());
        for c in &CHECKS {
            assert!(c.pattern.starts_with('{') && c.pattern.ends_with('}') && c.pattern.len() <= 1024, "{}", c.key);
        }
    }

    #[test]
    fn drifts_name_a_missing_filter_a_changed_pattern_and_a_changed_alarm() {
        let n = Names::new("qa", "us-east-1", None);
        let want = filter_wanted(&n, &CHECKS[0]);
        let name = name_of(&n, &CHECKS[0]);
        assert!(filter_drift(&name, None, &want)
            .unwrap()
            .to_string()
            .starts_with("metric filter payments-cis-unauthorized-api-calls-qa: missing → "));
        let changed = Filter { pattern: "{ $.x = 1 }".into(), ..want.clone() };
        assert_eq!(
            filter_drift(&name, Some(&changed), &want).unwrap().field,
            "metric filter payments-cis-unauthorized-api-calls-qa pattern"
        );
        assert_eq!(filter_drift(&name, Some(&want), &want), None);
        let alarm = alarm_wanted(&n, &CHECKS[0], "arn:topic");
        let silent = AlarmSpec { actions: vec![], ..alarm.clone() };
        let d = alarm_drift(&name, Some(&silent), &alarm).unwrap().to_string();
        assert!(d.contains("notifies none") && d.contains("notifies arn:topic"), "{d}");
        crate::resources::testing::assert_plain(&[&alarm_drift(&name, Some(&silent), &alarm).unwrap()]);
    }
}
