//! `api.domain`: the URL clients use (PCI DSS 4.2.1: strong cryptography on the public path).
//!
//! With `--domain` and `--certificate-arn`, a regional custom domain with the API's own TLS 1.2+
//! policy in STRICT mode, the `live` stage mapped at its root, and the default execute-api
//! endpoint disabled, so that the certificate the operator controls is the only way in. Without
//! them the node is off: nothing of it exists and clients use the execute-api URL.
//!
//! Order is what keeps clients served: on the way in, the domain and its mapping exist before
//! the default endpoint is disabled; on the way out (`--domain "" --certificate-arn ""`), the
//! default endpoint is enabled again before the domain goes. API Gateway applies the endpoint
//! setting only "when you update any setting on any stage" (developer guide, "Disable the default
//! endpoint for REST APIs"), so each change of it is followed by one of the stage's description,
//! which records the setting it made take effect: a run killed between the two is drift the
//! next run repairs.
//!
//! The domain is this stack's only if it carries the stack's tag: a domain of the same name made
//! by anyone else is refused, never changed.

use crate::aws::{AlreadyExistsExt, AwsResultExt, NotFoundExt};
use crate::names::tag;
use crate::resources::retry::{catalogue, Readiness};
use crate::resources::{or_none, Change, Ctx, Drift, Input, Outputs, Resource, ResourceError, Result};
use crate::traffic::STAGE;
use async_trait::async_trait;
use aws_sdk_apigateway::types::{
    DomainNameStatus, EndpointAccessMode, EndpointConfiguration, EndpointType, SecurityPolicy,
};
use futures::FutureExt;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

use super::replace;
use super::rest::{self, ENDPOINT_ACCESS_MODE, SECURITY_POLICY};

pub struct ApiDomain;

pub const ID: &str = "api.domain";
/// API Gateway's name for the mapping of a domain's root.
const ROOT: &str = "(none)";
/// A regional domain with an ACM certificate of its region is usable within a minute; an update
/// of its certificate or policy takes "a few minutes" (API Gateway's custom-domain guide).
const DOMAIN_READY: Duration = Duration::from_secs(15 * 60);

/// The stage description that says which endpoint setting the last stage update applied.
pub fn stage_marker(execute_api_disabled: bool) -> &'static str {
    if execute_api_disabled {
        "tapctl: default execute-api endpoint disabled; clients use the custom domain"
    } else {
        "tapctl: default execute-api endpoint enabled"
    }
}

/// The custom domain as API Gateway holds it.
/// The endpoint type tapctl's domains have: the API is regional, and the domain in front of it too.
const REGIONAL: &str = "REGIONAL";

#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    pub name: String,
    pub certificate_arn: Option<String>,
    pub security_policy: Option<String>,
    pub endpoint_access_mode: Option<String>,
    /// `REGIONAL`, `EDGE`: one type (API Gateway takes one per domain).
    pub endpoint_types: Vec<String>,
    pub status: Option<String>,
    pub target: Option<String>,
    pub hosted_zone_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Base path → (REST API id, stage).
    pub mappings: BTreeMap<String, (String, Option<String>)>,
}

impl Domain {
    fn is_regional(&self) -> bool {
        self.endpoint_types == [REGIONAL]
    }
}

/// The API's default endpoint: the setting and whether a stage update has applied it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub api_id: String,
    pub disabled: bool,
    pub stage_description: Option<String>,
}

