//! `functions.<name>`: validate, fraud-check, process and rotate-secret on `provided.al2023`,
//! from the packages of `tapctl build`, each with aliases `blue` and `green`; one node per
//! function, so each is created, waited for and fails on its own.
//!
//! Guarantees:
//! - The environment holds only `PAYMENTS_CONFIG_PREFIX`, encrypted with the stack's key; every
//!   other value is read from Parameter Store at run time.
//! - A version is published only when the package's CodeSha256 is not yet published (or when
//!   this run repaired the configuration, so that the aliases can reach the repair).
//! - `up` moves only the idle colour's alias — the one neither the stage variable nor a canary
//!   sends requests to. Live traffic never changes under `up`; while a canary is live, new code
//!   (or a version published for a repaired configuration) waits — the drift says so, and `up`
//!   leaves the function alone — until `shift` finishes or rolls back.
//! - Each version of process is published with `iam::db_connect::login_marker` in its
//!   description: its code signs in as its own database login. `iam.roles` reads it back per
//!   alias to know when no code that reads the master secret can run any more.
//! - A role, key or network permission made seconds ago may not yet be usable by Lambda: create
//!   and configuration calls retry `catalogue::LAMBDA_FUNCTION`'s answers, with the wait shown.

pub mod network_interfaces;

use crate::aws::{AlreadyExistsExt, AwsResultExt, NotFoundExt};
use crate::names::tag;
use crate::resources::retry::{catalogue, Readiness};
use crate::resources::Outputs;
use crate::resources::{listed, on_off, After, Change, Ctx, Drift, Input, Resource, ResourceError, Result};
use crate::traffic::{Color, Traffic};
use async_trait::async_trait;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, LastUpdateStatus, LogFormat, LoggingConfig, Runtime, State, TracingConfig, TracingMode,
    VpcConfig,
};
use futures::FutureExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The only environment variable: where the function's configuration lives.
pub const CONFIG_PREFIX_VARIABLE: &str = "PAYMENTS_CONFIG_PREFIX";

/// Memory (MB) and timeout (s) of each function. process holds a database connection and
/// waits up to 5 s for a concurrent duplicate; rotate-secret talks to Aurora four times.
/// A function behind the API must end before the API gives up on it
/// (`api::rest::INTEGRATION_TIMEOUT_SECONDS`): a function still running when API Gateway has
/// answered 504 would finish a payment the client believes failed.
pub fn sizing(function: &str) -> (i32, i32) {
    match function {
        "process" => (512, 25),
        "rotate-secret" => (256, 60),
        _ => (256, 10),
    }
}

/// The id of the execution role `function` must be configured for (`tag::ROLE_ID`).
fn wanted_role_id(ctx: &Ctx, function: &str) -> Result<String> {
    let ids = ctx.input_value(super::iam::ID, "role_ids")?;
    ids.get(function).and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
        ResourceError::new("MissingInput", format!("{} did not provide the role id of {function}", super::iam::ID))
    })
}

/// Whether the execution role was deleted and made again since the configuration was applied.
/// Lambda granted the old role the environment's key; the new one cannot decrypt it
/// (KMSAccessDeniedException on every invocation) until the configuration is applied again,
/// which makes Lambda create a new grant. A function without the tag (made before it existed)
/// is tagged, not reconfigured: nothing says its grant is stale.
fn role_recreated(have: &Function, role_id: &str) -> Option<String> {
    let recorded = have.tags.get(tag::ROLE_ID)?;
    (recorded != role_id).then(|| recorded.clone())
}

/// The function's tags: the standard ones and the role id its configuration was applied for.
fn function_tags(ctx: &Ctx, name: &str, role_id: &str) -> std::collections::HashMap<String, String> {
    let mut tags: std::collections::HashMap<String, String> = ctx.tags(None, Some(name)).into_iter().collect();
    tags.insert(tag::ROLE_ID.to_string(), role_id.to_string());
    tags
}

/// What the functions' configuration must be; compared field by field with what Lambda holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub role: String,
    pub memory: i32,
    pub timeout: i32,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub kms_key: String,
    pub tracing_active: bool,
    pub log_group: String,
    pub json_logs: bool,
    pub runtime: String,
    pub handler: String,
}

