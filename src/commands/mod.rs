//! The verbs. Each is thin: validate, open the state, build the stack, hand it to the engine,
//! report. Everything they share — the session and the per-node context — is here.

pub mod build;
pub mod destroy;
pub mod logs;
pub mod plan;
pub mod report;
pub mod restore;
pub mod shift;
pub mod stacks;
pub mod status;
pub mod up;

use crate::aws::{self, Clients};
use crate::cli::{Cli, Command};
use crate::config::{
    self, LockArgs, OutputArgs, RunArgs, RunConfig, Selection, StackConfig, StackOverrides, StateLocation, TargetArgs,
};
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
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The verbs that work on one stack's state and resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Up,
    Plan,
    Status,
    Destroy,
    Shift,
    Restore,
}

impl Verb {
    pub fn name(self) -> &'static str {
        match self {
            Verb::Up => "up",
            Verb::Plan => "plan",
            Verb::Status => "status",
            Verb::Destroy => "destroy",
            Verb::Shift => "shift",
            Verb::Restore => "restore",
        }
    }

    /// Readers take no lock: they read a snapshot and may run beside a writer.
    fn writes(self) -> bool {
        !matches!(self, Verb::Plan | Verb::Status)
    }
}

/// What a stack command was given, whichever command it is: the option groups it flattens, and
/// the defaults of those it does not.
pub struct Invocation<'a> {
    pub verb: Verb,
    pub target: &'a TargetArgs,
    pub output: &'a OutputArgs,
    pub run: RunArgs,
    pub lock: LockArgs,
    pub packages: Option<&'a PathBuf>,
    pub stack: StackOverrides,
}

impl<'a> Invocation<'a> {
    fn of(command: &'a Command) -> Option<Invocation<'a>> {
        let inv = |verb,
                   target,
                   output,
                   run: Option<&RunArgs>,
                   lock: Option<&LockArgs>,
                   packages,
                   stack: Option<&StackOverrides>| {
            Invocation {
                verb,
                target,
                output,
                run: run.cloned().unwrap_or_default(),
                lock: lock.cloned().unwrap_or_default(),
                packages,
                stack: stack.cloned().unwrap_or_default(),
            }
        };
        Some(match command {
            Command::Up(a) => inv(
                Verb::Up,
                &a.target,
                &a.output,
                Some(&a.run),
                Some(&a.lock),
                Some(&a.packages.packages),
                Some(&a.stack),
            ),
            Command::Plan(a) => {
                inv(Verb::Plan, &a.target, &a.output, Some(&a.run), None, Some(&a.packages.packages), Some(&a.stack))
            }
            Command::Status(a) => {
                inv(Verb::Status, &a.target, &a.output, Some(&a.run), None, Some(&a.packages.packages), None)
            }
            Command::Destroy(a) => inv(Verb::Destroy, &a.target, &a.output, Some(&a.run), Some(&a.lock), None, None),
            Command::Shift(a) => inv(Verb::Shift, &a.target, &a.output, None, Some(&a.lock), None, None),
            Command::Restore(a) => inv(Verb::Restore, &a.target, &a.output, Some(&a.run), Some(&a.lock), None, None),
            _ => return None,
        })
    }
}

/// Everything one command run holds: validated config, clients, the state (locked for writers,
/// a snapshot for readers).
pub struct Session<'a> {
    pub verb: Verb,
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
    /// The state as it was when the run began (what "recorded" means for adopt and settings).
    pub recorded: State,
    pub stack: Stack,
    /// The stack's dependency graph, built (and checked for cycles) once per run.
    pub graph: crate::engine::Graph,
    pub progress: Progress,
    /// Outputs of the nodes visited so far in this run, for their dependants.
    pub outputs: Mutex<BTreeMap<String, Outputs>>,
    /// Reads every node of this run shares.
    pub memo: Arc<RunMemo>,
    /// A reader's note that a writer holds the lock (who, doing what).
    pub lock_holder: Option<crate::state::LockHolder>,
}

