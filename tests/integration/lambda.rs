//! A Lambda Runtime API server for the tests (the emulator cannot run functions: testing.md).
//! The functions' real binaries are started as "containers" polling it, exactly as on Lambda:
//! `GET /2018-06-01/runtime/invocation/next` long-polls for an event, the response or error is
//! POSTed back under the request id. Several containers may poll one server (concurrency).
//! Accepted sockets set TCP_NODELAY: without it some invocations stall ~40 ms (Nagle + delayed ACK).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// What an invocation ended with: the function's response, or its error document.
pub type Outcome = Result<Value, Value>;

struct Pending {
    id: String,
    event: Vec<u8>,
    reply: mpsc::Sender<Outcome>,
}

#[derive(Default)]
struct Shared {
    waiting: HashMap<String, mpsc::Sender<Outcome>>,
    /// When each container's first `next` arrived (cold init ends there).
    first_polls: Vec<Instant>,
    init_errors: Vec<String>,
    /// When each invocation was handed to a container (by request id), and how long each took
    /// from then to its response: the function's own time plus a loopback round trip.
    handed_out: HashMap<String, Instant>,
    durations: Vec<Duration>,
    /// What the containers are told they were invoked as (`Lambda-Runtime-Invoked-Function-Arn`):
    /// an alias ARN when the API calls a colour.
    invoked_arn: String,
}

pub struct RuntimeApi {
    pub address: String,
    queue: tokio::sync::mpsc::UnboundedSender<Pending>,
    shared: Arc<Mutex<Shared>>,
    counter: AtomicU64,
    _runtime: tokio::runtime::Runtime,
}

impl RuntimeApi {
    pub fn start() -> RuntimeApi {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("addr").to_string();
        let (queue, rx) = tokio::sync::mpsc::unbounded_channel::<Pending>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let shared = Arc::new(Mutex::new(Shared {
            invoked_arn: "arn:aws:lambda:us-east-1:123456789012:function:test".into(),
            ..Shared::default()
        }));
        let st = shared.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let (rx, st) = (rx.clone(), st.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (rx, st) = (rx.clone(), st.clone());
                        async move { serve(req, rx, st).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi { address, queue, shared, counter: AtomicU64::new(0), _runtime: runtime }
    }

    /// Sends an event to whichever container polls next and waits for its outcome.
    pub fn invoke(&self, event: &Value) -> Outcome {
        let id = format!("req-{:06}", self.counter.fetch_add(1, Ordering::SeqCst));
        let (reply, outcome) = mpsc::channel();
        self.queue.send(Pending { id, event: event.to_string().into_bytes(), reply }).expect("runtime api is down");
        outcome.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let errors = self.shared.lock().unwrap().init_errors.clone();
            panic!("no outcome within 60 s (init errors: {errors:?})")
        })
    }

    /// The ARN the next invocations report as invoked (e.g. an alias's).
    pub fn set_invoked_arn(&self, arn: &str) {
        self.shared.lock().unwrap().invoked_arn = arn.to_string();
    }

    #[allow(dead_code)] // used by the benchmark (benches/functions.rs)
    pub fn first_polls(&self) -> Vec<Instant> {
        self.shared.lock().unwrap().first_polls.clone()
    }

    #[allow(dead_code)] // used by the benchmark
    pub fn take_durations(&self) -> Vec<Duration> {
        std::mem::take(&mut self.shared.lock().unwrap().durations)
    }
}

fn reply(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder().status(status).body(Full::new(Bytes::from(body))).expect("response")
}

