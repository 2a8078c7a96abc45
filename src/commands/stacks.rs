//! The commands about stacks rather than inside one: which stack a command means (`use`, the
//! only one, or `--suffix`), `list`, `outputs`, `version`, `logs`, and what an interrupted run
//! tells its operator.

use super::report::{print_json, SCHEMA};
use super::{Session, Verb};
use crate::cli::{Command, ListArgs, LogsArgs, OutputsArgs, UseArgs, VersionArgs};
use crate::config::{self, Selection, StateLocation};
use crate::error::Error;
use crate::outln;
use crate::state::{self, LocalStore, S3Store, StateStore};
use serde_json::{json, Value};
use std::path::PathBuf;

/// A value as a person reads it: strings bare, lists joined, the rest as JSON.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(plain).collect::<Vec<_>>().join(", "),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Where `tapctl use` remembers the current stack: beside the local states, or, for an S3
/// location (shared by a team), in the user's own default directory, per bucket and prefix.
fn current_file(location: &StateLocation) -> Result<PathBuf, Error> {
    Ok(match location {
        StateLocation::Local(dir) => dir.join("current"),
        StateLocation::Remote(r) => {
            let StateLocation::Local(mine) = StateLocation::from_arg(None)? else {
                return Err(Error::invalid("--state", "no local directory to remember the current stack in"));
            };
            mine.join(format!("current@{}@{}", r.bucket, r.prefix.replace('/', "%2F")))
        }
    })
}