impl Settings {
    fn wanted(ctx: &Ctx, function: &str) -> Result<Settings> {
        let roles = ctx.input_value(super::iam::ID, "role_arns")?;
        let role = roles.get(function).and_then(Value::as_str).ok_or_else(|| {
            ResourceError::new("MissingInput", format!("{} did not provide the role of {function}", super::iam::ID))
        })?;
        let (memory, timeout) = sizing(function);
        let mut subnets = ctx.input_list(super::network::subnets::ID, "private_subnet_ids")?;
        subnets.sort();
        Ok(Settings {
            role: role.to_string(),
            memory,
            timeout,
            subnets,
            security_groups: vec![ctx.input(super::network::security_groups::ID, "functions_sg_id")?],
            environment: BTreeMap::from([(CONFIG_PREFIX_VARIABLE.to_string(), ctx.names.parameter_prefix())]),
            kms_key: ctx.input(super::kms::ID, "key_arn")?,
            tracing_active: true,
            log_group: ctx.names.function_log_group(function),
            json_logs: true,
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
        })
    }

    fn of(c: &GetFunctionConfigurationOutput) -> Settings {
        let mut subnets: Vec<String> = c.vpc_config().map(|v| v.subnet_ids().to_vec()).unwrap_or_default();
        subnets.sort();
        let logging = c.logging_config();
        Settings {
            role: c.role().unwrap_or_default().to_string(),
            memory: c.memory_size().unwrap_or_default(),
            timeout: c.timeout().unwrap_or_default(),
            subnets,
            security_groups: c.vpc_config().map(|v| v.security_group_ids().to_vec()).unwrap_or_default(),
            environment: c
                .environment()
                .and_then(|e| e.variables())
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            kms_key: c.kms_key_arn().unwrap_or_default().to_string(),
            tracing_active: c.tracing_config().and_then(|t| t.mode()) == Some(&TracingMode::Active),
            log_group: logging.and_then(|l| l.log_group()).unwrap_or_default().to_string(),
            json_logs: logging.and_then(|l| l.log_format()) == Some(&LogFormat::Json),
            runtime: c.runtime().map(|r| r.as_str().to_string()).unwrap_or_default(),
            handler: c.handler().unwrap_or_default().to_string(),
        }
    }

    /// The environment in words, as far as it may be shown: the variables tapctl sets with their
    /// value when it is the stack's, any other only by name (someone may have put a secret there).
    fn environment_words(&self, wanted: &Settings) -> String {
        listed(self.environment.iter().map(|(k, v)| match wanted.environment.get(k) {
            Some(w) if w == v => format!("{k}={v}"),
            Some(_) => format!("{k} (another value)"),
            None => k.clone(),
        }))
    }

    /// Each field that differs, as it is and as wanted.
    fn drifts(&self, wanted: &Settings) -> Vec<Drift> {
        let mut d = Vec::new();
        if self.environment != wanted.environment {
            let want = wanted.environment.iter().map(|(k, v)| format!("{k}={v}"));
            d.push(Drift::new("environment", self.environment_words(wanted), format!("only {}", listed(want))));
        }
        let mut check = |field: &str, have: String, want: String| {
            if have != want {
                d.push(Drift::new(field, have, want));
            }
        };
        check("execution role", self.role.clone(), wanted.role.clone());
        check("memory", format!("{} MB", self.memory), format!("{} MB", wanted.memory));
        check("timeout", format!("{} s", self.timeout), format!("{} s", wanted.timeout));
        check("private subnets", listed(&self.subnets), listed(&wanted.subnets));
        check("security groups", listed(&self.security_groups), listed(&wanted.security_groups));
        let key = |k: &str| if k.is_empty() { "Lambda's own key".to_string() } else { k.to_string() };
        check("environment encryption key", key(&self.kms_key), key(&wanted.kms_key));
        check("X-Ray tracing", on_off(self.tracing_active).to_string(), on_off(wanted.tracing_active).to_string());
        let group = |g: &str| if g.is_empty() { "Lambda's default".to_string() } else { g.to_string() };
        check("log group", group(&self.log_group), group(&wanted.log_group));
        let format = |json: bool| if json { "JSON" } else { "text" }.to_string();
        check("log format", format(self.json_logs), format(wanted.json_logs));
        check("runtime", self.runtime.clone(), wanted.runtime.clone());
        check("handler", self.handler.clone(), wanted.handler.clone());
        d
    }
}

