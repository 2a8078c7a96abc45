//! The Resource contract, and one module per AWS resource family. A node id such as
//! `network.route-tables` lives in `resources/network/route_tables.rs`.
//!
//! Contract (kube-rs' reconcile, per node):
//! - `observe` finds the resource: first by the ids recorded in the state, then by its tags
//!   (`EnvironmentSuffix` + `tap:resource`), so that a run killed between "create" and "save"
//!   adopts what it made instead of making it twice. Every create tags at creation.
//! - `diff` compares what exists with what the config wants: NoOp, Update (listing each
//!   drift), or Replace (an immutable setting changed: refused unless the user allows it).
//! - `apply` makes it so, idempotently, waits until it is usable, and returns its outputs.
//! - `delete` removes it and waits until it is gone; already absent is success.

pub mod account;
pub mod alerts;
pub mod api;
pub mod audit;
pub mod backup;
pub mod database;
pub mod events;
pub mod functions;
pub mod iam;
pub mod kms;
pub mod logs;
pub mod monitoring;
pub mod network;
pub mod params;
pub mod retry;
pub mod rotation;
pub mod secrets;
pub mod storage;
pub mod tables;
pub mod waf;

use crate::aws::{AwsError, Clients};
use crate::config::StackConfig;
use crate::engine::progress::NodeProgress;
use crate::engine::wait::{WaitError, WaitPolicy};
use crate::names::{standard_tags, Names};
use async_trait::async_trait;
use serde_json::Value;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a node makes available to the nodes that read it (and records in the state): ids, ARNs,
/// names — never a secret.
pub type Outputs = BTreeMap<String, Value>;

/// What `up` would do to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    NoOp,
    /// The settings leave this node out (no `--domain`, say) and nothing of it exists: there is
    /// nothing to make, adopt, repair or delete.
    Off,
    Create,
    /// Each entry is one drift `up` repairs in place.
    Update(Vec<Drift>),
    /// What `up` would have to repair but may not yet (new code while a canary is live): `up`
    /// leaves the node as it is and reports it; it is not a change `plan` counts.
    Waiting(Vec<Drift>),
    /// Why the resource would have to be replaced: the immutable setting, as it is and as wanted.
    Replace(Drift),
}

impl Change {
    pub fn action(&self) -> &'static str {
        match self {
            Change::NoOp => "no-op",
            Change::Off => "off",
            Change::Create => "create",
            Change::Update(_) => "update",
            Change::Waiting(_) => "waiting",
            Change::Replace(_) => "replace",
        }
    }

    /// Update with these drifts; Waiting when every one of them waits; NoOp when there are none.
    pub fn from_drifts(drifts: Vec<Drift>) -> Change {
        if drifts.is_empty() {
            Change::NoOp
        } else if drifts.iter().all(|d| d.waits_for.is_some()) {
            Change::Waiting(drifts)
        } else {
            Change::Update(drifts)
        }
    }

    /// The drifts behind the change, for reports.
    pub fn drifts(&self) -> Vec<&Drift> {
        match self {
            Change::Update(d) | Change::Waiting(d) => d.iter().collect(),
            Change::Replace(d) => vec![d],
            Change::NoOp | Change::Off | Change::Create => vec![],
        }
    }
}

/// One way a resource differs from what the stack wants, in the operator's words:
/// `memory: 256 MB → 512 MB`, `route 0.0.0.0/0 (private): missing → via the NAT gateway`.
/// Values are what a person would write (no Rust formatting); secrets never appear.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Drift {
    /// What differs: a setting, or a part of the resource ("tags", "alias green").
    pub field: String,
    /// What AWS holds now; `missing` when there is none.
    pub current: String,
    /// What the stack wants; `absent` when the part should go.
    pub wanted: String,
    /// Set when `up` may not repair it yet, and why (e.g. a live canary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waits_for: Option<String>,
}

