//! Command-line definitions only: no behaviour lives here. `commands::run` turns these into work.
//!
//! Each command flattens only the option groups that apply to it (config.rs): `build --help`
//! lists no stack options, `status --help` no lock timeout. Options go after the command name.

use crate::config::{LockArgs, OutputArgs, RunArgs, StackOverrides, TargetArgs};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "tapctl",
    version,
    about = "Provision and operate the card-payment stack on AWS, with zero downtime and PCI DSS controls",
    long_about = "tapctl creates, repairs, inspects and removes the payment stack (KMS key, VPC, and the \
layers built on them) by calling the AWS SDK directly. Every command is idempotent and may be \
killed at any moment and run again.",
    after_help = "Examples:\n  tapctl up --suffix qa\n  tapctl use qa\n  tapctl plan --detailed-exitcode\n  \
tapctl shift --to green --weight 10\n  tapctl status\n  tapctl destroy\n\n\
Which stack: --suffix (TAPCTL_SUFFIX), else the one chosen with `tapctl use`, else the only one in the \
state location (--state, TAPCTL_STATE; default ~/.local/state/tapctl)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the function packages are.
#[derive(Debug, Clone, Args)]
pub struct PackagesArgs {
    /// The Lambda packages `up` deploys: the directory `tapctl build` writes (manifest.json and
    /// one zip per function).
    #[arg(long, env = "TAPCTL_PACKAGES", default_value = "target/lambda/x86_64")]
    pub packages: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or repair the whole stack, idempotently.
    #[command(after_help = "Example:\n  tapctl up --suffix qa\n\nCreates what is missing, repairs what drifted \
(a deleted route, a removed tag), adopts what exists without a state, and prints what it did. A setting \
given once (--vpc-cidr, --db-max-acu…) is recorded when the run applies it; later runs keep it.")]
    Up(UpArgs),

    /// Show what `up` would change (or, with --destroy, what `destroy` would remove), changing nothing.
    #[command(after_help = "Examples:\n  tapctl plan --detailed-exitcode\n  tapctl plan --destroy\n\n\
With --detailed-exitcode: 0 when there is nothing to do, 2 when there are changes, 1 on error. \
Reads without taking the stack's lock.")]
    Plan(PlanArgs),

    /// Every resource, whether it exists as recorded, who gets the traffic, and the alarms.
    #[command(after_help = "Examples:\n  tapctl status\n  tapctl status --wide\n  tapctl status --watch 30s\n\n\
Exit codes: 0 healthy, 2 a resource is missing or drifted, 1 error. Reads without taking the stack's lock.")]
    Status(StatusArgs),

    /// Remove everything tapctl made for the stack, in reverse dependency order.
    #[command(after_help = "Example:\n  tapctl destroy --suffix qa --yes\n\nAsks for confirmation on a terminal \
unless --yes; refuses without a terminal and without --yes. `tapctl plan --destroy` lists what it removes. \
A second destroy is a successful no-op.\n\
Lost the state file? `tapctl destroy --suffix qa --yes --discover` finds everything by its tags.")]
    Destroy(DestroyArgs),

    /// Move live traffic between the blue and green aliases (API Gateway canary on the stage).
    #[command(
        visible_alias = "shift-traffic",
        after_help = "Examples:\n  tapctl shift --to green --weight 10 --watch 10m\n  \
tapctl shift --to green --steps 10,50,100 --interval 5m\n  tapctl shift --to green --weight 0\n\n\
--weight 1-99 sends that share of requests to the colour through a canary on the stage; 100 promotes it \
(the stage variable lambdaAlias becomes the colour, the canary is removed); 0 removes the canary (rollback).\n\
While baking (--watch, or between --steps), an alarm of the target colour or of the API in ALARM rolls the \
canary back and exits 1. Refused with exit 2, changing nothing: a weight outside 0-100, an unknown colour, \
a colour whose aliases are missing, a colour whose alarms already fire (unless --force), a shift towards a \
colour while a canary towards the other is live."
    )]
    Shift(ShiftArgs),

    /// A recovery drill: restore the transactions table and the Aurora cluster to new resources.
    #[command(after_help = "Examples:\n  tapctl restore --suffix qa\n  tapctl restore --suffix qa --point-in-time \