#[derive(Debug, Clone)]
pub struct Function {
    pub arn: String,
    pub config: Settings,
    /// What `$LATEST` runs.
    pub code: Code,
    /// Published versions (never `$LATEST`) and the code of each, oldest first.
    pub versions: Vec<(String, Code)>,
    /// Alias name → version.
    pub aliases: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// A function's code as Lambda runs it: the package's CodeSha256 and the architecture it was
/// deployed for. Both make a version: an arm64 bootstrap deployed as x86_64 fails every
/// invocation with an exec format error, so a change of architecture is new code, published and
/// moved to the idle colour like any other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub sha256: String,
    pub architecture: String,
}

impl Code {
    fn of(sha256: Option<&str>, architectures: &[Architecture]) -> Code {
        Code {
            sha256: sha256.unwrap_or_default().to_string(),
            // Lambda's default, and what every function made before architectures were sent has.
            architecture: architectures.first().map_or("x86_64", |a| a.as_str()).to_string(),
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.sha256, self.architecture)
    }
}

impl Function {
    /// The newest published version holding this code.
    fn version_with(&self, code: &Code) -> Option<&str> {
        self.versions.iter().rev().find(|(_, c)| c == code).map(|(v, _)| v.as_str())
    }
}

/// The function's configuration as Lambda holds it, if the function exists.
async fn configuration(ctx: &Ctx, name: &str) -> Result<Option<GetFunctionConfigurationOutput>> {
    Ok(ctx
        .clients
        .lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .aws("lambda:GetFunctionConfiguration")
        .ok_if_not_found()?)
}

async fn observe_function(ctx: &Ctx, name: &str) -> Result<Option<Function>> {
    let lambda = &ctx.clients.lambda;
    let Some(out) = configuration(ctx, name).await? else {
        return Ok(None);
    };
    let c = out;
    let arn = c.function_arn().unwrap_or_default().to_string();
    // Versions, aliases and tags are independent reads: made at once.
    let versions = async {
        let mut versions = Vec::new();
        let mut pages = lambda.list_versions_by_function().function_name(name).into_paginator().items().send();
        while let Some(v) = pages.next().await {
            let v = v.aws("lambda:ListVersionsByFunction")?;
            if let Some(n) = v.version().filter(|n| *n != "$LATEST") {
                versions.push((n.to_string(), Code::of(v.code_sha256(), v.architectures())));
            }
        }
        versions.sort_by_key(|(n, _)| n.parse::<u64>().unwrap_or(0));
        Ok::<_, ResourceError>(versions)
    };
    let aliases = async {
        let mut aliases = BTreeMap::new();
        let mut pages = lambda.list_aliases().function_name(name).into_paginator().items().send();
        while let Some(a) = pages.next().await {
            let a = a.aws("lambda:ListAliases")?;
            aliases
                .insert(a.name().unwrap_or_default().to_string(), a.function_version().unwrap_or_default().to_string());
        }
        Ok::<_, ResourceError>(aliases)
    };
    let tags = async { Ok::<_, ResourceError>(lambda.list_tags().resource(&arn).send().await.aws("lambda:ListTags")?) };
    let (versions, aliases, tags) = futures::try_join!(versions, aliases, tags)?;
    Ok(Some(Function {
        config: Settings::of(&c),
        code: Code::of(c.code_sha256(), c.architectures()),
        arn,
        versions,
        aliases,
        tags: tags.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
    }))
}

/// The statement of the function's resource policy with id `sid`, if any.
pub async fn permission(ctx: &Ctx, function: &str, qualifier: Option<&str>, sid: &str) -> Result<Option<Value>> {
    let policy = ctx
        .clients
        .lambda
        .get_policy()
        .function_name(function)
        .set_qualifier(qualifier.map(str::to_string))
        .send()
        .await
        .aws("lambda:GetPolicy")
        .ok_if_not_found()?;
    let Some(doc) = policy.and_then(|p| p.policy().map(str::to_string)) else { return Ok(None) };
    let doc: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
    Ok(doc["Statement"].as_array().and_then(|s| s.iter().find(|st| st["Sid"] == sid)).cloned())
}