impl Drift {
    pub fn new(field: impl Into<String>, current: impl std::fmt::Display, wanted: impl std::fmt::Display) -> Drift {
        Drift { field: field.into(), current: current.to_string(), wanted: wanted.to_string(), waits_for: None }
    }
    /// A part the stack wants that does not exist.
    pub fn missing(field: impl Into<String>, wanted: impl std::fmt::Display) -> Drift {
        Drift::new(field, "missing", wanted)
    }
    /// A part that exists and should not.
    pub fn unexpected(field: impl Into<String>, current: impl std::fmt::Display) -> Drift {
        Drift::new(field, current, "absent")
    }
    /// The same drift, which `up` may not repair until `why` is over.
    pub fn waiting(mut self, why: impl Into<String>) -> Drift {
        self.waits_for = Some(why.into());
        self
    }
    /// The same drift of a part of `owner`, for a node with several parts: `tags` of role R
    /// becomes `role R tags`.
    pub fn on(mut self, owner: impl std::fmt::Display) -> Drift {
        self.field = format!("{owner} {}", self.field);
        self
    }
}

/// Items as a person lists them: `a, b, c`, or `none`.
pub fn listed<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// A value AWS may not report: the value, or `none`.
pub fn or_none<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// A setting that is on or off.
pub fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// A count with its unit: `1 day`, `7 days`.
pub fn counted(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// The statements of a policy document (one, or a list).
fn statements(doc: &Value) -> Vec<&Value> {
    match &doc["Statement"] {
        Value::Array(s) => s.iter().collect(),
        Value::Null => vec![],
        one => vec![one],
    }
}

/// The strings of a policy element that is one string or a list of them.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    }
}

/// The actions a policy document allows.
fn allowed_actions(doc: &Value) -> std::collections::BTreeSet<String> {
    statements(doc).into_iter().filter(|s| s["Effect"] == "Allow").flat_map(|s| strings(&s["Action"])).collect()
}

/// Who a policy document names as principals: `lambda.amazonaws.com`, `*`, account ARNs.
pub fn principals(doc: &Value) -> std::collections::BTreeSet<String> {
    statements(doc)
        .into_iter()
        .flat_map(|s| match &s["Principal"] {
            Value::Object(by_kind) => by_kind.values().flat_map(strings).collect(),
            other => strings(other),
        })
        .collect()
}

/// How the policy document `have` differs from `want`, in words: the actions it allows beyond
/// `want` and those it lacks, or `differs` when it allows the same actions on other terms.
pub fn policy_difference(have: &Value, want: &Value) -> String {
    let (have, want) = (allowed_actions(have), allowed_actions(want));
    let mut parts = Vec::new();
    let extra: Vec<&String> = have.difference(&want).collect();
    if !extra.is_empty() {
        parts.push(format!("also allows {}", listed(extra)));
    }
    let lacking: Vec<&String> = want.difference(&have).collect();
    if !lacking.is_empty() {
        parts.push(format!("lacks {}", listed(lacking)));
    }
    if parts.is_empty() {
        "differs".to_string()
    } else {
        parts.join("; ")
    }
}

