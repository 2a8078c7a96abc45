//! The verbs. Each is thin: validate, open the state, build the stack, hand it to the engine,
//! report. Everything they share — the session and the per-node context — is here.

pub mod build;
pub mod destroy;
pub mod plan;
pub mod shift;
pub mod status;
pub mod up;

use crate::aws::{self, Clients};
use crate::cli::{Cli, Command};
use crate::config::{self, RunConfig, StackConfig};
use crate::engine::progress::NodeProgress;
use crate::engine::{Diagnostic, Outcome, Progress};
use crate::error::Error;
use crate::names::Names;
use crate::package::Packages;
use crate::resources::Outputs;
use crate::resources::{Ctx, Input, ResourceError, RunMemo, WaitLimits};
use crate::stack::{Stack, OPERATOR_OUTPUTS};
use crate::state::{LocalStore, S3Store, State, StateStore, Store};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Everything one command run holds: validated config, clients, the locked state.
pub struct Session<'a> {
    pub run: RunConfig,
    pub config: Arc<StackConfig>,
    pub names: Arc<Names>,
    pub clients: Clients,
    pub store: &'a StateStore,
    /// Serialises saves, so the last snapshot taken is the last one written.
    save_lock: tokio::sync::Mutex<()>,
    /// `destroy --discover`: find everything by tags, as if there were no state.
    pub ignore_recorded: bool,
    pub waits: WaitLimits,
    pub started: Instant,
    pub state: Mutex<State>,
    pub stack: Stack,
    /// The stack's dependency graph, built (and checked for cycles) once per run.
    pub graph: crate::engine::Graph,
    pub progress: Progress,
    /// Outputs of the nodes visited so far in this run, for their dependants.
    pub outputs: Mutex<BTreeMap<String, Outputs>>,
    /// Reads every node of this run shares.
    pub memo: Arc<RunMemo>,
}

pub async fn run(cli: Cli) -> Result<u8, Error> {
    // Everything the user typed is checked before the state is touched or AWS is called.
    // Building needs neither AWS nor a suffix.
    if let Command::Build(args) = &cli.command {
        return build::run(args, cli.global.run.json);
    }
    if let Command::Graph(args) = &cli.command {
        let stack = crate::stack::Stack::payments();
        let text = match args.format {
            crate::cli::GraphFormat::Text => stack.describe()?,
            crate::cli::GraphFormat::Dot => stack.dot()?,
        };
        print!("{text}");
        return Ok(0);
    }
    let run = RunConfig::from_args(&cli.global.run, config::region_from_env())?;
    config::validate_stack_args(&cli.global.stack)?;
    if let Command::Shift(args) = &cli.command {
        shift::weights(args)?;
    }
    if let Command::Up(args) = &cli.command {
        if args.build {
            let build_args = crate::cli::BuildArgs {
                arch: crate::cli::Arch::X86_64,
                profile: crate::cli::BuildProfile::Lambda,
                source: ".".into(),
                out: Some(cli.global.packages.clone()),
            };
            build::build(&build_args)?;
        }
    }
    let command_name = match &cli.command {
        Command::Up(_) => "up",
        Command::Plan(_) => "plan",
        Command::Status => "status",
        Command::Shift(_) => "shift",
        Command::Destroy(_) => "destroy",
        Command::Build(_) => "build",
        Command::Graph(_) => "graph",
    };
    let packages = load_packages(&cli)?;
    if let Command::Destroy(args) = &cli.command {
        if !args.yes {
            destroy::confirm(&run)?;
        }
    }
    let started = Instant::now();
    let sdk = aws::sdk_config(&run.region, run.endpoint_url.as_deref()).await;
    let clients = Clients::new(&sdk, run.endpoint_url.is_some());
    let locked: Box<dyn Store> = match &run.remote_state {
        None => Box::new(LocalStore::lock(&run.state_dir, &run.suffix, command_name)?),
        Some(remote) => Box::new(S3Store::lock(clients.s3.clone(), remote.clone(), &run.suffix, command_name).await?),
    };
    let (store, state) = StateStore::open(locked, &run.suffix, &run.region).await?;
    let result = run_locked(cli, run, clients, &store, state, started, packages).await;
    store.release().await;
    result
}

