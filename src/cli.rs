//! Command-line definitions only: no behaviour lives here. `commands::run` turns these into work.

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
    after_help = "Examples:\n  tapctl up --suffix qa\n  tapctl plan --suffix qa --detailed-exitcode\n  \
tapctl status --suffix qa --json\n  tapctl destroy --suffix qa --yes"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after the command name.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    #[command(flatten)]
    pub run: crate::config::RunArgs,

    /// The Lambda packages `up` deploys: the directory `tapctl build` writes (manifest.json and
    /// one zip per function).
    #[arg(long, global = true, env = "TAPCTL_PACKAGES", default_value = "target/lambda/x86_64")]
    pub packages: PathBuf,

    #[command(flatten)]
    pub stack: crate::config::StackOverrides,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or repair the whole stack, idempotently.
    #[command(after_help = "Example:\n  tapctl up --suffix qa\n\nCreates what is missing, repairs what drifted \
(a deleted route, a removed tag), and prints what it created, updated and left unchanged.")]
    Up(UpArgs),

    /// Show what `up` would change, changing nothing.
    #[command(after_help = "Example:\n  tapctl plan --suffix qa --detailed-exitcode\n\nWith --detailed-exitcode: \
0 when there is nothing to do, 2 when there are changes, 1 on error.")]
    Plan(PlanArgs),

    /// Every resource with its id and whether it exists as recorded (ok / missing / drifted).
    #[command(after_help = "Example:\n  tapctl status --suffix qa --json")]
    Status,

    /// Remove everything tapctl made for the suffix, in reverse dependency order.
    #[command(after_help = "Example:\n  tapctl destroy --suffix qa --yes\n\nAsks for confirmation on a terminal \
unless --yes; refuses without a terminal and without --yes. A second destroy is a successful no-op.\n\
Lost the state file? `tapctl destroy --suffix qa --yes --discover` finds everything by its tags.")]
    Destroy(DestroyArgs),

    /// Move live traffic between the blue and green aliases (API Gateway canary on the stage).
    #[command(after_help = "Examples:\n  tapctl shift --suffix qa --to green --weight 10 --watch 10m\n  \
tapctl shift --suffix qa --to green --steps 10,50,100 --interval 5m\n  tapctl shift --suffix qa --to green --weight 0\n\n\
--weight 1-99 sends that share of requests to the colour through a canary on the stage; 100 promotes it \
(the stage variable lambdaAlias becomes the colour, the canary is removed); 0 removes the canary (rollback).\n\
While baking (--watch, or between --steps), an alarm of the target colour or of the API in ALARM rolls the \
canary back and exits 1. Refused with exit 2, changing nothing: a weight outside 0-100, an unknown colour, \
a colour whose aliases are missing, a shift towards a colour while a canary towards the other is live.")]
    Shift(ShiftArgs),

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
}

pub use crate::traffic::Color;

#[derive(Debug, Args)]
pub struct ShiftArgs {
    /// The colour to send traffic to.
    #[arg(long, value_enum)]
    pub to: Color,

    /// Percent of requests for that colour: 0 (remove the canary) to 100 (promote).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100), required_unless_present = "steps",
          conflicts_with = "steps")]
    pub weight: Option<u8>,

    /// A progression of weights, each 1-100 and increasing, e.g. 10,50,100; baked for --interval
    /// between steps.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u8).range(1..=100), requires = "interval")]
    pub steps: Option<Vec<u8>>,

    /// Bake time between --steps (e.g. 5m, 90s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub interval: Option<std::time::Duration>,

    /// After setting --weight, watch the alarms this long (e.g. 10m) and roll back if one fires.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "steps")]
    pub watch: Option<std::time::Duration>,

    /// How often the alarms are read while baking.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub poll: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
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
}