/// The one policy comparer: a policy document in a form that compares as AWS means it: statements as a set, one value or
/// a list alike, actions and condition keys without case, Sid and Id left out.
pub fn canonical(doc: &Value) -> Value {
    use serde_json::json;
    fn values(v: &Value, lower: bool) -> Value {
        let mut items: Vec<String> = match v {
            Value::Array(a) => a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string)).collect(),
            Value::Null => vec![],
            Value::String(s) => vec![s.clone()],
            other => vec![other.to_string()],
        };
        if lower {
            items.iter_mut().for_each(|s| *s = s.to_ascii_lowercase());
        }
        items.sort();
        items.dedup();
        json!(items)
    }
    let statements: Vec<Value> = match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    };
    let mut canon: Vec<Value> = statements
        .iter()
        .map(|s| {
            let principal = match &s["Principal"] {
                Value::Object(kinds) => {
                    Value::Object(kinds.iter().map(|(k, v)| (k.clone(), values(v, false))).collect())
                }
                // AWS answers a bare `"Principal": "*"` as `{"AWS": "*"}` (as SQS does): the same.
                other => json!({ "AWS": values(other, false) }),
            };
            let condition: serde_json::Map<String, Value> = s["Condition"]
                .as_object()
                .map(|ops| {
                    ops.iter()
                        .map(|(op, keys)| {
                            let keys: serde_json::Map<String, Value> = keys
                                .as_object()
                                .map(|k| k.iter().map(|(k, v)| (k.to_ascii_lowercase(), values(v, false))).collect())
                                .unwrap_or_default();
                            (op.clone(), Value::Object(keys))
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "Effect": s["Effect"],
                "Principal": principal,
                "Action": values(&s["Action"], true),
                "NotAction": values(&s["NotAction"], true),
                "Resource": values(&s["Resource"], false),
                "Condition": condition,
            })
        })
        .collect();
    canon.sort_by_key(|v| v.to_string());
    json!(canon)
}

/// The tags of `want` that `have` lacks or holds with another value, as they are and as wanted:
/// `tags: CostCenter=x → CostCenter=payments`; `missing` when none of them is there at all.
pub fn tags_drift(
    field: impl Into<String>,
    have: &BTreeMap<String, String>,
    want: &[(String, String)],
) -> Option<Drift> {
    let differ: Vec<&(String, String)> = want.iter().filter(|(k, v)| have.get(k) != Some(v)).collect();
    if differ.is_empty() {
        return None;
    }
    let current = if differ.iter().all(|(k, _)| !have.contains_key(k)) {
        "missing".to_string()
    } else {
        listed(differ.iter().map(|(k, _)| match have.get(k) {
            Some(v) => format!("{k}={v}"),
            None => format!("{k} missing"),
        }))
    };
    Some(Drift::new(field, current, listed(differ.iter().map(|(k, v)| format!("{k}={v}")))))
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} → {}", self.field, self.current, self.wanted)?;
        if let Some(why) = &self.waits_for {
            write!(f, " (waits: {why})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ResourceError {
    pub code: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// Worth visiting the node again (see `aws::AwsError::transient`).
    pub transient: bool,
}

impl ResourceError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ResourceError { code: Some(code.to_string()), message: message.into(), hint: None, transient: false }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<AwsError> for ResourceError {
    fn from(e: AwsError) -> Self {
        ResourceError {
            hint: e.hint().map(str::to_string),
            code: e.code.clone(),
            message: format!("{}: {}", e.operation, e.message),
            transient: e.transient,
        }
    }
}

impl From<WaitError<ResourceError>> for ResourceError {
    fn from(e: WaitError<ResourceError>) -> Self {
        match e {
            WaitError::Check(inner) => inner,
            WaitError::TimedOut { reason, waited, last } => ResourceError::new(
                "WaitTimeout",
                format!("gave up waiting for {reason} after {}s (last seen: {last})", waited.as_secs()),
            )
            .with_hint("AWS is still working on it: re-run the same command; it resumes where it stopped"),
        }
    }
}

pub type Result<T> = std::result::Result<T, ResourceError>;

/// One output a node reads: the node that provides it, and the key. A node's dependencies are
/// derived from what it reads (Terraform's reference transformer), and `Ctx::input` refuses a
/// read that was not declared, so the graph cannot drift from the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    pub node: &'static str,
    pub key: &'static str,
}

pub const fn input(node: &'static str, key: &'static str) -> Input {
    Input { node, key }
}

/// An edge that carries no data: `node` goes first (and, in a destroy, last) because of `why`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    pub node: &'static str,
    pub why: &'static str,
}

pub const fn after(node: &'static str, why: &'static str) -> After {
    After { node, why }
}

/// Refuses a read that `reader` did not declare.
fn declared(reader: &str, reads: &[Input], node: &str, key: &str) -> Result<()> {
    if reads.iter().any(|r| r.node == node && r.key == key) {
        Ok(())
    } else {
        Err(ResourceError::new(
            "UndeclaredInput",
            format!("{reader} reads {node}.{key} without declaring it in `reads`"),
        ))
    }
}