/// The traffic of the API's stage, if the API and its stage exist yet.
/// Whether Lambda accepts the next change to a function: Active (or Inactive, which a change
/// wakes) with its last update Successful. Lambda's function-states guide; cargo-lambda's rule:
/// publishing or updating while an update is in progress fails with ResourceConflictException.
fn readiness(c: &GetFunctionConfigurationOutput) -> Readiness<()> {
    let why = || c.state_reason().or(c.last_update_status_reason()).unwrap_or("no reason given").to_string();
    let state = match c.state() {
        Some(State::Active | State::Inactive) => Ok(()),
        Some(State::Pending) => Err("state Pending (Lambda is creating its network interfaces)".to_string()),
        Some(State::Failed) => return Readiness::Failed(why()),
        Some(other) => Err(format!("state {}", other.as_str())),
        None => Err("no state reported".to_string()),
    };
    let update = match c.last_update_status() {
        Some(LastUpdateStatus::Successful) => Ok(()),
        Some(LastUpdateStatus::InProgress) => Err("last update InProgress".to_string()),
        Some(LastUpdateStatus::Failed) => return Readiness::Failed(why()),
        Some(other) => Err(format!("last update {}", other.as_str())),
        None => Err("no last update status reported".to_string()),
    };
    match (state, update) {
        (Ok(()), Ok(())) => Readiness::Ready(()),
        (Err(s), _) | (_, Err(s)) => Readiness::Pending(s),
    }
}

async fn until_ready(ctx: &Ctx, name: &str) -> Result<()> {
    ctx.until_ready(&format!("function {name}"), ctx.waits.function_ready, || async move {
        Ok(configuration(ctx, name).await?.map_or(Readiness::Absent, |c| readiness(&c)))
    })
    .await
}

fn vpc(s: &Settings) -> VpcConfig {
    VpcConfig::builder()
        .set_subnet_ids(Some(s.subnets.clone()))
        .set_security_group_ids(Some(s.security_groups.clone()))
        .build()
}

fn environment(s: &Settings) -> Environment {
    Environment::builder().set_variables(Some(s.environment.clone().into_iter().collect())).build()
}

fn logging(s: &Settings) -> LoggingConfig {
    LoggingConfig::builder().log_format(LogFormat::Json).log_group(&s.log_group).build()
}

fn tracing() -> TracingConfig {
    TracingConfig::builder().mode(TracingMode::Active).build()
}

async fn create(ctx: &Ctx, function: &str, s: &Settings, code: &Code, zip: Vec<u8>) -> Result<()> {
    let name = ctx.names.function(function);
    let lambda = &ctx.clients.lambda;
    let tags = function_tags(ctx, &name, &wanted_role_id(ctx, function)?);
    let zip = Blob::new(zip);
    ctx.progress.step(&format!("creating function {name}"));
    ctx.retry_while_propagating(&catalogue::LAMBDA_FUNCTION, &format!("role {}", ctx.names.role(function)), || {
        lambda
            .create_function()
            .function_name(&name)
            .description(format!("payments {function} ({})", ctx.names.suffix))
            .runtime(Runtime::Providedal2023)
            .handler(&s.handler)
            .architectures(Architecture::from(code.architecture.as_str()))
            .role(&s.role)
            .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(zip.clone()).build())
            .memory_size(s.memory)
            .timeout(s.timeout)
            .vpc_config(vpc(s))
            .environment(environment(s))
            .kms_key_arn(&s.kms_key)
            .tracing_config(tracing())
            .logging_config(logging(s))
            .publish(false)
            .set_tags(Some(tags.clone()))
            .send()
            .map(|r| r.aws("lambda:CreateFunction").ok_if_exists())
    })
    .await
    .map_err(zone_hint)?;
    Ok(())
}

/// Lambda refusing a subnet for its availability zone (not every zone of every account can hold
/// Lambda's interfaces) says which option chooses other zones.
fn zone_hint(e: ResourceError) -> ResourceError {
    if e.message.to_ascii_lowercase().contains("availability zone") {
        e.with_hint(
            "Lambda cannot place interfaces in that zone for this account: choose three zones it supports with \
             --availability-zones (zone ids, e.g. use1-az1,use1-az2,use1-az4)",
        )
    } else {
        e
    }
}

/// One function of the family: a node of its own, so that each waits, fails and is retried on its
/// own, and a failure skips only what needs that function (Terraform's per-resource vertices).
pub struct Lambda {
    pub function: &'static str,
}

/// The node id of each function: `functions.<name>`.
pub const fn id_of(function: &str) -> &'static str {
    match function.as_bytes() {
        b"validate" => VALIDATE,
        b"fraud-check" => FRAUD_CHECK,
        b"process" => PROCESS,
        _ => ROTATE_SECRET,
    }
}

