//! `api.rest`: the regional REST API `payment-api-<suffix>`, the only way in to the functions.
//!
//! - POST /validate, /fraud-check, /process; IAM authorization (SigV4) on every method: there is
//!   no anonymous access.
//! - The body is checked against the `PaymentRequest` model — payments-core's JSON Schema, the
//!   same one the functions deserialise — and /process requires the Idempotency-Key header;
//!   API Gateway rejects a bad request before any function runs.
//! - AWS_PROXY integrations whose URI ends in `:${stageVariables.lambdaAlias}/invocations`: the
//!   stage variable picks the colour (design.md §7); each alias of each function lets this API,
//!   and only its methods, invoke it.
//! - Stage `live`: created with `lambdaAlias=blue` and then never touched by `up` (that is
//!   `shift`'s), JSON access logs to the CMK-encrypted group, execution logging at ERROR without
//!   data tracing (a request body holds a card number), X-Ray, throttling, detailed metrics.
//! - The API definition's hash is the deployment's description: a changed definition gets a new
//!   deployment, an unchanged one never does.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::functions::permission;
use crate::resources::retry::catalogue;
use crate::resources::Outputs;
use crate::resources::{
    each_member, listed, on_off, or_none, After, Change, Ctx, Drift, Input, Resource, ResourceError, Result,
};
use crate::traffic::{Color, ALIAS_VARIABLE, STAGE};
use async_trait::async_trait;
use aws_sdk_apigateway::types::{
    EndpointAccessMode, EndpointConfiguration, EndpointType, IntegrationType, PatchOperation, SecurityPolicy,
};
use futures::FutureExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

pub struct RestApi;

pub const ID: &str = "api.rest";
pub const MODEL: &str = "PaymentRequest";
pub const VALIDATOR: &str = "body-and-headers";
/// The content types the model is mapped for: `$default` is every type without a mapping of its
/// own (API Gateway developer guide, "Request validation for REST APIs": "If no matching content
/// type is found, request validation is not performed … set the content type for your data model
/// to $default").
pub const MODEL_CONTENT_TYPES: [&str; 2] = ["$default", "application/json"];
pub const IDEMPOTENCY_HEADER: &str = "method.request.header.Idempotency-Key";
/// API Gateway's REST integration timeout (its default and maximum for a Regional API without a
/// quota increase): 29 s. Every function behind the API times out sooner (`functions::sizing`),
/// with room for the SDK's retries of its own calls.
pub const INTEGRATION_TIMEOUT_SECONDS: i32 = 29;
/// What a function behind the API must leave between its timeout and the API's.
pub const INTEGRATION_MARGIN_SECONDS: i32 = 4;

/// The TLS policy of the API's endpoint (PCI DSS 4.2.1): TLS 1.3 and 1.2 only, with forward-secret
/// AEAD ciphers. A regional REST API gets TLS_1_0 unless told otherwise (API Gateway developer
/// guide, "Supported security policies": default of a regional API). An enhanced policy
/// (`SecurityPolicy_…`) must come with an endpoint access mode ("Security policies for REST APIs":
/// "you must also set the endpoint access mode"); STRICT also refuses a request whose SNI or
/// endpoint type does not match the API, as AWS recommends.
pub const SECURITY_POLICY: &str = "SecurityPolicy_TLS13_1_2_2021_06";
pub const ENDPOINT_ACCESS_MODE: &str = "STRICT";

/// The functions behind the API (rotate-secret is Secrets Manager's alone).
pub const ROUTES: [&str; 3] = ["validate", "fraud-check", "process"];
/// Steady-state requests per second and burst for every method of the stage.
pub const RATE_LIMIT: f64 = 500.0;
pub const BURST_LIMIT: i32 = 1000;

/// One access-log line per request: who, what, how it went, which colour served it. Never a
/// header or a body.
pub fn access_log_format() -> String {
    json!({
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "ip": "$context.identity.sourceIp",
        "caller": "$context.identity.caller",
        "userArn": "$context.identity.userArn",
        "requestTime": "$context.requestTimeEpoch",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "latency": "$context.responseLatency",
        "integrationLatency": "$context.integrationLatency",
        "integrationError": "$context.integration.error",
        "lambdaAlias": "$stageVariables.lambdaAlias",
        "canary": "$context.isCanaryRequest"
    })
    .to_string()
}

/// The settings of the stage `up` owns (the variable `lambdaAlias` it does not, once set).
#[derive(Debug, Clone, PartialEq)]
pub struct StageSettings {
    pub tracing: bool,
    pub access_log_destination: String,
    pub access_log_format: String,
    pub metrics: bool,
    pub logging_level: String,
    pub data_trace: bool,
    pub rate_limit: f64,
    pub burst_limit: i32,
}

impl StageSettings {
    fn wanted(ctx: &Ctx) -> StageSettings {
        StageSettings {
            tracing: true,
            access_log_destination: format!(
                "arn:aws:logs:{}:{}:log-group:{}",
                ctx.names.region,
                ctx.names.account,
                ctx.names.api_log_group()
            ),
            access_log_format: access_log_format(),
            metrics: true,
            logging_level: "ERROR".into(),
            data_trace: false,
            rate_limit: RATE_LIMIT,
            burst_limit: BURST_LIMIT,
        }
    }

