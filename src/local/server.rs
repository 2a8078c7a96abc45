//! `tapctl local`: the stack's REST API served on 127.0.0.1 as API Gateway serves it, from what
//! the account holds (design.md §9). A request goes through API Gateway's steps in API Gateway's
//! order — route, throttling, IAM authorization, request validation, integration — and each
//! refusal has API Gateway's status and body. The integration resolves the stage variable (or
//! the canary's override, for the canary's share), checks the alias's invoke permission, follows
//! alias → version → CodeSha256 to the package built for this machine, and runs that version's
//! bootstrap as processes behind a Lambda Runtime API, with the version's environment and timeout.
//! The API, the stage and the aliases are re-read every second while serving, in the background:
//! a request waits for AWS only the first time it meets an alias or a version.
//!
//! Only this machine may call it, and only as the operator: it listens on 127.0.0.1, answers
//! only requests addressed to that address by name (a page in a browser, led there by DNS
//! rebinding, names another host), and checks the signature of every request, the Lambda
//! Invoke it serves to the functions included, with tapctl's own credentials as they are now.

use super::api::{self, Api, Route};
use super::auth::{self, Credentials, Refusal};
use super::runtime::{self, Outcome};
use crate::aws::{AwsError, AwsResultExt, NotFoundExt};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// API Gateway's integration timeout for a REST API (its quotas page: 50 ms – 29 s by default).
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);
/// How often the API, the stage and the aliases are read again.
pub const REFRESH: Duration = Duration::from_secs(1);
/// Instances of one function version at most (Lambda scales further; one machine should not).
const MAX_INSTANCES: usize = 8;
/// API Gateway's payload quota: a larger request is refused with 413 before anything runs.
pub const MAX_BODY: usize = 10 * 1024 * 1024;
/// An alias not asked for in this long is no longer refreshed (it is read again when asked).
const ALIAS_UNUSED: Duration = Duration::from_secs(60);
/// A resolution older than this (the background refresh failing) is read again in the request.
const ALIAS_STALE: Duration = Duration::from_secs(5);
/// An instance that has served nothing for this long is stopped (Lambda reclaims idle
/// environments after minutes too).
const IDLE_INSTANCE: Duration = Duration::from_secs(600);

/// Where the functions reach the database when Parameter Store's endpoints are not reachable from
/// this machine (`--database`): passed to them as `PAYMENTS_LOCAL_DATABASE_*`.
#[derive(Debug, Clone)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub ca_bundle: Option<PathBuf>,
}

pub struct Options {
    pub region: String,
    pub account: String,
    pub api_id: String,
    pub stage: String,
    /// Package folders (`tapctl build` outputs) searched for each version's code.
    pub packages: Vec<PathBuf>,
    pub database: Option<Database>,
    /// Where the credentials requests must be signed with come from (tapctl's own: the caller
    /// is the operator). Read again when they expire or a request names a key they do not hold.
    pub credentials: aws_credential_types::provider::SharedCredentialsProvider,
    /// What the functions are given to reach AWS (the caller's environment: keys, endpoint).
    pub aws_env: Vec<(String, String)>,
    /// This server's own address: the functions' Lambda endpoint, so that a function invoking
    /// another (process → its migrator) runs it here too, not on the emulator.
    pub address: String,
}

/// One function version: what Lambda holds of it.
#[derive(Debug, Clone)]
struct Version {
    name: String,
    version: String,
    code_sha256: String,
    environment: HashMap<String, String>,
    timeout: Duration,
    memory: i32,
}

/// One version and its running instances.
struct Running {
    pool: Arc<runtime::Pool>,
    version: Version,
}

/// What an alias resolved to, and whether API Gateway may invoke it for one source ARN (a
/// route of the stage: a permission may allow one route and not another), as last read.
#[derive(Clone)]
struct Resolved {
    read_at: Instant,
    used_at: Instant,
    version: Option<String>,
    permitted: bool,
}

/// (function ARN with its alias, the route's execute-api source ARN).
type AliasKey = (String, String);

/// A version's setup, made once by the first request that needs it.
type VersionCell = Arc<tokio::sync::OnceCell<Arc<Running>>>;

/// The credentials signatures are checked with, and when they were read.
struct Keys {
    known: Arc<Vec<Credentials>>,
    read_at: Instant,
    expires: Option<SystemTime>,
}

