//! `tapctl destroy`: remove everything of the suffix, dependants first, waiting until each is
//! gone. Resources are found by the state's ids and by their tags, so nothing is orphaned even
//! when the state is incomplete. A second destroy is a successful no-op.

use super::{close, diagnostic, print_json, report_failures, state_diagnostic, Session};
use crate::config::RunConfig;
use crate::engine::{walk, Diagnostic, Direction, Outcome, RetryPolicy};
use crate::error::Error;
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};

/// Asks on a terminal; refuses without one (a script must say --yes).
pub fn confirm(run: &RunConfig) -> Result<(), Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Refused(format!(
            "destroy deletes every resource of suffix '{}'; without a terminal to confirm on, pass --yes",
            run.suffix
        )));
    }
    eprint!("Destroy every resource of suffix '{}' in {}? Type the suffix to confirm: ", run.suffix, run.region);
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

pub async fn run(session: &Session<'_>) -> Result<u8, Error> {
    let teardown = session.stack.teardown_graph().map_err(crate::stack::invalid)?;
    let outcomes =
        walk(&teardown, Direction::Reverse, session.run.parallelism, RetryPolicy::default(), |id| visit(session, id))
            .await;
    let failed = report_failures(&session.progress, &outcomes);
    // A finalizer owns nothing: it is neither deleted nor absent.
    let resources = || outcomes.iter().filter(|(id, _)| session.stack.finalizer(id).is_none()).map(|(_, o)| o);
    let deleted = resources().filter(|o| matches!(o, Outcome::Done(true))).count();
    let absent = resources().filter(|o| matches!(o, Outcome::Done(false))).count();
    if failed == 0 {
        session.store.remove_files().await?;
    }
    if session.run.json {
        print_json(
            &json!({ "command": "destroy", "summary": { "deleted": deleted, "already_absent": absent, "failed": failed } }),
        );
    } else {
        println!("destroy: {deleted} deleted, {absent} already absent, {failed} failed ({})", session.cost_line());
    }
    if failed > 0 {
        return Err(Error::NodesFailed { count: failed });
    }
    Ok(0)
}
