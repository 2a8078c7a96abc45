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

    /// A model of an export, compiled beside the export's other schemas, so that a reference to
    /// one (`#/components/schemas/<name>`) resolves.
    pub fn within(schema: Value, schemas: &Value) -> Model {
        let mut root = schema.clone();
        if let Some(object) = root.as_object_mut() {
            object.entry("components").or_insert_with(|| serde_json::json!({ "schemas": schemas }));
        }
        let validator = jsonschema::draft4::new(&root).ok().map(Arc::new);
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
    /// The deployment the canary serves. Its routes cannot be read (GetExport exports a stage,
    /// i.e. the stage's own deployment), so a canary on another deployment is served with the
    /// stage's routes and its own variables; `tapctl shift` always canaries the stage's own
    /// deployment, where the two are the same.
    pub deployment_id: String,
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
    let routes = read_routes(apigw, api_id, &stage.name).await?;
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
            deployment_id: c.deployment_id().unwrap_or_default().to_string(),
            overrides: c.stage_variable_overrides().cloned().unwrap_or_default(),
        }),
        rate: settings.map(|m| m.throttling_rate_limit()).filter(|r| *r > 0.0).unwrap_or(10_000.0),
        burst: settings.map(|m| m.throttling_burst_limit()).filter(|b| *b > 0).unwrap_or(5_000) as u32,
    }))
}

/// Every method the stage's deployment holds, by (method, path). The source is the stage's
/// export (GetExport oas30 with API Gateway's extensions), because a stage serves its
/// deployment's snapshot: a method changed or added after the last deployment is not served on
/// AWS, and so not here. The export carries no resource ids; those (for the proxy event's
/// `requestContext.resourceId`) come from the API's resources, by path.
pub async fn read_routes(
    apigw: &Client,
    api_id: &str,
    stage: &str,
) -> Result<BTreeMap<(String, String), Route>, AwsError> {
    let export = apigw
        .get_export()
        .rest_api_id(api_id)
        .stage_name(stage)
        .export_type("oas30")
        .parameters("extensions", "apigateway")
        .accepts("application/json")
        .send()
        .await
        .aws("apigateway:GetExport")?;
    let doc: Value =
        serde_json::from_slice(export.body().map(|b| b.as_ref()).unwrap_or_default()).map_err(|e| AwsError {
            operation: "apigateway:GetExport".to_string(),
            code: None,
            message: format!("the stage's OpenAPI export is not JSON: {e}"),
            transient: false,
        })?;
    let resources = apigw.get_resources().rest_api_id(api_id).limit(500).send().await.aws("apigateway:GetResources")?;
    let resource_ids: HashMap<String, String> =
        resources.items().iter().filter_map(|r| Some((r.path()?.to_string(), r.id()?.to_string()))).collect();
    Ok(routes_of_export(&doc, &resource_ids))
}

/// The OpenAPI operation keys API Gateway exports, with the method each stands for.
const EXPORTED_METHODS: [(&str, &str); 8] = [
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("options", "OPTIONS"),
    ("head", "HEAD"),
    ("patch", "PATCH"),
    ("x-amazon-apigateway-any-method", "ANY"),
];