async fn serve(
    req: Request<Incoming>,
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Pending>>>,
    st: Arc<Mutex<Shared>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await?.to_bytes().to_vec();
    let parts: Vec<&str> = path.trim_start_matches("/2018-06-01/runtime/").split('/').collect();
    Ok(match parts.as_slice() {
        ["invocation", "next"] => {
            st.lock().unwrap().first_polls.push(Instant::now());
            let Some(p) = rx.lock().await.recv().await else { return Ok(reply(500, vec![])) };
            let invoked_arn = {
                let mut shared = st.lock().unwrap();
                shared.waiting.insert(p.id.clone(), p.reply);
                shared.handed_out.insert(p.id.clone(), Instant::now());
                shared.invoked_arn.clone()
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + 30_000)
                .unwrap_or_default();
            Response::builder()
                .status(200)
                .header("Lambda-Runtime-Aws-Request-Id", &p.id)
                .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
                .header("Lambda-Runtime-Invoked-Function-Arn", invoked_arn)
                .header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
                .body(Full::new(Bytes::from(p.event)))
                .expect("response")
        }
        ["invocation", id, kind @ ("response" | "error")] => {
            let value: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
            let mut shared = st.lock().unwrap();
            if let Some(at) = shared.handed_out.remove(*id) {
                shared.durations.push(at.elapsed());
            }
            if let Some(tx) = shared.waiting.remove(*id) {
                let _ = tx.send(if *kind == "response" { Ok(value) } else { Err(value) });
            }
            reply(202, br#"{"status":"OK"}"#.to_vec())
        }
        ["init", "error"] => {
            st.lock().unwrap().init_errors.push(String::from_utf8_lossy(&body).into_owned());
            reply(202, br#"{"status":"OK"}"#.to_vec())
        }
        _ => reply(404, vec![]),
    })
}

/// A function's bootstrap exactly as it ships: unzipped from the package `tapctl build` wrote
/// (scripts/test builds the packages before the tests), so the tests run what Lambda would run.
/// Unzipped once into a folder named by the package's hash: a later build never overwrites a
/// bootstrap another test is executing. The folder is beside the packages, not inside: the
/// packages folder is what `up` deploys, and tests copy it whole to make changed packages.
///
/// Tests are threads of one process, so the unzip is serialised by a lock: two threads writing
/// the same temporary file (its name carries only the process id) made one rename fail.
pub fn binary(name: &str) -> PathBuf {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    static UNZIP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let zip_path = super::harness::packages_dir().join(format!("{name}.zip"));
    let zip = std::fs::read(&zip_path)
        .unwrap_or_else(|_| panic!("{} is missing: run `tapctl build` first (scripts/test does)", zip_path.display()));
    let digest: String = sha2::Sha256::digest(&zip).iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = super::harness::packages_dir().with_file_name("bootstraps").join(digest);
    let path = dir.join(name);
    let _serialised = UNZIP.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !path.exists() {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
        let mut bytes = Vec::new();
        archive.by_name("bootstrap").expect("bootstrap in the zip").read_to_end(&mut bytes).expect("unzip");
        std::fs::create_dir_all(&dir).expect("bootstrap folder");
        // Another test binary (another process) may unzip the same package at the same time.
        let partial = dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&partial, bytes).expect("write bootstrap");
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&partial, &path).expect("rename bootstrap");
    }
    path
}

/// Starts a program just written by this process, retrying while Linux answers "text file busy".
/// Writing a file and executing it from a multi-threaded process races with every other thread's
/// fork: a child forked while the file was open for writing holds that descriptor until its own
/// exec, and exec of the file fails with ETXTBSY meanwhile (rust-lang/rust#114554, golang/go#22315).
/// The window is the child's fork-to-exec time, so a few short retries close it; a file that stays
/// busy is a real fault and fails the test.
pub fn spawn_fresh_executable(cmd: &mut Command) -> Child {
    for _ in 0..100 {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            spawned => return spawned.expect("cannot start the function"),
        }
    }
    panic!("{:?} stayed busy (open for writing) for 2 s", cmd.get_program())
}

/// Running containers of one function, all polling one Runtime API; their output (stdout and
/// stderr: the log lines) goes to a file the tests read.
pub struct Function {
    pub api: RuntimeApi,
    children: Vec<Child>,
    pub log: tempfile::NamedTempFile,
    #[allow(dead_code)] // used by the benchmark: cold init = first poll - started
    pub started: Instant,
}

impl Function {
    pub fn start(name: &str, containers: usize, env: &[(&str, &str)]) -> Function {
        Function::start_binary(&binary(name), name, containers, env)
    }

    pub fn start_binary(path: &std::path::Path, name: &str, containers: usize, env: &[(&str, &str)]) -> Function {
        let api = RuntimeApi::start();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let started = Instant::now();
        let children = (0..containers)
            .map(|_| {
                let mut cmd = Command::new(path);
                super::harness::aws_env(&mut cmd);
                cmd.env("AWS_LAMBDA_RUNTIME_API", &api.address)
                    .env("AWS_LAMBDA_FUNCTION_NAME", name)
                    .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
                    .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                    .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                    .env("AWS_LAMBDA_LOG_LEVEL", "DEBUG")
                    .envs(env.iter().copied())
                    .stdin(Stdio::null())
                    .stdout(log.reopen().expect("log"))
                    .stderr(log.reopen().expect("log"));
                spawn_fresh_executable(&mut cmd)
            })
            .collect();
        Function { api, children, log, started }
    }

    pub fn invoke(&self, event: &Value) -> Outcome {
        self.api.invoke(event)
    }

