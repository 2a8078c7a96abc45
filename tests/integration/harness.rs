//! The test harness: a moto server per test (the local AWS emulator, see ../shared/testing.md),
//! a recording proxy in front of it, the real tapctl binary, and SDK clients that read back what
//! the emulator holds. Nothing here is a mock: tapctl talks HTTP to a real AWS API emulator.

use aws_config::{BehaviorVersion, Region};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

/// Nodes in the stack (src/stack.rs).
pub const NODES: usize = 46;

/// Nodes a stack with the default settings makes: all but `api.domain`, which exists only with
/// `--domain` (without it the node is "off": reported unchanged, nothing to make or delete).
pub const MADE: usize = NODES - 1;

/// The Python of the virtualenv where `scripts/setup-tools` installs moto.
fn moto_python() -> PathBuf {
    if let Ok(p) = std::env::var("TAPCTL_MOTO_PYTHON") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python")
}

/// moto's server with the harness's documented extensions (tests/moto/server.py).
fn moto_launcher() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/moto/server.py")
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free port")
}

/// The zygote (tests/moto/server.py --zygote): one moto process per test binary that has warmed
/// up every service once and forks a fresh server per test. A test still gets a process of its own
/// with nothing of another test in it; it no longer pays moto's start-up (imports, service models,
/// IAM's managed policies), which was most of moto's CPU in a test.
struct Zygote {
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    _child: Child,
}

impl Zygote {
    fn start() -> Zygote {
        use std::io::BufRead;
        let python = moto_python();
        assert!(python.exists(), "moto is not installed at {}: run scripts/setup-tools first", python.display());
        let mut child = Command::new(&python)
            .arg(moto_launcher())
            .arg("--zygote")
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot start the moto zygote");
        let stdin = child.stdin.take().expect("zygote stdin");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("zygote stdout"));
        let mut ready = String::new();
        stdout.read_line(&mut ready).expect("zygote output");
        assert_eq!(ready.trim(), "ready", "the moto zygote did not start");
        Zygote { stdin, stdout, _child: child }
    }

    /// A new server on `port`; its pid.
    fn fork(&mut self, port: u16) -> i32 {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "127.0.0.1 {port}").expect("the moto zygote is gone");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("zygote output");
        line.trim().parse().unwrap_or_else(|_| panic!("the moto zygote answered {line:?} instead of a pid"))
    }
}

// Never dropped: when the test binary exits, the zygote reads the end of its stdin and exits, and
// its servers die with it (PR_SET_PDEATHSIG).
static ZYGOTE: std::sync::OnceLock<Mutex<Zygote>> = std::sync::OnceLock::new();

/// A moto server of its own on a free port, stopped when dropped.
pub struct Moto {
    pid: i32,
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let zygote = ZYGOTE.get_or_init(|| Mutex::new(Zygote::start()));
        let pid = zygote.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).fork(port);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Moto { pid, url }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of a server this test owns; the zygote reaps it.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
    }
}

/// One AWS call as it crossed the wire: e.g. "ec2:CreateVpc", "kms:CreateKey".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call(pub String);

impl Call {
    pub fn action(&self) -> &str {
        self.0.split(':').nth(1).unwrap_or_default()
    }
    /// Reads (Describe*, Get*, List*; for REST protocols — S3, Lambda, API Gateway — GET and
    /// HEAD) change nothing; every other call may.
    pub fn is_mutating(&self) -> bool {
        let a = self.action();
        let rest = ["GET ", "HEAD ", "POST ", "PUT ", "PATCH ", "DELETE "].iter().any(|m| a.starts_with(m));
        // Security Hub's GetEnabledStandards is a POST that reads.
        if self.0 == "securityhub:POST /standards/get" {
            return false;
        }
        if self.0.starts_with("s3:") || rest {
            return !(a.starts_with("GET") || a.starts_with("HEAD"));
        }
        !(a.starts_with("Describe") || a.starts_with("Get") || a.starts_with("List"))
    }
}

