//! `tapctl restore`: a recovery drill (PCI DSS 12.10.1). Restores the transactions table and the
//! Aurora cluster to a point in time into new, clearly named resources beside the live ones
//! (`backup::drills`), waits until both can be used, and reports their names, endpoints and the
//! time restored to. Re-run, it finishes the drill in progress (found by its names and tags);
//! `--cleanup` removes every drill resource of the stack.

use super::{close, diagnostic, Session};
use crate::cli::RestoreArgs;
use crate::error::Error;
use crate::outln;
use crate::resources::backup::drills::{self, Target};
use crate::resources::{database, kms, network};

/// `--point-in-time`, checked before any AWS call.
pub fn point_in_time(args: &RestoreArgs) -> Result<Option<chrono::DateTime<chrono::Utc>>, Error> {
    args.point_in_time
        .as_deref()
        .map(|t| {
            drills::check_point_in_time(t, chrono::Utc::now()).map_err(|rule| Error::invalid("--point-in-time", rule))
        })
        .transpose()
}

fn recorded(session: &Session<'_>, node: &str, key: &str) -> Result<String, Error> {
    session
        .lock_state()
        .nodes
        .get(node)
        .and_then(|n| n.outputs.get(key))
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::State {
            message: format!(
                "the state of '{}' records no {node} {key}: there is no stack to restore",
                session.run.suffix
            ),
            hint: Some("run `tapctl up` first".into()),
        })
}

/// The report's `stack`, as every report has it.
fn stack(session: &Session<'_>) -> serde_json::Value {
    serde_json::json!({ "suffix": session.names.suffix, "region": session.config.region,
                        "account": session.names.account, "state": session.store.location() })
}

fn failed(e: crate::resources::ResourceError) -> Error {
    Error::State {
        message: format!("{}{}", e.code.map(|c| format!("[{c}] ")).unwrap_or_default(), e.message),
        hint: e.hint,
    }
}

pub async fn run(session: &Session<'_>, args: &RestoreArgs) -> Result<u8, Error> {
    let at = point_in_time(args)?;
    let ctx = session.ctx(drills::ID, &[], if args.cleanup { "removing the drills" } else { "restoring" });
    if args.cleanup {
        let result = drills::remove_all(&ctx).await.map_err(|e| diagnostic(drills::ID, e));
        close(ctx.progress, &result, |r| format!("{} drill resources removed", r.len()));
        let removed = result.map_err(|d| Error::State { message: d.message, hint: d.hint })?;
        if session.run.json {
            outln!(
                "{}",
                serde_json::json!({ "schema": super::report::SCHEMA, "command": "restore", "cleanup": true,
                                    "stack": stack(session),
                                    "removed": removed })
            );
        } else if removed.is_empty() {
            outln!("no drill of '{}' to remove", session.names.suffix);
        } else {
            outln!("removed: {}", removed.join(", "));
        }
        return Ok(0);
    }
    let target = Target {
        live_table: session.names.table(),
        live_cluster: session.names.db_cluster(),
        subnet_group: session.names.db_subnet_group(),
        parameter_group: session.names.db_parameter_group(),
        security_group: recorded(session, network::security_groups::ID, "database_sg_id")?,
        key_arn: recorded(session, kms::ID, "key_arn")?,
    };
    recorded(session, database::cluster::ID, "cluster_id")?;
    let in_progress = drills::find(&ctx).await.map_err(failed)?;
    let stamp = in_progress.stamp(&session.names.suffix).unwrap_or_else(|| drills::stamp(chrono::Utc::now()));
    let result = drills::restore(&ctx, &target, &stamp, at).await.map_err(|e| diagnostic(drills::ID, e));
    close(ctx.progress, &result, |d| format!("restored into {} and {}", d.table, d.cluster));
    let drill = result.map_err(|d| Error::State { message: d.message, hint: d.hint })?;
    if session.run.json {
        outln!(
            "{}",
            serde_json::json!({ "schema": super::report::SCHEMA, "command": "restore",
                                "stack": stack(session),
                                "drill": drill, "cost": session.cost() })
        );
    } else {
        outln!("drill {} restored to {}", drill.stamp, drill.restored_to);
        outln!("  table    {}", drill.table);
        outln!("  cluster  {} (instance {})", drill.cluster, drill.instance);
        outln!("  writer   {}", drill.writer_endpoint);
        outln!("  reader   {}", drill.reader_endpoint);
        outln!("remove it with: tapctl restore --suffix {} --cleanup", session.names.suffix);
    }
    Ok(0)
}