pub const VALIDATE: &str = "functions.validate";
pub const FRAUD_CHECK: &str = "functions.fraud-check";
pub const PROCESS: &str = "functions.process";
pub const ROTATE_SECRET: &str = "functions.rotate-secret";
/// The node that held all four functions before each became a node (state files of earlier
/// versions name it; `state::RETIRED_NODES` drops it, and `up` adopts the functions by name).
pub const RETIRED_FAMILY_ID: &str = "functions.lambdas";

pub struct Observed {
    pub function: Function,
    /// None while the API has no stage: nothing is live, both colours may move.
    pub traffic: Option<Traffic>,
}

impl Observed {
    /// The colours `up` may point at new code.
    fn movable(&self) -> Vec<Color> {
        match &self.traffic {
            None => Color::BOTH.to_vec(),
            Some(t) => t.idle().into_iter().collect(),
        }
    }

    /// Whether `up` points colour `c` at `version` (the package's code): only an idle colour,
    /// only when it runs other code, and only when the live colour does not already run this
    /// code — after a promotion the idle colour keeps the previous code as the way back.
    fn moves(&self, c: Color, version: Option<&str>) -> bool {
        let f = &self.function;
        let at = f.aliases.get(c.as_str()).map(String::as_str);
        let live_runs_it = self
            .traffic
            .as_ref()
            .is_some_and(|t| version.is_some() && f.aliases.get(t.live.as_str()).map(String::as_str) == version);
        self.movable().contains(&c) && (at.is_none() || at != version) && !live_runs_it
    }
}