pub struct Local {
    apigw: aws_sdk_apigateway::Client,
    lambda: aws_sdk_lambda::Client,
    options: Options,
    packages: super::packages::Packages,
    api: Mutex<Arc<Api>>,
    aliases: Mutex<HashMap<AliasKey, Resolved>>,
    /// One cell per (function, version): the first request starts it, others wait for that,
    /// and requests for other versions never wait behind it.
    /// By (function name, version, CodeSha256 for `$LATEST`, else empty): a numbered version's
    /// code never changes, `$LATEST`'s does with every UpdateFunctionCode.
    versions: Mutex<HashMap<(String, String, String), VersionCell>>,
    keys: Mutex<Keys>,
    /// One re-read of the credentials at a time (a provider may call STS or SSO).
    rereading: tokio::sync::Mutex<()>,
    bucket: Mutex<TokenBucket>,
    requests: std::sync::atomic::AtomicU64,
}

/// API Gateway's throttling: a token bucket of `burst` tokens refilled at `rate` per second.
struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn take(&mut self, rate: f64, burst: u32, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(f64::from(burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where Lambda's Invoke is served (the path of the Lambda API's Invoke operation).
const LAMBDA_INVOKE_PREFIX: &str = "/2015-03-31/functions/";

/// A Lambda API error as the SDK reads it (`x-amzn-errortype`, `{"Type", "Message"}`).
fn lambda_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    // Lambda's error document: "User" for the caller's mistakes, "Service" for its own.
    let kind = if status >= 500 { "Service" } else { "User" };
    let mut r = Response::new(Full::new(Bytes::from(json!({ "Type": kind, "Message": message }).to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::NOT_FOUND);
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    if let Ok(v) = hyper::header::HeaderValue::from_str(code) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// Why an invocation could not start, as Lambda's Invoke would say it: the function or its
/// qualifier does not exist (404), Lambda is throttling tapctl local's own reads (429), or
/// anything else (500, this machine's or AWS's fault, not the caller's).
#[derive(Debug)]
struct LambdaFailure {
    status: u16,
    code: &'static str,
    message: String,
}

impl LambdaFailure {
    fn from_aws(e: AwsError) -> LambdaFailure {
        let (status, code) = if e.is_not_found() {
            (404, "ResourceNotFoundException")
        } else if e.code.as_deref().is_some_and(crate::aws::is_throttling_code) {
            (429, "TooManyRequestsException")
        } else {
            (500, "ServiceException")
        };
        LambdaFailure { status, code, message: e.to_string() }
    }

    fn service(message: String) -> LambdaFailure {
        LambdaFailure { status: 500, code: "ServiceException", message }
    }

    fn answer(&self) -> Response<Full<Bytes>> {
        lambda_error(self.status, self.code, &self.message)
    }
}

impl std::fmt::Display for LambdaFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An API Gateway answer: a status and `{"message": …}`.
fn gateway(status: u16, message: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(json!({ "message": message }).to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r.headers_mut().insert("x-amzn-errortype", hyper::header::HeaderValue::from_static("local"));
    r
}

fn refused(r: &Refusal) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body().to_string())));
    *resp.status_mut() = hyper::StatusCode::from_u16(r.status()).unwrap_or(hyper::StatusCode::FORBIDDEN);
    resp.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    resp
}

/// The model that applies to a body: its Content-Type's (without parameters), else `$default`.
/// API Gateway validates against no model when neither is mapped.
fn model_for<'a>(route: &'a Route, content_type: Option<&str>) -> Option<&'a api::Model> {
    let media = content_type.map(|c| c.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    media.as_deref().and_then(|m| route.models.get(m)).or_else(|| route.models.get("$default"))
}

/// API Gateway's request validation: required headers, then the body against the model
/// (JSON Schema draft-04), with API Gateway's 400 bodies.
pub fn validate(route: &Route, headers: &hyper::HeaderMap, body: &[u8]) -> Result<(), (u16, String)> {
    if route.validate_parameters {
        let missing: Vec<&str> =
            route.required_headers.iter().filter(|h| !headers.contains_key(h.as_str())).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err((400, format!("Missing required request parameters: [{}]", missing.join(", "))));
        }
    }
    if route.validate_body {
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
        if let Some(model) = model_for(route, content_type) {
            let valid = serde_json::from_slice::<Value>(body).ok().is_some_and(|instance| model.is_valid(&instance));
            if !valid {
                return Err((400, "Invalid request body".into()));
            }
        }
    }
    Ok(())
}

/// Says once (when it starts) that the canary serves another deployment than the stage's: its
/// requests then get the stage's routes, since only the stage's deployment can be exported.
fn warn_of_a_canary_elsewhere(before: Option<&api::Stage>, stage: &api::Stage) {
    let elsewhere = |s: &api::Stage| {
        s.canary.as_ref().map(|c| c.deployment_id.clone()).filter(|d| !d.is_empty() && *d != s.deployment_id)
    };
    if let Some(d) = elsewhere(stage).filter(|d| before.and_then(elsewhere).as_ref() != Some(d)) {
        tracing::warn!(
            "the canary serves deployment {d}, whose routes cannot be exported: its requests get the stage's \
             routes (deployment {}) with the canary's stage variables",
            stage.deployment_id
        );
    }
}