async fn run_locked(
    cli: Cli,
    run: RunConfig,
    clients: Clients,
    store: &StateStore,
    state: State,
    started: Instant,
    packages: Option<Arc<Packages>>,
) -> Result<u8, Error> {
    let mut config = StackConfig::resolve(&run, &cli.global.stack, state.settings.as_ref())?;
    config.packages = packages;
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
    let mut waits = WaitLimits::default();
    if let Some(max) = run.max_wait {
        waits.cap(max);
    }
    let stack = Stack::payments();
    let session = Session {
        ignore_recorded: matches!(&cli.command, Command::Destroy(d) if d.discover),
        waits,
        started,
        save_lock: tokio::sync::Mutex::new(()),
        names: Arc::new(Names::new(&run.suffix, &run.region, Some(&account))),
        config: Arc::new(config),
        clients,
        store,
        state: Mutex::new(state),
        graph: stack.graph().map_err(crate::stack::invalid)?,
        stack,
        progress: Progress::new(live),
        outputs: Mutex::new(BTreeMap::new()),
        memo: Arc::new(RunMemo::default()),
        run,
    };
    match cli.command {
        Command::Up(args) => up::run(&session, &args).await,
        Command::Plan(args) => plan::run(&session, &args).await,
        Command::Status => status::run(&session).await,
        Command::Shift(args) => shift::run(&session, &args).await,
        Command::Destroy(_) => destroy::run(&session).await,
        Command::Build(args) => build::run(&args, session.run.json),
        Command::Graph(_) => Ok(0),
    }
}

/// The function packages: required by `up`, compared by `plan` and `status` when present, never
/// needed to shift or destroy. Read and checked here, before the first AWS call.
fn load_packages(cli: &Cli) -> Result<Option<Arc<Packages>>, Error> {
    let dir = &cli.global.packages;
    let wanted = match &cli.command {
        Command::Up(_) => true,
        Command::Plan(_) | Command::Status => dir.join("manifest.json").exists(),
        _ => false,
    };
    if !wanted {
        return Ok(None);
    }
    let packages = Packages::load(dir, &crate::names::FUNCTIONS).map_err(|e| {
        Error::invalid(
            "--packages",
            format!("{e}; run `tapctl build` first, or point --packages (TAPCTL_PACKAGES) at its output"),
        )
    })?;
    // Without an endpoint the calls go to AWS, which gets what ships, never the demo's build.
    let deploys = matches!(cli.command, Command::Up(_));
    if deploys && packages.profile != "lambda" && cli.global.run.endpoint_url.is_none() {
        return Err(Error::invalid(
            "--packages",
            format!(
                "{} holds {}-profile packages (`tapctl build --profile dev`: unoptimised, for the emulator \
                 only) and no --endpoint-url names an emulator; build what ships with `tapctl build`",
                dir.display(),
                packages.profile
            ),
        ));
    }
    Ok(Some(Arc::new(packages)))
}

impl Session<'_> {
    pub fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The context a node runs with: its dependencies' outputs (from this run), its own
    /// recorded outputs (from the state), and a progress line.
    pub fn ctx(&self, node: &'static str, reads: &'static [Input], doing: &str) -> Ctx {
        let inputs = {
            let outputs = self.outputs.lock().unwrap_or_else(|p| p.into_inner());
            reads.iter().filter_map(|r| outputs.get(r.node).map(|o| (r.node.to_string(), o.clone()))).collect()
        };
        let recorded =
            if self.ignore_recorded { None } else { self.lock_state().nodes.get(node).map(|n| n.outputs.clone()) };
        Ctx {
            clients: self.clients.clone(),
            config: self.config.clone(),
            names: self.names.clone(),
            node,
            reads,
            inputs,
            recorded,
            progress: self.progress.start(node, doing),
            waits: self.waits,
            run: self.memo.clone(),
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
    pub async fn record(&self, node: &str, outputs: Outputs) -> Result<(), Error> {
        let _saving = self.save_lock.lock().await;
        let snapshot = {
            let mut state = self.lock_state();
            state.record(node, outputs);
            state.clone()
        };
        self.store.save(&snapshot).await
    }

    pub async fn forget(&self, node: &str) -> Result<(), Error> {
        let _saving = self.save_lock.lock().await;
        let snapshot = {
            let mut state = self.lock_state();
            if state.nodes.remove(node).is_none() {
                return Ok(());
            }
            state.clone()
        };
        self.store.save(&snapshot).await
    }

    pub async fn save_state(&self) -> Result<(), Error> {
        let _saving = self.save_lock.lock().await;
        let snapshot = self.lock_state().clone();
        self.store.save(&snapshot).await
    }

    /// "12 AWS calls, 1 retried, 3.4s": the cost of the run, retries included.
    pub fn cost(&self) -> serde_json::Value {
        let stats = &self.clients.stats;
        serde_json::json!({
            "aws_calls": stats.operations.load(std::sync::atomic::Ordering::Relaxed),
            "retried_attempts": stats.retries(),
            "seconds": (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        })
    }

    pub fn cost_line(&self) -> String {
        let c = self.cost();
        format!("{} AWS calls, {} retried attempts, {}s", c["aws_calls"], c["retried_attempts"], c["seconds"])
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
