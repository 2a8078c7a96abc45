//! `tapctl up`: create what is missing, repair what drifted, adopt what exists without a state,
//! leave the rest alone.
//!
//! Settings (`--vpc-cidr`, `--db-max-acu`, …) are recorded in the state only once a run has
//! applied them: the first build records them as it starts (there is nothing else to compare
//! against), a change to them is recorded when the run ends without a failure. A change that
//! would replace a resource `up` may not replace is refused before anything is touched, naming
//! the recorded value and the flag that keeps it; nothing of it is recorded.

use super::plan::plan_all;
use super::report::{Action, Report, Resource};
use super::{close, diagnostic, report_failures, state_diagnostic, Session};
use crate::cli::UpArgs;
use crate::engine::{walk, Diagnostic, Direction, Outcome, RetryPolicy};
use crate::error::Error;
use crate::outln;
use crate::resources::Change;

/// Why a replace is refused, and what the operator can do about it, true for this resource.
fn refusal(session: &Session<'_>, id: &str, change: &Change, args: &UpArgs) -> Diagnostic {
    let replaceable = session.stack.node(id).is_some_and(|n| n.replaceable());
    let reason = change.drifts().first().map(|d| d.to_string()).unwrap_or_default();
    let changed =
        session.recorded.settings.as_ref().map(|r| session.config.settings().changes_from(r)).unwrap_or_default();
    let mut hint = String::new();
    for (flag, recorded, wanted) in &changed {
        hint.push_str(&format!(
            "the stack was built with {flag} {recorded} (recorded); this run asked for {wanted}. Leave {flag} out, \
             or pass {flag} {recorded}, to keep it. "
        ));
    }
    match (replaceable, args.allow_replace) {
        (true, false) => hint.push_str("`up --allow-replace` replaces it, destroying what it holds"),
        (true, true) => {}
        (false, _) => hint.push_str(&format!(
            "tapctl cannot replace {id}: to change it, destroy the stack and create it again with the new value"
        )),
    }
    Diagnostic {
        node: id.to_string(),
        code: Some("ReplaceRefused".into()),
        message: format!("refusing to replace: {reason}"),
        hint: Some(hint.trim().to_string()),
        retryable: false,
    }
}

/// What `up` did to a node, and the drifts it repaired.
type Visited = (Action, Vec<crate::resources::Drift>);

async fn visit(session: &Session<'_>, id: String, args: &UpArgs) -> Result<Visited, Diagnostic> {
    let node = session.node(&id)?;
    let ctx = session.ctx(node.id(), node.reads(), "observing");
    let result = async {
        let planned = node.plan(&ctx).await.map_err(|e| diagnostic(&id, e))?;
        let action = Action::of(&planned.change, session.was_recorded(&id));
        if let Change::Replace(_) = &planned.change {
            if !(args.allow_replace && node.replaceable()) {
                return Err(refusal(session, &id, &planned.change, args));
            }
        }
        let drifts: Vec<crate::resources::Drift> = planned.change.drifts().into_iter().cloned().collect();
        let changes = matches!(planned.change, Change::Create | Change::Update(_) | Change::Replace(_));
        let outputs = match (changes, planned.outputs.clone()) {
            (false, Some(outputs)) => outputs,
            _ => node.apply(&ctx, planned).await.map_err(|e| diagnostic(&id, e))?,
        };
        // Saved after every node (and on adoption, when the state did not know the ids yet).
        if changes || ctx.recorded.as_ref() != Some(&outputs) {
            session.record(&id, outputs.clone()).await.map_err(|e| state_diagnostic(&id, e))?;
        }
        session.publish_outputs(&id, outputs);
        Ok((action, drifts))
    }
    .await;
    close(ctx.progress, &result, |(a, _)| a.done().to_string());
    result
}

/// A settings change that some resource could only take by being replaced, which this run may
/// not do: refused before the first change, with exit 2.
async fn refuse_early(session: &Session<'_>, args: &UpArgs) -> Result<(), Error> {
    let outcomes = plan_all(session).await?;
    session.outputs.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let refused: Vec<Diagnostic> = outcomes
        .iter()
        .filter_map(|(id, o)| match o {
            Outcome::Done(c @ Change::Replace(_))
                if !(args.allow_replace && session.stack.node(id).is_some_and(|n| n.replaceable())) =>
            {
                Some(refusal(session, id, c, args))
            }
            _ => None,
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = refused.iter().map(|d| format!("{}: {}", d.node, d.message)).collect();
    let hint = refused.first().and_then(|d| d.hint.clone()).unwrap_or_default();
    Err(Error::Refused(format!(
        "nothing was changed and the settings were not recorded:\n  {}\nhint: {hint}",
        lines.join("\n  ")
    )))
}

pub async fn run(session: &Session<'_>, args: &UpArgs) -> Result<u8, Error> {
    let wanted = session.config.settings();
    let first_build = session.recorded.settings.is_none();
    let settings_change = session.recorded.settings.as_ref().is_some_and(|r| *r != wanted);
    // A first build may be an adoption (a lost state over existing resources): its settings are
    // checked against what exists before anything is changed or recorded, like a change.
    if settings_change || first_build {
        refuse_early(session, args).await?;
    }
    {
        let mut state = session.lock_state();
        state.account_id = Some(session.names.account.clone());
        if first_build {
            state.settings = Some(wanted.clone());
        }
    }
    session.save_state().await?;
    let outcomes = walk(&session.graph, Direction::Forward, session.run.parallelism, RetryPolicy::default(), |id| {
        visit(session, id, args)
    })
    .await;
    let (failed, skipped) = report_failures(&session.progress, &outcomes);
    if settings_change {
        if failed + skipped == 0 {
            session.lock_state().settings = Some(wanted);
            session.save_state().await?;
        } else {
            session.progress.println(
                "note: the settings this run changed were not recorded, because it did not finish; run the same \
                 command again to finish applying them",
            );
        }
    }
    let outputs = session.operator_outputs();
    session.store.save_outputs(&outputs).await?;
    let recorded = session.lock_state().nodes.clone();
    let resources: Vec<Resource> = session
        .order()
        .iter()
        .filter_map(|id| match outcomes.get(id)? {
            Outcome::Done((a, drifts)) => Some(Resource {
                changes: drifts.clone(),
                ..Resource::new(id, *a).with_ids(recorded.get(id).map(|n| &n.outputs))
            }),
            other => Resource::unfinished(id, other),
        })
        .collect();
    let mut report = Report::new(session, "up", resources);
    report.outputs = Some(outputs.clone());
    report.warnings.extend(crate::resources::storage::compliance_warning(&session.config, &session.names));
    report.warnings.extend(crate::resources::account::controls::warning(&session.config));
    if session.run.json {
        report.print();
    } else {
        for w in &report.warnings {
            outln!("warning: {w}");
        }
        outln!("up: {} ({})", report.tally(&Action::BUILD_TALLY, Action::done), session.cost_line());
        for r in report.resources.iter().filter(|r| r.action == Action::Waiting) {
            for d in &r.changes {
                outln!("waiting: {}: {d}", r.node);
            }
        }
        outln!("outputs:");
        for (k, v) in &outputs {
            outln!("  {k} = {}", super::stacks::plain(v));
        }
    }
    if failed > 0 {
        return Err(Error::NodesFailed { count: failed });
    }
    Ok(0)
}
