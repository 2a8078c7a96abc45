//! `tapctl plan`: observe and diff every node, change nothing.

use super::{close, diagnostic, print_json, report_failures, Session};
use crate::cli::PlanArgs;
use crate::engine::{walk, Diagnostic, Direction, Outcome, RetryPolicy};
use crate::error::Error;
use crate::resources::Change;
use serde_json::json;
use std::collections::BTreeMap;

/// Observes and diffs one node. When a dependency does not exist yet the node cannot be
/// observed against it: it is planned as a create.
pub async fn plan_node(session: &Session<'_>, id: String) -> Result<Change, Diagnostic> {
    let node = session.node(&id)?;
    let ctx = session.ctx(node.id(), node.reads(), "observing");
    let deps_exist = node.reads().iter().all(|r| ctx.inputs.contains_key(r.node));
    let result = if deps_exist {
        match node.plan(&ctx).await {
            Ok(planned) => {
                if let Some(outputs) = planned.outputs {
                    session.publish_outputs(&id, outputs);
                }
                Ok(planned.change)
            }
            Err(e) => Err(diagnostic(&id, e)),
        }
    } else {
        Ok(Change::Create)
    };
    close(ctx.progress, &result, |c| c.action().to_string());
    result
}

pub async fn plan_all(session: &Session<'_>) -> Result<BTreeMap<String, Outcome<Change>>, Error> {
    Ok(walk(&session.graph, Direction::Forward, session.run.parallelism, RetryPolicy::default(), |id| {
        plan_node(session, id)
    })
    .await)
}

pub async fn run(session: &Session<'_>, args: &PlanArgs) -> Result<u8, Error> {
    let outcomes = plan_all(session).await?;
    let failed = report_failures(&session.progress, &outcomes);
    let order = session.graph.topological_order().unwrap_or_default();
    let changes: Vec<(&String, &Change)> = order
        .iter()
        .filter_map(|id| match outcomes.get(id) {
            Some(Outcome::Done(c)) => Some((id, c)),
            _ => None,
        })
        .collect();
    let count = |a: &str| changes.iter().filter(|(_, c)| c.action() == a).count();
    if session.run.json {
        let nodes: Vec<serde_json::Value> = changes
            .iter()
            .map(|(id, c)| {
                let details: Vec<String> = c.drifts().iter().map(|d| d.to_string()).collect();
                json!({ "node": id, "action": c.action(), "details": details })
            })
            .collect();
        print_json(&json!({
            "command": "plan",
            "suffix": session.names.suffix,
            "summary": { "create": count("create"), "update": count("update"), "replace": count("replace"), "unchanged": count("no-op"), "failed": failed },
            "nodes": nodes,
            "cost": session.cost(),
        }));
    } else {
        for (id, c) in &changes {
            match c {
                Change::NoOp => println!("  = {id}"),
                Change::Create => println!("  + {id} (create)"),
                Change::Waiting(drifts) => {
                    println!("  … {id} (waiting)");
                    for d in drifts {
                        println!("      - {d}");
                    }
                }
                Change::Update(drifts) => {
                    println!("  ~ {id} (update)");
                    for d in drifts {
                        println!("      - {d}");
                    }
                }
                Change::Replace(reason) => {
                    println!("  ! {id} (replace: refused by `up` unless allowed)");
                    println!("      - {reason}");
                }
            }
        }
        println!(
            "plan: {} to create, {} to update, {} to replace, {} unchanged ({})",
            count("create"),
            count("update"),
            count("replace"),
            count("no-op"),
            session.cost_line()
        );
    }
    if failed > 0 {
        return Err(Error::NodesFailed { count: failed });
    }
    let has_changes = changes.iter().any(|(_, c)| !matches!(c, Change::NoOp | Change::Waiting(_)));
    Ok(if args.detailed_exitcode && has_changes { 2 } else { 0 })
}