/// Whether `authority` (a Host header, or an origin without its scheme) is this server:
/// 127.0.0.1, localhost or [::1] with its port.
fn names_this_server(authority: &str, port: &str) -> bool {
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|name| authority.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')).is_some_and(|p| p == port))
}

/// Whether a browser sent the request for a page that is not this server's: an `Origin` of
/// another site (or another port of this machine), or `Sec-Fetch-Site` other than `same-origin` /
/// `none` (a user's own navigation). Such a request is refused before anything else: a web page
/// must not make the operator's browser call the functions, even where SigV4 would refuse it
/// too. Clients that are not browsers (the SDKs, curl) send neither header.
fn sent_by_another_page(headers: &hyper::HeaderMap, port: &str) -> bool {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    let foreign_origin = text("origin").is_some_and(|origin| {
        let authority = origin.strip_prefix("http://").unwrap_or("");
        !names_this_server(authority, port)
    });
    let foreign_fetch = text("sec-fetch-site").is_some_and(|site| !matches!(site, "same-origin" | "none"));
    foreign_origin || foreign_fetch
}

/// Which colour serves a request: the canary's override for its share, else the stage's.
fn variables_for(api: &Api, draw: f64) -> (HashMap<String, String>, bool) {
    let mut vars = api.stage.variables.clone();
    match &api.stage.canary {
        Some(c) if draw * 100.0 < c.percent => {
            vars.extend(c.overrides.clone());
            (vars, true)
        }
        _ => (vars, false),
    }
}

/// Whether a function policy lets API Gateway invoke for this source ARN: a statement allowing
/// lambda:InvokeFunction to apigateway.amazonaws.com whose AWS:SourceArn pattern matches.
pub fn permits(policy: &Value, source_arn: &str) -> bool {
    policy["Statement"].as_array().into_iter().flatten().any(|s| {
        let service = &s["Principal"]["Service"];
        let to_apigw = service == "apigateway.amazonaws.com"
            || service.as_array().is_some_and(|a| a.iter().any(|v| v == "apigateway.amazonaws.com"));
        let action = &s["Action"];
        let invoke = action == "lambda:InvokeFunction"
            || action.as_array().is_some_and(|a| a.iter().any(|v| v == "lambda:InvokeFunction"));
        let pattern = s["Condition"]["ArnLike"]["AWS:SourceArn"].as_str();
        s["Effect"] == "Allow" && to_apigw && invoke && pattern.is_none_or(|p| glob(p, source_arn))
    })
}

