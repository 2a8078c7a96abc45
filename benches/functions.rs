//! Benchmark of the function bootstraps (not a test: it asserts nothing, it measures).
//!
//!     cargo bench --profile dev --bench functions                 # packages from `tapctl build`
//!     cargo bench --profile dev --bench functions -- target/debug # or any folder of binaries
//!
//! For each function, cold init: process start → its first Runtime API request (30 starts).
//! For validate and fraud-check, warm invocations (1,000 after 50 to warm up): the time from the
//! event being handed to the container to its response arriving, i.e. the handler plus one
//! loopback round trip. validate's handler is pure CPU once its configuration is cached;
//! fraud-check queries the transactions table per request, so its figure is the emulator's
//! DynamoDB latency (moto, a few hundred requests per second) far more than the function's.
//! The stack comes from `tapctl up` on a local emulator, as in the integration tests.

#[path = "../tests/integration/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/integration/lambda.rs"]
#[allow(dead_code)]
mod lambda;

use lambda::Function;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FUNCTIONS: [&str; 4] = ["validate", "fraud-check", "process", "rotate-secret"];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// The folder of binaries given on the command line, if any, and what the figures are of.
fn origin() -> (Option<PathBuf>, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        Some(folder) => (Some(root.join(folder)), "binaries from the given folder".into()),
        None => (None, "release bootstraps from tapctl build (target/lambda/x86_64)".into()),
    }
}

fn main() {
    let (folder, origin) = origin();
    let acct = harness::Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let env = [
        ("PAYMENTS_CONFIG_PREFIX", "/payments/qa"),
        ("AWS_ENDPOINT_URL", acct.emulator_url()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
    ];
    println!("# Function benchmark ({origin})\n");
    println!("| function | cold init p50 | cold init max | warm p50 | warm p99 | binary |");
    println!("|---|---|---|---|---|---|");
    let body = r#"{"merchant_id":"m-1","amount":2500,"currency":"USD","card":{"number":"4242424242424242","exp_month":12,"exp_year":2031,"cvv":"123"}}"#;
    for f in FUNCTIONS {
        let path = folder.as_ref().map(|d| d.join(f)).unwrap_or_else(|| lambda::binary(f));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut inits = Vec::new();
        for _ in 0..30 {
            let func = Function::start_binary(&path, f, 1, &env);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while func.first_polls().is_empty() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(200));
            }
            inits.push(func.first_polls()[0] - func.started);
        }
        inits.sort();
        let warm = if f == "validate" || f == "fraud-check" {
            let func = Function::start_binary(&path, f, 1, &env);
            for _ in 0..50 {
                func.post(f, body, &[]);
            }
            func.take_durations();
            for _ in 0..1000 {
                let (code, _) = func.post(f, body, &[]);
                assert_eq!(code, 200);
            }
            let mut d = func.take_durations();
            d.sort();
            Some((percentile(&d, 0.5), percentile(&d, 0.99)))
        } else {
            None
        };
        let (p50, p99) = warm.map(|(a, b)| (ms(a), ms(b))).unwrap_or(("—".into(), "—".into()));
        println!(
            "| {f} | {} | {} | {p50} | {p99} | {:.1} MB |",
            ms(percentile(&inits, 0.5)),
            ms(*inits.last().expect("inits")),
            size as f64 / 1e6
        );
    }
}