2026-12-01T03:00:00Z\n  tapctl restore --suffix qa --cleanup\n\nRestores to new resources beside the live ones \
(transactions-<suffix>-drill-<YYYYMMDDHHMM>, payments-<suffix>-drill-<YYYYMMDDHHMM> with one db.serverless instance), \
tagged tap:drill, and waits until they can be used. A re-run finishes the drill in progress; --cleanup removes every \
drill of the stack; destroy removes them too.")]
    Restore(RestoreArgs),

    /// The stack's outputs (API URL, function names, …) as the last `up` recorded them.
    #[command(after_help = "Examples:\n  tapctl outputs\n  tapctl outputs api_url\n  tapctl outputs --json")]
    Outputs(OutputsArgs),

    /// Choose the stack later commands work on when --suffix is not given.
    #[command(after_help = "Example:\n  tapctl use qa\n\nLike `terraform workspace select`: remembered in the \
state location, per user. `tapctl list` shows the stacks.")]
    Use(UseArgs),

    /// The stacks in the state location, with the current one marked.
    #[command(after_help = "Example:\n  tapctl list --json")]
    List(ListArgs),

    /// A function's logs from CloudWatch Logs, rendered from its JSON lines.
    #[command(after_help = "Examples:\n  tapctl logs process --since 15m\n  tapctl logs validate --follow")]
    Logs(LogsArgs),

    /// Serve the stack's REST API on 127.0.0.1 as API Gateway would, running the functions here.
    #[command(after_help = "Examples:\n  tapctl local --suffix qa --port 8080\n  \
tapctl local --suffix qa --database 'postgres://127.0.0.1:5432/?sslrootcert=/tmp/ca.pem'\n\n\
Reads the routes, the validator and model, the stage (its variable, canary and throttling), the aliases \
and their invoke permissions from the account, re-reading them every second, so a `shift` or an `up` \
shows within a second. Requests must be SigV4-signed (service execute-api) with the credentials tapctl \
uses. Each version runs from the package in --packages whose CodeSha256 Lambda reports for it. Each \
response carries x-tapctl-colour and x-tapctl-version. Runs until interrupted.")]
    Local(LocalArgs),

    /// Build the functions as Lambda packages: `bootstrap` for provided.al2023, zipped reproducibly.
    #[command(after_help = "Examples:\n  tapctl build\n  tapctl build --arch arm64 --json\n\nCross-compiles with \
cargo-zigbuild (scripts/setup-tools installs it) against glibc 2.34 and writes target/lambda/<arch>/<function>.zip \
and manifest.json. The same source gives byte-identical zips (the same CodeSha256). Needs no AWS credentials.")]
    Build(BuildArgs),

    /// Print the stack's data-flow graph: what each resource reads, and what it is ordered after.
    #[command(after_help = "Examples:\n  tapctl graph\n  tapctl graph --format dot | dot -Tsvg > stack.svg\n\n\
Each resource's dependencies are derived from the outputs it reads (solid edges, labelled with the keys); \
edges that only order things are dashed and labelled with their reason. Needs no AWS credentials.")]
    Graph(GraphArgs),

    /// tapctl's version, and the state and output schema versions it speaks.
    #[command(after_help = "Example:\n  tapctl version --json")]
    Version(VersionArgs),

    /// A completion script for your shell.
    #[command(
        after_help = "Examples:\n  tapctl completions bash > ~/.local/share/bash-completion/completions/tapctl\n  \
tapctl completions zsh > ~/.zfunc/_tapctl"
    )]
    Completions(CompletionsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// One block per resource, dependencies first.
    Text,
    /// Graphviz DOT.
    Dot,
}

#[derive(Debug, Clone, Args)]
pub struct GraphArgs {
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// Intel/AMD (the default).
    #[value(name = "x86_64")]
    X86_64,
    /// Graviton: cheaper per millisecond; needs the aarch64-unknown-linux-gnu standard library.
    #[value(name = "arm64")]
    Arm64,
}

/// How `tapctl build` compiles the functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuildProfile {
    /// Optimised and stripped, reproducible: what ships to Lambda (the default).
    Lambda,
    /// Unoptimised, for the emulator and the demo: compiled in one cargo invocation with tapctl
    /// itself, so a cold machine compiles the AWS SDK once, not once per profile. Larger, slower
    /// bootstraps; `up` on a real account refuses them.
    Dev,
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Lambda architecture.
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: Arch,
    /// lambda: what ships; dev: quick to build from a cold machine, for the emulator only.
    #[arg(long, value_enum, default_value = "lambda")]
    pub profile: BuildProfile,
    /// The tapctl workspace holding functions/.
    #[arg(long, default_value = ".")]
    pub source: PathBuf,
    /// Where the zips and manifest.json go. Default: <source>/target/lambda/<arch>, or
    /// <source>/target/lambda-dev/<arch> for --profile dev.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Allow replacing a resource whose immutable settings changed (refused otherwise).
    #[arg(long)]
    pub allow_replace: bool,

    /// Build the function packages first (`tapctl build` of this workspace into --packages),
    /// then deploy them.
    #[arg(long)]
    pub build: bool,

    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub packages: PackagesArgs,
    #[command(flatten)]
    pub stack: StackOverrides,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub use crate::traffic::Color;

