//! The functions' real binaries, run for the tests as Lambda runs them (the emulator cannot run
//! functions: testing.md), on tapctl's own execution model (`tapctl::local::runtime`, the one
//! `tapctl local` serves with): each instance polls its own Lambda Runtime API, one invocation
//! at a time. Their log lines go to a file the tests read.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::Digest;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tapctl::local::runtime::{Finished, Launch, Outcome as Ended, Output, Pool};

/// What an invocation ended with: the function's response, or its error document.
pub type Outcome = Result<Value, Value>;

/// How long a test waits for one invocation: far above any function's time, so only a hung
/// function reaches it.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);

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

/// The environment an instance gets: the test process's own, with the harness's AWS settings
/// (one source: `harness::aws_env`), as a spawned `Command` would have inherited it.
fn function_env() -> Vec<(String, String)> {
    let mut cmd = std::process::Command::new("true");
    super::harness::aws_env(&mut cmd);
    let mut env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    for (k, v) in cmd.get_envs() {
        let k = k.to_string_lossy().into_owned();
        match v {
            Some(v) => {
                env.insert(k, v.to_string_lossy().into_owned());
            }
            None => {
                env.remove(&k);
            }
        }
    }
    env.into_iter().collect()
}

/// Instances of one function, started up front ("containers"), at most that many at once.
pub struct Function {
    pool: Arc<Pool>,
    invoked_arn: Mutex<String>,
    durations: Mutex<Vec<Duration>>,
    pub log: tempfile::NamedTempFile,
    #[allow(dead_code)] // used by the benchmark: cold init = first poll - started
    pub started: Instant,
    /// Last: the instances' tasks run on it, and dropping it ends them (and kills the processes).
    runtime: tokio::runtime::Runtime,
}

impl Function {
    pub fn start(name: &str, containers: usize, env: &[(&str, &str)]) -> Function {
        Function::start_binary(&binary(name), name, containers, env)
    }

    pub fn start_binary(path: &std::path::Path, name: &str, containers: usize, env: &[(&str, &str)]) -> Function {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut all = function_env();
        all.extend(
            [
                ("AWS_LAMBDA_FUNCTION_NAME", name),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
                ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
                ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
            ]
            .into_iter()
            .chain(env.iter().copied())
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let pool = Pool::new(Launch {
            program: path.to_path_buf(),
            env: all,
            output: Output::File(log.path().to_path_buf()),
            max_instances: containers,
        });
        let started = Instant::now();
        runtime.block_on(pool.prestart(containers)).expect("cannot start the function");
        Function {
            pool,
            invoked_arn: Mutex::new("arn:aws:lambda:us-east-1:123456789012:function:test".into()),
            durations: Mutex::new(Vec::new()),
            log,
            started,
            runtime,
        }
    }

    /// Sends an event to a free instance and waits for its outcome.
    pub fn invoke(&self, event: &Value) -> Outcome {
        let arn = self.invoked_arn.lock().unwrap().clone();
        let finished = self.runtime.block_on(self.pool.invoke(None, event, &arn, INVOCATION_TIMEOUT));
        self.outcome(finished)
    }

    fn outcome(&self, finished: Finished) -> Outcome {
        if let Some(d) = finished.duration {
            self.durations.lock().unwrap().push(d);
        }
        match finished.outcome {
            Ended::Response(v) => Ok(v),
            Ended::Error(e) => Err(e),
            Ended::TimedOut => {
                panic!("no outcome within {INVOCATION_TIMEOUT:?} (init errors: {:?})", self.pool.init_errors())
            }
        }
    }

    /// The ARN the next invocations report as invoked (e.g. an alias's).
    pub fn set_invoked_arn(&self, arn: &str) {
        *self.invoked_arn.lock().unwrap() = arn.to_string();
    }

    #[allow(dead_code)] // used by the benchmark (benches/functions.rs)
    pub fn first_polls(&self) -> Vec<Instant> {
        self.pool.first_polls()
    }

    /// Each invocation's time from handing the event over to the answer (Lambda's Duration).
    #[allow(dead_code)] // used by the benchmark
    pub fn take_durations(&self) -> Vec<Duration> {
        std::mem::take(&mut self.durations.lock().unwrap())
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

/// One `lambda:Invoke` as the fake endpoint received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub function: String,
    pub qualifier: Option<String>,
    pub payload: Value,
}

/// Lambda's `Invoke` (RequestResponse) for one function, which the emulator cannot run (no
/// Docker: testing.md), answered as `tapctl local` answers it (`invoke_target`,
/// `invoke_answer`): 200 with the response, or 200 with `X-Amz-Function-Error: Unhandled` and
/// the error document; another function name is a 404 ResourceNotFoundException. A function
/// under test points its Lambda client here with `AWS_ENDPOINT_URL_LAMBDA` (the SDK's
/// per-service endpoint), while its other clients still go to the emulator. Unlike `tapctl
/// local`'s, it checks no signature: it serves one test's function, and records every call.
pub struct InvokeEndpoint {
    pub url: String,
    invocations: Arc<Mutex<Vec<Invocation>>>,
    /// Its server runs on the function's runtime, and ends with it.
    _function: Function,
}

impl InvokeEndpoint {
    pub fn start(function_name: &str, function: Function) -> InvokeEndpoint {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let invocations = Arc::new(Mutex::new(Vec::new()));
        let (pool, name, recorded) = (Arc::clone(&function.pool), function_name.to_string(), invocations.clone());
        function.runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let (pool, name, recorded) = (pool.clone(), name.clone(), recorded.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (pool, name, recorded) = (pool.clone(), name.clone(), recorded.clone());
                        async move { invoke(req, pool, name, recorded).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        InvokeEndpoint { url, invocations, _function: function }
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.invocations.lock().unwrap().clone()
    }
}

async fn invoke(
    req: Request<Incoming>,
    pool: Arc<Pool>,
    name: String,
    recorded: Arc<Mutex<Vec<Invocation>>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let target = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| tapctl::local::server::invoke_target(rest, req.uri().query()));
    let body = req.into_body().collect().await?.to_bytes().to_vec();
    let Some((function, qualifier)) = target.filter(|(f, _)| *f == name) else {
        let message = format!("Function not found: {path}");
        return Ok(Response::builder()
            .status(404)
            .header("x-amzn-ErrorType", "ResourceNotFoundException")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json!({ "Type": "User", "Message": message }).to_string())))
            .expect("response"));
    };
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let named = (qualifier != "$LATEST").then(|| qualifier.clone());
    recorded.lock().unwrap().push(Invocation {
        function: function.clone(),
        qualifier: named,
        payload: payload.clone(),
    });
    let arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{function}:{qualifier}");
    let finished = pool.invoke(None, &payload, &arn, INVOCATION_TIMEOUT).await;
    Ok(tapctl::local::server::invoke_answer(finished.outcome, "1", "invoke"))
}
