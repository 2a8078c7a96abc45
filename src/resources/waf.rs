//! `waf.web-acl`: the regional WAFv2 web ACL in front of the API stage (PCI DSS v4.0.1 6.4.2: an
//! automated technical solution that detects and prevents web-based attacks in front of the
//! public-facing web application), its logs and its association with the stage.
//!
//! - Default action Allow; before it, in this order: a rate-based rule per client IP
//!   (`--waf-rate-limit` requests per 5 minutes, block), then AWS's managed rule groups
//!   AmazonIpReputationList, CommonRuleSet, KnownBadInputsRuleSet and SQLiRuleSet with override
//!   action None, so that each group's own Block actions apply (Count would only watch). About
//!   1,130 WCUs, under the 1,500 a web ACL gets without extra charge.
//! - The common rule set's `SizeRestrictions_BODY` blocks bodies over 8 KB. The API's only body
//!   is payments-core's `PaymentRequest`, whose largest valid form is under 1 KB (under 3 KB with
//!   every character of its texts escaped; a unit test below builds it), and API Gateway's model refuses anything else: the rule cannot block a
//!   payment.
//! - Every rule and the ACL publish CloudWatch metrics and keep sampled requests:
//!   `monitoring.alarms` alarms on the ACL's BlockedRequests.
//! - Logs go to `aws-waf-logs-payments-<suffix>`, encrypted with the stack's key and kept for the
//!   stack's retention. WAF delivers only to log groups whose name starts with `aws-waf-logs-`,
//!   named by their ARN without the `:*` CloudWatch Logs appends; on the first
//!   PutLoggingConfiguration WAF adds the log-delivery statement to the account's Logs resource
//!   policy (AWSWAF-LOGS) itself (WAF developer guide, "Sending web ACL traffic logs to an Amazon
//!   CloudWatch Logs log group"), which is why tapctl makes no policy of its own. The
//!   `authorization` and `x-amz-security-token` headers are redacted: a SigV4 request carries the
//!   caller's key id and signature in the first, and a temporary credential in the second.
//! - The ACL guards the stage `api.rest` makes, by the stage's ARN
//!   (`arn:aws:apigateway:<region>::/restapis/<id>/stages/<stage>`). Right after a stage is made
//!   WAF answers WAFUnavailableEntityException for a while: retried (catalogue WAFV2_ASSOCIATION).
//! - Changes and deletes carry the ACL's lock token; when another writer moved it on
//!   (WAFOptimisticLockException) the token is read again and the call retried. An ACL that is
//!   still associated cannot be deleted (WAFAssociatedItemException): `destroy` first removes its
//!   logging configuration and every association (ListResourcesForWebACL), then retries the delete
//!   while WAF still sees them (catalogue WAFV2_WEB_ACL_DELETE).

use super::logs::{delete_group, ensure_group, group_drifts, observe_group, Group};
use crate::aws::{AwsError, AwsResultExt};
use crate::resources::retry::{catalogue, Propagation};
use crate::resources::{listed, on_off, Change, Ctx, Drift, Input, Outputs, Resource, ResourceError, Result};
use crate::traffic::STAGE;
use async_trait::async_trait;
use aws_sdk_wafv2::types::{
    AllowAction, BlockAction, DefaultAction, FieldToMatch, LoggingConfiguration, ManagedRuleGroupStatement, NoneAction,
    OverrideAction, RateBasedStatement, RateBasedStatementAggregateKeyType, ResourceType, Rule, RuleAction, Scope,
    SingleHeader, Statement, Tag, VisibilityConfig,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Mutex;

pub struct WebAcl;

pub const ID: &str = "waf.web-acl";

/// AWS's rate-based rules count over this window (EvaluationWindowSec: 60, 120, 300 or 600).
pub const RATE_WINDOW_SECONDS: i64 = 300;
pub const RATE_RULE: &str = "RateLimitPerClientIP";
/// AWS's managed rule groups, in the order they are evaluated after the rate rule: reputation
/// first (cheapest, drops known-bad sources before the heavier groups look at the request).
pub const MANAGED_GROUPS: [&str; 4] = [
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesSQLiRuleSet",
];
/// The headers WAF writes to its logs only as `REDACTED`.
pub const REDACTED_HEADERS: [&str; 2] = ["authorization", "x-amz-security-token"];
/// The body size over which the common rule set's `SizeRestrictions_BODY` blocks a request.
pub const COMMON_RULE_SET_BODY_LIMIT: usize = 8 * 1024;
/// Rules AWS Shield Advanced adds to a protected ACL for automatic mitigation: AWS's, never
/// drift, kept as they are when tapctl rewrites the rules (terraform `filterWebACLRules`).
const SHIELD_RULE_PREFIX: &str = "ShieldMitigationRuleGroup_";

/// The ARN WAF knows an API Gateway REST API stage by.
pub fn stage_arn(region: &str, api_id: &str, stage: &str) -> String {
    format!("arn:aws:apigateway:{region}::/restapis/{api_id}/stages/{stage}")
}

/// What a rule inspects, in words and comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspects {
    Managed { vendor: String, name: String, excluded: usize, overridden: usize },
    Rate { limit: i64, window: i64, key: String, scoped_down: bool },
    Other,
}