/// IAM's ARN wildcards: `*` any run of characters, `?` one.
fn glob(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

impl Local {
    pub async fn new(
        apigw: aws_sdk_apigateway::Client,
        lambda: aws_sdk_lambda::Client,
        options: Options,
    ) -> Result<Arc<Local>, String> {
        let api = api::read(&apigw, &options.api_id, &options.stage)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the API {} has no stage {}", options.api_id, options.stage))?;
        warn_of_a_canary_elsewhere(None, &api.stage);
        let keys = read_keys(&options.credentials).await?;
        let packages = super::packages::Packages::new(options.packages.clone())
            .map_err(|e| format!("making a private folder for the functions' bootstraps: {e}"))?;
        let burst = api.stage.burst;
        Ok(Arc::new(Local {
            apigw,
            lambda,
            options,
            packages,
            api: Mutex::new(Arc::new(api)),
            aliases: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
            keys: Mutex::new(keys),
            rereading: tokio::sync::Mutex::new(()),
            bucket: Mutex::new(TokenBucket { tokens: f64::from(burst), at: Instant::now() }),
            requests: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Every `REFRESH`: the stage (and the routes when it serves another deployment), then
    /// every alias in use. A failed read keeps the last answer.
    pub fn keep_fresh(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                if let Err(e) = me.refresh().await {
                    tracing::warn!("reading the API failed, serving the last definition: {e}");
                }
                me.refresh_aliases().await;
                me.retire_idle_instances();
            }
        });
    }

    /// The stage every time; the routes only when the stage serves another deployment.
    async fn refresh(&self) -> Result<(), crate::aws::AwsError> {
        let Some(stage) = api::read_stage(&self.apigw, &self.options.api_id, &self.options.stage).await? else {
            tracing::warn!("the API or its stage is gone; serving the last definition");
            return Ok(());
        };
        let current = Arc::clone(&lock(&self.api));
        warn_of_a_canary_elsewhere(Some(&current.stage), &stage);
        let routes = if stage.deployment_id == current.stage.deployment_id {
            current.routes.clone()
        } else {
            api::read_routes(&self.apigw, &self.options.api_id, &self.options.stage).await?
        };
        *lock(&self.api) = Arc::new(api::Api { id: current.id.clone(), reads: current.reads + 1, routes, stage });
        Ok(())
    }

    /// Reads again every alias a request asked for lately; forgets those nobody asked for.
    async fn refresh_aliases(&self) {
        let keys: Vec<AliasKey> = {
            let mut aliases = lock(&self.aliases);
            aliases.retain(|_, r| r.used_at.elapsed() < ALIAS_UNUSED);
            aliases.keys().cloned().collect()
        };
        for (function_arn, source_arn) in keys {
            if let Err(e) = self.read_alias(&function_arn, &source_arn).await {
                tracing::warn!("reading {function_arn} failed, serving the last answer: {e}");
            }
        }
    }

    /// Stops instances idle for `IDLE_INSTANCE`, as Lambda reclaims idle environments: an old
    /// version's processes do not stay up for the whole life of a long `tapctl local`.
    fn retire_idle_instances(&self) {
        for cell in lock(&self.versions).values() {
            if let Some(running) = cell.get() {
                running.pool.retire_idle(IDLE_INSTANCE);
            }
        }
    }

    /// Serves on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                // Out of descriptors, say: try again shortly rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let me = Arc::clone(&me);
                    async move { Ok::<_, hyper::Error>(me.handle(req, peer).await) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    }

    /// Whether the request names this server as its host: 127.0.0.1, localhost or [::1] with
    /// this port. A name that resolves here but is another (DNS rebinding) is refused.
    fn addressed_here(&self, headers: &hyper::HeaderMap) -> bool {
        let port = self.options.address.rsplit(':').next().unwrap_or_default();
        let host = headers.get(hyper::header::HOST).and_then(|h| h.to_str().ok());
        host.is_some_and(|host| names_this_server(host, port)) && !sent_by_another_page(headers, port)
    }

    /// The credentials as they are now: read again when they have expired, or (at most once a
    /// `REFRESH`) when a request names a key they do not hold, as after a rotation.
    async fn verify(
        &self,
        service: &str,
        parts: &hyper::http::request::Parts,
        body: &[u8],
    ) -> Result<auth::Caller, Refusal> {
        let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let check = |known: &[Credentials]| {
            auth::verify(
                service,
                parts.method.as_str(),
                path_and_query,
                &parts.headers,
                body,
                &self.options.region,
                known,
                SystemTime::now(),
            )
        };
        let current = || {
            let keys = lock(&self.keys);
            let expired = keys.expires.is_some_and(|at| at <= SystemTime::now());
            (Arc::clone(&keys.known), expired, keys.read_at.elapsed() >= REFRESH)
        };
        let (known, expired, may_reread) = current();
        let first = if expired { Err(Refusal::UnknownAccessKey) } else { check(&known) };
        if first != Err(Refusal::UnknownAccessKey) || !(expired || may_reread) {
            return first;
        }
        let _one_at_a_time = self.rereading.lock().await;
        // Another request may have read them while this one waited.
        let (known, expired, may_reread) = current();
        if !expired && !may_reread {
            return check(&known);
        }
        match read_keys(&self.options.credentials).await {
            Ok(keys) => {
                let known = Arc::clone(&keys.known);
                *lock(&self.keys) = keys;
                check(&known)
            }
            Err(e) => {
                tracing::error!("{e}");
                first
            }
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: std::net::SocketAddr) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        if !self.addressed_here(&parts.headers) {
            return gateway(403, "Forbidden");
        }
        let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return gateway(413, "Request Too Long"),
            Err(_) => return gateway(400, "Bad Request"),
        };
        if let Some(rest) = parts.uri.path().strip_prefix(LAMBDA_INVOKE_PREFIX) {
            if let Err(refusal) = self.verify("lambda", &parts, &body).await {
                return lambda_refused(&refusal);
            }
            return self.handle_invoke(rest, parts.uri.query(), &body).await;
        }
        let api = Arc::clone(&lock(&self.api));
        let mut resp = self.handle_api(&api, parts, body, peer).await;
        if let Ok(v) = hyper::header::HeaderValue::from_str(&api.reads.to_string()) {
            resp.headers_mut().insert("x-tapctl-stage-read", v);
        }
        resp
    }

    /// API Gateway's steps for one request of the API, on the definition read last.
    async fn handle_api(
        &self,
        api: &Api,
        parts: hyper::http::request::Parts,
        body: Bytes,
        peer: std::net::SocketAddr,
    ) -> Response<Full<Bytes>> {
        let path = parts.uri.path().to_string();
        let stage_prefix = format!("/{}", api.stage.name);
        let resource_path = match path.strip_prefix(&stage_prefix) {
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            Some("") => "/".to_string(),
            _ => return gateway(403, "Missing Authentication Token"),
        };
        // An unknown resource or method of an IAM-authorised API: API Gateway's answer.
        let Some(route) = api.route(parts.method.as_str(), &resource_path) else {
            return gateway(403, "Missing Authentication Token");
        };
        if !lock(&self.bucket).take(api.stage.rate, api.stage.burst, Instant::now()) {
            return gateway(429, "Too Many Requests");
        }
        let caller = match route.authorization.as_str() {
            "AWS_IAM" => match self.verify(auth::EXECUTE_API, &parts, &body).await {
                Ok(c) => Some(c.access_key_id),
                Err(r) => return refused(&r),
            },
            "NONE" => None,
            // An authorizer or an API key, which tapctl local cannot evaluate: refused, never
            // served as if the method were open. (tapctl's own API has AWS_IAM methods only.)
            other => {
                tracing::error!("{} {}: authorization {other} is not served locally", route.method, route.path);
                return gateway(401, "Unauthorized");
            }
        };
        if let Err((status, message)) = validate(route, &parts.headers, &body) {
            return gateway(status, &message);
        }
        let (variables, canary) = variables_for(api, rand::random::<f64>());
        let Some(function_arn) = route.integration_uri.as_deref().and_then(|u| api::function_of(u, &variables)) else {
            return gateway(500, "Internal server error");
        };
        let source_arn = format!(
            "arn:aws:execute-api:{}:{}:{}/{}/{}{}",
            self.options.region, self.options.account, api.id, api.stage.name, route.method, route.path
        );
        let (version, permitted) = match self.resolve(&function_arn, &source_arn).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("resolving {function_arn}: {e}");
                return gateway(500, "Internal server error");
            }
        };
        let Some(version) = version.filter(|_| permitted) else {
            // API Gateway's answer when it may not invoke the function: 500, logged as
            // "Execution failed due to configuration error: Invalid permissions on Lambda function".
            tracing::error!(
                "{function_arn}: invalid permissions on Lambda function (no invoke permission for {source_arn})"
            );
            return gateway(500, "Internal server error");
        };
        let request_id = format!("{:016x}-local", self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let event = proxy_event(
            api,
            route,
            &parts,
            &body,
            &variables,
            &request_id,
            &self.options.account,
            caller.as_deref(),
            peer,
        );
        let running = match self.running(&function_arn, &version).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("{e}");
                return gateway(500, "Internal server error");
            }
        };
        let colour = function_arn.rsplit(':').next().unwrap_or_default().to_string();
        // The function runs to its own timeout; API Gateway stops waiting at 29 s and answers 504
        // while the invocation goes on (it runs in its own task), as on AWS, where a payment can
        // be recorded after its client was told 504.
        let invocation = running.pool.invoke(Some(request_id.clone()), &event, &function_arn, running.version.timeout);
        let finished = tokio::time::timeout(INTEGRATION_TIMEOUT, invocation).await.ok();
        let mut resp = match finished.as_ref().map(|f| &f.outcome) {
            Some(Outcome::Response(v)) => proxy_response(v).unwrap_or_else(|| gateway(502, "Internal server error")),
            // A function error, its own timeout included (Lambda's "Task timed out" is one).
            Some(Outcome::Error(_) | Outcome::TimedOut) => gateway(502, "Internal server error"),
            None => gateway(504, "Endpoint request timed out"),
        };
        // The function's own share of the answer (event handed to an instance → its answer:
        // Lambda's Duration); the rest is this server's and the wait for a free instance.
        let function_ms =
            finished.and_then(|f| f.duration).map(|d| format!("{:.3}", d.as_secs_f64() * 1000.0)).unwrap_or_default();
        let deployment = match (&api.stage.canary, canary) {
            (Some(c), true) if !c.deployment_id.is_empty() => c.deployment_id.as_str(),
            _ => api.stage.deployment_id.as_str(),
        };
        let h = resp.headers_mut();
        for (k, v) in [
            ("x-amzn-requestid", request_id.as_str()),
            ("x-tapctl-colour", colour.as_str()),
            ("x-tapctl-version", version.as_str()),
            ("x-tapctl-canary", if canary { "true" } else { "false" }),
            ("x-tapctl-deployment", deployment),
            ("x-tapctl-function-ms", function_ms.as_str()),
        ] {
            if let Ok(v) = hyper::header::HeaderValue::from_str(v) {
                h.insert(k, v);
            }
        }
        resp
    }

    /// Lambda's Invoke (RequestResponse) for the functions themselves: `POST
    /// /2015-03-31/functions/{name or ARN}/invocations[?Qualifier=…]`, answered as Lambda answers
    /// (200 with the payload; `X-Amz-Function-Error: Unhandled` and the error document when the
    /// function failed or timed out; 404 `ResourceNotFoundException` for an unknown function).
    /// The caller's signature has been checked (service `lambda`).
    async fn handle_invoke(&self, rest: &str, query: Option<&str>, body: &Bytes) -> Response<Full<Bytes>> {
        let Some((function, qualifier)) = invoke_target(rest, query) else {
            return lambda_error(404, "UnknownOperationException", "only Invoke is served here");
        };
        let version = if qualifier == "$LATEST" || qualifier.chars().all(|c| c.is_ascii_digit()) {
            qualifier.clone()
        } else {
            match self.lambda.get_alias().function_name(&function).name(&qualifier).send().await {
                Ok(a) => a.function_version().unwrap_or("$LATEST").to_string(),
                Err(e) => return LambdaFailure::from_aws(AwsError::from_sdk("lambda:GetAlias", e)).answer(),
            }
        };
        let invoked =
            format!("arn:aws:lambda:{}:{}:function:{function}:{qualifier}", self.options.region, self.options.account);
        let running = match self.running(&invoked, &version).await {
            Ok(p) => p,
            Err(failure) => return failure.answer(),
        };
        let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let request_id = format!("{:016x}-invoke", self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let finished = running.pool.invoke(Some(request_id.clone()), &event, &invoked, running.version.timeout).await;
        invoke_answer(finished.outcome, &version, &request_id)
    }

    /// The version an alias names and whether API Gateway may invoke it from `source_arn`: as
    /// the background refresh last read it, or read now the first time (or when the refresh has
    /// been failing for `ALIAS_STALE`).
    async fn resolve(&self, function_arn: &str, source_arn: &str) -> Result<(Option<String>, bool), AwsError> {
        let key = (function_arn.to_string(), source_arn.to_string());
        if let Some(r) = lock(&self.aliases).get_mut(&key).filter(|r| r.read_at.elapsed() < ALIAS_STALE) {
            r.used_at = Instant::now();
            return Ok((r.version.clone(), r.permitted));
        }
        self.read_alias(function_arn, source_arn).await
    }

    async fn read_alias(&self, function_arn: &str, source_arn: &str) -> Result<(Option<String>, bool), AwsError> {
        let (name, alias) = function_arn.rsplit_once(':').unwrap_or((function_arn, ""));
        let name = name.rsplit(':').next().unwrap_or(name).to_string();
        let got = self
            .lambda
            .get_alias()
            .function_name(&name)
            .name(alias)
            .send()
            .await
            .aws("lambda:GetAlias")
            .ok_if_not_found()?;
        let version = got.and_then(|a| a.function_version().map(str::to_string));
        let policy = self
            .lambda
            .get_policy()
            .function_name(&name)
            .qualifier(alias)
            .send()
            .await
            .aws("lambda:GetPolicy")
            .ok_if_not_found()?;
        let permitted = policy
            .and_then(|p| p.policy().and_then(|p| serde_json::from_str::<Value>(p).ok()))
            .is_some_and(|p| permits(&p, source_arn));
        let now = Instant::now();
        let mut aliases = lock(&self.aliases);
        let used_at = aliases.get(&(function_arn.to_string(), source_arn.to_string())).map_or(now, |r| r.used_at);
        aliases.insert(
            (function_arn.to_string(), source_arn.to_string()),
            Resolved { read_at: now, used_at, version: version.clone(), permitted },
        );
        Ok((version, permitted))
    }

    /// `function_arn`'s `version` with its instances, set up on first use from the package whose
    /// CodeSha256 is the version's. `$LATEST` is read every time, since its code changes in place:
    /// new code gets new instances, as Lambda starts new environments after an update.
    async fn running(&self, function_arn: &str, version: &str) -> Result<Arc<Running>, LambdaFailure> {
        let (qualified, _) = function_arn.rsplit_once(':').unwrap_or((function_arn, ""));
        let name = qualified.rsplit(':').next().unwrap_or(qualified).to_string();
        let latest = if version == "$LATEST" { Some(self.configuration(&name, version).await?) } else { None };
        let code = latest.as_ref().map(|v| v.code_sha256.clone()).unwrap_or_default();
        let cell = Arc::clone(lock(&self.versions).entry((name.clone(), version.to_string(), code)).or_default());
        cell.get_or_try_init(|| async {
            let v = match latest {
                Some(v) => v,
                None => self.configuration(&name, version).await?,
            };
            self.start_version(v)
        })
        .await
        .cloned()
    }

    async fn configuration(&self, name: &str, version: &str) -> Result<Version, LambdaFailure> {
        let c = self
            .lambda
            .get_function_configuration()
            .function_name(name)
            .qualifier(version)
            .send()
            .await
            .aws("lambda:GetFunctionConfiguration")
            .map_err(LambdaFailure::from_aws)?;
        Ok(Version {
            name: name.to_string(),
            version: version.to_string(),
            code_sha256: c.code_sha256().unwrap_or_default().to_string(),
            environment: c.environment().and_then(|e| e.variables().cloned()).unwrap_or_default(),
            timeout: Duration::from_secs(c.timeout().unwrap_or(3).max(1) as u64),
            memory: c.memory_size().unwrap_or(128),
        })
    }

    fn start_version(&self, v: Version) -> Result<Arc<Running>, LambdaFailure> {
        let packages = &self.packages;
        // Hashing and unzipping read files: off the threads that serve requests.
        let bootstrap = tokio::task::block_in_place(|| packages.bootstrap_for(&v.code_sha256))
            .map_err(|e| LambdaFailure::service(format!("{} version {}: {e}", v.name, v.version)))?;
        let pool = runtime::Pool::new(runtime::Launch {
            program: bootstrap,
            env: self.instance_env(&v),
            output: runtime::Output::Inherit,
            max_instances: MAX_INSTANCES,
        });
        Ok(Arc::new(Running { pool, version: v }))
    }

    /// Every instance's whole environment: nothing of tapctl's own is inherited.
    fn instance_env(&self, v: &Version) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self.options.aws_env.clone();
        env.extend([
            ("AWS_LAMBDA_FUNCTION_NAME".into(), v.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), v.version.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), v.memory.to_string()),
            ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
            ("AWS_REGION".into(), self.options.region.clone()),
            ("AWS_DEFAULT_REGION".into(), self.options.region.clone()),
            ("AWS_ENDPOINT_URL_LAMBDA".into(), format!("http://{}", self.options.address)),
        ]);
        if let Some(db) = &self.options.database {
            env.push(("PAYMENTS_LOCAL_DATABASE_HOST".into(), db.host.clone()));
            env.push(("PAYMENTS_LOCAL_DATABASE_PORT".into(), db.port.to_string()));
            if let Some(ca) = &db.ca_bundle {
                env.push(("PAYMENTS_LOCAL_DATABASE_CA".into(), ca.display().to_string()));
            }
        }
        env.extend(v.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

/// The credentials the provider holds now.
async fn read_keys(provider: &aws_credential_types::provider::SharedCredentialsProvider) -> Result<Keys, String> {
    use aws_credential_types::provider::ProvideCredentials;
    let c = provider.provide_credentials().await.map_err(|e| {
        format!("tapctl local checks signatures with tapctl's own AWS credentials, and they cannot be read: {e}")
    })?;
    Ok(Keys {
        known: Arc::new(vec![Credentials {
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: c.secret_access_key().to_string(),
            session_token: c.session_token().map(str::to_string),
        }]),
        read_at: Instant::now(),
        expires: c.expiry(),
    })
}

/// The function and qualifier an Invoke path names: `{name or ARN}/invocations`, the
/// qualifier from `?Qualifier=` or the ARN's own, `$LATEST` when neither says.
pub fn invoke_target(rest: &str, query: Option<&str>) -> Option<(String, String)> {
    let name = rest.strip_suffix("/invocations")?;
    let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy().into_owned();
    let qualifier = query
        .map(url_pairs)
        .unwrap_or_default()
        .into_iter()
        .find_map(|(k, v)| (k == "Qualifier").then_some(v))
        .or_else(|| name.split(':').nth(7).map(str::to_string));
    let function = name.split(':').nth(6).unwrap_or(&name).to_string();
    Some((function, qualifier.unwrap_or_else(|| "$LATEST".to_string())))
}

/// Lambda's answer to a RequestResponse Invoke with this outcome.
pub fn invoke_answer(outcome: Outcome, version: &str, request_id: &str) -> Response<Full<Bytes>> {
    let (payload, failed) = match outcome {
        Outcome::Response(v) => (v, false),
        Outcome::Error(v) => (v, true),
        Outcome::TimedOut => (json!({"errorMessage": "Task timed out", "errorType": "Sandbox.Timedout"}), true),
    };
    let mut resp = Response::new(Full::new(Bytes::from(payload.to_string())));
    let h = resp.headers_mut();
    h.insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    for (k, v) in [("x-amz-executed-version", version), ("x-amzn-requestid", request_id)] {
        if let Ok(v) = hyper::header::HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    if failed {
        h.insert("x-amz-function-error", hyper::header::HeaderValue::from_static("Unhandled"));
    }
    resp
}

/// Lambda's refusal of a request it cannot authenticate (its error codes, 403).
fn lambda_refused(r: &Refusal) -> Response<Full<Bytes>> {
    let code = match r {
        Refusal::MissingAuthenticationToken => "MissingAuthenticationTokenException",
        Refusal::UnknownAccessKey => "UnrecognizedClientException",
        Refusal::IncompleteSignature(_) => "IncompleteSignatureException",
        Refusal::SignatureMismatch | Refusal::SignatureExpired(_) => "InvalidSignatureException",
    };
    let message = r.body()["message"].as_str().unwrap_or_default().to_string();
    lambda_error(403, code, &message)
}

/// API Gateway's REST (v1) Lambda proxy event.
#[allow(clippy::too_many_arguments)]
fn proxy_event(
    api: &Api,
    route: &Route,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    variables: &HashMap<String, String>,
    request_id: &str,
    account: &str,
    access_key: Option<&str>,
    peer: std::net::SocketAddr,
) -> Value {
    let mut headers = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (k, v) in &parts.headers {
        let v = v.to_str().unwrap_or_default().to_string();
        let name = canonical_header(k.as_str());
        headers.insert(name.clone(), json!(v));
        if let Some(values) = multi.entry(name).or_insert_with(|| json!([])).as_array_mut() {
            values.push(json!(v));
        }
    }
    let mut query = Map::new();
    let mut multi_query: Map<String, Value> = Map::new();
    for (k, v) in parts.uri.query().map(url_pairs).unwrap_or_default() {
        query.insert(k.clone(), json!(v));
        if let Some(values) = multi_query.entry(k).or_insert_with(|| json!([])).as_array_mut() {
            values.push(json!(v));
        }
    }
    let now = chrono::Utc::now();
    let user_agent = parts.headers.get("user-agent").and_then(|v| v.to_str().ok());
    let body_text = (!body.is_empty()).then(|| String::from_utf8_lossy(body).into_owned());
    json!({
        "resource": route.path,
        "path": route.path,
        "httpMethod": route.method,
        "headers": if headers.is_empty() { Value::Null } else { Value::Object(headers) },
        "multiValueHeaders": if multi.is_empty() { Value::Null } else { Value::Object(multi) },
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query) },
        "multiValueQueryStringParameters": if multi_query.is_empty() { Value::Null } else { Value::Object(multi_query) },
        "pathParameters": null,
        "stageVariables": variables,
        "requestContext": {
            "accountId": account,
            "resourceId": route.resource_id,
            "stage": api.stage.name,
            "requestId": request_id,
            "resourcePath": route.path,
            "httpMethod": route.method,
            "apiId": api.id,
            "path": format!("/{}{}", api.stage.name, route.path),
            "protocol": "HTTP/1.1",
            "requestTime": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "requestTimeEpoch": now.timestamp_millis(),
            "identity": {
                "accessKey": access_key,
                "sourceIp": peer.ip().to_string(),
                "userAgent": user_agent,
                "caller": access_key,
                "user": access_key,
            }
        },
        "body": body_text,
        "isBase64Encoded": false
    })
}