/// The routes of an OpenAPI 3.0 export with API Gateway's extensions (developer guide, "OpenAPI
/// extensions for API Gateway"): the `awsSigv4` security scheme is AWS_IAM, the validator is
/// named per operation or for the whole API, models are `components.schemas` (references between
/// them resolve inside the export), required header parameters, the integration's URI.
pub fn routes_of_export(doc: &Value, resource_ids: &HashMap<String, String>) -> BTreeMap<(String, String), Route> {
    let schemas = doc.pointer("/components/schemas").cloned().unwrap_or_else(|| Value::Object(Default::default()));
    let sigv4_schemes: Vec<&str> = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, s)| s["x-amazon-apigateway-authtype"].as_str() == Some("awsSigv4"))
                .map(|(name, _)| name.as_str())
                .collect()
        })
        .unwrap_or_default();
    let validators = &doc["x-amazon-apigateway-request-validators"];
    let api_validator = doc["x-amazon-apigateway-request-validator"].as_str();
    // A named model is compiled once, however many methods and content types map it (tapctl's
    // API maps one model under two content types of every method).
    let mut named: HashMap<String, Model> = HashMap::new();
    let mut model_of = |schema: &Value| -> Model {
        match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
            Some(name) => named
                .entry(name.to_string())
                .or_insert_with(|| Model::within(schemas.get(name).cloned().unwrap_or(Value::Null), &schemas))
                .clone(),
            None => Model::within(schema.clone(), &schemas),
        }
    };
    let mut routes = BTreeMap::new();
    for (path, operations) in doc["paths"].as_object().into_iter().flatten() {
        for (key, method) in EXPORTED_METHODS {
            let Some(op) = operations.get(key) else { continue };
            let security: Vec<&str> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|requirement| requirement.keys().map(String::as_str))
                .collect();
            let authorization = if security.iter().any(|s| sigv4_schemes.contains(s)) {
                "AWS_IAM"
            } else if security.is_empty() {
                "NONE"
            } else {
                // An authorizer or an API key: tapctl local serves neither, and refuses rather
                // than let such a method through unauthenticated.
                "CUSTOM"
            };
            let validator = op["x-amazon-apigateway-request-validator"].as_str().or(api_validator);
            let checks = validator.map(|v| &validators[v]);
            let required_headers = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "header" && p["required"] == true)
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect();
            let models = op
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(content_type, media)| (content_type.clone(), model_of(&media["schema"])))
                .collect();
            routes.insert(
                (method.to_string(), path.clone()),
                Route {
                    resource_id: resource_ids.get(path).cloned().unwrap_or_default(),
                    path: path.clone(),
                    method: method.to_string(),
                    authorization: authorization.to_string(),
                    validate_body: checks.is_some_and(|c| c["validateRequestBody"] == true),
                    validate_parameters: checks.is_some_and(|c| c["validateRequestParameters"] == true),
                    required_headers,
                    models,
                    integration_uri: op
                        .pointer("/x-amazon-apigateway-integration/uri")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                },
            );
        }
    }
    routes
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
    use serde_json::json;

    /// An export in the shape API Gateway gives it (oas30, extensions=apigateway).
    fn export() -> Value {
        json!({
            "openapi": "3.0.1",
            "info": { "title": "payments-qa", "version": "2026-12-01T17:00:00Z" },
            "paths": {
                "/process": {
                    "post": {
                        "parameters": [
                            { "name": "Idempotency-Key", "in": "header", "required": true, "schema": { "type": "string" } },
                            { "name": "X-Trace", "in": "header", "schema": { "type": "string" } },
                            { "name": "page", "in": "query", "required": true, "schema": { "type": "string" } }
                        ],
                        "requestBody": { "content": {
                            "application/json": { "schema": { "$ref": "#/components/schemas/PaymentRequest" } },
                            "$default": { "schema": { "$ref": "#/components/schemas/PaymentRequest" } }
                        } },
                        "security": [ { "sigv4": [] } ],
                        "x-amazon-apigateway-request-validator": "body-and-headers",
                        "x-amazon-apigateway-integration": {
                            "type": "aws_proxy", "httpMethod": "POST",
                            "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:payment-process-qa:${stageVariables.lambdaAlias}/invocations"
                        }
                    }
                },
                "/status": {
                    "get": { "x-amazon-apigateway-integration": { "type": "mock" } },
                    "x-amazon-apigateway-any-method": { "security": [ { "partner-authorizer": [] } ] }
                }
            },
            "components": {
                "schemas": {
                    "PaymentRequest": { "type": "object", "required": ["card"], "properties": { "card": { "$ref": "#/components/schemas/Card" } } },
                    "Card": { "type": "object", "required": ["number"] }
                },
                "securitySchemes": {
                    "sigv4": { "type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4" },
                    "partner-authorizer": { "type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "custom" }
                }
            },
            "x-amazon-apigateway-request-validators": {
                "body-and-headers": { "validateRequestBody": true, "validateRequestParameters": true },
                "none": { "validateRequestBody": false, "validateRequestParameters": false }
            },
            "x-amazon-apigateway-request-validator": "none"
        })
    }

    #[test]
    fn an_exported_stage_reads_as_the_routes_api_gateway_serves() {
        let ids = HashMap::from([("/process".to_string(), "r0c3ss".to_string())]);
        let routes = routes_of_export(&export(), &ids);
        assert_eq!(
            routes.keys().map(|(m, p)| format!("{m} {p}")).collect::<Vec<_>>(),
            ["ANY /status", "GET /status", "POST /process"]
        );
        let process = &routes[&("POST".to_string(), "/process".to_string())];
        assert_eq!(process.resource_id, "r0c3ss");
        assert_eq!(process.authorization, "AWS_IAM");
        assert!(process.validate_body && process.validate_parameters);
        assert_eq!(process.required_headers, ["Idempotency-Key"], "only required headers; query is not a header");
        assert_eq!(process.models.keys().collect::<Vec<_>>(), ["$default", "application/json"]);
        let model = &process.models["application/json"];
        assert!(model.is_valid(&json!({ "card": { "number": "4242" } })));
        assert!(!model.is_valid(&json!({ "card": {} })), "the reference to the Card model resolves inside the export");
        assert!(!model.is_valid(&json!({})));
        assert!(process
            .integration_uri
            .as_deref()
            .unwrap()
            .contains("payment-process-qa:${stageVariables.lambdaAlias}"));

        let status = &routes[&("GET".to_string(), "/status".to_string())];
        assert_eq!(status.authorization, "NONE");
        assert!(!status.validate_body, "the API's default validator, which checks nothing");
        assert_eq!(status.integration_uri, None);
        assert_eq!(status.resource_id, "", "a path the API no longer has: its id is unknown");
        let any = &routes[&("ANY".to_string(), "/status".to_string())];
        assert_eq!(any.authorization, "CUSTOM", "an authorizer is never read as an open method");
    }

    #[test]
    fn an_export_without_extensions_or_paths_reads_as_no_routes_rather_than_failing() {
        assert!(routes_of_export(&json!({ "openapi": "3.0.1" }), &HashMap::new()).is_empty());
        let bare = routes_of_export(&json!({ "paths": { "/x": { "post": {} } } }), &HashMap::new());
        let x = &bare[&("POST".to_string(), "/x".to_string())];
        assert_eq!((x.authorization.as_str(), x.validate_body, x.integration_uri.as_deref()), ("NONE", false, None));
    }

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
