//! `tapctl up`: create what is missing, repair what drifted, leave the rest alone.

use super::{close, diagnostic, print_json, report_failures, state_diagnostic, Session};
use crate::cli::UpArgs;
use crate::engine::{walk, Diagnostic, Direction, Outcome, RetryPolicy};
use crate::error::Error;
use crate::resources::Change;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Replaced,
    Unchanged,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Replaced => "replaced",
            Action::Unchanged => "unchanged",
        }
    }
}

async fn visit(session: &Session<'_>, id: String, args: &UpArgs) -> Result<Action, Diagnostic> {
    let node = session.node(&id)?;
    let ctx = session.ctx(node.id(), node.reads(), "observing");
    let result = async {
        let planned = node.plan(&ctx).await.map_err(|e| diagnostic(&id, e))?;
        let action = match &planned.change {
            Change::NoOp | Change::Waiting(_) => Action::Unchanged,
            Change::Create => Action::Created,
            Change::Update(_) => Action::Updated,
            Change::Replace(_) if args.allow_replace && node.replaceable() => Action::Replaced,
            Change::Replace(reason) => {
                let hint = if args.allow_replace {
                    "tapctl cannot replace this kind of resource: destroy the stack and run up again"
                } else {
                    "run `tapctl plan` to see why; `up --allow-replace` replaces it, destroying what it holds"
                };
                return Err(Diagnostic {
                    node: id.clone(),
                    code: Some("ReplaceRefused".into()),
                    message: format!("refusing to replace: {reason}"),
                    hint: Some(hint.into()),
                    retryable: false,
                });
            }
        };
        let outputs = match (action, planned.outputs.clone()) {
            (Action::Unchanged, Some(outputs)) => outputs,
            _ => node.apply(&ctx, planned).await.map_err(|e| diagnostic(&id, e))?,
        };
        // Saved after every node (and on adoption, when the state did not know the ids yet).
        if action != Action::Unchanged || ctx.recorded.as_ref() != Some(&outputs) {
            session.record(&id, outputs.clone()).await.map_err(|e| state_diagnostic(&id, e))?;
        }
        session.publish_outputs(&id, outputs);
        Ok(action)
    }
    .await;
    close(ctx.progress, &result, |a| a.as_str().to_string());
    result
}

pub async fn run(session: &Session<'_>, args: &UpArgs) -> Result<u8, Error> {
    {
        let mut state = session.lock_state();
        state.account_id = Some(session.names.account.clone());
        state.settings = Some(session.config.settings());
    }
    session.save_state().await?;
    let outcomes = walk(&session.graph, Direction::Forward, session.run.parallelism, RetryPolicy::default(), |id| {
        visit(session, id, args)
    })
    .await;
    let count = |a: Action| outcomes.values().filter(|o| matches!(o, Outcome::Done(x) if *x == a)).count();
    let (created, updated, unchanged) =
        (count(Action::Created), count(Action::Updated) + count(Action::Replaced), count(Action::Unchanged));
    let failed = report_failures(&session.progress, &outcomes);
    let outputs = session.operator_outputs();
    session.store.save_outputs(&outputs).await?;
    if session.run.json {
        let nodes: serde_json::Map<String, serde_json::Value> = outcomes
            .iter()
            .map(|(id, o)| {
                let v = match o {
                    Outcome::Done(a) => json!(a.as_str()),
                    Outcome::Failed(d) => json!({ "failed": { "code": d.code, "message": d.message, "hint": d.hint } }),
                    Outcome::Skipped { because } => json!({ "skipped_because": because }),
                };
                (id.clone(), v)
            })
            .collect();
        print_json(&json!({
            "command": "up",
            "summary": { "created": created, "updated": updated, "unchanged": unchanged, "failed": failed },
            "nodes": nodes,
            "outputs": outputs,
            "cost": session.cost(),
        }));
    } else {
        println!(
            "up: {created} created, {updated} updated, {unchanged} unchanged, {failed} failed ({})",
            session.cost_line()
        );
        println!("outputs:");
        for (k, v) in &outputs {
            println!("  {k} = {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        }
    }
    if failed > 0 {
        return Err(Error::NodesFailed { count: failed });
    }
    Ok(0)
}