    /// Each setting in words, with its name: to show the ones that differ.
    fn parts(&self) -> [(&'static str, String); 7] {
        [
            ("X-Ray tracing", on_off(self.tracing).to_string()),
            ("access log destination", or_none(Some(&self.access_log_destination).filter(|d| !d.is_empty()))),
            (
                "access log format",
                if self.access_log_format == access_log_format() {
                    "the stack's fields".to_string()
                } else if self.access_log_format.is_empty() {
                    "none".to_string()
                } else {
                    "other fields".to_string()
                },
            ),
            ("detailed metrics", on_off(self.metrics).to_string()),
            ("execution logging level", self.logging_level.clone()),
            // Request and response bodies would put card numbers in the execution logs.
            ("data trace (bodies in the logs)", on_off(self.data_trace).to_string()),
            ("throttling", format!("{} requests/s, burst {}", self.rate_limit, self.burst_limit)),
        ]
    }

    /// How `have` differs from these settings, one drift per setting.
    fn drifts(&self, have: &StageSettings) -> Vec<Drift> {
        have.parts()
            .into_iter()
            .zip(self.parts())
            .filter(|((_, h), (_, w))| h != w)
            .map(|((label, h), (_, w))| Drift::new(format!("stage {STAGE} {label}"), h, w))
            .collect()
    }

    fn patches(&self) -> Vec<PatchOperation> {
        let op = super::replace;
        vec![
            op("/tracingEnabled", self.tracing.to_string()),
            op("/accessLogSettings/destinationArn", self.access_log_destination.clone()),
            op("/accessLogSettings/format", self.access_log_format.clone()),
            op("/*/*/metrics/enabled", self.metrics.to_string()),
            op("/*/*/logging/loglevel", self.logging_level.clone()),
            op("/*/*/logging/dataTrace", self.data_trace.to_string()),
            op("/*/*/throttling/rateLimit", self.rate_limit.to_string()),
            op("/*/*/throttling/burstLimit", self.burst_limit.to_string()),
        ]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    pub authorization: String,
    pub validator_id: Option<String>,
    /// Content type → model name. API Gateway validates a body only against the model of its
    /// Content-Type and lets a body of an unmapped type through unvalidated, so the model is
    /// mapped for `$default` (every type) as well as `application/json`.
    pub models: BTreeMap<String, String>,
    pub required_headers: Vec<String>,
    pub integration_type: Option<String>,
    pub integration_uri: Option<String>,
}

pub struct Stage {
    pub deployment_description: Option<String>,
    pub variables: HashMap<String, String>,
    pub settings: StageSettings,
}

pub struct Observed {
    pub api_id: String,
    /// `API-Gateway-Execution-Logs_<api-id>/live` and its canary's `…/live/Canary`, by name:
    /// made by tapctl before logging is on and before any canary.
    pub execution_logs: BTreeMap<String, Option<crate::resources::logs::Group>>,
    pub regional: bool,
    /// The TLS security policy and endpoint access mode, as API Gateway reports them.
    pub security_policy: Option<String>,
    pub endpoint_access_mode: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub model: Option<Value>,
    pub validator: Option<(String, bool, bool)>,
    /// By route ("validate"): resource id and its POST method, if any.
    pub routes: BTreeMap<&'static str, (String, Option<Method>)>,
    pub root_id: String,
    pub stage: Option<Stage>,
    /// By (function, colour): whether this API may invoke it.
    pub permissions: BTreeMap<(&'static str, Color), bool>,
}

/// Whether the stage variable names blue or green (else every request would fail).
impl Method {
    /// Its parts in words, each with a label: to show the ones that differ.
    fn parts(&self) -> [(&'static str, String); 5] {
        let authorization = match self.authorization.as_str() {
            "AWS_IAM" => "IAM".to_string(),
            "" => "none".to_string(),
            other => other.to_string(),
        };
        // The function and alias the integration invokes, not the whole ARN.
        let target = self.integration_uri.as_deref().map(|uri| {
            let after = uri.rsplit_once(":function:").map_or(uri, |(_, f)| f);
            after.trim_end_matches("/invocations").replace(&format!("${{stageVariables.{ALIAS_VARIABLE}}}"), "<colour>")
        });
        [
            ("authorization", authorization),
            ("request validator", or_none(self.validator_id.as_ref())),
            ("request models", listed(self.models.iter().map(|(t, m)| format!("{t}={m}")))),
            ("required headers", listed(&self.required_headers)),
            (
                "integration",
                match (&self.integration_type, target) {
                    (Some(t), Some(target)) => format!("{t} → {target}"),
                    (Some(t), None) => t.clone(),
                    (None, _) => "none".to_string(),
                },
            ),
        ]
    }

    /// How `have` differs from this method: the parts that differ, as they are and as wanted.
    fn drift(&self, route: &str, have: &Method) -> Drift {
        let (current, wanted): (Vec<String>, Vec<String>) = have
            .parts()
            .into_iter()
            .zip(self.parts())
            .filter(|((_, h), (_, w))| h != w)
            .map(|((label, h), (_, w))| (format!("{label} {h}"), format!("{label} {w}")))
            .unzip();
        Drift::new(format!("POST /{route}"), current.join("; "), wanted.join("; "))
    }
}

/// What a request validator checks: `body and headers`, `body only`, `nothing`.
fn validates(body: bool, headers: bool) -> &'static str {
    match (body, headers) {
        (true, true) => "body and headers",
        (true, false) => "body only",
        (false, true) => "headers only",
        (false, false) => "nothing",
    }
}

fn names_a_colour(variables: &HashMap<String, String>) -> bool {
    variables.get(ALIAS_VARIABLE).and_then(|v| Color::parse(v)).is_some()
}

fn integration_uri(ctx: &Ctx, function: &str) -> String {
    let n = &ctx.names;
    format!(
        "arn:aws:apigateway:{}:lambda:path/2015-03-31/functions/arn:aws:lambda:{}:{}:function:{}:${{stageVariables.{ALIAS_VARIABLE}}}/invocations",
        n.region,
        n.region,
        n.account,
        n.function(function)
    )
}

fn wanted_method(ctx: &Ctx, route: &str, validator_id: Option<&str>) -> Method {
    Method {
        authorization: "AWS_IAM".into(),
        validator_id: validator_id.map(str::to_string),
        models: MODEL_CONTENT_TYPES.iter().map(|t| (t.to_string(), MODEL.to_string())).collect(),
        required_headers: if route == "process" { vec![IDEMPOTENCY_HEADER.into()] } else { vec![] },
        integration_type: Some("AWS_PROXY".into()),
        integration_uri: Some(integration_uri(ctx, route)),
    }
}

/// The model's schema as API Gateway stores it (a string of JSON).
fn model_schema() -> Value {
    payments_core::schemas::payment_request()
}

/// A hash of everything a deployment snapshots; the deployment's description carries it.
fn definition_hash(ctx: &Ctx) -> String {
    let routes: Vec<Value> = ROUTES
        .iter()
        .map(|r| {
            let m = wanted_method(ctx, r, Some(VALIDATOR));
            json!([r, m.authorization, m.models, m.required_headers, m.integration_type, m.integration_uri])
        })
        .collect();
    let definition = json!({ "model": model_schema(), "validator": [VALIDATOR, true, true], "routes": routes });
    let digest = Sha256::digest(definition.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn deployment_description(ctx: &Ctx) -> String {
    format!("tapctl definition {}", definition_hash(ctx))
}

fn source_arn(ctx: &Ctx, api_id: &str, route: &str) -> String {
    format!("arn:aws:execute-api:{}:{}:{api_id}/*/POST/{route}", ctx.names.region, ctx.names.account)
}

fn permission_id(c: Color) -> String {
    format!("payment-api-invokes-{c}")
}

/// Removes the API's permission to invoke `route`'s alias `c`; absent is fine.
async fn revoke_invoke(ctx: &Ctx, route: &str, c: Color) -> Result<()> {
    ctx.clients
        .lambda
        .remove_permission()
        .function_name(ctx.names.function(route))
        .qualifier(c.as_str())
        .statement_id(permission_id(c))
        .send()
        .await
        .aws("lambda:RemovePermission")
        .ok_if_not_found()?;
    Ok(())
}

pub fn url(ctx: &Ctx, api_id: &str) -> String {
    format!("https://{api_id}.execute-api.{}.amazonaws.com/{STAGE}", ctx.names.region)
}

/// The POST method of a route's resource, as API Gateway holds it.
async fn observe_method(ctx: &Ctx, api_id: &str, resource_id: &str) -> Result<Option<Method>> {
    let method = ctx
        .clients
        .apigateway
        .get_method()
        .rest_api_id(api_id)
        .resource_id(resource_id)
        .http_method("POST")
        .send()
        .await
        .aws("apigateway:GetMethod")
        .ok_if_not_found()?;
    Ok(method.map(|m| {
        let mut required_headers: Vec<String> = m
            .request_parameters()
            .map(|p| p.iter().filter(|(_, req)| **req).map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        required_headers.sort();
        Method {
            authorization: m.authorization_type().unwrap_or_default().to_string(),
            validator_id: m.request_validator_id().map(str::to_string),
            models: m
                .request_models()
                .map(|rm| rm.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            required_headers,
            integration_type: m.method_integration().and_then(|i| i.r#type()).map(|t| t.as_str().to_string()),
            integration_uri: m.method_integration().and_then(|i| i.uri()).map(str::to_string),
        }
    }))
}

/// The root resource's id, and each route's resource id and POST method (read at once).
async fn observe_routes(ctx: &Ctx, api_id: &str) -> Result<(String, BTreeMap<&'static str, (String, Option<Method>)>)> {
    let mut root_id = String::new();
    let mut found = Vec::new();
    let mut pages =
        ctx.clients.apigateway.get_resources().rest_api_id(api_id).limit(500).into_paginator().items().send();
    while let Some(r) = pages.next().await {
        let r = r.aws("apigateway:GetResources")?;
        let path = r.path().unwrap_or_default();
        if path == "/" {
            root_id = r.id().unwrap_or_default().to_string();
        }
        if let Some(route) = ROUTES.iter().find(|x| path == format!("/{x}")) {
            found.push((*route, r.id().unwrap_or_default().to_string()));
        }
    }
    let routes = futures::future::try_join_all(found.into_iter().map(|(route, id)| async move {
        let method = observe_method(ctx, api_id, &id).await?;
        Ok::<_, ResourceError>((route, (id, method)))
    }))
    .await?;
    Ok((root_id, routes.into_iter().collect()))
}

async fn observe_stage(ctx: &Ctx, api_id: &str) -> Result<Option<Stage>> {
    let apigw = &ctx.clients.apigateway;
    let Some(s) = super::stage::stage(apigw, api_id).await? else { return Ok(None) };
    let deployment_description = match s.deployment_id() {
        Some(d) => apigw
            .get_deployment()
            .rest_api_id(api_id)
            .deployment_id(d)
            .send()
            .await
            .aws("apigateway:GetDeployment")
            .ok_if_not_found()?
            .and_then(|d| d.description().map(str::to_string)),
        None => None,
    };
    let all = s.method_settings().and_then(|m| m.get("*/*"));
    Ok(Some(Stage {
        deployment_description,
        variables: s.variables().cloned().unwrap_or_default(),
        settings: StageSettings {
            tracing: s.tracing_enabled(),
            access_log_destination: s
                .access_log_settings()
                .and_then(|a| a.destination_arn())
                .unwrap_or_default()
                .to_string(),
            access_log_format: s.access_log_settings().and_then(|a| a.format()).unwrap_or_default().to_string(),
            metrics: all.is_some_and(|m| m.metrics_enabled()),
            logging_level: all.and_then(|m| m.logging_level()).unwrap_or("OFF").to_string(),
            data_trace: all.is_some_and(|m| m.data_trace_enabled()),
            rate_limit: all.map(|m| m.throttling_rate_limit()).unwrap_or_default(),
            burst_limit: all.map(|m| m.throttling_burst_limit()).unwrap_or_default(),
        },
    }))
}

/// By (function, colour): whether this API, and only its method, may invoke that alias.
async fn observe_permissions(ctx: &Ctx, api_id: &str) -> Result<BTreeMap<(&'static str, Color), bool>> {
    let each = ROUTES.iter().flat_map(|route| Color::BOTH.map(|c| (*route, c))).map(|(route, c)| async move {
        let found = permission(ctx, &ctx.names.function(route), Some(c.as_str()), &permission_id(c)).await?;
        let ok = found.is_some_and(|st| {
            st.to_string().contains(&source_arn(ctx, api_id, route))
                && st["Principal"].to_string().contains("apigateway")
        });
        Ok::<_, ResourceError>(((route, c), ok))
    });
    Ok(futures::future::try_join_all(each).await?.into_iter().collect())
}

/// The groups API Gateway writes the stage's execution logs to: the stage's, and its canary's.
fn execution_log_groups(ctx: &Ctx, api_id: &str) -> Vec<String> {
    let stage = ctx.names.api_execution_log_group(api_id, STAGE);
    vec![ctx.names.canary_log_group(&stage), stage]
}

/// The execution log groups' drifts.
fn execution_log_drifts(ctx: &Ctx, o: &Observed, key: &str) -> Vec<Drift> {
    execution_log_groups(ctx, &o.api_id)
        .iter()
        .flat_map(|n| {
            crate::resources::logs::group_drifts(ctx, n, o.execution_logs.get(n).and_then(Option::as_ref), key)
        })
        .collect()
}

/// The API's TLS settings as they differ from the stack's (PCI DSS 4.2.1).
fn tls_drifts(o: &Observed) -> Vec<Drift> {
    let mut d = Vec::new();
    if o.security_policy.as_deref() != Some(SECURITY_POLICY) {
        let have = match o.security_policy.as_deref() {
            // What AWS gives a regional API that names none.
            None | Some("") => "none (TLS_1_0: TLS 1.0 accepted)".to_string(),
            Some(p) => p.to_string(),
        };
        d.push(Drift::new("TLS security policy", have, format!("{SECURITY_POLICY} (TLS 1.2 and 1.3 only)")));
    }
    if o.endpoint_access_mode.as_deref() != Some(ENDPOINT_ACCESS_MODE) {
        d.push(Drift::new("endpoint access mode", or_none(o.endpoint_access_mode.as_ref()), ENDPOINT_ACCESS_MODE));
    }
    d
}

/// The API and everything of it `diff` compares; the independent reads are made at once.
async fn observe_api(ctx: &Ctx, api_id: &str) -> Result<Observed> {
    let apigw = &ctx.clients.apigateway;
    let api = async {
        apigw.get_rest_api().rest_api_id(api_id).send().await.aws("apigateway:GetRestApi").map_err(ResourceError::from)
    };
    let model = async {
        Ok::<_, ResourceError>(
            apigw
                .get_model()
                .rest_api_id(api_id)
                .model_name(MODEL)
                .send()
                .await
                .aws("apigateway:GetModel")
                .ok_if_not_found()?
                .and_then(|m| m.schema().and_then(|s| serde_json::from_str(s).ok())),
        )
    };
    let validator = async {
        let validators =
            apigw.get_request_validators().rest_api_id(api_id).send().await.aws("apigateway:GetRequestValidators")?;
        Ok::<_, ResourceError>(validators.items().iter().find(|v| v.name() == Some(VALIDATOR)).map(|v| {
            (v.id().unwrap_or_default().to_string(), v.validate_request_body(), v.validate_request_parameters())
        }))
    };
    let execution_logs = async {
        let names = execution_log_groups(ctx, api_id);
        let found =
            futures::future::try_join_all(names.iter().map(|n| crate::resources::logs::observe_group(ctx, n))).await?;
        Ok::<_, ResourceError>(names.into_iter().zip(found).collect::<BTreeMap<_, _>>())
    };
    let (api, model, validator, (root_id, routes), stage, permissions, execution_logs) = futures::try_join!(
        api,
        model,
        validator,
        observe_routes(ctx, api_id),
        observe_stage(ctx, api_id),
        observe_permissions(ctx, api_id),
        execution_logs
    )?;
    let regional = api.endpoint_configuration().map(|e| e.types() == [EndpointType::Regional]).unwrap_or(false);
    let tags = api.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    Ok(Observed {
        api_id: api_id.to_string(),
        execution_logs,
        regional,
        security_policy: api.security_policy().map(|p| p.as_str().to_string()),
        endpoint_access_mode: api.endpoint_access_mode().map(|m| m.as_str().to_string()),
        tags,
        model,
        validator,
        routes,
        root_id,
        stage,
        permissions,
    })
}

/// One route's resource, POST method and integration. Routes are put one after another: API
/// Gateway refuses concurrent changes to one REST API ("ConflictException: Unable to complete
/// operation due to concurrent modification").
async fn put_route(
    ctx: &Ctx,
    api_id: &str,
    root_id: &str,
    route: &'static str,
    existing: Option<&(String, Option<Method>)>,
    validator_id: &str,
) -> Result<()> {
    let apigw = &ctx.clients.apigateway;
    let wanted = wanted_method(ctx, route, Some(validator_id));
    let (resource_id, method) = match existing {
        Some((id, m)) => (id.clone(), m.clone()),
        None => {
            ctx.progress.step(&format!("creating resource /{route}"));
            let r = apigw
                .create_resource()
                .rest_api_id(api_id)
                .parent_id(root_id)
                .path_part(route)
                .send()
                .await
                .aws("apigateway:CreateResource")?;
            (r.id().unwrap_or_default().to_string(), None)
        }
    };
    if method.as_ref() != Some(&wanted) {
        let function = ctx.names.function(route);
        ctx.progress.step(&match &method {
            None => format!("creating POST /{route} (IAM authorization, validated, → {function})"),
            Some(_) => format!("restoring POST /{route} (IAM authorization, validated, → {function})"),
        });
        if method.is_some() {
            apigw
                .delete_method()
                .rest_api_id(api_id)
                .resource_id(&resource_id)
                .http_method("POST")
                .send()
                .await
                .aws("apigateway:DeleteMethod")
                .ok_if_not_found()?;
        }
        apigw
            .put_method()
            .rest_api_id(api_id)
            .resource_id(&resource_id)
            .http_method("POST")
            .authorization_type("AWS_IAM")
            .request_validator_id(validator_id)
            .set_request_models(Some(MODEL_CONTENT_TYPES.iter().map(|t| (t.to_string(), MODEL.to_string())).collect()))
            .set_request_parameters(
                (!wanted.required_headers.is_empty())
                    .then(|| wanted.required_headers.iter().map(|h| (h.clone(), true)).collect()),
            )
            .send()
            .await
            .aws("apigateway:PutMethod")?;
        apigw
            .put_integration()
            .rest_api_id(api_id)
            .resource_id(&resource_id)
            .http_method("POST")
            .r#type(IntegrationType::AwsProxy)
            .integration_http_method("POST")
            .uri(integration_uri(ctx, route))
            .send()
            .await
            .aws("apigateway:PutIntegration")?;
    }
    Ok(())
}

/// Lets this API, and only its method, invoke each colour of `route`'s function. The functions
/// are granted at once (each has its own policy); a function's two colours one after the other.
async fn grant_invoke(
    ctx: &Ctx,
    api_id: &str,
    route: &'static str,
    permissions: &BTreeMap<(&'static str, Color), bool>,
) -> Result<()> {
    for c in Color::BOTH {
        if permissions.get(&(route, c)).copied().unwrap_or(false) {
            continue;
        }
        let function = ctx.names.function(route);
        ctx.progress.step(&format!("letting POST /{route} invoke {function}:{c}"));
        // A stale statement with our id (another API's source ARN) goes first.
        revoke_invoke(ctx, route, c).await?;
        ctx.clients
            .lambda
            .add_permission()
            .function_name(&function)
            .qualifier(c.as_str())
            .statement_id(permission_id(c))
            .action("lambda:InvokeFunction")
            .principal("apigateway.amazonaws.com")
            .source_arn(source_arn(ctx, api_id, route))
            .source_account(&ctx.names.account)
            .send()
            .await
            .aws("lambda:AddPermission")?;
    }
    Ok(())
}

#[async_trait]
impl Resource for RestApi {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        &[Input { node: super::super::kms::ID, key: "key_arn" }]
    }
    fn after(&self) -> &'static [After] {
        &[
            After {
                node: super::super::functions::VALIDATE,
                why: "the /validate integration invokes validate's aliases, which it names",
            },
            After {
                node: super::super::functions::FRAUD_CHECK,
                why: "the /fraud-check integration invokes fraud-check's aliases, which it names",
            },
            After {
                node: super::super::functions::PROCESS,
                why: "the /process integration invokes process's aliases, which it names",
            },
            After {
                node: super::super::logs::ID,
                why: "the stage writes its access log to the API's group, which it names",
            },
            After { node: super::account_logging::ID, why: "stage logging needs the account's CloudWatch role" },
            // The API takes traffic: everything the functions use at run time exists first.
            After { node: super::super::params::ID, why: "the functions read their configuration at run time" },
            After { node: super::super::database::instances::ID, why: "process writes to the database at run time" },
            After {
                node: super::super::iam::db_connect::ID,
                why: "process signs in to the database as its own login, which its role may do only then",
            },
            After {
                node: super::super::network::route_tables::ID,
                why: "the functions reach AWS services through the NAT",
            },
            After {
                node: super::super::network::endpoints::ID,
                why: "the functions reach S3 and DynamoDB through the endpoints",
            },
            After {
                node: super::super::audit::trail::ID,
                why: "no payment is taken before the trail records access to the table, bucket and functions (PCI DSS 10.2.1)",
            },
            After {
                node: super::super::network::flow_logs::ID,
                why: "no payment is taken before the VPC's traffic is recorded (PCI DSS 10.2.1)",
            },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let recorded = ctx.recorded_str("api_id").map(str::to_string);
        let id = match recorded {
            Some(id)
                if ctx
                    .clients
                    .apigateway
                    .get_rest_api()
                    .rest_api_id(&id)
                    .send()
                    .await
                    .aws("apigateway:GetRestApi")
                    .ok_if_not_found()?
                    .is_some_and(|a| a.name() == Some(ctx.names.api().as_str())) =>
            {
                Some(id)
            }
            _ => super::stage::find_api(&ctx.clients.apigateway, &ctx.names.api()).await?,
        };
        match id {
            None => Ok(None),
            Some(id) => Ok(Some(observe_api(ctx, &id).await?)),
        }
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let mut d = execution_log_drifts(ctx, o, &ctx.input(super::super::kms::ID, "key_arn")?);
        if !o.regional {
            d.push(Drift::new("endpoint type", "edge-optimized or private", "regional"));
        }
        d.extend(tls_drifts(o));
        d.extend(ctx.tag_drift(&o.tags));
        let schema = "payments-core's payment request schema";
        match &o.model {
            None => d.push(Drift::missing(format!("model {MODEL}"), schema)),
            Some(m) if *m != model_schema() => d.push(Drift::new(format!("model {MODEL}"), "differs", schema)),
            Some(_) => {}
        }
        let validator = format!("request validator {VALIDATOR}");
        match &o.validator {
            None => d.push(Drift::missing(validator, format!("validates {}", validates(true, true)))),
            Some((_, body, headers)) if !(*body && *headers) => d.push(Drift::new(
                validator,
                format!("validates {}", validates(*body, *headers)),
                format!("validates {}", validates(true, true)),
            )),
            Some(_) => {}
        }
        let validator_id = o.validator.as_ref().map(|v| v.0.as_str());
        for route in ROUTES {
            let function = ctx.names.function(route);
            let wanted = wanted_method(ctx, route, validator_id);
            match o.routes.get(route) {
                None => d.push(Drift::missing(format!("resource /{route}"), format!("POST → {function}"))),
                Some((_, None)) => d.push(Drift::missing(
                    format!("POST /{route}"),
                    format!("IAM authorization, validated, → {function}"),
                )),
                Some((_, Some(m))) if *m != wanted => d.push(wanted.drift(route, m)),
                Some(_) => {}
            }
            for c in Color::BOTH {
                if !o.permissions.get(&(route, c)).copied().unwrap_or(false) {
                    d.push(Drift::missing(
                        format!("permission of POST /{route} to invoke {function}:{c}"),
                        "this API's method only",
                    ));
                }
            }
        }
        match &o.stage {
            None => d.push(Drift::missing(format!("stage {STAGE}"), format!("{ALIAS_VARIABLE}=blue"))),
            Some(s) => {
                let description = deployment_description(ctx);
                if s.deployment_description.as_deref() != Some(description.as_str()) {
                    let have = or_none(s.deployment_description.as_ref());
                    d.push(Drift::new(format!("stage {STAGE} deployment"), have, description));
                }
                d.extend(StageSettings::wanted(ctx).drifts(&s.settings));
                if !names_a_colour(&s.variables) {
                    d.push(Drift::new(
                        format!("stage {STAGE} variable {ALIAS_VARIABLE}"),
                        or_none(s.variables.get(ALIAS_VARIABLE)),
                        "blue or green",
                    ));
                }
            }
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([
            ("api_id".into(), json!(o.api_id)),
            ("api_name".into(), json!(ctx.names.api())),
            ("url".into(), json!(url(ctx, &o.api_id))),
            ("stage".into(), json!(STAGE)),
        ])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let apigw = &ctx.clients.apigateway;
        let name = ctx.names.api();
        let o = match observed {
            Some(o) => o,
            None => {
                ctx.progress.step(&format!("creating REST API {name}"));
                let created = apigw
                    .create_rest_api()
                    .name(&name)
                    .description("Card payments: validate, fraud-check, process (IAM-authorised)")
                    .endpoint_configuration(EndpointConfiguration::builder().types(EndpointType::Regional).build())
                    .security_policy(SecurityPolicy::from(SECURITY_POLICY))
                    .endpoint_access_mode(EndpointAccessMode::from(ENDPOINT_ACCESS_MODE))
                    .set_tags(Some(ctx.tags(None, Some(&name)).into_iter().collect()))
                    .send()
                    .await
                    .aws("apigateway:CreateRestApi")?;
                let id = created.id().unwrap_or_default().to_string();
                observe_api(ctx, &id).await?
            }
        };
        let api_id = o.api_id.clone();
        if !o.regional {
            return Err(ResourceError::new("ReplaceRefused", format!("{name} is not a REGIONAL API"))
                .with_hint("delete it (or run `tapctl destroy`) and run up again"));
        }
        let tls = tls_drifts(&o);
        if !tls.is_empty() {
            ctx.progress.step(&format!(
                "setting REST API {name}'s TLS policy to {SECURITY_POLICY} ({ENDPOINT_ACCESS_MODE} endpoint access)"
            ));
            // Both in one PATCH: an enhanced policy is refused without its access mode (the
            // developer guide's update-rest-api example). AWS applies it in about 15 minutes
            // (apiStatus UPDATING) while the API keeps serving.
            let op = super::replace;
            apigw
                .update_rest_api()
                .rest_api_id(&api_id)
                .patch_operations(op("/securityPolicy", SECURITY_POLICY))
                .patch_operations(op("/endpointAccessMode", ENDPOINT_ACCESS_MODE))
                .send()
                .await
                .aws("apigateway:UpdateRestApi")?;
        }
        if let Some(drift) = ctx.tag_drift(&o.tags) {
            ctx.progress.step(&format!("tagging REST API {name}: {}", drift.wanted));
            super::tag(ctx, &format!("/restapis/{api_id}"), &name).await?;
        }
        let schema = model_schema();
        if o.model.as_ref() != Some(&schema) {
            ctx.progress.step(&match &o.model {
                None => format!("creating model {MODEL} (payments-core's payment request schema)"),
                Some(_) => format!("restoring model {MODEL} to payments-core's payment request schema"),
            });
            if o.model.is_some() {
                apigw
                    .update_model()
                    .rest_api_id(&api_id)
                    .model_name(MODEL)
                    .patch_operations(super::replace("/schema", schema.to_string()))
                    .send()
                    .await
                    .aws("apigateway:UpdateModel")?;
            } else {
                apigw
                    .create_model()
                    .rest_api_id(&api_id)
                    .name(MODEL)
                    .content_type("application/json")
                    .description("payments-core's PaymentRequest schema")
                    .schema(schema.to_string())
                    .send()
                    .await
                    .aws("apigateway:CreateModel")?;
            }
        }
        let validator_id = match &o.validator {
            Some((id, true, true)) => id.clone(),
            Some((id, _, _)) => {
                ctx.progress.step(&format!("making request validator {VALIDATOR} validate body and headers"));
                let op = |p: &str| super::replace(p, "true");
                apigw
                    .update_request_validator()
                    .rest_api_id(&api_id)
                    .request_validator_id(id)
                    .patch_operations(op("/validateRequestBody"))
                    .patch_operations(op("/validateRequestParameters"))
                    .send()
                    .await
                    .aws("apigateway:UpdateRequestValidator")?;
                id.clone()
            }
            None => {
                ctx.progress.step(&format!("creating request validator {VALIDATOR} (body and headers)"));
                apigw
                    .create_request_validator()
                    .rest_api_id(&api_id)
                    .name(VALIDATOR)
                    .validate_request_body(true)
                    .validate_request_parameters(true)
                    .send()
                    .await
                    .aws("apigateway:CreateRequestValidator")?
                    .id()
                    .unwrap_or_default()
                    .to_string()
            }
        };
        let (root_id, validator_id) = (o.root_id.as_str(), validator_id.as_str());
        for route in ROUTES {
            put_route(ctx, &api_id, root_id, route, o.routes.get(route), validator_id).await?;
        }
        each_member("function", ROUTES, |route| grant_invoke(ctx, &api_id, route, &o.permissions)).await?;
        let description = deployment_description(ctx);
        let current = o.stage.as_ref().and_then(|s| s.deployment_description.as_deref());
        if current != Some(description.as_str()) {
            ctx.progress.step(&format!("deploying the API definition ({description})"));
            // No stageName: creating a deployment into a stage would reset the stage's
            // settings and variables; the stage is pointed at it below instead.
            let deployment = apigw
                .create_deployment()
                .rest_api_id(&api_id)
                .description(&description)
                .send()
                .await
                .aws("apigateway:CreateDeployment")?;
            let deployment_id = deployment.id().unwrap_or_default().to_string();
            if o.stage.is_some() {
                apigw
                    .update_stage()
                    .rest_api_id(&api_id)
                    .stage_name(STAGE)
                    .patch_operations(super::replace("/deploymentId", &deployment_id))
                    .send()
                    .await
                    .aws("apigateway:UpdateStage")?;
            } else {
                ctx.progress.step(&format!("creating stage {STAGE} with {ALIAS_VARIABLE}=blue"));
                apigw
                    .create_stage()
                    .rest_api_id(&api_id)
                    .stage_name(STAGE)
                    .deployment_id(&deployment_id)
                    .variables(ALIAS_VARIABLE, Color::Blue.as_str())
                    .tracing_enabled(true)
                    .set_tags(Some(ctx.tags(None, Some(&name)).into_iter().collect()))
                    .send()
                    .await
                    .aws("apigateway:CreateStage")?;
            }
        }
        // Execution logging makes this group on its first write, unencrypted and kept forever,
        // unless it exists: it is made first, before logging is turned on.
        let key = ctx.input(super::super::kms::ID, "key_arn")?;
        if !execution_log_drifts(ctx, &o, &key).is_empty() {
            for name in execution_log_groups(ctx, &api_id) {
                let have = o.execution_logs.get(&name).and_then(Option::as_ref);
                crate::resources::logs::ensure_group(ctx, &name, have, &key, &ctx.tags(None, None)).await?;
            }
        }
        let wanted = StageSettings::wanted(ctx);
        if o.stage.as_ref().map(|s| &s.settings) != Some(&wanted) {
            ctx.progress.step(&match &o.stage {
                Some(s) => format!(
                    "changing stage {STAGE}: {}",
                    listed(wanted.drifts(&s.settings).iter().map(|d| {
                        let setting = d.field.trim_start_matches(&format!("stage {STAGE} ")).to_string();
                        format!("{setting} to {}", d.wanted)
                    }))
                ),
                None => format!("setting logging, tracing, metrics and throttling of stage {STAGE}"),
            });
            ctx.retry_while_propagating(&catalogue::APIGATEWAY_STAGE_LOGGING, "the account's CloudWatch role", || {
                apigw
                    .update_stage()
                    .rest_api_id(&api_id)
                    .stage_name(STAGE)
                    .set_patch_operations(Some(wanted.patches()))
                    .send()
                    .map(|r| r.aws("apigateway:UpdateStage"))
            })
            .await?;
        }
        if let Some(s) = &o.stage {
            if !names_a_colour(&s.variables) {
                // Without the variable every request fails; blue is where a new stack starts.
                ctx.progress.step(&format!("restoring stage variable {ALIAS_VARIABLE}=blue"));
                apigw
                    .update_stage()
                    .rest_api_id(&api_id)
                    .stage_name(STAGE)
                    .patch_operations(super::replace(format!("/variables/{ALIAS_VARIABLE}"), Color::Blue.as_str()))
                    .send()
                    .await
                    .aws("apigateway:UpdateStage")?;
            }
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        each_member("function", ROUTES, |route| async move {
            for c in Color::BOTH {
                revoke_invoke(ctx, route, c).await?;
            }
            Ok(())
        })
        .await?;
        // The execution log groups go before the API and again after it: a run killed between
        // the API's delete and theirs would leave them with nothing recording the API's id, and
        // a log delivered late would make one again.
        for name in execution_log_groups(ctx, &o.api_id) {
            crate::resources::logs::delete_group(ctx, &name).await?;
        }
        ctx.progress.step(&format!("deleting REST API {} (stage, deployments, models with it)", ctx.names.api()));
        ctx.clients
            .apigateway
            .delete_rest_api()
            .rest_api_id(&o.api_id)
            .send()
            .await
            .aws("apigateway:DeleteRestApi")
            .ok_if_not_found()?;
        for name in execution_log_groups(ctx, &o.api_id) {
            crate::resources::logs::delete_group(ctx, &name).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::ctx;

    #[test]
    fn stage_and_method_drifts_name_each_setting() {
        let ctx = ctx(ID, RestApi.reads(), &[]);
        let want = StageSettings::wanted(&ctx);
        let have = StageSettings { data_trace: true, logging_level: "INFO".into(), ..want.clone() };
        let drifts: Vec<String> = want.drifts(&have).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            drifts,
            [
                "stage live execution logging level: INFO → ERROR",
                "stage live data trace (bodies in the logs): on → off"
            ]
        );
        let method = wanted_method(&ctx, "process", Some("v1"));
        let open = Method { authorization: "NONE".into(), required_headers: vec![], ..method.clone() };
        assert_eq!(
            method.drift("process", &open).to_string(),
            "POST /process: authorization NONE; required headers none → authorization IAM; \
             required headers method.request.header.Idempotency-Key"
        );
        assert!(method.parts()[4].1.ends_with("AWS_PROXY → payment-process-qa:<colour>"), "{}", method.parts()[4].1);
    }
}
