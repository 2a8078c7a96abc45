//! `monitoring.alarms`: every alarm notifies the alerts topic, on ALARM and on OK.
//!
//! - API p99 latency over 200 ms (ExtendedStatistic p99, 3 of 5 minutes);
//! - API 5XX responses (any in a minute: each one is a payment that did not go through);
//! - Lambda Errors per function, and per alias colour for the functions behind the API — the
//!   colour alarms are what `shift --watch` bakes a canary against;
//! - Aurora writer CPU over 80 % for 10 minutes;
//! - the web ACL's blocked requests (`waf.web-acl`, all its rules) over 100 in 5 minutes: an
//!   attack, a flood the rate rule is holding back, or a rule blocking real customers — each
//!   worth a look (PCI DSS 6.4.2 asks that the solution generate alerts that are acted on).

use crate::aws::AwsResultExt;
use crate::names::{Names, FUNCTIONS};
use crate::resources::api::rest::ROUTES;
use crate::resources::Outputs;
use crate::resources::{each_member, list, listed, Change, Ctx, Drift, Input, Resource, Result};
use crate::traffic::{Color, STAGE};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic, Tag};
use std::collections::BTreeMap;

pub struct Alarms;

pub const ID: &str = "monitoring.alarms";
pub const API_P99_THRESHOLD_MS: f64 = 200.0;
pub const DB_CPU_THRESHOLD: f64 = 80.0;
/// Blocked requests in 5 minutes over which someone should look: scanners alone block a few.
pub const WAF_BLOCKED_THRESHOLD: f64 = 100.0;

/// One alarm as tapctl wants it, in the terms DescribeAlarms answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric: String,
    pub dimensions: Vec<(String, String)>,
    pub statistic: Option<String>,
    pub extended_statistic: Option<String>,
    pub period: i32,
    pub evaluation_periods: i32,
    pub datapoints: i32,
    pub threshold: f64,
    pub comparison: String,
    pub actions: Vec<String>,
}

pub fn api_alarm_names(n: &Names) -> [String; 2] {
    [n.alarm("api-p99-latency"), n.alarm("api-5xx")]
}

pub fn color_alarm_name(n: &Names, function: &str, c: Color) -> String {
    n.alarm(&format!("{function}-{c}-errors"))
}

/// The alarms `shift` watches while a canary bakes towards `c`: the API's and the colour's.
pub fn watched(n: &Names, c: Color) -> Vec<String> {
    let mut v = api_alarm_names(n).to_vec();
    v.extend(ROUTES.iter().map(|f| color_alarm_name(n, f, c)));
    v
}

pub fn specs(n: &Names, topic: &str) -> Vec<Spec> {
    let base = |name: String, description: String, namespace: &str, metric: &str, dims: Vec<(&str, String)>| Spec {
        name,
        description,
        namespace: namespace.into(),
        metric: metric.into(),
        dimensions: dims.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        statistic: Some("Sum".into()),
        extended_statistic: None,
        period: 60,
        evaluation_periods: 1,
        datapoints: 1,
        threshold: 0.0,
        comparison: "GreaterThanThreshold".into(),
        actions: vec![topic.to_string()],
    };
    let api = vec![("ApiName", n.api()), ("Stage", STAGE.to_string())];
    let [p99, five_xx] = api_alarm_names(n);
    let mut v = vec![
        Spec {
            statistic: None,
            extended_statistic: Some("p99".into()),
            evaluation_periods: 5,
            datapoints: 3,
            threshold: API_P99_THRESHOLD_MS,
            ..base(
                p99,
                format!("p99 latency of {} over {API_P99_THRESHOLD_MS} ms", n.api()),
                "AWS/ApiGateway",
                "Latency",
                api.clone(),
            )
        },
        base(five_xx, format!("{} answered 5XX", n.api()), "AWS/ApiGateway", "5XXError", api),
    ];
    for f in FUNCTIONS {
        let function = n.function(f);
        v.push(base(
            n.alarm(&format!("{f}-errors")),
            format!("{function} failed"),
            "AWS/Lambda",
            "Errors",
            vec![("FunctionName", function.clone())],
        ));
    }
    for f in ROUTES {
        let function = n.function(f);
        for c in Color::BOTH {
            v.push(base(
                color_alarm_name(n, f, c),
                format!("{function}:{c} failed"),
                "AWS/Lambda",
                "Errors",
                vec![("FunctionName", function.clone()), ("Resource", format!("{function}:{c}"))],
            ));
        }
    }
    v.push(Spec {
        statistic: Some("Average".into()),
        period: 300,
        evaluation_periods: 2,
        datapoints: 2,
        threshold: DB_CPU_THRESHOLD,
        ..base(
            n.alarm("db-cpu"),
            format!("{} writer CPU over {DB_CPU_THRESHOLD} %", n.db_cluster()),
            "AWS/RDS",
            "CPUUtilization",
            // The writer alone: by cluster only, RDS averages the writer with idle readers, and a
            // saturated writer would hide behind them.
            vec![("DBClusterIdentifier", n.db_cluster()), ("Role", "WRITER".to_string())],
        )
    });
    v.push(Spec {
        period: 300,
        threshold: WAF_BLOCKED_THRESHOLD,
        ..base(
            n.alarm("waf-blocked"),
            format!("{} blocked over {WAF_BLOCKED_THRESHOLD} requests in 5 minutes", n.waf_acl()),
            "AWS/WAFV2",
            "BlockedRequests",
            // A regional ACL's metrics carry its Region; Rule=ALL is the sum over every rule.
            vec![("WebACL", n.waf_acl()), ("Region", n.region.clone()), ("Rule", "ALL".to_string())],
        )
    });
    v
}

