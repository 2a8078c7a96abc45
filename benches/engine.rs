//! Benchmark of the engine (not a test: it asserts nothing, it measures).
//!
//!     cargo bench --profile dev --bench engine
//!
//! 1. Under the harness's timing model (`harness::PHASES`: NAT gateway, Aurora cluster and
//!    instances, Lambda in a VPC and its interfaces after a delete, DynamoDB table, each pending for
//!    its typical duration on AWS,
//!    played with 2 s standing for a minute, and with 5 s), `up` and `destroy` from empty at the
//!    default parallelism and at 1, against the critical path the graph implies: the longest chain of
//!    modelled waits through the dependency graph (`tapctl graph`); for a destroy, through the
//!    teardown graph, where the release of Lambda's interfaces is the modelled wait.
//! 2. With 40 ms added to every AWS call and no pending states, `up` and `destroy` from empty at
//!    `--parallelism 8` and at 1.
//!
//! Each run starts from an empty emulated account (moto behind the recording proxy).

#[path = "../tests/integration/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tapctl::stack::Stack;

const PER_MINUTE: Duration = Duration::from_secs(2);

/// Minutes each node waits for AWS under the model (the phase it starts), by node id.
fn modelled_minutes() -> BTreeMap<&'static str, f64> {
    let phase = |name: &str| harness::PHASES.iter().find(|p| p.name == name).map_or(0.0, |p| p.minutes);
    let mut m = BTreeMap::from([
        ("network.nat", phase("NAT gateway")),
        ("database.cluster", phase("Aurora cluster")),
        ("database.instances", phase("Aurora instances")),
        ("tables.transactions", phase("DynamoDB table")),
    ]);
    for f in tapctl::names::FUNCTIONS {
        m.insert(tapctl::resources::functions::id_of(f), phase("Lambda function (VPC)"));
    }
    m
}

/// The same for a destroy: only the release of Lambda's interfaces is modelled.
fn modelled_teardown_minutes() -> BTreeMap<&'static str, f64> {
    let phase = |name: &str| harness::PHASES.iter().find(|p| p.name == name).map_or(0.0, |p| p.minutes);
    BTreeMap::from([(tapctl::resources::functions::network_interfaces::ID, phase("Lambda interfaces after delete"))])
}

/// The longest chain of modelled waits through `graph`, and the nodes on it.
fn critical_path(graph: &tapctl::engine::Graph, minutes: &BTreeMap<&'static str, f64>) -> (f64, Vec<String>) {
    let mut best: BTreeMap<String, (f64, Vec<String>)> = BTreeMap::new();
    for id in graph.topological_order().expect("acyclic") {
        let before = graph
            .dependencies(&id)
            .filter_map(|d| best.get(d).cloned())
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((0.0, Vec::new()));
        let own = minutes.get(id.as_str()).copied().unwrap_or(0.0);
        let mut path = before.1;
        path.push(id.clone());
        best.insert(id, (before.0 + own, path));
    }
    best.into_values().max_by(|a, b| a.0.total_cmp(&b.0)).unwrap_or_default()
}

fn timed(acct: &harness::Account, args: &[&str]) -> Duration {
    let started = Instant::now();
    acct.ok(args);
    started.elapsed()
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn main() {
    let stack = Stack::payments();
    let (minutes, path) = critical_path(&stack.graph().expect("the stack is a graph"), &modelled_minutes());
    let teardown = stack.teardown_graph().expect("the teardown is a graph").reversed();
    let (teardown_minutes, teardown_path) = critical_path(&teardown, &modelled_teardown_minutes());
    println!("# Engine benchmark\n");
    println!("Critical path of up: {minutes} modelled minutes ({})", path.join(" → "));
    println!("Critical path of destroy: {teardown_minutes} modelled minutes ({})\n", teardown_path.join(" → "));
    println!("| run | parallelism | up from empty | destroy | up / critical path | destroy / critical path |");
    println!("|---|---|---|---|---|---|");
    // The calls that are not waits (a few seconds in all, the same at every scale) weigh more
    // the more the model compresses AWS's minutes: at 2 s a minute they are 4 % of the critical
    // path, at 5 s under 2 % (on AWS, well under 1 %).
    for (per_minute, parallelism) in [(PER_MINUTE, "8"), (PER_MINUTE, "1"), (Duration::from_secs(5), "8")] {
        let critical = per_minute.mul_f64(minutes);
        let teardown_critical = per_minute.mul_f64(teardown_minutes);
        let acct = harness::Account::with_stub_packages();
        acct.proxy.set_timing(per_minute);
        let up = timed(&acct, &["up", "--suffix", "qa", "--parallelism", parallelism]);
        let destroy = timed(&acct, &["destroy", "--suffix", "qa", "--yes", "--parallelism", parallelism]);
        println!(
            "| timing model, {} per AWS minute (critical paths {} / {}) | {parallelism} | {} | {} | {:.2}× | {:.2}× |",
            secs(per_minute),
            secs(critical),
            secs(teardown_critical),
            secs(up),
            secs(destroy),
            up.as_secs_f64() / critical.as_secs_f64(),
            destroy.as_secs_f64() / teardown_critical.as_secs_f64()
        );
    }
    let mut at = BTreeMap::new();
    for parallelism in ["8", "1"] {
        let acct = harness::Account::with_stub_packages();
        acct.proxy.set_delay(Duration::from_millis(40));
        let up = timed(&acct, &["up", "--suffix", "qa", "--parallelism", parallelism]);
        let destroy = timed(&acct, &["destroy", "--suffix", "qa", "--yes", "--parallelism", parallelism]);
        println!("| 40 ms per call | {parallelism} | {} | {} | | |", secs(up), secs(destroy));
        at.insert(parallelism, (up, destroy));
    }
    let (p8, p1) = (at["8"], at["1"]);
    println!(
        "\nSpeed-up of --parallelism 8 over 1 with 40 ms per call: up {:.2}×, destroy {:.2}×",
        p1.0.as_secs_f64() / p8.0.as_secs_f64(),
        p1.1.as_secs_f64() / p8.1.as_secs_f64()
    );
}
