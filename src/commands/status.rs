//! `tapctl status`: every resource, its ids, and whether it exists as recorded.

use super::{plan::plan_all, print_json, report_failures, Session};
use crate::engine::Outcome;
use crate::error::Error;
use crate::resources::monitoring::alarms;
use crate::resources::Change;
use crate::resources::Outputs;
use crate::traffic::Traffic;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// ok: exists as recorded. missing: recorded, gone. drifted: exists, differs. untracked: exists,
/// not in the state (the next `up` adopts it). absent: neither recorded nor present.
fn status_of(recorded: bool, change: &Change) -> &'static str {
    match (recorded, change) {
        (true, Change::Create) => "missing",
        (false, Change::Create) => "absent",
        (_, Change::Update(_) | Change::Replace(_)) => "drifted",
        (_, Change::Waiting(_)) => "waiting",
        (true, Change::NoOp) => "ok",
        (false, Change::NoOp) => "untracked",
    }
}

/// The ids, ARNs and names among a node's outputs, for the table (lists and maps flattened).
fn ids(outputs: &Outputs) -> Vec<String> {
    let mut v = Vec::new();
    for (k, val) in outputs {
        let named = ["_id", "_ids", "_arn", "_arns", "_name", "_names"].iter().any(|s| k.ends_with(s));
        if !named {
            continue;
        }
        match val {
            Value::String(s) => v.push(s.clone()),
            Value::Array(a) => v.extend(a.iter().filter_map(Value::as_str).map(str::to_string)),
            Value::Object(m) => v.extend(m.values().filter_map(Value::as_str).map(str::to_string)),
            _ => {}
        }
    }
    v
}

/// The split drawn as 40 cells: `blue ██████████████████████████████████████░░ green`.
pub fn bar(t: &Traffic) -> String {
    let share = t.canary.as_ref().map(|c| c.weight).unwrap_or(0.0);
    let other = ((share / 100.0) * 40.0).round() as usize;
    let other = if share > 0.0 { other.max(1) } else { other };
    let (live, canary_color) = (t.live, t.canary.as_ref().map(|c| c.color).unwrap_or(t.live.other()));
    format!(
        "{live} {}{} {canary_color}  ({live} {} %, {canary_color} {share} %)",
        "█".repeat(40 - other),
        "░".repeat(other),
        100.0 - share
    )
}

/// Who gets the traffic, the versions behind each colour, and every alarm's state — read from
/// API Gateway, Lambda (through the functions node's observation) and CloudWatch.
struct Report {
    traffic: Option<Traffic>,
    versions: Value,
    alarms: BTreeMap<String, String>,
}

async fn traffic_report(session: &Session<'_>) -> Result<Report, Error> {
    // As the functions' nodes saw it in this run: the stage is read once.
    let traffic =
        crate::resources::api::stage::shared_traffic(&session.memo, &session.clients.apigateway, &session.names.api())
            .await?;
    // {"blue": {"process": "3", …}, "green": {…}} from each function's own outputs.
    let versions = {
        let outputs = session.outputs.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_colour = serde_json::Map::new();
        for colour in crate::traffic::Color::BOTH {
            let per: serde_json::Map<String, Value> = crate::names::FUNCTIONS
                .iter()
                .filter_map(|f| {
                    let v =
                        outputs.get(crate::resources::functions::id_of(f))?.get("versions")?.get(colour.as_str())?;
                    Some((f.to_string(), v.clone()))
                })
                .collect();
            by_colour.insert(colour.as_str().to_string(), Value::Object(per));
        }
        Value::Object(by_colour)
    };
    let names: Vec<String> = alarms::specs(&session.names, "").into_iter().map(|s| s.name).collect();
    let alarms = alarms::states(&session.clients.cloudwatch, &names).await?;
    Ok(Report { traffic, versions, alarms })
}

pub async fn run(session: &Session<'_>) -> Result<u8, Error> {
    let outcomes = plan_all(session).await?;
    let report = traffic_report(session).await?;
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
        let details: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
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
            "api_url": session.operator_outputs().get("api_url"),
            "traffic": report.traffic,
            "versions": report.versions,
            "alarms": report.alarms,
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
        match &report.traffic {
            Some(t) => println!("traffic: {}", bar(t)),
            None => println!("traffic: no stage yet (run up)"),
        }
        if let Some(v) = report.versions.as_object() {
            for (color, per) in v {
                let list: Vec<String> = per
                    .as_object()
                    .map(|m| m.iter().map(|(f, n)| format!("{f}:{}", n.as_str().unwrap_or("?"))).collect())
                    .unwrap_or_default();
                println!("  {color:5} runs {}", list.join(", "));
            }
        }
        let firing: Vec<&str> = report.alarms.iter().filter(|(_, s)| *s == "ALARM").map(|(n, _)| n.as_str()).collect();
        match firing.is_empty() {
            true => println!("alarms: {} total, none in ALARM", report.alarms.len()),
            false => {
                println!("alarms: {} total, {} in ALARM: {}", report.alarms.len(), firing.len(), firing.join(", "))
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