fn current(location: &StateLocation) -> Option<String> {
    let text = std::fs::read_to_string(current_file(location).ok()?).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// After a destroy: a `tapctl use` of the destroyed stack no longer chooses anything.
pub fn forget_current(location: &StateLocation, suffix: &str) {
    if current(location).as_deref() == Some(suffix) {
        if let Ok(file) = current_file(location) {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// The stacks the location holds, by suffix.
pub async fn known(location: &StateLocation, s3: &aws_sdk_s3::Client) -> Result<Vec<String>, Error> {
    match location {
        StateLocation::Local(dir) => state::local_suffixes(dir),
        StateLocation::Remote(r) => state::s3::suffixes(s3, r).await,
    }
}

/// The stack a command works on: `--suffix` (TAPCTL_SUFFIX), else the one `tapctl use` chose,
/// else the only one in the state location; otherwise a clear error listing them.
pub async fn resolve_suffix(selection: &Selection, s3: &aws_sdk_s3::Client) -> Result<String, Error> {
    if let Some(s) = &selection.suffix {
        return Ok(s.clone());
    }
    if let Some(s) = current(&selection.location) {
        config::validate_suffix(&s, &selection.region)
            .map_err(|e| Error::invalid("--suffix", format!("the current stack (`tapctl use`) is invalid: {e}")))?;
        return Ok(s);
    }
    let stacks = known(&selection.location, s3).await?;
    match stacks.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(Error::invalid(
            "--suffix",
            format!(
                "is required: {} holds no stack yet; name the new one, e.g. `tapctl up --suffix qa`",
                selection.location.describe()
            ),
        )),
        many => Err(Error::invalid(
            "--suffix",
            format!(
                "is required: {} holds {} stacks ({}); pass --suffix, or choose one with `tapctl use <suffix>`",
                selection.location.describe(),
                many.len(),
                many.join(", ")
            ),
        )),
    }
}

/// A suffix with no state where the command looked: an error that lists the stacks there.
pub fn unknown(suffix: &str, location: &StateLocation, known: &[String]) -> Error {
    let there = if known.is_empty() { "none".to_string() } else { known.join(", ") };
    Error::State {
        message: format!("no stack '{suffix}' in {} (stacks there: {there})", location.describe()),
        hint: Some(format!(
            "check --suffix and --state; if the stack exists in AWS but its state was lost, `tapctl plan --suffix \
             {suffix}` shows what `up` would adopt"
        )),
    }
}

pub async fn use_stack(args: &UseArgs) -> Result<u8, Error> {
    let location = StateLocation::from_arg(args.state.as_deref())?;
    config::validate_suffix(&args.suffix, "us-east-1")?;
    let file = current_file(&location)?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::State { message: format!("cannot create {}: {e}", dir.display()), hint: None })?;
    }
    std::fs::write(&file, format!("{}\n", args.suffix))
        .map_err(|e| Error::State { message: format!("cannot write {}: {e}", file.display()), hint: None })?;
    let exists = match &location {
        StateLocation::Local(dir) => state::local_suffixes(dir)?.contains(&args.suffix),
        StateLocation::Remote(_) => true,
    };
    outln!(
        "current stack: {}{}",
        args.suffix,
        if exists { String::new() } else { " (no state yet: `tapctl up` creates it)".into() }
    );
    Ok(0)
}

pub async fn list(args: &ListArgs) -> Result<u8, Error> {
    let location = StateLocation::from_arg(args.state.as_deref())?;
    let region = args.region.clone().or_else(config::region_from_env).unwrap_or_else(|| "us-east-1".into());
    let sdk = crate::aws::sdk_config(&region, args.endpoint_url.as_deref()).await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let current = current(&location);
    let mut rows = Vec::new();
    for suffix in known(&location, &s3).await? {
        let store: Box<dyn state::Store> = match &location {
            StateLocation::Local(dir) => Box::new(LocalStore::snapshot(dir, &suffix)),
            StateLocation::Remote(r) => Box::new(S3Store::snapshot(s3.clone(), r.clone(), &suffix)),
        };
        let text = store.load().await?.unwrap_or_default();
        let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let holder = store.holder().await;
        rows.push(json!({
            "suffix": suffix,
            "current": current.as_deref() == Some(suffix.as_str()),
            "region": doc["region"],
            "account": doc["account_id"],
            "resources": doc["nodes"].as_object().map(|n| n.len()).unwrap_or(0),
            "updated_at": doc["updated_at"],
            "locked_by": holder.map(|h| h.describe()),
        }));
    }
    if args.json {
        print_json(&json!({ "schema": SCHEMA, "command": "list", "state": location.describe(), "stacks": rows }));
        return Ok(0);
    }
    if rows.is_empty() {
        outln!("no stacks in {} yet: `tapctl up --suffix <name>` creates one", location.describe());
        return Ok(0);
    }
    outln!("  {:24} {:14} {:9} {:21} LOCK", "STACK", "REGION", "RESOURCES", "UPDATED");
    for r in &rows {
        outln!(
            "{} {:24} {:14} {:9} {:21} {}",
            if r["current"] == true { "*" } else { " " },
            plain(&r["suffix"]),
            plain(&r["region"]),
            r["resources"],
            plain(&r["updated_at"]),
            r["locked_by"].as_str().unwrap_or("-")
        );
    }
    outln!("({}; * = current, `tapctl use <suffix>` to change)", location.describe());
    Ok(0)
}

/// The outputs the last `up` recorded: read from the state location, no AWS call.
pub async fn outputs(args: &OutputsArgs) -> Result<u8, Error> {
    let selection = Selection::from_args(&args.target, config::region_from_env())?;
    let sdk = crate::aws::sdk_config(&selection.region, selection.endpoint_url.as_deref()).await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let suffix = resolve_suffix(&selection, &s3).await?;
    let store: Box<dyn state::Store> = match &selection.location {
        StateLocation::Local(dir) => Box::new(LocalStore::snapshot(dir, &suffix)),
        StateLocation::Remote(r) => Box::new(S3Store::snapshot(s3.clone(), r.clone(), &suffix)),
    };
    let (store, _) = StateStore::open(store, &suffix, &selection.region).await?;
    let Some(outputs) = store.load_outputs().await? else {
        let known = known(&selection.location, &s3).await.unwrap_or_default();
        return Err(unknown(&suffix, &selection.location, &known));
    };
    if let Some(name) = &args.name {
        let value = outputs.get(name).ok_or_else(|| {
            Error::invalid(
                "NAME",
                format!(
                    "'{name}' is not an output of '{suffix}'; outputs: {}",
                    outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        if args.output.json {
            print_json(value);
        } else {
            outln!("{}", plain(value));
        }
        return Ok(0);
    }
    if args.output.json {
        print_json(&json!({
            "schema": SCHEMA,
            "command": "outputs",
            "stack": { "suffix": suffix, "region": selection.region, "account": Value::Null, "state": store.location() },
            "outputs": outputs,
        }));
    } else {
        let width = outputs.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in &outputs {
            outln!("{k:width$} = {}", plain(v));
        }
    }
    Ok(0)
}

pub fn version(args: &VersionArgs) -> u8 {
    let v = json!({
        "schema": SCHEMA,
        "command": "version",
        "version": env!("CARGO_PKG_VERSION"),
        "state_schema": state::SCHEMA_VERSION,
        "output_schema": SCHEMA,
    });
    if args.json {
        print_json(&v);
    } else {
        outln!("tapctl {} (state schema {}, output schema {SCHEMA})", env!("CARGO_PKG_VERSION"), state::SCHEMA_VERSION);
    }
    0
}

pub async fn logs(args: &LogsArgs) -> Result<u8, Error> {
    super::logs::run(args).await
}

/// What an interrupted run prints: what it did, where the traffic stands (read with a short
/// deadline), and the command that resumes or rolls back. Exit 130, the shell's code for SIGINT.
pub async fn interrupted_report(session: &Session<'_>, command: &Command, signal: &str) -> Error {
    let done = session.outputs.lock().unwrap_or_else(|p| p.into_inner()).len();
    let suffix = &session.names.suffix;
    let mut lines = vec![format!("interrupted by {signal} after {}", session.cost_line())];
    match session.verb {
        Verb::Up => {
            lines.push(format!("{done} resource(s) were visited and recorded; nothing is half-recorded"));
            lines.push(format!("resume: tapctl up --suffix {suffix}"));
        }
        Verb::Destroy => {
            let left = session.lock_state().nodes.len();
            lines.push(format!("{left} resource(s) are still recorded"));
            lines.push(format!("resume: tapctl destroy --suffix {suffix} --yes"));
        }
        Verb::Plan | Verb::Status => {}
        Verb::Shift => {}
        Verb::Restore => {
            lines.push(format!("resume: tapctl restore --suffix {suffix} (it finishes the drill in progress)"));
        }
    }
    if matches!(session.verb, Verb::Up | Verb::Shift) {
        let apigw = &session.clients.apigateway;
        let read = async {
            match crate::resources::api::stage::find_api(apigw, &session.names.api()).await? {
                Some(api) => crate::resources::api::stage::read(apigw, &api).await,
                None => Ok(None),
            }
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), read).await {
            Ok(Ok(Some(t))) => {
                lines.push(format!("traffic: {}", super::status::bar(&t)));
                if let Some(c) = &t.canary {
                    lines.push(format!(
                        "roll back: tapctl shift --suffix {suffix} --to {} --weight 0    promote: tapctl shift --suffix {suffix} --to {} --weight 100",
                        c.color, c.color
                    ));
                }
            }
            Ok(Ok(None)) => lines.push("traffic: no stage yet".into()),
            _ => lines.push(format!("traffic: could not be read in 5s; `tapctl status --suffix {suffix}` shows it")),
        }
        if let Command::Shift(a) = command {
            lines.push(format!(
                "resume: tapctl shift --suffix {suffix} --to {} {}",
                a.to,
                match (&a.steps, a.weight) {
                    (Some(s), _) => format!("--steps {}", s.iter().map(i64::to_string).collect::<Vec<_>>().join(",")),
                    (None, Some(w)) => format!("--weight {w}"),
                    _ => String::new(),
                }
            ));
        }
    }
    Error::Interrupted(lines.join("\n"))
}
