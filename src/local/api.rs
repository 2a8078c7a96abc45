//! The REST API as the account holds it, read for `tapctl local`: its routes and methods
//! (authorization, validator, models, required headers, integration), and its stage (variables,
//! canary, throttling). The stage is re-read every second while serving, so that a `shift` shows
//! within a second; the routes are re-read when the stage's deployment changes (an `up` that
//! changed a method deploys), so an idle second costs one GetStage, not a walk of the API.

use crate::aws::{AwsError, AwsResultExt};
use aws_sdk_apigateway::Client;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One method of one resource (`POST /process`).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub resource_id: String,
    pub path: String,
    pub method: String,
    /// `AWS_IAM`, `NONE`, …
    pub authorization: String,
    pub validate_body: bool,
    pub validate_parameters: bool,
    /// Headers the method requires (`method.request.header.<name>: true`).
    pub required_headers: Vec<String>,
    /// Content type (or `$default`) → the model.
    pub models: BTreeMap<String, Model>,
    /// The Lambda proxy integration's URI, with `${stageVariables.…}` unresolved.
    pub integration_uri: Option<String>,
}

/// A request model: its JSON Schema (draft-04), compiled once when the routes are read, not for
/// every request.
#[derive(Clone)]
pub struct Model {
    pub schema: Value,
    /// None when the schema does not compile (API Gateway refuses such a model at creation; a
    /// body is then never valid).
    validator: Option<Arc<jsonschema::Validator>>,
}

impl Model {
    pub fn new(schema: Value) -> Model {
        let validator = jsonschema::draft4::new(&schema).ok().map(Arc::new);
        Model { schema, validator }
    }

    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.as_ref().is_some_and(|v| v.is_valid(instance))
    }
}

