//! The verbs. Each is thin: validate, open the state, build the stack, hand it to the engine,
//! report. Everything they share — the session and the per-node context — is here.

pub mod destroy;
pub mod plan;
pub mod status;
pub mod up;

use crate::aws::{self, Clients};
use crate::cli::{Cli, Command};
use crate::config::{self, RunConfig, StackConfig};
use crate::engine::progress::NodeProgress;
use crate::engine::{Diagnostic, Outcome, Progress};
use crate::error::Error;
use crate::names::Names;
use crate::resources::{Ctx, ResourceError, WaitLimits};
use crate::stack::{Stack, OPERATOR_OUTPUTS};
use crate::state::{Outputs, State, StateStore};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

/// Everything one command run holds: validated config, clients, the locked state.
pub struct Session {
    pub run: RunConfig,
    pub config: Arc<StackConfig>,
    pub names: Arc<Names>,
    pub clients: Clients,
    pub store: StateStore,
    pub state: Mutex<State>,
    pub stack: Stack,
    pub progress: Progress,
    /// Outputs of the nodes visited so far in this run, for their dependants.
    pub outputs: Mutex<BTreeMap<String, Outputs>>,
}

pub async fn run(cli: Cli) -> Result<u8, Error> {
    // Everything the user typed is checked before the state is touched or AWS is called.
    let run = RunConfig::from_args(&cli.global, config::region_from_env())?;
    config::validate_stack_args(&cli.global.stack)?;
    let command_name = match &cli.command {
        Command::Up(_) => "up",
        Command::Plan(_) => "plan",
        Command::Status => "status",
        Command::Destroy(_) => "destroy",
    };
    if let Command::Destroy(args) = &cli.command {
        if !args.yes {
            destroy::confirm(&run)?;
        }
    }
    let (store, state) = StateStore::open(&run.state_dir, &run.suffix, &run.region, command_name)?;
    let config = StackConfig::resolve(&run, &cli.global.stack, state.settings.as_ref())?;
    let sdk = aws::sdk_config(&run.region, run.endpoint_url.as_deref()).await;
    let clients = Clients::new(&sdk, run.endpoint_url.is_some());
    let account = clients.account_id().await?;
    if let Some(recorded) = &state.account_id {
        if *recorded != account {
            return Err(Error::State {
                message: format!(
                    "the state of suffix '{}' belongs to account {recorded}, but the credentials are for account {account}",
                    run.suffix
                ),
                hint: Some("use the credentials of the account the stack lives in, or another --state-dir".into()),
            });
        }
    }
    let live = std::io::stderr().is_terminal() && !run.no_progress;
    let session = Session {
        names: Arc::new(Names::new(&run.suffix, &run.region, Some(&account))),
        config: Arc::new(config),
        clients,
        store,
        state: Mutex::new(state),
        stack: Stack::payments(),
        progress: Progress::new(live),
        outputs: Mutex::new(BTreeMap::new()),
        run,
    };
    match cli.command {
        Command::Up(args) => up::run(&session, &args).await,
        Command::Plan(args) => plan::run(&session, &args).await,
        Command::Status => status::run(&session).await,
        Command::Destroy(_) => destroy::run(&session).await,
    }
}

impl Session {
    pub fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The context a node runs with: its dependencies' outputs (from this run), its own
    /// recorded outputs (from the state), and a progress line.
    pub fn ctx(&self, node: &'static str, deps: &[&str], doing: &str) -> Ctx {
        let inputs = {
            let outputs = self.outputs.lock().unwrap_or_else(|p| p.into_inner());
            deps.iter().filter_map(|d| outputs.get(*d).map(|o| (d.to_string(), o.clone()))).collect()
        };
        let recorded = self.lock_state().nodes.get(node).map(|n| n.outputs.clone());
        Ctx {
            clients: self.clients.clone(),
            config: self.config.clone(),
            names: self.names.clone(),
            node,
            inputs,
            recorded,
            progress: self.progress.start(node, doing),
            waits: WaitLimits::default(),
        }
    }

    pub fn node(&self, id: &str) -> Result<Arc<dyn crate::resources::Node>, Diagnostic> {
        self.stack.node(id).cloned().ok_or_else(|| Diagnostic {
            node: id.to_string(),
            code: Some("UnknownNode".into()),
            message: "the stack has no such node".into(),
            hint: None,
            retryable: false,
        })
    }

    pub fn publish_outputs(&self, node: &str, outputs: Outputs) {
        self.outputs.lock().unwrap_or_else(|p| p.into_inner()).insert(node.to_string(), outputs);
    }

    /// Records a node's outputs and saves the state at once, so a crash loses nothing.
    pub fn record(&self, node: &str, outputs: Outputs) -> Result<(), Error> {
        let mut state = self.lock_state();
        state.record(node, outputs);
        self.store.save(&state)
    }

    pub fn forget(&self, node: &str) -> Result<(), Error> {
        let mut state = self.lock_state();
        if state.nodes.remove(node).is_some() {
            self.store.save(&state)?;
        }
        Ok(())
    }

    /// The flat, operator-facing outputs from what the state records.
    pub fn operator_outputs(&self) -> Outputs {
        let state = self.lock_state();
        let mut out = Outputs::new();
        out.insert("suffix".into(), self.names.suffix.clone().into());
        out.insert("region".into(), self.config.region.clone().into());
        for (name, node, key) in OPERATOR_OUTPUTS {
            if let Some(v) = state.nodes.get(*node).and_then(|n| n.outputs.get(*key)) {
                out.insert(name.to_string(), v.clone());
            }
        }
        out
    }
}

/// A node failure as the engine reports it.
pub fn diagnostic(node: &str, e: ResourceError) -> Diagnostic {
    Diagnostic { node: node.to_string(), code: e.code, message: e.message, hint: e.hint, retryable: e.transient }
}

pub fn state_diagnostic(node: &str, e: Error) -> Diagnostic {
    Diagnostic {
        node: node.to_string(),
        code: Some("StateWriteFailed".into()),
        message: e.to_string(),
        hint: None,
        retryable: false,
    }
}

/// Finishes a node's progress line with its outcome.
pub fn close<T>(progress: NodeProgress, result: &Result<T, Diagnostic>, summary: impl FnOnce(&T) -> String) {
    match result {
        Ok(v) => progress.finish(&summary(v)),
        Err(d) => {
            progress.fail(&format!("{}{}", d.code.as_deref().map(|c| format!("[{c}] ")).unwrap_or_default(), d.message))
        }
    }
}

/// Prints every failure and skip at the end of a run; returns how many nodes did not finish.
pub fn report_failures<T>(progress: &Progress, outcomes: &BTreeMap<String, Outcome<T>>) -> usize {
    let mut failed = 0;
    for (node, outcome) in outcomes {
        match outcome {
            Outcome::Failed(d) => {
                failed += 1;
                progress.println(&format!("error: {d}"));
            }
            Outcome::Skipped { because } => {
                failed += 1;
                progress.println(&format!("skipped: {node}: not attempted because {because} failed"));
            }
            Outcome::Done(_) => {}
        }
    }
    failed
}

pub fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into()));
}