impl Endpoint {
    /// Whether the stage was updated after the setting last changed (a stage never touched by
    /// tapctl applies the default, enabled, setting).
    fn applied(&self) -> bool {
        self.stage_description.as_deref() == Some(stage_marker(self.disabled))
            || (!self.disabled && self.stage_description.is_none())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The wanted domain, or the one this stack recorded and no longer wants.
    pub domain: Option<Domain>,
    /// The domain this stack recorded when another one is wanted (`--domain` changed): it goes
    /// once the new one serves the stage, so it is never left mapped and forgotten.
    pub replaced: Option<Domain>,
    /// None before the API exists (a plan of a new stack) and in a destroy.
    pub endpoint: Option<Endpoint>,
}

/// The API's id: from api.rest during `up` and `plan`, else as recorded (destroy has no inputs).
fn api_id(ctx: &Ctx) -> Option<String> {
    ctx.input(rest::ID, "api_id").ok().or_else(|| ctx.recorded_str("api_id").map(str::to_string))
}

async fn observe_domain(ctx: &Ctx, name: &str) -> Result<Option<Domain>> {
    let apigw = &ctx.clients.apigateway;
    let Some(d) =
        apigw.get_domain_name().domain_name(name).send().await.aws("apigateway:GetDomainName").ok_if_not_found()?
    else {
        return Ok(None);
    };
    let tags: BTreeMap<String, String> =
        d.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    let owner = tags.get(tag::STACK).cloned();
    if owner.as_deref() != Some(ctx.names.stack_tag().as_str()) {
        return Err(ResourceError::new(
            "DomainNotOurs",
            format!(
                "the custom domain {name} exists and is not this stack's (its {} tag: {})",
                tag::STACK,
                or_none(owner)
            ),
        )
        .with_hint("pass another --domain, or remove that domain name from API Gateway first"));
    }
    let mappings = apigw
        .get_base_path_mappings()
        .domain_name(name)
        .limit(500)
        .send()
        .await
        .aws("apigateway:GetBasePathMappings")?
        .items()
        .iter()
        .map(|m| {
            (
                m.base_path().unwrap_or(ROOT).to_string(),
                (m.rest_api_id().unwrap_or_default().to_string(), m.stage().map(str::to_string)),
            )
        })
        .collect();
    Ok(Some(Domain {
        name: name.to_string(),
        certificate_arn: d.regional_certificate_arn().map(str::to_string),
        security_policy: d.security_policy().map(|p| p.as_str().to_string()),
        endpoint_access_mode: d.endpoint_access_mode().map(|m| m.as_str().to_string()),
        endpoint_types: d
            .endpoint_configuration()
            .map(|c| c.types().iter().map(|t| t.as_str().to_string()).collect())
            .unwrap_or_default(),
        status: d.domain_name_status().map(|s| s.as_str().to_string()),
        target: d.regional_domain_name().map(str::to_string),
        hosted_zone_id: d.regional_hosted_zone_id().map(str::to_string),
        tags,
        mappings,
    }))
}

/// `domain_involved`: a domain is wanted or recorded. Without one, an enabled endpoint is all
/// there is to see, and the stage (whose description carries the marker) is read only when the
/// endpoint is disabled: a stack without a domain costs one GetRestApi here, not a second
/// stage read per run (api.rest owns that one).
async fn observe_endpoint(ctx: &Ctx, api_id: &str, domain_involved: bool) -> Result<Option<Endpoint>> {
    let apigw = &ctx.clients.apigateway;
    let Some(api) =
        apigw.get_rest_api().rest_api_id(api_id).send().await.aws("apigateway:GetRestApi").ok_if_not_found()?
    else {
        return Ok(None);
    };
    if !domain_involved && !api.disable_execute_api_endpoint() {
        return Ok(Some(Endpoint { api_id: api_id.to_string(), disabled: false, stage_description: None }));
    }
    let stage = apigw
        .get_stage()
        .rest_api_id(api_id)
        .stage_name(STAGE)
        .send()
        .await
        .aws("apigateway:GetStage")
        .ok_if_not_found()?;
    Ok(Some(Endpoint {
        api_id: api_id.to_string(),
        disabled: api.disable_execute_api_endpoint(),
        stage_description: stage.and_then(|s| s.description().map(str::to_string)),
    }))
}

/// The domain's state, exhaustively: an unknown state is not ready.
fn readiness(d: Option<Domain>) -> Readiness<Domain> {
    let Some(d) = d else { return Readiness::Absent };
    let status = d.status.as_deref().map(DomainNameStatus::from);
    match status {
        Some(DomainNameStatus::Available) => Readiness::Ready(d),
        Some(DomainNameStatus::Pending | DomainNameStatus::Updating) => {
            Readiness::Pending(d.status.clone().unwrap_or_default())
        }
        Some(DomainNameStatus::PendingCertificateReimport) => {
            Readiness::Failed("its certificate must be re-imported into ACM (PENDING_CERTIFICATE_REIMPORT)".into())
        }
        Some(DomainNameStatus::PendingOwnershipVerification) => Readiness::Failed(
            "ACM must verify the ownership of the domain first (PENDING_OWNERSHIP_VERIFICATION)".into(),
        ),
        Some(DomainNameStatus::Failed) => Readiness::Failed("FAILED".into()),
        Some(other) => Readiness::Pending(other.as_str().to_string()),
        None => Readiness::Pending("no status yet".into()),
    }
}

fn domain_drifts(ctx: &Ctx, want: &crate::config::ApiDomain, d: &Domain, api_id: Option<&str>) -> Vec<Drift> {
    let mut drifts = Vec::new();
    let name = &d.name;
    if d.certificate_arn.as_deref() != Some(want.certificate_arn.as_str()) {
        drifts.push(Drift::new(
            format!("domain {name} certificate"),
            or_none(d.certificate_arn.as_ref()),
            &want.certificate_arn,
        ));
    }
    if d.security_policy.as_deref() != Some(SECURITY_POLICY) {
        drifts.push(Drift::new(
            format!("domain {name} TLS security policy"),
            or_none(d.security_policy.as_ref()),
            format!("{SECURITY_POLICY} (TLS 1.2 and 1.3 only)"),
        ));
    }
    if d.endpoint_access_mode.as_deref() != Some(ENDPOINT_ACCESS_MODE) {
        drifts.push(Drift::new(
            format!("domain {name} endpoint access mode"),
            or_none(d.endpoint_access_mode.as_ref()),
            ENDPOINT_ACCESS_MODE,
        ));
    }
    if !d.is_regional() {
        drifts.push(Drift::new(format!("domain {name} endpoint type"), d.endpoint_types.join(", "), REGIONAL));
    }
    if let Some(t) = crate::resources::tags_drift(format!("domain {name} tags"), &d.tags, &ctx.tags(None, Some(name))) {
        drifts.push(t);
    }
    if let Some(api_id) = api_id {
        let want = (api_id.to_string(), Some(STAGE.to_string()));
        match d.mappings.get(ROOT) {
            Some(have) if *have == want => {}
            Some((api, stage)) => drifts.push(Drift::new(
                format!("domain {name} mapping /"),
                format!("{api}/{}", or_none(stage.as_ref())),
                format!("{api_id}/{STAGE}"),
            )),
            None => drifts.push(Drift::missing(format!("domain {name} mapping /"), format!("{api_id}/{STAGE}"))),
        }
    }
    for (path, (api, stage)) in d.mappings.iter().filter(|(p, _)| p.as_str() != ROOT) {
        drifts.push(Drift::unexpected(
            format!("domain {name} mapping /{path}"),
            format!("{api}/{}", or_none(stage.as_ref())),
        ));
    }
    drifts
}

fn endpoint_drifts(e: &Endpoint, want_disabled: bool) -> Vec<Drift> {
    let words = |disabled: bool| if disabled { "disabled" } else { "enabled" };
    if e.disabled != want_disabled {
        vec![Drift::new("default execute-api endpoint", words(e.disabled), words(want_disabled))]
    } else if !e.applied() {
        vec![Drift::new(
            format!("stage {STAGE}"),
            "not updated since the endpoint setting changed",
            format!("updated, so that the {} endpoint takes effect", words(want_disabled)),
        )]
    } else {
        vec![]
    }
}

/// Sets the default endpoint and updates the stage so that the setting takes effect.
async fn set_endpoint(ctx: &Ctx, api_id: &str, disabled: bool) -> Result<()> {
    let apigw = &ctx.clients.apigateway;
    let verb = if disabled { "disabling" } else { "enabling" };
    ctx.progress.step(&format!("{verb} the API's default execute-api endpoint"));
    apigw
        .update_rest_api()
        .rest_api_id(api_id)
        .patch_operations(replace("/disableExecuteApiEndpoint", if disabled { "true" } else { "false" }))
        .send()
        .await
        .aws("apigateway:UpdateRestApi")?;
    apigw
        .update_stage()
        .rest_api_id(api_id)
        .stage_name(STAGE)
        .patch_operations(replace("/description", stage_marker(disabled)))
        .send()
        .await
        .aws("apigateway:UpdateStage")?;
    Ok(())
}

async fn delete_domain(ctx: &Ctx, d: &Domain) -> Result<()> {
    let apigw = &ctx.clients.apigateway;
    for path in d.mappings.keys() {
        apigw
            .delete_base_path_mapping()
            .domain_name(&d.name)
            .base_path(path)
            .send()
            .await
            .aws("apigateway:DeleteBasePathMapping")
            .ok_if_not_found()?;
    }
    ctx.progress.step(&format!("deleting custom domain {}", d.name));
    ctx.retry_while_propagating(&catalogue::APIGATEWAY_DOMAIN_DELETE, &d.name, || {
        apigw.delete_domain_name().domain_name(&d.name).send().map(|r| r.aws("apigateway:DeleteDomainName"))
    })
    .await
    .map(|_| ())
    .or_else(|e| if e.code.as_deref() == Some("NotFoundException") { Ok(()) } else { Err(e) })
}

fn outputs_of(ctx: &Ctx, o: &Observed) -> Outputs {
    let execute_api = ctx.input(rest::ID, "url").ok().or_else(|| api_id(ctx).map(|id| rest::url(ctx, &id)));
    let domain = o.domain.as_ref().filter(|_| ctx.config.domain.is_some());
    Outputs::from([
        ("domain_name".into(), json!(domain.map(|d| d.name.clone()))),
        ("target".into(), json!(domain.and_then(|d| d.target.clone()))),
        ("hosted_zone_id".into(), json!(domain.and_then(|d| d.hosted_zone_id.clone()))),
        ("url".into(), json!(domain.map(|d| format!("https://{}/", d.name)).or(execute_api))),
    ])
}

#[async_trait]
impl Resource for ApiDomain {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    fn reads(&self) -> &'static [Input] {
        &[Input { node: rest::ID, key: "api_id" }, Input { node: rest::ID, key: "url" }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let wanted = ctx.config.domain.as_ref().map(|d| d.name.clone());
        let recorded = ctx.recorded_str("domain_name").map(str::to_string);
        let name = wanted.clone().or_else(|| recorded.clone());
        let domain = match &name {
            Some(n) => observe_domain(ctx, n).await?,
            None => None,
        };
        let replaced = match (&wanted, &recorded) {
            (Some(w), Some(r)) if w != r => observe_domain(ctx, r).await?,
            _ => None,
        };
        if wanted.is_some() && domain.is_none() && replaced.is_none() {
            return Ok(None);
        }
        let endpoint = match api_id(ctx) {
            Some(id) => observe_endpoint(ctx, &id, name.is_some()).await?,
            None => None,
        };
        Ok(Some(Observed { domain, replaced, endpoint }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let api_id = o.endpoint.as_ref().map(|e| e.api_id.as_str());
        let mut drifts = Vec::new();
        match (&ctx.config.domain, &o.domain) {
            (Some(want), Some(d)) => drifts.extend(domain_drifts(ctx, want, d, api_id)),
            (Some(want), None) => drifts.push(Drift::missing(format!("domain {}", want.name), "regional, TLS 1.2+")),
            (None, Some(d)) => drifts.push(Drift::new("custom domain", &d.name, "none")),
            (None, None) => {}
        }
        if let Some(r) = &o.replaced {
            drifts.push(Drift::new(format!("custom domain {}", r.name), "present", "deleted (--domain names another)"));
        }
        if let Some(e) = &o.endpoint {
            drifts.extend(endpoint_drifts(e, ctx.config.domain.is_some()));
        }
        if ctx.config.domain.is_none() && drifts.is_empty() {
            return Ok(Change::Off);
        }
        Ok(Change::from_drifts(drifts))
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        outputs_of(ctx, o)
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let apigw = &ctx.clients.apigateway;
        let api_id = ctx.input(rest::ID, "api_id")?;
        let mut o = match observed {
            Some(o) => o,
            None => Observed { domain: None, replaced: None, endpoint: observe_endpoint(ctx, &api_id, true).await? },
        };
        let Some(want) = ctx.config.domain.clone() else {
            // Clients back on the execute-api URL before the domain goes.
            if o.endpoint.as_ref().is_some_and(|e| !endpoint_drifts(e, false).is_empty()) {
                set_endpoint(ctx, &api_id, false).await?;
            }
            if let Some(d) = o.domain.take() {
                delete_domain(ctx, &d).await?;
            }
            o.endpoint = observe_endpoint(ctx, &api_id, true).await?;
            return Ok(outputs_of(ctx, &o));
        };
        let name = want.name.clone();
        match &o.domain {
            None => {
                ctx.progress.step(&format!("creating custom domain {name}"));
                apigw
                    .create_domain_name()
                    .domain_name(&name)
                    .regional_certificate_arn(&want.certificate_arn)
                    .endpoint_configuration(EndpointConfiguration::builder().types(EndpointType::Regional).build())
                    .security_policy(SecurityPolicy::from(SECURITY_POLICY))
                    .endpoint_access_mode(EndpointAccessMode::from(ENDPOINT_ACCESS_MODE))
                    .set_tags(Some(ctx.tags(None, Some(&name)).into_iter().collect()))
                    .send()
                    .await
                    .aws("apigateway:CreateDomainName")
                    .ok_if_exists()?;
            }
            Some(d) => {
                let mut ops = Vec::new();
                if d.certificate_arn.as_deref() != Some(want.certificate_arn.as_str()) {
                    ops.push(replace("/regionalCertificateArn", &want.certificate_arn));
                }
                if d.security_policy.as_deref() != Some(SECURITY_POLICY) {
                    ops.push(replace("/securityPolicy", SECURITY_POLICY));
                }
                if d.endpoint_access_mode.as_deref() != Some(ENDPOINT_ACCESS_MODE) {
                    ops.push(replace("/endpointAccessMode", ENDPOINT_ACCESS_MODE));
                }
                // An edge-optimized domain is migrated in place (the developer guide's "Migrate a
                // custom domain name to a different API endpoint type"), with the regional
                // certificate above; API Gateway reports UPDATING until the migration is done,
                // which the readiness wait below covers.
                if !d.is_regional() {
                    for current in &d.endpoint_types {
                        ops.push(replace(format!("/endpointConfiguration/types/{current}"), REGIONAL));
                    }
                }
                if !ops.is_empty() {
                    ctx.progress.step(&format!("updating custom domain {name}"));
                    apigw
                        .update_domain_name()
                        .domain_name(&name)
                        .set_patch_operations(Some(ops))
                        .send()
                        .await
                        .aws("apigateway:UpdateDomainName")?;
                }
                if crate::resources::tags_drift("tags", &d.tags, &ctx.tags(None, Some(&name))).is_some() {
                    super::tag(ctx, &format!("/domainnames/{name}"), &name).await?;
                }
            }
        }
        let domain = ctx
            .until_ready(
                &format!("custom domain {name}"),
                crate::engine::wait::WaitPolicy::new(DOMAIN_READY),
                || async { Ok(readiness(observe_domain(ctx, &name).await?)) },
            )
            .await?;
        // The root mapped to this API's live stage; any other mapping of the domain removed.
        for path in domain.mappings.keys().filter(|p| p.as_str() != ROOT) {
            ctx.progress.step(&format!("removing mapping /{path} of {name}"));
            apigw
                .delete_base_path_mapping()
                .domain_name(&name)
                .base_path(path)
                .send()
                .await
                .aws("apigateway:DeleteBasePathMapping")
                .ok_if_not_found()?;
        }
        let want_mapping = (api_id.clone(), Some(STAGE.to_string()));
        match domain.mappings.get(ROOT) {
            Some(have) if *have == want_mapping => {}
            Some(_) => {
                ctx.progress.step(&format!("mapping {name}/ to stage {STAGE}"));
                apigw
                    .update_base_path_mapping()
                    .domain_name(&name)
                    .base_path(ROOT)
                    .patch_operations(replace("/restapiId", &api_id))
                    .patch_operations(replace("/stage", STAGE))
                    .send()
                    .await
                    .aws("apigateway:UpdateBasePathMapping")?;
            }
            None => {
                ctx.progress.step(&format!("mapping {name}/ to stage {STAGE}"));
                ctx.retry_while_propagating(&catalogue::APIGATEWAY_NEW_DOMAIN, &name, || {
                    apigw
                        .create_base_path_mapping()
                        .domain_name(&name)
                        .rest_api_id(&api_id)
                        .stage(STAGE)
                        .send()
                        .map(|r| r.aws("apigateway:CreateBasePathMapping"))
                })
                .await?;
            }
        }
        // Only once the domain serves the stage: the execute-api URL stops answering.
        if o.endpoint.as_ref().is_none_or(|e| !endpoint_drifts(e, true).is_empty()) {
            set_endpoint(ctx, &api_id, true).await?;
        }
        // The domain it replaces goes only now, when the new one serves the stage.
        if let Some(r) = o.replaced.take() {
            delete_domain(ctx, &r).await?;
        }
        let o = Observed {
            domain: observe_domain(ctx, &name).await?,
            replaced: None,
            endpoint: observe_endpoint(ctx, &api_id, true).await?,
        };
        Ok(outputs_of(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        // The API goes after this node in a destroy: its endpoint setting goes with it. A domain
        // a killed `up` was replacing goes too.
        for d in o.domain.iter().chain(o.replaced.iter()) {
            delete_domain(ctx, d).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing;

    fn domain(api_id: &str) -> Domain {
        Domain {
            name: "pay.example.com".into(),
            certificate_arn: Some("arn:aws:acm:us-east-1:123456789012:certificate/abc".into()),
            security_policy: Some(SECURITY_POLICY.into()),
            endpoint_access_mode: Some(ENDPOINT_ACCESS_MODE.into()),
            endpoint_types: vec![REGIONAL.into()],
            status: Some("AVAILABLE".into()),
            target: Some("d-1.execute-api.us-east-1.amazonaws.com".into()),
            hosted_zone_id: Some("Z1".into()),
            tags: BTreeMap::new(),
            mappings: BTreeMap::from([(ROOT.to_string(), (api_id.to_string(), Some(STAGE.to_string())))]),
        }
    }

    #[test]
    fn an_unknown_or_pending_domain_state_is_not_ready_and_a_certificate_problem_fails() {
        let with = |s: &str| Some(Domain { status: Some(s.into()), ..domain("a") });
        assert!(matches!(readiness(with("AVAILABLE")), Readiness::Ready(_)));
        assert!(matches!(readiness(with("UPDATING")), Readiness::Pending(_)));
        assert!(matches!(readiness(with("PENDING")), Readiness::Pending(_)));
        assert!(matches!(readiness(with("SOMETHING_NEW")), Readiness::Pending(_)));
        assert!(matches!(readiness(with("PENDING_OWNERSHIP_VERIFICATION")), Readiness::Failed(_)));
        assert!(matches!(readiness(with("PENDING_CERTIFICATE_REIMPORT")), Readiness::Failed(_)));
        assert!(matches!(readiness(with("FAILED")), Readiness::Failed(_)));
        assert!(matches!(readiness(None), Readiness::Absent));
    }

    #[test]
    fn the_endpoint_setting_counts_only_once_a_stage_update_applied_it() {
        let e = |disabled, d: Option<&str>| Endpoint {
            api_id: "a".into(),
            disabled,
            stage_description: d.map(str::to_string),
        };
        assert!(endpoint_drifts(&e(false, None), false).is_empty(), "never touched: AWS's default applies");
        assert!(endpoint_drifts(&e(true, Some(stage_marker(true))), true).is_empty());
        let killed_between = endpoint_drifts(&e(true, Some(stage_marker(false))), true);
        assert_eq!(killed_between.len(), 1);
        assert_eq!(killed_between[0].field, "stage live");
        let wrong = endpoint_drifts(&e(false, None), true);
        assert_eq!((wrong[0].current.as_str(), wrong[0].wanted.as_str()), ("enabled", "disabled"));
    }

    #[test]
    fn without_a_domain_and_with_the_default_endpoint_on_the_node_is_off() {
        let ctx = testing::ctx(ID, ApiDomain.reads(), &[]);
        let o = Observed {
            domain: None,
            replaced: None,
            endpoint: Some(Endpoint { api_id: "a".into(), disabled: false, stage_description: None }),
        };
        assert_eq!(ApiDomain.diff(&ctx, &o).unwrap(), Change::Off);
        let disabled =
            Observed { endpoint: Some(Endpoint { api_id: "a".into(), disabled: true, stage_description: None }), ..o };
        let change = ApiDomain.diff(&ctx, &disabled).unwrap();
        testing::assert_plain(&change.drifts());
        assert_eq!(change.drifts()[0].to_string(), "default execute-api endpoint: disabled → enabled");
    }

    #[test]
    fn a_domain_mapped_elsewhere_or_with_extra_mappings_is_drift() {
        let mut d = domain("other");
        d.mappings.insert("v1".into(), ("x".into(), None));
        let want =
            crate::config::ApiDomain { name: d.name.clone(), certificate_arn: d.certificate_arn.clone().unwrap() };
        let ctx = testing::ctx(ID, ApiDomain.reads(), &[]);
        let drifts: Vec<String> = domain_drifts(&ctx, &want, &d, Some("api1")).iter().map(|d| d.to_string()).collect();
        assert!(drifts.contains(&"domain pay.example.com mapping /: other/live → api1/live".to_string()), "{drifts:?}");
        assert!(drifts.iter().any(|d| d.starts_with("domain pay.example.com mapping /v1: x/none")), "{drifts:?}");
    }
}