#[async_trait]
impl Resource for Lambda {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        id_of(self.function)
    }
    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: super::iam::ID, key: "role_arns" },
            Input { node: super::iam::ID, key: "role_ids" },
            Input { node: super::kms::ID, key: "key_arn" },
            Input { node: super::network::subnets::ID, key: "private_subnet_ids" },
            Input { node: super::network::security_groups::ID, key: "functions_sg_id" },
        ]
    }
    fn after(&self) -> &'static [After] {
        &[After {
            node: super::logs::ID,
            why: "each function logs to its group, made first with the key and the retention",
        }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let name = ctx.names.function(self.function);
        let (function, traffic) =
            futures::try_join!(observe_function(ctx, &name), super::api::stage::live_traffic(ctx))?;
        Ok(function.map(|function| Observed { function, traffic }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let f = self.function;
        let have = &o.function;
        let mut d = have.config.drifts(&Settings::wanted(ctx, f)?);
        d.extend(ctx.tag_drift(&have.tags));
        let role_id = wanted_role_id(ctx, f)?;
        match role_recreated(have, &role_id) {
            // The configuration is applied again so that Lambda grants the new role the
            // environment's key.
            Some(old) => d.push(Drift::new("execution role id", old, format!("{role_id} (role re-created)"))),
            None if !have.tags.contains_key(tag::ROLE_ID) => {
                d.push(Drift::missing(format!("tag {}", tag::ROLE_ID), &role_id))
            }
            None => {}
        }
        let wanted = ctx.config.packages.as_deref().and_then(|p| p.code(f));
        // The version the aliases would go to: published already (new code, or the configuration
        // repaired while a canary was live), or to be published.
        let version = wanted.as_ref().and_then(|w| have.version_with(w));
        let target = match (version, &wanted) {
            (Some(v), _) => format!("version {v}"),
            (None, Some(code)) => format!("a new version of code {code}"),
            (None, None) => "a published version".to_string(),
        };
        for c in Color::BOTH {
            if !have.aliases.contains_key(c.as_str()) {
                d.push(Drift::missing(format!("alias {c}"), &target));
            }
        }
        if wanted.is_some() {
            for c in o.movable() {
                if let Some(at) = have.aliases.get(c.as_str()).filter(|_| o.moves(c, version)) {
                    d.push(Drift::new(format!("alias {c}"), format!("version {at}"), &target));
                }
            }
            if o.movable().is_empty() && version.is_none_or(|v| !have.aliases.values().any(|a| a == v)) {
                let running = Color::BOTH
                    .iter()
                    .filter_map(|c| have.aliases.get(c.as_str()).map(|v| format!("{c} runs version {v}")));
                d.push(Drift::new("version for the idle colour", listed(running), &target).waiting(
                    "a canary is live: finish the shift (--weight 100) or roll it back (--weight 0), then run up",
                ));
            }
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        let versions: serde_json::Map<String, Value> = Color::BOTH
            .iter()
            .filter_map(|c| o.function.aliases.get(c.as_str()).map(|v| (c.as_str().to_string(), json!(v))))
            .collect();
        Outputs::from([("function_arn".into(), json!(o.function.arn)), ("versions".into(), Value::Object(versions))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let f = self.function;
        let packages = ctx.config.packages.clone().ok_or_else(|| {
            ResourceError::new("NoPackages", "the functions need their packages")
                .with_hint("run `tapctl build`, or point --packages (TAPCTL_PACKAGES) at its output")
        })?;
        let (have, traffic) = match observed {
            Some(o) => (Some(o.function), o.traffic),
            None => (None, super::api::stage::live_traffic(ctx).await?),
        };
        let lambda = &ctx.clients.lambda;
        let name = ctx.names.function(f);
        let wanted = Settings::wanted(ctx, f)?;
        let code = packages.code(f).ok_or_else(|| ResourceError::new("NoPackages", format!("no package for {f}")))?;
        let zip = || {
            packages.zip(f).map_err(|e| ResourceError::new("NoPackages", format!("cannot read the {f} package: {e}")))
        };
        let mut reconfigured = false;
        if let Some(current) = have {
            until_ready(ctx, &name).await?;
            let role_id = wanted_role_id(ctx, f)?;
            let recreated = role_recreated(&current, &role_id);
            let repairs = current.config.drifts(&wanted);
            if !repairs.is_empty() || recreated.is_some() {
                ctx.progress.step(&match &recreated {
                    Some(old) => format!(
                        "applying the configuration of {name} again: its role was re-created ({old} → {role_id})"
                    ),
                    None => format!(
                        "changing the configuration of {name}: {}",
                        listed(repairs.iter().map(|d| format!("{} to {}", d.field, d.wanted)))
                    ),
                });
                let role = format!("role {}", ctx.names.role(f));
                if recreated.is_some() {
                    // Sending the same role and key again does not make Lambda grant the new
                    // role the key (AWS Knowledge Center, "KMSAccessDeniedException" on Lambda:
                    // change the key or role, then back). The key goes to AWS's own for a
                    // moment — the environment holds only the configuration prefix, no secret —
                    // and back with the full configuration below, which makes a new grant.
                    ctx.retry_while_propagating(&catalogue::LAMBDA_FUNCTION, &role, || {
                        lambda
                            .update_function_configuration()
                            .function_name(&name)
                            .kms_key_arn("")
                            .send()
                            .map(|r| r.aws("lambda:UpdateFunctionConfiguration"))
                    })
                    .await?;
                    until_ready(ctx, &name).await?;
                }
                ctx.retry_while_propagating(&catalogue::LAMBDA_FUNCTION, &role, || {
                    lambda
                        .update_function_configuration()
                        .function_name(&name)
                        .role(&wanted.role)
                        .memory_size(wanted.memory)
                        .timeout(wanted.timeout)
                        .vpc_config(vpc(&wanted))
                        .environment(environment(&wanted))
                        .kms_key_arn(&wanted.kms_key)
                        .tracing_config(tracing())
                        .logging_config(logging(&wanted))
                        .runtime(Runtime::Providedal2023)
                        .handler(&wanted.handler)
                        .send()
                        .map(|r| r.aws("lambda:UpdateFunctionConfiguration"))
                })
                .await?;
                reconfigured = true;
                until_ready(ctx, &name).await?;
            }
            if current.code != code {
                ctx.progress.step(&format!("uploading new code to {name}: {code}"));
                let zip = Blob::new(zip()?);
                ctx.retry_while_propagating(&catalogue::LAMBDA_UPDATE_IN_PROGRESS, &name, || {
                    lambda
                        .update_function_code()
                        .function_name(&name)
                        .zip_file(zip.clone())
                        .architectures(Architecture::from(code.architecture.as_str()))
                        .send()
                        .map(|r| r.aws("lambda:UpdateFunctionCode"))
                })
                .await?;
                until_ready(ctx, &name).await?;
            }
            if ctx.tag_drift(&current.tags).is_some() || current.tags.get(tag::ROLE_ID) != Some(&role_id) {
                ctx.progress.step(&format!("tagging function {name}"));
                lambda
                    .tag_resource()
                    .resource(&current.arn)
                    .set_tags(Some(function_tags(ctx, &name, &role_id)))
                    .send()
                    .await
                    .aws("lambda:TagResource")?;
            }
        } else {
            create(ctx, f, &wanted, &code, zip()?).await?;
            until_ready(ctx, &name).await?;
        }
        let mut current = observe_function(ctx, &name)
            .await?
            .ok_or_else(|| ResourceError::new("NotFound", format!("function {name} vanished")))?;
        let version = match current.version_with(&code) {
            Some(v) if !reconfigured => v.to_string(),
            _ => {
                ctx.progress.step(&if reconfigured {
                    format!("publishing a version of {name} with the repaired configuration")
                } else {
                    format!("publishing a version of {name}: code {code}")
                });
                // CodeSha256 guards the publish: Lambda refuses if $LATEST holds other code.
                let published = ctx
                    .retry_while_propagating(&catalogue::LAMBDA_UPDATE_IN_PROGRESS, &name, || {
                        lambda
                            .publish_version()
                            .function_name(&name)
                            .code_sha256(&code.sha256)
                            .description(super::iam::db_connect::version_description(f, &code))
                            .send()
                            .map(|r| r.aws("lambda:PublishVersion"))
                    })
                    .await?;
                let v = published.version().unwrap_or_default().to_string();
                current.versions.push((v.clone(), code.clone()));
                v
            }
        };
        let mut o = Observed { function: current, traffic };
        for c in Color::BOTH {
            let alias = c.as_str();
            match o.function.aliases.get(alias) {
                None => {
                    ctx.progress.step(&format!("creating alias {name}:{alias} → version {version}"));
                    lambda
                        .create_alias()
                        .function_name(&name)
                        .name(alias)
                        .function_version(&version)
                        .description(format!("the {alias} colour of payments {f}"))
                        .send()
                        .await
                        .aws("lambda:CreateAlias")
                        .ok_if_exists()?;
                }
                Some(at) if o.moves(c, Some(&version)) => {
                    ctx.progress.step(&format!("moving idle alias {name}:{alias} from version {at} to {version}"));
                    lambda
                        .update_alias()
                        .function_name(&name)
                        .name(alias)
                        .function_version(&version)
                        .send()
                        .await
                        .aws("lambda:UpdateAlias")?;
                }
                Some(_) => continue,
            }
            o.function.aliases.insert(alias.to_string(), version.clone());
        }
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        let name = ctx.names.function(self.function);
        ctx.progress.step(&format!("deleting function {name} (its versions and aliases with it)"));
        ctx.clients
            .lambda
            .delete_function()
            .function_name(&name)
            .send()
            .await
            .aws("lambda:DeleteFunction")
            .ok_if_not_found()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::FUNCTIONS;

    #[test]
    fn every_function_behind_the_api_ends_before_the_api_gives_up_on_it() {
        use crate::resources::api::rest::{INTEGRATION_MARGIN_SECONDS, INTEGRATION_TIMEOUT_SECONDS, ROUTES};
        for f in ROUTES {
            let (_, timeout) = sizing(f);
            assert!(timeout + INTEGRATION_MARGIN_SECONDS <= INTEGRATION_TIMEOUT_SECONDS, "{f}: {timeout} s");
        }
    }

    #[test]
    fn a_zone_lambda_refuses_names_the_option_that_chooses_others() {
        let refused = ResourceError::new(
            "InvalidParameterValueException",
            "lambda:CreateFunction: Lambda doesn't support the Availability Zone of subnet subnet-1 (use1-az3)",
        );
        assert!(zone_hint(refused).hint.is_some_and(|h| h.contains("--availability-zones")));
        let other =
            ResourceError::new("InvalidParameterValueException", "The role defined for the function cannot be assumed");
        assert!(zone_hint(other).hint.is_none());
    }

    /// A context whose packages hold `code` for process, and the function as `up` left it.
    fn process_as_deployed(code: &Code) -> (Ctx, Function) {
        use crate::resources::testing::ctx;
        let role = "arn:aws:iam::123456789012:role/payment-process-role-qa";
        let mut ctx = ctx(
            PROCESS,
            Lambda { function: "process" }.reads(),
            &[
                (super::super::iam::ID, "role_arns", json!({ "process": role })),
                (super::super::iam::ID, "role_ids", json!({ "process": "AROA1" })),
                (super::super::kms::ID, "key_arn", json!("arn:aws:kms:us-east-1:123456789012:key/k")),
                (super::super::network::subnets::ID, "private_subnet_ids", json!(["subnet-2", "subnet-1"])),
                (super::super::network::security_groups::ID, "functions_sg_id", json!("sg-f")),
            ],
        );
        let mut config = (*ctx.config).clone();
        config.packages = Some(std::sync::Arc::new(crate::package::Packages {
            dir: std::path::PathBuf::new(),
            architecture: code.architecture.clone(),
            profile: "lambda".into(),
            code_sha256: BTreeMap::from([("process".to_string(), code.sha256.clone())]),
        }));
        ctx.config = std::sync::Arc::new(config);
        let mut tags: BTreeMap<String, String> = ctx.tags(None, None).into_iter().collect();
        tags.insert(tag::ROLE_ID.into(), "AROA1".into());
        let function = Function {
            arn: "arn:aws:lambda:us-east-1:123456789012:function:payment-process-qa".into(),
            config: Settings::wanted(&ctx, "process").unwrap(),
            code: code.clone(),
            versions: vec![("1".into(), code.clone())],
            aliases: BTreeMap::from([("blue".into(), "1".into()), ("green".into(), "1".into())]),
            tags,
        };
        (ctx, function)
    }

    fn canary() -> Option<Traffic> {
        Some(Traffic { live: Color::Blue, canary: Some(crate::traffic::Canary { color: Color::Green, weight: 10.0 }) })
    }

    #[test]
    fn a_version_published_for_a_repair_during_a_canary_waits_and_goes_to_the_idle_colour_after() {
        let code = Code { sha256: "c0de".into(), architecture: "x86_64".into() };
        let (ctx, mut f) = process_as_deployed(&code);
        let node = Lambda { function: "process" };
        let converged = Observed { function: f.clone(), traffic: canary() };
        assert_eq!(node.diff(&ctx, &converged).unwrap(), Change::NoOp);

        // `up` repaired the configuration during the canary and published version 2, moving no alias.
        f.versions.push(("2".into(), code.clone()));
        let during = node.diff(&ctx, &Observed { function: f.clone(), traffic: canary() }).unwrap();
        let Change::Waiting(drifts) = &during else { panic!("{during:?}") };
        assert_eq!(drifts.len(), 1, "{drifts:?}");
        assert_eq!(drifts[0].current, "blue runs version 1, green runs version 1");
        assert_eq!(drifts[0].wanted, "version 2", "the published version, not new code to publish again");
        assert!(drifts[0].waits_for.as_deref().is_some_and(|w| w.contains("--weight 100") && w.contains("--weight 0")));

        let rolled_back = Some(Traffic { live: Color::Blue, canary: None });
        let after = node.diff(&ctx, &Observed { function: f.clone(), traffic: rolled_back.clone() }).unwrap();
        assert_eq!(after, Change::Update(vec![Drift::new("alias green", "version 1", "version 2")]));
        f.aliases.insert("green".into(), "2".into());
        assert_eq!(node.diff(&ctx, &Observed { function: f, traffic: rolled_back }).unwrap(), Change::NoOp);
    }

    #[test]
    fn configuration_drifts_show_values_but_never_an_environment_value_that_is_not_the_stacks() {
        let code = Code { sha256: "c0de".into(), architecture: "arm64".into() };
        let (ctx, mut f) = process_as_deployed(&code);
        f.config.memory = 1024;
        f.config.environment.insert("DEBUG_DB_PASSWORD".into(), "hunter2".into());
        f.config.kms_key = String::new();
        let change = Lambda { function: "process" }.diff(&ctx, &Observed { function: f, traffic: None }).unwrap();
        let drifts: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            drifts,
            [
                "environment: DEBUG_DB_PASSWORD, PAYMENTS_CONFIG_PREFIX=/payments/qa → only PAYMENTS_CONFIG_PREFIX=/payments/qa",
                "memory: 1024 MB → 512 MB",
                "environment encryption key: Lambda's own key → arn:aws:kms:us-east-1:123456789012:key/k",
            ]
        );
        assert!(!format!("{change:?}").contains("hunter2"));
        crate::resources::testing::assert_plain(&change.drifts());
    }

    #[test]
    fn each_function_has_its_own_node_id() {
        let ids: Vec<&str> = FUNCTIONS.iter().map(|f| id_of(f)).collect();
        assert_eq!(ids, vec![VALIDATE, FRAUD_CHECK, PROCESS, ROTATE_SECRET]);
    }
}
