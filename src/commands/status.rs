//! `tapctl status`: every resource, its ids, and whether it exists as recorded.

use super::{plan::plan_all, print_json, report_failures, Session};
use crate::engine::Outcome;
use crate::error::Error;
use crate::resources::Change;
use crate::state::Outputs;
use serde_json::{json, Value};

/// ok: exists as recorded. missing: recorded, gone. drifted: exists, differs. untracked: exists,
/// not in the state (the next `up` adopts it). absent: neither recorded nor present.
fn status_of(recorded: bool, change: &Change) -> &'static str {
    match (recorded, change) {
        (true, Change::Create) => "missing",
        (false, Change::Create) => "absent",
        (_, Change::Update(_) | Change::Replace(_)) => "drifted",
        (true, Change::NoOp) => "ok",
        (false, Change::NoOp) => "untracked",
    }
}

/// The ids, ARNs and names among a node's outputs, for the table.
fn ids(outputs: &Outputs) -> Vec<String> {
    let mut v = Vec::new();
    for (k, val) in outputs {
        if !(k.ends_with("_id") || k.ends_with("_ids") || k.ends_with("_arn") || k.ends_with("_name")) {
            continue;
        }
        match val {
            Value::String(s) => v.push(s.clone()),
            Value::Array(a) => v.extend(a.iter().filter_map(Value::as_str).map(str::to_string)),
            _ => {}
        }
    }
    v
}

pub async fn run(session: &Session<'_>) -> Result<u8, Error> {
    let outcomes = plan_all(session).await?;
    let failed = report_failures(&session.progress, &outcomes);
    let order = session.graph.topological_order().unwrap_or_default();
    let observed = session.outputs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let recorded = session.lock_state().nodes.clone();
    let mut rows = Vec::new();
    for id in &order {
        let Some(Outcome::Done(change)) = outcomes.get(id) else {
            continue;
        };
        let status = status_of(recorded.contains_key(id), change);
        let outputs = observed.get(id).or_else(|| recorded.get(id).map(|n| &n.outputs)).cloned().unwrap_or_default();
        let details = match change {
            Change::Update(d) => d.clone(),
            Change::Replace(r) => vec![r.clone()],
            _ => vec![],
        };
        rows.push((id.clone(), status, ids(&outputs), details));
    }
    let healthy = rows.iter().all(|(_, s, _, _)| *s == "ok");
    if session.run.json {
        let resources: Vec<Value> =
            rows.iter().map(|(id, s, ids, d)| json!({ "node": id, "status": s, "ids": ids, "drift": d })).collect();
        print_json(&json!({
            "suffix": session.names.suffix,
            "region": session.config.region,
            "account": session.names.account,
            "healthy": healthy && failed == 0,
            "resources": resources,
            "outputs": session.operator_outputs(),
        }));
    } else {
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(10);
        println!("{:width$}  {:9}  IDS", "RESOURCE", "STATUS");
        for (id, s, ids, details) in &rows {
            println!("{id:width$}  {s:9}  {}", ids.join(", "));
            for d in details {
                println!("{:width$}  {:9}  - {d}", "", "");
            }
        }
        println!();
        println!("outputs:");
        for (k, v) in session.operator_outputs() {
            println!("  {k} = {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        }
    }
    if failed > 0 {
        return Err(Error::NodesFailed { count: failed });
    }
    Ok(0)
}