fn spec_of(a: &MetricAlarm) -> Spec {
    let mut dimensions: Vec<(String, String)> = a
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string()))
        .collect();
    dimensions.sort();
    Spec {
        name: a.alarm_name().unwrap_or_default().to_string(),
        description: a.alarm_description().unwrap_or_default().to_string(),
        namespace: a.namespace().unwrap_or_default().to_string(),
        metric: a.metric_name().unwrap_or_default().to_string(),
        dimensions,
        statistic: a.statistic().map(|s| s.as_str().to_string()),
        extended_statistic: a.extended_statistic().map(str::to_string),
        period: a.period().unwrap_or_default(),
        evaluation_periods: a.evaluation_periods().unwrap_or_default(),
        datapoints: a.datapoints_to_alarm().unwrap_or_default(),
        threshold: a.threshold().unwrap_or_default(),
        comparison: a.comparison_operator().map(|c| c.as_str().to_string()).unwrap_or_default(),
        actions: a.alarm_actions().to_vec(),
    }
}

impl Spec {
    /// When it fires: `Errors Sum > 0 (1 of 1 × 60 s)`.
    fn condition(&self) -> String {
        let statistic = match (self.statistic.as_deref(), self.extended_statistic.as_deref()) {
            (Some(s), Some(e)) => format!("{s} and {e}"),
            (Some(s), None) | (None, Some(s)) => s.to_string(),
            (None, None) => "no statistic".to_string(),
        };
        let comparison = match self.comparison.as_str() {
            "GreaterThanThreshold" => ">",
            "GreaterThanOrEqualToThreshold" => "≥",
            "LessThanThreshold" => "<",
            "LessThanOrEqualToThreshold" => "≤",
            other => other,
        };
        format!(
            "{} {statistic} {comparison} {} ({} of {} × {} s)",
            self.metric, self.threshold, self.datapoints, self.evaluation_periods, self.period
        )
    }