pub async fn run(cli: Cli) -> Result<u8, Error> {
    crate::interrupt::install();
    // Everything the user typed is checked before the state is touched or AWS is called.
    match &cli.command {
        Command::Build(args) => return build::run(args, args.json),
        Command::Graph(args) => {
            let stack = crate::stack::Stack::payments();
            let text = match args.format {
                crate::cli::GraphFormat::Text => stack.describe()?,
                crate::cli::GraphFormat::Dot => stack.dot()?,
            };
            crate::out!("{text}");
            return Ok(0);
        }
        Command::Version(args) => return Ok(stacks::version(args)),
        Command::Completions(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(args.shell, &mut command, "tapctl", &mut buf);
            crate::out!("{}", String::from_utf8_lossy(&buf));
            return Ok(0);
        }
        Command::Use(args) => return stacks::use_stack(args).await,
        Command::List(args) => return stacks::list(args).await,
        Command::Outputs(args) => return stacks::outputs(args).await,
        Command::Logs(args) => return stacks::logs(args).await,
        Command::Local(args) => return crate::local::run(args).await,
        _ => {}
    }
    let Some(inv) = Invocation::of(&cli.command) else { return Ok(0) };
    let selection = Selection::from_args(inv.target, config::region_from_env())?;
    config::validate_stack_args(&inv.stack)?;
    // The certificate's region is the stack's: checked here, where the region is known, before any call.
    config::validate_domain_flags(
        inv.stack.domain.as_deref(),
        inv.stack.certificate_arn.as_deref(),
        Some(&selection.region),
    )?;
    // The copy region must differ from the stack's: known here, before any call.
    config::validate_backup_copy_region(inv.stack.backup_copy_region.as_deref(), Some(&selection.region))?;
    if let Command::Shift(args) = &cli.command {
        shift::weights(args)?;
    }
    if let Command::Restore(args) = &cli.command {
        restore::point_in_time(args)?;
    }
    let sdk = aws::sdk_config(&selection.region, selection.endpoint_url.as_deref()).await;
    let clients = Clients::new(&sdk, selection.endpoint_url.is_some());
    let suffix = stacks::resolve_suffix(&selection, &clients.s3).await?;
    let run = RunConfig::new(selection, suffix, &inv.run, inv.output, &inv.lock)?;
    if let Command::Up(args) = &cli.command {
        if args.build {
            let build_args = crate::cli::BuildArgs {
                arch: crate::cli::Arch::X86_64,
                profile: crate::cli::BuildProfile::Lambda,
                source: ".".into(),
                out: Some(args.packages.packages.clone()),
                json: false,
            };
            build::build(&build_args)?;
        }
    }
    let packages = load_packages(&inv, run.endpoint_url.is_some())?;
    if let Command::Destroy(args) = &cli.command {
        if !args.yes {
            destroy::confirm(&run)?;
        }
    }
    if let Command::Status(args) = &cli.command {
        if let Some(every) = args.watch {
            return status::watch(&cli, &inv, &run, &clients, packages, every).await;
        }
    }
    open_and_run(&cli, &inv, run, clients, packages).await
}

/// Opens the stack's state (locked for a writer, a snapshot for a reader), runs the command,
/// and lets go of the lock whatever happened.
pub async fn open_and_run(
    cli: &Cli,
    inv: &Invocation<'_>,
    run: RunConfig,
    clients: Clients,
    packages: Option<Arc<Packages>>,
) -> Result<u8, Error> {
    let started = Instant::now();
    let verb = inv.verb;
    let store: Box<dyn Store> = match (&run.location, verb.writes()) {
        (StateLocation::Local(dir), true) => {
            Box::new(LocalStore::lock(dir, &run.suffix, verb.name(), run.lock_timeout).await?)
        }
        (StateLocation::Local(dir), false) => Box::new(LocalStore::snapshot(dir, &run.suffix)),
        (StateLocation::Remote(r), true) => {
            Box::new(S3Store::lock(clients.s3.clone(), r.clone(), &run.suffix, verb.name(), run.lock_timeout).await?)
        }
        (StateLocation::Remote(r), false) => Box::new(S3Store::snapshot(clients.s3.clone(), r.clone(), &run.suffix)),
    };
    // From here the lock is held: a signal is kept for the run's own report, and the lock released.
    let _deferred = crate::interrupt::defer();
    let (store, state) = StateStore::open(store, &run.suffix, &run.region).await?;
    if verb == Verb::Status && state.nodes.is_empty() && state.settings.is_none() {
        let known = stacks::known(&run.location, &clients.s3).await.unwrap_or_default();
        store.release().await;
        return Err(stacks::unknown(&run.suffix, &run.location, &known));
    }
    let result = run_opened(cli, run, clients, &store, state, started, packages).await;
    store.release().await;
    result
}