/// `content-type` → `Content-Type`, as API Gateway passes header names through as sent by most
/// clients (HTTP/1.1 names are case-insensitive; the functions look them up so).
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode =
                |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (decode(k), decode(v))
        })
        .collect()
}

/// The HTTP response a proxy integration's answer describes; None when it is not one (API
/// Gateway answers 502 "Internal server error", logging "Malformed Lambda proxy response").
fn proxy_response(v: &Value) -> Option<Response<Full<Bytes>>> {
    let status = v.get("statusCode")?.as_u64()?;
    let body = match v.get("body") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return None,
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(u16::try_from(status).ok()?).ok()?;
    if let Some(Value::Object(h)) = v.get("headers") {
        for (k, val) in h {
            if let (Ok(name), Some(Ok(value))) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                val.as_str().map(hyper::header::HeaderValue::from_str),
            ) {
                r.headers_mut().insert(name, value);
            }
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> hyper::HeaderMap {
        pairs.iter().map(|(k, v)| (hyper::header::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn only_this_servers_own_names_and_port_are_its_host() {
        for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
            assert!(names_this_server(host, "8080"), "{host}");
        }
        for host in ["127.0.0.1:8081", "127.0.0.1", "localhost.attacker.example:8080", "payments.example:8080", ""] {
            assert!(!names_this_server(host, "8080"), "{host}");
        }
    }

    #[test]
    fn a_request_a_foreign_page_made_the_browser_send_is_told_from_the_operators_own() {
        // SDKs and curl send neither header; a page of this server's own origin, or the user's
        // own navigation, may.
        for own in [
            headers(&[]),
            headers(&[("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "same-origin")]),
            headers(&[("sec-fetch-site", "none")]),
        ] {
            assert!(!sent_by_another_page(&own, "8080"), "{own:?}");
        }
        for foreign in [
            headers(&[("origin", "https://shop.attacker.example")]),
            headers(&[("origin", "http://localhost:3000")]),
            headers(&[("origin", "null")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
        ] {
            assert!(sent_by_another_page(&foreign, "8080"), "{foreign:?}");
        }
    }
}