/// The faults the proxy can inject, each the way AWS sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 with the protocol's throttling code (RequestLimitExceeded, ThrottlingException…).
    Throttle400,
    /// HTTP 429 Too Many Requests with a throttling code.
    Throttle429,
    /// HTTP 503 SlowDown / ServiceUnavailable.
    SlowDown503,
    /// HTTP 500 InternalError.
    Internal500,
    /// The connection is closed before any response: the request never reached "AWS".
    Reset,
}

const ALL_FAULTS: [Fault; 5] =
    [Fault::Throttle400, Fault::Throttle429, Fault::SlowDown503, Fault::Internal500, Fault::Reset];

struct FaultPlan {
    rate: f64,
    rng: rand::rngs::StdRng,
}

#[derive(Default)]
struct ProxyState {
    calls: Vec<Call>,
    delay: Duration,
    faults: Option<FaultPlan>,
    injected: Vec<(Call, Fault)>,
    /// "Still working": how many more responses of an action to rewrite into a pending state.
    pending: std::collections::HashMap<String, u32>,
    /// "Not yet": AWS errors to answer instead of forwarding, each a given number of times.
    answers: Vec<Answer>,
    /// Every call answered from `answers`, with the code it got.
    answered: Vec<(Call, String)>,
    /// AWS's asynchronous states on a scaled clock: real time per modelled minute, and when each
    /// phase last started.
    timing: Option<Duration>,
    phase_started: std::collections::HashMap<&'static str, std::time::Instant>,
    /// Requests forwarded to the emulator and not yet answered.
    in_flight: usize,
}

/// An HTTP proxy between tapctl and moto that records every AWS action and can slow calls
/// down, fail them as AWS does (throttling, 5xx, dropped connections) and rewrite Describe
/// answers so resources look as if AWS were still working on them. It sees exactly what
/// tapctl sends; the emulator sees only what gets through.
pub struct Proxy {
    pub url: String,
    state: Arc<Mutex<ProxyState>>,
    _runtime: tokio::runtime::Runtime,
}

/// The service a request is signed for: the credential scope of its SigV4 Authorization header
/// (`Credential=AKID/20261124/us-east-1/sns/aws4_request`).
fn service_of(authorization: Option<&str>) -> String {
    authorization
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string()
}