    /// An API Gateway REST (v1) proxy event for `POST /<resource>` on stage `live`.
    pub fn rest_event(resource: &str, body: &str, headers: &[(&str, &str)]) -> Value {
        let mut h = serde_json::Map::new();
        let mut mh = serde_json::Map::new();
        h.insert("Content-Type".into(), json!("application/json"));
        mh.insert("Content-Type".into(), json!(["application/json"]));
        for (k, v) in headers {
            h.insert(k.to_string(), json!(v));
            mh.insert(k.to_string(), json!([v]));
        }
        json!({
            "resource": format!("/{resource}"),
            "path": format!("/{resource}"),
            "httpMethod": "POST",
            "headers": h,
            "multiValueHeaders": mh,
            "queryStringParameters": null,
            "multiValueQueryStringParameters": null,
            "pathParameters": null,
            "stageVariables": { "lambdaAlias": "blue" },
            "requestContext": {
                "accountId": "123456789012", "resourceId": "abc123", "stage": "live",
                "requestId": "api-req-1", "resourcePath": format!("/{resource}"), "httpMethod": "POST",
                "apiId": "api123", "path": format!("/live/{resource}"), "protocol": "HTTP/1.1",
                "requestTimeEpoch": 1764028800000u64,
                "identity": { "sourceIp": "203.0.113.9", "userAgent": "tests", "userArn": "arn:aws:iam::123456789012:user/ci" }
            },
            "body": body,
            "isBase64Encoded": false
        })
    }

    /// Invokes with a REST event and returns (status code, parsed JSON body).
    pub fn post(&self, resource: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let out =
            self.invoke(&Self::rest_event(resource, body, headers)).unwrap_or_else(|e| panic!("function error: {e}"));
        let code = out["statusCode"].as_u64().expect("statusCode") as u16;
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
        (code, body)
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One `lambda:Invoke` as the fake endpoint received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub function: String,
    pub qualifier: Option<String>,
    pub payload: Value,
}

/// Lambda's `Invoke` (RequestResponse) for one function, which the emulator cannot run (no
/// Docker: testing.md): `POST /2015-03-31/functions/<name>/invocations[?Qualifier=q]` hands the
/// payload to the function's real binary through its Runtime API and answers as Lambda does —
/// 200 with the response, or 200 with `X-Amz-Function-Error: Unhandled` and the error document;
/// another function name is a 404 ResourceNotFoundException. A function under test points its
/// Lambda client here with `AWS_ENDPOINT_URL_LAMBDA` (the SDK's per-service endpoint), while its
/// other clients still go to the emulator. Every invocation is recorded.
pub struct InvokeEndpoint {
    pub url: String,
    invocations: Arc<Mutex<Vec<Invocation>>>,
    _runtime: tokio::runtime::Runtime,
    /// Dropped after the runtime (fields drop in order), outside it: the function's own Runtime
    /// API runtime cannot be dropped on one of this runtime's threads.
    _function: Arc<Function>,
}

impl InvokeEndpoint {
    pub fn start(function_name: &str, function: Function) -> InvokeEndpoint {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let invocations = Arc::new(Mutex::new(Vec::new()));
        let function = Arc::new(function);
        let kept = function.clone();
        let name = function_name.to_string();
        let recorded = invocations.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let (function, name, recorded) = (function.clone(), name.clone(), recorded.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (function, name, recorded) = (function.clone(), name.clone(), recorded.clone());
                        async move { invoke(req, function, name, recorded).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        InvokeEndpoint { url, invocations, _runtime: runtime, _function: kept }
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.invocations.lock().unwrap().clone()
    }
}

async fn invoke(
    req: Request<Incoming>,
    function: Arc<Function>,
    name: String,
    recorded: Arc<Mutex<Vec<Invocation>>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let qualifier = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("Qualifier="))
        .map(|q| q.replace("%24", "$"));
    let body = req.into_body().collect().await?.to_bytes().to_vec();
    let target = path.strip_prefix("/2015-03-31/functions/").and_then(|rest| rest.strip_suffix("/invocations"));
    // A function may be named by its name or by its ARN (…:function:<name>[:qualifier]).
    let named = target.map(|t| t.replace("%3A", ":")).map(|t| match t.split(':').nth(6) {
        Some(n) => n.to_string(),
        None => t,
    });
    if named.as_deref() != Some(name.as_str()) {
        let message = format!("Function not found: {}", target.unwrap_or(&path));
        return Ok(Response::builder()
            .status(404)
            .header("x-amzn-ErrorType", "ResourceNotFoundException")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json!({ "Type": "User", "Message": message }).to_string())))
            .expect("response"));
    }
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    recorded.lock().unwrap().push(Invocation { function: name, qualifier, payload: payload.clone() });
    let outcome = tokio::task::spawn_blocking(move || function.invoke(&payload)).await.expect("invoke");
    let mut response = Response::builder().status(200).header("X-Amz-Executed-Version", "1");
    let document = match outcome {
        Ok(v) => v,
        Err(e) => {
            response = response.header("X-Amz-Function-Error", "Unhandled");
            e
        }
    };
    Ok(response.body(Full::new(Bytes::from(document.to_string()))).expect("response"))
}
