//! Load benchmark of the payment path (not a test: it asserts nothing, it measures).
//!
//!     cargo bench --profile dev --bench path                 # 50, 100, 200 a second, 20 s each
//!     cargo bench --profile dev --bench path -- 100 60       # one rate, for 60 s
//!     cargo bench --profile dev --bench path -- 100 20 validate   # /live/validate instead
//!
//! Signed `POST /live/process` requests (SigV4, a fresh card each, a unique Idempotency-Key) are
//! sent open-loop at a fixed rate: request i leaves at start + i/rate whatever the earlier ones
//! are doing, and its latency counts from that planned instant, so a stall is not hidden by the
//! sender waiting for it (coordinated omission). The path: `tapctl local` (API Gateway's steps:
//! route, throttle, SigV4, model validation, canary draw, alias permission) → process's real
//! release bootstrap behind the Runtime API → the emulator (DynamoDB, S3, SNS, Parameter Store,
//! Secrets Manager) and a real PostgreSQL (the ledger, over TLS, under process's own login).
//! "function" is `x-tapctl-function-ms`: the handler's share (event handed over → response back);
//! "local" is each request's path time minus its function time: what `tapctl local` itself (API
//! Gateway's steps, the wait for a free instance, the Runtime API) added. `validate` runs a
//! handler that calls nothing per request once warm (its configuration is cached), so its path
//! is the local path with the emulator out of it; process calls the emulator about six times.
//! The stack comes from `tapctl up` on a local emulator, as in the integration tests.

#[path = "../tests/integration/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/integration/lambda.rs"]
#[allow(dead_code)]
mod lambda;
#[path = "../tests/integration/postgres.rs"]
#[allow(dead_code)]
mod postgres;
// Its tests are compiled out here; what only they use is unused.
#[path = "../tests/integration/functions.rs"]
#[allow(dead_code, unused_imports)]
mod functions;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One request on its own connection: (status, the function's milliseconds).
fn post(address: &str, route: &str, key: &str, body: &str) -> (u16, Option<f64>) {
    let Ok(mut stream) = TcpStream::connect(address) else { return (0, None) };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut request = format!(
        "POST /live/{route} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\nidempotency-key: {key}\r\n",
        body.len()
    );
    let path = format!("/live/{route}");
    for (k, v) in harness::execute_api_headers(address, &path, "application/json", body, "testing") {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, None);
    }
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let status = raw.lines().next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let function = raw
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-tapctl-function-ms:").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse().ok());
    (status, function)
}

struct Run {
    rate: u32,
    sent: usize,
    /// Answers other than 201, by status (0: no answer).
    errors: std::collections::BTreeMap<u16, usize>,
    path: Vec<f64>,
    function: Vec<f64>,
    local: Vec<f64>,
}

/// Open loop: request i is planned for start + i/rate; its latency counts from that instant.
fn run(address: &str, route: &'static str, rate: u32, seconds: u64, tag: &str) -> Run {
    let total = rate as usize * seconds as usize;
    let (tx, rx) = mpsc::channel();
    let start = Instant::now() + Duration::from_millis(100);
    let mut rng = rand::rng();
    for i in 0..total {
        let planned = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
        let number = functions::random_card(&mut rng, "4", 16);
        let body = functions::payment("m-1", 1000 + i as i64 % 5000, functions::card(&number, "123"));
        let key = format!("{tag}-{i}");
        let address = address.to_string();
        let tx = tx.clone();
        std::thread::sleep(planned.saturating_duration_since(Instant::now()));
        std::thread::spawn(move || {
            let (status, function) = post(&address, route, &key, &body);
            let _ = tx.send((status, planned.elapsed().as_secs_f64() * 1000.0, function));
        });
    }
    drop(tx);
    let mut r = Run {
        rate,
        sent: total,
        errors: Default::default(),
        path: Vec::new(),
        function: Vec::new(),
        local: Vec::new(),
    };
    let ok = if route == "process" { 201 } else { 200 };
    for (status, ms, function) in rx {
        if status == ok {
            r.path.push(ms);
            r.function.extend(function);
            r.local.extend(function.map(|f| ms - f));
        } else {
            *r.errors.entry(status).or_default() += 1;
        }
    }
    r.path.sort_by(f64::total_cmp);
    r.function.sort_by(f64::total_cmp);
    r.local.sort_by(f64::total_cmp);
    r
}

struct Local(Child);

impl Drop for Local {
    fn drop(&mut self) {
        harness::stop(&mut self.0);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let rates: Vec<u32> = match args.first().and_then(|r| r.parse().ok()) {
        Some(rate) => vec![rate],
        None => vec![50, 100, 200],
    };
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let route: &'static str = if args.get(2).map(String::as_str) == Some("validate") { "validate" } else { "process" };

    let p = functions::Payments::new(true);
    p.put_param("db/writer-endpoint", "payments.cluster-x.us-east-1.rds.amazonaws.com.invalid");
    p.put_param("db/reader-endpoint", "payments.cluster-ro-x.us-east-1.rds.amazonaws.com.invalid");
    let database = format!("postgres://127.0.0.1:{}/?sslrootcert={}", p.pg.port, p.pg.ca.display());
    let mut child = p
        .acct
        .tapctl(&["local", "--suffix", "qa", "--port", "0", "--database", &database])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tapctl local");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the serving line");
    let _local = Local(child);
    let address = line.split("http://").nth(1).and_then(|r| r.split('/').next()).expect("an address").to_string();

    // Warm: instances started, connections and configuration cached, as a live stage would be.
    let warm = run(&address, route, 20, 3, "warm");
    eprintln!("warm-up: {} sent, errors by status {:?}", warm.sent, warm.errors);

    println!("# Payment path benchmark (tapctl local → {route} → emulator + PostgreSQL; {seconds} s per rate)\n");
    println!(
        "| rate /s | sent | errors | path p50 | path p99 | path max | function p50 | function p99 | local p50 | local p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for rate in rates {
        let r = run(&address, route, rate, seconds, &format!("r{rate}"));
        println!(
            "| {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            r.rate,
            r.sent,
            if r.errors.is_empty() {
                "0".to_string()
            } else {
                r.errors.iter().map(|(status, n)| format!("{n}× {status}")).collect::<Vec<_>>().join(", ")
            },
            percentile(&r.path, 0.5),
            percentile(&r.path, 0.99),
            r.path.last().copied().unwrap_or(f64::NAN),
            percentile(&r.function, 0.5),
            percentile(&r.function, 0.99),
            percentile(&r.local, 0.5),
            percentile(&r.local, 0.99),
        );
    }
}