    /// Its parts in words, each with a label (none for the condition), to name the ones that differ.
    fn parts(&self) -> [(&'static str, String); 4] {
        let dimensions = listed(self.dimensions.iter().map(|(k, v)| format!("{k}={v}")));
        [
            ("", self.condition()),
            ("on", format!("{} {dimensions}", self.namespace)),
            ("notifies", listed(&self.actions)),
            ("description", self.description.clone()),
        ]
    }

    /// How `have` differs from this alarm: the parts that differ, as they are and as wanted.
    fn drift(&self, have: &Spec) -> Option<Drift> {
        let (mut current, mut wanted) = (Vec::new(), Vec::new());
        for ((label, h), (_, w)) in have.parts().into_iter().zip(self.parts()) {
            if h != w {
                current.push(format!("{label} {h}").trim().to_string());
                wanted.push(format!("{label} {w}").trim().to_string());
            }
        }
        (!wanted.is_empty()).then(|| Drift::new(format!("alarm {}", self.name), current.join("; "), wanted.join("; ")))
    }
}

fn sorted(mut s: Spec) -> Spec {
    s.dimensions.sort();
    s
}

pub struct Observed {
    pub alarms: BTreeMap<String, Spec>,
}

/// The alarms of these names that exist, with their state ("OK", "ALARM", "INSUFFICIENT_DATA").
pub async fn states(
    cw: &aws_sdk_cloudwatch::Client,
    names: &[String],
) -> std::result::Result<BTreeMap<String, String>, crate::aws::AwsError> {
    let mut out = BTreeMap::new();
    for chunk in names.chunks(100) {
        let mut pages = cw.describe_alarms().set_alarm_names(Some(chunk.to_vec())).into_paginator().send();
        while let Some(page) = pages.next().await {
            for a in page.aws("cloudwatch:DescribeAlarms")?.metric_alarms() {
                let state = a.state_value().map(|s| s.as_str().to_string()).unwrap_or_default();
                out.insert(a.alarm_name().unwrap_or_default().to_string(), state);
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl Resource for Alarms {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::super::alerts::ID, key: "topic_arn" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let names: Vec<String> = specs(&ctx.names, "").into_iter().map(|s| s.name).collect();
        let mut alarms = BTreeMap::new();
        for chunk in names.chunks(100) {
            let mut pages =
                ctx.clients.cloudwatch.describe_alarms().set_alarm_names(Some(chunk.to_vec())).into_paginator().send();
            while let Some(page) = pages.next().await {
                for a in page.aws("cloudwatch:DescribeAlarms")?.metric_alarms() {
                    let s = spec_of(a);
                    alarms.insert(s.name.clone(), s);
                }
            }
        }
        Ok((!alarms.is_empty()).then_some(Observed { alarms }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let topic = ctx.input(super::super::alerts::ID, "topic_arn")?;
        let mut d = Vec::new();
        for want in specs(&ctx.names, &topic) {
            match o.alarms.get(&want.name) {
                None => d.push(Drift::missing(format!("alarm {}", want.name), want.condition())),
                Some(have) if *have != sorted(want.clone()) => {
                    let want = sorted(want.clone());
                    d.push(
                        want.drift(have)
                            .unwrap_or_else(|| Drift::new(format!("alarm {}", want.name), "differs", want.condition())),
                    );
                }
                Some(_) => {}
            }
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("alarm_names".into(), list(o.alarms.keys().cloned()))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let topic = ctx.input(super::super::alerts::ID, "topic_arn")?;
        let have = observed.map(|o| o.alarms).unwrap_or_default();
        let tags: Vec<Tag> = ctx.tags(None, None).iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let wanted = specs(&ctx.names, &topic);
        let mut names: Vec<String> = wanted.iter().map(|w| w.name.clone()).collect();
        let changed = wanted.into_iter().filter(|want| have.get(&want.name) != Some(&sorted(want.clone())));
        let tags = &tags;
        let have = &have;
        each_member("alarm", changed.map(|w| w.name.clone()).collect::<Vec<_>>(), |name| {
            let want = specs(&ctx.names, &topic).into_iter().find(|w| w.name == name);
            async move {
                let Some(want) = want else { return Ok(()) };
                ctx.progress.step(&match have.get(&want.name).and_then(|h| sorted(want.clone()).drift(h)) {
                    Some(d) => format!("changing {} from {} to {}", d.field, d.current, d.wanted),
                    None => format!("creating alarm {}: {}", want.name, want.condition()),
                });
                ctx.clients
                    .cloudwatch
                    .put_metric_alarm()
                    .alarm_name(&want.name)
                    .alarm_description(&want.description)
                    .namespace(&want.namespace)
                    .metric_name(&want.metric)
                    .set_dimensions(Some(
                        want.dimensions.iter().map(|(k, v)| Dimension::builder().name(k).value(v).build()).collect(),
                    ))
                    .set_statistic(want.statistic.as_deref().map(Statistic::from))
                    .set_extended_statistic(want.extended_statistic.clone())
                    .period(want.period)
                    .evaluation_periods(want.evaluation_periods)
                    .datapoints_to_alarm(want.datapoints)
                    .threshold(want.threshold)
                    .comparison_operator(ComparisonOperator::from(want.comparison.as_str()))
                    .treat_missing_data("notBreaching")
                    .set_alarm_actions(Some(want.actions.clone()))
                    .set_ok_actions(Some(want.actions.clone()))
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .aws("cloudwatch:PutMetricAlarm")?;
                Ok(())
            }
        })
        .await?;
        names.sort();
        Ok(Outputs::from([("alarm_names".into(), list(names))]))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let names: Vec<String> = o.alarms.into_keys().collect();
        ctx.progress.step(&format!("deleting {} alarms", names.len()));
        for chunk in names.chunks(100) {
            ctx.clients
                .cloudwatch
                .delete_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .send()
                .await
                .aws("cloudwatch:DeleteAlarms")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waf_alarm_counts_what_every_rule_of_the_stack_s_acl_blocks() {
        let n = Names::new("qa", "eu-west-1", Some("123456789012"));
        let waf: Vec<Spec> = specs(&n, "arn:topic").into_iter().filter(|s| s.namespace == "AWS/WAFV2").collect();
        assert_eq!(waf.len(), 1);
        let s = sorted(waf[0].clone());
        assert_eq!((s.name.as_str(), s.metric.as_str()), ("payments-waf-blocked-qa", "BlockedRequests"));
        let dims: Vec<(&str, &str)> = s.dimensions.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(dims, [("Region", "eu-west-1"), ("Rule", "ALL"), ("WebACL", "payment-waf-qa")]);
        assert_eq!(s.condition(), "BlockedRequests Sum > 100 (1 of 1 × 300 s)");
        assert_eq!(s.actions, ["arn:topic"]);
    }

    #[test]
    fn an_alarm_drift_names_the_parts_that_differ() {
        let n = Names::new("qa", "us-east-1", Some("123456789012"));
        let want = sorted(specs(&n, "arn:topic").remove(1));
        let have = Spec { threshold: 5.0, period: 300, actions: vec![], ..want.clone() };
        assert_eq!(
            want.drift(&have).map(|d| d.to_string()),
            Some(
                "alarm payments-api-5xx-qa: 5XXError Sum > 5 (1 of 1 × 300 s); notifies none → \
                 5XXError Sum > 0 (1 of 1 × 60 s); notifies arn:topic"
                    .to_string()
            )
        );
        assert_eq!(want.drift(&want), None);
    }
}
