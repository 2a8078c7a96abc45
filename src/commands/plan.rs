//! `tapctl plan`: observe and diff every node, change nothing. Takes no lock: it reads the state
//! as last saved, beside a running `up` if need be.

use super::report::{Action, Report, Resource};
use super::{close, diagnostic, report_failures, Session};
use crate::cli::PlanArgs;
use crate::engine::{walk, Diagnostic, Direction, Outcome, RetryPolicy};
use crate::error::Error;
use crate::outln;
use crate::resources::Change;
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
    close(ctx.progress, &result, |c| Action::of(c, session.was_recorded(&id)).as_str().to_string());
    result
}

pub async fn plan_all(session: &Session<'_>) -> Result<BTreeMap<String, Outcome<Change>>, Error> {
    Ok(walk(&session.graph, Direction::Forward, session.run.parallelism, RetryPolicy::default(), |id| {
        plan_node(session, id)
    })
    .await)
}

/// One entry per node, in walk order: what `up` would do, with the drifts behind it.
pub fn planned_resources(session: &Session<'_>, outcomes: &BTreeMap<String, Outcome<Change>>) -> Vec<Resource> {
    let observed = session.outputs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    session
        .order()
        .iter()
        .filter_map(|id| match outcomes.get(id)? {
            Outcome::Done(c) => Some(
                Resource::new(id, Action::of(c, session.was_recorded(id)))
                    .with_change(c)
                    .with_ids(observed.get(id).or_else(|| session.recorded.nodes.get(id).map(|n| &n.outputs))),
            ),
            other => Resource::unfinished(id, other),
        })
        .collect()
}

pub async fn run(session: &Session<'_>, args: &PlanArgs) -> Result<u8, Error> {
    let outcomes = plan_all(session).await?;
    let (failed, _) = report_failures(&session.progress, &outcomes);
    let mut report = Report::new(session, "plan", planned_resources(session, &outcomes));
    report.warnings.extend(crate::resources::storage::compliance_warning(&session.config, &session.names));
    report.warnings.extend(crate::resources::account::controls::warning(&session.config));
    if session.run.json {
        report.print();
    } else {
        for r in &report.resources {
            let (mark, note) = match r.action {
                Action::None => ("=", ""),
                Action::Create => ("+", " (create)"),
                Action::Adopt => ("&", " (adopt: exists, not yet in the state)"),
                Action::Update => ("~", " (update)"),
                Action::Waiting => ("…", " (waiting)"),
                Action::Replace => ("!", " (replace: refused by `up` unless --allow-replace)"),
                Action::Failed | Action::Skipped => continue,
                Action::Delete | Action::Absent => ("-", ""),
            };
            outln!("  {mark} {}{note}", r.node);
            for d in &r.changes {
                outln!("      {d}");
            }
        }
        for w in &report.warnings {
            outln!("warning: {w}");
        }
        outln!("plan: {} ({})", report.tally(&Action::BUILD_TALLY, Action::planned), session.cost_line());
    }
    if failed > 0 {
        return Err(Error::NodesFailed { count: failed });
    }
    let has_changes = report
        .resources
        .iter()
        .any(|r| matches!(r.action, Action::Create | Action::Update | Action::Replace | Action::Adopt));
    Ok(if args.detailed_exitcode && has_changes { 2 } else { 0 })
}