/// What a node sees while it runs.
pub struct Ctx {
    pub clients: Clients,
    pub config: Arc<StackConfig>,
    pub names: Arc<Names>,
    pub node: &'static str,
    /// The outputs this node declared it reads (`Resource::reads`).
    pub reads: &'static [Input],
    /// Outputs of the nodes this one reads from.
    pub inputs: BTreeMap<String, Outputs>,
    /// This node's outputs as the state file last recorded them.
    pub recorded: Option<Outputs>,
    pub progress: NodeProgress,
    pub waits: WaitLimits,
    /// What one run reads once and every node shares.
    pub run: Arc<RunMemo>,
}

/// Reads that stay true for a whole run, made once by whichever node needs them first.
#[derive(Default)]
pub struct RunMemo {
    /// Who gets the traffic (`api::stage::live_traffic`).
    pub traffic: tokio::sync::OnceCell<Option<crate::traffic::Traffic>>,
}

/// How long each kind of wait may take before the run gives up (and a re-run resumes).
#[derive(Debug, Clone, Copy)]
pub struct WaitLimits {
    pub nat_gateway: WaitPolicy,
    /// Aurora clusters and instances: about ten minutes each on AWS.
    pub database: WaitPolicy,
    pub eventual_consistency: WaitPolicy,
    /// Lambda releasing a deleted function's VPC interfaces: often 20+ minutes on AWS.
    pub network_interfaces: WaitPolicy,
    /// A function in a VPC becoming Active, or an update finishing: minutes on AWS while
    /// Lambda sets up its network interfaces.
    pub function_ready: WaitPolicy,
    /// A DynamoDB table and its indexes becoming active, or going (terraform: 30 min).
    pub table: WaitPolicy,
    /// The pace of `retry_while_propagating` (its limit comes from the catalogue entry).
    pub propagation: WaitPolicy,
    /// `--max-wait`: no wait or propagation retry may take longer.
    pub max: std::time::Duration,
}

impl WaitLimits {
    /// `--max-wait`: no wait may take longer than `max`.
    pub fn cap(&mut self, max: std::time::Duration) {
        self.max = self.max.min(max);
    }

    /// `policy` within `--max-wait`.
    pub fn bounded(&self, policy: WaitPolicy) -> WaitPolicy {
        WaitPolicy { limit: policy.limit.min(self.max), ..policy }
    }
}

impl Default for WaitLimits {
    fn default() -> Self {
        WaitLimits {
            nat_gateway: WaitPolicy::new(std::time::Duration::from_secs(15 * 60)),
            database: WaitPolicy::new(std::time::Duration::from_secs(40 * 60)),
            eventual_consistency: WaitPolicy::new(std::time::Duration::from_secs(120)),
            network_interfaces: WaitPolicy::new(std::time::Duration::from_secs(45 * 60)),
            function_ready: WaitPolicy::new(std::time::Duration::from_secs(15 * 60)),
            table: WaitPolicy::new(std::time::Duration::from_secs(30 * 60)),
            // terraform's backoff: 0.5 s doubling to 10 s (internal/backoff).
            propagation: WaitPolicy {
                limit: std::time::Duration::from_secs(15 * 60),
                first_poll: std::time::Duration::from_millis(500),
                max_poll: std::time::Duration::from_secs(10),
                pace: crate::engine::wait::Pace::Backoff(2.0),
            },
            max: std::time::Duration::MAX,
        }
    }
}

impl Ctx {
    /// An output this node declared it reads; an error if it did not declare it (a defect in
    /// tapctl, caught by every test that runs the node) or the dependency did not provide it.
    pub fn input_value(&self, node: &str, key: &str) -> Result<&Value> {
        declared(self.node, self.reads, node, key)?;
        self.inputs
            .get(node)
            .and_then(|o| o.get(key))
            .ok_or_else(|| ResourceError::new("MissingInput", format!("{node} did not provide '{key}'")))
    }

