//! The one JSON shape every command prints with `--json` (schema `tapctl/v1`, documented in the
//! README and in `docs/output.schema.json`, which the tests validate every command against):
//!
//! - `schema`, `command`, and `stack` (suffix, region, account, state location) on every report;
//! - `summary`: counts by action, using the same words in every command;
//! - `resources`: one entry per node, with named `ids`, the `changes` as `{field, current,
//!   wanted}`, and the `error` or `skipped_because` of a node that did not finish.
//!
//! Actions: what a command did (up, destroy) or would do (plan, status): `create`, `update`,
//! `replace`, `adopt` (exists, the state did not know it), `none`, `waiting` (a change `up` may
//! not make yet), `delete`, `absent` (nothing to delete), `failed`, `skipped`.

use super::Session;
use crate::engine::{Diagnostic, Outcome};
use crate::resources::{Change, Drift, Outputs};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

pub const SCHEMA: &str = "tapctl/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Replace,
    Adopt,
    None,
    Waiting,
    Delete,
    Absent,
    Failed,
    Skipped,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Adopt => "adopt",
            Action::None => "none",
            Action::Waiting => "waiting",
            Action::Delete => "delete",
            Action::Absent => "absent",
            Action::Failed => "failed",
            Action::Skipped => "skipped",
        }
    }

    /// Past tense, for what a run did: "3 created, 1 adopted".
    pub fn done(self) -> &'static str {
        match self {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Replace => "replaced",
            Action::Adopt => "adopted",
            Action::None => "unchanged",
            Action::Waiting => "waiting",
            Action::Delete => "deleted",
            Action::Absent => "already absent",
            Action::Failed => "failed",
            Action::Skipped => "skipped",
        }
    }

    /// The counts `up` and `plan` report, in the order they are read.
    pub const BUILD_TALLY: [Action; 8] = [
        Action::Create,
        Action::Adopt,
        Action::Update,
        Action::Replace,
        Action::Waiting,
        Action::None,
        Action::Failed,
        Action::Skipped,
    ];
    /// The counts `destroy` and `plan --destroy` report.
    pub const TEARDOWN_TALLY: [Action; 4] = [Action::Delete, Action::Absent, Action::Failed, Action::Skipped];

    /// Future tense, for what a run would do: "3 to create, 17 unchanged".
    pub fn planned(self) -> &'static str {
        match self {
            Action::Create => "to create",
            Action::Update => "to update",
            Action::Replace => "to replace",
            Action::Adopt => "to adopt",
            Action::Delete => "to delete",
            other => other.done(),
        }
    }

    /// What `up` would do with a node, given whether the state knew it.
    pub fn of(change: &Change, recorded: bool) -> Action {
        match change {
            Change::Create => Action::Create,
            Change::Replace(_) => Action::Replace,
            Change::Off => Action::None,
            _ if !recorded => Action::Adopt,
            Change::Update(_) => Action::Update,
            Change::Waiting(_) => Action::Waiting,
            Change::NoOp => Action::None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StackRef {
    pub suffix: String,
    pub region: String,
    pub account: Option<String>,
    pub state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeError {
    pub code: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub node: String,
    pub action: Action,
    /// status only: ok, missing, drifted, untracked, absent, waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// The resource's ids, ARNs and names, by output name.
    pub ids: BTreeMap<String, Value>,
    pub changes: Vec<Drift>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<NodeError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
}

impl Resource {
    pub fn new(node: &str, action: Action) -> Resource {
        Resource {
            node: node.to_string(),
            action,
            status: None,
            ids: BTreeMap::new(),
            changes: vec![],
            error: None,
            skipped_because: None,
        }
    }

    pub fn with_change(mut self, change: &Change) -> Resource {
        self.changes = change.drifts().into_iter().cloned().collect();
        self
    }

    pub fn with_ids(mut self, outputs: Option<&Outputs>) -> Resource {
        self.ids = outputs.map(ids).unwrap_or_default();
        self
    }

    /// A node that did not finish: failed, or skipped because a dependency failed.
    pub fn unfinished<T>(node: &str, outcome: &Outcome<T>) -> Option<Resource> {
        match outcome {
            Outcome::Done(_) => None,
            Outcome::Failed(d) => Some(Resource { error: Some(error_of(d)), ..Resource::new(node, Action::Failed) }),
            Outcome::Skipped { because } => {
                Some(Resource { skipped_because: Some(because.clone()), ..Resource::new(node, Action::Skipped) })
            }
        }
    }
}

fn error_of(d: &Diagnostic) -> NodeError {
    NodeError { code: d.code.clone(), message: d.message.clone(), hint: d.hint.clone() }
}

/// The ids, ARNs and names among a node's outputs, by name.
pub fn ids(outputs: &Outputs) -> BTreeMap<String, Value> {
    outputs
        .iter()
        .filter(|(k, v)| {
            !v.is_null() && ["_id", "_ids", "_arn", "_arns", "_name", "_names"].iter().any(|s| k.ends_with(s))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A report under construction; `print` writes it as the one JSON shape.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub command: &'static str,
    pub stack: StackRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::state::LockHolder>,
    pub summary: BTreeMap<&'static str, usize>,
    pub resources: Vec<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarms: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    /// What the operator should know before going on (plan, up): e.g. buckets that compliance
    /// retention will make undeletable for a year.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub cost: Value,
}

impl Report {
    pub fn new(session: &Session<'_>, command: &'static str, resources: Vec<Resource>) -> Report {
        let mut summary = BTreeMap::new();
        for r in &resources {
            *summary.entry(r.action.as_str()).or_insert(0) += 1;
        }
        Report {
            schema: SCHEMA,
            command,
            stack: StackRef {
                suffix: session.names.suffix.clone(),
                region: session.config.region.clone(),
                account: Some(session.names.account.clone()),
                state: session.store.location(),
            },
            lock: session.lock_holder.clone(),
            summary,
            resources,
            healthy: None,
            traffic: None,
            versions: None,
            alarms: None,
            shift: None,
            outputs: None,
            warnings: Vec::new(),
            cost: session.cost(),
        }
    }

    pub fn count(&self, a: Action) -> usize {
        self.summary.get(a.as_str()).copied().unwrap_or(0)
    }

    pub fn print(&self) {
        print_json(&serde_json::to_value(self).unwrap_or(Value::Null));
    }

    /// "3 created, 1 adopted, 17 unchanged, 1 skipped": the counts in a fixed order, the first
    /// always and the others when not zero; `word` tells the tense.
    pub fn tally(&self, order: &[Action], word: fn(Action) -> &'static str) -> String {
        let parts: Vec<String> = order
            .iter()
            .enumerate()
            .filter(|(i, a)| *i == 0 || self.count(**a) > 0)
            .map(|(_, a)| format!("{} {}", self.count(*a), word(*a)))
            .collect();
        parts.join(", ")
    }
}

pub fn print_json(value: &Value) {
    crate::outln!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_the_state_did_not_know_is_adopted_unless_it_must_be_made() {
        assert_eq!(Action::of(&Change::NoOp, false), Action::Adopt);
        assert_eq!(Action::of(&Change::Update(vec![]), false), Action::Adopt);
        assert_eq!(Action::of(&Change::Create, false), Action::Create);
        assert_eq!(Action::of(&Change::NoOp, true), Action::None);
        assert_eq!(Action::of(&Change::Waiting(vec![]), true), Action::Waiting);
    }

    #[test]
    fn a_tally_always_names_the_first_count_and_otherwise_only_what_happened() {
        let resources = vec![
            Resource::new("a", Action::None),
            Resource::new("b", Action::Failed),
            Resource::new("c", Action::Skipped),
            Resource::new("d", Action::Skipped),
        ];
        let mut summary = BTreeMap::new();
        for r in &resources {
            *summary.entry(r.action.as_str()).or_insert(0) += 1;
        }
        let report = Report {
            schema: SCHEMA,
            command: "up",
            stack: StackRef { suffix: "qa".into(), region: "us-east-1".into(), account: None, state: "/s".into() },
            lock: None,
            summary,
            resources,
            healthy: None,
            traffic: None,
            versions: None,
            alarms: None,
            shift: None,
            outputs: None,
            warnings: Vec::new(),
            cost: Value::Null,
        };
        let order = [Action::Create, Action::None, Action::Failed, Action::Skipped];
        assert_eq!(report.tally(&order, Action::done), "0 created, 1 unchanged, 1 failed, 2 skipped");
        assert_eq!(report.tally(&order, Action::planned), "0 to create, 1 unchanged, 1 failed, 2 skipped");
    }

    #[test]
    fn ids_are_named_by_their_output() {
        let o = Outputs::from([
            ("vpc_id".to_string(), Value::from("vpc-1")),
            ("vpc_cidr".to_string(), Value::from("10.0.0.0/16")),
        ]);
        assert_eq!(ids(&o), BTreeMap::from([("vpc_id".to_string(), Value::from("vpc-1"))]));
    }
}
