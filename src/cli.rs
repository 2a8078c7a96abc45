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
    /// Environment suffix carried by every resource name and tag (e.g. qa, pr-123).
    #[arg(long, global = true, env = "TAPCTL_SUFFIX")]
    pub suffix: Option<String>,

    /// AWS region. Default: AWS_REGION, AWS_DEFAULT_REGION, CDK_DEFAULT_REGION, then us-east-1.
    #[arg(long, global = true)]
    pub region: Option<String>,

    /// Directory holding <suffix>.json (state) and <suffix>.outputs.json.
    #[arg(long, global = true, default_value = "state")]
    pub state_dir: PathBuf,

    /// Send every AWS call to this endpoint (a local emulator in tests). Default: AWS_ENDPOINT_URL.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,

    /// How many resources may be worked on at once (1-64).
    #[arg(long, global = true, default_value_t = 8)]
    pub parallelism: usize,

    /// Machine-readable JSON on stdout (plan, status, and the summaries of up and destroy).
    #[arg(long, global = true)]
    pub json: bool,

    /// Plain progress lines instead of live spinners, even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// Give up any single wait (a NAT gateway becoming available, a resource being deleted)
    /// after this many seconds; a re-run resumes where it stopped. Default: each wait's own
    /// limit (15 minutes for a NAT gateway).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub max_wait: Option<u64>,

    /// Keep the state in S3 instead of --state-dir: s3://bucket/prefix. Locked with S3
    /// conditional writes, so a team can share one state.
    #[arg(long, global = true, value_name = "S3_URL")]
    pub state: Option<String>,

    /// The Lambda packages `up` deploys: the directory `tapctl build` writes (manifest.json and
    /// one zip per function).
    #[arg(long, global = true, env = "TAPCTL_PACKAGES", default_value = "target/lambda/x86_64")]
    pub packages: PathBuf,

    #[command(flatten)]
    pub stack: StackArgs,
}

/// Sizing and layout of the stack. Unset options keep the value recorded by the last `up`
/// of this suffix, else the documented default, so `plan` compares against what `up` built.
#[derive(Debug, Clone, Default, Args)]
pub struct StackArgs {
    /// IPv4 CIDR of the VPC, /16 to /23, in a private (RFC 1918) range. Default 10.0.0.0/16.
    /// Subnets are carved from it: three private /(n+2), three public and three database /(n+5).
    #[arg(long, global = true)]
    pub vpc_cidr: Option<String>,

    /// Value of the CostCenter tag on every resource. Default: payments.
    #[arg(long, global = true)]
    pub cost_center: Option<String>,

    /// Days a destroyed KMS key waits before AWS deletes it (7-30). Default 30.
    #[arg(long, global = true)]
    pub kms_deletion_window_days: Option<i32>,

    /// Days audit events are kept (365-3650; PCI DSS 10.5.1 asks for at least 12 months). Default 365.
    #[arg(long, global = true)]
    pub audit_retention_days: Option<i32>,

    /// Days CloudWatch keeps the functions' and the API's logs (a value CloudWatch accepts:
    /// 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    /// 2922, 3288, 3653). Default 365.
    #[arg(long, global = true)]
    pub log_retention_days: Option<i32>,

    /// Aurora Serverless v2 minimum capacity in ACUs (0-256, steps of 0.5). Default 0.5.
    #[arg(long, global = true)]
    pub db_min_acu: Option<f64>,

    /// Aurora Serverless v2 maximum capacity in ACUs (1-256, steps of 0.5, at least the minimum). Default 4.
    #[arg(long, global = true)]
    pub db_max_acu: Option<f64>,

    /// Aurora readers besides the writer (0-15), spread over the other AZs. Default 1.
    #[arg(long, global = true)]
    pub db_readers: Option<usize>,

    /// Aurora PostgreSQL engine version (major.minor, major 13-17). Default 16.6.
    #[arg(long, global = true)]
    pub db_engine_version: Option<String>,

    /// E-mail address subscribed to the alerts topic (optional; AWS asks it to confirm).
    #[arg(long, global = true)]
    pub alert_email: Option<String>,
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