    /// A string output of a dependency.
    pub fn input(&self, node: &str, key: &str) -> Result<String> {
        self.input_value(node, key)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ResourceError::new("MissingInput", format!("{node}.{key} is not a string")))
    }

    /// A list output of a dependency.
    pub fn input_list(&self, node: &str, key: &str) -> Result<Vec<String>> {
        self.input_value(node, key)?
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .ok_or_else(|| ResourceError::new("MissingInput", format!("{node}.{key} is not a list")))
    }

    pub fn recorded_str(&self, key: &str) -> Option<&str> {
        self.recorded.as_ref()?.get(key)?.as_str()
    }

    /// The standard tags of this node (design.md §5), with a family member and a Name.
    pub fn tags(&self, member: Option<&str>, name: Option<&str>) -> Vec<(String, String)> {
        standard_tags(&self.names, &self.config.cost_center, self.node, member, name)
    }

    /// The `tags` drift when `have` lacks any of this node's standard tags or holds another value.
    pub fn tag_drift(&self, have: &BTreeMap<String, String>) -> Option<Drift> {
        tags_drift("tags", have, &self.tags(None, None))
    }
}

/// Works on the members of a cheap family at once (a subnet per AZ and tier, an alarm per
/// metric), as many at a time as the walk has free slots (`--parallelism` bounds calls, not only
/// nodes), and reports every member's error, not only the first. `what` names a member in errors
/// ("subnet").
pub async fn each_member<M, T, F, Fut>(what: &str, members: impl IntoIterator<Item = M>, work: F) -> Result<Vec<T>>
where
    M: std::fmt::Display,
    F: Fn(M) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let members: Vec<M> = members.into_iter().collect();
    let extra = crate::engine::walk::extra_slots(members.len().saturating_sub(1));
    let runs = members.into_iter().map(|m| {
        let label = m.to_string();
        let run = work(m);
        async move { (label, run.await) }
    });
    let results: Vec<(String, Result<T>)> = futures::stream::StreamExt::collect(futures::stream::StreamExt::buffered(
        futures::stream::iter(runs),
        1 + extra.len(),
    ))
    .await;
    drop(extra);
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (label, result) in results {
        match result {
            Ok(v) => done.push(v),
            Err(e) => failed.push((label, e)),
        }
    }
    let Some((_, first)) = failed.first() else { return Ok(done) };
    let each: Vec<String> = failed
        .iter()
        .map(|(label, e)| match &e.code {
            Some(code) => format!("{what} {label}: [{code}] {}", e.message),
            None => format!("{what} {label}: {}", e.message),
        })
        .collect();
    Err(ResourceError {
        code: first.code.clone(),
        message: if failed.len() == 1 {
            each.join("")
        } else {
            format!("{} failed: {}", failed.len(), each.join("; "))
        },
        hint: first.hint.clone(),
        transient: failed.iter().all(|(_, e)| e.transient),
    })
}

/// Turns a list of strings into an output value.
pub fn list(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

/// The contract every resource implements; see the module docs.
#[async_trait]
pub trait Resource: Send + Sync {
    type Observed: Send + Sync + 'static;

    fn id(&self) -> &'static str;
    /// The outputs of other nodes this one reads: its dependencies are derived from them.
    fn reads(&self) -> &'static [Input] {
        &[]
    }
    /// Dependencies that carry no data, each with its reason.
    fn after(&self) -> &'static [After] {
        &[]
    }
    /// Whether `apply` can replace the resource when `diff` says Replace (and the user passed
    /// `--allow-replace`). Resources that cannot are only ever refused.
    fn replaceable(&self) -> bool {
        false
    }
    /// The resource as it exists, or None when it does not.
    async fn observe(&self, ctx: &Ctx) -> Result<Option<Self::Observed>>;
    /// How an existing resource differs from what is wanted.
    fn diff(&self, ctx: &Ctx, observed: &Self::Observed) -> Result<Change>;
    /// Outputs of an existing resource, for dependants and the state.
    fn outputs(&self, ctx: &Ctx, observed: &Self::Observed) -> Outputs;
    /// Creates (observed None) or repairs the resource; returns its outputs.
    async fn apply(&self, ctx: &Ctx, observed: Option<Self::Observed>) -> Result<Outputs>;
    async fn delete(&self, ctx: &Ctx, observed: Self::Observed) -> Result<()>;
}