async fn run_opened(
    cli: &Cli,
    run: RunConfig,
    clients: Clients,
    store: &StateStore,
    state: State,
    started: Instant,
    packages: Option<Arc<Packages>>,
) -> Result<u8, Error> {
    let inv = Invocation::of(&cli.command).ok_or_else(|| Error::Refused("not a stack command".into()))?;
    let mut config = StackConfig::resolve(&run, &inv.stack, state.settings.as_ref())?;
    config.packages = packages;
    let account = clients.account_id().await.map_err(|e| unreachable(e, run.endpoint_url.as_deref(), &run.region))?;
    if let Some(recorded) = &state.account_id {
        if *recorded != account {
            return Err(Error::State {
                message: format!(
                    "the state of suffix '{}' belongs to account {recorded}, but the credentials are for account {account}",
                    run.suffix
                ),
                hint: Some("use the credentials of the account the stack lives in, or another --state".into()),
            });
        }
    }
    let live = std::io::stderr().is_terminal() && !run.no_progress;
    let mut waits = WaitLimits::default();
    if let Some(max) = run.max_wait {
        waits.cap(max);
    }
    let lock_holder = store.holder().await;
    let stack = Stack::payments();
    let session = Session {
        verb: inv.verb,
        ignore_recorded: matches!(&cli.command, Command::Destroy(d) if d.discover),
        waits,
        started,
        save_lock: tokio::sync::Mutex::new(()),
        names: Arc::new(Names::new(&run.suffix, &run.region, Some(&account))),
        config: Arc::new(config),
        clients,
        store,
        recorded: state.clone(),
        state: Mutex::new(state),
        graph: stack.graph().map_err(crate::stack::invalid)?,
        stack,
        progress: Progress::new(live),
        outputs: Mutex::new(BTreeMap::new()),
        memo: Arc::new(RunMemo::default()),
        lock_holder,
        run,
    };
    if let Some(h) = &session.lock_holder {
        session.progress.println(&format!(
            "note: {} holds the lock of '{}' and may be changing it; this reads the state as last saved",
            h.describe(),
            session.run.suffix
        ));
    }
    let work = async {
        match &cli.command {
            Command::Up(args) => up::run(&session, args).await,
            Command::Plan(args) if args.destroy => destroy::plan(&session, args.detailed_exitcode).await,
            Command::Plan(args) => plan::run(&session, args).await,
            Command::Status(args) => status::run(&session, args).await,
            Command::Shift(args) => shift::run(&session, args).await,
            Command::Destroy(_) => destroy::run(&session).await,
            Command::Restore(args) => restore::run(&session, args).await,
            _ => Ok(0),
        }
    };
    tokio::select! {
        result = work => result,
        signal = interrupted() => Err(stacks::interrupted_report(&session, &cli.command, signal).await),
    }
}

/// A first call that got no answer names where it went, and what to check.
fn unreachable(e: crate::aws::AwsError, endpoint: Option<&str>, region: &str) -> Error {
    if !e.transient {
        return Error::Aws(e);
    }
    let place = match endpoint {
        Some(url) => format!("the endpoint {url} (--endpoint-url / AWS_ENDPOINT_URL)"),
        None => format!("AWS STS in {region} (https://sts.{region}.amazonaws.com)"),
    };
    Error::State {
        message: format!("cannot reach {place}: {}", e.message),
        hint: Some(match endpoint {
            Some(_) => "check that the emulator runs and the URL is right, or unset AWS_ENDPOINT_URL for AWS".into(),
            None => "check the network, a proxy (HTTPS_PROXY), and that the region exists".into(),
        }),
    }
}

pub use crate::interrupt::interrupted;

/// The function packages: required by `up`, compared by `plan` and `status` when present, never
/// needed to shift or destroy. Read and checked here, before the first AWS call.
fn load_packages(inv: &Invocation<'_>, emulated: bool) -> Result<Option<Arc<Packages>>, Error> {
    let Some(dir) = inv.packages else { return Ok(None) };
    let wanted = match inv.verb {
        Verb::Up => true,
        Verb::Plan | Verb::Status => dir.join("manifest.json").exists(),
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
    if inv.verb == Verb::Up && packages.profile != "lambda" && !emulated {
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

    /// The resources in the order the graph walks them (dependencies first).
    pub fn order(&self) -> Vec<String> {
        self.graph.topological_order().unwrap_or_default()
    }

    /// Whether the state knew the node when the run began.
    pub fn was_recorded(&self, node: &str) -> bool {
        !self.ignore_recorded && self.recorded.nodes.contains_key(node)
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
        let took = std::time::Duration::from_secs_f64(c["seconds"].as_f64().unwrap_or(0.0));
        let took =
            if took.as_secs() < 60 { format!("{:.1}s", took.as_secs_f64()) } else { config::human_duration(took) };
        format!("{} AWS calls, {} retried, {took}", c["aws_calls"], c["retried_attempts"])
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

/// Prints every failure and skip at the end of a run; returns (failed, skipped). A skipped node
/// did not fail: a dependency did, and the error printed for it is the one to act on.
pub fn report_failures<T>(progress: &Progress, outcomes: &BTreeMap<String, Outcome<T>>) -> (usize, usize) {
    let (mut failed, mut skipped) = (0, 0);
    for (node, outcome) in outcomes {
        match outcome {
            Outcome::Failed(d) => {
                failed += 1;
                progress.println(&format!("error: {d}"));
            }
            Outcome::Skipped { because } => {
                skipped += 1;
                progress.println(&format!("skipped: {node}: not attempted because {because} failed"));
            }
            Outcome::Done(_) => {}
        }
    }
    (failed, skipped)
}