/// The action named by an AWS request: the form field `Action=` (EC2, STS, SNS, RDS: query
/// protocols), the `X-Amz-Target` header (KMS, DynamoDB, SSM…: JSON protocols), or for S3's REST
/// protocol the method and path.
fn action_of(service: &str, target: Option<&str>, body: &[u8], method: &str, path: &str) -> Call {
    if let Some(t) = target {
        let op = t.split_once('.').map(|(_, op)| op).unwrap_or(t);
        return Call(format!("{service}:{op}"));
    }
    let text = String::from_utf8_lossy(body);
    match text.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        Some(action) => Call(format!("{service}:{action}")),
        None => Call(format!("{service}:{method} {path}")),
    }
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("proxy runtime");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let listener = StdListener::bind("127.0.0.1:0").expect("proxy bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.to_string();
        let st = state.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (client, upstream, st) = (client.clone(), upstream.clone(), st.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (client, upstream, st) = (client.clone(), upstream.clone(), st.clone());
                        async move { forward(req, &client, &upstream, &st).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { url, state, _runtime: runtime }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Fails a `rate` share of requests, each with a fault drawn at random (seeded, so a
    /// failing run can be replayed); `rate` 0 turns faults off.
    pub fn set_faults(&self, rate: f64, seed: u64) {
        use rand::SeedableRng;
        self.state.lock().unwrap().faults =
            (rate > 0.0).then(|| FaultPlan { rate, rng: rand::rngs::StdRng::seed_from_u64(seed) });
    }

    /// Waits until every request already sent has been answered by the emulator. A killed
    /// client's last request still reaches AWS and is carried out; a re-run starts after that
    /// (seconds later, not microseconds), which is what a test of "kill, then run again" models.
    pub fn wait_idle(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.state.lock().unwrap().in_flight > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn injected(&self) -> Vec<(Call, Fault)> {
        self.state.lock().unwrap().injected.clone()
    }

    /// The next `polls` answers to `action` (e.g. "DescribeNatGateways", or the end of a REST
    /// path: "/configuration" for Lambda's GetFunctionConfiguration) report the resource as still
    /// being created or updated.
    pub fn set_pending(&self, action: &str, polls: u32) {
        self.state.lock().unwrap().pending.insert(action.to_string(), polls);
    }
}

/// How long AWS keeps a kind of resource in a pending state after the call that starts it, and
/// how its reads say so. The durations are typical figures, each with its source; the timing
/// model plays them on a scaled clock (`Proxy::set_timing`).
pub struct Phase {
    pub name: &'static str,
    /// Whether a call (its recorded name) starts the phase.
    pub starts: fn(&str) -> bool,
    /// The reads that report it (the end of their recorded name).
    pub reported_by: &'static str,
    /// What the reads answer while the phase lasts: (settled text, pending text).
    pub pending: &'static [(&'static str, &'static str)],
    /// Typical duration on AWS, in minutes.
    pub minutes: f64,
}

/// An interface Lambda still holds, as EC2 describes it.
macro_rules! held_lambda_interface {
    () => {
        "<item><networkInterfaceId>eni-0lambdaheld00000</networkInterfaceId><status>in-use</status>\
         <description>AWS Lambda VPC ENI-payment-timing-model</description><interfaceType>lambda</interfaceType></item>"
    };
}

pub const PHASES: &[Phase] = &[
    // VPC User Guide, "NAT gateways": a new gateway is `pending` until it is `available`, "a few
    // minutes"; terraform's create timeout is 10 minutes.
    Phase {
        name: "NAT gateway",
        starts: |c| c.starts_with("ec2:CreateNatGateway"),
        reported_by: "DescribeNatGateways",
        pending: &[("<state>available</state>", "<state>pending</state>")],
        minutes: 3.0,
    },
    // Aurora User Guide, cluster status `creating` → `available`: a Serverless v2 cluster without
    // instances takes a few minutes (terraform's create timeout: 120 minutes).
    Phase {
        name: "Aurora cluster",
        starts: |c| c.starts_with("rds:CreateDBCluster"),
        reported_by: "DescribeDBClusters",
        pending: &[("<Status>available</Status>", "<Status>creating</Status>")],
        minutes: 4.0,
    },
    // Each db.serverless instance `creating` → `available`: about ten minutes, the longest step of a
    // new stack (terraform's create timeout: 90 minutes). The instances are created together.
    Phase {
        name: "Aurora instances",
        starts: |c| c.starts_with("rds:CreateDBInstance"),
        reported_by: "DescribeDBInstances",
        pending: &[("<DBInstanceStatus>available</DBInstanceStatus>", "<DBInstanceStatus>creating</DBInstanceStatus>")],
        minutes: 8.0,
    },
    // Lambda "function states": a function in a VPC is `Pending` while Lambda creates its
    // Hyperplane interfaces, about a minute.
    Phase {
        name: "Lambda function (VPC)",
        starts: |c| c == "lambda:POST /2015-03-31/functions",
        reported_by: "/configuration",
        pending: &[("\"State\": \"Active\"", "\"State\": \"Pending\"")],
        minutes: 1.0,
    },
    // Lambda "function states": after a configuration update, `LastUpdateStatus` is `InProgress`
    // until the change is applied (tens of seconds in a VPC).
    Phase {
        name: "Lambda update",
        starts: |c| {
            c.starts_with("lambda:PUT /2015-03-31/functions/")
                && (c.ends_with("/configuration") || c.ends_with("/code"))
        },
        reported_by: "/configuration",
        pending: &[("\"LastUpdateStatus\": \"Successful\"", "\"LastUpdateStatus\": \"InProgress\"")],
        minutes: 0.5,
    },
    // Lambda's Hyperplane interfaces after the functions are deleted: still `in-use` for minutes
    // (shared by every function with the same subnet and group, so the last delete restarts the
    // clock). The Lambda team told terraform-provider-aws to expect up to 45 minutes (commit
    // 922037e, "Updated handling for Lambda Hyperplane ENIs"); 20 is a typical figure. The
    // emulator makes no interfaces for a function, so the reads get one added.
    Phase {
        name: "Lambda interfaces after delete",
        starts: |c| c.strip_prefix("lambda:DELETE /2015-03-31/functions/").is_some_and(|f| !f.contains('/')),
        reported_by: "DescribeNetworkInterfaces",
        pending: &[
            ("<networkInterfaceSet><item>", concat!("<networkInterfaceSet>", held_lambda_interface!(), "<item>")),
            (
                "<networkInterfaceSet/>",
                concat!("<networkInterfaceSet>", held_lambda_interface!(), "</networkInterfaceSet>"),
            ),
        ],
        minutes: 20.0,
    },
    // DynamoDB CreateTable: `CREATING` → `ACTIVE`, the global secondary indexes with it; under a
    // minute for an empty on-demand table.
    Phase {
        name: "DynamoDB table",
        starts: |c| c.starts_with("dynamodb:CreateTable"),
        reported_by: "dynamodb:DescribeTable",
        pending: &[
            ("\"TableStatus\": \"ACTIVE\"", "\"TableStatus\": \"CREATING\""),
            ("\"IndexStatus\": \"ACTIVE\"", "\"IndexStatus\": \"CREATING\""),
        ],
        minutes: 1.0,
    },
];

impl Proxy {
    /// Plays `PHASES` on a clock where `per_minute` of real time stands for one minute on AWS:
    /// each resource reads as pending for its phase's duration after the call that started it.
    pub fn set_timing(&self, per_minute: Duration) {
        self.state.lock().unwrap().timing = Some(per_minute);
    }
}

/// An AWS error the proxy answers to the first `times` requests of a call that name a resource:
/// what AWS says while a change it has accepted has not propagated yet.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The call as recorded, or its beginning: "lambda:POST /2015-03-31/functions", "ec2:CreateRoute".
    pub call: String,
    /// A string the request's path or body must contain (a name, an id); empty matches any.
    pub naming: String,
    pub times: u32,
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl Answer {
    pub fn new(call: &str, naming: &str, times: u32, status: u16, code: &str, message: &str) -> Answer {
        Answer { call: call.into(), naming: naming.into(), times, status, code: code.into(), message: message.into() }
    }
}

impl Proxy {
    /// Answers matching requests with `answer`'s error, `answer.times` times (then they pass).
    pub fn answer(&self, answer: Answer) {
        self.state.lock().unwrap().answers.push(answer);
    }

    /// Stops answering with injected errors.
    pub fn clear_answers(&self) {
        self.state.lock().unwrap().answers.clear();
    }

    pub fn clear_answered(&self) {
        self.state.lock().unwrap().answered.clear();
    }

    /// The calls answered with an injected error, and the code each got.
    pub fn answered(&self) -> Vec<(Call, String)> {
        self.state.lock().unwrap().answered.clone()
    }
}

/// Body of an AWS error in the request's protocol: JSON (X-Amz-Target), the EC2 query dialect,
/// the generic query dialect (STS), or S3's REST-XML.
fn fault_response(fault: Fault, call: &Call, json: bool) -> Response<Full<Bytes>> {
    let (status, code, message) = match fault {
        // S3 throttles with 503 SlowDown only (and a HEAD answer has no body to carry a code).
        Fault::Throttle400 | Fault::Throttle429 | Fault::SlowDown503 if call.0.starts_with("s3:") => {
            (503, "SlowDown", "Please reduce your request rate.")
        }
        Fault::Throttle400 if json => (400, "ThrottlingException", "Rate exceeded"),
        Fault::Throttle400 if call.0.starts_with("ec2:") => (400, "RequestLimitExceeded", "Request limit exceeded."),
        Fault::Throttle400 => (400, "Throttling", "Rate exceeded"),
        Fault::Throttle429 if json => (429, "TooManyRequestsException", "Too many requests"),
        Fault::Throttle429 => (429, "Throttling", "Too many requests"),
        Fault::SlowDown503 => (503, "ServiceUnavailable", "Service is unavailable, try again later"),
        Fault::Internal500 | Fault::Reset => {
            (500, "InternalError", "We encountered an internal error. Please try again.")
        }
    };
    error_response(status, code, message, call, json)
}

/// An AWS error as the service sends it: JSON with `__type` (X-Amz-Target protocols), REST-JSON
/// with the `x-amzn-ErrorType` header (Lambda, API Gateway), EC2's `<Response><Errors>`, the
/// query protocols' `<ErrorResponse>` (IAM, RDS, SNS, STS), or S3's `<Error>`.
fn error_response(status: u16, code: &str, message: &str, call: &Call, json: bool) -> Response<Full<Bytes>> {
    let rest_json =
        ["lambda:", "apigateway:", "guardduty:", "securityhub:", "backup:"].iter().any(|s| call.0.starts_with(s));
    let (content_type, body) = if rest_json {
        ("application/json", format!(r#"{{"Type":"User","message":"{message}"}}"#))
    } else if json {
        ("application/x-amz-json-1.1", format!(r#"{{"__type":"{code}","message":"{message}"}}"#))
    } else if call.0.starts_with("ec2:") {
        ("text/xml", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-injected</RequestID></Response>"))
    } else if call.0.starts_with("s3:") {
        ("application/xml", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-injected</RequestId></Error>"))
    } else {
        ("text/xml", format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-injected</RequestId></ErrorResponse>"))
    };
    let mut resp = Response::builder().status(status).header("content-type", content_type);
    if json || rest_json {
        resp = resp.header("x-amzn-errortype", code);
    }
    resp.body(Full::new(Bytes::from(body))).expect("fault response")
}

async fn forward(
    req: Request<Incoming>,
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    upstream: &str,
    state: &Arc<Mutex<ProxyState>>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    use rand::Rng;
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let service = service_of(parts.headers.get("authorization").and_then(|v| v.to_str().ok()));
    let call = action_of(&service, target, &body, parts.method.as_str(), parts.uri.path());
    let (delay, fault, answer) = {
        let mut st = state.lock().unwrap();
        st.calls.push(call.clone());
        let fault = st.faults.as_mut().and_then(|f| {
            (f.rng.random::<f64>() < f.rate).then(|| ALL_FAULTS[f.rng.random_range(0..ALL_FAULTS.len())])
        });
        if let Some(fault) = fault {
            st.injected.push((call.clone(), fault));
        }
        if st.timing.is_some() {
            for phase in PHASES.iter().filter(|p| (p.starts)(&call.0)) {
                st.phase_started.insert(phase.name, std::time::Instant::now());
            }
        }
        let text = format!("{} {}", parts.uri, String::from_utf8_lossy(&body));
        let answer =
            st.answers.iter_mut().find(|a| a.times > 0 && call.0.starts_with(&a.call) && text.contains(&a.naming)).map(
                |a| {
                    a.times -= 1;
                    a.clone()
                },
            );
        if let Some(a) = &answer {
            st.answered.push((call.clone(), a.code.clone()));
        }
        (st.delay, fault.filter(|_| answer.is_none()), answer)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let json = target.is_some()
        || matches!(service.as_str(), "lambda" | "apigateway" | "guardduty" | "securityhub" | "backup");
    if let Some(a) = answer {
        return Ok(error_response(a.status, &a.code, &a.message, &call, json));
    }
    match fault {
        Some(Fault::Reset) => {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault injected: connection reset"))
        }
        // REST-JSON services (Lambda, API Gateway) answer errors in JSON too, without a target.
        Some(f) => {
            return Ok(fault_response(
                f,
                &call,
                target.is_some() || matches!(service.as_str(), "lambda" | "apigateway"),
            ))
        }
        None => {}
    }
    // Sent on its own task: like a request that reached AWS, it is carried out even if the
    // client is killed while waiting for the answer.
    state.lock().unwrap().in_flight += 1;
    let (client, upstream, shared) = (client.clone(), upstream.to_string(), state.clone());
    let task = tokio::spawn(async move {
        let result = send_upstream(parts, body, call, &client, &upstream, &shared).await;
        shared.lock().unwrap().in_flight -= 1;
        result
    });
    task.await.map_err(std::io::Error::other)?
}

async fn send_upstream(
    parts: hyper::http::request::Parts,
    body: Bytes,
    call: Call,
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    upstream: &str,
    state: &Mutex<ProxyState>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = Request::builder().method(parts.method.clone()).uri(format!("{upstream}{path}"));
    for (k, v) in &parts.headers {
        out = out.header(k, v);
    }
    let out = out.body(Full::new(body)).expect("request");
    match client.request(out).await {
        Ok(resp) => {
            let (mut p, b) = resp.into_parts();
            let mut bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let rewrite = {
                let mut st = state.lock().unwrap();
                let action = call.action().to_string();
                match st.pending.iter_mut().find(|(key, _)| action.ends_with(key.as_str())).map(|(_, n)| n) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                }
            };
            let timed: Vec<&Phase> = {
                let st = state.lock().unwrap();
                match st.timing {
                    Some(per_minute) => PHASES
                        .iter()
                        .filter(|p| call.0.ends_with(p.reported_by) || call.action().ends_with(p.reported_by))
                        .filter(|p| {
                            st.phase_started.get(p.name).is_some_and(|at| at.elapsed() < per_minute.mul_f64(p.minutes))
                        })
                        .collect(),
                    None => Vec::new(),
                }
            };
            if !timed.is_empty() {
                let mut text = String::from_utf8_lossy(&bytes).into_owned();
                for phase in timed {
                    for (settled, pending) in phase.pending {
                        text = text.replace(settled, pending);
                    }
                }
                bytes = Bytes::from(text);
            }
            if rewrite {
                let text = String::from_utf8_lossy(&bytes)
                    .replace("<state>available</state>", "<state>pending</state>")
                    .replace("<Status>available</Status>", "<Status>creating</Status>")
                    .replace(
                        "<DBInstanceStatus>available</DBInstanceStatus>",
                        "<DBInstanceStatus>creating</DBInstanceStatus>",
                    )
                    // Lambda: a function still being created (VPC interfaces) or updated.
                    .replace("\"State\": \"Active\"", "\"State\": \"Pending\"")
                    .replace("\"LastUpdateStatus\": \"Successful\"", "\"LastUpdateStatus\": \"InProgress\"");
                bytes = Bytes::from(text);
            }
            // The body may have changed length: let hyper set it.
            p.headers.remove("content-length");
            Ok(Response::from_parts(p, Full::new(bytes)))
        }
        Err(e) => {
            Ok(Response::builder().status(502).body(Full::new(Bytes::from(format!("proxy: {e}")))).expect("response"))
        }
    }
}

/// An emulated account: moto, a recording proxy in front of it, a state dir, and clients.
pub struct Account {
    _moto: Moto,
    /// The packages `tapctl` deploys when not the built ones (Account::with_stub_packages).
    packages: Option<tempfile::TempDir>,
    pub proxy: Proxy,
    pub state_dir: tempfile::TempDir,
    pub ec2: aws_sdk_ec2::Client,
    pub kms: aws_sdk_kms::Client,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub iam: aws_sdk_iam::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub rds: aws_sdk_rds::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    _rt: tokio::runtime::Runtime,
}

/// Where `tapctl build` writes the function packages of this workspace.
/// Stops a long-running tapctl (`tapctl local`) as an operator does, with SIGTERM, so that it
/// cleans up after itself (its instances, its private folder of bootstraps); killed if it has
/// not exited after 60 s, which only a hung process would need.
pub fn stop(child: &mut std::process::Child) {
    // SAFETY: kill(2) on the pid of a child this process has not waited for yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    for _ in 0..600 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub fn packages_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lambda/x86_64")
}

/// A copy of the built packages in which each of `functions` has other code: a bootstrap of a few
/// bytes of shell, different per `marker`. The manifest names their CodeSha256, as `tapctl build`'s
/// would.
pub fn stub_packages(functions: &[&str], marker: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(packages_dir()).expect("the built packages (scripts/test builds them)") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("file type").is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy a package");
        }
    }
    let path = dir.path().join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("manifest")).expect("manifest JSON");
    for function in functions {
        let zip = tapctl::package::zip(vec![tapctl::package::Entry {
            name: "bootstrap".into(),
            bytes: format!("#!/bin/sh\n# {function} {marker}\n").into_bytes(),
            executable: true,
        }])
        .expect("zip");
        std::fs::write(dir.path().join(format!("{function}.zip")), &zip).expect("write a package");
        manifest["functions"][*function]["code_sha256"] = tapctl::package::code_sha256(&zip).into();
        manifest["functions"][*function]["size"] = zip.len().into();
    }
    std::fs::write(&path, serde_json::to_vec(&manifest).expect("manifest JSON")).expect("write the manifest");
    dir
}

/// A copy of the built packages in which every function's zip also holds a `release` file naming
/// `marker`: the same bootstrap, other code as Lambda sees it (another CodeSha256), so `up` publishes
/// a new version to the idle colour and `tapctl local` still runs a real bootstrap for it.
pub fn released_packages(marker: &str) -> tempfile::TempDir {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let built = packages_dir();
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(built.join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    let functions: Vec<String> = manifest["functions"].as_object().expect("functions").keys().cloned().collect();
    for function in functions {
        let bytes = std::fs::read(built.join(format!("{function}.zip"))).expect("a built package");
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
        let mut entries = Vec::new();
        for i in 0..archive.len() {
            let mut file = archive.by_index(i).expect("an entry");
            let executable = file.unix_mode().is_some_and(|m| m & 0o111 != 0);
            let name = file.name().expect("an entry name").to_string();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).expect("unzip");
            entries.push(tapctl::package::Entry { name, bytes, executable });
        }
        entries.push(tapctl::package::Entry {
            name: "release".into(),
            bytes: format!("{marker}\n").into_bytes(),
            executable: false,
        });
        let zip = tapctl::package::zip(entries).expect("zip");
        std::fs::write(dir.path().join(format!("{function}.zip")), &zip).expect("write a package");
        manifest["functions"][&function]["code_sha256"] = tapctl::package::code_sha256(&zip).into();
        manifest["functions"][&function]["size"] = zip.len().into();
    }
    std::fs::write(dir.path().join("manifest.json"), serde_json::to_vec(&manifest).expect("JSON"))
        .expect("write the manifest");
    dir
}

/// The headers of a request signed as the AWS SDK for Rust signs (SigV4, execute-api), with the
/// harness's credentials or another secret.
pub fn execute_api_headers(
    address: &str,
    path: &str,
    content_type: &str,
    body: &str,
    secret: &str,
) -> Vec<(String, String)> {
    signed_headers("execute-api", address, path, content_type, body, secret)
}

/// The headers of a POST to `path` on `address` signed for `service` (`execute-api` for the
/// API, `lambda` for the Invoke tapctl local serves) with the key `testing` and `secret`.
pub fn signed_headers(
    service: &str,
    address: &str,
    path: &str,
    content_type: &str,
    body: &str,
    secret: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity = aws_credential_types::Credentials::new("testing", secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let mut headers =
        vec![("host".to_string(), address.to_string()), ("content-type".to_string(), content_type.to_string())];
    let url = format!("http://{address}{path}");
    let request = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("signable");
    let (instructions, _) = sign(request, &params).expect("sign").into_parts();
    headers.extend(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())));
    headers
}

pub fn aws_env(cmd: &mut Command) {
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .env_remove("TAPCTL_SUFFIX")
        // The packages scripts/test builds (`tapctl build`) before the tests run.
        .env("TAPCTL_PACKAGES", packages_dir())
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

fn sdk_config(rt: &tokio::runtime::Runtime, endpoint: &str) -> aws_config::SdkConfig {
    rt.block_on(
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
            .load(),
    )
}

impl Account {
    /// The emulator itself, not through the proxy.
    #[allow(dead_code)] // used by the benchmark (benches/functions.rs)
    pub fn emulator_url(&self) -> &str {
        &self._moto.url
    }

    /// SDK configuration that goes through the proxy (and so meets its faults).
    pub fn via_proxy(&self) -> aws_config::SdkConfig {
        sdk_config(&self._rt, &self.proxy.url)
    }

    /// An account whose `tapctl` deploys stub packages (`stub_packages`) instead of the built
    /// ones: for the tests of the engine that run `up` dozens of times (kills, faults), where
    /// what runs inside the functions is not under test. Uploading the real 6–8 MB packages four
    /// times per `up` made those the slowest tests (tapctl hashes and base64-encodes each, moto
    /// decodes, hashes and stores it); the deployment of the real packages is tested elsewhere.
    pub fn with_stub_packages() -> Account {
        let mut acct = Account::new();
        acct.packages = Some(stub_packages(&tapctl::names::FUNCTIONS, "stub"));
        acct
    }

    pub fn new() -> Account {
        let moto = Moto::start();
        let proxy = Proxy::start(&moto.url);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let config = sdk_config(&rt, &moto.url);
        Account {
            ec2: aws_sdk_ec2::Client::new(&config),
            kms: aws_sdk_kms::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            rds: aws_sdk_rds::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            apigateway: aws_sdk_apigateway::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            _moto: moto,
            packages: None,
            proxy,
            state_dir: tempfile::tempdir().expect("tempdir"),
            _rt: rt,
        }
    }

    /// Runs an async read-back against the emulator.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self._rt.block_on(f)
    }

    /// `tapctl <args>` against the proxy (AWS_ENDPOINT_URL) with this account's state directory
    /// (TAPCTL_STATE), not yet started. Given as the environment, as an operator's shell would,
    /// so that every command takes them whichever options it has.
    pub fn tapctl(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tapctl"));
        aws_env(&mut cmd);
        cmd.args(args)
            .env("AWS_ENDPOINT_URL", &self.proxy.url)
            .env("TAPCTL_STATE", self.state_dir.path())
            .env("TAPCTL_NO_PROGRESS", "true")
            .env_remove("TAPCTL_SUFFIX")
            .env_remove("XDG_STATE_HOME")
            .stdin(Stdio::null());
        if let Some(packages) = &self.packages {
            cmd.env("TAPCTL_PACKAGES", packages.path());
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.tapctl(args).output().expect("cannot run tapctl");
        Run::from(out)
    }

    /// Runs and insists on exit 0, showing tapctl's output otherwise.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "tapctl {args:?} failed:\n{}\n{}", r.stdout, r.stderr);
        r
    }

    /// `plan --json` of suffix qa, which must see a change (exit 2): what AWS holds differs.
    pub fn drifted_plan(&self) -> serde_json::Value {
        let run = self.run(&["plan", "--suffix", "qa", "--detailed-exitcode", "--json"]);
        assert_eq!(run.code, 2, "plan must see a change:\n{}\n{}", run.stdout, run.stderr);
        serde_json::from_str(&run.stdout).expect("tapctl/v1 JSON")
    }

    /// The drifts the plan names for `node`, planned as an update, as `field: current → wanted`.
    pub fn planned_update(&self, node: &str) -> Vec<String> {
        let plan = self.drifted_plan();
        let (action, changes) = planned_changes(&plan, node);
        assert_eq!(action, "update", "{node} in {plan:#}");
        changes
    }

    /// Plan of suffix qa sees nothing left to repair (exit 0).
    pub fn assert_converged(&self) {
        let plan = self.run(&["plan", "--suffix", "qa", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "nothing left to repair:\n{}\n{}", plan.stdout, plan.stderr);
    }
}

/// `node`'s action in a `tapctl/v1` plan and its changes as `field: current → wanted`, the
/// words a person reads (no Debug text).
pub fn planned_changes(plan: &serde_json::Value, node: &str) -> (String, Vec<String>) {
    let resources = plan["resources"].as_array().expect("resources");
    let Some(n) = resources.iter().find(|n| n["node"] == node) else { panic!("{node} is not in the plan: {plan:#}") };
    let field = |c: &serde_json::Value, k: &str| c[k].as_str().unwrap_or_else(|| panic!("{k} of {c}")).to_string();
    let changes = n["changes"].as_array().map(Vec::as_slice).unwrap_or_default();
    let changes = changes
        .iter()
        .map(|c| format!("{}: {} → {}", field(c, "field"), field(c, "current"), field(c, "wanted")))
        .collect();
    (n["action"].as_str().unwrap_or_default().to_string(), changes)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}