/// Cleanup a family owes AWS after its members are deleted (kube-runtime's finalizer). Lambda
/// releases a deleted function's network interfaces only minutes later, and the subnets and the
/// group they sit in cannot go before. A finalizer owns nothing and has no state entry: it is a
/// vertex of a destroy only, after every owner and before the nodes that must wait for it.
#[async_trait]
pub trait Finalizer: Send + Sync {
    /// `<family>.<what it waits for>`, e.g. `functions.network-interfaces`.
    fn id(&self) -> &'static str;
    /// The nodes whose deletion leaves the debt: it runs once all of them are gone.
    fn owners(&self) -> Vec<&'static str>;
    /// The nodes deleted only after it has run, each with why.
    fn before(&self) -> &'static [After];
    /// Settles the debt, waiting as long as it takes; true when there was something to settle.
    async fn run(&self, ctx: &Ctx) -> Result<bool>;
}

/// The result of observe + diff, kept so that apply does not observe twice.
pub struct Planned {
    pub change: Change,
    /// Present when the resource exists.
    pub outputs: Option<Outputs>,
    observed: Option<Box<dyn Any + Send + Sync>>,
}

/// The type-erased form of a Resource, so that one graph holds every kind.
#[async_trait]
pub trait Node: Send + Sync {
    fn id(&self) -> &'static str;
    fn reads(&self) -> &'static [Input];
    fn after(&self) -> &'static [After];
    /// The nodes this one reads from or is ordered after.
    fn depends_on(&self) -> std::collections::BTreeSet<&'static str> {
        self.reads().iter().map(|r| r.node).chain(self.after().iter().map(|a| a.node)).collect()
    }
    fn replaceable(&self) -> bool;
    async fn plan(&self, ctx: &Ctx) -> Result<Planned>;
    async fn apply(&self, ctx: &Ctx, planned: Planned) -> Result<Outputs>;
    /// Deletes the resource if it exists; true when there was something to delete.
    async fn destroy(&self, ctx: &Ctx) -> Result<bool>;
    /// Whether `destroy` would find something to delete (same context: no inputs).
    async fn exists(&self, ctx: &Ctx) -> Result<bool>;
}