impl PartialEq for Model {
    fn eq(&self, other: &Model) -> bool {
        self.schema == other.schema
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("schema", &self.schema).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    /// 0-100: the share of requests the canary takes.
    pub percent: f64,
    pub overrides: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    /// The deployment the stage serves: the routes are read again when it changes.
    pub deployment_id: String,
    pub variables: HashMap<String, String>,
    pub canary: Option<Canary>,
    /// Requests per second and burst of the stage's `*/*` method settings (API Gateway's
    /// account default, 10,000 / 5,000, where the stage sets none).
    pub rate: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    pub id: String,
    /// How many times the stage had been read when this was: 1 for the first read. Answers
    /// carry it (`x-tapctl-stage-read`), so a client can tell an answer given from a read that
    /// began after its change from one that may have begun before.
    pub reads: u64,
    /// By (method, path).
    pub routes: BTreeMap<(String, String), Route>,
    pub stage: Stage,
}

impl Api {
    pub fn route(&self, method: &str, path: &str) -> Option<&Route> {
        self.routes.get(&(method.to_string(), path.to_string()))
    }
}

/// Reads the API `api_id` and its stage `stage`; None when either is gone.
pub async fn read(apigw: &Client, api_id: &str, stage: &str) -> Result<Option<Api>, AwsError> {
    let Some(stage) = read_stage(apigw, api_id, stage).await? else { return Ok(None) };
    let routes = read_routes(apigw, api_id).await?;
    Ok(Some(Api { id: api_id.to_string(), reads: 1, routes, stage }))
}

/// The stage alone (one GetStage): variables, canary, throttling and deployment.
pub async fn read_stage(apigw: &Client, api_id: &str, stage: &str) -> Result<Option<Stage>, AwsError> {
    let Some(s) = crate::resources::api::stage::stage(apigw, api_id).await? else { return Ok(None) };
    if s.stage_name() != Some(stage) {
        return Ok(None);
    }
    let settings = s.method_settings().and_then(|m| m.get("*/*"));
    Ok(Some(Stage {
        name: stage.to_string(),
        deployment_id: s.deployment_id().unwrap_or_default().to_string(),
        variables: s.variables().cloned().unwrap_or_default(),
        canary: s.canary_settings().map(|c| Canary {
            percent: c.percent_traffic(),
            overrides: c.stage_variable_overrides().cloned().unwrap_or_default(),
        }),
        rate: settings.map(|m| m.throttling_rate_limit()).filter(|r| *r > 0.0).unwrap_or(10_000.0),
        burst: settings.map(|m| m.throttling_burst_limit()).filter(|b| *b > 0).unwrap_or(5_000) as u32,
    }))
}

/// Every method of every resource, by (method, path).
pub async fn read_routes(apigw: &Client, api_id: &str) -> Result<BTreeMap<(String, String), Route>, AwsError> {
    let validators: HashMap<String, (bool, bool)> = apigw
        .get_request_validators()
        .rest_api_id(api_id)
        .send()
        .await
        .aws("apigateway:GetRequestValidators")?
        .items()
        .iter()
        .filter_map(|v| Some((v.id()?.to_string(), (v.validate_request_body(), v.validate_request_parameters()))))
        .collect();
    let resources = apigw.get_resources().rest_api_id(api_id).limit(500).send().await.aws("apigateway:GetResources")?;
    let mut schemas: HashMap<String, Model> = HashMap::new();
    let mut routes = BTreeMap::new();
    for r in resources.items() {
        let (Some(resource_id), Some(path)) = (r.id(), r.path()) else { continue };
        for method in r.resource_methods().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            let m = apigw
                .get_method()
                .rest_api_id(api_id)
                .resource_id(resource_id)
                .http_method(&method)
                .send()
                .await
                .aws("apigateway:GetMethod")?;
            let (validate_body, validate_parameters) =
                m.request_validator_id().and_then(|id| validators.get(id)).copied().unwrap_or((false, false));
            let mut models = BTreeMap::new();
            for (content_type, model) in m.request_models().cloned().unwrap_or_default() {
                if !schemas.contains_key(&model) {
                    let got = apigw
                        .get_model()
                        .rest_api_id(api_id)
                        .model_name(&model)
                        .send()
                        .await
                        .aws("apigateway:GetModel")?;
                    let schema = got.schema().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
                    schemas.insert(model.clone(), Model::new(schema));
                }
                models.insert(content_type, schemas[&model].clone());
            }
            let required_headers = m
                .request_parameters()
                .map(|p| {
                    p.iter()
                        .filter(|(_, required)| **required)
                        .filter_map(|(k, _)| k.strip_prefix("method.request.header.").map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            routes.insert(
                (method.clone(), path.to_string()),
                Route {
                    resource_id: resource_id.to_string(),
                    path: path.to_string(),
                    method: method.clone(),
                    authorization: m.authorization_type().unwrap_or("NONE").to_string(),
                    validate_body,
                    validate_parameters,
                    required_headers,
                    models,
                    integration_uri: m.method_integration().and_then(|i| i.uri()).map(str::to_string),
                },
            );
        }
    }
    Ok(routes)
}

/// The function ARN (with its qualifier) an integration URI names once the stage variables are
/// substituted: `arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<arn>/invocations`.
pub fn function_of(uri: &str, variables: &HashMap<String, String>) -> Option<String> {
    let arn = uri.split("/functions/").nth(1)?.strip_suffix("/invocations")?;
    let mut out = arn.to_string();
    for (k, v) in variables {
        out = out.replace(&format!("${{stageVariables.{k}}}"), v);
    }
    (!out.contains("${")).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_integration_names_the_alias_the_stage_variable_picks() {
        let uri = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:payment-process-qa:${stageVariables.lambdaAlias}/invocations";
        let vars = HashMap::from([("lambdaAlias".to_string(), "green".to_string())]);
        assert_eq!(
            function_of(uri, &vars).as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:payment-process-qa:green")
        );
        assert_eq!(function_of(uri, &HashMap::new()), None, "an unset variable names no function");
    }
}
