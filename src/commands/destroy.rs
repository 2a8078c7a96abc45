//! `tapctl destroy`: remove everything of the suffix, dependants first, waiting until each is
//! gone. Resources are found by the state's ids and by their tags, so nothing is orphaned even
//! when the state is incomplete. A second destroy is a successful no-op.

use super::report::{Action, Report, Resource};
use super::{close, diagnostic, report_failures, state_diagnostic, Session};
use crate::config::RunConfig;
use crate::engine::{walk, Diagnostic, Direction, Outcome, RetryPolicy};
use crate::error::Error;
use crate::outln;
use std::io::{BufRead, IsTerminal, Write};

/// Asks on a terminal; refuses without one (a script must say --yes).
pub fn confirm(run: &RunConfig) -> Result<(), Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Refused(format!(
            "destroy deletes every resource of suffix '{}'; without a terminal to confirm on, pass --yes",
            run.suffix
        )));
    }
    crate::err!("Destroy every resource of suffix '{}' in {}? Type the suffix to confirm: ", run.suffix, run.region);
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| Error::Refused(format!("no answer read: {e}")))?;
    if answer.trim() == run.suffix {
        Ok(())
    } else {
        Err(Error::Refused("not confirmed; nothing was changed".into()))
    }
}

async fn visit(session: &Session<'_>, id: String) -> Result<bool, Diagnostic> {
    if let Some(finalizer) = session.stack.finalizer(&id) {
        let ctx = session.ctx(finalizer.id(), &[], "settling");
        let result = finalizer.run(&ctx).await.map_err(|e| diagnostic(&id, e));
        close(ctx.progress, &result, |d| if *d { "settled".into() } else { "nothing to settle".into() });
        return result;
    }
    let node = session.node(&id)?;
    let ctx = session.ctx(node.id(), &[], "looking for it");
    let result = async {
        let deleted = node.destroy(&ctx).await.map_err(|e| diagnostic(&id, e))?;
        session.forget(&id).await.map_err(|e| state_diagnostic(&id, e))?;
        Ok(deleted)
    }
    .await;
    close(ctx.progress, &result, |d| if *d { "deleted".into() } else { "already absent".into() });
    result
}

/// One entry per resource of a teardown, dependants first: deleted (or to delete), or absent. A
/// finalizer owns nothing: it is neither.
fn teardown_resources(
    session: &Session<'_>,
    teardown: &crate::engine::Graph,
    outcomes: &std::collections::BTreeMap<String, Outcome<bool>>,
) -> Vec<Resource> {
    let order: Vec<String> = teardown.topological_order().unwrap_or_default().into_iter().rev().collect();
    order
        .iter()
        .filter(|id| session.stack.finalizer(id).is_none())
        .filter_map(|id| match outcomes.get(id)? {
            Outcome::Done(exists) => Some(
                Resource::new(id, if *exists { Action::Delete } else { Action::Absent })
                    .with_ids(session.recorded.nodes.get(id).map(|n| &n.outputs)),
            ),
            other => Resource::unfinished(id, other),
        })
        .collect()
}

/// `plan --destroy`: what a destroy would remove, found as a destroy finds it (by the state's ids
/// and by tags), deleting nothing.
pub async fn plan(session: &Session<'_>, detailed_exitcode: bool) -> Result<u8, Error> {
    let teardown = session.stack.teardown_graph().map_err(crate::stack::invalid)?;
    let outcomes =
        walk(&teardown, Direction::Reverse, session.run.parallelism, RetryPolicy::default(), |id| async move {
            if session.stack.finalizer(&id).is_some() {
                return Ok(false);
            }
            let node = session.node(&id)?;
            let ctx = session.ctx(node.id(), &[], "looking for it");
            let result = node.exists(&ctx).await.map_err(|e| diagnostic(&id, e));
            close(ctx.progress, &result, |e| if *e { "to delete".into() } else { "absent".into() });
            result
        })
        .await;
    let (failed, _) = report_failures(&session.progress, &outcomes);
    let resources = teardown_resources(session, &teardown, &outcomes);
    let report = Report::new(session, "plan", resources);
    if session.run.json {
        report.print();
    } else {
        for r in report.resources.iter().filter(|r| r.action == Action::Delete) {
            outln!("  - {}", r.node);
        }
        outln!("plan --destroy: {} ({})", report.tally(&Action::TEARDOWN_TALLY, Action::planned), session.cost_line());
    }
    if failed > 0 {
        return Err(Error::NodesFailed { count: failed });
    }
    Ok(if detailed_exitcode && report.count(Action::Delete) > 0 { 2 } else { 0 })
}

pub async fn run(session: &Session<'_>) -> Result<u8, Error> {
    let teardown = session.stack.teardown_graph().map_err(crate::stack::invalid)?;
    let outcomes =
        walk(&teardown, Direction::Reverse, session.run.parallelism, RetryPolicy::default(), |id| visit(session, id))
            .await;
    let (failed, skipped) = report_failures(&session.progress, &outcomes);
    let resources = teardown_resources(session, &teardown, &outcomes);
    if failed + skipped == 0 {
        session.store.remove_files().await?;
        super::stacks::forget_current(&session.run.location, &session.names.suffix);
    }
    let report = Report::new(session, "destroy", resources);
    if session.run.json {
        report.print();
    } else {
        outln!("destroy: {} ({})", report.tally(&Action::TEARDOWN_TALLY, Action::done), session.cost_line());
    }
    if failed > 0 {
        return Err(Error::NodesFailed { count: failed });
    }
    Ok(0)
}