#[async_trait]
impl<R: Resource> Node for R {
    fn id(&self) -> &'static str {
        Resource::id(self)
    }

    fn reads(&self) -> &'static [Input] {
        Resource::reads(self)
    }

    fn after(&self) -> &'static [After] {
        Resource::after(self)
    }

    fn replaceable(&self) -> bool {
        Resource::replaceable(self)
    }

    async fn plan(&self, ctx: &Ctx) -> Result<Planned> {
        match self.observe(ctx).await? {
            None => Ok(Planned { change: Change::Create, outputs: None, observed: None }),
            Some(observed) => Ok(Planned {
                change: self.diff(ctx, &observed)?,
                outputs: Some(self.outputs(ctx, &observed)),
                observed: Some(Box::new(observed)),
            }),
        }
    }

    async fn apply(&self, ctx: &Ctx, planned: Planned) -> Result<Outputs> {
        let observed = match planned.observed {
            Some(b) => match b.downcast::<R::Observed>() {
                Ok(o) => Some(*o),
                Err(_) => return Err(ResourceError::new("Internal", "planned state of another resource type")),
            },
            None => None,
        };
        Resource::apply(self, ctx, observed).await
    }

    async fn exists(&self, ctx: &Ctx) -> Result<bool> {
        Ok(self.observe(ctx).await?.is_some_and(|o| !off(self, ctx, &o)))
    }

    async fn destroy(&self, ctx: &Ctx) -> Result<bool> {
        match self.observe(ctx).await? {
            Some(observed) if !off(self, ctx, &observed) => {
                self.delete(ctx, observed).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A node the settings leave out, of which nothing exists, has nothing to destroy. (A diff that
/// needs inputs, which a destroy has not, fails: such a node is never off.)
fn off<R: Resource>(r: &R, ctx: &Ctx, observed: &R::Observed) -> bool {
    matches!(r.diff(ctx, observed), Ok(Change::Off))
}

/// A context for a node's `diff` in unit tests: no AWS call is made, the inputs are given.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// `inputs`: (node, key, value) of the outputs the node reads.
    pub fn ctx(node: &'static str, reads: &'static [Input], inputs: &[(&str, &str, Value)]) -> Ctx {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let mut by_node: BTreeMap<String, Outputs> = BTreeMap::new();
        for (n, k, v) in inputs {
            by_node.entry(n.to_string()).or_default().insert(k.to_string(), v.clone());
        }
        let config = StackConfig {
            packages: None,
            suffix: "qa".into(),
            region: "us-east-1".into(),
            vpc_cidr: "10.0.0.0/16".parse().expect("a CIDR"),
            cost_center: "payments".into(),
            kms_deletion_window_days: 7,
            audit_retention_days: 365,
            log_retention_days: 365,
            alert_email: None,
            db_min_acu: 0.5,
            db_max_acu: 4.0,
            db_readers: 1,
            availability_zones: None,
            db_engine_version: "16.4".into(),
            waf_rate_limit: crate::config::DEFAULT_WAF_RATE_LIMIT,
            audit_lock: crate::config::AuditLock::Governance,
            backup_retention_days: crate::config::DEFAULT_BACKUP_RETENTION_DAYS,
            backup_copy_region: None,
            break_glass_role_arn: None,
            domain: None,
            account_controls: true,
        };
        Ctx {
            clients: Clients::new(&sdk, true),
            config: Arc::new(config),
            names: Arc::new(Names::new("qa", "us-east-1", Some("123456789012"))),
            node,
            reads,
            inputs: by_node,
            recorded: None,
            progress: crate::engine::progress::Progress::new(false).start(node, "testing"),
            waits: WaitLimits::default(),
            run: Arc::new(RunMemo::default()),
        }
    }

    /// No drift a person reads may hold Rust's Debug text or a quoted list.
    pub fn assert_plain(drifts: &[&Drift]) {
        for d in drifts {
            let text = d.to_string();
            for debug in ["Some(", "None", "{ ", "(\"", "[\"", "\\\""] {
                assert!(!text.contains(debug), "Debug text {debug:?} in a drift: {text}");
            }
            assert!(!d.field.is_empty() && !d.current.is_empty() && !d.wanted.is_empty(), "{d:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drift_reads_field_current_and_wanted_and_says_what_it_waits_for() {
        assert_eq!(Drift::new("memory", "256 MB", "512 MB").to_string(), "memory: 256 MB → 512 MB");
        assert_eq!(Drift::missing("GSI by-status", "status").to_string(), "GSI by-status: missing → status");
        assert_eq!(
            Drift::unexpected("route 10.9.0.0/16", "peering pcx-1").to_string(),
            "route 10.9.0.0/16: peering pcx-1 → absent"
        );
        let waiting = Drift::new("alias green", "version 1", "version 2").waiting("a canary is live");
        assert_eq!(waiting.to_string(), "alias green: version 1 → version 2 (waits: a canary is live)");
        assert_eq!(Drift::new("tags", "missing", "A=b").on("role r").field, "role r tags");
        let json = serde_json::to_value(Drift::new("memory", "256 MB", "512 MB")).unwrap();
        assert_eq!(json, serde_json::json!({ "field": "memory", "current": "256 MB", "wanted": "512 MB" }));
    }

    #[test]
    fn drifts_make_no_op_an_update_or_waiting_when_every_one_waits() {
        assert_eq!(Change::from_drifts(vec![]), Change::NoOp);
        let repair = Drift::new("memory", "1024 MB", "256 MB");
        let waits = Drift::new("version for the idle colour", "blue runs version 1", "version 2").waiting("a canary");
        assert_eq!(Change::from_drifts(vec![repair.clone()]), Change::Update(vec![repair.clone()]));
        assert_eq!(Change::from_drifts(vec![waits.clone()]), Change::Waiting(vec![waits.clone()]));
        assert_eq!(
            Change::from_drifts(vec![repair.clone(), waits.clone()]),
            Change::Update(vec![repair, waits]),
            "a repair that may happen makes the whole an update"
        );
        assert_eq!(Change::from_drifts(vec![]).drifts().len(), 0);
    }

    #[test]
    fn tags_drift_names_the_values_as_they_are_and_as_wanted() {
        let want = vec![("CostCenter".to_string(), "payments".to_string()), ("Project".to_string(), "payments".into())];
        let have = BTreeMap::from([("CostCenter".to_string(), "x".to_string()), ("Project".into(), "payments".into())]);
        assert_eq!(tags_drift("tags", &have, &want).unwrap().to_string(), "tags: CostCenter=x → CostCenter=payments");
        let partly = BTreeMap::from([("CostCenter".to_string(), "x".to_string())]);
        assert_eq!(
            tags_drift("tags", &partly, &want).unwrap().to_string(),
            "tags: CostCenter=x, Project missing → CostCenter=payments, Project=payments"
        );
        assert_eq!(
            tags_drift("tags", &BTreeMap::new(), &want).unwrap().to_string(),
            "tags: missing → CostCenter=payments, Project=payments"
        );
        let all: BTreeMap<String, String> = want.iter().cloned().collect();
        assert_eq!(tags_drift("tags", &all, &want), None);
    }

    #[test]
    fn a_policy_difference_names_the_actions_allowed_beyond_and_lacking() {
        let want =
            serde_json::json!({ "Statement": [{ "Effect": "Allow", "Action": ["s3:PutObject", "kms:Decrypt"] }] });
        let wide = serde_json::json!({ "Statement": { "Effect": "Allow", "Action": "*" } });
        assert_eq!(policy_difference(&wide, &want), "also allows *; lacks kms:Decrypt, s3:PutObject");
        let other_terms = serde_json::json!({ "Statement": [{ "Effect": "Allow", "Action": ["kms:Decrypt", "s3:PutObject"], "Resource": "*" }] });
        assert_eq!(policy_difference(&other_terms, &want), "differs");
        let trust = serde_json::json!({ "Statement": [{ "Principal": { "Service": "lambda.amazonaws.com", "AWS": ["arn:aws:iam::1:root"] } }] });
        assert_eq!(listed(principals(&trust)), "arn:aws:iam::1:root, lambda.amazonaws.com");
    }

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(listed(Vec::<String>::new()), "none");
        assert_eq!(listed(["a", "b"]), "a, b");
        assert_eq!(or_none(None::<i32>), "none");
        assert_eq!(or_none(Some(7)), "7");
        assert_eq!((counted(1, "day"), counted(7, "day")), ("1 day".to_string(), "7 days".to_string()));
    }

    #[tokio::test]
    async fn every_failing_member_is_reported_and_the_others_still_run() {
        let ran = std::sync::Mutex::new(Vec::new());
        let err = each_member("subnet", ["public-1", "private-1", "database-1"], |m| {
            ran.lock().unwrap().push(m);
            async move {
                match m {
                    "public-1" => Err(ResourceError::new("InvalidSubnet.Conflict", "overlaps")),
                    "database-1" => Err(ResourceError::new("SubnetLimitExceeded", "too many")),
                    _ => Ok(m),
                }
            }
        })
        .await
        .unwrap_err();
        assert_eq!(ran.lock().unwrap().len(), 3, "a failure stops no other member");
        assert!(err.message.starts_with("2 failed: "), "{}", err.message);
        assert!(err.message.contains("subnet public-1: [InvalidSubnet.Conflict] overlaps"), "{}", err.message);
        assert!(err.message.contains("subnet database-1: [SubnetLimitExceeded] too many"), "{}", err.message);
        assert!(!err.transient);
        let ok = each_member("alarm", ["a", "b"], |m| async move { Ok::<_, ResourceError>(m) }).await.unwrap();
        assert_eq!(ok, vec!["a", "b"]);
    }

    #[test]
    fn a_read_that_was_not_declared_is_refused_naming_it() {
        const READS: &[Input] = &[Input { node: "kms.key", key: "key_arn" }];
        assert!(declared("logs.groups", READS, "kms.key", "key_arn").is_ok());
        let err = declared("logs.groups", READS, "network.vpc", "vpc_id").unwrap_err();
        assert_eq!(err.code.as_deref(), Some("UndeclaredInput"));
        assert!(err.message.contains("logs.groups reads network.vpc.vpc_id"), "{}", err.message);
        assert!(declared("logs.groups", READS, "kms.key", "alias").is_err(), "the key is checked, not only the node");
    }
}