impl std::fmt::Display for Inspects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inspects::Managed { vendor, name, excluded, overridden } => {
                write!(f, "{vendor} managed rule group {name}")?;
                if *excluded + *overridden > 0 {
                    write!(f, " with {} of its rules' actions overridden", excluded + overridden)?;
                }
                Ok(())
            }
            Inspects::Rate { limit, window, key, scoped_down } => {
                let per = if key == "IP" { "client IP".to_string() } else { format!("key {key}") };
                write!(f, "{limit} requests per {per} in {} minutes", window / 60)?;
                if *scoped_down {
                    write!(f, " (of a subset of requests)")?;
                }
                Ok(())
            }
            Inspects::Other => write!(f, "a custom statement"),
        }
    }
}

/// A rule as tapctl compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView {
    pub name: String,
    pub priority: i32,
    pub inspects: Inspects,
    /// `block`, `count`, `allow`…: the rule's action, or for a rule group its override
    /// (`none`: the group's own actions).
    pub action: String,
    pub metrics: bool,
    pub sampled: bool,
    pub metric_name: String,
}

impl RuleView {
    fn parts(&self) -> [(&'static str, String); 4] {
        let inspects = match self.inspects {
            Inspects::Rate { .. } => "rate limit",
            _ => "inspects",
        };
        let action = match self.inspects {
            Inspects::Managed { .. } => "override action",
            _ => "action",
        };
        [
            ("priority", self.priority.to_string()),
            (inspects, self.inspects.to_string()),
            (action, self.action.clone()),
            ("metrics and sampled requests", visibility_words(self.metrics, self.sampled)),
        ]
    }

    /// How `have` differs from this rule: one drift per part.
    fn drifts(&self, have: &RuleView) -> Vec<Drift> {
        have.parts()
            .into_iter()
            .zip(self.parts())
            .filter(|((_, h), (_, w))| h != w)
            .map(|((label, h), (_, w))| Drift::new(format!("rule {} {label}", self.name), h, w))
            .collect()
    }

    /// The whole rule in a few words, for a missing or unexpected one.
    fn summary(&self) -> String {
        format!("{}, {} {}, priority {}", self.inspects, self.parts()[2].0, self.action, self.priority)
    }
}

fn visibility_words(metrics: bool, sampled: bool) -> String {
    if metrics == sampled {
        on_off(metrics).to_string()
    } else {
        format!("metrics {}, sampled requests {}", on_off(metrics), on_off(sampled))
    }
}

fn metric_name(ctx: &Ctx, rule: &str) -> String {
    format!("{}-{rule}", ctx.names.waf_acl())
}

/// The rules the stack wants, by priority.
pub fn wanted_rules(ctx: &Ctx) -> Vec<RuleView> {
    let rate = RuleView {
        name: RATE_RULE.into(),
        priority: 0,
        inspects: Inspects::Rate {
            limit: ctx.config.waf_rate_limit,
            window: RATE_WINDOW_SECONDS,
            key: "IP".into(),
            scoped_down: false,
        },
        action: "block".into(),
        metrics: true,
        sampled: true,
        metric_name: metric_name(ctx, RATE_RULE),
    };
    let managed = MANAGED_GROUPS.iter().zip(1..).map(|(group, priority)| RuleView {
        name: group.to_string(),
        priority,
        inspects: Inspects::Managed { vendor: "AWS".into(), name: group.to_string(), excluded: 0, overridden: 0 },
        action: "none".into(),
        metrics: true,
        sampled: true,
        metric_name: metric_name(ctx, group),
    });
    std::iter::once(rate).chain(managed).collect()
}

fn view_of(r: &Rule) -> RuleView {
    let statement = r.statement();
    let inspects = if let Some(m) = statement.and_then(Statement::managed_rule_group_statement) {
        Inspects::Managed {
            vendor: m.vendor_name().to_string(),
            name: m.name().to_string(),
            excluded: m.excluded_rules().len(),
            overridden: m.rule_action_overrides().len(),
        }
    } else if let Some(rate) = statement.and_then(Statement::rate_based_statement) {
        Inspects::Rate {
            limit: rate.limit(),
            // AWS's default when a request leaves it out.
            window: if rate.evaluation_window_sec() == 0 { RATE_WINDOW_SECONDS } else { rate.evaluation_window_sec() },
            key: rate.aggregate_key_type().as_str().to_string(),
            scoped_down: rate.scope_down_statement().is_some(),
        }
    } else {
        Inspects::Other
    };
    let action = match (r.action(), r.override_action()) {
        (Some(a), _) if a.block().is_some() => "block",
        (Some(a), _) if a.allow().is_some() => "allow",
        (Some(a), _) if a.count().is_some() => "count",
        (Some(a), _) if a.captcha().is_some() => "captcha",
        (Some(a), _) if a.challenge().is_some() => "challenge",
        (_, Some(o)) if o.none().is_some() => "none",
        (_, Some(o)) if o.count().is_some() => "count",
        _ => "none set",
    };
    let v = r.visibility_config();
    RuleView {
        name: r.name().to_string(),
        priority: r.priority(),
        inspects,
        action: action.to_string(),
        metrics: v.is_some_and(VisibilityConfig::cloud_watch_metrics_enabled),
        sampled: v.is_some_and(VisibilityConfig::sampled_requests_enabled),
        metric_name: v.map(|v| v.metric_name().to_string()).unwrap_or_default(),
    }
}

fn built<T>(what: &str, r: std::result::Result<T, aws_smithy_types::error::operation::BuildError>) -> Result<T> {
    r.map_err(|e| ResourceError::new("Internal", format!("building the {what}: {e}")))
}

fn visibility(metric: &str) -> Result<VisibilityConfig> {
    built(
        "visibility configuration",
        VisibilityConfig::builder()
            .cloud_watch_metrics_enabled(true)
            .sampled_requests_enabled(true)
            .metric_name(metric)
            .build(),
    )
}

/// The SDK form of a wanted rule.
fn rule_of(w: &RuleView) -> Result<Rule> {
    let mut b = Rule::builder().name(&w.name).priority(w.priority).visibility_config(visibility(&w.metric_name)?);
    match &w.inspects {
        Inspects::Rate { limit, window, .. } => {
            let rate = built(
                "rate-based statement",
                RateBasedStatement::builder()
                    .limit(*limit)
                    .evaluation_window_sec(*window)
                    .aggregate_key_type(RateBasedStatementAggregateKeyType::Ip)
                    .build(),
            )?;
            b = b
                .statement(Statement::builder().rate_based_statement(rate).build())
                .action(RuleAction::builder().block(BlockAction::builder().build()).build());
        }
        Inspects::Managed { vendor, name, .. } => {
            let group = built(
                "managed rule group statement",
                ManagedRuleGroupStatement::builder().vendor_name(vendor).name(name).build(),
            )?;
            b = b
                .statement(Statement::builder().managed_rule_group_statement(group).build())
                .override_action(OverrideAction::builder().none(NoneAction::builder().build()).build());
        }
        Inspects::Other => return Err(ResourceError::new("Internal", format!("rule {} has no statement", w.name))),
    }
    built("rule", b.build())
}

/// The web ACL as WAF holds it.
#[derive(Debug, Clone)]
pub struct Acl {
    pub id: String,
    pub arn: String,
    pub lock_token: String,
    pub description: Option<String>,
    pub default_allow: bool,
    pub rules: Vec<RuleView>,
    /// Shield Advanced's own rules, kept as they are.
    pub shield_rules: Vec<Rule>,
    pub metrics: bool,
    pub sampled: bool,
    pub tags: BTreeMap<String, String>,
}

/// The logging configuration of the ACL as WAF holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    pub destinations: Vec<String>,
    /// The headers redacted, lowercase; other redacted fields as `other`.
    pub redacted: Vec<String>,
}