#[derive(Debug, Args)]
pub struct ShiftArgs {
    /// The colour to send traffic to.
    #[arg(long, value_enum)]
    pub to: Color,

    /// Percent of requests for that colour: 0 (remove the canary) to 100 (promote).
    #[arg(long, allow_negative_numbers = true, required_unless_present = "steps", conflicts_with = "steps")]
    pub weight: Option<i64>,

    /// A progression of weights, each 1-100 and increasing, e.g. 10,50,100; baked for --interval
    /// between steps.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, requires = "interval")]
    pub steps: Option<Vec<i64>>,

    /// Bake time between --steps (e.g. 5m, 90s).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub interval: Option<std::time::Duration>,

    /// After setting --weight, watch the alarms this long (e.g. 10m) and roll back if one fires.
    #[arg(long, value_parser = crate::config::parse_duration, conflicts_with = "steps")]
    pub watch: Option<std::time::Duration>,

    /// How often the alarms are read while baking.
    #[arg(long, value_parser = crate::config::parse_duration, default_value = "15s")]
    pub poll: std::time::Duration,

    /// Move traffic even though an alarm of the target colour already fires.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// What `destroy` would remove, instead of what `up` would change.
    #[arg(long)]
    pub destroy: bool,

    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub packages: PackagesArgs,
    #[command(flatten)]
    pub stack: StackOverrides,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Also show each resource's ids (the JSON always has them).
    #[arg(long)]
    pub wide: bool,

    /// Show the status again every DURATION (e.g. 30s) until interrupted.
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub watch: Option<std::time::Duration>,

    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub packages: PackagesArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The instant to restore to (RFC 3339, e.g. 2026-12-01T03:00:00Z): not in the future, within
    /// the last day (the Aurora cluster's automated backups). Default: the latest restorable time.
    #[arg(long, value_name = "TIME", conflicts_with = "cleanup")]
    pub point_in_time: Option<String>,

    /// Remove every drill resource of the stack (found by its tags) instead, waiting until gone.
    #[arg(long)]
    pub cleanup: bool,

    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Ignore the state file and find everything by its tags (EnvironmentSuffix and
    /// tap:resource): for a lost or damaged state.
    #[arg(long)]
    pub discover: bool,

    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct OutputsArgs {
    /// Print only this output's value (e.g. api_url), for scripts.
    pub name: Option<String>,

    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct UseArgs {
    /// The stack's suffix.
    pub suffix: String,

    /// The state location (see `tapctl up --help`).
    #[arg(long, visible_alias = "state-dir", env = "TAPCTL_STATE", value_name = "DIR|S3_URL")]
    pub state: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The state location (see `tapctl up --help`).
    #[arg(long, visible_alias = "state-dir", env = "TAPCTL_STATE", value_name = "DIR|S3_URL")]
    pub state: Option<String>,

    /// AWS region (only for an s3:// state location).
    #[arg(long)]
    pub region: Option<String>,

    /// Send every AWS call to this endpoint (only for an s3:// state location).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,

    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The function: validate, fraud-check, process or rotate-secret.
    pub function: String,

    /// How far back to start (e.g. 15m, 2h).
    #[arg(long, value_parser = crate::config::parse_duration, default_value = "10m")]
    pub since: std::time::Duration,

    /// Keep printing new events until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,

    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// The port on 127.0.0.1 (0: any free port, printed when serving).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// A PostgreSQL the functions reach instead of the endpoints in Parameter Store (which are
    /// not reachable from this machine on the emulator): postgres://HOST:PORT[/?sslrootcert=CA].
    #[arg(long, value_parser = crate::config::parse_local_database)]
    pub database: Option<crate::local::server::Database>,

    /// Package folders (`tapctl build` outputs) holding each served version's code; repeatable.
    #[arg(long = "packages", env = "TAPCTL_PACKAGES", default_value = "target/lambda/x86_64", value_delimiter = ',')]
    pub packages: Vec<PathBuf>,

    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