pub struct Observed {
    pub acl: Option<Acl>,
    /// The stage's ARN and the web ACL WAF says guards it (None: none does). Unknown (None) when
    /// the API's outputs are not at hand (a destroy).
    pub stage: Option<(String, Option<String>)>,
    pub logging: Option<Logging>,
    pub group: Option<Group>,
}

/// WAF's "no such thing" answer: not a failure for lookups and deletes.
fn is_nonexistent(e: &AwsError) -> bool {
    e.code_is("WAFNonexistentItemException")
}

fn ok_if_nonexistent<T>(r: std::result::Result<T, AwsError>) -> std::result::Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_nonexistent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The regional web ACL named `name`, if one exists: (id, ARN).
pub async fn find(
    wafv2: &aws_sdk_wafv2::Client,
    name: &str,
) -> std::result::Result<Option<(String, String)>, AwsError> {
    let mut marker = None;
    loop {
        let page = wafv2
            .list_web_acls()
            .scope(Scope::Regional)
            .limit(100)
            .set_next_marker(marker)
            .send()
            .await
            .aws("wafv2:ListWebACLs")?;
        if let Some(s) = page.web_acls().iter().find(|s| s.name() == Some(name)) {
            return Ok(Some((s.id().unwrap_or_default().to_string(), s.arn().unwrap_or_default().to_string())));
        }
        // AWS sends a marker on every page; the last page is the one with no summaries.
        match page.next_marker() {
            Some(m) if !page.web_acls().is_empty() => marker = Some(m.to_string()),
            _ => return Ok(None),
        }
    }
}

async fn lock_token(ctx: &Ctx, id: &str) -> std::result::Result<String, AwsError> {
    let out = ctx
        .clients
        .wafv2
        .get_web_acl()
        .name(ctx.names.waf_acl())
        .scope(Scope::Regional)
        .id(id)
        .send()
        .await
        .aws("wafv2:GetWebACL")?;
    Ok(out.lock_token().unwrap_or_default().to_string())
}

async fn observe_acl(ctx: &Ctx) -> Result<Option<Acl>> {
    let wafv2 = &ctx.clients.wafv2;
    let Some((id, arn)) = find(wafv2, &ctx.names.waf_acl()).await? else { return Ok(None) };
    let out = wafv2.get_web_acl().name(ctx.names.waf_acl()).scope(Scope::Regional).id(&id).send().await;
    // Listed a moment ago and gone now: deleted meanwhile.
    let Some(out) = ok_if_nonexistent(out.aws("wafv2:GetWebACL"))? else { return Ok(None) };
    let Some(acl) = out.web_acl() else { return Ok(None) };
    let mut tags = BTreeMap::new();
    let mut marker = None;
    loop {
        let page = wafv2
            .list_tags_for_resource()
            .resource_arn(&arn)
            .set_next_marker(marker)
            .send()
            .await
            .aws("wafv2:ListTagsForResource")?;
        let list = page.tag_info_for_resource().map(|t| t.tag_list()).unwrap_or_default();
        tags.extend(list.iter().map(|t| (t.key().to_string(), t.value().to_string())));
        match page.next_marker() {
            Some(m) if !list.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    let (shield_rules, rules): (Vec<&Rule>, Vec<&Rule>) =
        acl.rules().iter().partition(|r| r.name().starts_with(SHIELD_RULE_PREFIX));
    let v = acl.visibility_config();
    Ok(Some(Acl {
        id,
        arn,
        lock_token: out.lock_token().unwrap_or_default().to_string(),
        description: acl.description().map(str::to_string),
        default_allow: acl.default_action().is_some_and(|d| d.allow().is_some()),
        rules: rules.into_iter().map(view_of).collect(),
        shield_rules: shield_rules.into_iter().cloned().collect(),
        metrics: v.is_some_and(VisibilityConfig::cloud_watch_metrics_enabled),
        sampled: v.is_some_and(VisibilityConfig::sampled_requests_enabled),
        tags,
    }))
}

async fn observe_logging(ctx: &Ctx, acl_arn: &str) -> Result<Option<Logging>> {
    let out = ctx.clients.wafv2.get_logging_configuration().resource_arn(acl_arn).send().await;
    let Some(out) = ok_if_nonexistent(out.aws("wafv2:GetLoggingConfiguration"))? else { return Ok(None) };
    let Some(c) = out.logging_configuration() else { return Ok(None) };
    let mut redacted: Vec<String> = c
        .redacted_fields()
        .iter()
        .map(|f| f.single_header().map_or_else(|| "other".to_string(), |h| h.name().to_ascii_lowercase()))
        .collect();
    redacted.sort();
    Ok(Some(Logging { destinations: c.log_destination_configs().to_vec(), redacted }))
}

/// The stage's ARN, from what `api.rest` outputs (absent in a destroy, which reads nothing).
fn stage_of(ctx: &Ctx) -> Option<String> {
    let api_id = ctx.input(super::api::rest::ID, "api_id").ok()?;
    let stage = ctx.input(super::api::rest::ID, "stage").ok()?;
    Some(stage_arn(&ctx.config.region, &api_id, &stage))
}

/// The log group's ARN as WAF takes it: without the `:*` DescribeLogGroups adds.
fn log_group_arn(ctx: &Ctx) -> String {
    format!("arn:aws:logs:{}:{}:log-group:{}", ctx.names.region, ctx.names.account, ctx.names.waf_log_group())
}

/// The name of the ACL an ARN names (`…:regional/webacl/<name>/<id>`).
fn acl_name_of(arn: &str) -> &str {
    arn.rsplit('/').nth(1).unwrap_or(arn)
}

fn wanted_redaction() -> Vec<String> {
    let mut v: Vec<String> = REDACTED_HEADERS.iter().map(|h| h.to_string()).collect();
    v.sort();
    v
}

fn logging_words(ctx: &Ctx) -> String {
    format!("to log group {}, {} redacted", ctx.names.waf_log_group(), listed(REDACTED_HEADERS))
}

/// The drifts of the ACL's own settings (those UpdateWebACL repairs).
fn acl_drifts(ctx: &Ctx, acl: &Acl) -> Vec<Drift> {
    let mut d = Vec::new();
    if !acl.default_allow {
        d.push(Drift::new("default action", "block", "allow"));
    }
    if !(acl.metrics && acl.sampled) {
        d.push(Drift::new("web ACL metrics and sampled requests", visibility_words(acl.metrics, acl.sampled), "on"));
    }
    let wanted = wanted_rules(ctx);
    for w in &wanted {
        match acl.rules.iter().find(|r| r.name == w.name) {
            None => d.push(Drift::missing(format!("rule {}", w.name), w.summary())),
            Some(have) => d.extend(w.drifts(have)),
        }
    }
    for have in acl.rules.iter().filter(|r| !wanted.iter().any(|w| w.name == r.name)) {
        d.push(Drift::unexpected(format!("rule {}", have.name), have.summary()));
    }
    d
}

fn association_field() -> String {
    format!("web ACL association with API stage {STAGE}")
}

fn association_drift(ctx: &Ctx, stage: &Option<(String, Option<String>)>, acl_arn: Option<&str>) -> Option<Drift> {
    let (_, associated) = stage.as_ref()?;
    let want = ctx.names.waf_acl();
    match associated {
        None => Some(Drift::missing(association_field(), want)),
        Some(arn) if Some(arn.as_str()) != acl_arn => Some(Drift::new(association_field(), acl_name_of(arn), want)),
        Some(_) => None,
    }
}

fn logging_drifts(ctx: &Ctx, logging: Option<&Logging>) -> Vec<Drift> {
    let Some(l) = logging else { return vec![Drift::missing("logging configuration", logging_words(ctx))] };
    let mut d = Vec::new();
    let want = log_group_arn(ctx);
    if l.destinations != [want.clone()] {
        d.push(Drift::new("logging destination", listed(&l.destinations), want));
    }
    if l.redacted != wanted_redaction() {
        let have = if l.redacted.is_empty() { "none".to_string() } else { format!("headers {}", listed(&l.redacted)) };
        d.push(Drift::new("logging redacted fields", have, format!("headers {}", listed(wanted_redaction()))));
    }
    d
}

/// Calls a write of the ACL with its lock token, reading the token again after another writer
/// moved it on, while `p` says WAF is not ready for it.
async fn with_lock_token<F, Fut>(ctx: &Ctx, p: &Propagation, acl_id: &str, first: String, write: F) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), AwsError>>,
{
    let token = Mutex::new(Some(first));
    let (token, write) = (&token, &write);
    ctx.retry_while_propagating(p, &format!("web ACL {}", ctx.names.waf_acl()), move || async move {
        let known = token.lock().unwrap_or_else(|x| x.into_inner()).take();
        let t = match known {
            Some(t) => t,
            None => lock_token(ctx, acl_id).await?,
        };
        let r = write(t.clone()).await;
        if !matches!(&r, Err(e) if e.code_is("WAFOptimisticLockException")) {
            *token.lock().unwrap_or_else(|x| x.into_inner()) = Some(t);
        }
        r
    })
    .await
}

fn wafv2_tags(ctx: &Ctx) -> Result<Vec<Tag>> {
    ctx.tags(None, None).iter().map(|(k, v)| built("tag", Tag::builder().key(k).value(v).build())).collect()
}

fn description(ctx: &Ctx) -> String {
    format!("PCI DSS 6.4.2: in front of {} stage {STAGE}", ctx.names.api())
}

#[async_trait]
impl Resource for WebAcl {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: super::kms::ID, key: "key_arn" },
            Input { node: super::api::rest::ID, key: "api_id" },
            Input { node: super::api::rest::ID, key: "stage" },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let acl = observe_acl(ctx).await?;
        let group = observe_group(ctx, &ctx.names.waf_log_group()).await?;
        if acl.is_none() && group.is_none() {
            return Ok(None);
        }
        let logging = match &acl {
            Some(a) => observe_logging(ctx, &a.arn).await?,
            None => None,
        };
        let stage = match stage_of(ctx) {
            Some(arn) => {
                let out = ctx.clients.wafv2.get_web_acl_for_resource().resource_arn(&arn).send().await;
                // WAF answers "nonexistent" for a stage it does not know (yet): nothing guards it.
                let associated = ok_if_nonexistent(out.aws("wafv2:GetWebACLForResource"))?
                    .and_then(|o| o.web_acl().map(|w| w.arn().to_string()));
                Some((arn, associated))
            }
            None => None,
        };
        Ok(Some(Observed { acl, stage, logging, group }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let mut d = group_drifts(ctx, &ctx.names.waf_log_group(), o.group.as_ref(), &key);
        match &o.acl {
            None => d.push(Drift::missing(
                format!("web ACL {}", ctx.names.waf_acl()),
                format!("{} rules before allowing", wanted_rules(ctx).len()),
            )),
            Some(acl) => {
                d.extend(acl_drifts(ctx, acl));
                d.extend(ctx.tag_drift(&acl.tags));
                d.extend(logging_drifts(ctx, o.logging.as_ref()));
            }
        }
        d.extend(association_drift(ctx, &o.stage, o.acl.as_ref().map(|a| a.arn.as_str())));
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        let mut out = Outputs::from([("web_acl_name".into(), json!(ctx.names.waf_acl()))]);
        if let Some(a) = &o.acl {
            out.insert("web_acl_arn".into(), json!(a.arn));
        }
        out
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let wafv2 = &ctx.clients.wafv2;
        let key = ctx.input(super::kms::ID, "key_arn")?;
        let stage = stage_of(ctx).ok_or_else(|| {
            ResourceError::new("MissingInput", format!("{}: the API stage's id is not known", ctx.names.waf_acl()))
        })?;
        let o = observed.unwrap_or(Observed { acl: None, stage: None, logging: None, group: None });
        let name = ctx.names.waf_acl();
        let tags = ctx.tags(None, None);

        // Logs first: the group exists, encrypted, before WAF writes a line.
        let group_name = ctx.names.waf_log_group();
        ensure_group(ctx, &group_name, o.group.as_ref(), &key, &tags).await?;

        let wanted = wanted_rules(ctx);
        let rules: Vec<Rule> = wanted.iter().map(rule_of).collect::<Result<_>>()?;
        let default_action = DefaultAction::builder().allow(AllowAction::builder().build()).build();
        let acl = match o.acl {
            Some(acl) => Some(acl),
            None => {
                ctx.progress.step(&format!(
                    "creating web ACL {name}: rate limit {} per client IP, {}",
                    ctx.config.waf_rate_limit,
                    listed(MANAGED_GROUPS)
                ));
                let created = wafv2
                    .create_web_acl()
                    .name(&name)
                    .scope(Scope::Regional)
                    .description(description(ctx))
                    .default_action(default_action.clone())
                    .set_rules(Some(rules.clone()))
                    .visibility_config(visibility(&name)?)
                    .set_tags(Some(wafv2_tags(ctx)?))
                    .send()
                    .await
                    .aws("wafv2:CreateWebACL");
                match created {
                    // The create's summary names the ACL and its lock token: no list (which may
                    // lag the create) between it and the association. It holds what was sent.
                    Ok(out) => out.summary().map(|s| Acl {
                        id: s.id().unwrap_or_default().to_string(),
                        arn: s.arn().unwrap_or_default().to_string(),
                        lock_token: s.lock_token().unwrap_or_default().to_string(),
                        description: Some(description(ctx)),
                        default_allow: true,
                        rules: wanted.clone(),
                        shield_rules: Vec::new(),
                        metrics: true,
                        sampled: true,
                        tags: ctx.tags(None, None).into_iter().collect(),
                    }),
                    // A killed run made it between its create and its save: adopt it below.
                    Err(e) if e.code_is("WAFDuplicateItemException") => None,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let acl = match acl {
            Some(acl) => acl,
            None => observe_acl(ctx)
                .await?
                .ok_or_else(|| ResourceError::new("NotFound", format!("web ACL {name} vanished after its create")))?,
        };

        let drifts = acl_drifts(ctx, &acl);
        if !drifts.is_empty() {
            ctx.progress.step(&format!(
                "changing web ACL {name}: {}",
                drifts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ));
            let mut all_rules = rules.clone();
            all_rules.extend(acl.shield_rules.iter().cloned());
            let (rules, default_action, visibility, description) =
                (&all_rules, &default_action, &visibility(&name)?, acl.description.clone());
            let (name, id) = (&name, &acl.id);
            // UpdateWebACL replaces the whole definition: every field is sent.
            with_lock_token(ctx, &catalogue::WAFV2_WEB_ACL_UPDATE, &acl.id, acl.lock_token.clone(), |token| {
                let description = description.clone();
                async move {
                    wafv2
                        .update_web_acl()
                        .name(name)
                        .scope(Scope::Regional)
                        .id(id)
                        .lock_token(token)
                        .set_description(description)
                        .default_action(default_action.clone())
                        .set_rules(Some(rules.clone()))
                        .visibility_config(visibility.clone())
                        .send()
                        .await
                        .aws("wafv2:UpdateWebACL")
                        .map(|_| ())
                }
            })
            .await?;
        }
        if let Some(drift) = ctx.tag_drift(&acl.tags) {
            ctx.progress.step(&format!("tagging web ACL {name}: {}", drift.wanted));
            wafv2
                .tag_resource()
                .resource_arn(&acl.arn)
                .set_tags(Some(wafv2_tags(ctx)?))
                .send()
                .await
                .aws("wafv2:TagResource")?;
        }

        // Logging before the association: the first request WAF inspects is logged.
        let logging = observe_logging(ctx, &acl.arn).await?;
        if !logging_drifts(ctx, logging.as_ref()).is_empty() {
            ctx.progress.step(&format!("logging web ACL {name} {}", logging_words(ctx)));
            let redacted = REDACTED_HEADERS
                .iter()
                .map(|h| {
                    built("redacted header", SingleHeader::builder().name(*h).build())
                        .map(|s| FieldToMatch::builder().single_header(s).build())
                })
                .collect::<Result<Vec<_>>>()?;
            let config = built(
                "logging configuration",
                LoggingConfiguration::builder()
                    .resource_arn(&acl.arn)
                    .log_destination_configs(log_group_arn(ctx))
                    .set_redacted_fields(Some(redacted))
                    .build(),
            )?;
            wafv2
                .put_logging_configuration()
                .logging_configuration(config)
                .send()
                .await
                .aws("wafv2:PutLoggingConfiguration")?;
        }

        let associated = match &o.stage {
            Some((arn, associated)) if *arn == stage => associated.clone(),
            _ => ok_if_nonexistent(
                wafv2.get_web_acl_for_resource().resource_arn(&stage).send().await.aws("wafv2:GetWebACLForResource"),
            )?
            .and_then(|o| o.web_acl().map(|w| w.arn().to_string())),
        };
        if associated.as_deref() != Some(acl.arn.as_str()) {
            if let Some(other) = &associated {
                // One web ACL per resource: the other goes first, so that the stage is never left
                // to whichever of two associations WAF honours.
                ctx.progress.step(&format!("removing web ACL {} from API stage {STAGE}", acl_name_of(other)));
                wafv2.disassociate_web_acl().resource_arn(&stage).send().await.aws("wafv2:DisassociateWebACL")?;
            }
            ctx.progress.step(&format!("associating web ACL {name} with API stage {STAGE}"));
            let (acl_arn, stage) = (&acl.arn, &stage);
            ctx.retry_while_propagating(&catalogue::WAFV2_ASSOCIATION, &format!("stage {stage}"), || async move {
                wafv2
                    .associate_web_acl()
                    .web_acl_arn(acl_arn)
                    .resource_arn(stage)
                    .send()
                    .await
                    .aws("wafv2:AssociateWebACL")
                    .map(|_| ())
            })
            .await?;
        }
        Ok(Outputs::from([("web_acl_name".into(), json!(name)), ("web_acl_arn".into(), json!(acl.arn))]))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        let wafv2 = &ctx.clients.wafv2;
        if let Some(acl) = &o.acl {
            let name = ctx.names.waf_acl();
            ok_if_nonexistent(
                wafv2
                    .delete_logging_configuration()
                    .resource_arn(&acl.arn)
                    .send()
                    .await
                    .aws("wafv2:DeleteLoggingConfiguration"),
            )?;
            // Every resource it guards, the stage and any other: WAF refuses to delete an ACL
            // that still guards one. Regional ACLs list by resource type (ALB by default).
            let guarded = wafv2
                .list_resources_for_web_acl()
                .web_acl_arn(&acl.arn)
                .resource_type(ResourceType::ApiGateway)
                .send()
                .await
                .aws("wafv2:ListResourcesForWebACL")?;
            for resource in guarded.resource_arns() {
                ctx.progress.step(&format!("removing web ACL {name} from {resource}"));
                ok_if_nonexistent(
                    wafv2.disassociate_web_acl().resource_arn(resource).send().await.aws("wafv2:DisassociateWebACL"),
                )?;
            }
            ctx.progress.step(&format!("deleting web ACL {name}"));
            let (name, id) = (&name, &acl.id);
            with_lock_token(
                ctx,
                &catalogue::WAFV2_WEB_ACL_DELETE,
                &acl.id,
                acl.lock_token.clone(),
                |token| async move {
                    ok_if_nonexistent(
                        wafv2
                            .delete_web_acl()
                            .name(name)
                            .scope(Scope::Regional)
                            .id(id)
                            .lock_token(token)
                            .send()
                            .await
                            .aws("wafv2:DeleteWebACL"),
                    )
                    .map(|_| ())
                },
            )
            .await?;
        }
        delete_group(ctx, &ctx.names.waf_log_group()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};

    fn qa() -> Ctx {
        ctx(ID, WebAcl.reads(), &[("kms.key", "key_arn", json!("arn:key")), ("api.rest", "api_id", json!("a1b2c3"))])
    }

    fn acl(rules: Vec<RuleView>) -> Acl {
        Acl {
            id: "id".into(),
            arn: "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/payment-waf-qa/id".into(),
            lock_token: "t".into(),
            description: None,
            default_allow: true,
            rules,
            shield_rules: vec![],
            metrics: true,
            sampled: true,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn the_web_acl_writes_retry_waf_s_not_yet_answers_and_nothing_else() {
        let e = |code: &str| AwsError {
            operation: "wafv2:X".into(),
            code: Some(code.into()),
            message: "m".into(),
            transient: false,
        };
        for code in ["WAFOptimisticLockException", "WAFUnavailableEntityException"] {
            assert!(catalogue::WAFV2_WEB_ACL_UPDATE.matches(&e(code)), "{code}");
            assert!(catalogue::WAFV2_WEB_ACL_DELETE.matches(&e(code)), "{code}");
        }
        assert!(catalogue::WAFV2_WEB_ACL_DELETE.matches(&e("WAFAssociatedItemException")));
        assert!(!catalogue::WAFV2_WEB_ACL_UPDATE.matches(&e("WAFAssociatedItemException")));
        for real in ["WAFInvalidParameterException", "WAFLimitsExceededException", "WAFNonexistentItemException"] {
            assert!(
                !catalogue::WAFV2_WEB_ACL_UPDATE.matches(&e(real))
                    && !catalogue::WAFV2_WEB_ACL_DELETE.matches(&e(real))
            );
        }
    }

    #[test]
    fn the_stage_arn_is_the_form_waf_knows_api_gateway_stages_by() {
        assert_eq!(
            stage_arn("eu-west-1", "a1b2c3", "live"),
            "arn:aws:apigateway:eu-west-1::/restapis/a1b2c3/stages/live"
        );
        assert_eq!(acl_name_of("arn:aws:wafv2:us-east-1:1:regional/webacl/payment-waf-qa/abc-123"), "payment-waf-qa");
    }

    #[test]
    fn the_wanted_rules_round_trip_through_the_sdk_form_and_have_no_drift() {
        let ctx = qa();
        let wanted = wanted_rules(&ctx);
        let have: Vec<RuleView> = wanted.iter().map(|w| view_of(&rule_of(w).unwrap())).collect();
        assert_eq!(have, wanted);
        assert!(acl_drifts(&ctx, &acl(have)).is_empty());
        let priorities: Vec<i32> = wanted.iter().map(|r| r.priority).collect();
        assert_eq!(priorities, [0, 1, 2, 3, 4], "each rule its own priority, rate limit first");
    }

    #[test]
    fn each_drift_of_the_rules_is_named_in_words() {
        let ctx = qa();
        let mut rules = wanted_rules(&ctx);
        rules.retain(|r| r.name != "AWSManagedRulesSQLiRuleSet");
        rules[0].inspects = Inspects::Rate { limit: 100, window: 300, key: "IP".into(), scoped_down: false };
        rules[1].action = "count".into();
        rules[2].metrics = false;
        let mut a = acl(rules);
        a.default_allow = false;
        let d = acl_drifts(&ctx, &a);
        assert_plain(&d.iter().collect::<Vec<_>>());
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "default action: block → allow",
                "rule RateLimitPerClientIP rate limit: 100 requests per client IP in 5 minutes → \
                 2000 requests per client IP in 5 minutes",
                "rule AWSManagedRulesAmazonIpReputationList override action: count → none",
                "rule AWSManagedRulesCommonRuleSet metrics and sampled requests: metrics off, sampled requests on → on",
                "rule AWSManagedRulesSQLiRuleSet: missing → AWS managed rule group AWSManagedRulesSQLiRuleSet, \
                 override action none, priority 4",
            ]
        );
    }

    #[test]
    fn association_and_logging_drifts_say_what_guards_the_stage_and_what_is_redacted() {
        let ctx = qa();
        let ours = acl(vec![]).arn;
        let stage = |a: Option<&str>| Some(("arn:stage".to_string(), a.map(str::to_string)));
        assert_eq!(
            association_drift(&ctx, &stage(None), Some(&ours)).unwrap().to_string(),
            "web ACL association with API stage live: missing → payment-waf-qa"
        );
        let other = "arn:aws:wafv2:us-east-1:1:regional/webacl/someone-elses/x";
        assert_eq!(
            association_drift(&ctx, &stage(Some(other)), Some(&ours)).unwrap().to_string(),
            "web ACL association with API stage live: someone-elses → payment-waf-qa"
        );
        assert_eq!(association_drift(&ctx, &stage(Some(&ours)), Some(&ours)), None);
        assert_eq!(association_drift(&ctx, &None, Some(&ours)), None, "unknown in a destroy: no drift");
        assert_eq!(
            logging_drifts(&ctx, None)[0].to_string(),
            "logging configuration: missing → to log group aws-waf-logs-payments-qa, \
             authorization, x-amz-security-token redacted"
        );
        let unredacted = Logging { destinations: vec![log_group_arn(&ctx)], redacted: vec![] };
        assert_eq!(
            logging_drifts(&ctx, Some(&unredacted))[0].to_string(),
            "logging redacted fields: none → headers authorization, x-amz-security-token"
        );
        assert!(!log_group_arn(&ctx).ends_with(":*"), "WAF refuses the ARN with :*");
        assert!(ctx.names.waf_log_group().starts_with("aws-waf-logs-"), "WAF logs only to aws-waf-logs-* groups");
    }

    /// The largest body the API's model lets through, every string at its longest: the common
    /// rule set's SizeRestrictions_BODY (8 KB) must never see one that big.
    #[test]
    fn the_largest_valid_payment_request_is_far_under_the_common_rule_sets_body_limit() {
        let schema = payments_core::schemas::payment_request();
        let props = &schema["properties"];
        let longest = |p: &serde_json::Value| "x".repeat(p["maxLength"].as_u64().unwrap_or(0) as usize);
        let body = json!({
            "merchant_id": longest(&props["merchant_id"]),
            "customer_id": longest(&props["customer_id"]),
            "amount": i64::MAX,
            "currency": "USD",
            "card": { "number": "4".repeat(23), "exp_month": 12, "exp_year": 9999, "cvv": "1234" },
            "ip_country": "US",
            "description": longest(&props["description"]),
        });
        let keys: Vec<&String> = props.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), body.as_object().unwrap().len(), "every property at its largest: {keys:?}");
        // Pretty-printed, as a client might send it, and with \u escapes for every character of
        // the free texts (six bytes each): still far under.
        assert!(body.to_string().len() < 1024, "{body}");
        let escaped = body.to_string().len() + 6 * (64 + 64 + 255);
        assert!(escaped < COMMON_RULE_SET_BODY_LIMIT / 2, "{escaped} bytes");
        assert!(serde_json::to_string_pretty(&body).unwrap().len() < COMMON_RULE_SET_BODY_LIMIT / 4);
    }
}
